"""Run a hyperparameter study: Optuna proposes, Ray Tune trains, everything lands in one folder.

    python -m study.launch --space sintro_tc                      # the `cpu` preset on this machine
    python -m study.launch --space compare --preset full --address auto --storage s3://bucket/studies

Flags, presets, seeds, objectives and the cluster workflow: docs/study.md. The experiment folder
(<storage>/<name>/: study.json, optuna.journal, Ray Tune's state and one folder per trial) is the
one docs/architecture.md describes and `analysis` reads.

This module is the flow only: `prepare` (every check, then Ray), `run` (the study, resumed or
new, its record and summary). The parts: `study.settings` (flags and presets), `study.cluster`
(Ray, resources, data, storage), `study.record` (study.json), `study.tuner` (Optuna study and
Tuner). Bad input -- an unknown name, impossible numbers, an address that does not answer,
storage that cannot be written, a study to resume that does not exist or has another space --
is one line on stderr naming the problem and the fix, exit code 2, and nothing written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import optuna
import ray
from ray import tune

from study.cluster import (
    check_address,
    check_data,
    check_local_resources,
    check_storage,
    gpus_in_cluster,
    local_gpus,
    local_precision,
    start_ray,
)
from study.progress import JournalMirror, quiet
from study.ray_state import read_ray_trials
from study.record import fetch_journal, finish_record, now, read_record, start_record, write_record
from study.scheduler import rung_epochs
from study.searcher import fail_orphans
from study.settings import LaunchError, Settings, check_space, parse_args, resolve, storage_root
from study.tuner import build_tuner, open_study
from trainables.vocabulary import OPTUNA_NUMBER, Outcome, StudyStatus

# What `prepare` hands to `run`: settings, notes to print, argv, the resumed study.json (or
# None), whether this process started Ray (and so stops it), verbose.
Prepared = tuple[Settings, list[str], list[str], dict | None, bool, bool]
UNFINISHED = "unfinished"  # study.json's count of trials that never reported
COUNTED = (Outcome.COMPLETED.value, Outcome.STOPPED.value, Outcome.DIVERGED.value, Outcome.ERROR.value, UNFINISHED)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        prepared = prepare(argv)
    except LaunchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return run(*prepared)


# --- before anything is written --------------------------------------------------------------------
def prepare(argv: list[str]) -> Prepared:
    """Every check, then Ray started or joined. Nothing is written before this returns."""
    args = parse_args(argv)
    record = _resumed_record(args) if args.resume else None
    check_space(args.space)
    address = check_address(args.address) if args.address is not None else None
    connected = False
    if address is None:
        settings, notes = resolve(args, gpu_visible=local_gpus() > 0, record=record)
    try:
        if address is not None:  # the cluster decides whether a GPU is visible
            connected = start_ray(address, verbose=args.verbose)
            settings, notes = _resolve_on_cluster(args, record)
        check_storage(settings, resume=args.resume)
        _check_journal_and_state(settings, resume=args.resume)
        if address is None:
            check_local_resources(settings)
            check_data(settings)
            connected = start_ray(None, verbose=args.verbose)
    except BaseException:
        if connected:
            ray.shutdown()  # the Ray this process started (start_ray returns False after joining a cluster)
        raise
    return settings, notes, argv, record, connected, args.verbose


def _resumed_record(args: argparse.Namespace) -> dict:
    """study.json of the study to resume; its space becomes --space."""
    if not args.name:
        raise LaunchError("--resume needs --name (and the --storage the study was started with)")
    record = read_record(storage_root(args.storage), args.name)
    if args.space is not None and args.space != record.get("space"):
        raise LaunchError(f"study {args.name!r} was started with --space {record.get('space')}, not {args.space}: "
                          f"drop --space or pass --space {record.get('space')}")
    args.space = record.get("space")
    return record


def _resolve_on_cluster(args: argparse.Namespace, record: dict | None) -> tuple[Settings, list[str]]:
    gpus = gpus_in_cluster()
    settings, notes = resolve(args, gpu_visible=gpus > 0, record=record,
                              cpus=float(ray.cluster_resources().get("CPU", 1.0)))
    if settings.gpus_per_trial > 0 and gpus == 0:
        notes.append("the cluster shows no GPU yet: GPU trials wait for GPU workers (autoscaler); "
                     "--gpus-per-trial 0 runs them on CPUs")
    return settings, notes


def _check_journal_and_state(settings: Settings, *, resume: bool) -> None:
    """A new study's local journal (object storage) is new; a resumed one has Ray Tune state."""
    if settings.remote and not resume and settings.journal_path.exists():
        raise LaunchError(f"{settings.journal_path} already exists: choose another --name or --journal-dir")
    if resume and not tune.Tuner.can_restore(settings.experiment_dir):
        raise LaunchError(f"{settings.experiment_dir} has no Ray Tune state to resume "
                          "(the study stopped before its first trial): start it again under a new --name")


