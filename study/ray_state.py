"""Ray Tune's experiment state: the trials Ray holds for an experiment and how each stands.

Ray Tune checkpoints the driver's view of an experiment into ``experiment_state-<time>.json`` in
the experiment folder (Ray 2.x: ``{"trial_data": [[trial_json, run_metadata_json], ...], ...}``;
``trial_json`` holds ``trial_id``, ``status``, ``config``, ``relative_logdir`` and
``experiment_tag``, ``run_metadata_json`` holds ``num_failures``, ``start_time`` and
``error_filename``). The launcher reads it to resume, the analysis to tell how each trial
ended; it is parsed here, once. The format is Ray's, not a public API: anything unreadable is
reported as "no state" and the callers fall back on the trials' own files.

`correct_ended` repairs one known gap of Ray 2.x: a trial whose actor died with its node is
ERROR in the driver's memory (and in the ResultGrid), but its last snapshot in the file still
says RUNNING (Ray's TuneController skips the snapshot of a trial whose actor is already gone),
so a later restore would train it again and readers would show it running.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs

from trainables.storage import filesystem, join, write_bytes
from trainables.vocabulary import ERROR_FILE

STATE_PREFIX = "experiment_state-"


@dataclass(frozen=True)
class RayTrial:
    trial_id: str
    status: str | None  # PENDING, RUNNING, PAUSED, TERMINATED, ERROR
    logdir: str | None  # the trial folder, relative to the experiment folder
    config: dict[str, Any] | None
    tag: str | None
    num_failures: int | None
    start_time: float | None
    error_file: str | None


def read_ray_trials(experiment: str | os.PathLike) -> dict[str, RayTrial] | None:
    """trial_id -> RayTrial from the newest experiment state in the folder (a local path or a
    URI); None when there is none or it cannot be read."""
    try:
        _, data = _newest_state(experiment)
        return dict(_trial(item) for item in data["trial_data"])
    except Exception:  # Ray's internal format: unreadable means "no state"
        return None


def _newest_state(experiment: str | os.PathLike) -> tuple[str, dict[str, Any]]:
    """(location, content) of the newest experiment_state-*.json; an exception if none."""
    fs, path = filesystem(experiment)
    names = sorted(i.base_name for i in fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
                   if i.base_name.startswith(STATE_PREFIX) and i.base_name.endswith(".json"))
    if not names:
        raise FileNotFoundError(f"no {STATE_PREFIX}*.json in {experiment}")
    with fs.open_input_stream(join(path, names[-1])) as f:
        return join(str(experiment), names[-1]), json.loads(f.read())


def correct_ended(experiment: str | os.PathLike, ended: dict[str, str]) -> list[str]:
    """Write the end status of each trial in `ended` (trial_id -> "ERROR" | "TERMINATED", from the
    driver's memory) into the newest experiment state where it still says otherwise; an ERROR
    that the file missed also counts as one more failure, with Ray's error.txt. Returns the
    trial ids corrected (none when the state cannot be read)."""
    try:
        location, data = _newest_state(experiment)
    except Exception:  # no state: nothing to correct
        return []
    corrected = []
    for item in data.get("trial_data", []):
        meta = json.loads(item[0]) if isinstance(item[0], str) else item[0]
        status = ended.get(meta.get("trial_id"))
        if status is None or meta.get("status") == status:
            continue
        meta["status"] = status
        item[0] = json.dumps(meta, indent=2)
        if status == "ERROR" and len(item) > 1 and isinstance(item[1], str):
            run = json.loads(item[1])
            run["num_failures"] = int(run.get("num_failures") or 0) + 1
            run["error_filename"] = run.get("error_filename") or ERROR_FILE
            item[1] = json.dumps(run)
        corrected.append(meta["trial_id"])
    if corrected:
        write_bytes(location, json.dumps(data))
    return corrected


def _trial(item: list[Any]) -> tuple[str, RayTrial]:
    meta = json.loads(item[0]) if isinstance(item[0], str) else item[0]
    run = json.loads(item[1]) if len(item) > 1 and isinstance(item[1], str) else (item[1] if len(item) > 1 else {})
    run = run if isinstance(run, dict) else {}
    config = meta.get("config")
    trial = RayTrial(
        trial_id=meta["trial_id"], status=meta.get("status"), logdir=meta.get("relative_logdir"),
        config=config if isinstance(config, dict) else None, tag=meta.get("experiment_tag"),
        num_failures=run.get("num_failures"), start_time=run.get("start_time"), error_file=run.get("error_filename"),
    )
    return trial.trial_id, trial
