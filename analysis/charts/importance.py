"""Parameter importance per objective: optuna.importance on a study rebuilt from the trials."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import optuna
import plotly.graph_objects as go
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.importance import (
    BaseImportanceEvaluator,
    FanovaImportanceEvaluator,
    PedAnovaImportanceEvaluator,
    get_param_importances,
)

from analysis.charts.data import present, scored, variants
from analysis.charts.style import TEMPLATE, empty
from analysis.experiment import Experiment

_FANOVA_LIMIT = 300  # fANOVA's forests take minutes past a few hundred trials: PED-ANOVA beyond
_PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")


class ImportanceInfo(NamedTuple):
    objectives: tuple[str, ...]
    params: tuple[str, ...]                           # union over objectives, most important first
    importances: tuple[tuple[float, ...], ...]        # per objective, one value per param (NaN: n/a)
    n_trials: tuple[int, ...]                         # trials used per objective
    messages: tuple[str, ...]                         # per objective: "" or why it is missing
    evaluator: str
    left_out: tuple[str, ...]                         # conditional or constant parameters


def param_importances_info(exp: Experiment, *, objectives: Sequence[str] | None = None,
                           evaluator: BaseImportanceEvaluator | None = None,
                           variant: str | None = None) -> ImportanceInfo:
    """Importance of each searched parameter for each objective, from the completed (and
    scheduler-stopped) trials. Default evaluator: fANOVA with a fixed seed (deterministic), or
    PED-ANOVA (fast) beyond 300 trials. Conditional parameters (used by some variants only) and
    parameters that never varied are left out: Optuna's evaluators need every trial to have
    every parameter. With ``variant``, only that variant's trials count, and its own
    conditional parameters are included."""
    if variant is not None:
        exp = _one_variant(exp, variant)
    if evaluator is None:
        fast = len(scored(exp, [])) > _FANOVA_LIMIT
        evaluator = PedAnovaImportanceEvaluator() if fast else FanovaImportanceEvaluator(seed=0)
    objs = list(objectives) if objectives is not None else [o.metric for o in exp.objectives]
    objs = [o for o in objs if o in exp.trials]
    varied = scored(exp, [])
    params = [p for p in exp.searched if p not in exp.conditional and f"config/{p}" in exp.trials
              and varied[f"config/{p}"].nunique(dropna=True) >= 2]
    table: dict[str, dict[str, float]] = {}
    counts, messages = [], []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for o in objs:
        study, n = _study_for(exp, o, params) if params else (None, 0)
        counts.append(n)
        if not params:
            messages.append("no searched parameter varied")
        elif n < 2:
            messages.append(f"{n} completed trial(s): at least 2 needed")
        else:
            try:
                table[o] = get_param_importances(study, evaluator=evaluator, params=params)
                messages.append("")
            except (RuntimeError, ValueError) as exc:
                messages.append(str(exc).splitlines()[0])
    ranked = sorted(params, key=lambda p: -sum(table[o].get(p, 0.0) for o in table))
    return ImportanceInfo(
        objectives=tuple(objs), params=tuple(ranked),
        importances=tuple(tuple(float(table[o].get(p, np.nan)) if o in table else float("nan") for p in ranked)
                          for o in objs),
        n_trials=tuple(counts), messages=tuple(messages), evaluator=type(evaluator).__name__,
        left_out=tuple(p for p in exp.searched if p not in params),
    )


def _one_variant(exp: Experiment, variant: str) -> Experiment:
    """The experiment restricted to one variant; its own conditional parameters become plain ones."""
    if variant not in set(exp.trials["variant"].dropna()):
        raise ValueError(f"variant={variant!r} has no trials; use one of {', '.join(variants(exp.trials))}")
    sub = exp.trials.loc[exp.trials["variant"] == variant]
    own = tuple(p for p in exp.conditional if f"config/{p}" in sub and sub[f"config/{p}"].notna().all())
    return dataclasses.replace(exp, trials=sub, conditional=tuple(p for p in exp.conditional if p not in own))


def _study_for(exp: Experiment, objective: str, params: list[str]) -> tuple[optuna.Study, int]:
    """An in-memory study of the scored trials whose every parameter lies in its distribution."""
    dists = {p: exp.searched[p] for p in params}
    study = optuna.create_study(direction=exp.direction(objective))
    n = 0
    for _, row in scored(exp, [objective]).iterrows():
        values = {p: _value(dists[p], row.get(f"config/{p}")) for p in params}
        if all(v is not None for v in values.values()):
            study.add_trial(optuna.trial.create_trial(params=values, distributions=dists, value=float(row[objective])))
            n += 1
    return study, n


def _value(dist: BaseDistribution, v: Any) -> Any:
    """A table value as the distribution's type, or None when missing or outside it."""
    if not present(v):
        return None
    if isinstance(dist, IntDistribution):
        v = int(v)
    elif isinstance(dist, FloatDistribution):
        v = float(v)
    elif isinstance(dist, CategoricalDistribution):
        v = next((c for c in dist.choices if str(c) == str(v)), v)
        return v if v in dist.choices else None
    return v if dist.low <= v <= dist.high else None


def param_importances_figure(info: ImportanceInfo) -> go.Figure:
    """Horizontal bars, one trace per objective; the most important parameter on top."""
    fig = go.Figure()
    for i, o in enumerate(info.objectives):
        vals = info.importances[i]
        if info.messages[i] or not info.params:
            continue
        fig.add_trace(go.Bar(
            y=list(info.params)[::-1], x=list(vals)[::-1], orientation="h", name=f"{o} ({info.n_trials[i]} trials)",
            marker_color=_PALETTE[i % len(_PALETTE)], text=[f"{v:.2f}" for v in vals][::-1], textposition="outside",
            hovertemplate="%{y}: %{x:.3f}<extra>" + o + "</extra>",
        ))
    notes = [f"{o}: {m}" for o, m in zip(info.objectives, info.messages, strict=True) if m]
    if info.left_out:
        notes.append("left out (conditional or constant): " + ", ".join(info.left_out))
    if not fig.data:
        empty(fig, "not enough completed trials for importances")
    fig.update_layout(
        template=TEMPLATE, barmode="group", height=max(320, 90 + 45 * len(info.params) * max(1, len(fig.data))),
        yaxis=dict(automargin=True),
        title=dict(text=f"Parameter importance per objective ({info.evaluator.replace('ImportanceEvaluator', '')})"
                        + (f"<br><sup>{'; '.join(notes)}</sup>" if notes else "")),
        xaxis=dict(title="importance (sums to 1 per objective)", range=[0, 1.1]), legend=dict(title="objective"),
    )
    return fig


def plot_param_importances(exp: Experiment, **kwargs: Any) -> go.Figure:
    """param_importances_figure(param_importances_info(exp, **kwargs))."""
    return param_importances_figure(param_importances_info(exp, **kwargs))
