"""Budgets for `python -m study.launch`: `cpu`, `smoke` and `full`. Explicit flags override them.

- ``cpu``: the README's main job. 16 configurations of up to twelve epochs on a fixed 1,500-image
  subset of the 7,200-image dSprites variant (the metrics use all 7,200), the standard 64x64
  model, two trials side by side on a 2-core machine, MO-ASHA with one rung at epoch 3 (about 1
  in 4 goes on): 6 min 42 s there for Soft-Intro-TCVAE in bf16, 11 min 29 s in float32, best
  rec_loss 126.5 (docs/study.md, measured).
- ``smoke``: seconds to a minute; tests and a first check of a new cluster. One epoch on a
  512-image subset, the cheap metrics only.
- ``full``: the report's budget (200 epochs) with several seeds per configuration, four
  dSprites trials per GPU; for GPU clusters.
- ``paper_cpu`` and ``paper_full``: the budgets of ``--space paper`` (the report's four
  configurations x seeds; the space sets the trial count). ``paper_cpu`` is sized for a 2-core
  CPU (docs/paper.md has the run and its time); ``paper_full`` is the report's 200 epochs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    dataset: str
    trials: int  # Ray trials = Optuna trials (each configuration counts once per seed)
    epochs: int
    seeds: int  # trainings per sampled configuration, seeds seed, seed+1, ...
    cpus_per_trial: float
    gpus_per_trial: float
    max_concurrent: int  # 0: as many as the resources allow
    metrics_every: int  # the `fast` metrics every k epochs (always after epoch 1); `final_metrics` at the end
    final_metrics: str  # evaluate() preset after the last epoch
    train_images: int  # 0: the whole data set; else a fixed random subset of this size per epoch
    max_failures: int  # retries of a failed trial from its last checkpoint (a lost node)
    description: str
    arch: str | None = None  # the model for every trial; None: the trainer's default for the data set
    grace_period: int = 1  # MO-ASHA (--scheduler asha): the first rung, in epochs
    reduction_factor: float = 3.0  # MO-ASHA: about 1 in this many trials passes each rung

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS: dict[str, Preset] = {
    "cpu": Preset(
        dataset="dsprites_small", trials=16, epochs=12, seeds=1, cpus_per_trial=1.0, gpus_per_trial=0.0,
        max_concurrent=2, metrics_every=3, final_metrics="full", train_images=1500, max_failures=0,
        grace_period=3, reduction_factor=4.0,
        description="16 configurations, up to 12 epochs on 1,500 dsprites_small images with MO-ASHA (one rung, "
                    "at epoch 3: about 1 in 4 goes on), under 10 minutes on a 2-core CPU",
    ),
    "smoke": Preset(
        dataset="dsprites_small", trials=2, epochs=1, seeds=1, cpus_per_trial=0.5, gpus_per_trial=0.0,
        max_concurrent=4, metrics_every=1, final_metrics="fast", train_images=512, max_failures=0,
        description="seconds to a minute: 1 epoch on 512 images, cheap metrics (tests, cluster check)",
    ),
    "full": Preset(
        dataset="dsprites_small", trials=240, epochs=200, seeds=3, cpus_per_trial=2.0, gpus_per_trial=0.25,
        max_concurrent=0, metrics_every=10, final_metrics="full", train_images=0, max_failures=3, grace_period=10,
        description="the report's 200 epochs, 80 configurations x 3 seeds, 4 trials per GPU",
    ),
    "paper_cpu": Preset(
        dataset="dsprites_small", trials=16, epochs=5, seeds=4, cpus_per_trial=1.0, gpus_per_trial=0.0,
        max_concurrent=2, metrics_every=1, final_metrics="full", train_images=0, max_failures=0, arch="standard",
        description="the report's 4 configurations x 4 seeds, 5 epochs on all 7,200 images, the standard model, "
                    "for a 2-core CPU",
    ),
    "paper_full": Preset(
        dataset="dsprites_small", trials=20, epochs=200, seeds=5, cpus_per_trial=2.0, gpus_per_trial=0.25,
        max_concurrent=0, metrics_every=5, final_metrics="full", train_images=0, max_failures=3,
        arch="residual_report",
        description="the report's 200 epochs and model (its code's residual net), 4 configurations x 5 seeds, "
                    "4 trials per GPU",
    ),
}
# The preset a space runs without --preset: (no GPU visible, a GPU visible).
DEFAULT_PRESETS: dict[str, tuple[str, str]] = {"paper": ("paper_cpu", "paper_full")}
_DEFAULT = ("cpu", "full")


def default_preset(space: str, *, gpu_visible: bool) -> str:
    return DEFAULT_PRESETS.get(space, _DEFAULT)[int(gpu_visible)]


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}: use one of {', '.join(PRESETS)}") from None
