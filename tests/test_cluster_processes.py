"""A real multi-process Ray cluster on this machine -- a CPU-less head and worker nodes, each its
own `ray start` process on its own temp dir (conftest.ray_start_cluster) -- against the launcher:

- preflight in seconds: a trial no node can hold is refused (the largest node and the fix);
  a missing data file is refused before anything is written; the data file is looked for on
  every node; `--address auto` finds a cluster started with a custom --temp-dir;
- `python -m study.nodes` lists the nodes with their short labels (where `ray list nodes` fails);
- GPU trials on a GPU-less cluster wait with a visible message and end at --pending-timeout,
  resumable (slow);
- a worker node killed mid-trial without retries: the trial is `error` / "node lost" in every
  record, a finished study resumed changes nothing, --retry-failed trains it to the end and
  Optuna gets a COMPLETE trial for it (slow); with retries it continues elsewhere (slow).

Each test that kills a node has a cluster of its own; the others share one. Nodes are stopped
by their process group, never by name.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import bad_inputs
import optuna
import pytest
from conftest import ray_start_cluster, study_records

from study import launch, nodes

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
pytestmark = pytest.mark.ray

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def process_cluster():
    """A CPU-less head and two 1-CPU worker nodes, separate `ray start` processes."""
    with ray_start_cluster({"num_cpus": 1}, {"num_cpus": 1}) as cluster:
        yield cluster


def run_launch(*argv: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "study.launch", *argv], cwd=REPO, env=bad_inputs.child_env(),
                          capture_output=True, text=True, timeout=timeout)


def journal(experiment: Path, name: str) -> optuna.Study:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(experiment / "optuna.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def results_of(folder: Path) -> list[dict]:
    path = folder / "result.json"
    rows = []
    for line in (path.read_text().splitlines() if path.exists() else []):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written
            break
    return rows


# --- preflight ---------------------------------------------------------------------------------------
CLUSTER_CASES = [c for c in bad_inputs.CASES if c.cluster]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", CLUSTER_CASES, ids=[c.id for c in CLUSTER_CASES])
def test_cluster_preflight_refuses_in_seconds_and_writes_nothing(case, process_cluster, tmp_path, capsys,
                                                                 monkeypatch):
    """Issue 14, faults 3 and 4: a trial no node can hold, GPU trials on a GPU-less cluster, a
    missing data file: one line, exit 2, nothing written, in seconds (they waited forever, or
    failed after the trials did)."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.chdir(tmp_path)
    bad_inputs.prepare(case, tmp_path)
    argv = bad_inputs.arguments(case, tmp_path, {}, process_cluster.address)
    before = bad_inputs.listing(tmp_path)
    start = time.monotonic()
    assert launch.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and case.needle in err, err
    if "node of the cluster" in err:
        assert "the largest node, " in err and "has 1 CPU, 0 GPU" in err
    assert time.monotonic() - start < 30
    assert bad_inputs.listing(tmp_path) == before


def test_the_data_file_is_looked_for_on_every_node(process_cluster, tmp_path, monkeypatch):
    """The check the launcher runs on the nodes before it submits anything: a task pinned to each
    node that can run a trial (here the file is missing everywhere but the path is checked per node)."""
    import ray

    from study.cluster import check_data_on_nodes
    from study.settings import LaunchError, Settings

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    view = process_cluster.view
    workers = sorted(n.label for n in view.alive if n.resources.get("CPU"))
    present = tmp_path / "data.npz"
    present.write_bytes(b"x")
    base = dict(space="beta", dataset="dsprites", preset="smoke", trials=1, epochs=1, objective="multi", score="mig",
                sampler="random", seeds=1, seed=0, cpus_per_trial=1.0, gpus_per_trial=0.0, max_concurrent=0,
                metrics_every=1, final_metrics="fast", train_images=0, max_failures=0, storage=str(tmp_path),
                name="x", journal_dir=None)
    ray.init(address=process_cluster.address, log_to_driver=False)
    try:
        assert check_data_on_nodes(Settings(**base, data_root=str(present)), view) == []
        with pytest.raises(LaunchError) as missing:
            check_data_on_nodes(Settings(**base, data_root=str(tmp_path / "gone.npz")), view)
    finally:
        ray.shutdown()
    message = str(missing.value)
    assert "is missing on node(s)" in message and all(label in message for label in workers), message


