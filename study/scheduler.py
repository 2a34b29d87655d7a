"""Multi-objective asynchronous successive halving (MO-ASHA) as a Ray Tune scheduler.

    scheduler = MultiObjectiveASHA([("mig", "max"), ("rec_loss", "min")], max_t=9, grace_period=1,
                                   reduction_factor=3, keep_extremes=True)
    search_alg = SlotLimiter(searcher, max_concurrent=2)   # a paused trial holds no slot

ASHA (Li et al. 2020) trains every configuration to the first rung -- epochs grace_period *
reduction_factor^k below max_t -- and promotes a trial from a rung to the next only while it is
among the top n // reduction_factor of the n trials that have reached that rung. With several
objectives there is no single order, so MO-ASHA (Schmucker et al. 2021, "Multi-objective
multi-fidelity hyperparameter optimization with application to fairness"; Syne Tune's MOASHA)
ranks a rung by non-dominated sorting: the Pareto front of the rung first, then the front of the
rest, and so on. Within one front the tie-break keeps the front spread out: points with a larger
crowding distance (NSGA-II, Deb et al. 2002; objectives scaled to the front's range) come first,
the two ends of each objective before everything else (Syne Tune orders a front by an epsilon-net
instead; Schmucker et al. compare both). One objective is plain ASHA.

``keep_extremes`` (the default): once a rung promotes at all (n >= reduction_factor), each
objective's best trial there goes on too, besides the top n // reduction_factor. With few trials
per rung n // reduction_factor is 1, and one trial cannot stand for a front of two objectives:
the plain rule keeps one end of the front and stops the other (docs/bench/mo_asha.md measures
both). It costs at most one promotion per objective and rung, and gives no free pass: a rung with
fewer than reduction_factor trials still promotes nothing.

This is ASHA's promotion variant, asynchronous: a trial that reaches a rung is promoted at once
when it ranks high enough, else it pauses there (its checkpoint is that epoch's) and its slot
takes the next configuration. Whenever a slot is free, a paused trial that more arrivals have
made promotable resumes first (from the highest rung), where it stopped; else a new
configuration starts. When no configuration is left and nothing runs, the paused trials that
were never promoted are stopped: "stopped at epoch k". Unlike the stopping variant, the first
trials to reach a rung do not go on just because they came first.

Checkpoint-aware: every epoch is a checkpoint, a paused trial resumes from its own, and on a
resumed study the rung records, the promotions and the paused trials are rebuilt from the
trials' result files (``on_trial_add``), so no trial passes a rung without its decision.

Results whose ``outcome`` is a failure (sentinel values) never enter a rung; a rung reads a
result only when its metrics were measured at that epoch (``metrics_epoch``): the trainable
measures the fast metrics at every rung (trial key ``metrics_at``). Ray Tune's own concurrency
limit counts a paused trial as running, so two paused trials would hold a two-slot study still:
use ``SlotLimiter`` instead of ``TuneConfig(max_concurrent_trials=...)``.
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
from ray.tune.search import ConcurrencyLimiter, Searcher

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


def reaches_the_end(trials: int, rungs: Sequence[int], reduction_factor: float) -> bool:
    """Whether `trials` configurations are enough for one to pass every rung: about one in
    reduction_factor passes each, and a rung with fewer trials than that promotes nothing."""
    return trials >= reduction_factor ** len(rungs)


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


def each_best(costs: np.ndarray, order: list[int]) -> list[int]:
    """For each column of `costs` (lower is better), the row with the lowest value; among equal
    values the one first in `order` (nondominated_order's, so never a dominated one)."""
    costs = np.where(np.isnan(costs), np.inf, np.asarray(costs, dtype=float))
    position = {row: k for k, row in enumerate(order)}
    return [min(range(len(costs)), key=lambda row: (costs[row, col], position[row])) for col in range(costs.shape[1])]


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
    docstring). New trials start in the order Tune adds them, after any promotable paused one."""

    def __init__(self, objectives: Sequence[tuple[str, str]], *, max_t: int, grace_period: int = 1,
                 reduction_factor: float = 3.0, keep_extremes: bool = True) -> None:
        super().__init__()
        if not objectives:
            raise ValueError("MultiObjectiveASHA needs at least one objective")
        self.objectives = [(str(m), str(mode)) for m, mode in objectives]
        self.max_t, self.grace_period, self.reduction_factor = int(max_t), int(grace_period), float(reduction_factor)
        self.keep_extremes = bool(keep_extremes)
        self.rungs = rung_epochs(self.max_t, self.grace_period, self.reduction_factor)
        self._recorded: dict[int, dict[str, np.ndarray]] = {r: {} for r in self.rungs}  # rung -> trial -> costs
        self._promoted: dict[int, set[str]] = {r: set() for r in self.rungs}
        self.paused: dict[str, int] = {}  # trial_id -> the rung it waits at
        self.stopped: dict[str, int] = {}  # trial_id -> the epoch it was stopped at

    # --- Ray Tune hooks ---------------------------------------------------------------------------
    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        """A trial restored with a resumed study brings its rungs back from its results; one that
        waited at a rung waits there again."""
        results = _reported_results(trial)
        for result in results:
            self._record(trial.trial_id, result)
        last = int(results[-1].get(TIME_ATTR, 0)) if results else 0
        for rung in self.rungs:
            if trial.trial_id in self._recorded[rung] and last > rung:
                self._promoted[rung].add(trial.trial_id)
        waiting = trial.status in (Trial.PENDING, Trial.PAUSED) and last in self._recorded
        if waiting and trial.trial_id in self._recorded[last] and trial.trial_id not in self._promoted[last]:
            self.paused[trial.trial_id] = last
            trial.set_status(Trial.PAUSED)  # before Tune files it under its status

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        rung = self._record(trial.trial_id, result)
        if rung is None:
            return TrialScheduler.CONTINUE
        if trial.trial_id in self._promotable(rung):
            self._promoted[rung].add(trial.trial_id)
            return TrialScheduler.CONTINUE
        self.paused[trial.trial_id] = rung
        limiter = _limiter(tune_controller)
        if limiter is not None:
            limiter.on_pause(trial.trial_id)
        return TrialScheduler.PAUSE

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict) -> None:
        self.paused.pop(trial.trial_id, None)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        self.paused.pop(trial.trial_id, None)

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self.paused.pop(trial.trial_id, None)

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        """A paused trial that has become promotable (highest rung first), else the first
        pending trial; with no configuration left and nothing running, stop the paused ones."""
        trials = {t.trial_id: t for t in tune_controller.get_trials()}
        limiter = _limiter(tune_controller)
        if limiter is None or limiter.has_slot():
            for rung in reversed(self.rungs):
                for trial_id in self._promotable(rung):
                    if self.paused.get(trial_id) == rung and trials.get(trial_id) is not None:
                        del self.paused[trial_id]
                        self._promoted[rung].add(trial_id)
                        if limiter is not None:
                            limiter.on_unpause(trial_id)
                        return trials[trial_id]
        pending = next((t for t in trials.values() if t.status == Trial.PENDING), None)
        if pending is not None:
            return pending
        busy = any(t.status == Trial.RUNNING for t in trials.values())
        if self.paused and not busy and tune_controller.search_alg.is_finished():
            self._stop_paused(tune_controller, trials)
        return None

    def debug_string(self) -> str:
        filled = ", ".join(f"epoch {r}: {len(self._recorded[r])}" for r in self.rungs)
        return (f"MO-ASHA over {[m for m, _ in self.objectives]}, rungs ({filled}), {len(self.paused)} paused, "
                f"{len(self.stopped)} stopped")

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

    def _promotable(self, rung: int) -> list[str]:
        """The trials of the rung's top n // reduction_factor -- with `keep_extremes` also each
        objective's best, once n // reduction_factor >= 1 -- not promoted yet, best first."""
        recorded = self._recorded[rung]
        ids = list(recorded)  # arrival order: the tie-break of last resort
        if not ids:
            return []
        costs = np.stack([recorded[i] for i in ids])
        order = nondominated_order(costs)
        top = order[:int(len(ids) // self.reduction_factor)]
        if top and self.keep_extremes:
            top += [i for i in each_best(costs, order) if i not in top]
        return [ids[i] for i in top if ids[i] not in self._promoted[rung]]

    def _stop_paused(self, tune_controller: Any, trials: dict[str, Trial]) -> None:
        """The end of the study: the paused trials that were never promoted stop where they wait."""
        limiter = _limiter(tune_controller)
        for trial_id, rung in list(self.paused.items()):
            del self.paused[trial_id]
            self.stopped[trial_id] = rung
            if limiter is not None:
                limiter.on_unpause(trial_id)  # so that its completion reaches the searcher
            if trial_id in trials:
                tune_controller.stop_trial(trials[trial_id])
                _mark_for_experiment_state(tune_controller, trials[trial_id])


class SlotLimiter(ConcurrencyLimiter):
    """Ray Tune's ConcurrencyLimiter, except that a trial the scheduler paused at a rung holds no
    slot: MultiObjectiveASHA tells it (``on_pause`` / ``on_unpause``, the hooks Ray's BOHB uses)."""

    def __init__(self, searcher: Searcher, max_concurrent: int) -> None:
        super().__init__(searcher, max_concurrent=max_concurrent)
        self.paused: set[str] = set()

    def has_slot(self) -> bool:
        return len(self.live_trials) < self.max_concurrent

    def on_pause(self, trial_id: str) -> None:
        if trial_id in self.live_trials:
            self.live_trials.remove(trial_id)
            self.num_unfinished_live_trials -= 1
            self.paused.add(trial_id)

    def on_unpause(self, trial_id: str) -> None:
        if trial_id in self.paused:
            self.paused.remove(trial_id)
            self.live_trials.add(trial_id)
            self.num_unfinished_live_trials += 1

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.on_unpause(trial_id)  # a trial that ends while paused ends like any other
        if trial_id not in self.live_trials:  # suggested before a resume: still the searcher's to tell
            self.searcher.on_trial_complete(trial_id, result=result, error=error)
            return
        super().on_trial_complete(trial_id, result=result, error=error)


def _mark_for_experiment_state(tune_controller: Any, trial: Trial) -> None:
    """Ray Tune 2.x writes a stopped trial's new status into the experiment state only when the
    trial had an actor; a paused one has none and would be saved as PAUSED. Mark it (Tune's own
    call, behind the wrapper it hands to schedulers), so analysis and --resume see TERMINATED."""
    controller = getattr(tune_controller, "_tune_controller", tune_controller)
    mark = getattr(controller, "_mark_trial_to_checkpoint", None)
    if mark is not None:
        mark(trial)


def _limiter(tune_controller: Any) -> SlotLimiter | None:
    """The study's SlotLimiter behind Tune's search algorithm, if it has one."""
    searcher = getattr(getattr(tune_controller, "search_alg", None), "searcher", None)
    while searcher is not None and not isinstance(searcher, SlotLimiter):
        searcher = getattr(searcher, "searcher", None)
    return searcher


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
