"""Ray Tune's experiment state: the trials Ray holds for an experiment and how each stands.

Ray Tune checkpoints the driver's view of an experiment into ``experiment_state-<time>.json`` in
the experiment folder (Ray 2.x: ``{"trial_data": [[trial_json, run_metadata_json], ...], ...}``;
``trial_json`` holds ``trial_id``, ``status``, ``config``, ``relative_logdir`` and
``experiment_tag``, ``run_metadata_json`` holds ``num_failures``, ``start_time`` and
``error_filename``). The launcher reads it to resume, the analysis to tell how each trial
ended; it is parsed here, once. The format is Ray's, not a public API: anything unreadable is
reported as "no state" and the callers fall back on the trials' own files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs

from trainables.storage import filesystem, join

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
        fs, path = filesystem(experiment)
        names = sorted(i.base_name for i in fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
                       if i.base_name.startswith(STATE_PREFIX) and i.base_name.endswith(".json"))
        if not names:
            return None
        with fs.open_input_stream(join(path, names[-1])) as f:
            data = json.loads(f.read())
        return dict(_trial(item) for item in data["trial_data"])
    except Exception:  # Ray's internal format: unreadable means "no state"
        return None


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
