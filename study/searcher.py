"""The Optuna side of a study: samplers, seeds per configuration, and failure bookkeeping.

Seeds. Every Ray trial is one Optuna trial and one training. With ``seeds=S``, a configuration
the sampler proposes is trained S times: the first trial of a group gets seed ``base_seed``
and, as soon as it is sampled, S-1 copies of its parameters are enqueued in the Optuna study
(user attributes ``config_group`` and ``seed_index``), so the next trials asked are those
copies with seeds ``base_seed+1 ... base_seed+S-1``. Each copy is told to Optuna on its own;
the analysis groups trials by ``config_group`` (also in the Ray config) to show the spread.
Fixed points a space enqueues (the report's configurations) are groups like any other; they
are enqueued one after another so that each configuration's copies run right after it.

These classes live in an importable module, not in ``__main__``: Ray Tune pickles the searcher
(and with it this space wrapper) into the experiment folder to resume it.
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna
from ray.tune.experiment import Trial
from ray.tune.search.optuna import OptunaSearch

from search_spaces import get_space
from trainables.vocabulary import (
    CONFIG_GROUP,
    ERROR_ATTR,
    FAILED_OUTCOMES,
    NODE_ATTR,
    NODE_LOST,
    OPTUNA_NUMBER,
    OUTCOME_ATTR,
    REQUEUED_FROM,
    STOPPED_AT_EPOCH,
    VALUES_AT_STOP,
    Outcome,
    trial_outcome,
)

SAMPLERS = ("tpe", "nsga2", "random", "gp")
SEED_INDEX = "seed_index"  # Optuna user attribute: which seed of its configuration a trial trains


def make_sampler(name: str, *, seed: int, trials: int) -> optuna.samplers.BaseSampler:
    """An Optuna sampler by name; `trials` sizes NSGA-II's population for small studies."""
    if name == "tpe":
        # group=True handles the conditional parameters of `compare`; constant_liar keeps
        # parallel trials from all asking for the same point. (Both are "experimental" in Optuna.)
        # Optuna's 10 random start-up trials would make a 12-trial study a random search: a
        # quarter of the trials, 3 to 10, start it.
        startup = max(3, min(10, trials // 4))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True,
                                              n_startup_trials=startup)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, trials // 5)))
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}: use one of {', '.join(SAMPLERS)}")


class SeededSpace:
    """A registered space, plus one seed per training of the same configuration (see above).

    The space's fixed points are enqueued one at a time, each after the last seed of the
    configuration before it, so that a configuration's copies always come right after it:
    pass ``first_points`` as OptunaSearch's ``points_to_evaluate``; the rest follow from here
    (the study's user attribute ``fixed_points_enqueued`` counts them, so a resumed study
    continues where it stopped).
    """

    def __init__(self, space: str, *, seeds: int, base_seed: int, points: list[dict[str, Any]] | None = None) -> None:
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {seeds}")
        get_space(space)  # fail now on an unknown name
        self.space, self.seeds, self.base_seed = space, seeds, base_seed
        self.points = [dict(p) for p in points or []]

    @property
    def first_points(self) -> list[dict[str, Any]]:
        return self.points[:1]

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        constants = dict(get_space(self.space)(trial) or {})
        attrs = trial.user_attrs
        if CONFIG_GROUP in attrs:  # an enqueued copy: parameters fixed, seed from the queue
            group, index = int(attrs[CONFIG_GROUP]), int(attrs[SEED_INDEX])
        else:  # a new configuration (sampled, or a space's fixed point)
            group, index = trial.number, 0
            trial.set_user_attr(CONFIG_GROUP, group)
            trial.set_user_attr(SEED_INDEX, 0)
            for k in range(1, self.seeds):
                trial.study.enqueue_trial(dict(trial.params), user_attrs={CONFIG_GROUP: group, SEED_INDEX: k})
        if index == self.seeds - 1:  # this configuration has all its seeds: queue the next fixed point
            self._enqueue_next_point(trial.study)
        seed = self.base_seed + index
        trial.set_user_attr("seed", seed)
        return {**constants, "seed": seed, CONFIG_GROUP: group, OPTUNA_NUMBER: trial.number}

    def _enqueue_next_point(self, study: optuna.Study) -> None:
        done = int(study.user_attrs.get("fixed_points_enqueued", len(self.first_points)))
        if done < len(self.points):
            study.enqueue_trial(self.points[done])
            study.set_user_attr("fixed_points_enqueued", done + 1)


