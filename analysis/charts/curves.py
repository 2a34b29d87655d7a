"""Loss and metric curves over epochs, per trial or as the mean per variant with its band."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.charts.data import default_metrics, variants
from analysis.charts.style import TEMPLATE, color, empty, epoch_ticks, grid_layout, rgba
from analysis.experiment import Experiment
from analysis.stats import t_interval
from trainables.vocabulary import variant_label


class CurveSeries(NamedTuple):
    variant: str
    metric: str
    trial_ids: tuple[str, ...]               # per point (per-trial mode) or () (aggregate mode)
    epochs: tuple[float | None, ...]          # per-trial mode: trials separated by None
    values: tuple[float | None, ...]
    lower: tuple[float, ...] = ()             # aggregate mode: 95% t-interval of the mean
    upper: tuple[float, ...] = ()


class CurvesInfo(NamedTuple):
    metrics: tuple[str, ...]
    variants: tuple[str, ...]
    series: tuple[CurveSeries, ...]
    aggregate: bool


def curves_info(exp: Experiment, *, metrics: Sequence[str] | None = None, aggregate: bool = False,
                trial_ids: Sequence[str] | None = None) -> CurvesInfo:
    """Per metric and variant, every trial's curve (``aggregate=False``) or the mean over trials
    per epoch with a 95% t-interval (``aggregate=True``, the report's figures 1, 2 and 4).
    Default metrics: every loss term and score reported in the history, throughput left out."""
    h = exp.history
    if trial_ids is not None:
        h = h.loc[h["trial_id"].isin(list(trial_ids))]
    names = list(metrics) if metrics is not None else [
        m for m in default_metrics(exp) if m in h and h[m].notna().any()]
    order = variants(h)
    series = []
    for m in names:
        if m not in h:
            raise ValueError(f"metrics: {m!r} is not in the history; use some of {', '.join(exp.metrics)}")
        for v in order:
            part = h.loc[(h["variant"] == v) & h[m].notna() & h["epoch"].notna(), ["trial_id", "epoch", m]]
            if not part.empty:
                series.append(_band(v, m, part) if aggregate else _lines(v, m, part))
    return CurvesInfo(tuple(names), tuple(order), tuple(series), aggregate)


def _band(variant: str, metric: str, part: pd.DataFrame) -> CurveSeries:
    """The mean over trials per epoch with its 95% t-interval."""
    stats = [(int(e), *t_interval(vals.to_numpy())) for e, vals in part.groupby("epoch")[metric]]
    return CurveSeries(variant, metric, (), tuple(float(s[0]) for s in stats), tuple(s[1] for s in stats),
                       tuple(s[2] for s in stats), tuple(s[3] for s in stats))


def _lines(variant: str, metric: str, part: pd.DataFrame) -> CurveSeries:
    """Every trial's curve in one series, trials separated by a None."""
    ids: list[str] = []
    xs: list[float | None] = []
    ys: list[float | None] = []
    for tid, g in part.groupby("trial_id", sort=False):
        ids += [str(tid)] * (len(g) + 1)
        xs += [float(e) for e in g["epoch"]] + [None]
        ys += [float(y) for y in g[metric]] + [None]
    return CurveSeries(variant, metric, tuple(ids[:-1]), tuple(xs[:-1]), tuple(ys[:-1]))


def curves_figure(info: CurvesInfo, *, columns: int = 3) -> go.Figure:
    """One panel per metric, coloured by variant; in aggregate mode a band under each mean."""
    n = max(1, len(info.metrics))
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    height, spacing = grid_layout(rows)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(info.metrics) or [""],
                        horizontal_spacing=0.07, vertical_spacing=spacing)
    shown: set[str] = set()
    for s in info.series:
        i = info.metrics.index(s.metric)
        r, c = i // cols + 1, i % cols + 1
        hue = color(s.variant, info.variants)
        label = variant_label(s.variant)
        if info.aggregate:
            fig.add_trace(go.Scatter(x=list(s.epochs) + list(s.epochs)[::-1], y=list(s.upper) + list(s.lower)[::-1],
                                     mode="lines", fill="toself", fillcolor=rgba(hue, 0.18), line=dict(width=0),
                                     legendgroup=s.variant, showlegend=False, hoverinfo="skip", name=label),
                          row=r, col=c)
        fig.add_trace(go.Scatter(
            x=list(s.epochs), y=list(s.values), mode="lines+markers" if info.aggregate else "lines",
            name=label, legendgroup=s.variant, showlegend=s.variant not in shown,
            line=dict(color=hue, width=2 if info.aggregate else 1.2), opacity=1.0 if info.aggregate else 0.75,
            customdata=list(s.trial_ids) if s.trial_ids else None, connectgaps=False,
            hovertemplate=(f"{label}<br>epoch %{{x}}<br>{s.metric}: %{{y:.4g}}"
                           + ("" if info.aggregate else "<br>trial %{customdata}") + "<extra></extra>"),
        ), row=r, col=c)
        shown.add(s.variant)
    if not info.series:
        empty(fig, "no epochs reported yet")
    what = "mean over trials with 95% t-interval" if info.aggregate else "one line per trial"
    fig.update_layout(template=TEMPLATE, height=height, legend=dict(title="variant"),
                      title=dict(text=f"Losses and metrics over training ({what})"))
    epoch_ticks(fig, [e for s in info.series for e in s.epochs])
    fig.update_xaxes(title_text="epoch", row=rows)
    return fig


def plot_curves(exp: Experiment, **kwargs: Any) -> go.Figure:
    """curves_figure(curves_info(exp, **kwargs))."""
    return curves_figure(curves_info(exp, **kwargs))
