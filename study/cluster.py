"""Where a study runs: the cluster (found, probed, checked), joining or starting Ray, this
machine's resources, the data set and the storage -- each checked before anything is written.

    address, notes = check_address("auto")        # LaunchError in seconds when nothing (or no Ray) answers
    view = inspect_cluster(address)                # nodes and autoscaler, read from a child process
    notes += check_trial_fits(settings, view, pending_timeout=None)
    owns_ray = start_ray(address, verbose=False)   # True: this process connected Ray and disconnects it
    check_data(settings); check_data_on_nodes(settings, view)
    check_storage(settings, resume=False)

docs/reliability.md lists every refusal with its message and time.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import uuid
import warnings
from pathlib import Path

import pyarrow.fs as pafs
import ray

from study.nodes import ClusterError, ClusterView, probe, resolve_address
from study.progress import duration
from study.settings import DEFAULT_PENDING_TIMEOUT_S, LaunchError, Settings
from trainables.storage import filesystem, join
from trainables.vocabulary import LOCK_FILE, STUDY_FILE

EMBEDDED_OBJECT_STORE = 200 * 1024**2  # bytes; Tune keeps checkpoints on disk, not in the object store
ADDRESS_TIMEOUT_S = 5.0  # nothing listening: refused within this (study.nodes.TCP_TIMEOUT_S)
NODE_CHECK_TIMEOUT_S = 30.0  # the data file looked for on every node (a worker process per node)
PROJECT_ROOT = str(Path(__file__).resolve().parents[1])


# --- the cluster -----------------------------------------------------------------------------------
def check_address(address: str) -> tuple[str, list[str]]:
    """host:port of the cluster (`auto` resolved) and notes; LaunchError if nothing answers."""
    try:
        return resolve_address(address)
    except ClusterError as e:
        raise LaunchError(str(e)) from None


def inspect_cluster(address: str) -> ClusterView:
    """The cluster's nodes and autoscaler; LaunchError in seconds when it is not a Ray cluster."""
    try:
        return probe(address)
    except ClusterError as e:
        raise LaunchError(str(e)) from None


def trial_bundle(settings: Settings) -> dict[str, float]:
    """The resources of one trial (trainables.trainable.Resources asks Ray for the same bundle)."""
    return {"CPU": settings.cpus_per_trial, "GPU": settings.gpus_per_trial}


def check_trial_fits(settings: Settings, view: ClusterView, *, pending_timeout: float | None) -> list[str]:
    """Refuse a trial that no node can hold, unless nodes that can may still come (an autoscaler
    with such a node type, or --pending-timeout given): then say how long trials will wait."""
    bundle = trial_bundle(settings)
    if view.fits(bundle):
        return []
    wanted = _resources(bundle)
    largest = view.largest()
    have = f"the largest node, {largest.label}, has {_resources(largest.resources)}" if largest else "no node is alive"
    wait = pending_timeout or DEFAULT_PENDING_TIMEOUT_S
    growable = view.growable(bundle)
    if growable:
        kinds = ", ".join(f"{t.name} ({_resources(t.resources)})" for t in growable)
        return [f"no node can hold a trial ({wanted}) yet ({have}); the autoscaler can add {kinds}: trials wait for "
                f"it, at most {duration(wait)} (--pending-timeout)"]
    if pending_timeout is not None or (view.autoscaler and not view.node_types):  # its node types unknown
        return [f"no node can hold a trial ({wanted}) yet ({have}): trials wait for such a node, at most "
                f"{duration(wait)} (--pending-timeout)"]
    fix = ("--gpus-per-trial 0 runs on CPUs" if bundle["GPU"] > 0 and not any(
        n.resources.get("GPU") for n in view.alive) else "lower --cpus-per-trial / --gpus-per-trial to fit")
    raise LaunchError(f"no node of the cluster can hold a trial ({wanted}): {have}; {fix}, add such a node, or pass "
                      "--pending-timeout SECONDS to wait for one")


def _resources(resources: dict[str, float]) -> str:
    return ", ".join(f"{resources.get(k, 0.0):g} {k}" for k in ("CPU", "GPU"))


