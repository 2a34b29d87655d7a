"""One truth per trial once `Tuner.fit()` returns: Ray's trial states, the Optuna journal and
study.json made to agree, whatever ended the study.

    verdicts = reconcile(settings, results, study)      # after fit(), before study.json is written
    record["trials"] = [v.as_record() for v in verdicts]; record["counts"] = count(verdicts)

Each Ray trial gets a `Verdict` by vocabulary.trial_outcome, the rule the searcher used to label
the Optuna trial when Ray told it and the analysis uses for trials.parquet. Then, trial by trial:

- Ray: the driver's memory is right, but its snapshot on disk can miss an ERROR (a trial lost
  with its node stays RUNNING there): `ray_state.correct_ended` writes the end status.
- Optuna: a trial Ray ended but nobody told (RUNNING) is labelled and told now; a FAIL trial
  that a later run trained to the end (`--retry-failed`) gets a COMPLETE trial with its values
  and `retry_of` (Optuna never changes a finished trial), and the verdict points at it.
- study.json: the verdicts (outcome, error -- `node lost` for a trial whose worker died without
  a word --, node) and the counts.

A trial the driver no longer runs is never `running` here: unfinished trials of an interrupted
study are `interrupted` (--resume continues them) or `pending` (never started).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from typing import Any

import optuna
from ray import tune

from study.ray_state import correct_ended, read_ray_trials
from study.searcher import label_trial
from study.settings import Settings
from trainables.cli import one_line
from trainables.vocabulary import (
    ENDED_OUTCOMES,
    ERROR_ATTR,
    FAILED_OUTCOMES,
    NODE_ATTR,
    NODE_LOST,
    OPTUNA_NUMBER,
    OUTCOME_ATTR,
    RAY_ERROR,
    RECORD_TRIAL_KEYS,
    RETRY_OF,
    SCORED_OUTCOMES,
    node_label,
    retries,
    trial_outcome,
)

TrialState = optuna.trial.TrialState


@dataclasses.dataclass(frozen=True)
class Verdict:
    """How one Ray trial ended, as every record should say it."""

    trial_id: str
    trial_dir: str | None
    optuna_number: int | None  # the Optuna trial holding its result (the retry's, after --retry-failed)
    outcome: str
    error: str | None
    ray_status: str | None
    ray_error: str | None  # the first line of Ray's own error (error.txt), for a failed trial
    node_id: str | None
    node: str | None
    optuna_state: str | None = None
    retry_of: int | None = None  # the FAIL Optuna trial this one's result supersedes
    retries: int | None = None  # vocabulary.retries: runs again after a failure

    def as_record(self) -> dict[str, Any]:
        """study.json's entry (vocabulary.RECORD_TRIAL_KEYS)."""
        values = {"trial_id": self.trial_id, "trial_dir": self.trial_dir, OPTUNA_NUMBER: self.optuna_number,
                  "optuna_state": self.optuna_state, RETRY_OF: self.retry_of, OUTCOME_ATTR: self.outcome,
                  ERROR_ATTR: self.error, "ray_status": self.ray_status, RAY_ERROR: self.ray_error,
                  NODE_ATTR: self.node_id, "node": self.node, "retries": self.retries}
        return {k: values[k] for k in RECORD_TRIAL_KEYS}


def reconcile(settings: Settings, results: tune.ResultGrid, study: optuna.Study) -> list[Verdict]:
    """The verdicts of every trial in `results`, with Ray's file and the Optuna journal corrected
    to match (see the module docstring)."""
    pairs = _trials_and_results(settings, results)
    verdicts = [judge(status, last, config, path, error, num_failures=failures)
                for status, last, config, path, error, failures in pairs]
    correct_ended(settings.experiment_dir, {v.trial_id: "ERROR" for v in verdicts if v.ray_status == "ERROR"})
    lasts = {v.trial_id: last for v, (_, last, *_) in zip(verdicts, pairs, strict=True)}
    return [_agree_with_optuna(v, study, lasts[v.trial_id], settings) for v in verdicts]


def count(verdicts: list[Verdict]) -> dict[str, int]:
    """Trials by outcome; the outcomes a finished study can end with are always present."""
    counts = dict.fromkeys((*SCORED_OUTCOMES, *FAILED_OUTCOMES), 0)
    counts.update(Counter(v.outcome for v in verdicts))
    return counts


def judge(status: str | None, last: dict[str, Any], config: dict[str, Any], path: str | None,
          error: BaseException | str | None, *, num_failures: int | None = None) -> Verdict:
    """One trial's verdict from Ray's view of it (the driver has finished with it)."""
    reported = last.get("outcome") if isinstance(last.get("outcome"), str) else None
    outcome = trial_outcome(reported, status, errored=status == "ERROR", driver_running=False)
    failed = outcome in FAILED_OUTCOMES
    said = last.get("error") if reported in FAILED_OUTCOMES else None  # the trainable's own words
    number = config.get(OPTUNA_NUMBER)
    node_id = last.get(NODE_ATTR) if isinstance(last.get(NODE_ATTR), str) else None
    folder = path.rstrip("/").rsplit("/", 1)[-1] if path else None
    return Verdict(
        trial_id=str(last.get("trial_id") or _trial_id(folder)), trial_dir=folder,
        optuna_number=number if isinstance(number, int) else None, outcome=outcome.value,
        error=str(said or NODE_LOST).splitlines()[0][:500] if failed else None, ray_status=status,
        ray_error=_first_line(error) if failed else None, node_id=node_id,
        node=node_label(node_id, last.get("hostname")), retries=retries(num_failures, status),
    )


