"""One compact progress line per change of a running study, instead of Ray's tables.

    [  2:31] 3/8 finished (1 diverged, 0 errors), 2 running, 3 to go | best mig 0.214 (#2), rec_loss 48.1 (#0)

A line is printed when a trial finishes or the best finished values change; changes of the
running count alone are printed at most every RUNNING_EVERY_S seconds. A failed trial gets one
extra line with its reason (a trial whose node was lost: "node lost" and the path of Ray's
error.txt). "#n" is the trial's Optuna number. `quiet` and `RayLog` keep Ray's and Optuna's own
output off the console (Ray's goes to <experiment>/ray.log); `PendingWatch` ends a study whose
trials wait for a node that never comes; `JournalMirror` copies the journal to object storage.
"""

from __future__ import annotations

import logging
import logging.handlers
import math
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
import ray._private.worker as ray_worker  # its printer of cluster messages (RayLog)
from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.stopper import Stopper

from trainables.cli import one_line
from trainables.storage import FILE_MODE, join, write_bytes
from trainables.vocabulary import ERROR_FILE, FAILED_OUTCOMES, NODE_LOST, OPTUNA_NUMBER, Outcome

RUNNING_EVERY_S = 20.0


class ProgressLine(Callback):
    def __init__(self, objectives: Sequence[tuple[str, str]], total: int,
                 on_change: Callable[..., None] | None = None, experiment_dir: str | None = None) -> None:
        self.objectives = [(m, mode) for m, mode in objectives]  # (metric, "max" | "min")
        self.total = total
        self.on_change = on_change  # e.g. copy the Optuna journal up to object storage
        self.experiment_dir = experiment_dir  # where the trial folders are, for the path of error.txt
        self._last: tuple | None = None
        self._start = self._printed = time.monotonic()

    def __setstate__(self, state: dict) -> None:  # restored by Tuner.restore: a new clock
        self.__dict__.update(state)
        self._start = self._printed = time.monotonic()
        self._last = None

    # --- Ray Tune hooks ---------------------------------------------------------------------------
    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        self._maybe_print(trials)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        result = trial.last_result or {}
        if result.get("outcome") == Outcome.DIVERGED and not result.get("error"):
            reason = f"diverged at epoch {result.get('diverged_epoch')}"
        elif result.get("outcome") in FAILED_OUTCOMES:
            reason = str(result.get("error") or result.get("outcome")).splitlines()[0][:160]
        else:  # its worker died before it could report (trainables.trainable reports every error it sees)
            reason = f"{NODE_LOST} (Ray's message: {self._error_file(trial)})"
        self._print(f"trial {_label(trial)} failed: {reason}")

    def _error_file(self, trial: Trial) -> str:
        folder = Path(trial.path or trial.trial_id).name
        base = getattr(self, "experiment_dir", None)  # absent in a ProgressLine pickled before it existed
        return join(base, folder, ERROR_FILE) if base else f"{folder}/{ERROR_FILE}"

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        # no line: Ray's clean-up has just marked every trial with a live actor TERMINATED, also
        # after an interruption; the launcher's summary says how each one stands
        if self.on_change is not None:
            self.on_change(force=True)

    # --- the line ---------------------------------------------------------------------------------
    def summary(self, trials: list[Trial]) -> tuple:
        """(finished, diverged, errors, (running, paused at a rung), best values, stopped early):
        the best among the trials that trained every epoch (a stopped trial's values are of a
        shorter training)."""
        finished = diverged = errors = running = paused = stopped = 0
        best: dict[str, tuple[float, str]] = {}
        for t in trials:
            outcome = (t.last_result or {}).get("outcome")
            if t.status == "RUNNING":
                running += 1
            elif t.status == "PAUSED":  # waiting at a rung (MO-ASHA)
                paused += 1
            elif t.status in ("TERMINATED", "ERROR"):
                finished += 1
                if outcome == Outcome.DIVERGED:
                    diverged += 1
                elif t.status == "ERROR" or outcome == Outcome.ERROR:
                    errors += 1
                elif outcome == Outcome.RUNNING:  # stopped by the scheduler at a rung
                    stopped += 1
                else:
                    for metric, mode in self.objectives:
                        value = (t.last_result or {}).get(metric)
                        if isinstance(value, (int, float)) and math.isfinite(value):
                            old = best.get(metric)
                            better = old is None or (value > old[0] if mode == "max" else value < old[0])
                            if better:
                                best[metric] = (float(value), _label(t))
        return finished, diverged, errors, (running, paused), tuple(sorted(best.items())), stopped

    def _maybe_print(self, trials: list[Trial], force: bool = False) -> None:
        state = self.summary(trials)
        if state == self._last:
            if force and self.on_change is not None:
                self.on_change(force=True)
            return
        only_running = self._last is not None and state[:3] == self._last[:3] and state[4:] == self._last[4:]
        if only_running and not force and time.monotonic() - self._printed < RUNNING_EVERY_S:
            return
        self._last = state
        self._printed = time.monotonic()
        finished, diverged, errors, (running, paused), best, stopped = state
        to_go = max(0, self.total - finished - running - paused)
        early = f"{stopped} stopped early, " if stopped else ""
        waiting = f"{paused} paused at a rung, " if paused else ""
        line = (f"{finished}/{self.total} finished ({early}{diverged} diverged, {errors} errors), {running} running, "
                f"{waiting}{to_go} to go")
        if best:
            line += " | best " + ", ".join(f"{m} {v:.4g} ({who})" for m, (v, who) in best)
        self._print(line)
        if self.on_change is not None:
            self.on_change(force=force)

    def _print(self, text: str) -> None:
        elapsed = int(time.monotonic() - self._start)
        print(f"[{elapsed // 60:3d}:{elapsed % 60:02d}] {text}", file=sys.stdout, flush=True)


