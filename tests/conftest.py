"""Shared test fixtures: an isolated data cache and the read-only shared fixtures."""

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
