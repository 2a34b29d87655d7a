"""MO-ASHA (study/scheduler.py) on hand-made results, and how a stopped trial reaches Optuna."""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pyarrow.fs as pafs
import pytest
from ray.tune.schedulers import TrialScheduler

from study.scheduler import MultiObjectiveASHA, nondominated_order, rung_epochs
from study.searcher import SeededSpace, StudySearch
from trainables.vocabulary import STOPPED_AT_EPOCH, VALUES_AT_STOP

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP
OBJECTIVES = [("mig", "max"), ("rec_loss", "min")]


class FakeTrial:
    def __init__(self, trial_id: str, path: str = "/nonexistent"):
        self.trial_id, self.path = trial_id, path
        self.storage = type("Storage", (), {"storage_filesystem": pafs.LocalFileSystem()})()


def result(epoch: int, mig: float, rec: float, **extra) -> dict:
    return {"epoch": epoch, "metrics_epoch": epoch, "mig": mig, "rec_loss": rec, "outcome": "running", **extra}


def test_rungs_are_grace_times_powers_of_the_reduction_factor_below_the_last_epoch():
    assert rung_epochs(9, 1, 3) == [1, 3]
    assert rung_epochs(10, 1, 3) == [1, 3, 9]
    assert rung_epochs(200, 10, 3) == [10, 30, 90]
    assert rung_epochs(8, 1, 2) == [1, 2, 4]
    assert rung_epochs(1, 1, 3) == []
    with pytest.raises(ValueError):
        rung_epochs(9, 0, 3)


def test_nondominated_order_puts_fronts_first_and_spreads_each_front():
    costs = np.array([[0.0, 4.0], [1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [4.0, 0.0],  # front 1
                      [3.0, 3.0], [4.0, 4.0]])                                       # fronts 2 and 3
    order = nondominated_order(costs)
    assert set(order[:5]) == {0, 1, 2, 3, 4} and order[5:] == [5, 6]
    assert set(order[:2]) == {0, 4}  # the ends of the front first (infinite crowding distance)
    # one objective: plain sorting; NaN is the worst value
    assert nondominated_order(np.array([[3.0], [1.0], [math.nan], [2.0]])) == [1, 3, 0, 2]


def test_a_trial_passes_a_rung_only_within_the_top_third_of_those_recorded_there():
    asha = MultiObjectiveASHA(OBJECTIVES, max_t=9, grace_period=1, reduction_factor=3)
    decide = lambda tid, res: asha.on_trial_result(None, FakeTrial(tid), res)  # noqa: E731
    assert decide("a", result(1, 0.10, 500.0)) == CONTINUE  # the first one: nothing to compare with
    assert decide("b", result(1, 0.05, 600.0)) == STOP  # dominated by a
    assert decide("c", result(1, 0.20, 400.0)) == CONTINUE  # dominates a
    assert decide("d", result(1, 0.01, 900.0)) == STOP
    assert decide("e", result(1, 0.02, 800.0)) == STOP
    assert decide("f", result(1, 0.30, 700.0)) == CONTINUE  # on the front, an end of it (6 // 3 = 2 pass)
    assert decide("a", result(2, 0.0, 1e9)) == CONTINUE  # not a rung
    assert decide("a", result(3, 0.1, 300.0)) == CONTINUE  # first at rung 3
    assert asha.stopped == {"b": 1, "d": 1, "e": 1}


def test_failures_and_stale_metrics_never_enter_a_rung():
    asha = MultiObjectiveASHA(OBJECTIVES, max_t=9)
    decide = lambda tid, res: asha.on_trial_result(None, FakeTrial(tid), res)  # noqa: E731
    assert decide("x", result(1, 0.0, 1e9, outcome="diverged")) == CONTINUE  # sentinels: not recorded
    assert decide("y", {**result(1, 0.9, 100.0), "metrics_epoch": 0}) == CONTINUE  # metrics not of this epoch
    assert asha.debug_string().count(": 0") == 2  # both rungs still empty
    assert decide("z", result(1, 0.1, 500.0)) == CONTINUE


def test_single_objective_is_plain_asha():
    asha = MultiObjectiveASHA([("rec_loss", "min")], max_t=4, grace_period=1, reduction_factor=2)
    decisions = [asha.on_trial_result(None, FakeTrial(str(i)), {"epoch": 1, "rec_loss": v})
                 for i, v in enumerate([5.0, 6.0, 4.0, 7.0, 3.0])]
    assert decisions == [CONTINUE, STOP, CONTINUE, STOP, CONTINUE]


def test_rungs_are_rebuilt_from_the_result_files_of_a_resumed_study(tmp_path):
    folder = tmp_path / "trial_a"
    folder.mkdir()
    lines = [result(1, 0.3, 300.0), result(2, 0.3, 250.0), result(3, 0.35, 200.0)]
    (folder / "result.json").write_text("\n".join(json.dumps(r) for r in lines) + "\n{cut sh")
    asha = MultiObjectiveASHA(OBJECTIVES, max_t=9)
    asha.on_trial_add(None, FakeTrial("a", str(folder)))
    asha.on_trial_add(None, FakeTrial("new"))  # no folder yet
    # a resumed trial does not pass its rungs again, and a new one is compared with the old
    assert asha.on_trial_result(None, FakeTrial("a"), result(3, 0.35, 200.0)) == CONTINUE
    assert asha.on_trial_result(None, FakeTrial("b"), result(1, 0.1, 600.0)) == STOP
    assert asha.on_trial_result(None, FakeTrial("c"), result(3, 0.1, 600.0)) == STOP


def test_a_stopped_trial_is_pruned_in_optuna_with_its_epoch_and_off_the_front():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"])
    search = StudySearch(space=SeededSpace("beta", seeds=1, base_seed=0), metric=["mig", "rec_loss"],
                         mode=["max", "min"], study_name="s", sampler=optuna.samplers.RandomSampler(seed=0))
    search._ot_study = study  # the in-memory study of this test
    for tid in ("done", "stopped", "failed"):
        search.suggest(tid)
    search.on_trial_complete("done", {**result(9, 0.2, 300.0), "outcome": "completed"})
    search.on_trial_complete("stopped", result(1, 0.9, 100.0))  # better values, a shorter training
    search.on_trial_complete("failed", {**result(1, 0.0, 1e9), "outcome": "diverged"})
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "PRUNED", "FAIL"]
    pruned = study.trials[1]
    assert pruned.user_attrs[STOPPED_AT_EPOCH] == 1 and pruned.user_attrs[VALUES_AT_STOP] == {"mig": 0.9,
                                                                                              "rec_loss": 100.0}
    assert [t.number for t in study.best_trials] == [0]
