"""Does bf16 change the science? The same seeds trained in fp32 and in bf16, side by side.

    python bench/bench_precision.py [--epochs 5] [--seeds 0,1] [--train-images 0] [--workers 2]
        [--out docs/bench/precision.md]

For each of the four variants and each seed: the trainer's defaults (TrainConfig(); standard
model, batch 64, lr 2e-4) on all of dsprites_small (or on a fixed random subset of --train-images
images, the launcher's subset, seeded by the training's seed) for --epochs epochs, once with
precision="fp32" and once with precision="bf16", then the `full` metric suite on the final model
(metrics run in float32 either way, on all 7,200 images). The table holds the per-epoch rec_loss curves, the largest
relative difference between the fp32 and bf16 curves of one seed, and the final metrics. The
verdict per variant and metric: is the difference between the bf16 and fp32 means within the
spread (max - min) between the fp32 seeds? bf16 stays the default only if it is, everywhere.

Each training is one job in a pool of --workers processes with one torch thread each; finished
jobs are appended to a JSON-lines file next to --out, so an interrupted run continues where it
stopped (delete the file to start over).
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import statistics
import time
from pathlib import Path

from trainables.vocabulary import VARIANT_NAMES

PRECISIONS = ("fp32", "bf16")
METRICS = ("rec_loss", "kl", "mig", "beta_vae", "factor_vae", "dci_disentanglement", "sap")


def train(job: tuple[str, str, int, int, int]) -> dict:
    """One training: per-epoch rec_loss and the final metrics (runs in a worker process)."""
    import torch

    from trainables.data import load_dataset
    from trainables.metrics.evaluate import evaluate
    from trainables.trainer import TrainConfig, Trainer

    variant, precision, seed, epochs, train_images = job
    torch.set_num_threads(1)
    data = load_dataset("dsprites_small")
    trainer = Trainer(TrainConfig(variant=variant, precision=precision, seed=seed, epochs=epochs),
                      data.training_subset(train_images, seed))
    start = time.perf_counter()
    history = [trainer.train_epoch() for _ in range(epochs)]
    train_s = time.perf_counter() - start
    metrics = evaluate(trainer.model, data, preset="full", seed=seed, device=trainer.device)
    return {"variant": variant, "precision": trainer.precision, "seed": seed, "epochs": epochs,
            "train_images": train_images,
            "rec_loss_curve": [h["rec_loss"] for h in history], "train_s": train_s,
            "final": {"rec_loss": history[-1]["rec_loss"], "kl": history[-1]["kl"],
                      **{k: float(v) for k, v in metrics.items() if k in METRICS}}}


def run(jobs: list[tuple[str, str, int, int, int]], workers: int, log: Path) -> list[dict]:
    done = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    done = [r for r in done if (r["variant"], r["precision"], r["seed"], r["epochs"], r.get("train_images", 0)) in jobs]
    seen = {(r["variant"], r["precision"], r["seed"], r["epochs"], r.get("train_images", 0)) for r in done}
    todo = [j for j in jobs if j not in seen]
    with multiprocessing.get_context("spawn").Pool(workers) as pool, log.open("a") as f:
        for result in pool.imap_unordered(train, todo):
            f.write(json.dumps(result) + "\n")
            f.flush()
            print(result["variant"], result["precision"], result["seed"], round(result["train_s"]),
                  {k: round(v, 4) for k, v in result["final"].items()}, flush=True)
            done.append(result)
    return done


def verdicts(results: list[dict], variant: str) -> dict[str, tuple[float, float, float, bool]]:
    """metric -> (fp32 mean, bf16 mean, fp32 seed spread, |difference| <= spread)."""
    out = {}
    for metric in METRICS:
        values = {p: [r["final"][metric] for r in results if r["variant"] == variant and r["precision"] == p
                      and metric in r["final"]] for p in PRECISIONS}
        if not all(values.values()):
            continue
        f32, b16 = statistics.mean(values["fp32"]), statistics.mean(values["bf16"])
        spread = max(values["fp32"]) - min(values["fp32"])
        out[metric] = (f32, b16, spread, abs(b16 - f32) <= spread)
    return out


def markdown(results: list[dict], args: argparse.Namespace, load: tuple[float, float], wall: float) -> str:
    images = (f"a fixed random subset of {args.train_images:,} dsprites_small images per seed for training"
              if args.train_images else "all 7,200 dsprites_small images")
    lines = [f"Measured {datetime.date.today()} with `python bench/bench_precision.py --epochs {args.epochs} "
             f"--seeds {args.seeds} --train-images {args.train_images} --workers {args.workers}`: TrainConfig "
             f"defaults, {images}, 1 torch thread per training, `full` metrics on the final model (all 7,200 "
             f"images). Load average (1 min) before / after: {load[0]:.1f} / "
             f"{load[1]:.1f}; {wall / 60:.0f} min in all.", "",
             "Per-epoch rec_loss (nats/image), fp32 / bf16 at the same seed, and the largest relative difference "
             "of the two curves:", "",
             "| variant | seed | fp32 curve | bf16 curve | max rel. diff | train time fp32 / bf16 |",
             "|---|---:|---|---|---:|---:|"]
    by = {(r["variant"], r["precision"], r["seed"]): r for r in results}
    for variant in VARIANT_NAMES:
        for seed in sorted({r["seed"] for r in results}):
            a, b = by.get((variant, "fp32", seed)), by.get((variant, "bf16", seed))
            if not (a and b):
                continue
            gap = max(abs(x - y) / abs(x) for x, y in zip(a["rec_loss_curve"], b["rec_loss_curve"]))
            curve = lambda r: " ".join(f"{v:.1f}" for v in r["rec_loss_curve"])  # noqa: E731
            lines.append(f"| {variant} | {seed} | {curve(a)} | {curve(b)} | {gap:.1%} | "
                         f"{a['train_s']:.0f} s / {b['train_s']:.0f} s ({a['train_s'] / b['train_s']:.2f}x) |")
    lines += ["", "Final values: fp32 and bf16 means over the seeds, the spread (max - min) between the fp32 seeds, "
              "and whether the bf16 mean lies within that spread of the fp32 mean:", "",
              "| variant | metric | fp32 seeds | bf16 seeds | fp32 mean | bf16 mean | fp32 spread | within |",
              "|---|---|---|---|---:|---:|---:|---|"]
    for variant in VARIANT_NAMES:
        for metric, (f32, b16, spread, ok) in verdicts(results, variant).items():
            seeds = {p: ", ".join(f"{r['final'][metric]:.4g}" for r in results
                                  if r["variant"] == variant and r["precision"] == p) for p in PRECISIONS}
            lines.append(f"| {variant} | {metric} | {seeds['fp32']} | {seeds['bf16']} | {f32:.4g} | {b16:.4g} | "
                         f"{spread:.3g} | {'yes' if ok else 'no'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--variants", default=",".join(VARIANT_NAMES))
    parser.add_argument("--train-images", type=int, default=0, help="0: all 7,200; n: a fixed random subset")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="docs/bench/precision.md")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    # the slow Soft-Intro trainings first, so the pool's two workers finish together
    variants = sorted(args.variants.split(","), key=lambda v: not v.startswith("sintro"))
    jobs = [(v, p, s, args.epochs, args.train_images) for v in variants for s in seeds for p in PRECISIONS]
    before, start = os.getloadavg()[0], time.monotonic()
    results = run(jobs, args.workers, Path(args.out).with_suffix(".jsonl"))
    text = markdown(results, args, (before, os.getloadavg()[0]), time.monotonic() - start)
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
