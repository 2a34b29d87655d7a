"""Run a hyperparameter study: Optuna proposes, Ray Tune trains, everything lands in one folder.

    python -m study.launch --space sintro_tc                      # the `cpu` preset on this machine
    python -m study.launch --space compare --preset full --address auto --storage s3://bucket/studies

Flags, presets, seeds, objectives and the cluster workflow: docs/study.md. The experiment folder
(<storage>/<name>/: study.json, optuna.journal, Ray Tune's state and one folder per trial) is the
one docs/architecture.md describes and `analysis` reads.

Bad input -- an unknown name, impossible numbers, an address that does not answer, storage that
cannot be written, a study to resume that does not exist or has another space -- is one line on
stderr naming the problem and the fix, exit code 2, and nothing written.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib.metadata
import json
import logging
import os
import socket
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search_spaces import SPACES, fixed_points, get_space, is_fixed_design
from trainables.models import ARCHS
from study.presets import PRESETS, Preset, default_preset, get_preset
from study.searcher import SAMPLERS

DATASETS = ("dsprites", "dsprites_small", "ukiyoe")  # trainables.data.DATASETS, without importing torch
# The disentanglement score of the default objective: MIG (Chen et al. 2018). It needs no
# classifier (no estimator noise from a fit), it is the score beta-TCVAE was introduced with,
# and it punishes a factor spread over several latents, which the beta-VAE score does not.
DEFAULT_SCORE = "mig"
# Without ground-truth factors (Ukiyo-e) no disentanglement score exists; the closest
# unsupervised proxy is the total correlation of a Gaussian fitted to the encoder means (down).
DEFAULT_SCORE_NO_FACTORS = "gaussian_tc"
RECONSTRUCTION = "rec_loss"  # the trainer's per-image reconstruction NLL (nats), training-epoch mean
FACTOR_SCORES = ("mig", "beta_vae", "factor_vae", "modularity", "explicitness", "dci_disentanglement",
                 "dci_completeness", "dci_informativeness", "sap")
UNSUPERVISED_SCORES = ("gaussian_tc", "active_units")
RECONSTRUCTION_SCORES = (RECONSTRUCTION, "mse", "psnr")  # --objective single only
LOWER_IS_BETTER = {"gaussian_tc", RECONSTRUCTION, "mse"}
EMBEDDED_OBJECT_STORE = 200 * 1024**2  # bytes; Tune keeps checkpoints on disk, not in the object store
ADDRESS_TIMEOUT_S = 5.0


class LaunchError(Exception):
    """Bad input: printed as one line on stderr, exit code 2."""


# --- settings ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """Everything a study needs, after presets and flags are merged; stored in study.json."""

    space: str
    dataset: str
    preset: str
    trials: int
    epochs: int
    objective: str  # "multi" | "single"
    score: str
    sampler: str
    seeds: int
    seed: int
    cpus_per_trial: float
    gpus_per_trial: float
    max_concurrent: int
    metrics_every: int
    final_metrics: str
    train_images: int
    max_failures: int
    data_root: str | None
    storage: str
    name: str
    journal_dir: str | None
    arch: str | None = None  # None: the trainer's default for the data set

    @property
    def objectives(self) -> list[tuple[str, str]]:
        """(metric, mode) pairs, declared once: the searcher, the scheduler, the progress line
        and study.json all read them from here."""
        score = (self.score, "min" if self.score in LOWER_IS_BETTER else "max")
        return [score] if self.objective == "single" else [score, (RECONSTRUCTION, "min")]

    @property
    def remote(self) -> bool:
        return "://" in self.storage

    @property
    def experiment_dir(self) -> str:
        return f"{self.storage.rstrip('/')}/{self.name}"

    @property
    def journal_path(self) -> Path:
        """Local storage: next to the results. Object storage: a local folder (the journal needs
        a file system with appends and locks), copied up to the experiment folder."""
        if not self.remote:
            return Path(self.experiment_dir) / "optuna.journal"
        return Path(self.journal_dir or "runs/journals").resolve() / self.name / "optuna.journal"


# Flags that a preset fills when they are not given explicitly.
PRESET_FLAGS = ("dataset", "trials", "epochs", "seeds", "cpus_per_trial", "gpus_per_trial", "max_concurrent",
                "metrics_every", "final_metrics", "train_images", "max_failures", "arch")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(prog="python -m study.launch", description="Run a Ray Tune + Optuna study of VAE variants.")
    p.add_argument("--space", help=f"search space: {', '.join(sorted(SPACES))}")
    p.add_argument("--preset", help=f"{' | '.join(PRESETS)} (default: cpu without a GPU, full with one; paper_cpu / paper_full for --space paper)")
    p.add_argument("--dataset", help=f"{', '.join(DATASETS)} (preset: dsprites_small)")
    p.add_argument("--data-root", help="dSprites .npz file or Ukiyo-e folder (default: the data package's)")
    p.add_argument("--trials", type=int, help="trainings in all (configurations x seeds)")
    p.add_argument("--epochs", type=int, help="epochs per trial")
    p.add_argument("--objective", choices=("multi", "single"), default="multi",
                   help="multi: score up and rec_loss down (FIFO); single: the score alone, with ASHA")
    p.add_argument("--score", help=f"the disentanglement objective (default {DEFAULT_SCORE}; "
                                   f"{DEFAULT_SCORE_NO_FACTORS} on ukiyoe)")
    p.add_argument("--sampler", choices=SAMPLERS, default="tpe", help="Optuna sampler (default tpe)")
    p.add_argument("--seeds", type=int, help="trainings per configuration, seeds --seed, --seed+1, ...")
    p.add_argument("--seed", type=int, default=0, help="first training seed and the sampler's seed")
    p.add_argument("--cpus-per-trial", type=float)
    p.add_argument("--gpus-per-trial", type=float, help="a fraction in [0, 1] (trials share a GPU) or a whole number")
    p.add_argument("--max-concurrent", type=int, help="trials at once (0: as the resources allow)")
    p.add_argument("--metrics-every", type=int, help="fast metrics every k epochs")
    p.add_argument("--final-metrics", help="metrics preset after the last epoch (fast | full)")
    p.add_argument("--train-images", type=int, help="train on a fixed random subset of n images (0: all)")
    p.add_argument("--max-failures", type=int, help="retries of a failed trial from its checkpoint")
    p.add_argument("--arch", help=f"the model of every trial: {', '.join(ARCHS)} (default: the preset's, else "
                                  "standard on dSprites and residual on Ukiyo-e)")
    p.add_argument("--address", help="none: start Ray here; 'auto' or host:port: join a running cluster")
    p.add_argument("--storage", default="results", help="local folder or s3:// / gs:// URI (default ./results)")
    p.add_argument("--name", help="experiment name (default <space>-<dataset>-<time>)")
    p.add_argument("--journal-dir", help="local folder for the Optuna journal when --storage is a URI")
    p.add_argument("--resume", action="store_true", help="continue the study <storage>/<name>")
    p.add_argument("-v", "--verbose", action="store_true", help="Ray's own progress output and worker logs")
    return p.parse_args(argv)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit code 2 (argparse prints usage as well)
        raise LaunchError(f"{message} (see python -m study.launch --help)")


def resolve(args: argparse.Namespace, *, gpu_visible: bool, record: dict | None = None) -> tuple[Settings, list[str]]:
    """Merge preset and flags into Settings, checking every value. Returns the notes to print."""
    notes: list[str] = []
    explicit = {k for k in PRESET_FLAGS if getattr(args, k) is not None}
    if record is not None:  # --resume: the study keeps its settings
        settings = Settings(**record["settings"])
        for key in explicit | {"score", "preset"}:
            given = getattr(args, key)
            if given is not None and given != getattr(settings, key):
                raise LaunchError(f"--{key.replace('_', '-')} {given} differs from the resumed study's "
                                  f"{getattr(settings, key)}: a resumed study keeps its settings; drop the flag")
        for key in ("objective", "sampler", "seed"):
            if getattr(args, key) != getattr(settings, key) and getattr(args, key) != _DEFAULTS[key]:
                raise LaunchError(f"--{key} {getattr(args, key)} differs from the resumed study's "
                                  f"{getattr(settings, key)}: a resumed study keeps its settings; drop the flag")
        return settings, notes

    if args.preset is None:
        preset_name = default_preset(args.space, gpu_visible=gpu_visible)
        notes.append(f"preset: {preset_name} ({'a GPU is visible' if gpu_visible else 'no GPU visible'}; "
                     "--preset chooses another)")
    else:
        preset_name = args.preset
    try:
        preset: Preset = get_preset(preset_name)
    except ValueError as e:
        raise LaunchError(str(e)) from None
    values = {k: getattr(args, k) if k in explicit else getattr(preset, k) for k in PRESET_FLAGS}

    if values["dataset"] not in DATASETS:
        raise LaunchError(f"unknown data set {values['dataset']!r}: use one of {', '.join(DATASETS)}")
    if values["trials"] < 1:
        raise LaunchError(f"--trials must be at least 1, got {values['trials']}")
    if values["epochs"] < 1:
        raise LaunchError(f"--epochs must be at least 1, got {values['epochs']}")
    if values["seeds"] < 1:
        raise LaunchError(f"--seeds must be at least 1, got {values['seeds']}")
    if is_fixed_design(args.space):  # the space's configurations x seeds, nothing sampled
        exact = len(fixed_points(args.space)) * values["seeds"]
        if "trials" in explicit and values["trials"] != exact:
            raise LaunchError(f"--space {args.space} trains exactly its {exact // values['seeds']} configurations x "
                              f"{values['seeds']} seeds = {exact} trials, got --trials {values['trials']}: drop "
                              "--trials (use --seeds for more trainings)")
        if values["trials"] != exact:
            notes.append(f"trials: {exact} ({exact // values['seeds']} configurations x {values['seeds']} seeds)")
        values["trials"] = exact
    if values["seeds"] > values["trials"]:
        raise LaunchError(f"--seeds {values['seeds']} needs at least {values['seeds']} trials, got --trials "
                          f"{values['trials']}: raise --trials or lower --seeds")
    if values["trials"] % values["seeds"]:
        rounded = -(-values["trials"] // values["seeds"]) * values["seeds"]
        if "trials" in explicit:
            raise LaunchError(f"--trials {values['trials']} is not a multiple of --seeds {values['seeds']}: "
                              f"use --trials {rounded} (every configuration gets every seed)")
        notes.append(f"trials: {rounded} (the preset's {values['trials']} rounded up to a multiple of {values['seeds']} seeds)")
        values["trials"] = rounded
    if not values["cpus_per_trial"] > 0:
        raise LaunchError(f"--cpus-per-trial must be above 0, got {values['cpus_per_trial']}")
    gpus = values["gpus_per_trial"]
    if gpus < 0 or (gpus > 1 and gpus != int(gpus)):
        raise LaunchError(f"--gpus-per-trial must be a fraction in [0, 1] or a whole number of GPUs, got {gpus}")
    if values["max_concurrent"] < 0:
        raise LaunchError(f"--max-concurrent must be 0 (no limit) or more, got {values['max_concurrent']}")
    if values["metrics_every"] < 1:
        raise LaunchError(f"--metrics-every must be at least 1, got {values['metrics_every']}")
    if values["final_metrics"] not in ("fast", "full"):
        raise LaunchError(f"--final-metrics must be fast or full, got {values['final_metrics']!r}")
    if values["train_images"] < 0:
        raise LaunchError(f"--train-images must be 0 (all) or more, got {values['train_images']}")
    if values["max_failures"] < 0:
        raise LaunchError(f"--max-failures must be 0 or more, got {values['max_failures']}")
    if values["arch"] is not None and values["arch"] not in ARCHS:
        raise LaunchError(f"--arch {values['arch']!r} is unknown: use one of {', '.join(ARCHS)}")
    if gpus > 0 and not gpu_visible and args.address is None:
        notes.append(f"no GPU visible: running on CPUs (--gpus-per-trial {gpus} -> 0)")
        values["gpus_per_trial"] = 0.0
    if args.objective == "single" and values["metrics_every"] != 1 and "metrics_every" not in explicit:
        values["metrics_every"] = 1  # ASHA compares the score at every rung

    has_factors = values["dataset"] != "ukiyoe"
    if not has_factors and values["gpus_per_trial"] == 0:
        notes.append("ukiyoe without a GPU: the residual model trains at 0.5-7 images/s per CPU core "
                     "(docs/benchmarks.md), hours per epoch; --gpus-per-trial puts it on GPUs")
    score = args.score or (DEFAULT_SCORE if has_factors else DEFAULT_SCORE_NO_FACTORS)
    allowed = (FACTOR_SCORES if has_factors else ()) + UNSUPERVISED_SCORES + (
        RECONSTRUCTION_SCORES if args.objective == "single" else ())
    if score not in allowed:
        why = (" (Ukiyo-e has no ground-truth factors)" if score in FACTOR_SCORES else
               " (a reconstruction score is already the second objective; use --objective single)"
               if score in RECONSTRUCTION_SCORES else "")
        raise LaunchError(f"--score {score!r} cannot be used here{why}: use one of {', '.join(allowed)}")
    name = args.name or f"{args.space}-{values['dataset']}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    if not name or "/" in name or name.startswith("."):
        raise LaunchError(f"--name {name!r} must be a plain folder name (no '/', not starting with '.')")
    settings = Settings(
        space=args.space, preset=preset_name, objective=args.objective, score=score, sampler=args.sampler,
        seed=args.seed, data_root=_absolute(args.data_root), storage=_storage_root(args.storage), name=name,
        journal_dir=args.journal_dir, **values,
    )
    return settings, notes


_DEFAULTS = {"objective": "multi", "sampler": "tpe", "seed": 0}


def _absolute(path: str | None) -> str | None:
    """Trials run in their own working directories: local paths must be absolute."""
    if path is None or "://" in path:
        return path
    return str(Path(path).expanduser().resolve())


def _storage_root(storage: str) -> str:
    if "://" in storage:
        scheme = storage.split("://", 1)[0]
        if scheme not in ("s3", "gs", "gcs"):
            raise LaunchError(f"--storage {storage!r}: use a local folder or an s3:// or gs:// URI")
        return storage.rstrip("/")
    return str(Path(storage).expanduser().resolve())


# --- checks that touch the outside world, before anything is written --------------------------
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
        raise LaunchError(f"experiment {experiment} already exists: pass --resume to continue it or choose another --name")


def _check_remote_storage(settings: Settings, *, resume: bool) -> None:
    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(settings.experiment_dir)
        bucket = path.split("/", 1)[0]
        if fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            raise LaunchError(f"--storage {settings.storage}: bucket {bucket!r} does not exist; create it or fix the URI")
        if not resume and fs.get_file_info(f"{path}/study.json").type != pafs.FileType.NotFound:
            raise LaunchError(f"experiment {settings.experiment_dir} already exists: pass --resume to continue it "
                              "or choose another --name")
        probe = f"{path}/.write-probe-{uuid.uuid4().hex}"
        with fs.open_output_stream(probe) as f:
            f.write(b"probe")
        fs.delete_file(probe)
    except LaunchError:
        raise
    except Exception as e:  # pyarrow raises OSError / ArrowInvalid with multi-line texts
        reason = " ".join(str(e).split())[:200]
        raise LaunchError(f"--storage {settings.storage} cannot be written ({reason}): check the URI, the "
                          "credentials (AWS_*/GOOGLE_*) and the endpoint (AWS_ENDPOINT_URL)") from None


def read_record(storage: str, name: str) -> dict:
    """study.json of the experiment to resume; LaunchError if there is none."""
    text = _read_text(f"{storage.rstrip('/')}/{name}/study.json")
    if text is None:
        raise LaunchError(f"no study {name!r} in {storage} (no study.json): nothing to resume; "
                          "drop --resume to start it, or pass the --storage and --name it was started with")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise LaunchError(f"{storage}/{name}/study.json is not valid JSON: the study cannot be resumed") from None


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
                          f"{ADDRESS_TIMEOUT_S:.0f} s: start the cluster (ray up / ray start --head) or fix the address") from None
    return resolved


# --- Ray and Optuna ------------------------------------------------------------------------------
def start_ray(address: str | None, *, verbose: bool) -> bool:
    """Connect to a cluster, or start an embedded one with a modest object store. Returns True
    when this call connected (and the run disconnects at the end); a caller that has already
    connected Ray (a notebook, a test) keeps its connection and its Ray."""
    import ray

    if ray.is_initialized():
        return False
    kwargs = dict(log_to_driver=verbose, logging_level=logging.INFO if verbose else logging.WARNING)
    if address is not None:
        try:
            ray.init(address=address, **kwargs)
        except Exception as e:
            raise LaunchError(f"--address {address}: could not join the cluster ({' '.join(str(e).split())[:200]})") from None
        return False
    # Trial processes import this project: put its root on their path even when it is not
    # pip-installed and the command runs from another folder (workers inherit the environment).
    root = str(Path(__file__).resolve().parents[1])
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])
    # address="local": always a new Ray of our own. Without it ray.init() joins any cluster that
    # `ray start` (or ray.cluster_utils) left in /tmp/ray/ray_current_cluster on this machine, and
    # then refuses object_store_memory with a traceback.
    ray.init(address="local", object_store_memory=EMBEDDED_OBJECT_STORE, include_dashboard=False, **kwargs)
    return True


def gpus_in_cluster() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0.0))


def open_study(settings: Settings, *, resume: bool):
    """The Optuna study in a JournalStorage(JournalFileBackend) at settings.journal_path."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = settings.journal_path
    path.parent.mkdir(parents=True, exist_ok=True)
    if settings.remote and resume and not path.exists():
        data = _read_bytes(f"{settings.experiment_dir}/optuna.journal")
        if data is not None:
            path.write_bytes(data)
    storage = JournalStorage(JournalFileBackend(str(path)))
    directions = ["maximize" if mode == "max" else "minimize" for _, mode in settings.objectives]
    study = optuna.create_study(storage=storage, study_name=settings.name, directions=directions,
                                load_if_exists=resume)
    if not resume:
        for key in ("space", "dataset", "seeds", "seed", "objective"):
            study.set_user_attr(key, getattr(settings, key))
        study.set_user_attr("objectives", [list(o) for o in settings.objectives])
    return study, storage


