"""The rules and repairs behind "one truth per trial" (issue 14), without Ray processes: the
outcome rule every record follows, the launcher's verdicts, the repair of Ray's stale state file,
the Optuna labels, the study lock, the journal copy on resume, the pending watch and Ray's log.
The same behaviour on real clusters and processes: tests/test_reliability.py, tests/test_cluster.py.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from study.lock import StudyLock, read_holder
from study.progress import PendingWatch, RayLog
from study.ray_state import correct_ended, read_ray_trials
from study.reconcile import count, judge
from study.searcher import StudySearch, fail_orphans
from study.settings import LaunchError
from trainables import lock_holder
from trainables.vocabulary import NODE_LOST, Outcome, node_label, trial_outcome

optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- the outcome rule ---------------------------------------------------------------------------------
@pytest.mark.parametrize("reported, status, errored, running, expected", [
    ("completed", "TERMINATED", False, False, "completed"),
    ("diverged", "ERROR", True, False, "diverged"),
    ("error", "ERROR", True, False, "error"),
    ("running", "ERROR", True, False, "error"),  # its node was lost: Ray errs, the trial said nothing
    (None, "ERROR", True, False, "error"),
    ("running", "TERMINATED", False, False, "stopped"),  # ASHA
    ("running", "RUNNING", False, True, "running"),
    ("running", "RUNNING", False, False, "interrupted"),  # never `running` once the driver is gone
    ("running", "PAUSED", False, False, "interrupted"),
    (None, "PENDING", False, False, "pending"),
    (None, None, False, True, "pending"),
])
def test_one_rule_says_how_a_trial_stands(reported, status, errored, running, expected):
    assert trial_outcome(reported, status, errored=errored, driver_running=running) == expected


def test_a_trial_lost_with_its_node_is_an_error_with_the_reason_everywhere():
    last = {"outcome": "running", "epoch": 2, "node_id": "ab" * 28, "hostname": "gpu7", "trial_id": "t1"}
    v = judge("ERROR", last, {"optuna_number": 3}, "/r/x/trial_0003_beta_vae_s0_t1",
              RuntimeError("Failure # 1 (occurred at ...)\nThe actor 42 is unavailable: RpcError: Socket closed"))
    assert (v.outcome, v.error, v.optuna_number, v.trial_dir) == ("error", NODE_LOST, 3, "trial_0003_beta_vae_s0_t1")
    assert v.ray_error.startswith("The actor 42 is unavailable") and v.node == "gpu7:ababab"
    record = v.as_record()
    assert record["outcome"] == "error" and record["error"] == "node lost" and record["node"] == "gpu7:ababab"
    # Ray counted one failure, the last one, not retried; a trial retried twice that then completed
    assert record["retries"] is None and judge("ERROR", last, {}, None, None, num_failures=1).retries == 0
    assert judge("TERMINATED", {**last, "outcome": "completed"}, {}, None, None, num_failures=2).retries == 2
    reported = judge("ERROR", {"outcome": "error", "error": "RuntimeError: can't allocate memory"}, {}, None, None)
    assert reported.error == "RuntimeError: can't allocate memory"
    assert count([v, reported]) == {"completed": 0, "stopped": 0, "diverged": 0, "error": 2}
    assert node_label(None) is None and node_label("abcdef0123456789") == "abcdef01"


# --- Ray's state file ------------------------------------------------------------------------------------
def _state(folder: Path, statuses: dict[str, str]) -> Path:
    """An experiment_state file in Ray 2.x's layout (trial JSON and run metadata JSON as strings)."""
    data = {"trial_data": [[json.dumps({"trial_id": t, "status": s, "config": {"optuna_number": i},
                                        "relative_logdir": f"trial_{t}"}, indent=2),
                            json.dumps({"num_failures": 0, "error_filename": None, "start_time": 1.0})]
                           for i, (t, s) in enumerate(statuses.items())],
            "runner_data": {"x": float("nan")}, "stats": {"start_time": 1.0}}
    path = folder / "experiment_state-2026-01-01_00-00-00.json"
    path.write_text(json.dumps(data))
    return path


