"""Configurations across seeds: the final values of each configuration's seeds, their mean
with a 95% interval, and the same numbers as a table.

An interval is only honest over repeats of one configuration: in a searching study the trials
of a variant are different configurations the sampler chose, and their spread is the search's,
not the seeds'. So trials are grouped by configuration (the launcher's ``config_group``), and a
study that trained every configuration once gets no interval, but a note.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.charts.data import Sample, axis_title, bounds, configurations, default_metrics, present
from analysis.charts.style import GREY, TEMPLATE, color, empty, grid_layout, rgba
from analysis.experiment import Experiment
from analysis.stats import MIN_SEEDS, t_interval
from trainables.vocabulary import RECONSTRUCTION, VARIANT_NAMES, Outcome, variant_label

_LOSSES = (RECONSTRUCTION, "kl")  # shown after the scores unless told otherwise
_COMPLETED = (Outcome.COMPLETED.value,)
METHOD = ("Student-t 95% interval of the mean over a configuration's seeds, cut to the metric's range "
          "(the true mean lies in it, so the coverage stays 95%)")


class DistributionSummary(NamedTuple):
    metric: str
    group: str          # the configuration
    variant: str
    n: int              # its seeds with a value
    mean: float
    low: float          # 95% t-interval of the mean within the metric's range (NaN when n < 2)
    high: float


class DistributionInfo(NamedTuple):
    metrics: tuple[str, ...]
    groups: tuple[str, ...]                               # configurations, best first (first objective)
    labels: tuple[str, ...]                               # "#12 Soft-Intro-TCVAE" per configuration
    variants: tuple[str, ...]                             # per configuration
    values: tuple[tuple[tuple[float, ...], ...], ...]     # [metric][configuration] -> final values
    trial_ids: tuple[tuple[tuple[str, ...], ...], ...]    # same shape
    seeds: tuple[tuple[tuple[int | None, ...], ...], ...]
    summaries: tuple[DistributionSummary, ...]
    method: str
    sample: Sample                                        # most seeds of one configuration, against MIN_SEEDS
    n_configurations: int                                 # with a completed trial (before ``limit``)


def seed_distributions_info(exp: Experiment, *, metrics: Sequence[str] | None = None,
                            outcomes: Sequence[str] = _COMPLETED, limit: int | None = 12) -> DistributionInfo:
    """Final values of each metric per configuration over its completed seeds, with the mean
    and its 95% t-interval within the metric's range. Configurations with repeated seeds come
    first, then by the study's first objective, best first; ``limit`` of them (None: all).
    Diverged trials have no final metrics: the divergence chart counts them."""
    names = list(metrics) if metrics is not None else default_metrics(exp, scores_only=True) + [
        m for m in _LOSSES if m in exp.trials and exp.trials[m].notna().any()]
    missing = [m for m in names if m not in exp.trials]
    if missing:
        raise ValueError(f"metrics: {missing[0]!r} is not a column of the trials table; "
                         f"use some of {', '.join(exp.metrics)}")
    t = exp.trials.loc[exp.trials["outcome"].isin(list(outcomes))]
    t = t.assign(_config=configurations(t))
    groups = _ordered_groups(exp, t)
    shown = groups[:limit] if limit is not None else groups
    parts = {g: t.loc[t["_config"] == g] for g in shown}
    values, ids, seeds, summaries = [], [], [], []
    for m in names:
        finite = {g: p.loc[np.isfinite(p[m].astype("float64"))] for g, p in parts.items()}
        values.append(tuple(tuple(float(x) for x in finite[g][m]) for g in shown))
        ids.append(tuple(tuple(str(x) for x in finite[g]["trial_id"]) for g in shown))
        seeds.append(tuple(tuple(int(s) if present(s) else None for s in finite[g]["seed"]) for g in shown))
        summaries += [DistributionSummary(m, g, _variant(parts[g]), len(vals),
                                          *t_interval(vals, lower=bounds(m)[0], upper=bounds(m)[1]))
                      for g, vals in zip(shown, values[-1], strict=True)]
    most = int(t.groupby("_config").size().max()) if len(t) else 0
    return DistributionInfo(
        tuple(names), tuple(shown), tuple(_label(g, parts[g]) for g in shown),
        tuple(_variant(parts[g]) for g in shown), tuple(values), tuple(ids), tuple(seeds), tuple(summaries),
        METHOD, Sample(most, MIN_SEEDS, "seeds of one configuration"), len(groups))


def _ordered_groups(exp: Experiment, t: pd.DataFrame) -> list[str]:
    """Configurations with repeated seeds first, then by the mean of the study's first objective
    (best first), then in launch order."""
    if t.empty:
        return []
    first = next((o for o in exp.objectives if o.metric in t), None)
    per = t.groupby("_config", sort=False).agg(n=("trial_id", "size"), start=("trial_number", "min"),
                                               **({"value": (first.metric, "mean")} if first else {}))
    per["repeated"] = per["n"] >= MIN_SEEDS
    by, ascending = ["repeated", "start"], [False, True]
    if first is not None:
        by.insert(1, "value")
        ascending.insert(1, first.direction != "maximize")
    return [str(g) for g in per.sort_values(by, ascending=ascending, na_position="last", kind="stable").index]


def _variant(part: pd.DataFrame) -> str:
    v = part["variant"].dropna()
    return str(v.iloc[0]) if len(v) else ""


def _label(group: str, part: pd.DataFrame) -> str:
    """"#12 Soft-Intro-TCVAE": the configuration's first Optuna number (its config_group), or its
    first trial's number, and its variant."""
    number = part["config_group"].dropna() if "config_group" in part else pd.Series([], dtype="float64")
    head = f"#{int(number.iloc[0])}" if len(number) else f"trial {part['trial_id'].iloc[0]}"
    return f"{head} {variant_label(_variant(part))}"


