"""A generator of experiment folders in the exact layout Ray Tune 2.60 + study.launch write.

The analysis tests run on a real smoke study where they can (tests/test_analysis.py); this
generator covers what a real run cannot produce on demand: a trial retried after a lost node,
a study still running (a half-written result line, a pending trial), an experiment on S3, a
corrupt journal, hundreds of trials.

What it writes, checked against a real Ray Tune 2.60 run with OptunaSearch:
- ``<trial dir>/params.json`` (json.dump, indent=2, sort_keys) and ``params.pkl``: the space's
  parameters plus the keys study.launch adds (dataset, epochs, objectives, seed, config_group,
  optuna_number, ...), as trainables/trainable.py receives them;
- ``<trial dir>/result.json``: one JSON object per report, the trainable's keys (a failed trial's
  last report: NaN terms, sentinel objectives, ``error``, ``diverged_epoch``) followed by
  Ray's (timestamp, checkpoint_dir_name, done, training_iteration, trial_id, date,
  time_this_iter_s, time_total_s, pid, hostname, node_ip, config, time_since_restore,
  iterations_since_restore); NaN written as the bare literal ``NaN`` as json.dump does;
- ``<trial dir>/progress.csv``, ``checkpoint_NNNNNN/trainer.pt``, ``error.txt`` and the final
  images in the last checkpoint's ``images/`` and in ``<trial dir>/images/``: the PNG grids
  Trainer.save_images draws (64x64 tiles, 2 px padding; traversals one row per latent, largest
  KL first) and its ``traversals.json``;
- ``experiment_state-<date>.json`` (``trial_data`` as pairs of JSON strings), written by
  Ray's own serialisation conventions for the fields analysis reads;
- ``optuna.journal`` through Optuna's JournalStorage (enqueue, ask, tell, as OptunaSearch does);
- ``study.json``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import pickle
import random
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from trainables.vocabulary import (
    DISENTANGLEMENT_METRICS,
    SAMPLE_MEASURES,
    SAMPLE_STDS,
    TRAVERSALS_INFO,
    VARIANT_NAMES,
    sample_key,
)

# What trainables.metrics.evaluate measures every few epochs (the scores and decoded samples here).
EVALUATED = (*DISENTANGLEMENT_METRICS, *(sample_key(s, m) for s in SAMPLE_STDS for m in SAMPLE_MEASURES))
# Keys study.launch adds to every trial's config besides the space's parameters (trainable.py).
LAUNCH_CONFIG: dict[str, Any] = {
    "dataset": "dsprites_small", "data_root": None, "metrics_every": 1, "final_metrics": "fast",
    "train_images": 512,
}
SENTINEL = {"max": 0.0, "min": 1.0e9}  # trainable.py's finite stand-ins for a failed trial
VARIANTS = VARIANT_NAMES


@dataclass
class FakeTrial:
    variant: str
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)  # searched values (lr, beta_kl, ...)
    epochs: int = 3
    outcome: str = "completed"      # completed, diverged, error, running, pending, stopped
    stop_at: int | None = None      # last epoch reported (diverged/error/running/stopped)
    failures: int = 0               # times Ray retried it from a checkpoint
    node_ip: str = "10.0.0.1"
    gpu_share: float = 0.0
    images_in_checkpoint: bool = False  # images/ inside the last checkpoint instead of the trial dir
    metrics_every: int = 1          # evaluations at epoch 1, every k epochs and the last, as trainable.py


def default_trials() -> list[FakeTrial]:
    """Every variant with two seeds, plus one diverged, one failed, one retried, one running,
    one pending and one stopped by the scheduler."""
    out = []
    rng = random.Random(0)
    for v in VARIANTS:
        for seed in (0, 1):
            out.append(FakeTrial(v, seed, _params(v, rng), node_ip=f"10.0.0.{1 + seed}",
                                 gpu_share=0.25 if v.startswith("sintro") else 0.0,
                                 images_in_checkpoint=(seed == 1)))
    out.append(FakeTrial("sintro_tc", 2, _params("sintro_tc", rng), outcome="diverged", stop_at=2))
    out.append(FakeTrial("sintro", 2, _params("sintro", rng), outcome="diverged", stop_at=1))
    out.append(FakeTrial("beta_tcvae", 2, _params("beta_tcvae", rng), outcome="error", stop_at=1))
    out.append(FakeTrial("beta_vae", 2, _params("beta_vae", rng), failures=1, node_ip="10.0.0.3"))
    out.append(FakeTrial("beta_vae", 3, _params("beta_vae", rng), outcome="stopped", stop_at=1))
    out.append(FakeTrial("beta_tcvae", 3, _params("beta_tcvae", rng), outcome="running", stop_at=2))
    out.append(FakeTrial("sintro", 3, _params("sintro", rng), outcome="pending"))
    return out


def _params(variant: str, rng: random.Random) -> dict[str, Any]:
    p: dict[str, Any] = {"variant": variant, "lr": 10 ** rng.uniform(-4, -3), "beta_kl": 10 ** rng.uniform(0, 1.2),
                         "latent_dim": rng.choice([6, 10, 16])}
    if variant in ("beta_tcvae", "sintro_tc"):
        p["tc_weight"] = rng.uniform(1, 10)
    if variant in ("sintro", "sintro_tc"):
        p["beta_neg"] = float(rng.choice([64, 256, 1024]))
    return p


def distributions(variant: str) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    d: dict[str, Any] = {"variant": CategoricalDistribution(list(VARIANTS)),
                         "lr": FloatDistribution(1e-4, 1e-3, log=True),
                         "beta_kl": FloatDistribution(1.0, 16.0, log=True),
                         "latent_dim": CategoricalDistribution([6, 10, 16])}
    if variant in ("beta_tcvae", "sintro_tc"):
        d["tc_weight"] = FloatDistribution(1.0, 10.0)
    if variant in ("sintro", "sintro_tc"):
        d["beta_neg"] = CategoricalDistribution([64.0, 256.0, 1024.0])
    return d


def _metrics(t: FakeTrial, epoch: int, rng: np.random.Generator) -> dict[str, float]:
    """A plausible trade-off: a stronger KL weight disentangles more and reconstructs worse."""
    b = math.log10(t.params.get("beta_kl", 1.0))
    tc = t.variant in ("beta_tcvae", "sintro_tc")
    intro = t.variant.startswith("sintro")
    progress = epoch / t.epochs
    score = 1 / (1 + math.exp(-(2.5 * b - 1.2 + 0.5 * tc))) * progress
    rec = (60 + 40 * b - 10 * intro) * (1.6 - 0.6 * progress)
    out = {"loss": rec + 5 + 3 * b, "rec_loss": rec + rng.normal(0, 2), "kl": 12 - 4 * b + rng.normal(0, 0.3)}
    nan = float("nan")
    out.update({"mi": 3.0, "tc": 1.0 - 0.5 * b, "dwkl": 5.0} if tc else {"mi": nan, "tc": nan, "dwkl": nan})
    out.update({"exp_elbo_rec": 0.1, "exp_elbo_fake": 0.05, "kl_fake_minus_real": 2.0 - b} if intro else
               {"exp_elbo_rec": float("nan"), "exp_elbo_fake": float("nan"), "kl_fake_minus_real": float("nan")})
    for i, m in enumerate(DISENTANGLEMENT_METRICS):
        lift = 0.7 if m == "modularity" else 0
        out[m] = float(np.clip(score * (0.6 + 0.05 * i) + rng.normal(0, 0.03) + lift, 0, 1))
    for std in SAMPLE_STDS:  # Soft-Intro decoders paint more of the canvas (docs/paper.md)
        out[sample_key(std, "with_output")] = float(np.clip(0.2 + 0.6 * intro + rng.normal(0, 0.05), 0, 1))
        out[sample_key(std, "mean_pixel")] = float(np.clip(0.04 + 0.08 * intro + rng.normal(0, 0.01), 0, 1))
    out.update(epoch_time_s=2.0 + rng.random(), images_per_s=3000.0 + 100 * rng.random())
    return out


def _grid(rows: int, cols: int, rng: np.random.Generator, tile: int = 64, pad: int = 2):
    """A real PNG image in the layout of Trainer.save_images: tiles of sprites on a white grid."""
    from PIL import Image, ImageDraw

    w, h = cols * (tile + pad) + pad, rows * (tile + pad) + pad
    img = Image.new("L", (w, h), 255)
    draw = ImageDraw.Draw(img)
    for r in range(rows):
        for c in range(cols):
            x0, y0 = pad + c * (tile + pad), pad + r * (tile + pad)
            draw.rectangle([x0, y0, x0 + tile - 1, y0 + tile - 1], fill=0)
            cx, cy, s = x0 + rng.integers(16, 48), y0 + rng.integers(16, 48), rng.integers(5, 12)
            draw.ellipse([cx - s, cy - s, cx + s, cy + s], fill=255)
    return img


def _noise_grid(rows: int, cols: int, rng: np.random.Generator, levels: int, tile: int = 64, pad: int = 2):
    """Grey tiles of noise with `levels` grey levels: PNGs about as large as a barely trained
    decoder's (levels=3: traversals of 12 latents about 130 KB, a sample grid about 20 KB)."""
    from PIL import Image

    a = np.full((rows * (tile + pad) + pad, cols * (tile + pad) + pad), 255, np.uint8)
    for r in range(rows):
        for c in range(cols):
            y0, x0 = pad + r * (tile + pad), pad + c * (tile + pad)
            a[y0:y0 + tile, x0:x0 + tile] = rng.integers(60, 140) + 20 * rng.integers(0, levels, (tile, tile))
    return Image.fromarray(a)


