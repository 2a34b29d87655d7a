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

from analysis.charts.data import Sample, configurations, present, scored, variants
from analysis.charts.style import GREY, TEMPLATE, empty
from analysis.experiment import Experiment
from analysis.stats import importance_trials_needed

_FANOVA_LIMIT = 300  # fANOVA's forests take minutes past a few hundred trials: PED-ANOVA beyond
FANOVA_SEEDS = (0, 1, 2)  # fANOVA's forest is random: three seeds show how much its answer moves
_PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")


class ImportanceInfo(NamedTuple):
    objectives: tuple[str, ...]
    params: tuple[str, ...]                           # union over objectives, most important first
    importances: tuple[tuple[float, ...], ...]        # per objective, one value per param (NaN: n/a)
    low: tuple[tuple[float, ...], ...]                # the same over the evaluator's seeds: least ...
    high: tuple[tuple[float, ...], ...]               # ... and most (= importances with one seed)
    unstable: tuple[str, ...]                         # objectives whose ranking changes with the seed
    n_trials: tuple[int, ...]                         # trials used per objective
    messages: tuple[str, ...]                         # per objective: "" or why it is missing
    evaluator: str
    runs: int                                         # evaluator runs (seeds) behind low and high
    left_out: tuple[str, ...]                         # conditional or constant parameters
    sample: Sample                                    # configurations against what the parameters need


def param_importances_info(exp: Experiment, *, objectives: Sequence[str] | None = None,
                           evaluator: BaseImportanceEvaluator | None = None,
                           variant: str | None = None) -> ImportanceInfo:
    """Importance of each searched parameter for each objective, from the completed (and
    scheduler-stopped) trials. Default evaluator: fANOVA, run with the seeds in ``FANOVA_SEEDS``
    (importances are their mean, ``low``/``high`` their range, and an objective whose ranking
    changes with the seed is ``unstable``), or PED-ANOVA (fast, deterministic) beyond 300
    trials. Conditional parameters (used by some variants only) and parameters that never
    varied are left out: Optuna's evaluators need every trial to have every parameter. With
    ``variant``, only that variant's trials count, and its own conditional parameters are
    included. ``sample``: distinct configurations (a configuration's seeds say nothing about its
    parameters' effect) against what analysis.stats says the parameters need."""
    if variant is not None:
        exp = _one_variant(exp, variant)
    fast = len(scored(exp, [])) > _FANOVA_LIMIT
    evaluators = [evaluator] if evaluator is not None else [PedAnovaImportanceEvaluator()] if fast else [
        FanovaImportanceEvaluator(seed=s) for s in FANOVA_SEEDS]
    objs = list(objectives) if objectives is not None else [o.metric for o in exp.objectives]
    objs = [o for o in objs if o in exp.trials]
    varied = scored(exp, [])
    columns = exp.searched_columns()
    params = [p for p in exp.searched if p not in exp.conditional and p in columns
              and varied[columns[p]].nunique(dropna=True) >= 2]
    runs: dict[str, list[dict[str, float]]] = {}
    counts, messages = [], []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for o in objs:
        study, n = _study_for(exp, o, params) if params else (None, 0)
        counts.append(n)
        message = "no searched parameter varied" if not params else (
            f"{n} completed trial(s): at least 2 needed" if n < 2 else "")
        if not message:
            try:
                runs[o] = [get_param_importances(study, evaluator=e, params=params) for e in evaluators]
            except (RuntimeError, ValueError) as exc:
                message = str(exc).splitlines()[0]
        messages.append(message)
    return _info(exp, objs, params, runs, counts, messages, evaluators)


def _info(exp: Experiment, objs: list[str], params: list[str], runs: dict[str, list[dict[str, float]]],
          counts: list[int], messages: list[str], evaluators: list[BaseImportanceEvaluator]) -> ImportanceInfo:
    """Mean, least and most importance over the runs, and the objectives whose order changed."""
    def over_runs(o: str, how: Any) -> tuple[float, ...]:
        if o not in runs:
            return tuple(float("nan") for _ in params)
        return tuple(float(how([run.get(p, 0.0) for run in runs[o]])) for p in ranked)

    mean = {o: {p: float(np.mean([run.get(p, 0.0) for run in runs[o]])) for p in params} for o in runs}
    ranked = sorted(params, key=lambda p: -sum(mean[o][p] for o in mean))
    unstable = tuple(o for o in runs if len({_order(run, params) for run in runs[o]}) > 1)
    return ImportanceInfo(
        objectives=tuple(objs), params=tuple(ranked),
        importances=tuple(over_runs(o, np.mean) for o in objs), low=tuple(over_runs(o, np.min) for o in objs),
        high=tuple(over_runs(o, np.max) for o in objs), unstable=unstable, n_trials=tuple(counts),
        messages=tuple(messages), evaluator=type(evaluators[0]).__name__, runs=len(evaluators),
        left_out=tuple(p for p in exp.searched if p not in params),
        sample=Sample(int(configurations(scored(exp, [])).nunique()), importance_trials_needed(len(params)),
                      "completed configurations (seeds of one count once)"),
    )


