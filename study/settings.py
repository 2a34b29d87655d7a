"""What a study is asked to do: the command line, merged with a preset into checked `Settings`.

    args = parse_args(["--space", "sintro_tc", "--preset", "smoke"])
    settings, notes = resolve(args, gpu_visible=False)     # LaunchError on bad input

Every check of the flags alone lives here; checks that need the outside world (the address,
the storage, the data files, this machine's CPUs) are in `study.cluster`. A `LaunchError` is
printed as one line on stderr with exit code 2 (docs/study.md, "Flags").
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from search_spaces import SPACES, fixed_constant, fixed_points, get_space, is_fixed_design
from study.presets import PRESETS, default_preset, get_preset
from study.scheduler import reaches_the_end, rung_epochs
from study.searcher import SAMPLERS
from trainables.storage import REMOTE_SCHEMES, is_remote, join
from trainables.vocabulary import (
    ARCHS,
    DATASETS,
    DATASETS_WITH_FACTORS,
    DEFAULT_SCORE,
    DEFAULT_SCORE_NO_FACTORS,
    DISENTANGLEMENT_METRICS,
    JOURNAL_FILE,
    LOCK_FILE,
    METRIC_PRESETS,
    PRECISIONS,
    RECONSTRUCTION,
    RECONSTRUCTION_SCORES,
    SCHEDULERS,
    UNSUPERVISED_SCORES,
    direction,
)


class LaunchError(Exception):
    """Bad input: printed as one line on stderr, exit code 2."""


DEFAULT_PENDING_TIMEOUT_S = 1800.0  # on a cluster: how long trials may wait for a node that can hold them


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
    precision: str = "auto"  # TrainConfig.precision of every trial (a space may fix it: paper's fp32)
    scheduler: str = "fifo"  # "fifo": every trial to its last epoch; "asha": MO-ASHA (study.scheduler)
    grace_period: int = 1  # asha: the first rung, in epochs
    reduction_factor: float = 3.0  # asha: about 1 in this many trials passes each rung
    reuse_actors: bool = True  # Tune's reuse_actors: trials 2..n of a worker skip the process start

    @property
    def objectives(self) -> list[tuple[str, str]]:
        """(metric, mode) pairs, declared once: the searcher, the scheduler, the progress line
        and study.json all read them from here."""
        score = (self.score, direction(self.score))
        return [score] if self.objective == "single" else [score, (RECONSTRUCTION, direction(RECONSTRUCTION))]

    @property
    def remote(self) -> bool:
        return is_remote(self.storage)

    @property
    def experiment_dir(self) -> str:
        return join(self.storage, self.name)

    @property
    def journal_path(self) -> Path:
        """Local storage: next to the results. Object storage: a local folder (the journal needs
        a file system with appends and locks), copied up to `journal_copy`."""
        return journal_folder(self.storage, self.name, self.journal_dir) / JOURNAL_FILE

    @property
    def lock_path(self) -> Path:
        """The study's lock (study.lock): next to its journal."""
        return self.journal_path.parent / LOCK_FILE

    @property
    def journal_copy(self) -> str:
        """Where the journal is copied on object storage, so another machine can resume."""
        return join(self.experiment_dir, JOURNAL_FILE)


def journal_folder(storage: str, name: str, journal_dir: str | None) -> Path:
    """The local folder of a study's Optuna journal (and its lock and ray.log): the experiment
    folder, or for object storage `--journal-dir`/<name> (default runs/journals/<name>)."""
    if not is_remote(storage):
        return Path(storage) / name
    return Path(journal_dir or "runs/journals").resolve() / name


# Flags that a preset fills when they are not given explicitly.
PRESET_FLAGS = ("dataset", "trials", "epochs", "seeds", "cpus_per_trial", "gpus_per_trial", "max_concurrent",
                "metrics_every", "final_metrics", "train_images", "max_failures", "arch", "grace_period",
                "reduction_factor")


