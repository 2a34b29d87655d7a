"""The launcher's records in the experiment folder: study.json and, on object storage, the copy
of the Optuna journal.

study.json holds the settings, the preset's values, the objectives, the command lines, the
package versions, the status and counts, and one entry per run (resumes); it is written
atomically through `trainables.storage` (a local rename or one object-store PUT), so a reader
never sees half of it (docs/study.md, "Output").
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.metadata
import json
import sys
from typing import Any

from study.presets import PRESETS
from study.settings import LaunchError, Settings
from trainables.storage import join, read_bytes, write_atomic, write_bytes
from trainables.vocabulary import (
    FAILED_OUTCOMES,
    RECORD_JOURNAL,
    RECORD_RUNS,
    RECORD_TRIALS,
    RUN_LOCK_TOKEN,
    STUDY_FILE,
    StudyStatus,
)

VERSIONED = ("torch", "ray", "optuna", "numpy", "scikit-learn", "pandas", "pyarrow")


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for package in VERSIONED:
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "absent"
    return out


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def read_location(location: str) -> bytes | None:
    """A file's bytes (None when absent); an unreadable location is a LaunchError, one line."""
    try:
        return read_bytes(location)
    except Exception as e:
        raise LaunchError(f"cannot read {location} ({' '.join(str(e).split())[:200]}): check the URI and "
                          "credentials") from None


def read_record(storage: str, name: str) -> dict:
    """study.json of the experiment to resume; LaunchError if there is none."""
    data = read_location(join(storage, name, STUDY_FILE))
    if data is None:
        raise LaunchError(f"no study {name!r} in {storage} (no {STUDY_FILE}): nothing to resume; "
                          "drop --resume to start it, or pass the --storage and --name it was started with")
    try:
        return json.loads(data.decode())
    except json.JSONDecodeError:
        raise LaunchError(f"{storage}/{name}/{STUDY_FILE} is not valid JSON: the study cannot be resumed") from None


def write_record(settings: Settings, record: dict) -> None:
    """study.json, atomically: a temporary file renamed over the old one (one PUT on S3/GCS)."""
    data = json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"
    write_bytes(join(settings.experiment_dir, STUDY_FILE), data)


def start_record(settings: Settings, record: dict | None, argv: list[str], *, address: str,
                 precision_here: str | None = None, lock_token: str | None = None) -> dict[str, Any]:
    """The record of a run that starts now: a new study's, or a resumed one's with a run added.
    `precision_here`: what settings.precision resolves to on the launching machine (every trial
    reports its own in its results). `lock_token`: the token of the lock the launch holds, by
    which the analysis of a study on object storage tells a killed driver (analysis.folder)."""
    record = dict(record or {})
    record.update(
        precision=settings.precision, precision_here=precision_here, scheduler=settings.scheduler,
        name=settings.name, space=settings.space, dataset=settings.dataset, preset=settings.preset,
        settings=dataclasses.asdict(settings), preset_values=PRESETS[settings.preset].as_dict(),
        objectives=[{"metric": m, "mode": mode} for m, mode in settings.objectives],
        sampler=settings.sampler, seeds=settings.seeds, seed=settings.seed,
        storage=settings.storage, experiment_dir=settings.experiment_dir,
        address=address, versions=versions(), status=StudyStatus.RUNNING.value,
    )
    record[RECORD_JOURNAL] = str(settings.journal_path)
    record.setdefault("argv", argv)
    record.setdefault("started_at", now())
    run = {"argv": argv, "started_at": now(), RUN_LOCK_TOKEN: lock_token}
    record[RECORD_RUNS] = record.get(RECORD_RUNS, []) + [run]
    return record


def finish_record(record: dict, *, finished: bool, counts: dict[str, int], trials: list[dict[str, Any]],
                  orphans: list[int], wall: float) -> None:
    """The end of a run: completed when Ray ended every trial, else interrupted (resumable);
    `trials` is the reconciled record of every trial (study.reconcile)."""
    status = StudyStatus.COMPLETED if finished else StudyStatus.INTERRUPTED
    record.update(status=status.value, ended_at=now(), counts=counts, orphaned_optuna_trials=orphans)
    record[RECORD_TRIALS] = trials
    record[RECORD_RUNS][-1].update(ended_at=now(), wall_time_s=round(wall, 1), status=status.value)


def is_finished(record: dict) -> bool:
    """A study whose every trial ended: resuming it changes nothing unless asked (--retry-failed)."""
    return record.get("status") == StudyStatus.COMPLETED.value


def failed_trials(record: dict) -> int:
    return sum(int((record.get("counts") or {}).get(k, 0)) for k in FAILED_OUTCOMES)


def journal_to_fetch(settings: Settings) -> bytes | None:
    """Resuming from object storage: the journal's copy there, when it is newer than the local
    journal (or there is none here); None to keep the local one. The journal only grows, so the
    newer of two copies starts with the other; copies that differ otherwise are refused."""
    if not settings.remote:
        return None
    remote = read_location(settings.journal_copy)
    local = settings.journal_path.read_bytes() if settings.journal_path.exists() else None
    if remote is None or remote == local or (local is not None and local.startswith(remote)):
        return None  # nothing there, the same, or the local one is ahead (it is copied up at the end)
    if local is None or remote.startswith(local):
        return remote
    raise LaunchError(f"the Optuna journal {settings.journal_path} and its copy {settings.journal_copy} differ (two "
                      "machines ran the study?): move the one that is not the study's away and resume again")


def write_journal(settings: Settings, data: bytes | None) -> None:
    """The fetched journal, atomically (a half-fetched journal would be taken for the study)."""
    if data is not None:
        write_atomic(settings.journal_path, data)
