"""Rank correlation between final metrics across trials."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import pandas as pd
import plotly.graph_objects as go

from analysis.charts.data import MAIN_LOSSES, Sample, default_metrics
from analysis.charts.style import TEMPLATE, empty
from analysis.experiment import Experiment
from analysis.stats import MIN_CORRELATION_TRIALS, spearman_interval
from trainables.vocabulary import DISENTANGLEMENT_METRICS, SCORED_OUTCOMES


class CorrelationInfo(NamedTuple):
    metrics: tuple[str, ...]
    matrix: tuple[tuple[float, ...], ...]    # Spearman rank correlation, pairwise complete
    counts: tuple[tuple[int, ...], ...]      # trials behind each entry
    low: tuple[tuple[float, ...], ...]       # 95% interval of each entry (stats.spearman_interval)
    high: tuple[tuple[float, ...], ...]
    method: str
    sample: Sample                           # completed trials against MIN_CORRELATION_TRIALS


def correlation_info(exp: Experiment, *, metrics: Sequence[str] | None = None, min_trials: int = 3) -> CorrelationInfo:
    """Spearman (rank) correlation of final values over completed trials: robust to the very
    different scales of losses and scores. Default metrics: the objectives, the main loss terms
    and the scores (the unsupervised measures when there are no scores). Metrics with fewer than
    ``min_trials`` values or no variation are left out."""
    t = exp.trials.loc[exp.trials["outcome"].isin(SCORED_OUTCOMES)]
    names = list(metrics) if metrics is not None else _default(exp)
    keep = [m for m in names if m in t and t[m].notna().sum() >= min_trials and t[m].nunique() > 1]
    data = t[keep].astype("float64")
    corr = data.corr(method="spearman", min_periods=min_trials) if keep else pd.DataFrame()
    mask = data.notna().astype("int64")
    counts = mask.T @ mask if keep else pd.DataFrame()
    matrix = tuple(tuple(float(corr.loc[a, b]) for b in keep) for a in keep)
    n = tuple(tuple(int(counts.loc[a, b]) for b in keep) for a in keep)
    bands = [[spearman_interval(r, k) for r, k in zip(row, ks, strict=True)] for row, ks in zip(matrix, n, strict=True)]
    return CorrelationInfo(tuple(keep), matrix, n, tuple(tuple(b[0] for b in row) for row in bands),
                           tuple(tuple(b[1] for b in row) for row in bands), "spearman",
                           Sample(len(data.dropna(how="all")) if keep else len(t), MIN_CORRELATION_TRIALS,
                                  "completed trials"))


def _default(exp: Experiment) -> list[str]:
    compact = default_metrics(exp, compact=True)
    scores = [m for m in compact if m in DISENTANGLEMENT_METRICS]
    rest = [m for m in compact if m in MAIN_LOSSES] + (scores or [m for m in compact if m not in MAIN_LOSSES])
    return list(dict.fromkeys([o.metric for o in exp.objectives if o.metric in compact] + rest))


def correlation_figure(info: CorrelationInfo) -> go.Figure:
    """A heat map from -1 to 1 with the value in each cell, its trial count and 95% interval on
    hover; in greys, with a note, when the trials are too few."""
    fig = go.Figure()
    if info.metrics:
        z = [[None if math.isnan(v) else v for v in row] for row in info.matrix]
        hover = [[f"{k} trials, 95% interval [{lo:.2f}, {hi:.2f}]" if math.isfinite(lo) else f"{k} trials"
                  for k, lo, hi in zip(ks, los, his, strict=True)]
                 for ks, los, his in zip(info.counts, info.low, info.high, strict=True)]
        fig.add_trace(go.Heatmap(
            z=z, x=list(info.metrics), y=list(info.metrics), zmin=-1, zmax=1,
            colorscale="RdBu" if info.sample.enough else "Greys", reversescale=info.sample.enough,
            texttemplate="%{z:.2f}", customdata=hover,
            hovertemplate="%{y} vs %{x}<br>rho = %{z:.3f}<br>%{customdata}<extra></extra>",
            colorbar=dict(title=dict(text="rho")),
        ))
        fig.update_yaxes(autorange="reversed")
    else:
        empty(fig, "fewer than 3 completed trials")
    size = 120 + 42 * len(info.metrics)
    note = "" if info.sample.enough else f"<br><sup>{info.sample.note()}</sup>"
    fig.update_layout(template=TEMPLATE, height=max(380, size), width=None,
                      title=dict(text="Rank (Spearman) correlation between final metrics across completed trials"
                                      + note))
    return fig


def plot_correlation(exp: Experiment, **kwargs: Any) -> go.Figure:
    """correlation_figure(correlation_info(exp, **kwargs))."""
    return correlation_figure(correlation_info(exp, **kwargs))
