"""One compact progress line per change of a running study, instead of Ray's tables.

    [  2:31] 3/8 finished (1 diverged, 0 errors), 2 running, 3 to go | best mig 0.214 (#2), rec_loss 48.1 (#0)

A line is printed when a trial finishes or the best finished values change; changes of the
running count alone are printed at most every RUNNING_EVERY_S seconds. A failed trial gets one
extra line with its reason. "#n" is the trial's Optuna number. `quiet` silences what Ray and
Optuna would print instead.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from ray.tune import Callback
from ray.tune.experiment import Trial

from trainables.storage import write_bytes
from trainables.vocabulary import OPTUNA_NUMBER, Outcome

RUNNING_EVERY_S = 20.0


class ProgressLine(Callback):
    def __init__(self, objectives: Sequence[tuple[str, str]], total: int,
                 on_change: Callable[..., None] | None = None) -> None:
        self.objectives = [(m, mode) for m, mode in objectives]  # (metric, "max" | "min")
        self.total = total
        self.on_change = on_change  # e.g. copy the Optuna journal up to object storage
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
        reason = result.get("error") or (f"diverged at epoch {result.get('diverged_epoch')}"
                                         if result.get("outcome") == Outcome.DIVERGED else "error (see error.txt)")
        self._print(f"trial {_label(trial)} failed: {str(reason).splitlines()[0][:160]}")

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        self._maybe_print(trials, force=True)

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
    minute while running, and once at the end), so the study can be resumed elsewhere."""

    def __init__(self, local: str, remote: str, every_s: float = 60.0) -> None:
        self.local, self.remote, self.every_s = local, remote, every_s
        self._last = 0.0

    def __call__(self, force: bool = True) -> None:
        if time.monotonic() - self._last < self.every_s and not force:
            return
        write_bytes(self.remote, Path(self.local).read_bytes())
        self._last = time.monotonic()


# --- Ray's and Optuna's own console output ----------------------------------------------------------
class _DropTrialFailures(logging.Filter):
    """Ray Tune logs every failed trial with its traceback; the progress line has said it once."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not (text.startswith(("Trial task failed", "Trials did not complete", "Cannot tell a "))
                    or "errored after" in text)


def quiet(verbose: bool) -> None:
    """Optuna's warnings only; without `verbose`, none of Ray Tune's tables and tracebacks."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if verbose:
        return
    # Ray Tune's newer console output prints tables even at verbose=0; the older one is silent.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # the loggers that emit them (a logger's filter sees only its own records)
    for name in ("ray.tune.tune", "ray.tune.execution.tune_controller", "ray.tune.search.optuna.optuna_search"):
        logging.getLogger(name).addFilter(_DropTrialFailures())
