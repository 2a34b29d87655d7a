"""Run a hyperparameter study: Optuna proposes, Ray Tune trains, everything lands in one folder.

    python -m study.launch --space sintro_tc                      # the `cpu` preset on this machine
    python -m study.launch --space compare --preset full --address auto --storage s3://bucket/studies

Flags, presets, seeds, objectives and the cluster workflow: docs/study.md. The experiment folder
(<storage>/<name>/: study.json, optuna.journal, Ray Tune's state and one folder per trial) is the
one docs/architecture.md describes and `analysis` reads.

This module is the flow only: `prepare` (every check, then Ray and the study's lock), `run` (the
study, resumed or new, reconciled, its record and summary). The parts: `study.settings` (flags
and presets), `study.nodes` and `study.cluster` (the cluster, Ray, resources, data, storage),
`study.lock` (one launch per study), `study.record` (study.json), `study.tuner` (Optuna study
and Tuner), `study.reconcile` (one truth per trial after fit). Bad input -- an unknown name,
impossible numbers, an address where no Ray answers, a trial no node can hold, storage that
cannot be written, a study another launch is running -- is one line on stderr naming the
problem and the fix, exit code 2, and nothing written (docs/reliability.md lists them). A
finished study resumed again is left as it is (exit 0) unless --retry-failed asks otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import optuna
import pyarrow.fs as pafs
import ray
from ray import tune

from study.cluster import (
    check_address,
    check_data,
    check_data_on_nodes,
    check_local_resources,
    check_storage,
    check_trial_fits,
    inspect_cluster,
    local_gpus,
    local_precision,
    start_ray,
)
from study.lock import StudyLock
from study.nodes import ClusterView
from study.progress import JournalMirror, RayLog, quiet
from study.ray_state import read_ray_trials
from study.reconcile import count, reconcile
from study.record import (
    failed_trials,
    finish_record,
    is_finished,
    journal_to_fetch,
    now,
    read_record,
    start_record,
    write_journal,
    write_record,
)
from study.scheduler import rung_epochs
from study.searcher import fail_orphans
from study.settings import (
    DEFAULT_PENDING_TIMEOUT_S,
    LaunchError,
    Settings,
    check_space,
    journal_folder,
    parse_args,
    resolve,
    storage_root,
)
from study.tuner import build_tuner, open_study
from trainables.cli import one_line
from trainables.storage import filesystem, join, read_bytes
from trainables.vocabulary import (
    ENDED_OUTCOMES,
    LOCK_FILE,
    OPTUNA_NUMBER,
    PARAMS_FILE,
    RAY_LOG_FILE,
    Outcome,
    StudyStatus,
)


class NothingToDo(Exception):
    """A finished study resumed without --retry-failed: its line is printed, exit code 0."""


@dataclass
class Prepared:
    """What `prepare` hands to `run`: everything checked, Ray connected, the study locked."""

    args: argparse.Namespace
    argv: list[str]
    ray_log: RayLog
    settings: Settings = None  # type: ignore[assignment]  # set by prepare before it returns
    record: dict | None = None  # the resumed study's study.json; None for a new study
    notes: list[str] = field(default_factory=list)
    address: str | None = None  # with --address: host:port of the cluster's GCS
    cluster: ClusterView | None = None  # with --address: the cluster as probed
    journal: bytes | None = None  # object storage: the newer copy of the journal, to write locally
    owns_ray: bool = False  # this process connected Ray: it disconnects (or stops) it at the end
    lock: StudyLock | None = None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        prepared = prepare(argv)
    except NothingToDo as e:
        print(e)
        return 0
    except LaunchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return run(prepared)


# --- before anything is written --------------------------------------------------------------------
def prepare(argv: list[str]) -> Prepared:
    """Every check, then Ray started or joined and the study locked. Nothing is written before
    this returns; a refusal is a LaunchError (or NothingToDo for a finished study)."""
    args = parse_args(argv)
    p = Prepared(args=args, argv=argv, ray_log=RayLog(args.verbose))
    try:
        _check(p)
        _connect(p)
    except BaseException:
        p.ray_log.close()  # Ray's logger as it was; what it buffered is dropped with the refusal
        raise
    return p


def _check(p: Prepared) -> None:
    """Every read-only check, the cheap ones first."""
    args = p.args
    if args.resume:
        p.record = _resumed_record(args)
    check_space(args.space)
    if p.record is not None:  # the study's own settings: flags that differ are refused first
        p.settings, _ = resolve(args, gpu_visible=False, record=p.record)
        _skip_finished(args, p.record)
    if p.settings is not None or args.name:  # another launch runs this study: say so before anything slow
        lock = p.settings.lock_path if p.settings is not None else (
            journal_folder(storage_root(args.storage), args.name, args.journal_dir) / LOCK_FILE)
        StudyLock(lock, args.name).check()
    if args.address is not None:
        p.address, notes = check_address(args.address)
        p.notes += notes
        p.cluster = inspect_cluster(p.address)
    if p.settings is None:
        gpus = p.cluster.gpus if p.cluster is not None else local_gpus()
        cpus = p.cluster.cpus if p.cluster is not None else None  # None: this machine's
        p.settings, notes = resolve(args, gpu_visible=gpus > 0, cpus=cpus)
        p.notes += notes
    _check_before_start(p)


def _check_before_start(p: Prepared) -> None:
    """Storage, journal, resources and data: all read-only."""
    settings, resume = p.settings, p.record is not None
    try:
        check_storage(settings, resume=resume)
    except LaunchError:  # "already exists" while another launch creates it: name that launch instead
        StudyLock(settings.lock_path, settings.name).check()
        raise
    _check_journal_and_state(settings, resume=resume)
    p.journal = journal_to_fetch(settings) if resume else None
    if p.cluster is not None:
        p.notes += check_trial_fits(settings, p.cluster, pending_timeout=p.args.pending_timeout)
    else:
        check_local_resources(settings)
    check_data(settings)


def _connect(p: Prepared) -> None:
    """Ray started or joined, the data looked for on the cluster's nodes, then the lock."""
    p.owns_ray = start_ray(p.address, verbose=p.args.verbose)
    try:
        p.ray_log.capture()  # ray.init put its console handler back
        if p.cluster is not None:
            p.notes += check_data_on_nodes(p.settings, p.cluster)
        p.lock = StudyLock(p.settings.lock_path, p.settings.name)
        taken = p.lock.acquire(p.argv)
    except BaseException:
        if p.owns_ray:
            ray.shutdown()
        raise
    if taken:
        p.notes.append(taken)


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


