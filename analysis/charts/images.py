"""Image panels: reconstructions, traversals and decodes of random latents of chosen trials
(the report's figure 3c), embedded as ``data:`` URIs; each traversal row labelled with its
latent and KL, each column with its z value (traversals.json)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, NamedTuple

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.charts.data import present
from analysis.charts.pareto import pareto_front_info
from analysis.charts.style import TEMPLATE, empty
from analysis.experiment import Experiment, Traversals, png_uri
from trainables.vocabulary import IMAGE_KINDS, RANKED_OUTCOMES, VARIANT_NAMES, Outcome, variant_label

CAPTION_SIZE = 13  # px: captions and labels a reader can read next to the images


class ImagePanelInfo(NamedTuple):
    trial_ids: tuple[str, ...]
    labels: tuple[str, ...]                     # row titles
    kinds: tuple[str, ...]                      # columns
    captions: tuple[str, ...]
    sources: tuple[tuple[str | None, ...], ...]  # [trial][kind] -> data: URI of the PNG, or None
    sizes: tuple[tuple[tuple[int, int] | None, ...], ...]  # [trial][kind] -> (width, height) in pixels
    traversals: tuple[Traversals | None, ...]   # [trial] -> the traversal rows' latents and KLs, the z values


def image_panels_info(exp: Experiment, *, trial_ids: Sequence[str] | None = None,
                      kinds: Sequence[str] | None = None) -> ImagePanelInfo:
    """Images of the chosen trials (default: the best Pareto-front trial of each variant)."""
    ids = list(trial_ids) if trial_ids is not None else best_per_variant(exp)
    known = set(exp.trials["trial_id"])
    missing = [i for i in ids if i not in known]
    if missing:
        raise ValueError(f"trial_ids: {missing} are not trials of this experiment")
    available = exp.image_kinds()
    ks = list(kinds) if kinds is not None else [k for k in IMAGE_KINDS if k in available] + [
        k for k in available if k not in IMAGE_KINDS]
    rows = exp.trials.set_index("trial_id")
    labels = []
    for i in ids:
        r = rows.loc[i]
        seed = f" · seed {r['seed']}" if present(r["seed"]) else ""
        labels.append(f"trial {i} · {variant_label(r['variant'])}{seed}")
    data = [[exp.image_bytes(i, k) for k in ks] for i in ids]
    return ImagePanelInfo(
        tuple(ids), tuple(labels), tuple(ks), tuple(IMAGE_KINDS.get(k, k) for k in ks),
        tuple(tuple(None if b is None else png_uri(b) for b in row) for row in data),
        tuple(tuple(png_size(b) for b in row) for row in data), tuple(exp.traversals(i) for i in ids))


def png_size(data: bytes | None) -> tuple[int, int] | None:
    """(width, height) from a PNG's header, None for anything else."""
    if data is None or len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">II", data[16:24])


def best_per_variant(exp: Experiment, limit: int = 4) -> list[str]:
    """The best point of the Pareto front for each variant (best in the chart's y), up to ``limit``."""
    try:
        info = pareto_front_info(exp, outcomes=RANKED_OUTCOMES)
    except ValueError:  # no score or no loss: the first completed trial of each variant
        done = exp.trials.loc[exp.trials["outcome"] == Outcome.COMPLETED.value]
        return [str(g["trial_id"].iloc[0]) for _, g in done.groupby("variant", sort=False)][:limit]
    sign = 1.0 if info.y_maximize else -1.0
    best: dict[str, tuple[float, str]] = {}
    for tid, v, y, front in zip(info.trial_ids, info.variants, info.y, info.on_front, strict=True):
        if front and (v not in best or sign * y > best[v][0]):
            best[v] = (sign * y, tid)
    order = [v for v in VARIANT_NAMES if v in best] + sorted(v for v in best if v not in VARIANT_NAMES)
    return [best[v][1] for v in order][:limit]


def image_panels_figure(info: ImagePanelInfo) -> go.Figure:
    """A grid of images, one row per trial, one column per kind; a traversal image carries its
    row labels (latent and KL) and column labels (z) as axis ticks."""
    rows, cols = max(1, len(info.trial_ids)), max(1, len(info.kinds))
    titles = [f"{label}<br>{cap}" for label in info.labels for cap in info.captions] or [""]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.06,
                        vertical_spacing=min(0.1, 0.6 / rows))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    for r, srcs in enumerate(info.sources):
        for c, src in enumerate(srcs):
            if src is None:
                continue
            fig.add_trace(go.Image(source=src, name=f"{info.trial_ids[r]} {info.kinds[c]}", hoverinfo="skip"),
                          row=r + 1, col=c + 1)
            size, trav = info.sizes[r][c], info.traversals[r]
            if info.kinds[c] == "traversals" and size is not None and trav is not None:
                _label_traversals(fig, size, trav, row=r + 1, col=c + 1)
    if not fig.data:
        empty(fig, "no images")
    fig.update_annotations(font_size=CAPTION_SIZE)
    fig.update_layout(template=TEMPLATE, height=100 + 360 * rows, margin=dict(l=10, r=10, t=110, b=10),
                      font=dict(size=CAPTION_SIZE), title=dict(text="Images of chosen trials"))
    return fig


def _label_traversals(fig: go.Figure, size: tuple[int, int], trav: Traversals, **where: int) -> None:
    """Ticks at the centres of the rows (equal heights) and of the columns (equal widths)."""
    width, height = size
    n_rows, n_cols = len(trav.latents), len(trav.values)
    fig.update_yaxes(visible=True, showgrid=False, zeroline=False, ticks="", tickfont=dict(size=CAPTION_SIZE - 2),
                     tickvals=[(k + 0.5) * height / n_rows for k in range(n_rows)], ticktext=trav.row_labels(),
                     **where)
    fig.update_xaxes(visible=True, showgrid=False, zeroline=False, ticks="", side="top",
                     tickfont=dict(size=CAPTION_SIZE - 2), tickvals=[(k + 0.5) * width / n_cols for k in range(n_cols)],
                     ticktext=trav.column_labels(), **where)


def plot_image_panels(exp: Experiment, **kwargs: Any) -> go.Figure:
    """image_panels_figure(image_panels_info(exp, **kwargs))."""
    return image_panels_figure(image_panels_info(exp, **kwargs))
