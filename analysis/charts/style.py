"""How the charts look: one colour per variant, the template, and the layout helpers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from trainables.vocabulary import VARIANT_NAMES

# One colour per variant in the vocabulary's order, colour-blind safe (Okabe-Ito).
VARIANT_COLORS = dict(zip(VARIANT_NAMES, ("#0072B2", "#009E73", "#E69F00", "#D55E00"), strict=True))
EXTRA_COLORS = ("#CC79A7", "#56B4E9", "#F0E442", "#000000")  # variants the vocabulary does not know
GREY = "#B8B8B8"
TEMPLATE = "plotly_white"


def color(variant: Any, order: Sequence[Any] = ()) -> str:
    """The variant's colour; an unknown variant takes the next extra colour by its place in ``order``."""
    if str(variant) in VARIANT_COLORS:
        return VARIANT_COLORS[str(variant)]
    others = [v for v in order if str(v) not in VARIANT_COLORS]
    i = others.index(variant) if variant in others else 0
    return EXTRA_COLORS[i % len(EXTRA_COLORS)]


def rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r}, {g}, {b}, {alpha})"


def empty(fig: go.Figure, text: str) -> None:
    """Say in the figure's middle why it has nothing to show."""
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                       font=dict(size=16, color="#777777"))


def grid_layout(rows: int, panel: int = 210, gap: int = 75, margins: int = 150) -> tuple[int, float]:
    """(figure height, vertical_spacing) giving each row ``panel`` px and ``gap`` px between."""
    height = rows * panel + (rows - 1) * gap + margins
    return height, (gap / (height - margins) if rows > 1 else 0.0)


def epoch_ticks(fig: go.Figure, epochs: Sequence[Any], **where: Any) -> None:
    """Whole epochs on the (epoch) x axes: no tick at 1.5."""
    finite = [e for e in epochs if e is not None]
    top = max(finite) if finite else 1
    fig.update_xaxes(tick0=0, dtick=max(1, math.ceil(top / 8)), **where)