# --- the study -------------------------------------------------------------------------------------
def run(settings: Settings, notes: list[str], argv: list[str], record: dict | None, connected: bool,
        verbose: bool) -> int:
    """Run (or resume) the study; study.json says how it ended. Returns the exit code."""
    quiet(verbose)
    resume = record is not None
    precision_here = local_precision(settings.precision)
    _print_start(settings, notes, precision_here)
    record = start_record(settings, record, argv, address=ray.get_runtime_context().gcs_address,
                          precision_here=precision_here)
    try:
        return _run_study(settings, record, resume=resume, verbose=verbose)
    except KeyboardInterrupt:  # a second Ctrl-C (the first lets Ray Tune stop cleanly)
        record.update(status=StudyStatus.INTERRUPTED.value, ended_at=now())
        write_record(settings, record)
        print(f"interrupted: resume with python -m study.launch --resume --name {settings.name} "
              f"--storage {settings.storage}", file=sys.stderr)
        return 130
    except BaseException:
        record.update(status=StudyStatus.FAILED.value, ended_at=now())
        try:
            write_record(settings, record)
        except Exception:
            pass
        raise
    finally:
        if connected:
            ray.shutdown()  # the embedded Ray; a joined cluster stays connected until the process exits


def _print_start(settings: Settings, notes: list[str], precision_here: str) -> None:
    for note in notes:
        print(note)
    print(f"study {settings.name}: space {settings.space}, {settings.trials} trials x {settings.epochs} epochs on "
          f"{settings.dataset}, {settings.seeds} seed{'s' if settings.seeds > 1 else ''} per configuration, objectives "
          + ", ".join(f"{m} ({mode})" for m, mode in settings.objectives))
    if settings.scheduler == "asha":
        rungs = rung_epochs(settings.epochs, settings.grace_period, settings.reduction_factor)
        scheduler = f"asha (trials compared at epochs {', '.join(map(str, rungs)) or '-'})"
    else:
        scheduler = "fifo (every trial to its last epoch)"
    here = f" ({precision_here} on this machine)" if settings.precision == "auto" else ""
    print(f"scheduler {scheduler}, precision {settings.precision}{here}")
    print(f"results: {settings.experiment_dir}   optuna: {settings.journal_path}")


def _run_study(settings: Settings, record: dict, *, resume: bool, verbose: bool) -> int:
    """Fit the Tuner, record the outcome, print the summary, write the report."""
    if resume:
        fetch_journal(settings)
    study, storage = open_study(settings, resume=resume)
    if resume:
        _requeue_orphans(settings, study)
    write_record(settings, record)
    tuner = build_tuner(settings, storage=storage, resume=resume, verbose=verbose)
    start = time.monotonic()
    results = tuner.fit()
    wall = time.monotonic() - start
    counts = _counts(results)
    finished = results.num_terminated + results.num_errors >= settings.trials
    # Optuna trials still RUNNING once every Ray trial has ended were asked by a driver that
    # died before starting them. After an interruption they may still resume: keep them.
    orphans = fail_orphans(study) if finished else []
    finish_record(record, finished=finished, counts=counts, orphans=orphans, wall=wall)
    write_record(settings, record)
    if settings.remote:
        JournalMirror(str(settings.journal_path), settings.journal_copy)()
    _print_summary(settings, study, counts, wall)
    if not finished:
        print(f"interrupted: resume with python -m study.launch --resume --name {settings.name} "
              f"--storage {settings.storage}")
        return 1
    _write_report(settings)
    scored = counts[Outcome.COMPLETED.value] + counts[Outcome.STOPPED.value]
    return 1 if counts[Outcome.ERROR.value] and not scored else 0  # every trial failed


