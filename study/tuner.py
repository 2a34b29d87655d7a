"""The objects that run a study: the Optuna study in its journal, and the Ray Tune Tuner around
it (searcher, scheduler, resources per trial, callbacks, run configuration), fresh or restored.

    study, storage = open_study(settings, resume=False)
    results = build_tuner(settings, storage=storage, resume=False).fit()
"""

from __future__ import annotations

import dataclasses
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from ray import tune

from search_spaces import fixed_points
from study.progress import JournalMirror, PendingWatch, ProgressLine
from study.result_logs import CsvResults, JsonResults
from study.scheduler import MultiObjectiveASHA, SlotLimiter, rung_epochs
from study.searcher import SeededSpace, StudySearch, make_sampler, trial_dirname
from study.settings import Settings
from study.trial_attrs import TrialAttrsSearch
from trainables.vocabulary import TRIAL_KEYS

# Settings fields that are trial keys (vocabulary.TRIAL_KEYS): the same for every trial.
_TRIAL_SETTINGS = tuple(k for k in TRIAL_KEYS if k in {f.name for f in dataclasses.fields(Settings)})


def open_study(settings: Settings, *, resume: bool) -> tuple[optuna.Study, JournalStorage]:
    """The Optuna study in a JournalStorage(JournalFileBackend) at settings.journal_path."""
    path = settings.journal_path
    path.parent.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(path)))
    directions = ["maximize" if mode == "max" else "minimize" for _, mode in settings.objectives]
    study = optuna.create_study(storage=storage, study_name=settings.name, directions=directions,
                                load_if_exists=resume)
    study.set_metric_names([metric for metric, _ in settings.objectives])  # optuna-dashboard's axis names
    if not resume:
        for key in ("space", "dataset", "seeds", "seed", "objective"):
            study.set_user_attr(key, getattr(settings, key))
        study.set_user_attr("objectives", [list(o) for o in settings.objectives])
    return study, storage


def build_tuner(settings: Settings, *, storage: JournalStorage, resume: bool, verbose: bool = False,
                retry_failed: bool = False, pending_timeout: float | None = None) -> tune.Tuner:
    """The one place the Tuner is assembled (fresh or restored). `retry_failed`: a restored
    study also runs its ERROR trials again, from their last checkpoint. `pending_timeout` (on a
    cluster): the study stops when no trial could start for that long (PendingWatch)."""
    # deferred: imports torch and the trainer (seconds); bad input fails before it is needed
    from trainables.trainable import Resources, train_vae

    trainable = tune.with_resources(train_vae, Resources(settings.cpus_per_trial, settings.gpus_per_trial))
    if resume:
        # Ray restores the run config (callbacks, stopper) as pickled: this run's timeout goes in on restore
        PendingWatch.restored_timeout_s = pending_timeout
        return tune.Tuner.restore(settings.experiment_dir, trainable=trainable, resume_unfinished=True,
                                  resume_errored=retry_failed, restart_errored=False)
    search_alg, limit = _searcher(settings, storage), settings.max_concurrent or None
    if settings.scheduler == "asha" and limit:  # Tune's own limit would count paused trials as running
        search_alg, limit = SlotLimiter(search_alg, max_concurrent=limit), None
    return tune.Tuner(
        trainable,
        param_space=_param_space(settings),
        tune_config=tune.TuneConfig(search_alg=search_alg, scheduler=_scheduler(settings), num_samples=settings.trials,
                                    max_concurrent_trials=limit, reuse_actors=settings.reuse_actors,
                                    trial_dirname_creator=trial_dirname),
        run_config=_run_config(settings, verbose=verbose, pending_timeout=pending_timeout),
    )


def _searcher(settings: Settings, storage: JournalStorage) -> StudySearch:
    """Optuna behind Ray Tune: the space with its seeds, the study's objectives, the sampler."""
    metrics, modes = [m for m, _ in settings.objectives], [mode for _, mode in settings.objectives]
    space = SeededSpace(settings.space, seeds=settings.seeds, base_seed=settings.seed,
                        points=fixed_points(settings.space))
    return TrialAttrsSearch(
        space=space,
        metric=metrics if len(metrics) > 1 else metrics[0],
        mode=modes if len(modes) > 1 else modes[0],
        points_to_evaluate=space.first_points or None,
        sampler=make_sampler(settings.sampler, seed=settings.seed, trials=settings.trials),
        study_name=settings.name,
        storage=storage,
    )


def _scheduler(settings: Settings) -> MultiObjectiveASHA | None:
    """MO-ASHA over the study's objectives (one or several) with --scheduler asha; else FIFO."""
    if settings.scheduler != "asha":
        return None
    return MultiObjectiveASHA(settings.objectives, max_t=settings.epochs, grace_period=settings.grace_period,
                              reduction_factor=settings.reduction_factor)


def _rungs(settings: Settings) -> list[int]:
    """The epochs the scheduler compares trials at: the trials measure their metrics there."""
    if settings.scheduler != "asha":
        return []
    return rung_epochs(settings.epochs, settings.grace_period, settings.reduction_factor)


def _param_space(settings: Settings) -> dict[str, Any]:
    """What every trial gets besides the sampled parameters (those come from the searcher)."""
    param_space: dict[str, Any] = {"dataset": settings.dataset, "data_root": settings.data_root,
                                   "epochs": settings.epochs, "precision": settings.precision,
                                   "metrics_at": _rungs(settings)}
    param_space.update({key: getattr(settings, key) for key in _TRIAL_SETTINGS})
    param_space["objectives"] = [list(o) for o in settings.objectives]  # for the sentinels of a diverged trial
    if settings.arch is not None:
        param_space["arch"] = settings.arch
    return param_space


def _run_config(settings: Settings, *, verbose: bool, pending_timeout: float | None) -> tune.RunConfig:
    mirror = JournalMirror(str(settings.journal_path), settings.journal_copy) if settings.remote else None
    callbacks: list[tune.Callback] = [ProgressLine(settings.objectives, settings.trials, on_change=mirror,
                                                   experiment_dir=settings.experiment_dir),
                                      JsonResults(), CsvResults()]  # in place of Ray's own (result_logs)
    watch = PendingWatch(pending_timeout) if pending_timeout else None
    return tune.RunConfig(
        name=settings.name,
        storage_path=settings.storage,
        verbose=1 if verbose else 0,
        callbacks=callbacks + ([watch] if watch else []),
        stop=watch,
        failure_config=tune.FailureConfig(max_failures=settings.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        sync_config=tune.SyncConfig(sync_artifacts=True),
    )