def _label(trial: Trial) -> str:
    number = (trial.config or {}).get(OPTUNA_NUMBER)
    return f"#{number}" if number is not None else trial.trial_id


class JournalMirror:
    """Copy the local Optuna journal to the experiment folder on object storage (at most once a
    minute while running, and once at the end), so the study can be resumed elsewhere. A failed
    copy is one warning line, never the end of a study: the local journal is the study."""

    def __init__(self, local: str, remote: str, every_s: float = 60.0) -> None:
        self.local, self.remote, self.every_s = local, remote, every_s
        self._last = 0.0
        self._failing = False

    def __call__(self, force: bool = True) -> bool:
        """True when the copy is up to date."""
        if time.monotonic() - self._last < self.every_s and not force:
            return True
        self._last = time.monotonic()
        try:
            write_bytes(self.remote, Path(self.local).read_bytes())
        except Exception as e:  # pyarrow / network errors: multi-line texts
            if not self._failing:
                print(f"warning: the Optuna journal could not be copied to {self.remote} ({one_line(e, 160)}); "
                      f"the study is in {self.local}", file=sys.stderr, flush=True)
            self._failing = True
            return False
        self._failing = False
        return True


class PendingWatch(Callback, Stopper):
    """Ends the run when trials wait and none has been running for `timeout_s` (no node can
    hold a trial, e.g. GPU trials on a cluster whose GPU workers never come), printing a line
    every `every_s` while it waits. It ends the run as a Ctrl-C does -- Ray Tune's own SIGUSR1
    handler: the waiting trials stay PENDING and --resume continues them; where that handler
    is not installed, it stops the experiment as a Stopper."""

    restored_timeout_s: float | None = None  # the resuming run's --pending-timeout (set before Tuner.restore)

    def __init__(self, timeout_s: float, every_s: float = 60.0) -> None:
        self.timeout_s, self.every_s = timeout_s, every_s
        self.fired = False
        self._since: float | None = None  # when the current wait began
        self._said = 0.0

    def __setstate__(self, state: dict) -> None:  # restored by Tuner.restore: a new wait, this run's timeout
        self.__dict__.update(state)
        self._since, self.fired = None, False
        self.timeout_s = PendingWatch.restored_timeout_s or self.timeout_s

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        waiting = [t for t in trials if t.status == "PENDING"]
        if not waiting or any(t.status == "RUNNING" for t in trials) or self.fired:
            self._since = None
            return
        now = time.monotonic()
        if self._since is None:
            self._since, self._said = now, now
        waited = now - self._since
        if waited >= self.timeout_s:
            self.fired = True
            print(f"no trial could start for {duration(waited)} (--pending-timeout): no node can hold one; the "
                  "study stops here", flush=True)
            if callable(signal.getsignal(signal.SIGUSR1)):  # Ray Tune's interrupt handler
                os.kill(os.getpid(), signal.SIGUSR1)
        elif now - self._said >= self.every_s:
            self._said = now
            print(f"waiting {duration(waited)} for a node that can hold a trial ({len(waiting)} trials waiting, at "
                  f"most {duration(self.timeout_s)})", flush=True)

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.fired and not callable(signal.getsignal(signal.SIGUSR1))


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


