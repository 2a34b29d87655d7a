"""Parallel coordinates over the searched parameters and the objectives, coloured by each objective."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from analysis.charts.data import default_metrics, log_ticks, scored
from analysis.charts.style import TEMPLATE, empty
from analysis.experiment import Experiment
from trainables.vocabulary import METRICS, RECONSTRUCTION, variant_label


class ParallelDimension(NamedTuple):
    label: str
    values: tuple[float, ...]              # plotted values (log10 for log-scaled parameters)
    tickvals: tuple[float, ...]            # categorical codes, round values or powers of ten, both ends included
    ticktext: tuple[str, ...]
    range: tuple[float, float]             # the axis: fixed, so one value sits in its middle, not at the title


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
    names = [p for p in names if exp.param_column(p) is not None]
    pts = scored(exp, objs)
    dims = [_dimension(p, pts[exp.param_column(p)], exp.searched.get(p)) for p in names]
    dims += [_objective(o, pts[o]) for o in objs]
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
    ticks = [float(i) for i in range(len(choices))]
    if missing.any():
        ticks, text = [-1.0, *ticks], ["n/a", *text]
    return ParallelDimension(name, tuple(plotted), tuple(ticks), tuple(text), _range(ticks))


def _numeric(name: str, values: pd.Series, dist: BaseDistribution | None) -> ParallelDimension:
    """Log-scaled parameters are drawn as log10 with ticks at round values; others linear."""
    missing = values.isna().to_numpy()
    nums = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()
    known = nums[~missing]
    log = (isinstance(dist, (FloatDistribution, IntDistribution)) and dist.log and len(known) > 0
           and bool((known > 0).all()))
    shown = np.log10(np.where(missing, 1.0, nums)) if log else nums.copy()
    lo, hi = (float(known.min()), float(known.max())) if len(known) else (0.0, 1.0)
    tickvals, ticktext = _log_ticks(lo, hi) if log else _linear_ticks(lo, hi)
    if missing.any():
        bottom, top = min(tickvals), max(tickvals)
        na = bottom - 0.15 * ((top - bottom) or 1.0)
        shown[missing] = na
        tickvals, ticktext = [na, *tickvals], ["n/a", *ticktext]
    return ParallelDimension(f"{name} (log)" if log else name, tuple(float(v) for v in shown), tuple(tickvals),
                             tuple(ticktext), _range(tickvals))


def _objective(metric: str, values: pd.Series) -> ParallelDimension:
    """An objective's axis, labelled with its unit."""
    nums = values.astype("float64").to_numpy()
    ticks, text = _linear_ticks(float(nums.min()), float(nums.max())) if len(nums) else ([0.0], ["0"])
    unit = METRICS[metric].unit if metric in METRICS else ""
    return ParallelDimension(f"{metric} [{unit}]" if unit else metric, tuple(float(v) for v in nums), tuple(ticks),
                             tuple(text), _range(ticks))


def _range(ticks: Sequence[float]) -> tuple[float, float]:
    """The outer ticks; one value alone gets half a unit either side."""
    lo, hi = min(ticks), max(ticks)
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def _linear_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Both ends and up to three round values between them (the ends are labelled by the ticks:
    parcoords' own range labels are hidden, they collide with the axis names)."""
    if not hi > lo:
        return [lo], [f"{lo:.4g}"]
    step = 10.0 ** math.floor(math.log10((hi - lo) / 3))
    step *= next(m for m in (1, 2, 5, 10) if (hi - lo) / (m * step) <= 4)
    inner = [k * step for k in range(math.ceil(lo / step), math.floor(hi / step) + 1)]
    inner = [v for v in inner if lo + 0.12 * (hi - lo) < v < hi - 0.12 * (hi - lo)]
    return [lo, *inner, hi], [f"{lo:.4g}", *(f"{v:g}" for v in inner), f"{hi:.4g}"]


def _log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Ticks for a log10 axis over [lo, hi] (positions, labels): both ends (parcoords draws an
    axis only between its outer ticks) and round values between them not crowding an end."""
    if not hi > lo:
        return [math.log10(lo)], [f"{lo:.4g}"]
    inner = [v for v in log_ticks(lo, hi, margin=0.1) if lo < v < hi]
    vals = [lo, *inner, hi]
    return [math.log10(v) for v in vals], [f"{lo:.4g}", *(f"{v:g}" for v in inner), f"{hi:.4g}"]


def parallel_coordinates_figure(info: ParallelInfo) -> go.Figure:
    """One Parcoords trace; a menu switches the colouring between objectives (bright = better).
    ``layout.meta.trial_ids`` names each line's trial: the report filters its table and front
    by the ranges chosen on the axes."""
    def line(i: int) -> dict[str, Any]:
        return dict(color=list(info.colors[i]), colorscale="Viridis", reversescale=info.lower_is_better[i],
                    showscale=True, colorbar=dict(title=dict(text=info.objectives[i]), x=1.02))

    fig = go.Figure()
    if info.trial_ids and info.objectives:
        dims = [dict(label=d.label, values=list(d.values), tickvals=list(d.tickvals), ticktext=list(d.ticktext),
                     range=list(d.range)) for d in info.dimensions]
        fig.add_trace(go.Parcoords(dimensions=dims, line=line(0), labelangle=-20, labelside="top",
                                   labelfont=dict(size=12), tickfont=dict(size=10),
                                   rangefont=dict(size=1, color="rgba(0,0,0,0)")))
        buttons = [dict(label=f"colour: {o}", method="restyle",
                        args=[{"line.color": [list(info.colors[i])], "line.reversescale": [info.lower_is_better[i]],
                               "line.colorbar.title.text": [o]}])
                   for i, o in enumerate(info.objectives)]
        fig.update_layout(updatemenus=[dict(buttons=buttons, direction="down", x=1.0, xanchor="right",
                                            y=1.0, yanchor="bottom", pad=dict(b=60), showactive=True)])
    else:
        empty(fig, "no completed trial yet")
    sub = f"{len(info.trial_ids)} completed trials; drag along an axis to filter the table and the front"
    if info.conditional:
        sub += f"; {', '.join(info.conditional)} apply to some variants only (n/a: not used)"
    fig.update_layout(template=TEMPLATE, height=600, margin=dict(t=190, b=40, l=90, r=110),
                      meta=dict(trial_ids=list(info.trial_ids)),
                      title=dict(text=f"Searched parameters and objectives<br><sup>{sub}</sup>", y=0.97, yanchor="top"))
    return fig


def plot_parallel_coordinates(exp: Experiment, **kwargs: Any) -> go.Figure:
    """parallel_coordinates_figure(parallel_coordinates_info(exp, **kwargs))."""
    return parallel_coordinates_figure(parallel_coordinates_info(exp, **kwargs))
