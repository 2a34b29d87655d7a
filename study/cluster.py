"""Where a study runs: the Ray address, joining or starting Ray, this machine's resources, the
data set and the storage -- each checked before anything is written.

    address = check_address("auto")           # LaunchError within ADDRESS_TIMEOUT_S if nothing answers
    connected = start_ray(address, verbose=False)
    check_storage(settings, resume=False)
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import tempfile
import uuid
import warnings
from pathlib import Path

import pyarrow.fs as pafs
import ray

from study.settings import LaunchError, Settings
from trainables.storage import filesystem, join
from trainables.vocabulary import STUDY_FILE

EMBEDDED_OBJECT_STORE = 200 * 1024**2  # bytes; Tune keeps checkpoints on disk, not in the object store
ADDRESS_TIMEOUT_S = 5.0
PROJECT_ROOT = str(Path(__file__).resolve().parents[1])


# --- Ray -----------------------------------------------------------------------------------------
def check_address(address: str) -> str:
    """Resolve `auto`, then check that something answers at host:port within ADDRESS_TIMEOUT_S."""
    resolved = address
    if address == "auto":
        resolved = os.environ.get("RAY_ADDRESS", "")
        current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
        if not resolved and current.exists():
            resolved = current.read_text().strip()
        if not resolved:
            raise LaunchError("--address auto found no running Ray cluster (no RAY_ADDRESS, no "
                              f"{current}): start one with `ray start --head` or `ray up`, or drop --address")
    hostport = resolved.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise LaunchError(f"--address {address!r}: expected host:port (e.g. 10.0.0.5:6379), ray://host:port or auto")
    try:
        with socket.create_connection((host, int(port)), timeout=ADDRESS_TIMEOUT_S):
            pass
    except OSError as e:
        raise LaunchError(f"--address {address}: nothing answers at {host}:{port} ({e.strerror or e}) within "
                          f"{ADDRESS_TIMEOUT_S:.0f} s: start the cluster (ray up / ray start --head) or fix the "
                          "address") from None
    return resolved


def start_ray(address: str | None, *, verbose: bool) -> bool:
    """Connect to a cluster, or start an embedded one with a modest object store. Returns True
    when this call started Ray (and the run shuts it down at the end); a caller that has already
    connected Ray (a notebook, a test) keeps its connection and its Ray."""
    if ray.is_initialized():
        return False
    kwargs = dict(log_to_driver=verbose, logging_level=logging.INFO if verbose else logging.WARNING)
    if address is not None:
        try:
            ray.init(address=address, **kwargs)
        except Exception as e:
            reason = " ".join(str(e).split())[:200]
            raise LaunchError(f"--address {address}: could not join the cluster ({reason})") from None
        return False
    # Trial processes import this project: put its root on their path even when it is not
    # pip-installed and the command runs from another folder (workers inherit the environment).
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if PROJECT_ROOT not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([PROJECT_ROOT, *paths])
    # address="local": always a new Ray of our own. Without it ray.init() joins any cluster that
    # `ray start` (or ray.cluster_utils) left in /tmp/ray/ray_current_cluster on this machine, and
    # then refuses object_store_memory with a traceback.
    ray.init(address="local", object_store_memory=EMBEDDED_OBJECT_STORE, include_dashboard=False, **kwargs)
    return True


def gpus_in_cluster() -> float:
    return float(ray.cluster_resources().get("GPU", 0.0))


# --- this machine (no --address: trials run here) --------------------------------------------------
def local_gpus() -> int:
    try:
        import torch  # deferred: seconds to import, and bad input fails before it is needed

        return torch.cuda.device_count()
    except Exception:
        return 0


def local_precision(precision: str) -> str:
    """What TrainConfig.precision `precision` resolves to on this machine ("fp32" or "bf16")."""
    from trainables.trainer import resolve_device, resolve_precision  # deferred: imports torch (seconds)

    return resolve_precision(precision, resolve_device("auto"))


def check_local_resources(settings: Settings) -> None:
    cpus = os.cpu_count() or 1
    if settings.cpus_per_trial > cpus:
        raise LaunchError(f"--cpus-per-trial {settings.cpus_per_trial:g} is more than this machine's {cpus} CPUs: "
                          f"use at most {cpus}")
    gpus = local_gpus()
    if settings.gpus_per_trial > max(gpus, 0) and settings.gpus_per_trial > 0:
        raise LaunchError(f"--gpus-per-trial {settings.gpus_per_trial:g} is more than this machine's {gpus} GPUs: "
                          f"use at most {gpus}")


def check_data(settings: Settings) -> None:
    """Load the data set once here: a missing file fails now, and the trials find the cache."""
    from trainables.data import DatasetError, load_dataset  # deferred: imports torch (seconds)

    # The loader warns about files it skips: on failure the error line says it all (one line on
    # stderr, nothing else); on success each warning is one line, not Python's two.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            load_dataset(settings.dataset, root=settings.data_root)
        except DatasetError as e:
            raise LaunchError(str(e)) from None
    for w in caught:
        print(f"warning: {' '.join(str(w.message).split())}", file=sys.stderr)


# --- storage ---------------------------------------------------------------------------------------
def check_storage(settings: Settings, *, resume: bool) -> None:
    """The storage can be written and the experiment folder is new (or, to resume, exists)."""
    if settings.remote:
        _check_remote_storage(settings, resume=resume)
        return
    root = Path(settings.storage)
    existing = root
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise LaunchError(f"--storage {settings.storage}: {existing} is a file, not a folder; choose a folder")
    try:  # a real probe (os.access says yes to root even on read-only file systems), removed at once
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".write-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise LaunchError(f"--storage {settings.storage} cannot be written ({existing}: {e.strerror or e}): "
                          "choose a writable folder") from None
    experiment = Path(settings.experiment_dir)
    if not resume and experiment.exists() and any(experiment.iterdir()):
        raise LaunchError(f"experiment {experiment} already exists: pass --resume to continue it or choose "
                          "another --name")


def _check_remote_storage(settings: Settings, *, resume: bool) -> None:
    try:
        fs, path = filesystem(settings.experiment_dir)
        bucket = path.split("/", 1)[0]
        if fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            raise LaunchError(f"--storage {settings.storage}: bucket {bucket!r} does not exist; create it or fix "
                              "the URI")
        if not resume and fs.get_file_info(join(path, STUDY_FILE)).type != pafs.FileType.NotFound:
            raise LaunchError(f"experiment {settings.experiment_dir} already exists: pass --resume to continue it "
                              "or choose another --name")
        probe = join(path, f".write-probe-{uuid.uuid4().hex}")
        with fs.open_output_stream(probe) as f:
            f.write(b"probe")
        fs.delete_file(probe)
    except LaunchError:
        raise
    except Exception as e:  # pyarrow raises OSError / ArrowInvalid with multi-line texts
        reason = " ".join(str(e).split())[:200]
        raise LaunchError(f"--storage {settings.storage} cannot be written ({reason}): check the URI, the "
                          "credentials (AWS_*/GOOGLE_*) and the endpoint (AWS_ENDPOINT_URL)") from None
