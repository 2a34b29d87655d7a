"""MO-ASHA (study/scheduler.py) on hand-made results, and how a stopped trial reaches Optuna."""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pyarrow.fs as pafs
import pytest
from ray.tune.schedulers import TrialScheduler

from study.scheduler import MultiObjectiveASHA, SlotLimiter, nondominated_order, rung_epochs
from study.searcher import SeededSpace, StudySearch
from trainables.vocabulary import STOPPED_AT_EPOCH, VALUES_AT_STOP

CONTINUE, PAUSE = TrialScheduler.CONTINUE, TrialScheduler.PAUSE
OBJECTIVES = [("mig", "max"), ("rec_loss", "min")]


class FakeTrial:
    def __init__(self, trial_id: str, path: str = "/nonexistent", status: str = "RUNNING"):
        self.trial_id, self.path, self.status = trial_id, path, status
        self.storage = type("Storage", (), {"storage_filesystem": pafs.LocalFileSystem()})()

    def set_status(self, status: str) -> None:
        self.status = status


class FakeController:
    """The part of Tune's controller a scheduler sees: its trials, the search, stop_trial."""

    def __init__(self, limiter=None):
        self.trials: dict[str, FakeTrial] = {}
        self.finished = False
        self.search_alg = type("SearchGenerator", (), {"searcher": limiter, "is_finished": lambda _: self.finished})()

    def trial(self, trial_id: str) -> FakeTrial:
        return self.trials.setdefault(trial_id, FakeTrial(trial_id))

    def get_trials(self) -> list[FakeTrial]:
        return list(self.trials.values())

    def stop_trial(self, trial: FakeTrial) -> None:
        trial.status = "TERMINATED"


def result(epoch: int, mig: float, rec: float, **extra) -> dict:
    return {"epoch": epoch, "metrics_epoch": epoch, "mig": mig, "rec_loss": rec, "outcome": "running", **extra}


def report(asha, tc: FakeController, trial_id: str, res: dict) -> str:
    trial = tc.trial(trial_id)
    decision = asha.on_trial_result(tc, trial, res)
    trial.status = {PAUSE: "PAUSED", CONTINUE: "RUNNING"}.get(decision, trial.status)
    return decision


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


def test_a_trial_is_promoted_only_within_the_top_third_of_its_rung_and_waits_otherwise():
    asha, tc = MultiObjectiveASHA(OBJECTIVES, max_t=9, grace_period=1, reduction_factor=3), FakeController()
    assert report(asha, tc, "a", result(1, 0.10, 500.0)) == PAUSE  # alone at the rung: top 1 // 3 = 0
    assert report(asha, tc, "b", result(1, 0.05, 600.0)) == PAUSE
    assert asha.choose_trial_to_run(tc) is None  # nothing promotable, nothing pending
    assert report(asha, tc, "c", result(1, 0.20, 400.0)) == CONTINUE  # 3 at the rung: the best one goes on
    for tid, (mig, rec) in zip("def", [(0.01, 900.0), (0.02, 800.0), (0.15, 550.0)]):
        assert report(asha, tc, tid, result(1, mig, rec)) == PAUSE
    # 6 at the rung: c, then a and f (a front of their own; a came first): a resumes first
    assert asha.choose_trial_to_run(tc).trial_id == "a"
    assert asha.paused == {"b": 1, "d": 1, "e": 1, "f": 1}
    tc.trial("g").status = "PENDING"
    assert asha.choose_trial_to_run(tc).trial_id == "g"  # nothing promotable: the next configuration
    assert report(asha, tc, "c", result(2, 0.0, 1e9)) == CONTINUE  # not a rung
    assert report(asha, tc, "c", result(3, 0.25, 300.0)) == PAUSE  # first at rung 3


def test_once_a_rung_promotes_at_all_each_objectives_best_goes_on():
    """A front of two objectives has two ends; one promotion (n // 3 = 1) could keep only one."""
    runs = {}
    for keep in (True, False):
        asha, tc = MultiObjectiveASHA(OBJECTIVES, max_t=9, keep_extremes=keep), FakeController()
        assert report(asha, tc, "a", result(1, 0.30, 900.0)) == PAUSE  # best MIG, but alone: no free pass
        assert report(asha, tc, "b", result(1, 0.01, 950.0)) == PAUSE  # dominated by a
        runs[keep] = (report(asha, tc, "c", result(1, 0.05, 300.0)), asha.choose_trial_to_run(tc))
    # a and c are the front's two ends; with one promotion only the earlier, a, resumes and c, the
    # best reconstruction, waits; with keep_extremes both go on. b never does.
    assert runs[True][0] == CONTINUE and runs[True][1].trial_id == "a"
    assert runs[False][0] == PAUSE and runs[False][1].trial_id == "a"


