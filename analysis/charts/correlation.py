"""Rank correlation between final metrics across trials."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import pandas as pd
import plotly.graph_objects as go

from analysis.charts.data import default_metrics
from analysis.charts.style import TEMPLATE, empty
from analysis.experiment import Experiment
from trainables.vocabulary import SCORED_OUTCOMES


class CorrelationInfo(NamedTuple):
    metrics: tuple[str, ...]
    matrix: tuple[tuple[float, ...], ...]    # Spearman rank correlation, pairwise complete
    counts: tuple[tuple[int, ...], ...]      # trials behind each entry
    method: str


def correlation_info(exp: Experiment, *, metrics: Sequence[str] | None = None, min_trials: int = 3) -> CorrelationInfo:
    """Spearman (rank) correlation of final values over completed trials: robust to the very
    different scales of losses and scores. Default metrics: the main loss terms, the scores and
    the unsupervised measures. Metrics with fewer than ``min_trials`` values or no variation are
    left out."""
    t = exp.trials.loc[exp.trials["outcome"].isin(SCORED_OUTCOMES)]
    names = list(metrics) if metrics is not None else default_metrics(exp, compact=True)
    keep = [m for m in names if m in t and t[m].notna().sum() >= min_trials and t[m].nunique() > 1]
    data = t[keep].astype("float64")
    corr = data.corr(method="spearman", min_periods=min_trials) if keep else pd.DataFrame()
    mask = data.notna().astype("int64")
    counts = mask.T @ mask if keep else pd.DataFrame()
    return CorrelationInfo(
        tuple(keep), tuple(tuple(float(corr.loc[a, b]) for b in keep) for a in keep),
        tuple(tuple(int(counts.loc[a, b]) for b in keep) for a in keep), "spearman")


def correlation_figure(info: CorrelationInfo) -> go.Figure:
    """A heat map from -1 to 1 with the value in each cell and its trial count on hover."""
    fig = go.Figure()
    if info.metrics:
        z = [[None if math.isnan(v) else v for v in row] for row in info.matrix]
        fig.add_trace(go.Heatmap(
            z=z, x=list(info.metrics), y=list(info.metrics), zmin=-1, zmax=1, colorscale="RdBu", reversescale=True,
            texttemplate="%{z:.2f}", customdata=[list(r) for r in info.counts],
            hovertemplate="%{y} vs %{x}<br>rho = %{z:.3f}<br>%{customdata} trials<extra></extra>",
            colorbar=dict(title=dict(text="rho")),
        ))
        fig.update_yaxes(autorange="reversed")
    else:
        empty(fig, "fewer than 3 completed trials")
    size = 120 + 42 * len(info.metrics)
    fig.update_layout(template=TEMPLATE, height=max(380, size), width=None,
                      title=dict(text="Rank (Spearman) correlation between final metrics across completed trials"))
    return fig


def plot_correlation(exp: Experiment, **kwargs: Any) -> go.Figure:
    """correlation_figure(correlation_info(exp, **kwargs))."""
    return correlation_figure(correlation_info(exp, **kwargs))