def seed_distributions_figure(info: DistributionInfo, *, columns: int = 3) -> go.Figure:
    """One panel per metric: each configuration's seeds as points (one trace per variant) and,
    from two seeds on, the mean with its interval (one trace); grey with a note when no
    configuration has two seeds."""
    n = max(1, len(info.metrics))
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    height, spacing = grid_layout(rows, panel=240, gap=120)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[axis_title(m) for m in info.metrics] or [""],
                        horizontal_spacing=0.07, vertical_spacing=spacing)
    summary = {(s.metric, s.group): s for s in info.summaries}
    for i, m in enumerate(info.metrics):
        where = dict(row=i // cols + 1, col=i % cols + 1)
        for v in dict.fromkeys(info.variants):
            mine = [j for j, kind in enumerate(info.variants) if kind == v and info.values[i][j]]
            if mine:
                fig.add_trace(_points(info, i, mine, legend=i == 0), **where)
        means = [summary[(m, g)] for g in info.groups if summary[(m, g)].n >= MIN_SEEDS]
        if means:
            fig.add_trace(_means(info, means, legend=i == 0), **where)
    if not any(any(vs) for vs in info.values):
        empty(fig, "no completed trial yet")
    note = "" if info.sample.enough else f"<br><sup>{info.sample.note()}</sup>"
    more = info.n_configurations - len(info.groups)
    fig.update_layout(template=TEMPLATE, height=height, boxmode="overlay",
                      title=dict(text="Configurations across seeds: points are seeds, diamonds the mean with its "
                                      f"95% interval{f' ({more} more configurations not shown)' if more > 0 else ''}"
                                      + note))
    fig.update_xaxes(tickangle=-30, categoryorder="array", categoryarray=list(info.labels))
    return fig


def _points(info: DistributionInfo, i: int, groups: list[int], *, legend: bool) -> go.Box:
    """The seeds of one variant's configurations in one panel."""
    m, v = info.metrics[i], info.variants[groups[0]]
    hue = color(v, VARIANT_NAMES) if info.sample.enough else GREY
    ys = [y for j in groups for y in info.values[i][j]]
    return go.Box(
        y=ys, x=[info.labels[j] for j in groups for _ in info.values[i][j]], name=variant_label(v), legendgroup=v,
        showlegend=legend, boxpoints="all", jitter=0.45, pointpos=0, marker=dict(color=hue, size=7, opacity=0.85),
        line=dict(width=1, color=rgba(hue, 0.5)), fillcolor="rgba(0,0,0,0)",
        customdata=[f"{info.labels[j]}: trial {t}, seed {s}" for j in groups
                    for t, s in zip(info.trial_ids[i][j], info.seeds[i][j], strict=True)],
        hovertemplate="%{customdata}<br>" + m + ": %{y:.4g}<extra></extra>",
    )


def _means(info: DistributionInfo, means: list[DistributionSummary], *, legend: bool) -> go.Scatter:
    labels = [info.labels[info.groups.index(s.group)] for s in means]
    return go.Scatter(
        x=labels, y=[s.mean for s in means], mode="markers", name="mean, 95% interval", legendgroup="mean",
        showlegend=legend, marker=dict(color="#111111", size=11, symbol="diamond-wide"),
        error_y=dict(type="data", symmetric=False, array=[s.high - s.mean for s in means],
                     arrayminus=[s.mean - s.low for s in means], color="#111111", thickness=2, width=8),
        customdata=[f"[{s.low:.4g}, {s.high:.4g}], n = {s.n} seeds" for s in means],
        hovertemplate="%{x}: mean %{y:.4g} %{customdata}<extra></extra>",
    )


def plot_seed_distributions(exp: Experiment, **kwargs: Any) -> go.Figure:
    """seed_distributions_figure(seed_distributions_info(exp, **kwargs))."""
    return seed_distributions_figure(seed_distributions_info(exp, **kwargs))


def comparison_table(exp: Experiment, *, metrics: Sequence[str] | None = None,
                     outcomes: Sequence[str] = _COMPLETED, limit: int | None = 12) -> pd.DataFrame:
    """One row per configuration (best first): its variant, seeds n and, per metric, the mean
    and the 95% t-interval within the metric's range over its seeds."""
    info = seed_distributions_info(exp, metrics=metrics, outcomes=outcomes, limit=limit)
    rows = []
    for g, label, v in zip(info.groups, info.labels, info.variants, strict=True):
        row: dict[str, Any] = {"configuration": g, "label": label, "variant": v, "n": 0}
        for s in info.summaries:
            if s.group == g:
                row["n"] = max(row["n"], s.n)
                row[f"{s.metric}_mean"], row[f"{s.metric}_low"], row[f"{s.metric}_high"] = s.mean, s.low, s.high
        rows.append(row)
    return pd.DataFrame(rows)
