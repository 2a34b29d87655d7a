"""Image panels: reconstructions, traversals and decodes of random latents of chosen trials
(the report's figure 3c), embedded as ``data:`` URIs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.charts.data import present
from analysis.charts.pareto import pareto_front_info
from analysis.charts.style import TEMPLATE, empty
from analysis.experiment import Experiment
from trainables.vocabulary import IMAGE_KINDS, SCORED_OUTCOMES, VARIANT_NAMES, Outcome, variant_label


class ImagePanelInfo(NamedTuple):
    trial_ids: tuple[str, ...]
    labels: tuple[str, ...]                     # row titles
    kinds: tuple[str, ...]                      # columns
    captions: tuple[str, ...]
    sources: tuple[tuple[str | None, ...], ...]  # [trial][kind] -> data: URI of the PNG, or None


def image_panels_info(exp: Experiment, *, trial_ids: Sequence[str] | None = None,
                      kinds: Sequence[str] | None = None) -> ImagePanelInfo:
    """Images of the chosen trials (default: the best Pareto-front trial of each variant)."""
    ids = list(trial_ids) if trial_ids is not None else _default_trials(exp)
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
    return ImagePanelInfo(tuple(ids), tuple(labels), tuple(ks), tuple(IMAGE_KINDS.get(k, k) for k in ks),
                          tuple(tuple(exp.image_uri(i, k) for k in ks) for i in ids))


def _default_trials(exp: Experiment, limit: int = 4) -> list[str]:
    """The best point of the Pareto front for each variant (highest score), up to ``limit``."""
    try:
        info = pareto_front_info(exp, outcomes=SCORED_OUTCOMES)
    except ValueError:  # no score or no loss: the first completed trial of each variant
        done = exp.trials.loc[exp.trials["outcome"] == Outcome.COMPLETED.value]
        return [str(g["trial_id"].iloc[0]) for _, g in done.groupby("variant", sort=False)][:limit]
    best: dict[str, tuple[float, str]] = {}
    for tid, v, y, front in zip(info.trial_ids, info.variants, info.y, info.on_front, strict=True):
        if front and (v not in best or y > best[v][0]):
            best[v] = (y, tid)
    order = [v for v in VARIANT_NAMES if v in best] + sorted(v for v in best if v not in VARIANT_NAMES)
    return [best[v][1] for v in order][:limit]


def image_panels_figure(info: ImagePanelInfo) -> go.Figure:
    """A grid of images: one row per trial, one column per kind."""
    rows, cols = max(1, len(info.trial_ids)), max(1, len(info.kinds))
    titles = [f"{label}<br><sup>{cap}</sup>" for label in info.labels for cap in info.captions] or [""]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.02,
                        vertical_spacing=min(0.08, 0.5 / rows))
    for r, srcs in enumerate(info.sources):
        for c, src in enumerate(srcs):
            if src is not None:
                fig.add_trace(go.Image(source=src, name=f"{info.trial_ids[r]} {info.kinds[c]}",
                                       hoverinfo="skip"), row=r + 1, col=c + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    if not fig.data:
        empty(fig, "no images")
    fig.update_annotations(font_size=12)
    fig.update_layout(template=TEMPLATE, height=80 + 300 * rows, margin=dict(l=10, r=10, t=90, b=10),
                      title=dict(text="Images of chosen trials"))
    return fig


def plot_image_panels(exp: Experiment, **kwargs: Any) -> go.Figure:
    """image_panels_figure(image_panels_info(exp, **kwargs))."""
    return image_panels_figure(image_panels_info(exp, **kwargs))
