"""The two readings of the report code's reconstruction term, trained side by side.

    python bench/bench_report_reading.py [--epochs 2] [--out docs/bench/report_reading.md]

The report's code takes the real images' reconstruction loss with
``ops.reconstruction_loss(..., reduction="mean")``. Every archived version of that function
averages BCE over pixels as well as over the batch; the report's text ("equal weights for
reconstruction and KL ... a balanced weighting"), its figures' descriptions and Soft-Intro-VAE's
own code read it as a per-image sum (docs/objectives.md, "The report's code"). `rec_reduction`
selects the reading: "sum" (per image) or "mean" (per pixel, a factor 1/(C*H*W) = 1/4096 on the
real images' reconstruction). This trains each variant with the `paper` space's settings (the
report's losses and weights, the standard model, dsprites_small, seed 0) under both readings and
reports the reconstruction loss (nats per image), the KL, the active latents and two metrics.
"""

from __future__ import annotations

import argparse
import datetime
import os
import time
from pathlib import Path

import torch
from bench_report_estimator import paper_config  # bench/ is the script's folder: its first import path

from trainables.data import load_dataset
from trainables.metrics.evaluate import evaluate
from trainables.trainer import Trainer
from trainables.vocabulary import VARIANT_NAMES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", default="docs/bench/report_reading.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("dsprites_small")
    load_before = os.getloadavg()[0]
    lines = [f"# The report code's reconstruction term: per image or per pixel ({datetime.date.today()})", "",
             f"`python bench/bench_report_reading.py --epochs {args.epochs}`: the `paper` space's settings, the "
             f"standard model, dsprites_small, seed 0, 1 torch thread, torch {torch.__version__}; metrics with "
             "the `fast` preset.", "",
             "| variant | rec_reduction | rec_loss (nats/image) | KL | active latents | MIG | beta-VAE score | s |",
             "|---|---|---|---|---|---|---|---|"]
    for variant in VARIANT_NAMES:
        for reduction in ("sum", "mean"):
            start = time.perf_counter()
            trainer = Trainer(paper_config(variant, rec_reduction=reduction, epochs=args.epochs, seed=0), data)
            for _ in range(args.epochs):
                losses = trainer.train_epoch()
            m = evaluate(trainer.model, data, preset="fast", seed=0)
            lines.append(f"| {variant} | {reduction} | {losses['rec_loss']:.1f} | {losses['kl']:.2f} | "
                         f"{m['active_units']:.0f} | {m['mig']:.3f} | {m['beta_vae']:.3f} | "
                         f"{time.perf_counter() - start:.0f} |")
            print(lines[-1], flush=True)
    lines += ["", "A decode that paints every pixel at the data's mean intensity (0.042494) costs 720 nats "
              f"per image. Load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
