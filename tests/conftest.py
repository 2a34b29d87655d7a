"""Shared test fixtures: an isolated data cache and the read-only shared fixtures."""

import contextlib
import os
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