def build_tuner(settings: Settings, *, storage, resume: bool, verbose: bool = False):
    """The one place the Tuner is assembled (fresh or restored)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from study.progress import JournalMirror, ProgressLine
    from study.searcher import SeededSpace, StudySearch, make_sampler, trial_dirname
    from trainables.trainable import Resources, train_vae

    trainable = tune.with_resources(train_vae, Resources(settings.cpus_per_trial, settings.gpus_per_trial))
    if resume:
        return tune.Tuner.restore(settings.experiment_dir, trainable=trainable, resume_unfinished=True,
                                  resume_errored=False, restart_errored=False)

    metrics, modes = [m for m, _ in settings.objectives], [mode for _, mode in settings.objectives]
    space = SeededSpace(settings.space, seeds=settings.seeds, base_seed=settings.seed,
                        points=fixed_points(settings.space))
    searcher = StudySearch(
        space=space,
        metric=metrics if len(metrics) > 1 else metrics[0],
        mode=modes if len(modes) > 1 else modes[0],
        points_to_evaluate=space.first_points or None,
        sampler=make_sampler(settings.sampler, seed=settings.seed, trials=settings.trials),
        study_name=settings.name,
        storage=storage,
    )
    scheduler = None
    if settings.objective == "single":
        scheduler = ASHAScheduler(time_attr="epoch", metric=metrics[0], mode=modes[0], max_t=settings.epochs,
                                  grace_period=max(1, settings.epochs // 8), reduction_factor=3)
    mirror = JournalMirror(str(settings.journal_path), f"{settings.experiment_dir}/optuna.journal") if settings.remote else None
    param_space = {
        "dataset": settings.dataset, "data_root": settings.data_root, "epochs": settings.epochs,
        "metrics_every": settings.metrics_every, "final_metrics": settings.final_metrics,
        "train_images": settings.train_images, "objectives": [list(o) for o in settings.objectives],
    }
    if settings.arch is not None:
        param_space["arch"] = settings.arch
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=settings.trials,
                                    max_concurrent_trials=settings.max_concurrent or None,
                                    trial_dirname_creator=trial_dirname),
        run_config=tune.RunConfig(
            name=settings.name,
            storage_path=settings.storage,
            verbose=1 if verbose else 0,
            callbacks=[ProgressLine(settings.objectives, settings.trials, on_change=mirror)],
            failure_config=tune.FailureConfig(max_failures=settings.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            sync_config=tune.SyncConfig(sync_artifacts=True),
        ),
    )


def ray_known_trials(settings: Settings) -> set[int] | None:
    """The Optuna numbers of the trials in Ray Tune's newest experiment state (the trials a
    resume continues); None when the state cannot be read (then nothing is assumed)."""
    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(settings.experiment_dir) if settings.remote else (
            pafs.LocalFileSystem(), settings.experiment_dir)
        states = sorted(i.path for i in fs.get_file_info(pafs.FileSelector(path))
                        if i.base_name.startswith("experiment_state-") and i.base_name.endswith(".json"))
        if not states:
            return None
        with fs.open_input_stream(states[-1]) as f:
            data = json.loads(f.read())
        known = set()
        for trial_json, _ in data["trial_data"]:
            config = json.loads(trial_json).get("config", {})
            if isinstance(config.get("optuna_number"), int):
                known.add(config["optuna_number"])
        return known
    except Exception:  # Ray's internal format changed: fall back to the check at the end
        return None


# --- study.json ----------------------------------------------------------------------------------
def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for package in ("torch", "ray", "optuna", "numpy", "scikit-learn", "pandas", "pyarrow"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "absent"
    return out


def write_record(settings: Settings, record: dict) -> None:
    """study.json, atomically: a temporary file renamed over the old one (one PUT on S3/GCS)."""
    data = (json.dumps(record, indent=2, sort_keys=True, default=str) + "\n").encode()
    target = f"{settings.experiment_dir}/study.json"
    if settings.remote:
        import pyarrow.fs as pafs

        fs, path = pafs.FileSystem.from_uri(target)
        with fs.open_output_stream(path) as f:
            f.write(data)
        return
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=Path(target).parent, prefix=".study.json.", delete=False) as f:
        f.write(data)
    os.replace(f.name, target)


def _read_bytes(uri_or_path: str) -> bytes | None:
    if "://" not in uri_or_path:
        p = Path(uri_or_path)
        return p.read_bytes() if p.is_file() else None
    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(uri_or_path)
        if fs.get_file_info(path).type != pafs.FileType.File:
            return None
        with fs.open_input_stream(path) as f:
            return f.read()
    except Exception as e:
        raise LaunchError(f"cannot read {uri_or_path} ({' '.join(str(e).split())[:200]}): check the URI and credentials") from None


def _read_text(uri_or_path: str) -> str | None:
    data = _read_bytes(uri_or_path)
    return None if data is None else data.decode()


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


# --- the run -------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        prepared = prepare(argv)
    except LaunchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return run(*prepared)


def prepare(argv: list[str]):
    """Every check, then Ray started or joined. Nothing is written before this returns."""
    args = parse_args(argv)
    record = None
    if args.resume:
        if not args.name:
            raise LaunchError("--resume needs --name (and the --storage the study was started with)")
        record = read_record(_storage_root(args.storage), args.name)
        if args.space is not None and args.space != record.get("space"):
            raise LaunchError(f"study {args.name!r} was started with --space {record.get('space')}, not {args.space}: "
                              f"drop --space or pass --space {record.get('space')}")
        args.space = record.get("space")
    if args.space is None:
        raise LaunchError(f"--space is required: use one of {', '.join(sorted(SPACES))}")
    try:
        get_space(args.space)
    except ValueError as e:
        raise LaunchError(str(e)) from None

    address = check_address(args.address) if args.address is not None else None
    connected = False
    if address is None:
        settings, notes = resolve(args, gpu_visible=_local_gpus() > 0, record=record)
    try:
        if address is not None:  # the cluster decides whether a GPU is visible
            connected = start_ray(address, verbose=args.verbose)
            settings, notes = resolve(args, gpu_visible=gpus_in_cluster() > 0, record=record)
            if settings.gpus_per_trial > 0 and gpus_in_cluster() == 0:
                notes.append("the cluster shows no GPU yet: GPU trials wait for GPU workers (autoscaler); "
                             "--gpus-per-trial 0 runs them on CPUs")
        check_storage(settings, resume=args.resume)
        if settings.remote and not args.resume and settings.journal_path.exists():
            raise LaunchError(f"{settings.journal_path} already exists: choose another --name or --journal-dir")
        if args.resume:
            from ray import tune

            if not tune.Tuner.can_restore(settings.experiment_dir):
                raise LaunchError(f"{settings.experiment_dir} has no Ray Tune state to resume "
                                  "(the study stopped before its first trial): start it again under a new --name")
        if address is None:
            _check_local_resources(settings)
            _check_data(settings)
            connected = start_ray(None, verbose=args.verbose)
    except BaseException:
        if connected:
            import ray

            ray.shutdown()  # only disconnects from the cluster
        raise
    return settings, notes, argv, record, connected, args.verbose


def _local_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:
        return 0


def _check_local_resources(settings: Settings) -> None:
    cpus = os.cpu_count() or 1
    if settings.cpus_per_trial > cpus:
        raise LaunchError(f"--cpus-per-trial {settings.cpus_per_trial:g} is more than this machine's {cpus} CPUs: "
                          f"use at most {cpus}")
    gpus = _local_gpus()
    if settings.gpus_per_trial > max(gpus, 0) and settings.gpus_per_trial > 0:
        raise LaunchError(f"--gpus-per-trial {settings.gpus_per_trial:g} is more than this machine's {gpus} GPUs: "
                          f"use at most {gpus}")


def _check_data(settings: Settings) -> None:
    """Load the data set once here: a missing file fails now, and the trials find the cache."""
    from trainables.data import DatasetError, load_dataset

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


def run(settings: Settings, notes: list[str], argv: list[str], record: dict | None, connected: bool,
        verbose: bool) -> int:
    import ray

    from study.searcher import fail_orphans

    _quiet(verbose)
    resume = record is not None
    for note in notes:
        print(note)
    print(f"study {settings.name}: space {settings.space}, {settings.trials} trials x {settings.epochs} epochs on "
          f"{settings.dataset}, {settings.seeds} seed{'s' if settings.seeds > 1 else ''} per configuration, objectives "
          + ", ".join(f"{m} ({mode})" for m, mode in settings.objectives))
    print(f"results: {settings.experiment_dir}   optuna: {settings.journal_path}")

    record = dict(record or {})
    record.update(
        name=settings.name, space=settings.space, dataset=settings.dataset, preset=settings.preset,
        settings=dataclasses.asdict(settings), preset_values=PRESETS[settings.preset].as_dict(),
        objectives=[{"metric": m, "mode": mode} for m, mode in settings.objectives],
        sampler=settings.sampler, seeds=settings.seeds, seed=settings.seed,
        storage=settings.storage, experiment_dir=settings.experiment_dir, journal=str(settings.journal_path),
        address=ray.get_runtime_context().gcs_address, versions=versions(), status="running",
    )
    record.setdefault("argv", argv)
    record.setdefault("started_at", _now())
    record["runs"] = record.get("runs", []) + [{"argv": argv, "started_at": _now()}]
    try:
        study, storage = open_study(settings, resume=resume)
        if resume:
            known = ray_known_trials(settings)
            if known is not None:
                requeued = fail_orphans(study, known=known, requeue=True)
                if requeued:
                    print(f"optuna trials {requeued} were asked but never started (killed driver): "
                          "marked FAIL, their configurations queued again")
        write_record(settings, record)
        tuner = build_tuner(settings, storage=storage, resume=resume, verbose=verbose)
        start = time.monotonic()
        results = tuner.fit()
        wall = time.monotonic() - start
        counts = _counts(results)
        finished = results.num_terminated + results.num_errors >= settings.trials
        # Optuna trials still RUNNING once every Ray trial has ended were asked by a driver that
        # died before starting them. After an interruption they may still resume: keep them.
        orphans = fail_orphans(study) if finished else []
        record.update(status="completed" if finished else "interrupted", ended_at=_now(),
                      counts=counts, orphaned_optuna_trials=orphans)
        record["runs"][-1].update(ended_at=_now(), wall_time_s=round(wall, 1))
        write_record(settings, record)
        if settings.remote:
            from study.progress import JournalMirror

            JournalMirror(str(settings.journal_path), f"{settings.experiment_dir}/optuna.journal")()
        _print_summary(settings, study, counts, wall)
        if record["status"] == "interrupted":
            print(f"interrupted: resume with python -m study.launch --resume --name {settings.name} "
                  f"--storage {settings.storage}")
            return 1
        _write_report(settings)
        return 1 if counts["error"] and not (counts["completed"] + counts["stopped"]) else 0
    except KeyboardInterrupt:  # a second Ctrl-C (the first lets Ray Tune stop cleanly)
        record.update(status="interrupted", ended_at=_now())
        write_record(settings, record)
        print(f"interrupted: resume with python -m study.launch --resume --name {settings.name} "
              f"--storage {settings.storage}", file=sys.stderr)
        return 130
    except BaseException:
        record.update(status="failed", ended_at=_now())
        try:
            write_record(settings, record)
        except Exception:
            pass
        raise
    finally:
        if connected:
            ray.shutdown()  # stops the embedded Ray, or only disconnects from a cluster


def _counts(results) -> dict[str, int]:
    counts = {"completed": 0, "stopped": 0, "diverged": 0, "error": 0, "unfinished": 0}
    for r in results:
        outcome = (r.metrics or {}).get("outcome")
        if outcome == "diverged":
            counts["diverged"] += 1
        elif r.error is not None or outcome == "error":
            counts["error"] += 1
        elif outcome == "completed":
            counts["completed"] += 1
        elif outcome == "running":
            counts["stopped"] += 1  # ended early by ASHA (or still unfinished after an interruption)
        else:
            counts["unfinished"] += 1  # never reported
    return counts


def _print_summary(settings: Settings, study, counts: dict[str, int], wall: float) -> None:
    import optuna

    print(f"done in {wall / 60:.1f} min: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v or k == "completed"))
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if complete:
        best = study.best_trials if len(study.directions) > 1 else [study.best_trial]
        label = "Pareto front" if len(study.directions) > 1 else "best"
        print(f"{label} ({len(best)} of {len(complete)} complete trials):")
        names = [m for m, _ in settings.objectives]
        for t in sorted(best, key=lambda t: t.values[0], reverse=settings.objectives[0][1] == "max")[:8]:
            values = ", ".join(f"{m} {v:.4g}" for m, v in zip(names, t.values))
            params = ", ".join(f"{k}={_short(v)}" for k, v in t.params.items())
            print(f"  #{t.number} seed {t.user_attrs.get('seed')}: {values} | {params}")
    print(f"results: {settings.experiment_dir}")
    print(f"optuna:  {settings.journal_path} (optuna-dashboard {settings.journal_path})")


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _write_report(settings: Settings) -> None:
    """analysis.report.write_report(experiment_dir) when the analysis package provides it; for
    --space paper also analysis.paper.write_paper."""
    try:
        from analysis.report import write_report
    except ImportError as e:
        if e.name in ("analysis", "analysis.report"):
            print("report: skipped (the analysis package has no report module)")
            return
        raise
    from analysis import load_experiment

    experiment = load_experiment(settings.experiment_dir)  # read once, for both
    path = write_report(settings.experiment_dir, experiment=experiment)
    print(f"report:  {path}")
    if settings.space == "paper":  # the report's comparison: table, single-run odds, figures 1-3
        from analysis.paper import write_paper

        paths = write_paper(settings.experiment_dir, experiment=experiment)
        print(f"paper:   {os.path.dirname(paths[0])} ({', '.join(os.path.basename(p) for p in paths)})")


class _DropTrialFailures(logging.Filter):
    """Ray Tune logs every failed trial with its traceback; the progress line has said it once."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not (text.startswith(("Trial task failed", "Trials did not complete", "Cannot tell a "))
                    or "errored after" in text)


def _quiet(verbose: bool) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if verbose:
        return
    # Ray Tune's newer console output prints tables even at verbose=0; the older one is silent.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # the loggers that emit them (a logger's filter sees only its own records)
    for name in ("ray.tune.tune", "ray.tune.execution.tune_controller", "ray.tune.search.optuna.optuna_search"):
        logging.getLogger(name).addFilter(_DropTrialFailures())


if __name__ == "__main__":
    sys.exit(main())