def _first_line(error: BaseException | str | None) -> str | None:
    if error is None:
        return None
    lines = [ln for ln in str(error).splitlines() if ln.strip() and not ln.startswith("Failure #")]
    return one_line(lines[0] if lines else type(error).__name__, 300)


def _trial_id(folder: str | None) -> str:
    """Our trial folders end with _<trial_id> (searcher.trial_dirname)."""
    return (folder or "?").rstrip("/").rsplit("/", 1)[-1].rsplit("_", 1)[-1]


def _trials_and_results(settings: Settings, results: tune.ResultGrid) -> list[tuple]:
    """(status, last result, config, path, error, Ray's failure count) per trial. The status is the one in Ray's
    file -- its last snapshot, taken before Ray's clean-up marks every trial with a live actor
    TERMINATED, which after an interruption is not how they stand -- except an ERROR that only
    the driver's memory (the Trial objects behind the ResultGrid) knows: a trial lost with its node."""
    on_disk = read_ray_trials(settings.experiment_dir) or {}
    trials = getattr(getattr(results, "_experiment_analysis", None), "trials", None)
    rows = list(results)
    if trials is None or len(trials) != len(rows):
        trials = [None] * len(rows)
    out = []
    for trial, r in zip(trials, rows, strict=True):
        last = dict(trial.last_result or {}) if trial is not None else dict(r.metrics or {})
        trial_id = trial.trial_id if trial is not None else str(last.get("trial_id") or _trial_id(r.path))
        state = on_disk.get(trial_id)
        errored = (trial.status == "ERROR") if trial is not None else (r.error is not None and state is None)
        status = "ERROR" if errored else (state.status if state is not None else getattr(trial, "status", None))
        config = dict(trial.config or {}) if trial is not None else dict(r.config or {})
        failures = trial.num_failures if trial is not None else getattr(state, "num_failures", None)
        out.append((status, {"trial_id": trial_id, **last}, config, r.path, r.error, failures))
    return out


# --- Optuna --------------------------------------------------------------------------------------------
def _agree_with_optuna(v: Verdict, study: optuna.Study, last: dict[str, Any], settings: Settings) -> Verdict:
    frozen = _optuna_trial(study, v.optuna_number)
    if frozen is None:
        return v
    state = frozen.state
    if state == TrialState.RUNNING and v.outcome in ENDED_OUTCOMES:  # Ray ended it, nobody told Optuna
        label_trial(optuna.trial.Trial(study, frozen._trial_id), last, errored=v.ray_status == "ERROR")
        values = _values(last, settings) if v.outcome in SCORED_OUTCOMES else None
        study.tell(frozen.number, values, state=TrialState.COMPLETE if values else TrialState.FAIL)
        state = TrialState.COMPLETE if values else TrialState.FAIL
    elif state == TrialState.FAIL and v.outcome in SCORED_OUTCOMES:  # trained to the end by a later run
        number = _superseding(study, frozen, last, settings, v)
        if number is not None:
            return dataclasses.replace(v, optuna_number=number, retry_of=frozen.number, optuna_state="COMPLETE")
    return dataclasses.replace(v, optuna_state=state.name)


def _optuna_trial(study: optuna.Study, number: int | None) -> optuna.trial.FrozenTrial | None:
    if number is None:
        return None
    trials = study.get_trials(deepcopy=False)
    return trials[number] if 0 <= number < len(trials) and trials[number].number == number else None


def _values(last: dict[str, Any], settings: Settings) -> list[float] | None:
    values = [last.get(metric) for metric, _ in settings.objectives]
    ok = all(isinstance(x, (int, float)) and math.isfinite(x) for x in values)
    return [float(x) for x in values] if ok else None


def _superseding(study: optuna.Study, failed: optuna.trial.FrozenTrial, last: dict[str, Any], settings: Settings,
                 v: Verdict) -> int | None:
    """The COMPLETE trial that holds a re-run's result (added once, with `retry_of`)."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.user_attrs.get(RETRY_OF) == failed.number:
            return t.number
    values = _values(last, settings)
    if values is None:
        return None
    attrs = {**failed.user_attrs, OUTCOME_ATTR: v.outcome, RETRY_OF: failed.number}
    attrs.pop(ERROR_ATTR, None)
    if v.node_id:
        attrs[NODE_ATTR] = v.node_id
    study.add_trial(optuna.trial.create_trial(params=failed.params, distributions=failed.distributions,
                                              values=values, user_attrs=attrs, state=TrialState.COMPLETE))
    return study.get_trials(deepcopy=False)[-1].number

