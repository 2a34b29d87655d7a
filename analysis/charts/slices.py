"""Slice plots: each objective against each searched parameter, one point per trial, coloured by
trial number (later trials darker: where the sampler went). optuna-dashboard's "slice"."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import plotly.graph_objects as go
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from plotly.subplots import make_subplots

from analysis.charts.data import axis_title, log_ticks, present, scored, spans_decades
from analysis.charts.style import TEMPLATE, empty
from analysis.experiment import Experiment
from trainables.vocabulary import variant_label

_NUMBER_SCALE = [[0.0, "#9ecae1"], [1.0, "#08306b"]]  # trial number: light (early) to dark (late), never white


class SliceInfo(NamedTuple):
    params: tuple[str, ...]
    objectives: tuple[str, ...]
    maximize: tuple[bool, ...]
    x: tuple[tuple[Any, ...], ...]             # per param: its value per trial (None: the trial lacks it)
    y: tuple[tuple[float, ...], ...]           # per objective: its value per trial
    trial_ids: tuple[str, ...]                 # the scored trials with every objective, in launch order
    numbers: tuple[int, ...]                   # their trial numbers (the colour)
    log: tuple[bool, ...]                      # per param: a log axis (log distribution)
    categories: tuple[tuple[str, ...] | None, ...]  # per param: a categorical one's values in the space's order
    y_log: tuple[bool, ...]                    # per objective


def slice_info(exp: Experiment, *, params: Sequence[str] | None = None,
               objectives: Sequence[str] | None = None) -> SliceInfo:
    """The completed (and scheduler-stopped) trials with a value of every objective; each
    searched parameter's value per trial (variants by their label)."""
    objs = list(objectives) if objectives is not None else [o.metric for o in exp.objectives if o.metric in exp.trials]
    columns = exp.searched_columns()
    names = [p for p in (params if params is not None else columns) if p in columns]
    pts = scored(exp, objs).sort_values("trial_number")
    xs, logs, cats = [], [], []
    for p in names:
        dist = exp.searched.get(p)
        cat = isinstance(dist, CategoricalDistribution) or p == "variant"
        text = variant_label if p == "variant" else str
        xs.append(tuple((text(v) if cat else float(v)) if present(v) else None for v in pts[columns[p]]))
        logs.append(isinstance(dist, (FloatDistribution, IntDistribution)) and dist.log)
        choices = list(dist.choices) if isinstance(dist, CategoricalDistribution) else sorted(
            {v for v in pts[columns[p]] if present(v)}, key=str)
        cats.append(tuple(text(c) for c in choices) if cat else None)
    ys = tuple(tuple(float(v) for v in pts[o]) for o in objs)
    return SliceInfo(tuple(names), tuple(objs), tuple(exp.direction(o) == "maximize" for o in objs), tuple(xs), ys,
                     tuple(str(i) for i in pts["trial_id"]), tuple(int(n) for n in pts["trial_number"]),
                     tuple(logs), tuple(cats), tuple(spans_decades(y) for y in ys))


def slice_figure(info: SliceInfo, *, columns: int = 5) -> go.Figure:
    """Per objective a block of panels, one per parameter (``columns`` to a row); one colour
    scale (trial number) for all; each point's customdata is its trial id."""
    cols = max(1, min(columns, len(info.params)))
    per_objective = max(1, math.ceil(len(info.params) / cols))
    rows = max(1, per_objective * len(info.objectives))
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.04, vertical_spacing=min(0.12, 0.5 / rows),
                        shared_yaxes=True)
    for i, o in enumerate(info.objectives):
        for j, p in enumerate(info.params):
            where = dict(row=i * per_objective + j // cols + 1, col=j % cols + 1)
            have = [k for k, v in enumerate(info.x[j]) if v is not None]
            fig.add_trace(go.Scatter(
                x=[info.x[j][k] for k in have], y=[info.y[i][k] for k in have], mode="markers", name=p,
                showlegend=False, customdata=[info.trial_ids[k] for k in have],
                marker=dict(color=[info.numbers[k] for k in have], coloraxis="coloraxis", size=7,
                            line=dict(width=0.5, color="#333333")),
                hovertemplate=f"trial %{{customdata}}<br>{p}: %{{x}}<br>{o}: %{{y:.4g}}<extra></extra>"), **where)
            order = info.categories[j]
            fig.update_xaxes(title_text=p, title_standoff=2, nticks=5, exponentformat="e",
                             **(_round_ticks(info.x[j]) if info.log[j] and not order else {}),
                             type="category" if order else "log" if info.log[j] else "linear",
                             **(dict(categoryorder="array", categoryarray=list(order)) if order else {}), **where)
            if j % cols == 0:
                fig.update_yaxes(title_text=axis_title(o, info.maximize[i], short=True), title_font=dict(size=11),
                                 **where)
            fig.update_yaxes(type="log" if info.y_log[i] else "linear", **where)
    if not info.trial_ids or not info.params:
        empty(fig, "no completed trial yet" if info.params else "no searched parameter")
    fig.update_layout(template=TEMPLATE, height=120 + 250 * rows, margin=dict(t=90),
                      coloraxis=dict(colorscale=_NUMBER_SCALE, colorbar=dict(title=dict(text="trial #"))),
                      title=dict(text="Each objective against each searched parameter<br><sup>one point per "
                                      "completed trial, darker = later in the search</sup>"))
    return fig


def _round_ticks(values: Sequence[Any]) -> dict[str, Any]:
    """Ticks at round values (1, 2, 5 per decade) of a log axis: Plotly's own label only the digits."""
    shown = [v for v in values if v is not None and v > 0]
    ticks = log_ticks(min(shown), max(shown)) if shown else []
    return dict(tickvals=ticks, ticktext=[f"{v:g}" for v in ticks]) if len(ticks) >= 2 else {}


def plot_slices(exp: Experiment, **kwargs: Any) -> go.Figure:
    """slice_figure(slice_info(exp, **kwargs))."""
    return slice_figure(slice_info(exp, **kwargs))
