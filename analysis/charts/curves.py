"""Loss and metric curves over epochs: per trial, or as the mean per variant with its band."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from analysis.charts.data import axis_title, bounds, default_metrics, variants
from analysis.charts.style import GREY, TEMPLATE, color, empty, epoch_ticks, grid_layout, rgba
from analysis.experiment import Experiment
from analysis.stats import t_interval
from trainables.vocabulary import variant_label

TRIAL_COLORS = qualitative.Safe  # colour-blind safe, one per highlighted trial
OTHERS = "other trials"  # the series of the trials not highlighted (grey)
# Points are marked when curves are short (a one-epoch curve is a point) or few: thousands of
# markers cost seconds to draw and hide the lines.
_MARKED_EPOCHS, _MARKED_POINTS = 3, 2000


class CurveSeries(NamedTuple):
    key: str                                  # the legend entry: a variant, a trial id, or OTHERS
    variant: str
    metric: str
    trial_ids: tuple[str, ...]                # per point (per-trial mode) or () (aggregate mode)
    epochs: tuple[float | None, ...]          # per-trial mode: trials separated by None
    values: tuple[float | None, ...]
    lower: tuple[float, ...] = ()             # aggregate mode: 95% t-interval of the mean, within the
    upper: tuple[float, ...] = ()             # metric's range


class CurvesInfo(NamedTuple):
    metrics: tuple[str, ...]
    variants: tuple[str, ...]
    series: tuple[CurveSeries, ...]
    aggregate: bool
    color_by: str                             # "variant", or "trial" when the variant does not vary
    keys: tuple[str, ...]                     # legend entries in order (colours follow it)


def curves_info(exp: Experiment, *, metrics: Sequence[str] | None = None, aggregate: bool = False,
                trial_ids: Sequence[str] | None = None, highlight: int = 10) -> CurvesInfo:
    """Per metric, every trial's curve (``aggregate=False``) or the mean over trials per epoch
    and variant with a 95% t-interval kept within the metric's range (``aggregate=True``, the
    report's figures 1, 2 and 4). Per-trial curves are coloured by variant; when the variant
    does not vary, the ``highlight`` best trials (Pareto rank, then the first objective) get a
    colour each and the others are grey. Default metrics: every loss term and score reported,
    throughput left out."""
    h = exp.history
    if trial_ids is not None:
        h = h.loc[h["trial_id"].isin(list(trial_ids))]
    names = list(metrics) if metrics is not None else [
        m for m in default_metrics(exp) if m in h and h[m].notna().any()]
    missing = [m for m in names if m not in h]
    if missing:
        raise ValueError(f"metrics: {missing[0]!r} is not in the history; use some of {', '.join(exp.metrics)}")
    order = variants(h)
    by_trial = not aggregate and len(order) <= 1
    keys = _highlighted(exp, h, highlight) if by_trial else order
    series = []
    for m in names:
        part = h.loc[h[m].notna() & h["epoch"].notna(), ["trial_id", "variant", "epoch", m]]
        if by_trial:
            series += _trial_series(m, part, keys)
            continue
        for v in order:
            mine = part.loc[part["variant"] == v]
            if not mine.empty:
                series.append(_band(v, m, mine) if aggregate else _lines(v, v, m, mine))
    if by_trial and any(s.key == OTHERS for s in series):
        keys = [*keys, OTHERS]
    return CurvesInfo(tuple(names), tuple(order), tuple(series), aggregate, "trial" if by_trial else "variant",
                      tuple(keys))


def _highlighted(exp: Experiment, h: pd.DataFrame, limit: int) -> list[str]:
    """The trials of the history in report order: Pareto rank, then the study's first objective."""
    t = exp.trials.loc[exp.trials["trial_id"].isin(set(h["trial_id"]))]
    first = next((o for o in exp.objectives if o.metric in t), None)
    sign = -1.0 if first is not None and first.direction == "maximize" else 1.0
    t = t.assign(_rank=t["pareto_rank"].astype("float64") if "pareto_rank" in t else 0.0,
                 _value=sign * t[first.metric].astype("float64") if first is not None else 0.0)
    ordered = t.sort_values(["_rank", "_value"], kind="stable", na_position="last")
    return [str(i) for i in ordered["trial_id"]][:limit]


def _trial_series(metric: str, part: pd.DataFrame, keys: list[str]) -> list[CurveSeries]:
    """One series per highlighted trial, the rest in one grey series."""
    out = []
    for tid in keys:
        mine = part.loc[part["trial_id"] == tid]
        if not mine.empty:
            out.append(_lines(tid, str(mine["variant"].iloc[0]), metric, mine))
    rest = part.loc[~part["trial_id"].isin(keys)]
    if not rest.empty:
        out.append(_lines(OTHERS, str(rest["variant"].iloc[0]), metric, rest))
    return out