def test_at_the_end_the_paused_trials_that_were_never_promoted_stop_where_they_wait():
    asha, tc = MultiObjectiveASHA(OBJECTIVES, max_t=9), FakeController()
    for tid, rec in zip("abcd", [500.0, 400.0, 600.0, 700.0]):
        report(asha, tc, tid, result(1, 0.1, rec))
    assert tc.trials["b"].status == "PAUSED"  # b was third at the rung: a and c were ahead of it then
    assert asha.choose_trial_to_run(tc).trial_id == "b"
    tc.trials["b"].status = "RUNNING"
    tc.finished = True
    assert asha.choose_trial_to_run(tc) is None and asha.stopped == {}  # b still runs: it may promote others
    tc.trials["b"].status = "TERMINATED"
    assert asha.choose_trial_to_run(tc) is None
    assert asha.stopped == {"a": 1, "c": 1, "d": 1} and asha.paused == {}
    assert {t.status for t in tc.get_trials()} == {"TERMINATED"}


def test_failures_and_stale_metrics_never_enter_a_rung():
    asha, tc = MultiObjectiveASHA(OBJECTIVES, max_t=9), FakeController()
    assert report(asha, tc, "x", result(1, 0.0, 1e9, outcome="diverged")) == CONTINUE  # sentinels: not recorded
    assert report(asha, tc, "y", {**result(1, 0.9, 100.0), "metrics_epoch": 0}) == CONTINUE  # stale metrics
    assert asha.debug_string().count(": 0") == 2  # both rungs still empty


def test_single_objective_is_plain_asha():
    asha, tc = MultiObjectiveASHA([("rec_loss", "min")], max_t=4, grace_period=1, reduction_factor=2), FakeController()
    decisions = [report(asha, tc, str(i), {"epoch": 1, "rec_loss": v}) for i, v in enumerate([5.0, 6.0, 4.0, 7.0])]
    assert decisions == [PAUSE, PAUSE, CONTINUE, PAUSE]  # 2 // 2 = 1: 0 is the best of two; 4 beats it
    assert asha.choose_trial_to_run(tc).trial_id == "0"  # 4 of them: the top two are 2 and 0


def test_a_paused_trial_holds_no_slot_of_the_limiter_and_is_pruned_when_it_stops():
    search = StudySearch(space=SeededSpace("beta", seeds=1, base_seed=0), metric=["mig", "rec_loss"],
                         mode=["max", "min"], sampler=optuna.samplers.RandomSampler(seed=0))
    limiter = SlotLimiter(search, max_concurrent=2)
    asha, tc = MultiObjectiveASHA(OBJECTIVES, max_t=9), FakeController(limiter)

    def both(trial_id: str, res: dict) -> str:  # Tune tells the scheduler, then the search
        decision = report(asha, tc, trial_id, res)
        limiter.on_trial_result(trial_id, res)
        return decision

    assert limiter.suggest("a") and limiter.suggest("b") and limiter.suggest("c") is None  # two slots
    assert both("a", result(1, 0.1, 500.0)) == PAUSE
    assert limiter.suggest("c")  # a's slot went to c
    assert both("b", result(1, 0.2, 400.0)) == PAUSE and both("c", result(1, 0.3, 300.0)) == CONTINUE
    assert limiter.live_trials == {"c"} and limiter.has_slot()
    tc.finished = True
    tc.trials["c"].status = "TERMINATED"
    limiter.on_trial_complete("c", {**result(9, 0.3, 250.0), "outcome": "completed"})
    assert asha.choose_trial_to_run(tc) is None  # the end: a and b stop where they wait
    for trial_id in "ab":  # Tune completes a trial stopped while paused without a result
        limiter.on_trial_complete(trial_id)
    trials = search._ot_study.trials
    assert [t.state.name for t in trials] == ["PRUNED", "PRUNED", "COMPLETE"]
    assert [t.user_attrs.get(STOPPED_AT_EPOCH) for t in trials] == [1, 1, None]
    assert [t.number for t in search._ot_study.best_trials] == [2]


def test_rungs_promotions_and_waiting_trials_are_rebuilt_from_the_result_files(tmp_path):
    def folder(name: str, rows: list[dict], tail: str = "") -> str:
        (tmp_path / name).mkdir()
        (tmp_path / name / "result.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n" + tail)
        return str(tmp_path / name)

    asha, tc = MultiObjectiveASHA(OBJECTIVES, max_t=9), FakeController()
    went_on = FakeTrial("a", folder("a", [result(1, 0.3, 300.0), result(2, 0.3, 250.0)], "{cut sh"), "PENDING")
    waits = FakeTrial("b", folder("b", [result(1, 0.1, 600.0)]), "PENDING")
    for trial in (went_on, waits, FakeTrial("new", status="PENDING")):
        asha.on_trial_add(tc, trial)
        tc.trials[trial.trial_id] = trial
    assert waits.status == "PAUSED" and asha.paused == {"b": 1} and went_on.status == "PENDING"
    assert asha._promoted[1] == {"a"}  # it had gone past the rung
    assert report(asha, tc, "c", result(1, 0.05, 700.0)) == PAUSE  # compared with a and b: third


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
