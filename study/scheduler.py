"""Multi-objective asynchronous successive halving (MO-ASHA) as a Ray Tune scheduler.

    scheduler = MultiObjectiveASHA([("mig", "max"), ("rec_loss", "min")], max_t=9, grace_period=1,
                                   reduction_factor=3)

ASHA (Li et al. 2020) lets every trial run to a rung -- epochs grace_period * reduction_factor^k
below max_t -- and compares it there with every trial that reached the same rung before it. With
several objectives there is no single order, so MO-ASHA (Schmucker et al. 2021, "Multi-objective
multi-fidelity hyperparameter optimization with application to fairness"; Syne Tune's MOASHA)
ranks a rung by non-dominated sorting: the Pareto front of the rung first, then the front of the
rest, and so on. Within one front the tie-break keeps the front spread out: points with a larger
crowding distance (NSGA-II, Deb et al. 2002; objectives scaled to the rung's range) come first,
the two ends of each objective before everything else. A trial continues when it ranks within
the top max(1, n // reduction_factor) of the n trials recorded at its rung, itself included;
otherwise it stops there. This is ASHA's stopping variant: decisions are made on arrival, no
trial waits for others (asynchronous), and one objective is the plain ASHA order.

Why stopping, not pausing: the promotion variant pauses every trial at every rung until enough
trials have arrived, and Ray Tune's concurrency limit (``max_concurrent_trials``) counts a paused
trial as running, so two paused trials would hold a two-slot study still. Stopping needs no
pause.

Checkpoint-aware: the rung records are the only state, and they are rebuilt from the trials'
own result files when a study is resumed (``on_trial_add``), so a trial that Ray paused or that
was interrupted resumes from its checkpoint without passing a rung twice, and later trials are
compared with every trial recorded before the interruption.

Results whose ``outcome`` is a failure (sentinel values) never enter a rung; a rung reads a
result only when its metrics were measured at that epoch (``metrics_epoch``): the trainable
measures the fast metrics at every rung (trial key ``metrics_at``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from trainables.vocabulary import FAILED_OUTCOMES, RESULT_FILE

TIME_ATTR = "epoch"
FRESH_ATTR = "metrics_epoch"  # the epoch the reported metrics were measured at


def rung_epochs(max_t: int, grace_period: int, reduction_factor: float) -> list[int]:
    """The epochs at which trials are compared: grace_period * reduction_factor^k below max_t."""
    if grace_period < 1 or reduction_factor <= 1:
        raise ValueError(f"grace_period must be >= 1 and reduction_factor > 1, got {grace_period}, "
                         f"{reduction_factor}")
    rungs, epoch = [], float(grace_period)
    while round(epoch) < max_t:
        if not rungs or round(epoch) > rungs[-1]:
            rungs.append(round(epoch))
        epoch *= reduction_factor
    return rungs


def nondominated_order(costs: np.ndarray) -> list[int]:
    """Row indices of `costs` (n, m), lower is better in every column, best first: by
    non-dominated front, then within a front by crowding distance (largest first, the ends of
    each objective first), then by row (earlier first). NaN counts as the worst value."""
    costs = np.where(np.isnan(costs), np.inf, np.asarray(costs, dtype=float))
    remaining = list(range(len(costs)))
    order: list[int] = []
    while remaining:
        front = [i for i in remaining if not any(_dominates(costs[j], costs[i]) for j in remaining if j != i)]
        crowding = _crowding(costs[front])
        order += [front[k] for k in sorted(range(len(front)), key=lambda k: (-crowding[k], front[k]))]
        remaining = [i for i in remaining if i not in front]
    return order


def _dominates(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(a <= b) and np.any(a < b))


def _crowding(front: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of each point of one front, objectives scaled to the front's
    range; the extreme points of every objective get infinity."""
    n, m = front.shape
    distance = np.zeros(n)
    for col in range(m):
        values = front[:, col]
        order = np.argsort(values, kind="stable")
        finite = values[np.isfinite(values)]
        span = float(finite.max() - finite.min()) if len(finite) else 0.0
        distance[order[0]] = distance[order[-1]] = math.inf
        if n < 3 or span <= 0 or not math.isfinite(span):
            continue
        gaps = (values[order[2:]] - values[order[:-2]]) / span
        distance[order[1:-1]] += np.where(np.isfinite(gaps), gaps, 0.0)
    return distance