def _skip_finished(args: argparse.Namespace, record: dict) -> None:
    """A finished study stays as it is unless --retry-failed asks for its failed trials again."""
    errors = int((record.get("counts") or {}).get(Outcome.ERROR.value, 0))
    if not is_finished(record) or (args.retry_failed and errors):
        return
    counts = ", ".join(f"{v} {k}" for k, v in (record.get("counts") or {}).items() if v) or "no trials"
    hint = (f"; --retry-failed runs its {errors} trial(s) that ended in an error again" if errors and
            not args.retry_failed else " (no trial ended in an error)" if args.retry_failed else "")
    failed = failed_trials(record) - errors
    hint += f"; {failed} diverged trial(s) would diverge again and are not retried" if failed and errors else ""
    raise NothingToDo(f"study {args.name} is finished ({counts}): nothing to do{hint}")


def _check_journal_and_state(settings: Settings, *, resume: bool) -> None:
    """A new study's local journal (object storage) is new; a resumed one has Ray Tune state."""
    if settings.remote and not resume and settings.journal_path.exists():
        raise LaunchError(f"{settings.journal_path} already exists: choose another --name or --journal-dir")
    if resume and not tune.Tuner.can_restore(settings.experiment_dir):
        raise LaunchError(f"{settings.experiment_dir} has no Ray Tune state to resume "
                          "(the study stopped before its first trial): start it again under a new --name")


# --- the study -------------------------------------------------------------------------------------
def run(p: Prepared) -> int:
    """Run (or resume) the study; study.json says how it ended. Returns the exit code."""
    settings = p.settings
    record: dict[str, Any] = {}
    try:
        p.ray_log.to_file(settings.journal_path.parent / RAY_LOG_FILE)
        quiet(p.args.verbose)
        precision_here = local_precision(settings.precision)
        _print_start(settings, p.notes, precision_here)
        write_journal(settings, p.journal)
        record = start_record(settings, p.record, p.argv, address=ray.get_runtime_context().gcs_address,
                              precision_here=precision_here, lock_token=p.lock.token)
        return _run_study(p, record)
    except KeyboardInterrupt:  # a second Ctrl-C (the first lets Ray Tune stop cleanly)
        _write_status(settings, record, StudyStatus.INTERRUPTED)
        print(_resume_line(settings), file=sys.stderr)
        return 130
    except BaseException:
        _write_status(settings, record, StudyStatus.FAILED)
        raise
    finally:
        if p.lock is not None:
            p.lock.release()
        if p.owns_ray:
            ray.shutdown()  # the embedded Ray stops; a joined cluster is only disconnected
        p.ray_log.close()


def _write_status(settings: Settings, record: dict[str, Any], status: StudyStatus) -> None:
    """The status of a run that ended abnormally; a failed write is a warning, not a traceback."""
    if not record:
        return  # nothing of this run was written yet
    record.update(status=status.value, ended_at=now())
    try:
        write_record(settings, record)
    except Exception as e:
        print(f"warning: could not write {settings.experiment_dir}/study.json ({one_line(e, 160)})", file=sys.stderr)