def _write_images(folder: Path, latent_dim: int, rng: np.random.Generator, noise: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    decoded = (lambda rows, cols: _noise_grid(rows, cols, rng, noise)) if noise else (
        lambda rows, cols: _grid(rows, cols, rng))
    _grid(2, 8, rng).save(folder / "recon.png")
    decoded(2, 8).save(folder / "samples_std1.png")
    decoded(2, 8).save(folder / "samples_std3.png")
    decoded(latent_dim, 9).save(folder / "traversals.png")
    # Trainer.save_images: which latent each row moves (largest KL first), its KL, the z values.
    kl = np.sort(rng.exponential(1.0, latent_dim))[::-1]
    (folder / TRAVERSALS_INFO).write_text(json.dumps({
        "latents": rng.permutation(latent_dim).tolist(), "kl": [round(float(k), 6) for k in kl],
        "values": np.linspace(-2.5, 2.5, 9).round(6).tolist()}) + "\n")


def _tag(config: dict[str, Any], keys: list[str]) -> str:
    def short(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    return ",".join(f"{k}={short(config[k])}" for k in sorted(keys))


def make_experiment(root: Path | str, name: str = "exp", trials: list[FakeTrial] | None = None, *,
                    journal: bool = True, study_json: bool = True, state: bool = True,
                    objectives: tuple[tuple[str, str], ...] = (("mig", "max"), ("rec_loss", "min")),
                    seed: int = 0, space: str = "compare", image_noise: int = 0) -> Path:
    """Write an experiment folder under root/name and return its path. `image_noise`: decoded
    images as grey noise of that many levels, PNGs as large as real ones (the size benchmark)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    trials = default_trials() if trials is None else trials
    exp = Path(root) / name
    exp.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t0 = 1_790_000_000.0
    state_rows = []

    groups: dict[str, int] = {}  # a configuration's seeds share the config_group of its first (study.launch)
    study = None
    if journal:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = JournalStorage(JournalFileBackend(str(exp / "optuna.journal")))
        study = optuna.create_study(storage=storage, study_name=name,
                                    directions=["maximize" if m == "max" else "minimize" for _, m in objectives])

    for n, t in enumerate(trials, start=1):
        tid = f"{rng.integers(0, 16**8):08x}"
        group = groups.setdefault(json.dumps({**t.params, "variant": t.variant, "epochs": t.epochs}, sort_keys=True),
                                  n - 1)
        config = {**LAUNCH_CONFIG, "epochs": t.epochs, "objectives": [list(o) for o in objectives],
                  **t.params, "variant": t.variant, "seed": t.seed, "config_group": group, "optuna_number": n - 1}
        started = t0 + 60 * n
        date = datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%d_%H-%M-%S")
        tag = f"{n}_{_tag(config, sorted(config))}"
        dirname = f"train_vae_{tid}_{tag[:100]}_{date}"
        failed = t.outcome in ("diverged", "error")
        status = {"completed": "TERMINATED", "diverged": "ERROR", "stopped": "TERMINATED",
                  "error": "ERROR", "running": "RUNNING", "pending": "PENDING"}[t.outcome]
        optuna_trial = None
        if study is not None:
            study.enqueue_trial(t.params, skip_if_exists=False)
            optuna_trial = study.ask(distributions(t.variant))
        state_rows.append([json.dumps({
            "stub": False, "trainable_name": "train_vae", "trial_id": tid, "config": config,
            "evaluated_params": config, "experiment_tag": tag, "status": status,
            "relative_logdir": None if t.outcome == "pending" else dirname, "max_failures": max(1, t.failures),
        }, indent=2), json.dumps({
            "start_time": started, "num_failures": t.failures + (1 if failed else 0), "num_failures_after_restore": 0,
            "error_filename": "error.txt" if failed else None,
            "pickled_error_filename": "error.pkl" if failed else None,
        }, indent=2)])
        if t.outcome == "pending":
            continue

        d = exp / dirname
        d.mkdir()
        with open(d / "params.json", "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
        with open(d / "params.pkl", "wb") as f:
            pickle.dump(config, f)
        last_epoch = t.stop_at if t.stop_at is not None else t.epochs
        # Epochs as Ray sees them: a retried trial restarts from its last checkpoint (epoch 1).
        schedule = list(range(1, last_epoch + 1))
        restarts_at: set[int] = set()
        if t.failures:
            schedule = [1, 2] + [2, 3][: max(0, last_epoch - 1)]
            restarts_at = {2}  # index in schedule where a new process starts
        lines, total, since, it_since = [], 0.0, 0.0, 0
        final = None
        measured: dict[str, float] = {}
        metrics_epoch = 0
        placement = {"node_ip": t.node_ip, "node_id": f"{int(t.node_ip.rsplit('.', 1)[-1]):02x}" * 28,
                     "hostname": f"node{t.node_ip[-1]}", "gpu_share": t.gpu_share}
        for i, epoch in enumerate(schedule):
            if i in restarts_at:
                since, it_since = 0.0, 0
            dt = 2.0 + rng.random()
            total += dt
            since += dt
            it_since += 1
            m = _metrics(t, epoch, rng)
            if epoch in (1, t.epochs) or epoch % t.metrics_every == 0:
                measured, metrics_epoch = {k: m[k] for k in EVALUATED}, epoch
            m.update(measured)  # between evaluations a report repeats the last ones
            outcome = "completed" if (epoch == last_epoch and t.outcome == "completed") else "running"
            if epoch == last_epoch and failed:
                # trainable._report_failure: NaN everywhere, sentinels for the objectives.
                m = {k: float("nan") for k in m}
                m.update({metric: SENTINEL[mode] for metric, mode in objectives})
                outcome = t.outcome
                message = (f"TrialDiverged: training diverged (non-finite loss) at epoch {epoch}, step 7"
                           if t.outcome == "diverged"
                           else "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
                m["error"] = message
                if t.outcome == "diverged":
                    m["diverged_epoch"] = epoch
            result = {**m, "epoch": epoch, "metrics_epoch": metrics_epoch, "outcome": outcome, **placement}
            result.update({
                "timestamp": int(started + total),
                "checkpoint_dir_name": None if outcome == "error" else f"checkpoint_{epoch - 1:06d}",
                "done": False, "training_iteration": epoch, "trial_id": tid,
                "date": datetime.fromtimestamp(started + total, UTC).strftime("%Y-%m-%d_%H-%M-%S"),
                "time_this_iter_s": dt, "time_total_s": total, "pid": 1000 + n, "config": config,
                "time_since_restore": since, "iterations_since_restore": it_since,
            })
            lines.append(result)
            if outcome != "error":
                ck = d / f"checkpoint_{epoch - 1:06d}"
                ck.mkdir(exist_ok=True)
                (ck / ("diverged.json" if outcome == "diverged" else "trainer.pt")).write_bytes(b"{}")
            final = result
        with open(d / "result.json", "w") as f:
            for r in lines:
                json.dump(r, f)  # NaN -> NaN, as Ray's SafeFallbackEncoder leaves floats to json
                f.write("\n")
        with open(d / "progress.csv", "w", newline="") as f:
            keys = list(dict.fromkeys(k for r in lines for k in r if k != "config"))
            w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
            w.writeheader()
            w.writerows(lines)
        if failed:
            (d / "error.txt").write_text(
                "Failure # 1 (occurred at 2026-11-28_07-31-21)\n"
                "ray::ImplicitFunc.train() (pid=1000, ip=10.0.0.1)\nTraceback (most recent call last):\n"
                '  File "trainables/trainable.py", line 117, in train_vae\n'
                f"{final['error']}\n")
            (d / "error.pkl").write_bytes(b"\x80\x04N.")
        if t.outcome == "completed":
            ck = sorted(d.glob("checkpoint_*"))[-1]
            _write_images(ck / "images", int(config.get("latent_dim", 10)), rng, image_noise)
            if not t.images_in_checkpoint:  # trainable.py copies them next to the results too
                import shutil
                shutil.copytree(ck / "images", d / "images")
        if optuna_trial is not None and final is not None:
            if t.outcome in ("completed", "stopped"):
                study.tell(optuna_trial, [final[m] for m, _ in objectives])
            elif failed:
                study.tell(optuna_trial, state=optuna.trial.TrialState.FAIL)

    if state:
        stamp = datetime.fromtimestamp(t0, UTC).strftime("%Y-%m-%d_%H-%M-%S")
        with open(exp / f"experiment_state-{stamp}.json", "w") as f:
            json.dump({"trial_data": state_rows, "runner_data": {"_reuse_actors": False},
                       "stats": {"start_time": t0}}, f, indent=2)
        (exp / ".validate_storage_marker").write_text("")
    if study_json:
        unfinished = {t.outcome for t in trials} & {"running", "pending"}
        (exp / "study.json").write_text(json.dumps({
            "name": name, "space": space, "dataset": "dsprites_small", "preset": "smoke",
            "argv": ["--space", space, "--preset", "smoke"], "seed": 0, "seeds": 1, "sampler": "tpe",
            "objectives": [{"metric": m, "mode": d} for m, d in objectives],
            "versions": {"python": "3.11.2", "torch": "2.13.0", "ray": "2.60.0", "optuna": "5.0.0"},
            "started_at": "2026-11-28T07:30:00+00:00",
            "ended_at": None if unfinished else "2026-11-28T08:00:00+00:00",
            "status": "running" if unfinished else "completed",
        }, indent=2, sort_keys=True))
        if unfinished:  # a launch runs it: this process holds its lock
            (exp / "study.lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                                        "started_at": "2026-11-28T07:30:00+00:00"}))
    return exp


# ---------------------------------------------------------------------------------------------
# A real smoke study, run once per test session and shared by the test modules.

REPO = Path(__file__).resolve().parents[1]
_SMOKE: dict[str, Any] = {}
SMOKE_ARGS = ["--space", "compare", "--preset", "smoke", "--trials", "4", "--seeds", "2"]


def smoke_study(base: Path) -> Path:
    """``python -m study.launch --space compare --preset smoke --trials 4 --seeds 2`` in
    ``base`` (two configurations, two seeds each; about a minute on 2 cores), once per session.
    Fails the calling test with the launcher's output when it does not finish."""
    import os
    import subprocess
    import sys

    import pytest

    if "dir" not in _SMOKE:
        if not (REPO / "study" / "launch.py").exists():
            pytest.skip("study/launch.py is not there yet: no real study to analyse")
        env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "study.launch", *SMOKE_ARGS, "--storage", str(base), "--name", "smoke"]
        try:
            proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
            _SMOKE["output"] = proc.stdout + proc.stderr
            _SMOKE["rc"] = proc.returncode
        except subprocess.TimeoutExpired as exc:
            _SMOKE["output"], _SMOKE["rc"] = f"timed out after {exc.timeout}s", -1
        _SMOKE["dir"] = base / "smoke"
    if _SMOKE["rc"] != 0:
        pytest.fail(f"the smoke study failed (exit {_SMOKE['rc']}):\n{_SMOKE['output'][-3000:]}")
    return _SMOKE["dir"]


def smoke_output() -> str:
    return str(_SMOKE.get("output", ""))
