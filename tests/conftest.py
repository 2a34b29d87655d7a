"""Shared test fixtures: an isolated data cache, the read-only shared fixtures, and Ray for tests
(a local instance, a simulated cluster, a cluster of real `ray start` processes)."""

import contextlib
import os
import sys
from pathlib import Path

import pytest
import torch

# One intra-op thread: on a shared 2-core machine two OpenMP threads run the small models of
# these tests several times slower than one (they spin-wait for each other), and one thread
# makes the numbers independent of the machine's core count.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _isolated_data_env(tmp_path_factory):
    """Data caches go to a per-session temporary folder, and no user data path leaks into tests."""
    mp = pytest.MonkeyPatch()
    mp.setenv("VAE_STUDY_CACHE", str(tmp_path_factory.mktemp("vae_study_cache")))
    mp.delenv("DSPRITES_NPZ", raising=False)
    mp.delenv("UKIYOE_ROOT", raising=False)
    yield
    mp.undo()


def shared_fixture(name: str) -> Path:
    """A folder of shared/fixtures (read in place, never copied into the repo), or skip the test."""
    candidates = [Path(os.environ["VAE_STUDY_FIXTURES"])] if os.environ.get("VAE_STUDY_FIXTURES") else []
    candidates += [REPO.parent / "shared" / "fixtures", REPO / "shared" / "fixtures"]
    for folder in candidates:
        if (folder / name).is_dir():
            return folder / name
    pytest.skip(f"shared fixture {name!r} not found in {', '.join(map(str, candidates))}")


@pytest.fixture
def ukiyoe_fixture() -> Path:
    """shared/fixtures/ukiyoe: five real ARC face crops and a three-row metadata CSV."""
    return shared_fixture("ukiyoe")


MB = 1024**2


@contextlib.contextmanager
def ray_test_env():
    """Ray for a test: no token auth, workers that can import the project, nothing inherited."""
    import ray

    mp = pytest.MonkeyPatch()
    mp.setenv("RAY_AUTH_MODE", "disabled")
    mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    if ray.is_initialized():
        ray.shutdown()
    try:
        yield ray
    finally:
        ray.shutdown()
        mp.undo()


@contextlib.contextmanager
def local_ray_instance():
    """A small local Ray of the test's own (address="local": never a cluster left on the machine)."""
    with ray_test_env() as ray:
        ray.init(address="local", num_cpus=2, num_gpus=0, object_store_memory=100 * MB, include_dashboard=False,
                 log_to_driver=False)
        yield ray


@contextlib.contextmanager
def simulated_cluster(*workers: dict):
    """A ray.cluster_utils.Cluster with a CPU-less head (as in cluster.yaml) and one node per
    dict of `workers` (e.g. {"num_cpus": 1, "num_gpus": 1} for a fake GPU), small object stores."""
    from ray.cluster_utils import Cluster

    with ray_test_env() as ray:
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": 100 * MB,
                                                                "include_dashboard": False})
        try:
            nodes = [cluster.add_node(object_store_memory=100 * MB, **w) for w in workers]
            cluster.wait_for_nodes()
            yield cluster, nodes
        finally:
            ray.shutdown()  # a driver connected to the cluster first, or removing its node breaks it
            cluster.shutdown()