# --- resume ----------------------------------------------------------------------------------------
def _requeue_orphans(settings: Settings, study: optuna.Study) -> None:
    """Optuna trials asked by a killed driver that Ray never recorded: FAIL, queued again."""
    known = ray_known_trials(settings)
    if known is None:  # Ray's state unreadable: nothing is assumed; the check at the end remains
        return
    requeued = fail_orphans(study, known=known, requeue=True)
    if requeued:
        print(f"optuna trials {requeued} were asked but never started (killed driver): "
              "marked FAIL, their configurations queued again")


def ray_known_trials(settings: Settings) -> set[int] | None:
    """The Optuna numbers of the trials in Ray Tune's newest experiment state (the trials a
    resume continues); None when the state cannot be read (then nothing is assumed)."""
    trials = read_ray_trials(settings.experiment_dir)
    if trials is None:
        return None
    return {t.config[OPTUNA_NUMBER] for t in trials.values()
            if t.config is not None and isinstance(t.config.get(OPTUNA_NUMBER), int)}


# --- the summary -----------------------------------------------------------------------------------
def _counts(results: tune.ResultGrid) -> dict[str, int]:
    """Trials by outcome, for study.json and the summary line."""
    counts = dict.fromkeys(COUNTED, 0)
    for result in results:
        counts[_outcome_of(result)] += 1
    return counts


def _outcome_of(result: tune.Result) -> str:
    outcome = (result.metrics or {}).get("outcome")
    if outcome == Outcome.DIVERGED:
        return Outcome.DIVERGED.value
    if result.error is not None or outcome == Outcome.ERROR:
        return Outcome.ERROR.value
    if outcome == Outcome.COMPLETED:
        return Outcome.COMPLETED.value
    if outcome == Outcome.RUNNING:  # ended early by ASHA (or still unfinished after an interruption)
        return Outcome.STOPPED.value
    return UNFINISHED  # never reported


def _print_summary(settings: Settings, study: optuna.Study, counts: dict[str, int], wall: float) -> None:
    print(f"done in {wall / 60:.1f} min: "
          + ", ".join(f"{v} {k}" for k, v in counts.items() if v or k == Outcome.COMPLETED.value))
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if complete:
        best = study.best_trials if len(study.directions) > 1 else [study.best_trial]
        label = "Pareto front" if len(study.directions) > 1 else "best"
        print(f"{label} ({len(best)} of {len(complete)} complete trials):")
        names = [m for m, _ in settings.objectives]
        for t in sorted(best, key=lambda t: t.values[0], reverse=settings.objectives[0][1] == "max")[:8]:
            values = ", ".join(f"{m} {v:.4g}" for m, v in zip(names, t.values, strict=False))
            params = ", ".join(f"{k}={_short(v)}" for k, v in t.params.items())
            print(f"  #{t.number} seed {t.user_attrs.get('seed')}: {values} | {params}")
    print(f"results: {settings.experiment_dir}")
    print(f"optuna:  {settings.journal_path} (optuna-dashboard {settings.journal_path})")


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _write_report(settings: Settings) -> None:
    """analysis.report.write_report(experiment_dir) when the analysis package provides it; for
    --space paper also analysis.paper.write_paper."""
    # deferred and optional: study sits below analysis; the launcher writes the report only when
    # the analysis package is installed
    try:
        from analysis.report import write_report
    except ImportError as e:
        if e.name in ("analysis", "analysis.report"):
            print("report: skipped (the analysis package has no report module)")
            return
        raise
    from analysis import load_experiment  # deferred with analysis.report, above

    experiment = load_experiment(settings.experiment_dir)  # read once, for both
    path = write_report(settings.experiment_dir, experiment=experiment)
    print(f"report:  {path}")
    if settings.space == "paper":  # the report's comparison: table, single-run odds, figures 1-3
        from analysis.paper import write_paper  # deferred with analysis.report, above

        paths = write_paper(settings.experiment_dir, experiment=experiment)
        print(f"paper:   {os.path.dirname(paths[0])} ({', '.join(os.path.basename(p) for p in paths)})")


if __name__ == "__main__":
    sys.exit(main())
