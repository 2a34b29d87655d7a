"""Divergence per variant: the share of finished trials whose loss became NaN or Inf, and when."""

from __future__ import annotations

import math
from typing import NamedTuple

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.charts.data import present, variants
from analysis.charts.style import TEMPLATE, color, epoch_ticks
from analysis.experiment import Experiment
from analysis.stats import wilson_interval
from trainables.vocabulary import FAILED_OUTCOMES, SCORED_OUTCOMES, variant_label


class DivergenceInfo(NamedTuple):
    variants: tuple[str, ...]
    n_finished: tuple[int, ...]       # completed + diverged + error + stopped
    n_diverged: tuple[int, ...]
    rate: tuple[float, ...]
    low: tuple[float, ...]            # 95% Wilson score interval of the rate
    high: tuple[float, ...]
    epochs: tuple[tuple[int, ...], ...]        # epoch of each divergence
    planned: tuple[tuple[int | None, ...], ...]  # the trial's planned epochs (config/epochs)
    trial_ids: tuple[tuple[str, ...], ...]


def divergence_info(exp: Experiment) -> DivergenceInfo:
    """Rate = diverged / finished trials per variant (running ones may still diverge), with a
    95% Wilson interval (exact enough at small n, unlike the normal approximation)."""
    t = exp.trials
    fin = t.loc[t["outcome"].isin([*SCORED_OUTCOMES, *FAILED_OUTCOMES])]
    order = variants(t)
    n, k, rate, lo, hi, ep, planned, ids = [], [], [], [], [], [], [], []
    for v in order:
        part = fin.loc[fin["variant"] == v]
        div = part.loc[part["diverged"]]
        dated = div.loc[[present(e) for e in div["diverged_epoch"]]]
        n.append(len(part))
        k.append(len(div))
        rate.append(len(div) / len(part) if len(part) else float("nan"))
        a, b = wilson_interval(len(div), len(part))
        lo.append(a)
        hi.append(b)
        ep.append(tuple(int(e) for e in dated["diverged_epoch"]))
        plan = div["config/epochs"] if "config/epochs" in div else pd.Series([None] * len(div))
        planned.append(tuple(int(e) if present(e) else None for e in plan)[:len(ep[-1])])
        ids.append(tuple(str(i) for i in dated["trial_id"]))
    return DivergenceInfo(tuple(order), tuple(n), tuple(k), tuple(rate), tuple(lo), tuple(hi),
                          tuple(ep), tuple(planned), tuple(ids))


def divergence_summary(info: DivergenceInfo) -> str:
    """One line for a study in which nothing diverged (the report shows it instead of the chart):
    how many finished trials, and how high the rate could still be (95% Wilson, all variants)."""
    n = sum(info.n_finished)
    k = sum(info.n_diverged)
    if k:
        return f"{k} of {n} finished trials diverged."
    if n == 0:
        return "No trial has finished yet."
    return (f"No trial diverged: 0 of {n} finished trials (95% Wilson interval of the rate: "
            f"0 to {wilson_interval(0, n)[1]:.0%}).")


def divergence_figure(info: DivergenceInfo) -> go.Figure:
    """The rate per variant with its interval (left), the epoch of each divergence (right)."""
    fig = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55], horizontal_spacing=0.12,
                        subplot_titles=["share of finished trials that diverged", "epoch of divergence"])
    labels = [variant_label(v) for v in info.variants]
    colors = [color(v, info.variants) for v in info.variants]
    fig.add_trace(_rates(info, labels, colors), row=1, col=1)
    rows = zip(labels, colors, info.epochs, info.planned, info.trial_ids, strict=True)
    for label, hue, eps, plan, ids in rows:
        if eps:
            fig.add_trace(go.Scatter(
                x=list(eps), y=[label] * len(eps), mode="markers", showlegend=False, name=label,
                marker=dict(color=hue, size=12, symbol="x", line=dict(width=1)),
                customdata=[f"trial {i}, planned {p if p is not None else '?'} epochs"
                            for i, p in zip(ids, plan, strict=False)],
                hovertemplate="%{customdata}<br>diverged in epoch %{x}<extra>" + label + "</extra>",
            ), row=1, col=2)
    if not any(info.epochs):
        fig.add_annotation(text="no trial diverged", showarrow=False, xref="x2 domain", yref="y2 domain",
                           x=0.5, y=0.5, font=dict(size=15, color="#777777"))
    fig.update_yaxes(range=[0, 1.15], tickformat=".0%", row=1, col=1)
    fig.update_xaxes(title_text="epoch", rangemode="tozero", row=1, col=2)
    epoch_ticks(fig, [e for eps in info.epochs for e in eps] + [p for ps in info.planned for p in ps], row=1, col=2)
    fig.update_layout(template=TEMPLATE, height=380,
                      title=dict(text="Divergence (non-finite loss) per variant, with 95% Wilson intervals"))
    return fig


def _rates(info: DivergenceInfo, labels: list[str], colors: list[str]) -> go.Bar:
    rates = [0.0 if math.isnan(r) else r for r in info.rate]
    counts = [f"{k}/{n}" for k, n in zip(info.n_diverged, info.n_finished, strict=True)]
    above = [max(0.0, h - r) if not math.isnan(h) else 0 for h, r in zip(info.high, rates, strict=True)]
    below = [max(0.0, r - lo) if not math.isnan(lo) else 0 for lo, r in zip(info.low, rates, strict=True)]
    return go.Bar(
        x=[f"{lab}<br>{c}" for lab, c in zip(labels, counts, strict=True)], y=rates, marker_color=colors,
        showlegend=False, name="divergence rate", text=counts, textposition="none",
        error_y=dict(type="data", symmetric=False, array=above, arrayminus=below),
        hovertemplate="%{y:.0%} of finished trials (%{text})<extra>95% Wilson interval</extra>",
    )


def plot_divergence(exp: Experiment) -> go.Figure:
    """divergence_figure(divergence_info(exp))."""
    return divergence_figure(divergence_info(exp))
