"""Each objective against the trial number, with the best value so far: is the search improving?
(optuna-dashboard's and W&B sweeps' "optimization history".)"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.charts.data import axis_title, ordered_variants, scored, spans_decades
from analysis.charts.style import TEMPLATE, color, empty
from analysis.experiment import Experiment
from trainables.vocabulary import FAILED_OUTCOMES, variant_label


class HistoryInfo(NamedTuple):
    objectives: tuple[str, ...]
    maximize: tuple[bool, ...]
    numbers: tuple[tuple[int, ...], ...]       # per objective: trial numbers (launch order) of the scored trials
    values: tuple[tuple[float, ...], ...]
    trial_ids: tuple[tuple[str, ...], ...]
    variants: tuple[tuple[str, ...], ...]
    best: tuple[tuple[float, ...], ...]        # the best value up to and including each trial
    last_improved: tuple[int | None, ...]      # the trial number that set the best so far
    log: tuple[bool, ...]                      # values spanning two decades: a log axis
    n_failed: int                              # diverged or failed trials (no values)


def optimization_history_info(exp: Experiment) -> HistoryInfo:
    """Per objective of the study, the completed (and scheduler-stopped) trials in launch order
    with their value and the running best."""
    objs = [o for o in exp.objectives if o.metric in exp.trials]
    numbers, values, ids, kinds, best, last, logs = [], [], [], [], [], [], []
    for o in objs:
        pts = scored(exp, [o.metric]).sort_values("trial_number")
        v = pts[o.metric].astype("float64").to_numpy()
        running = (np.maximum if o.direction == "maximize" else np.minimum).accumulate(v) if len(v) else v
        numbers.append(tuple(int(n) for n in pts["trial_number"]))
        values.append(tuple(float(x) for x in v))
        ids.append(tuple(str(i) for i in pts["trial_id"]))
        kinds.append(tuple(str(x) for x in pts["variant"]))
        best.append(tuple(float(x) for x in running))
        changed = np.flatnonzero(np.r_[True, running[1:] != running[:-1]]) if len(v) else []
        last.append(numbers[-1][int(changed[-1])] if len(changed) else None)
        logs.append(spans_decades(v))
    return HistoryInfo(tuple(o.metric for o in objs), tuple(o.direction == "maximize" for o in objs), tuple(numbers),
                       tuple(values), tuple(ids), tuple(kinds), tuple(best), tuple(last), tuple(logs),
                       int(exp.trials["outcome"].isin(FAILED_OUTCOMES).sum()))


def optimization_history_figure(info: HistoryInfo) -> go.Figure:
    """One panel per objective: trials as points coloured by variant, the best so far as a step line."""
    n = max(1, len(info.objectives))
    fig = make_subplots(rows=n, cols=1, shared_xaxes=True, vertical_spacing=0.12 if n > 1 else 0.0,
                        subplot_titles=[_subtitle(info, i) for i in range(len(info.objectives))] or [""])
    order = ordered_variants([v for kinds in info.variants for v in kinds])
    shown: set[str] = set()
    for i, metric in enumerate(info.objectives):
        for v in order:
            sel = [k for k, kind in enumerate(info.variants[i]) if kind == v]
            if sel:
                fig.add_trace(go.Scatter(
                    x=[info.numbers[i][k] for k in sel], y=[info.values[i][k] for k in sel], mode="markers",
                    name=variant_label(v), legendgroup=v, showlegend=v not in shown,
                    marker=dict(color=color(v, order), size=8, opacity=0.8),
                    customdata=[info.trial_ids[i][k] for k in sel],
                    hovertemplate=f"trial %{{customdata}} (#%{{x}})<br>{metric}: %{{y:.4g}}<extra></extra>",
                ), row=i + 1, col=1)
                shown.add(v)
        fig.add_trace(go.Scatter(x=list(info.numbers[i]), y=list(info.best[i]), mode="lines", name="best so far",
                                 legendgroup="best", showlegend=i == 0, line=dict(color="#111111", width=2, shape="hv"),
                                 hoverinfo="skip"), row=i + 1, col=1)
        fig.update_yaxes(title_text=axis_title(metric, info.maximize[i], short=True), title_font=dict(size=12),
                         type="log" if info.log[i] else "linear", row=i + 1, col=1)
    if not any(info.numbers):
        empty(fig, "no completed trial yet")
    fig.update_xaxes(tickformat="d", rangemode="tozero")
    fig.update_xaxes(title_text="trial number (launch order)", row=n, col=1)
    failed = f"; {info.n_failed} diverged or failed trials have no values" if info.n_failed else ""
    fig.update_layout(template=TEMPLATE, height=140 + 280 * n, legend=dict(title="variant"),
                      title=dict(text=f"Objectives by trial number, with the best so far<br><sup>completed trials"
                                      f"{failed}</sup>"))
    return fig


def _subtitle(info: HistoryInfo, i: int) -> str:
    last = info.last_improved[i]
    if last is None:
        return info.objectives[i]
    total = info.numbers[i][-1] if info.numbers[i] else 0
    return f"{info.objectives[i]}: best so far set by trial #{last} (of #{total})"


def plot_optimization_history(exp: Experiment, **kwargs: Any) -> go.Figure:
    """optimization_history_figure(optimization_history_info(exp, **kwargs))."""
    return optimization_history_figure(optimization_history_info(exp, **kwargs))