def test_rays_stale_running_status_of_a_lost_trial_is_corrected(tmp_path):
    _state(tmp_path, {"a": "RUNNING", "b": "TERMINATED", "c": "RUNNING"})
    assert correct_ended(tmp_path, {"a": "ERROR", "b": "TERMINATED"}) == ["a"]
    trials = read_ray_trials(tmp_path)
    assert trials["a"].status == "ERROR" and trials["a"].num_failures == 1 and trials["a"].error_file == "error.txt"
    assert trials["b"].status == "TERMINATED" and trials["c"].status == "RUNNING"
    assert correct_ended(tmp_path, {"a": "ERROR"}) == []  # idempotent
    assert correct_ended(tmp_path / "nothing", {"a": "ERROR"}) == []


# --- Optuna's labels ----------------------------------------------------------------------------------
def _space(trial):
    trial.suggest_float("x", 0, 1)


def test_the_searcher_labels_each_trial_before_it_tells_optuna():
    search = StudySearch(space=_space, metric=["mig", "rec_loss"], mode=["max", "min"])
    for tid in ("fine", "lost", "oom", "stopped"):
        search.suggest(tid)
    search.on_trial_result("lost", {"outcome": "running", "node_id": "n1", "mig": 0.1, "rec_loss": 9.0})
    search.on_trial_complete("fine", result={"mig": 0.3, "rec_loss": 50.0, "outcome": "completed", "node_id": "n2"})
    search.on_trial_complete("lost", result=None, error=True)  # its node died: Ray says error, no result
    search.on_trial_result("oom", {"outcome": "error", "error": "RuntimeError: can't allocate memory"})
    search.on_trial_complete("oom", result=None, error=True)
    search.on_trial_complete("stopped", result={"mig": 0.2, "rec_loss": 60.0, "outcome": "running", "epoch": 3})
    trials = search._ot_study.trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "FAIL", "PRUNED"]  # MO-ASHA stopped the last
    assert trials[3].user_attrs["stopped_at_epoch"] == 3
    assert trials[3].user_attrs["values_at_stop"] == {"mig": 0.2, "rec_loss": 60.0}
    assert [t.user_attrs.get("outcome") for t in trials] == ["completed", "error", "error", "stopped"]
    assert trials[1].user_attrs["error"] == NODE_LOST and trials[1].user_attrs["node_id"] == "n1"
    assert trials[2].user_attrs["error"] == "RuntimeError: can't allocate memory"


def test_orphans_are_failed_with_a_reason():
    study = optuna.create_study()
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    assert fail_orphans(study) == [0]
    assert study.trials[0].state.name == "FAIL" and study.trials[0].user_attrs["outcome"] == Outcome.ERROR.value
    assert "killed before Ray started the trial" in study.trials[0].user_attrs["error"]


# --- the study lock -------------------------------------------------------------------------------------
def test_the_lock_is_atomic_names_its_holder_and_is_only_released_by_it(tmp_path):
    path = tmp_path / "exp" / "study.lock"
    first, second = StudyLock(path, "exp"), StudyLock(path, "exp")
    assert first.acquire(["--space", "beta"]) is None
    assert path.stat().st_mode & 0o777 == 0o644
    holder = read_holder(path)
    assert holder.pid == os.getpid() and holder.host == socket.gethostname() and holder.alive
    with pytest.raises(LaunchError, match=rf"study exp is being run by another launch \(pid {os.getpid()} on "):
        second.acquire([])
    second.release()  # not its lock: stays
    assert path.exists()
    first.release()
    assert not path.exists()


def test_a_stale_lock_is_taken_over_with_a_message_and_another_hosts_lock_is_respected(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = tmp_path / "study.lock"
    path.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started_at": "2026-01-01T00:00:00"}))
    note = StudyLock(path, "exp").acquire([])
    assert f"its last launch (pid {dead.pid} on {socket.gethostname()}" in note and "is gone" in note
    assert read_holder(path).pid == os.getpid()
    path.write_text(json.dumps({"pid": 1, "host": "elsewhere", "started_at": "2026-01-01T00:00:00"}))
    with pytest.raises(LaunchError, match="another host: delete .*study.lock once that launch is gone"):
        StudyLock(path, "exp").acquire([])
    path.write_text("{half a lo")  # a launch killed while writing it
    assert StudyLock(path, "exp").acquire([]) is not None


def test_a_refused_launch_leaves_no_folder_behind(tmp_path):
    lock = StudyLock(tmp_path / "a" / "b" / "study.lock", "b")
    lock.acquire([])
    lock.abandon()
    assert list(tmp_path.iterdir()) == []


def test_a_reused_pid_is_not_the_launch_that_took_the_lock(tmp_path, monkeypatch):
    path = tmp_path / "study.lock"
    path.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started_at": "x",
                                "process_start": "1"}))  # this pid, but a process that started at tick 1
    assert read_holder(path).alive is False
    monkeypatch.setattr(lock_holder, "process_start", lambda pid: None)  # where /proc is absent: trust the pid
    assert read_holder(path).alive is True


