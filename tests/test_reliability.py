"""Reliability: what a study survives, each with real Ray, real processes and real files.

- a driver SIGKILLed mid-study, then `--resume` (subprocesses, their own embedded Ray);
- a worker node removed mid-trial on a ray.cluster_utils.Cluster (retried from its checkpoint);
- trials that really diverge, run out of memory, or fail loading their data (no mocks);
- bad input of every tool (tests/bad_inputs.py): one line on stderr, exit 2, no traceback, nothing
  written;
- Ctrl-C then `--resume`, and two launches of one study at once (the second refused);
- atomic writes of parquet, JSON and HTML: a writer SIGKILLed mid-write leaves the old file;
- a load test of 100+ trials (slow), whose numbers are in docs/reliability.md.

docs/reliability.md says what survives what. Multi-minute tests are marked slow.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import bad_inputs
import optuna
import pytest
from conftest import local_ray_instance, simulated_cluster, study_records

import search_spaces
from study import launch
from study.cluster import ADDRESS_TIMEOUT_S
from trainables.lock_holder import read_holder
from trainables.vocabulary import ENDED_OUTCOMES, LOCK_FILE, RECORD_RUNS, RUN_LOCK_TOKEN, STUDY_FILE

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
MB = 1024**2

optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- helpers ---------------------------------------------------------------------------------------
def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(RAY_AUTH_MODE="disabled", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.pop("RAY_ADDRESS", None)
    env.update(extra)
    return env


def journal_study(experiment: Path, name: str) -> optuna.Study:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return optuna.load_study(study_name=name,
                             storage=JournalStorage(JournalFileBackend(str(experiment / "optuna.journal"))))


def asked(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.trials if t.state != optuna.trial.TrialState.WAITING]


def trial_folders(experiment: Path) -> list[Path]:
    if not experiment.is_dir():
        return []
    return sorted(p for p in experiment.iterdir() if p.is_dir() and (p / "params.json").exists())


def results_of(folder: Path) -> list[dict]:
    path = folder / "result.json"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written right now
            break
    return rows


def listing(root: Path) -> list[tuple[str, int]]:
    """Every path under root with its size: 'nothing written' means this is unchanged."""
    if not root.exists():
        return []
    return sorted((str(p.relative_to(root)), p.stat().st_size if p.is_file() else -1) for p in root.rglob("*"))


def session_processes(driver_pid: int) -> tuple[list[Path], list[int]]:
    """The Ray session folders a driver started (Ray names them session_<time>_<driver pid>)
    and the live processes of that driver: those whose command line names one of the folders
    (gcs_server, raylet, agents) and those in the driver's Unix session (it was started with
    start_new_session, so its pid is the session id: this also finds the workers, which renamed
    their command line to ray::IDLE and sit in process groups of their own)."""
    root = Path(tempfile.gettempdir()) / "ray"
    sessions = [p for p in root.glob(f"session_*_{driver_pid}") if p.is_dir() and not p.is_symlink()]
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next((l for l in (proc / "status").read_text().splitlines() if l.startswith("State:")), "")
        except OSError:
            continue
        if "zombie" in state:
            continue
        try:
            sid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[3])
        except (OSError, IndexError, ValueError):
            sid = -1
        if sid == driver_pid or any(s.name in cmd for s in sessions):
            pids.append(int(proc.name))
    return sessions, pids


def end_driver(driver: subprocess.Popen, log) -> None:
    """A driver a test started in its own process group: killed with its group if still running,
    waited for, its log closed."""
    if driver.poll() is None:
        os.killpg(driver.pid, signal.SIGKILL)
    driver.wait(timeout=30)
    log.close()


def kill_session(driver_pid: int, wait_s: float = 15.0) -> list[int]:
    """Kill (by pid) whatever is left of a killed driver's Ray session; returns what was left."""
    deadline = time.monotonic() + wait_s
    _, left = session_processes(driver_pid)
    while left and time.monotonic() < deadline:  # raylet/gcs exit by themselves once the driver is gone
        time.sleep(0.5)
        _, left = session_processes(driver_pid)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def vm_hwm_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def wait_until(driver: subprocess.Popen, log: Path, condition, timeout_s: float = 600):
    """Poll `condition()` until it returns something truthy (returned), failing if the driver
    exits first (with its log) or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        assert driver.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"condition not reached in {timeout_s} s"
        found = condition()
        if found:
            return found
        time.sleep(0.2)


def assert_records_agree(experiment: Path, name: str) -> dict[str, str]:
    """trials.parquet says of every trial what study.json's verdict and Optuna say: the outcome,
    the error, the Optuna trial and its state, the node; Optuna's outcome label once the trial
    ended (an unfinished trial is RUNNING there, unlabelled). Returns trial id -> outcome."""
    import pandas as pd

    from analysis.report_trials import clean

    trials = pd.read_parquet(experiment / "trials.parquet").set_index("trial_id")
    seen = study_records(experiment, name)
    assert sorted(trials.index) == sorted(seen)
    for trial_id, s in seen.items():
        entry, row = s["entry"], trials.loc[trial_id]
        assert (row["outcome"], clean(row["error"])) == s["study.json"], trial_id
        assert (clean(row["optuna_number"]), row["optuna_state"]) == (entry["optuna_number"], s["optuna"][0])
        assert (clean(row["node_id"]), clean(row["node"])) == (entry["node_id"], entry["node"])
        ended = entry["outcome"] in ENDED_OUTCOMES
        assert s["optuna"][1:] == ((entry["outcome"], entry["error"]) if ended else (None, None)), s
        assert s["optuna"][0] in (("COMPLETE", "FAIL", "PRUNED") if ended else ("RUNNING",)), s
    return trials["outcome"].to_dict()


# --- 1. a driver SIGKILLed in the middle of a study, then --resume ----------------------------------
@pytest.mark.ray
@pytest.mark.slow  # about 1.5 minutes on 2 idle cores, 3.5 under load
@pytest.mark.timeout(900)
def test_killed_driver_then_resume_keeps_finished_trials_and_continues_from_checkpoints(tmp_path):
    EPOCHS = 4  # enough epochs (each with a metrics pass) that an idle machine too is caught mid-trial
    name, storage = "killed", tmp_path / "results"
    experiment = storage / name
    command = [PY, "-m", "study.launch", "--space", "beta", "--preset", "smoke", "--trials", "2", "--epochs",
               str(EPOCHS), "--train-images", "128", "--max-concurrent", "1", "--sampler", "random",
               "--storage", str(storage), "--name", name]
    log = (tmp_path / "first.log").open("w")
    driver = subprocess.Popen(command, cwd=REPO, env=child_env(), stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        def one_done_one_checkpointed():
            """One trial completed, another checkpointed an epoch but not finished."""
            rows = {f.name: results_of(f) for f in trial_folders(experiment)}
            done = [n for n, r in rows.items() if r and r[-1].get("outcome") == "completed"]
            mid = [n for n, r in rows.items() if r and r[-1].get("outcome") == "running" and r[-1]["epoch"] < EPOCHS
                   and any((experiment / n).glob("checkpoint_*/trainer.pt"))]
            return (done, mid) if done and mid else None

        done, mid = wait_until(driver, tmp_path / "first.log", one_done_one_checkpointed)
        before = {n: (experiment / n / "result.json").read_text() for n in done}
    finally:
        end_driver(driver, log)
        leftovers = kill_session(driver.pid)
    assert driver.returncode == -signal.SIGKILL
    sessions, alive = session_processes(driver.pid)
    assert sessions and not alive, f"Ray processes of the killed driver still alive: {alive}"
    print(f"processes of the killed session killed by the test after a 15 s grace: {leftovers}")
    # study.json names the killed launch's lock by its token (what the analysis of a study on
    # object storage reads); the stale lock is that one
    killed = json.loads((experiment / STUDY_FILE).read_text())
    assert killed[RECORD_RUNS][-1][RUN_LOCK_TOKEN] == read_holder(experiment / LOCK_FILE).token

    resumed = subprocess.run([*command, "--resume"], cwd=REPO, env=child_env(), capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]

    folders = trial_folders(experiment)
    numbers = [json.loads((f / "params.json").read_text())["optuna_number"] for f in folders]
    assert len(folders) == 2 and len(set(numbers)) == 2, numbers  # the requested count, no duplicate
    for f in folders:
        assert results_of(f)[-1]["outcome"] == "completed" and results_of(f)[-1]["epoch"] == EPOCHS
    for n, text in before.items():  # finished before the kill: kept as they were
        after = (experiment / n / "result.json").read_text()
        assert after.startswith(text)
        assert json.loads(after.splitlines()[-1])["mig"] == json.loads(text.splitlines()[-1])["mig"]
        assert json.loads(after.splitlines()[-1])["rec_loss"] == json.loads(text.splitlines()[-1])["rec_loss"]
    for n in mid:  # unfinished at the kill: continued from its checkpoint, not from epoch 1
        rows = results_of(experiment / n)
        restored = [r for r in rows if r.get("iterations_since_restore") == 1]
        assert len(restored) == 2, [(r["epoch"], r.get("iterations_since_restore")) for r in rows]
        assert restored[1]["epoch"] >= 2, "the resumed trial started again from scratch"
        assert [r["epoch"] for r in rows].count(1) == 1

    study = journal_study(experiment, name)
    states = [t.state.name for t in asked(study)]
    assert "RUNNING" not in states and states.count("COMPLETE") == 2, states
    record = json.loads((experiment / "study.json").read_text())
    assert record["status"] == "completed" and len(record["runs"]) == 2
    assert (experiment / "trials.parquet").exists() and (experiment / "report.html").exists()
    # the killed launch left its lock: the resume saw that its process was gone and took it over
    assert "its last launch (pid" in resumed.stdout and "is gone; took over" in resumed.stdout
    assert not (experiment / "study.lock").exists()
    for seen in study_records(experiment, name).values():  # one truth: every record says completed
        assert seen["study.json"] == ("completed", None) and seen["ray"] == "TERMINATED"
        assert seen["optuna"][:2] == ("COMPLETE", "completed")


# --- 1b. Ctrl-C, then --resume ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ctrl_c_study(tmp_path_factory):
    """A real study Ctrl-C'd mid-trial (SIGINT to the launch's whole process group, its Ray
    included, as in a terminal): the command, its console, its exit code, the experiment folder
    and a copy of it as the interruption left it."""
    import shutil

    tmp_path = tmp_path_factory.mktemp("ctrlc")
    name, storage = "ctrlc", tmp_path / "results"
    experiment = storage / name
    command = [PY, "-m", "study.launch", "--space", "beta", "--preset", "smoke", "--trials", "2", "--epochs", "4",
               "--train-images", "128", "--max-concurrent", "1", "--sampler", "random", "--storage", str(storage),
               "--name", name]
    log = (tmp_path / "first.log").open("w")
    driver = subprocess.Popen(command, cwd=REPO, env=child_env(), stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        def checkpointed_mid_trial():
            return any(results_of(f) and results_of(f)[-1].get("outcome") == "running"
                       and any(f.glob("checkpoint_*/trainer.pt")) for f in trial_folders(experiment))

        wait_until(driver, tmp_path / "first.log", checkpointed_mid_trial)
        os.killpg(driver.pid, signal.SIGINT)
        driver.wait(timeout=300)
    finally:
        end_driver(driver, log)
        kill_session(driver.pid, wait_s=10)
    snapshot = shutil.copytree(experiment, tmp_path / "interrupted" / name)
    return {"name": name, "command": command, "experiment": experiment, "snapshot": snapshot,
            "rc": driver.returncode, "out": (tmp_path / "first.log").read_text()}


@pytest.mark.slow  # about 2 minutes on 2 cores
@pytest.mark.ray
@pytest.mark.timeout(900)
def test_ctrl_c_then_resume_loses_nothing_and_no_trial_is_left_running(ctrl_c_study):
    """Ctrl-C: the study ends as interrupted (exit 1, the tool's own resume line; Ray's
    Tuner.restore hint only in ray.log), no trial is `running` in study.json, the lock is
    released; --resume finishes the study with every record in agreement and nothing trained twice."""
    name, command, experiment, out = (ctrl_c_study[k] for k in ("name", "command", "experiment", "out"))
    assert ctrl_c_study["rc"] == 1, out[-3000:]
    assert f"interrupted: resume with python -m study.launch --resume --name {name}" in out
    assert "Tuner.restore" not in out and "Tuner.restore" in (experiment / "ray.log").read_text()
    record = json.loads((experiment / "study.json").read_text())
    assert record["status"] == "interrupted" and not (experiment / "study.lock").exists()
    outcomes = [t["outcome"] for t in record["trials"]]
    assert "running" not in outcomes and "interrupted" in outcomes, outcomes

    resumed = subprocess.run([*command, "--resume"], cwd=REPO, env=child_env(), capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    seen = study_records(experiment, name)
    assert len(seen) == 2 and len({s["entry"]["optuna_number"] for s in seen.values()}) == 2
    for trial in seen.values():
        assert trial["study.json"] == ("completed", None) and trial["ray"] == "TERMINATED"
        assert trial["optuna"][:2] == ("COMPLETE", "completed")
        assert [r["epoch"] for r in results_of(experiment / trial["entry"]["trial_dir"])].count(1) == 1
    assert json.loads((experiment / "study.json").read_text())["status"] == "completed"
    assert_records_agree(experiment, name)


@pytest.mark.slow  # shares the Ctrl-C'd study above
@pytest.mark.ray
@pytest.mark.timeout(900)
def test_an_interrupted_studys_trials_parquet_study_json_and_optuna_agree_trial_by_trial(ctrl_c_study):
    """The folder as the Ctrl-C left it: the launcher wrote the tables and the report of what
    finished, and they -- and those `python -m analysis.results` and `analysis.report` write
    again -- say of every trial what study.json and Optuna say; the report's header counts the
    interrupted trials."""
    experiment = ctrl_c_study["snapshot"]
    assert "report:  " in ctrl_c_study["out"] and "interrupted" in (experiment / "report.html").read_text()
    assert "interrupted" in assert_records_agree(experiment, ctrl_c_study["name"]).values()
    for tool in ("analysis.results", "analysis.report"):
        done = subprocess.run([PY, "-m", tool, str(experiment)], cwd=REPO, env=child_env(), capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0 and not done.stderr, done.stderr
    outcomes = assert_records_agree(experiment, ctrl_c_study["name"])
    assert "interrupted" in outcomes.values() and "running" not in outcomes.values(), outcomes
    assert f"{list(outcomes.values()).count('interrupted')} interrupted" in (experiment / "report.html").read_text()


# --- 1c. two launches of one study at once -----------------------------------------------------------------
@pytest.mark.ray
@pytest.mark.timeout(600)
def test_two_launches_of_one_study_at_once_the_second_is_refused_and_writes_nothing(tmp_path):
    """Issue 14, fault 8: two real launches with the same --name started together: one runs the
    study, the other ends with one line naming it (exit 2) and never writes its study.json."""
    name, storage = "twice", tmp_path / "results"
    command = [PY, "-m", "study.launch", "--space", "beta", "--preset", "smoke", "--trials", "1", "--train-images",
               "128", "--storage", str(storage), "--name", name]
    launches = [subprocess.Popen(command, cwd=REPO, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, start_new_session=True) for _ in range(2)]
    try:
        outputs = [p.communicate(timeout=500) for p in launches]
    finally:
        for p in launches:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            kill_session(p.pid, wait_s=10)
    codes = [p.returncode for p in launches]
    assert sorted(codes) == [0, 2], outputs
    winner, loser = (launches[0], launches[1]) if codes[0] == 0 else (launches[1], launches[0])
    err = outputs[launches.index(loser)][1].strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"study {name} is being run by another launch (pid {winner.pid} on " in err
    record = json.loads((storage / name / "study.json").read_text())
    assert record["status"] == "completed" and len(record["runs"]) == 1
    assert not (storage / name / "study.lock").exists()
    sessions, alive = session_processes(loser.pid)
    assert not alive, f"the refused launch left Ray processes: {alive}"


# --- 2. a worker node removed mid-trial --------------------------------------------------------------
@pytest.fixture
def small_cluster():
    """A CPU-less head and two one-CPU worker nodes."""
    with simulated_cluster({"num_cpus": 1}, {"num_cpus": 1}) as (cluster, nodes):
        yield cluster, nodes


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_removed_worker_node_is_retried_from_its_checkpoint_elsewhere(small_cluster, tmp_path):
    import pandas as pd

    cluster, nodes = small_cluster
    name, storage = "lostnode", tmp_path / "results"
    experiment = storage / name
    command = [PY, "-m", "study.launch", "--address", cluster.address, "--space", "beta", "--preset", "smoke",
               "--trials", "1", "--epochs", "3", "--train-images", "128", "--cpus-per-trial", "1",
               "--max-failures", "2", "--storage", str(storage), "--name", name]
    log = (tmp_path / "driver.log").open("w")
    driver = subprocess.Popen(command, cwd=REPO, env=child_env(), stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        def checkpointed_mid_trial():
            folders = trial_folders(experiment)
            rows = results_of(folders[0]) if folders else []
            ok = rows and rows[-1]["outcome"] == "running" and any(folders[0].glob("checkpoint_*/trainer.pt"))
            return rows if ok else None

        rows = wait_until(driver, tmp_path / "driver.log", checkpointed_mid_trial)
        first_node = rows[-1]["node_id"]
        victim = next(n for n in nodes if n.node_id == first_node)
        cluster.remove_node(victim)  # the node dies mid-trial, with its raylet and the trial's worker
        driver.wait(timeout=600)
    finally:
        end_driver(driver, log)
    assert driver.returncode == 0, (tmp_path / "driver.log").read_text()[-3000:]
    rows = results_of(trial_folders(experiment)[0])
    assert rows[-1]["outcome"] == "completed" and rows[-1]["epoch"] == 3
    assert rows[-1]["node_id"] != first_node  # finished on the other node
    restored = [r for r in rows if r.get("iterations_since_restore") == 1]
    assert len(restored) == 2 and restored[1]["epoch"] >= 2  # from the checkpoint, not from epoch 1
    trials = pd.read_parquet(experiment / "trials.parquet")
    assert len(trials) == 1 and trials["retries"].iloc[0] == 1 and trials["outcome"].iloc[0] == "completed"
    record = json.loads((experiment / "study.json").read_text())["trials"]
    assert [(t["outcome"], t["retries"]) for t in record] == [("completed", 1)]  # study.json says the same
    assert [t.state.name for t in asked(journal_study(experiment, name))] == ["COMPLETE"]


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_without_address_the_launcher_starts_its_own_ray_even_if_a_cluster_runs(small_cluster, tmp_path):
    """A cluster on the same machine (here ray.cluster_utils, which records itself in
    /tmp/ray/ray_current_cluster as `ray start` does) must not be joined by a study started
    without --address: plain ray.init() would join it (and refuse the object store size)."""
    cluster, _ = small_cluster
    done = subprocess.run([PY, "-m", "study.launch", "--space", "beta", "--preset", "smoke", "--trials", "1",
                           "--train-images", "128", "--storage", str(tmp_path), "--name", "own"],
                          cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=500)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    record = json.loads((tmp_path / "own" / "study.json").read_text())
    assert record["status"] == "completed" and record["address"] != cluster.address


# --- 3 and 4. trials that diverge, run out of memory, or fail loading data ----------------------------
@pytest.fixture(scope="module")
def local_ray():
    with local_ray_instance() as ray:
        yield ray


CORRUPT_NPZ = {"path": ""}


def failing_space(trial: optuna.Trial) -> dict:
    """Four trials, each failing (or not) for real: 0 diverges (Soft-Intro, lr 5, beta_neg 1e-3),
    1 cannot allocate its model (latent_dim 2^41: torch's CPU allocator refuses petabytes),
    2 finds its dSprites file corrupt inside the worker, 3 is a plain beta-VAE that completes."""
    trial.suggest_float("lr", 1e-4, 1e-3, log=True)
    if trial.number == 0:
        return {"variant": "sintro", "lr": 5.0, "beta_neg": 1e-3, "alpha": 8.0, "check_every": 1, "latent_dim": 6}
    if trial.number == 1:
        return {"variant": "beta_vae", "latent_dim": 2**41}
    if trial.number == 2:
        return {"variant": "beta_vae", "latent_dim": 6, "dataset": "dsprites", "data_root": CORRUPT_NPZ["path"]}
    return {"variant": "beta_vae", "latent_dim": 6}


@pytest.fixture(scope="module")
def failing_study(local_ray, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("failing")
    corrupt = tmp / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip archive" + os.urandom(2048))
    CORRUPT_NPZ["path"] = str(corrupt)
    mp = pytest.MonkeyPatch()
    mp.setitem(search_spaces.SPACES, "failing", failing_space)
    rc = launch.main(["--space", "failing", "--preset", "smoke", "--trials", "4", "--train-images", "256",
                      "--max-concurrent", "1", "--sampler", "random", "--storage", str(tmp), "--name", "fail"])
    mp.undo()
    return {"rc": rc, "experiment": tmp / "fail"}


def by_number(experiment: Path) -> dict[int, list[dict]]:
    return {json.loads((f / "params.json").read_text())["optuna_number"]: results_of(f)
            for f in trial_folders(experiment)}


@pytest.mark.ray
@pytest.mark.timeout(900)
def test_diverged_oom_and_data_errors_are_recorded_and_the_study_goes_on(failing_study):
    import pandas as pd

    assert failing_study["rc"] == 0  # one trial completed: the study is not a failure
    experiment = failing_study["experiment"]
    rows = by_number(experiment)
    assert sorted(rows) == [0, 1, 2, 3]
    diverged, oom, data, fine = rows[0][-1], rows[1][-1], rows[2][-1], rows[3][-1]
    assert diverged["outcome"] == "diverged" and diverged["diverged_epoch"] == 1
    assert "non-finite loss" in diverged["error"]
    assert oom["outcome"] == "error" and "can't allocate memory" in oom["error"], oom["error"]
    assert data["outcome"] == "error" and "DatasetError" in data["error"], data["error"]
    assert fine["outcome"] == "completed"

    states = {t.number: t.state.name for t in asked(journal_study(experiment, "fail"))}
    assert states == {0: "FAIL", 1: "FAIL", 2: "FAIL", 3: "COMPLETE"}
    record = json.loads((experiment / "study.json").read_text())
    assert record["status"] == "completed"
    assert record["counts"]["diverged"] == 1 and record["counts"]["error"] == 2 and record["counts"]["completed"] == 1

    trials = pd.read_parquet(experiment / "trials.parquet").set_index("optuna_number")
    assert trials.loc[0, "outcome"] == "diverged" and trials.loc[0, "diverged_epoch"] == 1
    assert trials.loc[1, "outcome"] == "error" and "can't allocate memory" in trials.loc[1, "error"]
    assert trials.loc[2, "outcome"] == "error" and "DatasetError" in trials.loc[2, "error"]
    assert (trials["outcome"] == "diverged").sum() == 1 and (trials["outcome"] == "error").sum() == 2
    assert set(trials["optuna_state"]) == {"FAIL", "COMPLETE"}
    html = (experiment / "report.html").read_text()
    assert "can't allocate memory" in html and "diverged" in html


@pytest.mark.ray
def test_a_study_where_every_trial_fails_exits_1_and_says_so(local_ray, tmp_path, monkeypatch, capsys):
    def always_oom(trial):
        trial.suggest_float("lr", 1e-4, 1e-3, log=True)
        return {"variant": "beta_vae", "latent_dim": 2**41}

    monkeypatch.setitem(search_spaces.SPACES, "always_oom", always_oom)
    rc = launch.main(["--space", "always_oom", "--preset", "smoke", "--trials", "2", "--train-images", "256",
                      "--storage", str(tmp_path), "--name", "oom"])
    assert rc == 1
    record = json.loads((tmp_path / "oom" / "study.json").read_text())
    assert record["counts"]["error"] == 2 and record["status"] == "completed"
    assert "can't allocate memory" in capsys.readouterr().out


# --- 5. bad input: one line, exit 2, no traceback, nothing written -------------------------------------
# The catalogue is tests/bad_inputs.py (also the source of docs/reliability.md's table). Cases that
# need a cluster are in test_cluster_preflight_...; a damaged experiment is not bad input (below,
# test_the_report_of_a_damaged_experiment_...).
LOCAL_CASES = [pytest.param(c, id=c.id, marks=[pytest.mark.ray] if c.subprocess else [])  # a process of its own
               for c in bad_inputs.CASES if not c.cluster and not c.damaged]


@pytest.fixture(scope="module")
def not_ray_ports():
    with bad_inputs.listeners() as ports:
        yield ports


def _main(tool: str):
    import importlib

    return importlib.import_module(bad_inputs.TOOLS[tool]).main


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", LOCAL_CASES)
def test_bad_input_is_one_line_exit_2_no_traceback_nothing_written(case, not_ray_ports, tmp_path, capsys,
                                                                    monkeypatch):
    """Exactly one line on stderr, exit 2, the case's folder (and the working folder) unchanged,
    in seconds."""
    import warnings

    bad_inputs.prepare(case, tmp_path)
    argv = bad_inputs.arguments(case, tmp_path, not_ray_ports)
    before = bad_inputs.listing(tmp_path)
    start = time.monotonic()
    if case.subprocess:  # the command line as a user types it
        rc, err, _ = bad_inputs.run_subprocess(case, argv, tmp_path)
    else:
        monkeypatch.chdir(tmp_path)
        with warnings.catch_warnings():  # warnings reach stderr as they would outside pytest
            warnings.simplefilter("default")
            monkeypatch.setattr(warnings, "showwarning", warnings._showwarning_orig)
            rc = _main(case.tool)(argv)
        err = capsys.readouterr().err.strip()
    wall = time.monotonic() - start
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert case.needle in err, err
    assert bad_inputs.listing(tmp_path) == before  # nothing written or half-written, also no ./results
    assert wall < 60, f"{case.id} took {wall:.0f} s"
    if case.id in ("dead-address", "silent-listener"):
        assert wall < ADDRESS_TIMEOUT_S + 20  # bounded (interpreter start-up included)


def test_the_catalogue_of_bad_input_covers_every_tool_and_class():
    tools = {c.tool for c in bad_inputs.CASES}
    assert tools == set(bad_inputs.TOOLS)
    assert len(bad_inputs.CASES) >= 60 and len({c.id for c in bad_inputs.CASES}) == len(bad_inputs.CASES)


# --- 6. atomic writes: a writer SIGKILLed mid-write leaves the previous version ----------------------
# A writer process whose file writes stop half-way: the first write through Path.write_bytes
# (what trainables.storage.write_atomic uses: study.json, the parquet tables, the report) writes half
# its bytes, syncs them, drops a marker for the test, and hangs until the test SIGKILLs it.
WRITER = textwrap.dedent("""
    import os, sys, time
    kind, target = sys.argv[1], sys.argv[2]

    def _half(write, data):
        n = write(bytes(data)[: len(data) // 2])
        try:
            os.fsync(write.__self__.fileno())
        except Exception:
            pass
        open(target + ".writing", "w").close()
        time.sleep(600)
        return n

    import pathlib
    def write_bytes(self, data):
        with open(self, "wb") as f:
            return _half(f.write, data)
    pathlib.Path.write_bytes = write_bytes

    if kind == "parquet":
        from analysis import write_results
        write_results(sys.argv[3], os.path.dirname(target))
    elif kind == "html":
        from analysis.report import write_report
        write_report(sys.argv[3], target, parquet=False)
    elif kind == "json":
        from study.record import write_record
        from study.settings import Settings
        import json
        s = json.loads(open(sys.argv[3]).read())
        write_record(Settings(**s["settings"]), {**s, "status": "overwritten", "pad": "x" * 200000})
""")


@pytest.fixture(scope="module")
def finished_experiment(failing_study):
    return failing_study["experiment"]


@pytest.mark.ray
@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["parquet", "html", "json"])
def test_a_writer_killed_mid_write_leaves_the_previous_file(kind, finished_experiment, tmp_path):
    import shutil

    experiment = tmp_path / "exp"
    shutil.copytree(finished_experiment, experiment)
    target = experiment / {"parquet": "trials.parquet", "html": "report.html", "json": "study.json"}[kind]
    if kind == "json":
        record = json.loads(target.read_text())
        record["settings"]["storage"] = str(tmp_path)
        record["settings"]["name"] = "exp"
        target.write_text(json.dumps(record))
    previous = target.read_bytes()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    arg = str(target) if kind == "json" else str(experiment)
    writer = subprocess.Popen([PY, str(script), kind, str(target), arg], cwd=REPO, env=child_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    marker = Path(str(target) + ".writing")
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert writer.poll() is None, writer.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    partial = [p for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.")]
    assert partial and all(0 < p.stat().st_size < 10**8 for p in partial)  # half a file exists somewhere...
    os.killpg(writer.pid, signal.SIGKILL)
    writer.wait()
    assert target.read_bytes() == previous  # ...but never under the real name
    if kind == "parquet":
        import pandas as pd

        assert len(pd.read_parquet(target)) == 4
    elif kind == "json":
        assert json.loads(target.read_text())["status"] == "completed"
    else:
        assert target.read_text().rstrip().endswith("</html>")
    from analysis import load_experiment  # the leftover temporary file is ignored

    assert len(load_experiment(experiment).trials) == 4


@pytest.mark.ray
def test_a_failing_serialiser_leaves_the_previous_report(finished_experiment, tmp_path, monkeypatch):
    """In-process: an exception half-way through (after part of the file is written) leaves the
    previous report.html and no temporary file."""
    import shutil

    from analysis.report import write_report

    experiment = tmp_path / "exp"
    shutil.copytree(finished_experiment, experiment)
    target = experiment / "report.html"
    previous = target.read_bytes()
    real_write_bytes = Path.write_bytes

    def half_then_fail(self, data):  # trainables.storage writes a temporary file with Path.write_bytes
        real_write_bytes(self, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        write_report(experiment, parquet=False)
    assert target.read_bytes() == previous
    assert not [p for p in experiment.iterdir() if p.name.endswith(".tmp")]


# --- the analysis side of issue 14 ------------------------------------------------------------------------
@pytest.mark.ray
def test_trials_parquet_agrees_with_study_json_and_names_the_node(finished_experiment):
    outcomes = assert_records_agree(finished_experiment, "fail")
    assert sorted(outcomes.values()) == ["completed", "diverged", "error", "error"]


@pytest.mark.ray
def test_the_report_of_a_damaged_experiment_names_the_damaged_file(tmp_path):
    import pandas as pd

    bad_inputs.SETUPS["damaged-experiment"](tmp_path, tmp_path / "results")
    experiment = tmp_path / "damaged"
    done = subprocess.run([PY, "-m", "analysis.report", str(experiment)], cwd=REPO, env=child_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if "result.json" in line and "unreadable" in line]
    allowed = subprocess.run([PY, "-m", "analysis.report", str(experiment), "--allow-damaged"], cwd=REPO,
                             env=child_env(), capture_output=True, text=True, timeout=300)
    assert allowed.returncode == 0, allowed.stderr
    assert pd.read_parquet(experiment / "trials.parquet")["outcome"].tolist() == ["unreadable"]


# --- 7. load test --------------------------------------------------------------------------------------
LOAD_TRIALS = int(os.environ.get("VAE_LOAD_TRIALS", "100"))


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_load_many_short_trials_all_accounted_for_and_driver_memory_bounded(tmp_path):
    import pandas as pd

    name, storage = "load", tmp_path / "results"
    experiment = storage / name
    command = [PY, "-m", "study.launch", "--space", "beta", "--preset", "smoke", "--trials", str(LOAD_TRIALS),
               "--epochs", "1", "--train-images", "128", "--cpus-per-trial", "0.25", "--max-concurrent", "8",
               "--sampler", "random", "--storage", str(storage), "--name", name]
    start = time.monotonic()
    log = (tmp_path / "load.log").open("w")
    driver = subprocess.Popen(command, cwd=REPO, env=child_env(), stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    peak, samples = 0, []
    while driver.poll() is None:
        hwm = vm_hwm_kb(driver.pid)
        if hwm:
            peak = max(peak, hwm)
            samples.append((round(time.monotonic() - start), hwm))
        time.sleep(1)
    wall = time.monotonic() - start
    log.close()
    kill_session(driver.pid, wait_s=5)
    out = (tmp_path / "load.log").read_text()
    summary = {"trials": LOAD_TRIALS, "wall_s": round(wall, 1), "driver_peak_rss_mb": round(peak / 1024, 1),
               "rss_samples_kb": samples[:: max(1, len(samples) // 20)]}
    print("LOAD TEST", json.dumps(summary))
    (Path(tempfile.gettempdir()) / "vae_load_test.json").write_text(json.dumps(summary))
    assert driver.returncode == 0, out[-3000:]

    folders = trial_folders(experiment)
    ray_numbers = sorted(json.loads((f / "params.json").read_text())["optuna_number"] for f in folders)
    assert len(folders) == LOAD_TRIALS and ray_numbers == sorted(set(ray_numbers))
    assert all(results_of(f)[-1]["outcome"] == "completed" for f in folders)
    study = journal_study(experiment, name)
    complete = sorted(t.number for t in study.trials if t.state.name == "COMPLETE")
    assert complete == ray_numbers and not [t for t in study.trials if t.state.name == "RUNNING"]
    trials = pd.read_parquet(experiment / "trials.parquet")
    assert sorted(trials["optuna_number"]) == ray_numbers and (trials["outcome"] == "completed").all()
    record = json.loads((experiment / "study.json").read_text())
    assert record["counts"]["completed"] == LOAD_TRIALS
    assert peak < 2 * 1024 * 1024  # KB: the driver stays well under 2 GB