class StudySearch(OptunaSearch):
    """OptunaSearch that tells Optuna COMPLETE only for a trial that trained all its epochs, and
    that labels every trial with how it ended before telling it.

    - Failed: the trainable ends a diverged trial by reporting ``outcome="diverged"`` (finite
      sentinel objectives) and raising: Ray then calls ``on_trial_complete(error=True)`` without
      a result and OptunaSearch tells FAIL. A scheduler may stop the trial on that very result
      first; any result whose outcome is a failure is therefore told as FAIL here.
    - Stopped by the scheduler (its last result still says ``running``): told as PRUNED, with the
      epoch it stopped at and its objective values there as user attributes. Its values are of a
      shorter training and of the `fast` metrics, not comparable with a finished trial's: they
      stay off the Pareto front, and TPE counts the trial among the worse ones (for a single
      objective, by the intermediate values OptunaSearch reports every epoch).

    Before the tell (Optuna never changes a finished trial) the trial gets the user attributes
    ``outcome``, ``error`` and ``node_id`` from vocabulary.trial_outcome, the rule study.json and
    trials.parquet follow too. Ray gives the searcher no reason, so a trial that errors after
    reporting ``running`` -- its worker died with its node -- gets the error ``node lost``.
    """

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        # the last word of each trial, for its label at the end: Ray stops a paused trial without
        # a result (and restored searchers lack the dict)
        keys = (*_LAST_WORDS, "epoch", *self._metrics())
        self.__dict__.setdefault("_last_words", {})[trial_id] = {k: result.get(k) for k in keys}
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        last = result or self.__dict__.get("_last_words", {}).pop(trial_id, None) or {}
        if result and result.get("outcome") in FAILED_OUTCOMES:
            result, error = None, True
        if trial_id in self._ot_trials and trial_id not in self._completed_trials:
            trial = self._ot_trials[trial_id]
            label_trial(trial, last, errored=error)
            if last.get("outcome") == Outcome.RUNNING and not error:  # stopped by the scheduler
                trial.set_user_attr(STOPPED_AT_EPOCH, last.get("epoch"))
                trial.set_user_attr(VALUES_AT_STOP, {m: last.get(m) for m in self._metrics()})
                result = None  # no values: OptunaSearch tells PRUNED
        super().on_trial_complete(trial_id, result=result, error=error)

    def _metrics(self) -> list[str]:
        return list(self.metric) if isinstance(self.metric, list) else [self.metric]


_LAST_WORDS = ("outcome", "error", NODE_ATTR)


def label_trial(trial: optuna.Trial, last: dict[str, Any], *, errored: bool) -> None:
    """Set a running Optuna trial's `outcome`, `error` and `node_id` user attributes."""
    outcome = trial_outcome(last.get("outcome"), "ERROR" if errored else "TERMINATED", errored=errored)
    trial.set_user_attr(OUTCOME_ATTR, outcome.value)
    if outcome in FAILED_OUTCOMES:
        reported = last.get("error") if last.get("outcome") in FAILED_OUTCOMES else None
        trial.set_user_attr(ERROR_ATTR, str(reported or NODE_LOST).splitlines()[0][:500])
    if last.get(NODE_ATTR):
        trial.set_user_attr(NODE_ATTR, last[NODE_ATTR])


def trial_dirname(trial: Trial) -> str:
    """Short trial folder names (Ray's default lists every parameter): trial_0007_sintro_s1_<id>."""
    config = trial.config or {}
    number = config.get(OPTUNA_NUMBER)
    head = f"trial_{number:04d}" if isinstance(number, int) else "trial"
    return f"{head}_{config.get('variant', 'vae')}_s{config.get('seed', 0)}_{trial.trial_id}"


def fail_orphans(study: optuna.Study, *, known: set[int] | None = None, requeue: bool = False) -> list[int]:
    """Tell FAIL for Optuna trials left RUNNING that Ray will never finish: asked by a driver
    that was killed before Ray recorded the trial. `known`: the Optuna numbers Ray's experiment
    state still holds (they resume); None: Ray has ended every trial, all RUNNING ones are
    orphans. With `requeue`, each orphan's parameters (and its seed slot) are enqueued again,
    so its configuration still gets every seed. Returns the orphans' numbers."""
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    orphans = [t for t in running if known is None or t.number not in known]
    for t in orphans:
        running_trial = optuna.trial.Trial(study, t._trial_id)  # FrozenTrial cannot set attributes
        running_trial.set_user_attr(OUTCOME_ATTR, Outcome.ERROR.value)
        running_trial.set_user_attr(ERROR_ATTR, ORPHAN_ERROR)
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        if requeue and t.params:
            attrs = {k: t.user_attrs[k] for k in (CONFIG_GROUP, SEED_INDEX) if k in t.user_attrs}
            study.enqueue_trial(dict(t.params), user_attrs={**attrs, REQUEUED_FROM: t.number})
    return [t.number for t in orphans]


ORPHAN_ERROR = "asked by a launch that was killed before Ray started the trial"