# --- the journal copy on object storage -----------------------------------------------------------------
class _Remote:
    remote = True
    journal_copy = "s3://bucket/exp/optuna.journal"

    def __init__(self, path: Path):
        self.journal_path = path


@pytest.mark.parametrize("local, remote, expected", [
    (None, b"ab", b"ab"),  # nothing here: the copy
    (b"ab", b"abcd", b"abcd"),  # the copy is newer (another machine resumed it last)
    (b"abcd", b"ab", None),  # here is newer: keep it (it is copied up at the end)
    (b"ab", b"ab", None),
    (b"ab", None, None),
])
def test_resuming_from_object_storage_takes_the_newer_journal(tmp_path, monkeypatch, local, remote, expected):
    from study import record

    path = tmp_path / "optuna.journal"
    if local is not None:
        path.write_bytes(local)
    monkeypatch.setattr(record, "read_location", lambda location: remote)
    assert record.journal_to_fetch(_Remote(path)) == expected


def test_two_journals_that_differ_are_refused(tmp_path, monkeypatch):
    from study import record

    path = tmp_path / "optuna.journal"
    path.write_bytes(b"abX")
    monkeypatch.setattr(record, "read_location", lambda location: b"abY")
    with pytest.raises(LaunchError, match="differ"):
        record.journal_to_fetch(_Remote(path))


# --- the pending watch, Ray's log ---------------------------------------------------------------------
class _Trial:
    def __init__(self, status):
        self.status = status


def test_the_pending_watch_ends_the_run_like_ctrl_c_after_its_timeout(monkeypatch, capsys):
    received = []
    old = signal.signal(signal.SIGUSR1, lambda *a: received.append(a))  # stands for Ray Tune's handler
    try:
        watch = PendingWatch(timeout_s=0.2, every_s=0.05)
        watch.on_step_end(0, [_Trial("PENDING"), _Trial("TERMINATED")])
        time.sleep(0.1)
        watch.on_step_end(1, [_Trial("PENDING"), _Trial("TERMINATED")])
        assert not received and "waiting" in capsys.readouterr().out
        watch.on_step_end(2, [_Trial("RUNNING"), _Trial("PENDING")])  # a trial runs: the wait starts again
        watch.on_step_end(3, [_Trial("PENDING")])
        time.sleep(0.25)
        watch.on_step_end(4, [_Trial("PENDING")])
        assert received and watch.fired and not watch.stop_all()
        assert "no trial could start for 0 s (--pending-timeout)" in capsys.readouterr().out
    finally:
        signal.signal(signal.SIGUSR1, old)
    PendingWatch.restored_timeout_s = 99.0
    try:
        restored = PendingWatch.__new__(PendingWatch)
        restored.__setstate__(dict(watch.__dict__))
        assert restored.timeout_s == 99.0 and not restored.fired
    finally:
        PendingWatch.restored_timeout_s = None


def test_rays_log_goes_to_the_experiment_not_the_console_and_comes_back(tmp_path, capsys):
    ray_logger = logging.getLogger("ray")
    handlers = list(ray_logger.handlers)
    log = RayLog(verbose=False)
    logging.getLogger("ray.tune.tune").warning("Experiment has been interrupted\nResume with Tuner.restore(...)")
    log.to_file(tmp_path / "ray.log")
    logging.getLogger("ray.tune").warning("after")
    log.close()
    text = (tmp_path / "ray.log").read_text()
    assert "Tuner.restore" in text and "after" in text
    assert "Tuner.restore" not in capsys.readouterr().err
    assert ray_logger.handlers == handlers


