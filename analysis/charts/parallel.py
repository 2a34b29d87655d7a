"""Parallel coordinates over the searched parameters and the objectives, coloured by each objective."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from analysis.charts.data import default_metrics, scored
from analysis.charts.style import TEMPLATE, empty
from analysis.experiment import Experiment
from trainables.vocabulary import RECONSTRUCTION, variant_label


class ParallelDimension(NamedTuple):
    label: str
    values: tuple[float, ...]              # plotted values (log10 for log-scaled parameters)
    tickvals: tuple[float, ...] | None     # categorical codes or powers of ten
    ticktext: tuple[str, ...] | None


class ParallelInfo(NamedTuple):
    trial_ids: tuple[str, ...]
    dimensions: tuple[ParallelDimension, ...]   # searched parameters, then the objectives
    objectives: tuple[str, ...]                 # colour choices, in menu order
    colors: tuple[tuple[float, ...], ...]       # per objective, one value per trial
    lower_is_better: tuple[bool, ...]           # per objective
    conditional: tuple[str, ...]                # parameters only some variants use


def parallel_coordinates_info(exp: Experiment, *, params: Sequence[str] | None = None,
                              objectives: Sequence[str] | None = None) -> ParallelInfo:
    """One line per scored trial (completed or stopped) with finite objective values; axes are
    the searched parameters (their configured values) and then the objectives."""
    objs = list(objectives) if objectives is not None else [o.metric for o in exp.objectives]
    objs = [o for o in objs if o in exp.trials]
    if not objs:
        objs = default_metrics(exp, scores_only=True)[:1] + ([RECONSTRUCTION] if RECONSTRUCTION in exp.trials else [])
    names = list(params) if params is not None else list(exp.searched)
    names = [p for p in names if f"config/{p}" in exp.trials]
    pts = scored(exp, objs)
    dims = [_dimension(p, pts[f"config/{p}"], exp.searched.get(p)) for p in names]
    dims += [ParallelDimension(o, tuple(float(v) for v in pts[o]), None, None) for o in objs]
    return ParallelInfo(
        trial_ids=tuple(str(i) for i in pts["trial_id"]), dimensions=tuple(dims), objectives=tuple(objs),
        colors=tuple(tuple(float(v) for v in pts[o]) for o in objs),
        lower_is_better=tuple(exp.direction(o) == "minimize" for o in objs),
        conditional=tuple(p for p in exp.conditional if p in names),
    )


def _dimension(name: str, values: pd.Series, dist: BaseDistribution | None) -> ParallelDimension:
    """One axis; a parameter a trial does not have (conditional: tc_weight of a beta-VAE) sits
    on its own "n/a" tick below the others."""
    if isinstance(dist, CategoricalDistribution) or not pd.api.types.is_numeric_dtype(values) \
            or pd.api.types.is_bool_dtype(values):
        return _categorical(name, values, dist)
    return _numeric(name, values, dist)


def _categorical(name: str, values: pd.Series, dist: BaseDistribution | None) -> ParallelDimension:
    """Choices become codes 0, 1, ... with their labels (the distribution's order first)."""
    missing = values.isna().to_numpy()
    choices = list(dist.choices) if isinstance(dist, CategoricalDistribution) else []
    choices += [c for c in values.dropna().unique().tolist() if str(c) not in map(str, choices)]
    text = [variant_label(c) if name == "variant" else str(c) for c in choices]
    code = {str(c): i for i, c in enumerate(choices)}
    plotted = [float(code[str(v)]) if not m else -1.0 for v, m in zip(values, missing, strict=True)]
    ticks = list(range(len(choices)))
    if missing.any():
        ticks, text = [-1, *ticks], ["n/a", *text]
    return ParallelDimension(name, tuple(plotted), tuple(float(i) for i in ticks), tuple(text))


def _numeric(name: str, values: pd.Series, dist: BaseDistribution | None) -> ParallelDimension:
    """Log-scaled parameters are drawn as log10 with ticks at round values; others linear."""
    missing = values.isna().to_numpy()
    nums = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()
    known = nums[~missing]
    log = (isinstance(dist, (FloatDistribution, IntDistribution)) and dist.log and len(known) > 0
           and bool((known > 0).all()))
    shown = np.log10(np.where(missing, 1.0, nums)) if log else nums.copy()
    tickvals: list[float] | None = None
    ticktext: list[str] | None = None
    if log:
        tickvals, ticktext = _log_ticks(float(known.min()), float(known.max()))
    if missing.any():
        top = float(np.nanmax(shown[~missing])) if (~missing).any() else 1.0
        bottom = float(np.nanmin(shown[~missing])) if (~missing).any() else 0.0
        na = bottom - 0.15 * ((top - bottom) or 1.0)
        shown[missing] = na
        if tickvals is None:  # a linear axis: a few round ticks plus n/a
            tickvals = [float(v) for v in np.linspace(bottom, top, 4)] if top > bottom else [bottom]
            ticktext = [f"{v:.3g}" for v in tickvals]
        tickvals, ticktext = [na, *tickvals], ["n/a", *(ticktext or [])]
    return ParallelDimension(f"{name} (log)" if log else name, tuple(float(v) for v in shown),
                             tuple(tickvals) if tickvals is not None else None,
                             tuple(ticktext) if ticktext is not None else None)


def _log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Ticks for a log10 axis over [lo, hi] (positions, labels): both ends (parcoords draws an
    axis only between its outer ticks) and, between them, round values 1-2-5 (or 1-3, or 1)
    times a power of ten that are not crowding an end; at most about seven."""
    a, b = math.log10(lo), math.log10(hi)
    inner: list[float] = []
    for steps in ((1.0, 2.0, 5.0), (1.0, 3.0), (1.0,)):
        inner = [m * 10.0 ** d for d in range(math.floor(a), math.ceil(b) + 1) for m in steps]
        inner = [v for v in inner if a + 0.06 * (b - a) < math.log10(v) < b - 0.06 * (b - a)]
        if len(inner) <= 5:
            break
    vals = sorted({lo, hi}) if hi > lo else [lo]
    labels = [f"{v:.4g}" for v in vals]
    if hi > lo:
        vals, labels = [lo, *inner, hi], [labels[0], *(f"{v:g}" for v in inner), labels[-1]]
    return [math.log10(v) for v in vals], labels


def parallel_coordinates_figure(info: ParallelInfo) -> go.Figure:
    """One Parcoords trace; a menu switches the colouring between objectives (bright = better)."""
    def line(i: int) -> dict[str, Any]:
        return dict(color=list(info.colors[i]), colorscale="Viridis", reversescale=info.lower_is_better[i],
                    showscale=True, colorbar=dict(title=dict(text=info.objectives[i])))

    fig = go.Figure()
    if info.trial_ids and info.objectives:
        dims = []
        for d in info.dimensions:
            dim: dict[str, Any] = dict(label=d.label, values=list(d.values))
            if d.tickvals is not None:
                dim.update(tickvals=list(d.tickvals), ticktext=list(d.ticktext or ()))
            dims.append(dim)
        fig.add_trace(go.Parcoords(dimensions=dims, line=line(0), labelangle=-20, labelside="bottom"))
        buttons = [dict(label=f"colour: {o}", method="restyle",
                        args=[{"line.color": [list(info.colors[i])], "line.reversescale": [info.lower_is_better[i]],
                               "line.colorbar.title.text": [o]}])
                   for i, o in enumerate(info.objectives)]
        fig.update_layout(updatemenus=[dict(buttons=buttons, direction="down", x=1.0, xanchor="right",
                                            y=1.0, yanchor="bottom", pad=dict(b=40), showactive=True)])
    else:
        empty(fig, "no completed trial yet")
    sub = f"{len(info.trial_ids)} completed trials; drag along an axis to filter"
    if info.conditional:
        sub += f"; {', '.join(info.conditional)} apply to some variants only (n/a: not used)"
    fig.update_layout(template=TEMPLATE, height=580, margin=dict(t=170, b=80, l=120, r=60),
                      title=dict(text=f"Searched parameters and objectives<br><sup>{sub}</sup>", y=0.97, yanchor="top"))
    return fig


def plot_parallel_coordinates(exp: Experiment, **kwargs: Any) -> go.Figure:
    """parallel_coordinates_figure(parallel_coordinates_info(exp, **kwargs))."""
    return parallel_coordinates_figure(parallel_coordinates_info(exp, **kwargs))
