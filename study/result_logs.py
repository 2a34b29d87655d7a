"""Ray Tune's JSON and CSV result loggers (result.json, progress.csv), without one overwrite.

When a trial starts again, Ray Tune's loggers copy the trial's file back from the storage path
over the driver's own copy as they open it (``LoggerCallback._restore_from_remote``, Ray 2.60):
the JSON logger at every start -- a trial MO-ASHA paused at a rung and now promotes -- and both
after a failure (a lost node, a retry). The storage copy is only as new as the last background
sync of the driver's staging folder (every 10 s or more), so such a trial loses what it reported
since: its result.json skips the rung's epoch, and the history, the report and a resumed
scheduler miss it (tests/test_result_logs.py shows both loggers doing it). Within one driver the
local file is the newest, so these copy from storage only when the driver has none: a resumed
study, whose staging folder is new."""

from __future__ import annotations

from pathlib import Path

from ray.tune.experiment import Trial
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback


class _LocalCopyFirst:
    def _restore_from_remote(self, file_name: str, trial: Trial) -> None:
        if not Path(trial.local_path, file_name).exists():
            super()._restore_from_remote(file_name, trial)  # type: ignore[misc]


class JsonResults(_LocalCopyFirst, JsonLoggerCallback):
    """result.json, one line per report, kept whole across a trial's restarts."""


class CsvResults(_LocalCopyFirst, CSVLoggerCallback):
    """progress.csv, one row per report, kept whole across a trial's restarts."""
