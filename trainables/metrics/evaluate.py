"""All applicable metrics of a trained VAE on a data set, as one flat dict of floats.

    metrics = evaluate(model, dataset, preset="fast", seed=0)     # per-epoch, inside a trial
    python -m trainables.metrics.evaluate --checkpoint runs/one/trainer.pt --preset full --json out.json

Data with ground-truth factors (dSprites) gets the seven disentanglement metrics (nine keys:
beta_vae, factor_vae, mig, modularity, explicitness, dci_disentanglement, dci_completeness,
dci_informativeness, sap), the unsupervised measures (mse, psnr, active_units, kl_total,
kl_dim_00.., gaussian_tc) and the decodes of random latents (samples_std1_with_output, ...;
samples.py); data without factors (Ukiyo-e) gets the last two only. The keys are those of
vocabulary.metric_keys.
A preset is data: metric name -> keyword arguments of its `compute_*` function; `full` has
disentanglement_lib's sample counts, `fast` small ones for per-epoch reporting (docs/metrics.md).
Each metric draws from its own generator, seeded by (seed, metric name), so its value does not
depend on which other metrics run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainables.cli import OneLineParser, UsageError, check_output_folder, fail
from trainables.storage import write_atomic

from .beta_vae import compute_beta_vae
from .dci import compute_dci
from .explicitness import compute_explicitness
from .factor_vae import compute_factor_vae
from .mig import compute_mig
from .modularity import compute_modularity
from .represent import Encoder
from .samples import compute_samples
from .sap import compute_sap
from .unsupervised import compute_unsupervised

# Metrics of data with factors: name -> compute_*(represent, factors, rng, **kwargs).
FACTOR_METRICS = {
    "beta_vae": compute_beta_vae,
    "factor_vae": compute_factor_vae,
    "mig": compute_mig,
    "modularity": compute_modularity,
    "explicitness": compute_explicitness,
    "dci": compute_dci,
    "sap": compute_sap,
}
# Measures of any data set: name -> compute_*(encoder, rng, **kwargs).
DATA_FREE = {"unsupervised": compute_unsupervised, "samples": compute_samples}
PARALLEL = ("explicitness", "dci", "sap")  # take n_jobs

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # disentanglement_lib's sample counts (Locatello et al. 2019; docs/metrics.md, "Definitions, defaults")
    "full": {
        "beta_vae": dict(batch_size=64, num_train=10_000, num_eval=5_000),
        "factor_vae": dict(batch_size=64, num_train=10_000, num_eval=5_000, num_variance_estimate=10_000),
        "mig": dict(num_train=10_000, num_bins=20),
        "modularity": dict(num_train=10_000, num_bins=20),
        "explicitness": dict(num_train=10_000, num_test=5_000),
        "dci": dict(num_train=10_000, num_test=5_000, trees="hist", n_estimators=100),
        "sap": dict(num_train=10_000, num_test=5_000),
        "unsupervised": dict(num_images=10_000, num_reconstructions=2_000),
        "samples": dict(num_samples=1_000),
    },
    # per-epoch reporting inside trials: the same estimators on about a tenth of the points
    "fast": {
        "beta_vae": dict(batch_size=64, num_train=1_000, num_eval=500),
        "factor_vae": dict(batch_size=64, num_train=1_000, num_eval=500, num_variance_estimate=2_000),
        "mig": dict(num_train=2_000, num_bins=20),
        "modularity": dict(num_train=2_000, num_bins=20),
        "explicitness": dict(num_train=2_000, num_test=1_000),
        "dci": dict(num_train=2_000, num_test=1_000, trees="hist", n_estimators=20),
        "sap": dict(num_train=2_000, num_test=1_000),
        "unsupervised": dict(num_images=1_000, num_reconstructions=500),
        "samples": dict(num_samples=200),
    },
}


def metric_rng(seed: int, name: str) -> np.random.Generator:
    """The generator of metric `name` under `seed`: independent of the other metrics."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def evaluate(model: torch.nn.Module, dataset, *, preset: str | Mapping[str, Mapping[str, Any]] = "fast",
             seed: int = 0, device: str | torch.device | None = None, cached: bool = True,
             n_jobs: int | None = None, batch_size: int | None = None,
             timings: dict[str, float] | None = None) -> dict[str, float]:
    """Every applicable metric of `model` (a trainables.models.VAE) on `dataset` (a
    trainables.data.Dataset), as a flat dict of floats.

    preset: "full", "fast", or a mapping like PRESETS["full"] (leave a metric out to skip it).
    seed: seeds every metric's sampling and classifiers; equal seeds give equal results.
    device: where images go; None: the model's device (the model is never moved).
    cached: encode each image once and reuse its code (represent.py says when not to).
    n_jobs: CPUs for the independent classifier fits; None: $OMP_NUM_THREADS or the CPU affinity.
    batch_size: images per encoder call; None: 64 on CPU, 1024 on an accelerator.
    timings: if a dict is given, it receives seconds per metric and the encoder's counters.
    The model is put in eval mode and returned to its previous mode.
    """
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"preset {preset!r} is unknown: use one of {sorted(PRESETS)} "
                             "or a mapping like PRESETS['full']")
        preset = PRESETS[preset]
    unknown = sorted(set(preset) - set(FACTOR_METRICS) - set(DATA_FREE))
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown} in the preset: valid names are "
                         f"{sorted([*FACTOR_METRICS, *DATA_FREE])}")
    encoder = Encoder(model, dataset, device=device, batch_size=batch_size, cached=cached)
    results: dict[str, float] = {}
    was_training = model.training
    model.eval()
    try:
        for name, kwargs in preset.items():
            start = time.perf_counter()
            if name in DATA_FREE:
                results.update(DATA_FREE[name](encoder, metric_rng(seed, name), **kwargs))
            elif dataset.factors is not None:
                extra = {"n_jobs": n_jobs} if name in PARALLEL and "n_jobs" not in kwargs else {}
                results.update(FACTOR_METRICS[name](encoder.represent, dataset.factors, metric_rng(seed, name),
                                                    **kwargs, **extra))
            if timings is not None:
                timings[name] = time.perf_counter() - start
    finally:
        model.train(was_training)
    if timings is not None:
        timings.update({f"encoder_{k}": float(v) for k, v in vars(encoder.stats).items()})
    return {k: float(v) for k, v in results.items()}