class MultiObjectiveASHA(FIFOScheduler):
    """MO-ASHA over `objectives` [(metric, "max" | "min"), ...] with rungs on the epoch (module
    docstring). Pending trials start in the order Tune adds them (FIFO)."""

    def __init__(self, objectives: Sequence[tuple[str, str]], *, max_t: int, grace_period: int = 1,
                 reduction_factor: float = 3.0) -> None:
        super().__init__()
        if not objectives:
            raise ValueError("MultiObjectiveASHA needs at least one objective")
        self.objectives = [(str(m), str(mode)) for m, mode in objectives]
        self.max_t, self.grace_period, self.reduction_factor = int(max_t), int(grace_period), float(reduction_factor)
        self.rungs = rung_epochs(self.max_t, self.grace_period, self.reduction_factor)
        self._recorded: dict[int, dict[str, np.ndarray]] = {r: {} for r in self.rungs}  # rung -> trial -> costs
        self.stopped: dict[str, int] = {}  # trial_id -> the epoch it stopped at

    # --- Ray Tune hooks ---------------------------------------------------------------------------
    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        """A trial restored with a resumed study brings its rung values back from its results."""
        for result in _reported_results(trial):
            self._record(trial.trial_id, result)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        rung = self._record(trial.trial_id, result)
        if rung is None or self._passes(trial.trial_id, rung):
            return TrialScheduler.CONTINUE
        self.stopped[trial.trial_id] = int(result[TIME_ATTR])
        return TrialScheduler.STOP

    def debug_string(self) -> str:
        filled = ", ".join(f"epoch {r}: {len(self._recorded[r])}" for r in self.rungs)
        return f"MO-ASHA over {[m for m, _ in self.objectives]}, rungs ({filled}), {len(self.stopped)} stopped"

    # --- the rungs --------------------------------------------------------------------------------
    def _record(self, trial_id: str, result: dict) -> int | None:
        """Record a result that reaches a rung for the first time; returns that rung, else None."""
        epoch = result.get(TIME_ATTR)
        if not isinstance(epoch, (int, float)) or result.get("outcome") in FAILED_OUTCOMES:
            return None
        epoch = int(epoch)
        if epoch not in self._recorded or trial_id in self._recorded[epoch]:
            return None
        if result.get(FRESH_ATTR, epoch) != epoch:  # metrics from an earlier epoch: not this rung's
            return None
        self._recorded[epoch][trial_id] = self._costs(result)
        return epoch

    def _costs(self, result: dict) -> np.ndarray:
        """The objectives of a result, signed so that lower is better; missing values are NaN."""
        values = []
        for metric, mode in self.objectives:
            v = result.get(metric)
            v = float(v) if isinstance(v, (int, float)) and math.isfinite(v) else math.nan
            values.append(-v if mode == "max" else v)
        return np.array(values)

    def _passes(self, trial_id: str, rung: int) -> bool:
        recorded = self._recorded[rung]
        ids = list(recorded)  # arrival order: the tie-break of last resort
        order = nondominated_order(np.stack([recorded[i] for i in ids]))
        keep = max(1, int(len(ids) // self.reduction_factor))
        return ids.index(trial_id) in order[:keep]


def _reported_results(trial: Trial) -> list[dict]:
    """The results a trial has written to its result file (none for a trial that never ran)."""
    try:
        fs = trial.storage.storage_filesystem
        with fs.open_input_stream(str(PurePosixPath(trial.path) / RESULT_FILE)) as f:
            lines = f.read().decode().splitlines()
    except Exception:  # no folder or file yet: a new trial
        return []
    results = []
    for line in lines:
        try:
            results.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by an interruption
            continue
    return results