def start_ray(address: str | None, *, verbose: bool) -> bool:
    """Join the cluster at `address` (already probed), or start an embedded Ray with a modest
    object store. Returns True when this call connected Ray: the run disconnects (or stops) it
    at the end. A caller that has already connected Ray (a notebook, a test) keeps it."""
    if ray.is_initialized():
        return False
    kwargs = dict(log_to_driver=verbose, logging_level=logging.INFO if verbose else logging.WARNING)
    if address is not None:
        try:
            ray.init(address=address, **kwargs)
        except Exception as e:
            reason = " ".join(str(e).split())[:200]
            raise LaunchError(f"--address {address}: could not join the cluster ({reason}): run the launcher on a "
                              "node of the cluster (e.g. the head)") from None
        return True
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


# --- this machine (no --address: trials run here) --------------------------------------------------
def local_gpus() -> int:
    try:
        import torch  # deferred: seconds to import, and bad input fails before it is needed

        return torch.cuda.device_count()
    except Exception:
        return 0


def local_precision(precision: str) -> str:
    """What TrainConfig.precision `precision` resolves to on this machine ("fp32" or "bf16")."""
    from trainables.device import resolve_device, resolve_precision  # deferred: imports torch (seconds)

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


# --- the data set ----------------------------------------------------------------------------------
def check_data(settings: Settings) -> int:
    """Load the data set once here: a missing file fails now, and the trials find the cache.
    Returns its number of images; --train-images above it is refused (it would do nothing)."""
    from trainables.data import DatasetError, load_dataset  # deferred: imports torch (seconds)

    # The loader warns about files it skips: on failure the error line says it all (one line on
    # stderr, nothing else); on success each warning is one line, not Python's two.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            size = len(load_dataset(settings.dataset, root=settings.data_root))
        except DatasetError as e:
            raise LaunchError(str(e)) from None
    for w in caught:
        print(f"warning: {' '.join(str(w.message).split())}", file=sys.stderr)
    if settings.train_images > size:
        raise LaunchError(f"--train-images {settings.train_images} is more than the {size} images of "
                          f"{settings.dataset}: use at most {size}, or 0 for all")
    return size


def check_data_on_nodes(settings: Settings, view: ClusterView) -> list[str]:
    """The data file (--data-root) must be on every node that can run a trial: ask each one.
    LaunchError naming the nodes that lack it; a note for nodes that did not answer in time."""
    if settings.data_root is None:
        return []  # the data is rendered on each node (dSprites without a file)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # deferred: only on a cluster

    nodes = [n for n in view.alive if n.holds(trial_bundle(settings))]
    exists = ray.remote(num_cpus=0)(os.path.exists)  # stdlib: every node can unpickle it
    refs = {exists.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n.node_id, soft=False))
            .remote(settings.data_root): n for n in nodes}
    ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=NODE_CHECK_TIMEOUT_S)
    missing = [refs[r].label for r in ready if not _answer(r)]
    if missing:
        raise LaunchError(f"--data-root {settings.data_root} is missing on node(s) {', '.join(missing)}: every node "
                          "that runs trials needs it at the same path (copy it there, or use a shared folder)")
    for r in late:
        ray.cancel(r, force=True)
    unknown = [refs[r].label for r in late]
    return [f"data: {settings.data_root} could not be checked on {', '.join(unknown)} within "
            f"{NODE_CHECK_TIMEOUT_S:.0f} s; every node needs it at the same path"] if unknown else []


def _answer(ref: ray.ObjectRef) -> bool:
    try:
        return bool(ray.get(ref))
    except Exception:
        return True  # the node could not be asked: the trials will tell


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
        fd, probe_file = tempfile.mkstemp(dir=existing, prefix=".write-probe-")
        os.close(fd)
        os.unlink(probe_file)
    except OSError as e:
        raise LaunchError(f"--storage {settings.storage} cannot be written ({existing}: {e.strerror or e}): "
                          "choose a writable folder") from None
    experiment = Path(settings.experiment_dir)
    # a folder that holds nothing but a lock (of a launch killed at once) is new; a live lock was refused before
    if not resume and experiment.exists() and any(p.name != LOCK_FILE for p in experiment.iterdir()):
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
        probe_file = join(path, f".write-probe-{uuid.uuid4().hex}")
        with fs.open_output_stream(probe_file) as f:
            f.write(b"probe")
        fs.delete_file(probe_file)
    except LaunchError:
        raise
    except Exception as e:  # pyarrow raises OSError / ArrowInvalid with multi-line texts
        reason = " ".join(str(e).split())[:200]
        raise LaunchError(f"--storage {settings.storage} cannot be written ({reason}): check the URI, the "
                          "credentials (AWS_*/GOOGLE_*) and the endpoint (AWS_ENDPOINT_URL)") from None