def test_auto_finds_a_cluster_started_with_a_custom_temp_dir(process_cluster, tmp_path, monkeypatch):
    """Issue 14, fault 9: `ray start --temp-dir X` leaves no /tmp/ray/ray_current_cluster; auto
    finds the cluster from its raylets, as Ray's own discovery does."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(nodes.tempfile, "gettempdir", lambda: str(tmp_path))  # no ray_current_cluster there
    running = nodes.local_gcs_addresses()
    assert process_cluster.address in running
    if len(running) == 1:  # other clusters on this machine make auto ambiguous (refused, tested elsewhere)
        assert nodes.resolve_address("auto")[0] == process_cluster.address


@pytest.mark.timeout(120)
def test_nodes_lists_every_node_with_a_short_label(process_cluster):
    """`python -m study.nodes`: what `ray list nodes` would show (it needs ray[default])."""
    done = subprocess.run([PY, "-m", "study.nodes", "--address", process_cluster.address], cwd=REPO,
                          env=bad_inputs.child_env(), capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"cluster {process_cluster.address}: 3 of 3 nodes alive"
    for node in process_cluster.view.nodes:
        assert any(line.startswith(node.label) and node.node_id in line for line in lines[2:]), done.stdout
    assert sum("(head)" in line for line in lines) == 1


# --- waiting for nodes that never come ----------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_gpu_trials_on_a_gpu_less_cluster_wait_visibly_then_stop_resumable(process_cluster, tmp_path):
    """With --pending-timeout the launcher waits for a node that can hold a trial, says so, and
    ends the study as interrupted (exit 1, the resume line) when none came; nothing is `running`."""
    name = "waits"
    done = run_launch("--address", process_cluster.address, "--space", "beta", "--preset", "smoke", "--trials", "1",
                      "--gpus-per-trial", "0.5", "--pending-timeout", "15", "--storage", str(tmp_path), "--name", name)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert "no node can hold a trial (0.5 CPU, 0.5 GPU) yet" in out and "at most 15 s (--pending-timeout)" in out
    assert "no trial could start for" in out and f"resume with python -m study.launch --resume --name {name}" in out
    assert "Tuner.restore" not in out + done.stderr  # Ray's own hint goes to ray.log
    record = json.loads((tmp_path / name / "study.json").read_text())
    assert record["status"] == "interrupted"
    assert [t["outcome"] for t in record["trials"]] == ["pending"]
    assert "Tuner.restore" in (tmp_path / name / "ray.log").read_text()


# --- a node lost mid-trial ---------------------------------------------------------------------------
def _kill_mid_trial(cluster, command: list[str], experiment: Path, log: Path, min_epoch: int = 2) -> str:
    """Run the launcher; once a trial has checkpointed epoch `min_epoch`, SIGKILL the node it runs
    on. Returns that node's id; the driver is left to finish."""
    with log.open("w") as out:
        driver = subprocess.Popen(command, cwd=REPO, env=bad_inputs.child_env(), stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 400
            while True:
                assert driver.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "no trial reached the epoch to kill its node at"
                for folder in experiment.glob("trial_*"):
                    rows = results_of(folder)
                    if (rows and rows[-1]["outcome"] == "running" and rows[-1]["epoch"] >= min_epoch
                            and any(folder.glob("checkpoint_*/trainer.pt"))):
                        victim = rows[-1]["node_id"]
                        cluster.kill_node(victim)
                        driver.wait(timeout=600)
                        return victim
                time.sleep(0.3)
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.wait()


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_a_node_lost_without_retries_is_one_error_everywhere_and_retry_failed_trains_it(tmp_path):
    """Issue 14, fault 1: with --max-failures 0 a trial lost with its node is `error`, "node lost",
    in study.json, Optuna (FAIL, labelled) and Ray's state (ERROR, where Ray's own file said
    RUNNING); resuming the finished study changes nothing; --retry-failed trains the trial to the
    end from its checkpoint, and Optuna gets a COMPLETE trial that supersedes the FAIL one."""
    name = "lost"
    experiment = tmp_path / name
    with ray_start_cluster({"num_cpus": 1}, {"num_cpus": 1}) as cluster:
        command = [PY, "-m", "study.launch", "--address", cluster.address, "--space", "beta", "--preset", "smoke",
                   "--trials", "2", "--epochs", "10", "--train-images", "128", "--cpus-per-trial", "1",
                   "--max-failures", "0", "--sampler", "random", "--storage", str(tmp_path), "--name", name]
        victim = _kill_mid_trial(cluster, command, experiment, tmp_path / "driver.log")
        out = (tmp_path / "driver.log").read_text()
        assert "failed: node lost (Ray's message: " in out and "error.txt)" in out
        assert "has been marked dead" not in out  # Ray's multi-line cluster messages go to ray.log
        seen = study_records(experiment, name)
        lost = next(r for r in seen.values() if r["entry"]["node_id"] == victim)
        assert lost == {"study.json": ("error", "node lost"), "ray": "ERROR",
                        "optuna": ("FAIL", "error", "node lost"), "entry": lost["entry"]}
        assert lost["entry"]["ray_error"] and lost["entry"]["node"].endswith(victim[:6])
        other = next(r for r in seen.values() if r is not lost)
        assert other["study.json"] == ("completed", None) and other["ray"] == "TERMINATED"
        assert other["optuna"][:2] == ("COMPLETE", "completed")
        record = json.loads((experiment / "study.json").read_text())
        assert record["status"] == "completed" and record["counts"]["error"] == 1

        before = {p: p.read_bytes() for p in experiment.rglob("*") if p.is_file()}
        again = run_launch("--resume", "--name", name, "--storage", str(tmp_path), "--address", cluster.address)
        assert again.returncode == 0 and "nothing to do; --retry-failed runs its 1 trial(s)" in again.stdout
        assert {p: p.read_bytes() for p in experiment.rglob("*") if p.is_file()} == before

        retried = run_launch("--resume", "--name", name, "--storage", str(tmp_path), "--address", cluster.address,
                             "--retry-failed")
        assert retried.returncode == 0, retried.stdout[-3000:] + retried.stderr[-2000:]
    seen = study_records(experiment, name)
    entry = seen[lost["entry"]["trial_id"]]["entry"]
    assert entry["outcome"] == "completed" and entry["ray_status"] == "TERMINATED" and entry["retry_of"] is not None
    study = journal(experiment, name)
    superseding = study.trials[entry["optuna_number"]]
    assert superseding.state.name == "COMPLETE" and superseding.user_attrs["retry_of"] == entry["retry_of"]
    assert study.trials[entry["retry_of"]].state.name == "FAIL"  # Optuna never changes a finished trial
    rows = results_of(experiment / entry["trial_dir"])
    assert rows[-1]["outcome"] == "completed" and rows[-1]["epoch"] == 10
    assert [r["epoch"] for r in rows].count(1) == 1  # continued from its checkpoint, not from epoch 1
    record = json.loads((experiment / "study.json").read_text())
    assert record["counts"]["completed"] == 2 and record["counts"]["error"] == 0 and len(record["runs"]) == 2


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_a_node_lost_with_retries_continues_elsewhere_and_every_record_agrees(tmp_path):
    """A worker node killed mid-trial with --max-failures 2: the trial continues from its
    checkpoint on the other node; every record says completed."""
    name = "retried"
    experiment = tmp_path / name
    with ray_start_cluster({"num_cpus": 1}, {"num_cpus": 1}) as cluster:
        command = [PY, "-m", "study.launch", "--address", cluster.address, "--space", "beta", "--preset", "smoke",
                   "--trials", "1", "--epochs", "6", "--train-images", "128", "--cpus-per-trial", "1",
                   "--max-failures", "2", "--storage", str(tmp_path), "--name", name]
        victim = _kill_mid_trial(cluster, command, experiment, tmp_path / "driver.log")
    seen = list(study_records(experiment, name).values())
    assert len(seen) == 1 and seen[0]["study.json"] == ("completed", None) and seen[0]["ray"] == "TERMINATED"
    assert seen[0]["optuna"][:2] == ("COMPLETE", "completed")
    assert seen[0]["entry"]["node_id"] != victim  # it finished on the other node
    rows = results_of(experiment / seen[0]["entry"]["trial_dir"])
    assert rows[-1]["epoch"] == 6 and [r["epoch"] for r in rows].count(1) == 1
