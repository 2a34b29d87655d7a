"""The Ray Tune function trainable: one training of one configuration, reported every epoch.

    tune.Tuner(tune.with_resources(train_vae, resources), param_space=..., ...)

The config is every ``TrainConfig`` field the search space and the launcher set, plus the
trial-level keys of ``TRIAL_KEYS`` (metrics schedule, objectives, bookkeeping). Each epoch:
train, evaluate (the ``fast`` metrics after epoch 1, every ``metrics_every`` epochs and at the
epochs of ``metrics_at`` -- the scheduler's rungs --, the ``final_metrics`` preset after the last
epoch), checkpoint, and ``ray.tune.report`` a result that carries every key: the loss terms,
every metric (carried forward between evaluations, with ``metrics_epoch`` saying when they were
measured), ``outcome``, ``node_ip``, ``node_id``, ``hostname``, ``gpu_share`` and ``precision``
(what TrainConfig.precision resolved to here). The last checkpoint also holds ``images/``, which
are copied next to the trial's results as well.

Tune may run trials one after another in one process (``reuse_actors``): every trial first sets
the process-wide state it depends on as a fresh process has it (``fresh_process_state``).

Divergence (``trainer.Diverged``, a NaN or Inf loss) ends the trial with one explicit result,
``outcome="diverged"``, ``diverged_epoch``, finite sentinel objective values and NaN loss terms,
and then raises ``TrialDiverged``: Ray marks the trial ERROR and calls the searcher with
``error=True`` and no result, which OptunaSearch tells as FAIL (a NaN objective would leave it
RUNNING; a missing key would mark it PRUNED). The diverged checkpoint holds a marker, so a retry
(FailureConfig) raises again at once instead of training again. Any other exception is reported
with ``outcome="error"`` and its message, then raised: Ray records it and may retry it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from ray import tune

from trainables.data import Dataset, load_dataset
from trainables.device import resolve_device, resolve_precision
from trainables.metrics.evaluate import evaluate
from trainables.trainer import Diverged, TrainConfig, Trainer
from trainables.vocabulary import (
    CHECKPOINT_FILE,
    DIVERGED_FILE,
    IMAGES_DIR,
    TRIAL_KEYS,
    TRIAL_STATE_FILE,
    Outcome,
    metric_keys,
)

# Finite stand-ins for the objectives of a diverged trial: the floor of every [0, 1] score, and a
# reconstruction loss far above any real one (4096 pixels at chance cost about 2,839 nats).
SENTINEL_MAX = 0.0
SENTINEL_MIN = 1.0e9


class TrialDiverged(RuntimeError):
    """Raised after the `diverged` result so that Ray records an error and Optuna a FAIL."""


def split_config(config: dict[str, Any]) -> tuple[TrainConfig, dict[str, Any]]:
    """Ray config -> (TrainConfig, trial-level settings); unknown keys raise a ValueError naming them."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(config) - fields - set(TRIAL_KEYS))
    if unknown:
        raise ValueError(f"unknown trial config key(s) {unknown}: use TrainConfig fields or {sorted(TRIAL_KEYS)}")
    train = TrainConfig.from_dict({k: v for k, v in config.items() if k in fields})
    trial = {k: config.get(k, default) for k, default in TRIAL_KEYS.items()}
    return train, trial


def train_vae(config: dict[str, Any]) -> None:
    """The Ray Tune trainable (a plain function of its config)."""
    # every failure the trial can see is reported as its last result, a bad config included: a
    # trial that ends in ERROR without one is one whose worker died (the launcher: "node lost")
    objectives = [(str(m), str(mode)) for m, mode in config.get("objectives", TRIAL_KEYS["objectives"])]
    info = _placement()
    threads = max(1, int(round(info.pop("_cpus"))))
    state: dict[str, Any] = {"metrics": {}, "metrics_epoch": 0, "keys": []}
    try:
        train_cfg, trial = split_config(config)
        # a reused actor carries the previous trial's process state: reset before anything is built
        fresh_process_state(threads=threads, seed=train_cfg.seed, compiled=train_cfg.compile)
        info["precision"] = resolve_precision(train_cfg.precision, resolve_device(train_cfg.device))
        full = load_dataset(train_cfg.dataset, root=train_cfg.data_root, image_size=train_cfg.image_size)
        train_data = full.training_subset(trial["train_images"], train_cfg.seed)
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as folder:
                folder = Path(folder)
                if (folder / DIVERGED_FILE).exists():
                    # A retry of a diverged trial: report its diverged result once more (so the
                    # trial's result file ends with it whatever happened to the first report) and stop.
                    diverged = json.loads((folder / DIVERGED_FILE).read_text())
                    tune.report(diverged["result"])
                    raise TrialDiverged(diverged["message"])
                trainer = Trainer.from_checkpoint(folder / CHECKPOINT_FILE, train_data, epochs=train_cfg.epochs,
                                                  device=train_cfg.device)
                state = json.loads((folder / TRIAL_STATE_FILE).read_text())
        else:
            trainer = Trainer(train_cfg, train_data)
        # After the model exists: the key list grows with latent_dim, and a model too large to
        # allocate must fail at once with the allocator's error, not after building it.
        state["keys"] = state.get("keys") or metric_keys(has_factors=full.factors is not None,
                                                           latent_dim=train_cfg.latent_dim)
    except TrialDiverged:
        raise
    except Exception as exc:
        _report_failure(Outcome.ERROR, exc, objectives, state, info, epoch=0)
        raise

    if trainer.epoch >= train_cfg.epochs and "result" in state:
        # Restored from the final checkpoint (the driver stopped before it recorded the end):
        # report the final result again so Ray and Optuna see the trial's true last values.
        tune.report({**state["result"], **info})
        return

    while trainer.epoch < train_cfg.epochs:
        try:
            losses = trainer.train_epoch()
            epoch, last = trainer.epoch, trainer.epoch == train_cfg.epochs
            measure = epoch == 1 or epoch % max(1, trial["metrics_every"]) == 0 or epoch in trial["metrics_at"]
            preset = trial["final_metrics"] if last else ("fast" if measure else None)
            if preset is not None:
                state["metrics"] = _evaluate(trainer, full, preset)
                state["metrics_epoch"] = epoch
        except Diverged as exc:
            _report_failure(Outcome.DIVERGED, exc, objectives, state, info, epoch=exc.epoch)
            raise TrialDiverged(str(exc)) from exc
        except Exception as exc:
            _report_failure(Outcome.ERROR, exc, objectives, state, info, epoch=trainer.epoch)
            raise
        state["keys"] = sorted(set(state["keys"]) | set(losses) | set(state["metrics"]))
        result = {**losses, **state["metrics"], "epoch": epoch, "metrics_epoch": state["metrics_epoch"],
                  "outcome": (Outcome.COMPLETED if last else Outcome.RUNNING).value, **info}
        _checkpoint_and_report(trainer, state, result, last=last)