def _order(run: dict[str, float], params: list[str]) -> tuple[str, ...]:
    return tuple(sorted(params, key=lambda p: -run.get(p, 0.0)))


def _one_variant(exp: Experiment, variant: str) -> Experiment:
    """The experiment restricted to one variant; its own conditional parameters become plain ones."""
    if variant not in set(exp.trials["variant"].dropna()):
        raise ValueError(f"variant={variant!r} has no trials; use one of {', '.join(variants(exp.trials))}")
    sub = exp.trials.loc[exp.trials["variant"] == variant]
    columns = exp.searched_columns()
    own = tuple(p for p in exp.conditional if p in columns and sub[columns[p]].notna().all())
    return dataclasses.replace(exp, trials=sub, conditional=tuple(p for p in exp.conditional if p not in own))


def _study_for(exp: Experiment, objective: str, params: list[str]) -> tuple[optuna.Study, int]:
    """An in-memory study of the scored trials whose every parameter lies in its distribution."""
    dists = {p: exp.searched[p] for p in params}
    columns = exp.searched_columns()
    study = optuna.create_study(direction=exp.direction(objective))
    n = 0
    for _, row in scored(exp, [objective]).iterrows():
        values = {p: _value(dists[p], row.get(columns[p])) for p in params}
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
    """Horizontal bars, one trace per objective, the most important parameter on top, with the
    range over the evaluator's seeds; all grey, with a note, when the trials are too few."""
    fig = go.Figure()
    for i, o in enumerate(info.objectives):
        vals = info.importances[i]
        if info.messages[i] or not info.params:
            continue
        spread = [h - v for h, v in zip(info.high[i], vals, strict=True)]
        fig.add_trace(go.Bar(
            y=list(info.params)[::-1], x=list(vals)[::-1], orientation="h", name=f"{o} ({info.n_trials[i]} trials)",
            marker_color=_PALETTE[i % len(_PALETTE)] if info.sample.enough else GREY,
            error_x=dict(type="data", symmetric=False, array=spread[::-1],
                         arrayminus=[v - lo for v, lo in zip(vals, info.low[i], strict=True)][::-1],
                         color="#444444", thickness=1),
            text=[f"{v:.2f}" for v in vals][::-1], textposition="outside",
            hovertemplate="%{y}: %{x:.3f}<extra>" + o + "</extra>",
        ))
    notes = [f"{o}: {m}" for o, m in zip(info.objectives, info.messages, strict=True) if m]
    if info.unstable:
        notes.append(f"ranking changes with the evaluator's seed for {', '.join(info.unstable)}")
    if info.left_out:
        notes.append("left out (conditional or constant): " + ", ".join(info.left_out))
    if not info.sample.enough:
        notes.insert(0, info.sample.note())
    if not fig.data:
        empty(fig, "not enough completed trials for importances")
    fig.update_layout(
        template=TEMPLATE, barmode="group", margin=dict(t=80 + 20 * len(notes)),
        height=max(320, 110 + 20 * len(notes) + 45 * len(info.params) * max(1, len(fig.data))),
        yaxis=dict(automargin=True),
        title=dict(text=f"Parameter importance per objective ({info.evaluator.replace('ImportanceEvaluator', '')}"
                        + (f", mean and range over {info.runs} seeds" if info.runs > 1 else "") + ")"
                        + "".join(f"<br><sup>{n}</sup>" for n in notes)),
        xaxis=dict(title="importance (sums to 1 per objective)", range=[0, 1.1]), legend=dict(title="objective"),
    )
    return fig


def plot_param_importances(exp: Experiment, **kwargs: Any) -> go.Figure:
    """param_importances_figure(param_importances_info(exp, **kwargs))."""
    return param_importances_figure(param_importances_info(exp, **kwargs))