# --- the command line ----------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit code 2 (argparse prints usage as well)
        raise LaunchError(f"{message} (see python -m study.launch --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m study.launch", description="Run a Ray Tune + Optuna study of VAE variants.")
    p.add_argument("--space", help=f"search space: {', '.join(sorted(SPACES))}")
    p.add_argument("--preset", help=f"{' | '.join(PRESETS)} (default: cpu without a GPU, full with one; "
                                    "paper_cpu / paper_full for --space paper)")
    p.add_argument("--dataset", help=f"{', '.join(DATASETS)} (preset: dsprites_small)")
    p.add_argument("--data-root", help="dSprites .npz file or Ukiyo-e folder (default: the data package's)")
    p.add_argument("--trials", type=int, help="trainings in all (configurations x seeds)")
    p.add_argument("--epochs", type=int, help="epochs per trial")
    p.add_argument("--objective", choices=("multi", "single"), default="multi",
                   help="multi: score up and rec_loss down (a Pareto front); single: the score alone")
    p.add_argument("--score", help=f"the disentanglement objective (default {DEFAULT_SCORE}; "
                                   f"{DEFAULT_SCORE_NO_FACTORS} on ukiyoe)")
    p.add_argument("--sampler", choices=SAMPLERS, default="tpe", help="Optuna sampler (default tpe)")
    p.add_argument("--seeds", type=int, help="trainings per configuration, seeds --seed, --seed+1, ...")
    p.add_argument("--seed", type=int, default=0, help="first training seed and the sampler's seed")
    p.add_argument("--cpus-per-trial", type=float)
    p.add_argument("--gpus-per-trial", type=float, help="a fraction in [0, 1] (trials share a GPU) or a whole number")
    p.add_argument("--max-concurrent", type=int, help="trials at once (0: as the resources allow)")
    p.add_argument("--metrics-every", type=int, help="fast metrics every k epochs")
    p.add_argument("--final-metrics", help=f"metrics preset after the last epoch ({' | '.join(METRIC_PRESETS)})")
    p.add_argument("--train-images", type=int, help="train on a fixed random subset of n images (0: all)")
    p.add_argument("--max-failures", type=int, help="retries of a failed trial from its checkpoint")
    p.add_argument("--scheduler", choices=SCHEDULERS,
                   help="fifo: every trial to its last epoch; asha: MO-ASHA stops trials at rungs (default: asha "
                        "when there are more trials than trials at once, fifo otherwise and for a fixed design)")
    p.add_argument("--grace-period", type=int, help="asha: the first rung, in epochs (preset)")
    p.add_argument("--reduction-factor", type=float, help="asha: about 1 in this many trials passes a rung (preset)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="auto (default): bf16 on CUDA and on CPUs with native bf16, fp32 elsewhere; fp32; bf16")
    p.add_argument("--reuse-actors", action=argparse.BooleanOptionalAction, default=True,
                   help="run a worker's next trial in the same process (default); --no-reuse-actors: a new one")
    p.add_argument("--arch", help=f"the model of every trial: {', '.join(ARCHS)} (default: the preset's, else "
                                  "standard on dSprites and residual on Ukiyo-e)")
    p.add_argument("--address", help="none: start Ray here; 'auto' or host:port: join a running cluster")
    p.add_argument("--storage", default="results", help="local folder or s3:// / gs:// URI (default ./results)")
    p.add_argument("--name", help="experiment name (default <space>-<dataset>-<time>)")
    p.add_argument("--journal-dir", help="local folder for the Optuna journal when --storage is a URI")
    p.add_argument("--resume", action="store_true", help="continue the study <storage>/<name>")
    p.add_argument("--retry-failed", action="store_true",
                   help="with --resume: run the trials of a finished study that ended in an error again, from their "
                        "last checkpoint (a finished study is otherwise left as it is)")
    p.add_argument("--pending-timeout", type=float, metavar="SECONDS",
                   help="on a cluster: end the study (resumable) when no trial could start for this long "
                        f"(default {DEFAULT_PENDING_TIMEOUT_S:.0f} s)")
    p.add_argument("-v", "--verbose", action="store_true", help="Ray's own progress output and worker logs")
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line, with the flags that would do nothing in the chosen mode refused."""
    args = build_parser().parse_args(argv)
    if args.retry_failed and not args.resume:
        raise LaunchError("--retry-failed re-runs the failed trials of an existing study: add --resume --name NAME "
                          "(and its --storage)")
    if args.pending_timeout is not None and args.address is None:
        raise LaunchError("--pending-timeout applies only when joining a cluster (--address): drop it (without "
                          "--address the trials' resources are checked against this machine before the start)")
    if args.pending_timeout is not None and not args.pending_timeout > 0:
        raise LaunchError(f"--pending-timeout must be a number of seconds above 0, got {args.pending_timeout:g}")
    if args.journal_dir is not None and not is_remote(args.storage):
        raise LaunchError(f"--journal-dir applies only with s3:// or gs:// --storage (a local study keeps its journal "
                          f"in <storage>/<name>/{JOURNAL_FILE}): drop --journal-dir")
    return args


def check_space(space: str | None) -> None:
    """--space names a registered search space."""
    if space is None:
        raise LaunchError(f"--space is required: use one of {', '.join(sorted(SPACES))}")
    try:
        get_space(space)
    except ValueError as e:
        raise LaunchError(str(e)) from None


def storage_root(storage: str) -> str:
    """A local folder as an absolute path, or an object-store URI without a trailing '/'."""
    if is_remote(storage):
        scheme = storage.split("://", 1)[0]
        if scheme not in REMOTE_SCHEMES:
            raise LaunchError(f"--storage {storage!r}: use a local folder or an s3:// or gs:// URI")
        return storage.rstrip("/")
    return str(Path(storage).expanduser().resolve())


def _absolute(path: str | None) -> str | None:
    """Trials run in their own working directories: local paths must be absolute."""
    if path is None or is_remote(path):
        return path
    return str(Path(path).expanduser().resolve())


# --- presets and flags merged --------------------------------------------------------------------
def resolve(args: argparse.Namespace, *, gpu_visible: bool, record: dict | None = None,
            cpus: float | None = None) -> tuple[Settings, list[str]]:
    """Merge preset and flags into Settings, checking every value. Returns the notes to print.
    With `record` (study.json of a study to resume) the study keeps its own settings. `cpus`:
    the CPUs trials can use (this machine's by default; the cluster's when joining one)."""
    explicit = {k for k in PRESET_FLAGS if getattr(args, k) is not None}
    if record is not None:
        return _resumed(args, record, explicit), []
    notes: list[str] = []
    preset_name = _preset_name(args, gpu_visible=gpu_visible, notes=notes)
    try:
        preset = get_preset(preset_name)
    except ValueError as e:
        raise LaunchError(str(e)) from None
    values = {k: getattr(args, k) if k in explicit else getattr(preset, k) for k in PRESET_FLAGS}
    _check_counts(values)
    _fit_trials_to_seeds(args.space, values, explicit, notes)
    _check_budget(values)
    _adapt_to_machine(args, values, explicit, gpu_visible=gpu_visible, notes=notes)
    score = _score(args, values["dataset"])
    name = _experiment_name(args, values["dataset"])
    settings = Settings(
        space=args.space, preset=preset_name, objective=args.objective, score=score, sampler=args.sampler,
        seed=args.seed, data_root=_absolute(args.data_root), storage=storage_root(args.storage), name=name,
        journal_dir=args.journal_dir, precision=_precision(args, values["dataset"]),
        scheduler=_scheduler(args, values, cpus or os.cpu_count() or 1), reuse_actors=args.reuse_actors, **values,
    )
    return settings, notes


def _precision(args: argparse.Namespace, dataset: str) -> str:
    """--precision, unless the space fixes it (paper: the report's float32); a conflict is refused."""
    fixed = fixed_constant(args.space, "precision", dataset)
    if fixed is None:
        return args.precision or "auto"
    if args.precision not in (None, fixed):
        raise LaunchError(f"--space {args.space} trains in {fixed} (it reproduces the report's code): drop "
                          f"--precision {args.precision}")
    return fixed


def _scheduler(args: argparse.Namespace, values: dict[str, Any], cpus: float) -> str:
    """--scheduler, else asha when trials wait for a slot (stopping some frees slots for others)
    and enough of them reach each rung for one to train every epoch; fifo when every trial runs
    at once, when there are too few, or for a fixed design (every point trained)."""
    rungs = rung_epochs(values["epochs"], values["grace_period"], values["reduction_factor"])
    enough = reaches_the_end(values["trials"], rungs, values["reduction_factor"])
    if args.scheduler is not None:
        if args.scheduler == "asha" and not enough:
            raise LaunchError(f"--scheduler asha: with {values['trials']} trials and rungs at epochs "
                              f"{', '.join(map(str, rungs))} no trial would train all {values['epochs']} epochs "
                              f"(one in {values['reduction_factor']:g} passes a rung): raise --trials or "
                              "--grace-period, or use --scheduler fifo")
        return args.scheduler
    if is_fixed_design(args.space) or not rungs or not enough:
        return "fifo"
    slots = values["max_concurrent"] or max(1, int(cpus // values["cpus_per_trial"]))
    return "asha" if values["trials"] > slots else "fifo"


def _resumed(args: argparse.Namespace, record: dict, explicit: set[str]) -> Settings:
    """The resumed study's settings; a flag given with another value is refused."""
    stored = dict(record.get("settings") or {})
    if stored and "scheduler" not in stored:  # a study from before --scheduler: ASHA ran for a single objective only
        stored["scheduler"] = "asha" if stored.get("objective") == "single" else "fifo"
        stored.setdefault("grace_period", max(1, int(stored.get("epochs", 8)) // 8))
    try:
        settings = Settings(**stored)
    except (KeyError, TypeError):  # a study.json of another version, or edited by hand
        raise LaunchError(f"the study.json of {args.name!r} holds no settings this version can read: it cannot be "
                          "resumed; start it again under a new --name") from None
    for key in explicit | {"score", "preset", "scheduler", "precision"}:
        given = getattr(args, key)
        if given is not None and given != getattr(settings, key):
            raise LaunchError(f"--{key.replace('_', '-')} {given} differs from the resumed study's "
                              f"{getattr(settings, key)}: a resumed study keeps its settings; drop the flag")
    parser = build_parser()
    for key in ("objective", "sampler", "seed", "reuse_actors"):  # with a default: only another value is "given"
        if getattr(args, key) != getattr(settings, key) and getattr(args, key) != parser.get_default(key):
            raise LaunchError(f"--{key} {getattr(args, key)} differs from the resumed study's "
                              f"{getattr(settings, key)}: a resumed study keeps its settings; drop the flag")
    return settings


def _preset_name(args: argparse.Namespace, *, gpu_visible: bool, notes: list[str]) -> str:
    if args.preset is not None:
        return args.preset
    name = default_preset(args.space, gpu_visible=gpu_visible)
    notes.append(f"preset: {name} ({'a GPU is visible' if gpu_visible else 'no GPU visible'}; "
                 "--preset chooses another)")
    return name


def _check_counts(values: dict[str, Any]) -> None:
    if values["dataset"] not in DATASETS:
        raise LaunchError(f"unknown data set {values['dataset']!r}: use one of {', '.join(DATASETS)}")
    for key in ("trials", "epochs", "seeds"):
        if values[key] < 1:
            raise LaunchError(f"--{key} must be at least 1, got {values[key]}")


def _fit_trials_to_seeds(space: str, values: dict[str, Any], explicit: set[str], notes: list[str]) -> None:
    """Every configuration gets every seed: the trial count is a multiple of --seeds, and a
    fixed design (--space paper) trains exactly its configurations x seeds."""
    trials, seeds = values["trials"], values["seeds"]
    if is_fixed_design(space):  # the space's configurations x seeds, nothing sampled
        exact = len(fixed_points(space)) * seeds
        if "trials" in explicit and trials != exact:
            raise LaunchError(f"--space {space} trains exactly its {exact // seeds} configurations x {seeds} seeds "
                              f"= {exact} trials, got --trials {trials}: drop --trials (use --seeds for more "
                              "trainings)")
        if trials != exact:
            notes.append(f"trials: {exact} ({exact // seeds} configurations x {seeds} seeds)")
        values["trials"] = trials = exact
    if seeds > trials:
        raise LaunchError(f"--seeds {seeds} needs at least {seeds} trials, got --trials {trials}: raise --trials "
                          "or lower --seeds")
    if trials % seeds:
        rounded = -(-trials // seeds) * seeds
        if "trials" in explicit:
            raise LaunchError(f"--trials {trials} is not a multiple of --seeds {seeds}: use --trials {rounded} "
                              "(every configuration gets every seed)")
        notes.append(f"trials: {rounded} (the preset's {trials} rounded up to a multiple of {seeds} seeds)")
        values["trials"] = rounded


def _check_budget(values: dict[str, Any]) -> None:
    """Resources, schedules and retries: numbers that make sense on their own."""
    if not values["cpus_per_trial"] > 0:
        raise LaunchError(f"--cpus-per-trial must be above 0, got {values['cpus_per_trial']}")
    gpus = values["gpus_per_trial"]
    if gpus < 0 or (gpus > 1 and gpus != int(gpus)):
        raise LaunchError(f"--gpus-per-trial must be a fraction in [0, 1] or a whole number of GPUs, got {gpus}")
    if values["max_concurrent"] < 0:
        raise LaunchError(f"--max-concurrent must be 0 (no limit) or more, got {values['max_concurrent']}")
    if values["metrics_every"] < 1:
        raise LaunchError(f"--metrics-every must be at least 1, got {values['metrics_every']}")
    if values["final_metrics"] not in METRIC_PRESETS:
        raise LaunchError(f"--final-metrics must be {' or '.join(METRIC_PRESETS)}, got {values['final_metrics']!r}")
    if values["train_images"] < 0:
        raise LaunchError(f"--train-images must be 0 (all) or more, got {values['train_images']}")
    if values["max_failures"] < 0:
        raise LaunchError(f"--max-failures must be 0 or more, got {values['max_failures']}")
    if values["grace_period"] < 1:
        raise LaunchError(f"--grace-period must be at least 1 epoch, got {values['grace_period']}")
    if not values["reduction_factor"] > 1:
        raise LaunchError(f"--reduction-factor must be above 1, got {values['reduction_factor']:g}")
    if values["arch"] is not None and values["arch"] not in ARCHS:
        raise LaunchError(f"--arch {values['arch']!r} is unknown: use one of {', '.join(ARCHS)}")


def _adapt_to_machine(args: argparse.Namespace, values: dict[str, Any], explicit: set[str], *, gpu_visible: bool,
                      notes: list[str]) -> None:
    """CPU fallback without a GPU, and a warning for CPU Ukiyo-e."""
    gpus = values["gpus_per_trial"]
    if gpus > 0 and not gpu_visible and args.address is None:
        if "gpus_per_trial" in explicit:  # asked for by name: running on CPUs instead would be a surprise
            raise LaunchError(f"--gpus-per-trial {gpus:g}: no GPU is visible on this machine (torch sees none): drop "
                              "--gpus-per-trial to run on CPUs, install a CUDA build of torch, or join a GPU cluster "
                              "with --address")
        notes.append(f"no GPU visible: running on CPUs (the preset's --gpus-per-trial {gpus:g} -> 0)")
        values["gpus_per_trial"] = 0.0
    if values["dataset"] not in DATASETS_WITH_FACTORS and values["gpus_per_trial"] == 0:
        notes.append("ukiyoe without a GPU: the residual model trains at 0.5-7 images/s per CPU core "
                     "(docs/benchmarks.md), hours per epoch; --gpus-per-trial puts it on GPUs")


def _score(args: argparse.Namespace, dataset: str) -> str:
    """--score, or the default of the data set; only a score the data set and objective allow."""
    has_factors = dataset in DATASETS_WITH_FACTORS
    score = args.score or (DEFAULT_SCORE if has_factors else DEFAULT_SCORE_NO_FACTORS)
    allowed = ((DISENTANGLEMENT_METRICS if has_factors else ()) + UNSUPERVISED_SCORES
               + (RECONSTRUCTION_SCORES if args.objective == "single" else ()))
    if score not in allowed:
        why = (" (Ukiyo-e has no ground-truth factors)" if score in DISENTANGLEMENT_METRICS else
               " (a reconstruction score is already the second objective; use --objective single)"
               if score in RECONSTRUCTION_SCORES else "")
        raise LaunchError(f"--score {score!r} cannot be used here{why}: use one of {', '.join(allowed)}")
    return score


def _experiment_name(args: argparse.Namespace, dataset: str) -> str:
    name = args.name or f"{args.space}-{dataset}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    if not name or "/" in name or name.startswith("."):
        raise LaunchError(f"--name {name!r} must be a plain folder name (no '/', not starting with '.')")
    return name