def _checkpoint_and_report(trainer: Trainer, state: dict[str, Any], result: dict[str, Any], *, last: bool) -> None:
    """One epoch's checkpoint (with the image grids after the last epoch) and its result."""
    with tempfile.TemporaryDirectory(prefix="vae-ckpt-") as folder:
        folder = Path(folder)
        trainer.save_checkpoint(folder / CHECKPOINT_FILE)
        (folder / TRIAL_STATE_FILE).write_text(json.dumps({**state, "result": result}))
        if last:
            trainer.save_images(folder / IMAGES_DIR)
            # Ray runs the trial in its own working directory and syncs it next to the trial's
            # results (SyncConfig(sync_artifacts=True)); unless told not to change directory.
            if os.environ.get("RAY_CHDIR_TO_TRIAL_DIR", "1") != "0":
                shutil.copytree(folder / IMAGES_DIR, Path.cwd() / IMAGES_DIR, dirs_exist_ok=True)
        tune.report(result, checkpoint=tune.Checkpoint.from_directory(str(folder)))


def fresh_process_state(*, threads: int, seed: int, compiled: bool = False) -> None:
    """Set what a trial's results could depend on as a fresh process has it. With Tune's
    `reuse_actors` one process runs trials one after another: the torch thread count, the global
    RNGs (the Trainer seeds torch's again; numpy's and Python's are seeded so that nothing can
    carry over) and torch.compile's caches are the process-wide state a trial touches. The data
    set is read again by every trial; autocast and grad mode are per thread, and every trial
    runs in a new thread."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    if compiled:
        torch.compiler.reset()


class Resources:
    """config -> PlacementGroupFactory for tune.with_resources: one bundle of CPUs and a GPU
    share (a fraction lets several small trials share one GPU; Ray packs them). A callable, so
    a policy per configuration (e.g. a whole GPU for the residual model) can be added here."""

    def __init__(self, cpus: float, gpus: float):
        self.cpus, self.gpus = float(cpus), float(gpus)

    def __call__(self, config: dict[str, Any]) -> tune.PlacementGroupFactory:
        bundle = {"CPU": self.cpus}
        if self.gpus > 0:
            bundle["GPU"] = self.gpus
        return tune.PlacementGroupFactory([bundle])


def _evaluate(trainer: Trainer, dataset: Dataset, preset: str) -> dict[str, float]:
    metrics = evaluate(trainer.model, dataset, preset=preset, seed=trainer.config.seed, device=trainer.device)
    return {k: float(v) for k, v in metrics.items()}


def _report_failure(outcome: Outcome, exc: BaseException, objectives, state, info, *, epoch: int) -> None:
    """The last result of a failed trial: every key, finite sentinels for the objectives."""
    message = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
    result: dict[str, Any] = {k: math.nan for k in [*state.get("keys", []), *state["metrics"]]}
    for metric, mode in objectives:
        result[metric] = SENTINEL_MAX if mode == "max" else SENTINEL_MIN
    result.update(epoch=epoch, metrics_epoch=state["metrics_epoch"], outcome=outcome.value, error=message, **info)
    if outcome is Outcome.DIVERGED:
        result["diverged_epoch"] = epoch
        with tempfile.TemporaryDirectory(prefix="vae-ckpt-") as folder:
            Path(folder, DIVERGED_FILE).write_text(json.dumps({"epoch": epoch, "message": message, "result": result}))
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(folder))
    else:
        tune.report(result)


def _placement() -> dict[str, Any]:
    """Where the trial runs and on how much: node_ip, node_id, hostname, gpu_share (+ CPUs, internal)."""
    resources = tune.get_context().get_trial_resources().required_resources
    return {
        "node_ip": ray.util.get_node_ip_address(),
        "node_id": ray.get_runtime_context().get_node_id(),
        "hostname": socket.gethostname(),
        "gpu_share": float(resources.get("GPU", 0.0)),
        "_cpus": float(resources.get("CPU", 1.0)),
    }