def test_orphans_are_found_from_the_trial_folders_when_rays_state_is_unreadable(tmp_path):
    """A resume re-queues the Optuna trials that Ray never started; when Ray's experiment state
    cannot be read, the trial folders (params.json) say which trials Ray knows."""
    from types import SimpleNamespace

    from study.launch import ray_known_trials

    for number in (0, 2):
        folder = tmp_path / f"trial_{number:04d}_beta_vae_s0_abc{number}"
        folder.mkdir()
        (folder / "params.json").write_text(json.dumps({"optuna_number": number, "variant": "beta_vae"}))
    (tmp_path / "experiment_state-2026-01-01_00-00-00.json").write_text("{damaged")
    (tmp_path / "not_a_trial").mkdir()
    assert ray_known_trials(SimpleNamespace(experiment_dir=str(tmp_path))) == {0, 2}


# --- a trial some node can hold ---------------------------------------------------------------------------
def _view(*nodes: dict, types: tuple = (), autoscaler: bool = False):
    from study.nodes import ClusterView, Node, NodeType

    return ClusterView("h:1", [Node(f"{i:02d}" * 28, "10.0.0.1", "h", True, i == 0, r) for i, r in enumerate(nodes)],
                       [NodeType(*t) for t in types], autoscaler=autoscaler or bool(types))


def _settings(cpus: float, gpus: float):
    from study.settings import parse_args, resolve

    args = ["--space", "beta", "--preset", "smoke", "--address", "h:1", "--cpus-per-trial", str(cpus),
            "--gpus-per-trial", str(gpus)]
    return resolve(parse_args(args), gpu_visible=True)[0]


def test_a_trial_no_node_can_hold_is_refused_unless_nodes_that_can_may_come():
    from study.cluster import check_trial_fits

    head, worker = {"CPU": 0.0}, {"CPU": 4.0, "GPU": 0.0}
    assert check_trial_fits(_settings(2, 0), _view(head, worker), pending_timeout=None) == []
    with pytest.raises(LaunchError, match=r"can hold a trial \(2 CPU, 1 GPU\): the largest node, h:010101, has 4 CPU, "
                                          r"0 GPU; --gpus-per-trial 0 runs on CPUs"):
        check_trial_fits(_settings(2, 1), _view(head, worker), pending_timeout=None)
    with pytest.raises(LaunchError, match="lower --cpus-per-trial"):
        check_trial_fits(_settings(8, 0), _view(head, worker), pending_timeout=None)
    gpu_type = ("gpu_worker", {"CPU": 4.0, "GPU": 1.0}, 8)
    note = check_trial_fits(_settings(2, 1), _view(head, worker, types=(gpu_type,)), pending_timeout=None)
    assert "the autoscaler can add gpu_worker (4 CPU, 1 GPU): trials wait for it, at most 30 min" in note[0]
    with pytest.raises(LaunchError):  # an autoscaler whose node types cannot hold it either
        check_trial_fits(_settings(8, 1), _view(head, worker, types=(gpu_type,)), pending_timeout=None)
    note = check_trial_fits(_settings(2, 1), _view(head, worker), pending_timeout=90)
    assert "trials wait for such a node, at most 90 s (--pending-timeout)" in note[0]
    assert check_trial_fits(_settings(2, 1), _view(head, worker, autoscaler=True), pending_timeout=None)


def test_the_node_types_of_a_ray_up_head_come_from_its_bootstrap_config(tmp_path):
    """On a head set up by `ray up cluster.yaml` the launcher reads what the autoscaler may add."""
    import shutil

    from study.nodes import bootstrap_node_types

    config = tmp_path / "ray_bootstrap_config.yaml"
    shutil.copy(Path(__file__).resolve().parents[1] / "cluster.yaml", config)
    types = {t.name: t for t in bootstrap_node_types(config)}
    assert types["gpu_worker"].resources == {"CPU": 4.0, "GPU": 1.0} and types["gpu_worker"].max_count == 8
    assert types["gpu_worker"].holds({"CPU": 2.0, "GPU": 0.25}) and not types["head"].holds({"CPU": 1.0})
    assert bootstrap_node_types(tmp_path / "absent.yaml") == []