# --- a multi-process Ray cluster: separate `ray start` processes on this machine ----------------------
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _process_env() -> dict[str, str]:
    env = dict(os.environ, RAY_AUTH_MODE="disabled", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.pop("RAY_ADDRESS", None)
    return env


class RayStartCluster:
    """A head and worker nodes, each its own `ray start --block` process in a process group of its
    own (the test kills a node by its group, never by name), with a temp dir of the test's own."""

    def __init__(self, temp_dir: Path, head_cpus: float = 0) -> None:
        self.temp_dir, self.head_cpus = temp_dir, head_cpus
        self.port = free_port()
        self.processes: list = []  # subprocess.Popen: the head first
        self.address = ""

    def _start(self, args: list[str], log: str):
        import subprocess

        ray = str(Path(sys.executable).with_name("ray"))
        with open(self.temp_dir / log, "w") as out:
            # every port free (other clusters may run on this machine), small object stores
            proc = subprocess.Popen([ray, "start", *args, "--object-store-memory=100000000", "--disable-usage-stats",
                                     f"--dashboard-agent-listen-port={free_port()}", "--block"],
                                    env=_process_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(proc)
        return proc

    def start_head(self) -> str:
        import time

        self._start(["--head", f"--port={self.port}", f"--temp-dir={self.temp_dir}", f"--num-cpus={self.head_cpus}",
                     "--include-dashboard=false", f"--dashboard-port={free_port()}",
                     ], "head.log")
        current = self.temp_dir / "ray_current_cluster"
        deadline = time.monotonic() + 90
        while not current.is_file() or not current.read_text().strip():
            assert self.processes[0].poll() is None, (self.temp_dir / "head.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the head did not start in 90 s"
            time.sleep(0.5)
        self.address = current.read_text().strip()
        return self.address

    def add_worker(self, num_cpus: float = 1, num_gpus: float = 0):
        args = [f"--address={self.address}", f"--num-cpus={num_cpus}"]
        if num_gpus:
            args.append(f"--num-gpus={num_gpus}")
        return self._start(args, f"worker{len(self.processes)}.log")

    def wait_for_nodes(self, count: int, timeout_s: float = 120):
        """The cluster as study.nodes sees it, once `count` nodes are alive."""
        import time

        from study.nodes import ClusterError, probe

        deadline = time.monotonic() + timeout_s
        seen: object = None
        while True:
            try:
                seen = view = probe(self.address)
                if len(view.alive) >= count:
                    return view
            except ClusterError as e:
                seen = e
            logs = {p.name: p.read_text()[-600:] for p in self.temp_dir.glob("*.log")}
            assert time.monotonic() < deadline, f"{count} nodes not alive in {timeout_s} s: {seen}; {logs}"
            time.sleep(1)

    def node_group(self, node_id: str) -> int | None:
        """The process group of the `ray start` process whose raylet is node `node_id`."""
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if cmd.split(b"\0", 1)[0].endswith(b"/raylet") and f"--node_id={node_id}".encode() in cmd:
                return os.getpgid(int(proc.name))
        return None

    def kill_node(self, node_id: str) -> None:
        """SIGKILL a node: its `ray start` process, raylet and agents (its process group)."""
        import signal

        group = self.node_group(node_id)
        assert group is not None and group != self.processes[0].pid, f"no worker node {node_id}"
        os.killpg(group, signal.SIGKILL)

    def stop(self) -> None:
        """Each node's process group: SIGTERM, then SIGKILL what is left after a few seconds."""
        import signal
        import subprocess
        import time

        for proc in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while any(p.poll() is None for p in self.processes) and time.monotonic() < deadline:
            time.sleep(0.2)
        for proc in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)


@contextlib.contextmanager
def ray_start_cluster(*workers: dict, head_cpus: float = 0):
    """A cluster of separate `ray start` processes on this machine: a head with `head_cpus`
    (0, as in cluster.yaml) and one worker node per dict ({"num_cpus": 1}, {"num_gpus": 1}, ...);
    100 MB object stores, a short temp dir of its own (Unix socket paths are short), stopped by
    process group at the end."""
    import shutil
    import tempfile

    temp_dir = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))
    cluster = RayStartCluster(temp_dir, head_cpus=head_cpus)
    try:
        cluster.start_head()
        for i, w in enumerate(workers):  # one at a time: nodes that start together can time out
            cluster.add_worker(**w)
            cluster.view = cluster.wait_for_nodes(2 + i)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


# --- the records of a finished study -------------------------------------------------------------------
def study_records(experiment: Path, name: str) -> dict[str, dict]:
    """Each Ray trial (by trial id) as the study-side records say it: study.json's verdict
    (outcome, error), Ray's state file (status) and Optuna (state, outcome label, error label);
    "entry" is study.json's whole entry. trials.parquet is the analysis package's."""
    import json

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from study.ray_state import read_ray_trials

    record = json.loads((experiment / "study.json").read_text())
    ray_trials = read_ray_trials(experiment)
    storage = JournalStorage(JournalFileBackend(str(experiment / "optuna.journal")))
    optuna_trials = {t.number: t for t in optuna.load_study(study_name=name, storage=storage).trials}
    out = {}
    for entry in record["trials"]:
        trial = optuna_trials.get(entry["optuna_number"])
        out[entry["trial_id"]] = {
            "study.json": (entry["outcome"], entry["error"]),
            "ray": ray_trials[entry["trial_id"]].status,
            "optuna": (trial.state.name, trial.user_attrs.get("outcome"), trial.user_attrs.get("error")),
            "entry": entry,
        }
    return out