# --- Ray's and Optuna's own console output ----------------------------------------------------------
def quiet(verbose: bool) -> None:
    """Optuna's warnings only; without `verbose`, none of Ray Tune's tables (Ray's log lines go
    to ray.log: RayLog)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if verbose:
        return
    # Ray Tune's newer console output prints tables even at verbose=0; the older one is silent.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


class RayLog:
    """Ray's own log lines (its warnings, its multi-line hints such as "Resume experiment with:
    Tuner.restore(...)", which is not this tool's resume command) go to <experiment>/ray.log
    instead of the console, so the tool's lines stay readable. Until the experiment folder is
    ours (the checks passed, the lock is held) they wait in memory; a refused launch writes
    nothing. With -v, Ray prints as usual."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self._buffer = logging.handlers.BufferingHandler(capacity=10_000)
        self._file: logging.Handler | None = None
        self._console: list[logging.Handler] = []  # Ray's own handlers, put back by close()
        self._printer = None  # Ray's printer of cluster messages, put back by close()
        self._warnings: tuple[list[logging.Handler], bool] | None = None
        self.capture()

    def capture(self) -> None:
        """Take Ray's logger over again (ray.init re-installs its console handler)."""
        if self.verbose:
            return
        logger = logging.getLogger("ray")
        for handler in list(logger.handlers):
            if handler not in (self._buffer, self._file):
                logger.removeHandler(handler)
                self._console.append(handler)
        if (self._file or self._buffer) not in logger.handlers:
            logger.addHandler(self._file or self._buffer)
        warned = logging.getLogger("py.warnings")  # Ray's Python warnings too (two lines each otherwise)
        if self._warnings is None:
            self._warnings = (list(warned.handlers), warned.propagate)
        logging.captureWarnings(True)
        warned.handlers, warned.propagate = [self._file or self._buffer], False
        # The cluster's error messages ("(raylet) The node ... has been marked dead ...") reach the
        # driver through Ray's error listener, which prints them itself (Ray 2.x, private).
        if self._printer is None and callable(getattr(ray_worker, "print_to_stdstream", None)):
            self._printer = ray_worker.print_to_stdstream
            ray_worker.print_to_stdstream = _log_cluster_message

    def to_file(self, path: str | os.PathLike) -> None:
        """From now on into `path` (appended), starting with what waited in memory."""
        if self.verbose or self._file is not None:
            return
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._file = logging.FileHandler(path, encoding="utf-8")
        self._file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        os.chmod(path, FILE_MODE)
        for record in self._buffer.buffer:
            self._file.handle(record)
        self._buffer.buffer.clear()
        logging.getLogger("ray").removeHandler(self._buffer)
        self.capture()

    def close(self) -> None:
        """Ray's logger and Python's warnings as they were before."""
        if self.verbose:
            return
        logger = logging.getLogger("ray")
        for handler in (self._file, self._buffer):
            if handler is not None:
                logger.removeHandler(handler)
                handler.close()
        for handler in self._console:
            logger.addHandler(handler)  # a no-op for a handler that is there already
        self._console, self._file = [], None
        if self._warnings is not None:
            warned = logging.getLogger("py.warnings")
            warned.handlers, warned.propagate = self._warnings
            logging.captureWarnings(False)
            self._warnings = None
        if self._printer is not None:
            ray_worker.print_to_stdstream, self._printer = self._printer, None


def _log_cluster_message(data: dict, ignore_prefix: bool = False) -> None:
    """In place of Ray's printer of cluster messages: into Ray's log (ray.log)."""
    lines = "\n".join(str(line) for line in data.get("lines", []))
    logging.getLogger("ray.cluster").warning("(%s, pid %s) %s", data.get("ip") or "cluster", data.get("pid"), lines)