def _resume_line(settings: Settings) -> str:
    return (f"interrupted: resume with python -m study.launch --resume --name {settings.name} "
            f"--storage {settings.storage}")


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


def _run_study(p: Prepared, record: dict) -> int:
    """Fit the Tuner, then reconcile, record and summarise."""
    settings, resume = p.settings, p.record is not None
    study, storage = open_study(settings, resume=resume)
    if resume:
        _requeue_orphans(settings, study)
    write_record(settings, record)
    timeout = (p.args.pending_timeout or DEFAULT_PENDING_TIMEOUT_S) if p.cluster is not None else None
    tuner = build_tuner(settings, storage=storage, resume=resume, verbose=p.args.verbose,
                        retry_failed=p.args.retry_failed, pending_timeout=timeout)
    start = time.monotonic()
    results = tuner.fit()
    return _finish(settings, record, study, results, time.monotonic() - start)


def _finish(settings: Settings, record: dict, study: optuna.Study, results: tune.ResultGrid, wall: float) -> int:
    """One truth per trial in every record, the summary, the report; the exit code."""
    verdicts = reconcile(settings, results, study)
    counts = count(verdicts)
    finished = len(verdicts) >= settings.trials and all(v.outcome in ENDED_OUTCOMES for v in verdicts)
    # Optuna trials still RUNNING once every Ray trial has ended were asked by a driver that
    # died before starting them. After an interruption they may still resume: keep them.
    orphans = fail_orphans(study) if finished else []
    finish_record(record, finished=finished, counts=counts, trials=[v.as_record() for v in verdicts],
                  orphans=orphans, wall=wall)
    write_record(settings, record)
    if settings.remote:
        JournalMirror(str(settings.journal_path), settings.journal_copy)()
    _print_summary(settings, study, counts, wall)
    _write_report(settings, paper=finished)  # an interrupted study's too: what finished is worth reading now
    if not finished:
        print(_resume_line(settings))
        return 1
    scored = counts[Outcome.COMPLETED.value] + counts[Outcome.STOPPED.value]
    return 1 if counts[Outcome.ERROR.value] and not scored else 0  # every trial failed


# --- resume ----------------------------------------------------------------------------------------
def _requeue_orphans(settings: Settings, study: optuna.Study) -> None:
    """Optuna trials asked by a killed driver that Ray never recorded: FAIL, queued again."""
    known = ray_known_trials(settings)
    requeued = fail_orphans(study, known=known, requeue=True)
    if requeued:
        print(f"optuna trials {requeued} were asked but never started (killed driver): "
              "marked FAIL, their configurations queued again")


def ray_known_trials(settings: Settings) -> set[int]:
    """The Optuna numbers of the trials Ray knows (the trials a resume continues): from Ray
    Tune's newest experiment state, or, when it cannot be read, from the trial folders Ray
    made (params.json holds each trial's Optuna number)."""
    trials = read_ray_trials(settings.experiment_dir)
    if trials is not None:
        configs = [t.config for t in trials.values() if t.config is not None]
    else:
        configs = [_params(settings, folder) for folder in _trial_folders(settings)]
    return {c[OPTUNA_NUMBER] for c in configs if isinstance(c, dict) and isinstance(c.get(OPTUNA_NUMBER), int)}


def _trial_folders(settings: Settings) -> list[str]:
    fs, path = filesystem(settings.experiment_dir)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return [i.base_name for i in infos if i.type == pafs.FileType.Directory]


def _params(settings: Settings, folder: str) -> dict | None:
    try:
        return json.loads(read_bytes(join(settings.experiment_dir, folder, PARAMS_FILE)) or b"null")
    except (OSError, ValueError):
        return None


# --- the summary -----------------------------------------------------------------------------------
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


def _write_report(settings: Settings, *, paper: bool) -> None:
    """analysis.report.write_report(experiment_dir) when the analysis package provides it; for
    --space paper and `paper` (every seed trained) also analysis.paper.write_paper."""
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

    try:  # the study is recorded: a failing report is a warning with the command that rebuilds it
        experiment = load_experiment(settings.experiment_dir)  # read once, for both
        path = write_report(settings.experiment_dir, experiment=experiment)
        print(f"report:  {path}")
        if paper and settings.space == "paper":  # the report's comparison: table, single-run odds, figures 1-3
            from analysis.paper import write_paper  # deferred with analysis.report, above

            paths = write_paper(settings.experiment_dir, experiment=experiment)
            print(f"paper:   {os.path.dirname(paths[0])} ({', '.join(os.path.basename(p) for p in paths)})")
    except Exception as e:
        print(f"warning: the report could not be written ({one_line(e, 160)}): python -m analysis.report "
              f"{settings.experiment_dir}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
