"""The variants across seeds: final values per variant, the mean with its 95% t-interval, and
the same numbers as a table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.charts.data import default_metrics, present, variants
from analysis.charts.style import TEMPLATE, color, empty, grid_layout, rgba
from analysis.experiment import Experiment
from analysis.stats import t_interval
from trainables.vocabulary import RECONSTRUCTION, Outcome, variant_label

_LOSSES = (RECONSTRUCTION, "kl")  # shown after the scores unless told otherwise
_COMPLETED = (Outcome.COMPLETED.value,)


class DistributionSummary(NamedTuple):
    metric: str
    variant: str
    n: int
    mean: float
    low: float          # 95% t-interval of the mean (NaN when n < 2)
    high: float


class DistributionInfo(NamedTuple):
    metrics: tuple[str, ...]
    variants: tuple[str, ...]
    values: tuple[tuple[tuple[float, ...], ...], ...]     # [metric][variant] -> final values
    trial_ids: tuple[tuple[tuple[str, ...], ...], ...]    # same shape
    seeds: tuple[tuple[tuple[int | None, ...], ...], ...]
    summaries: tuple[DistributionSummary, ...]
    method: str


def seed_distributions_info(exp: Experiment, *, metrics: Sequence[str] | None = None,
                            outcomes: Sequence[str] = _COMPLETED) -> DistributionInfo:
    """Final values of each metric per variant over its completed trials (seeds, and in a
    searching study also configurations), with the mean and its 95% t-interval. Diverged trials
    have no final metrics: the divergence chart counts them."""
    names = list(metrics) if metrics is not None else default_metrics(exp, scores_only=True) + [
        m for m in _LOSSES if m in exp.trials and exp.trials[m].notna().any()]
    t = exp.trials.loc[exp.trials["outcome"].isin(list(outcomes))]
    order = variants(t)
    values, ids, seeds, summaries = [], [], [], []
    for m in names:
        if m not in t:
            raise ValueError(f"metrics: {m!r} is not a column of the trials table; "
                             f"use some of {', '.join(exp.metrics)}")
        parts = [t.loc[(t["variant"] == v) & np.isfinite(t[m].astype("float64"))] for v in order]
        values.append(tuple(tuple(float(x) for x in p[m]) for p in parts))
        ids.append(tuple(tuple(str(x) for x in p["trial_id"]) for p in parts))
        seeds.append(tuple(tuple(int(s) if present(s) else None for s in p["seed"]) for p in parts))
        summaries += [DistributionSummary(m, v, len(vals), *t_interval(vals))
                      for v, vals in zip(order, values[-1], strict=True)]
    return DistributionInfo(tuple(names), tuple(order), tuple(values), tuple(ids), tuple(seeds),
                            tuple(summaries), "Student t, 95%")


def seed_distributions_figure(info: DistributionInfo, *, columns: int = 3) -> go.Figure:
    """One panel per metric: a box of points per variant and the mean with its interval."""
    n = max(1, len(info.metrics))
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    height, spacing = grid_layout(rows, panel=230, gap=110)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(info.metrics) or [""],
                        horizontal_spacing=0.07, vertical_spacing=spacing)
    summary = {(s.metric, s.variant): s for s in info.summaries}
    for i, m in enumerate(info.metrics):
        for j, v in enumerate(info.variants):
            if info.values[i][j]:
                where = dict(row=i // cols + 1, col=i % cols + 1)
                fig.add_trace(_points(info, i, j), **where)
                fig.add_trace(_mean(summary[(m, v)], first=(i == 0 and j == 0)), **where)
    if not any(any(vs) for vs in info.values):
        empty(fig, "no completed trial yet")
    fig.update_layout(template=TEMPLATE, height=height,
                      title=dict(text="Final values per variant over seeds: points are trials, "
                                      "diamonds the mean with its 95% Student-t interval"))
    return fig


def _points(info: DistributionInfo, i: int, j: int) -> go.Box:
    m, v = info.metrics[i], info.variants[j]
    label, hue = variant_label(v), color(v, info.variants)
    return go.Box(
        y=list(info.values[i][j]), name=label, boxpoints="all", jitter=0.45, pointpos=0, legendgroup=v,
        showlegend=False, marker=dict(color=hue, size=7, opacity=0.8),
        line=dict(width=1, color=rgba(hue, 0.5)), fillcolor="rgba(0,0,0,0)",
        customdata=[f"trial {t}, seed {s}" for t, s in zip(info.trial_ids[i][j], info.seeds[i][j], strict=True)],
        hovertemplate="%{customdata}<br>" + m + ": %{y:.4g}<extra>" + label + "</extra>",
    )


def _mean(s: DistributionSummary, *, first: bool) -> go.Scatter:
    label = variant_label(s.variant)
    has_ci = math.isfinite(s.low)
    return go.Scatter(
        x=[label], y=[s.mean], mode="markers", name="mean, 95% t-interval", legendgroup="mean",
        showlegend=first, marker=dict(color="#111111", size=11, symbol="diamond-wide"),
        error_y=dict(type="data", symmetric=False, array=[s.high - s.mean if has_ci else 0],
                     arrayminus=[s.mean - s.low if has_ci else 0], color="#111111", thickness=2, width=8),
        hovertemplate=(f"{label}: mean %{{y:.4g}}"
                       + (f" [{s.low:.4g}, {s.high:.4g}]" if has_ci else " (n=1, no interval)")
                       + f"<br>n = {s.n}<extra></extra>"),
    )


def plot_seed_distributions(exp: Experiment, **kwargs: Any) -> go.Figure:
    """seed_distributions_figure(seed_distributions_info(exp, **kwargs))."""
    return seed_distributions_figure(seed_distributions_info(exp, **kwargs))


def comparison_table(exp: Experiment, *, metrics: Sequence[str] | None = None,
                     outcomes: Sequence[str] = _COMPLETED) -> pd.DataFrame:
    """One row per variant: n and, per metric, mean and 95% t-interval over its trials."""
    info = seed_distributions_info(exp, metrics=metrics, outcomes=outcomes)
    rows = []
    for v in info.variants:
        row: dict[str, Any] = {"variant": v, "label": variant_label(v)}
        for s in info.summaries:
            if s.variant == v:
                row["n"] = max(row.get("n", 0), s.n)
                row[f"{s.metric}_mean"], row[f"{s.metric}_low"], row[f"{s.metric}_high"] = s.mean, s.low, s.high
        rows.append(row)
    return pd.DataFrame(rows)