# --- command line ---------------------------------------------------------------------------------
def _versions() -> dict[str, str]:
    import platform

    import sklearn

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "scikit-learn": sklearn.__version__}


def _parser() -> OneLineParser:
    parser = OneLineParser(
        prog="python -m trainables.metrics.evaluate",
        description="Evaluate a trained VAE checkpoint: print every applicable metric and optionally write JSON.")
    parser.add_argument("--checkpoint", required=True, help="trainer.pt written by trainables.trainer")
    parser.add_argument("--dataset", default=None,
                        help="data set to evaluate on (dsprites, dsprites_small, ukiyoe); default: the checkpoint's")
    parser.add_argument("--data-root", default=None, help="dSprites npz / Ukiyo-e folder; default: the checkpoint's")
    parser.add_argument("--preset", default="full", choices=sorted(PRESETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ...; default: the checkpoint's (auto)")
    parser.add_argument("--cached", action=argparse.BooleanOptionalAction, default=True,
                        help="encode each image once (default) or re-encode every sampled batch (--no-cached)")
    parser.add_argument("--n-jobs", type=int, default=None, help="CPUs for the classifier fits (default: all)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for the encoder (default: torch's; on a busy CPU, 1 is often fastest)")
    parser.add_argument("--json", default=None, help="write the metrics and their provenance here (atomically)")
    return parser


def _check_args(args: argparse.Namespace) -> None:
    """Everything that can be checked before the checkpoint is read: a ValueError names the fix."""
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    if args.n_jobs is not None and args.n_jobs < 1 and args.n_jobs != -1:
        raise ValueError(f"--n-jobs must be at least 1 (or -1: all CPUs), got {args.n_jobs}")
    if args.json is not None:
        target = Path(args.json)
        if target.is_dir():
            raise ValueError(f"--json {target} is a folder: give a file name, e.g. {target}/metrics.json")
        check_output_folder(target.parent, "--json")
    if not Path(args.checkpoint).is_file():
        raise ValueError(f"--checkpoint {args.checkpoint}: no such file: pass the trainer.pt that "
                         "python -m trainables.trainer wrote (or a trial's checkpoint_*/trainer.pt)")


def _load(args: argparse.Namespace):
    """The trainer of the checkpoint on its (or the requested) data set; ValueError if the file is
    not a trainer checkpoint (damaged, truncated, something else)."""
    from trainables.data import load_dataset  # deferred: the data package imports the loaders
    from trainables.trainer import Trainer  # deferred: trainer imports this module's package

    overrides = {"device": args.device} if args.device else {}
    try:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
        config = state["config"]
    except Exception as e:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for a damaged file
        raise ValueError(f"--checkpoint {args.checkpoint} is damaged or not a trainer checkpoint "
                         f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'unreadable'}): pass a "
                         "complete trainer.pt (a trial's older checkpoint_*/trainer.pt, or train again)") from None
    dataset = None
    if args.dataset or args.data_root:
        dataset = load_dataset(args.dataset or config["dataset"], root=args.data_root or config.get("data_root"),
                               image_size=config.get("image_size"))
    try:
        return Trainer.from_checkpoint(args.checkpoint, dataset, **overrides)
    except (KeyError, TypeError, RuntimeError) as e:  # a checkpoint of another shape or version
        raise ValueError(f"--checkpoint {args.checkpoint} does not fit this trainer ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}): use a checkpoint of this version") from None


def main(argv: list[str] | None = None) -> int:
    from trainables.data import DatasetError  # deferred with the data package, above

    try:
        args = _parser().parse_args(argv)
        _check_args(args)
        if args.threads:
            torch.set_num_threads(args.threads)
        trainer = _load(args)
        start = time.perf_counter()
        metrics = evaluate(trainer.model, trainer.dataset, preset=args.preset, seed=args.seed, device=trainer.device,
                           cached=args.cached, n_jobs=args.n_jobs)
    except (UsageError, ValueError, DatasetError, OSError) as e:
        return fail(e)
    except RuntimeError as e:  # the model and the data set do not fit each other (channels, image size)
        return fail(f"the checkpoint's model does not fit the data set ({e}): drop --dataset/--data-root to use "
                    "the checkpoint's own")
    wall = time.perf_counter() - start
    width = max(map(len, metrics), default=0)
    for key, value in metrics.items():
        print(f"{key:<{width}}  {value:.6g}")
    print(f"({trainer.dataset.name}, preset {args.preset}, seed {args.seed}, "
          f"{'cached' if args.cached else 're-encoded'}, {wall:.1f} s)")
    if args.json:
        write_atomic(args.json, json.dumps({
            "checkpoint": str(args.checkpoint), "epoch": trainer.epoch, "dataset": trainer.dataset.name,
            "preset": args.preset, "seed": args.seed, "cached": args.cached, "wall_s": wall,
            "versions": _versions(), "metrics": metrics,
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