def _band(variant: str, metric: str, part: pd.DataFrame) -> CurveSeries:
    """The mean over trials per epoch with its 95% t-interval, within the metric's range."""
    lower, upper = bounds(metric)
    stats = [(int(e), *t_interval(vals.to_numpy(), lower=lower, upper=upper))
             for e, vals in part.groupby("epoch")[metric]]
    return CurveSeries(variant, variant, metric, (), tuple(float(s[0]) for s in stats), tuple(s[1] for s in stats),
                       tuple(s[2] for s in stats), tuple(s[3] for s in stats))


def _lines(key: str, variant: str, metric: str, part: pd.DataFrame) -> CurveSeries:
    """Every trial's curve in one series, trials separated by a None."""
    ids: list[str] = []
    xs: list[float | None] = []
    ys: list[float | None] = []
    for tid, g in part.groupby("trial_id", sort=False):
        ids += [str(tid)] * (len(g) + 1)
        xs += [float(e) for e in g["epoch"]] + [None]
        ys += [float(y) for y in g[metric]] + [None]
    return CurveSeries(key, variant, metric, tuple(ids[:-1]), tuple(xs[:-1]), tuple(ys[:-1]))


def curves_figure(info: CurvesInfo, *, columns: int = 3) -> go.Figure:
    """One panel per metric (its unit in the title); in aggregate mode a band under each mean."""
    n = max(1, len(info.metrics))
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    height, spacing = grid_layout(rows)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[axis_title(m) for m in info.metrics] or [""],
                        horizontal_spacing=0.07, vertical_spacing=spacing)
    shown: set[str] = set()
    few = len({e for s in info.series for e in s.epochs if e is not None}) <= _MARKED_EPOCHS or sum(
        len(s.epochs) for s in info.series) <= _MARKED_POINTS
    for s in info.series:
        i = info.metrics.index(s.metric)
        where = dict(row=i // cols + 1, col=i % cols + 1)
        hue, label = _style(info, s.key)
        if info.aggregate:
            fig.add_trace(go.Scatter(x=list(s.epochs) + list(s.epochs)[::-1], y=list(s.upper) + list(s.lower)[::-1],
                                     mode="lines", fill="toself", fillcolor=rgba(hue, 0.18), line=dict(width=0),
                                     legendgroup=s.key, showlegend=False, hoverinfo="skip", name=label), **where)
        fig.add_trace(go.Scatter(
            x=list(s.epochs), y=list(s.values), mode="lines+markers" if info.aggregate or few else "lines",
            marker=dict(size=5),
            name=label, legendgroup=s.key, showlegend=s.key not in shown,
            line=dict(color=hue, width=2 if info.aggregate or s.key != OTHERS else 1),
            opacity=1.0 if info.aggregate else 0.55 if s.key == OTHERS else 0.85,
            customdata=list(s.trial_ids) if s.trial_ids else None, connectgaps=False,
            hovertemplate=(f"{label}<br>epoch %{{x}}<br>{s.metric}: %{{y:.4g}}"
                           + ("" if info.aggregate else "<br>trial %{customdata}") + "<extra></extra>"),
        ), **where)
        shown.add(s.key)
    if not info.series:
        empty(fig, "no epochs reported yet")
    what = "mean over trials with its 95% t-interval" if info.aggregate else (
        "one line per trial" + (", the best trials in colour" if info.color_by == "trial" else ""))
    fig.update_layout(template=TEMPLATE, height=height,
                      legend=dict(title="variant" if info.color_by == "variant" else "trial"),
                      title=dict(text=f"Losses and metrics over training ({what})"))
    epoch_ticks(fig, [e for s in info.series for e in s.epochs])
    fig.update_xaxes(title_text="epoch", row=rows)
    return fig


def _style(info: CurvesInfo, key: str) -> tuple[str, str]:
    """(colour, legend label) of a series: by variant, or by the trial's place among the highlighted."""
    if info.color_by == "variant":
        return color(key, info.variants), variant_label(key)
    if key == OTHERS:
        return GREY, OTHERS
    return TRIAL_COLORS[info.keys.index(key) % len(TRIAL_COLORS)], f"trial {key}"


def headline_metrics(exp: Experiment, limit: int = 6) -> list[str]:
    """The metrics the report's curves show: the objectives, the reconstruction loss and KL,
    then the scores and the unsupervised measures, up to ``limit`` (history.parquet has all)."""
    h = exp.history
    first = [o.metric for o in exp.objectives] + ["rec_loss", "kl"]
    shown = [m for m in dict.fromkeys(first + default_metrics(exp, scores_only=True) + default_metrics(exp))
             if m in h and h[m].notna().any()]
    return shown[:limit]


def plot_curves(exp: Experiment, **kwargs: Any) -> go.Figure:
    """curves_figure(curves_info(exp, **kwargs))."""
    return curves_figure(curves_info(exp, **kwargs))

