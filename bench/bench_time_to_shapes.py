"""How far one training gets in minutes of one CPU core: rec_loss and reconstructions against time.

    python bench/bench_time_to_shapes.py [--minutes 8] [--checkpoints 2,4,8] [--train-images 1500]
                                         [--out docs/bench/time_to_shapes.md]

The README's main job (16 Soft-Intro-TCVAE configurations, about 7 minutes on 2 cores) ends with
reconstructions that put every sprite at its place and size but draw every shape as a round
blob. This asks what any split of a 10-minute, 2-core budget could show instead: it trains single
configurations for --minutes of one core each (two at a time, one torch thread each, like the
study's trials), records rec_loss after every epoch, and keeps the reconstructions of the same 8
images (drawn with seed 0, as in every study's image grids) after the first epoch that ends past
each of --checkpoints minutes.

The runs, all on the main job's fixed --train-images subset of dsprites_small, seed 0, precision
auto (bf16 on this project's CPU):
- the main job's best configuration (its trial #2, which is configuration #2 of the RandomSampler
  seed-0 draw of bench_mo_asha.py) at its batch size 64, and at 32 and 16: Soft-Intro's step costs
  about the same per image at these sizes on one core, so a smaller batch is more steps per minute;
- beta-VAE (beta 1, lr 1e-3, batch 32): the cheapest variant, a fifth of Soft-Intro's FLOPs per
  image (docs/bench/training.md), as a bound on what any variant learns in the time.

Writes --out (markdown), a PNG of the reconstructions next to it, and the per-epoch curves as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_mo_asha import configurations
from bench_training import cpu_name
from PIL import Image, ImageDraw

RUNS = {  # label -> TrainConfig overrides of the main job's best configuration
    "Soft-Intro-TCVAE, batch 64 (as the main job)": {},
    "Soft-Intro-TCVAE, batch 32": {"batch_size": 32},
    "Soft-Intro-TCVAE, batch 16": {"batch_size": 16},
    "beta-VAE (beta 1), batch 32, lr 1e-3": {"variant": "beta_vae", "beta_rec": 1.0, "beta_kl": 1.0,
                                              "batch_size": 32, "lr": 1e-3},
}
GRID_ROW = 68  # trainables.images.write_grid: 64-pixel images with 2 pixels of padding; row 0 inputs, row 1 outputs


def train_for(label: str, minutes: float, checkpoints: list[float], train_images: int) -> dict:
    """One training for `minutes` of wall time on one thread: its per-epoch rec_loss and the
    reconstruction rows at the checkpoints (uint8 arrays), or where it diverged."""
    import torch

    from trainables.data import load_dataset
    from trainables.trainer import Diverged, TrainConfig, Trainer

    torch.set_num_threads(1)
    base = {k: v for k, v in configurations("sintro_tc", 16, 0)[2].items() if k in TrainConfig.__dataclass_fields__}
    config = TrainConfig(**{**base, **RUNS[label], "epochs": 10**6})
    trainer = Trainer(config, load_dataset("dsprites_small").training_subset(train_images, 0))
    curve, rows, inputs, diverged = [], [], None, None
    pending, start = list(checkpoints), time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        while (elapsed := time.perf_counter() - start) < minutes * 60:
            try:
                result = trainer.train_epoch()
            except Diverged as err:
                diverged = {"epoch": err.epoch, "step": err.step, "minutes": elapsed / 60}
                break
            elapsed = time.perf_counter() - start
            curve.append({"epoch": trainer.epoch, "steps": trainer.step, "minutes": elapsed / 60,
                          "rec_loss": result["rec_loss"]})
            if pending and elapsed >= pending[0] * 60:
                pending = [c for c in pending if c * 60 > elapsed]
                recon = next(p for p in trainer.save_images(tmp) if p.stem == "recon")  # inputs over outputs
                grid = np.asarray(Image.open(recon))
                inputs = grid[:GRID_ROW].tolist()
                rows.append({"minutes": elapsed / 60, "epoch": trainer.epoch, "steps": trainer.step,
                             "rec_loss": result["rec_loss"], "pixels": grid[GRID_ROW - 2:].tolist()})
    return {"label": label, "config": dataclasses.asdict(config), "precision": trainer.precision, "curve": curve,
            "rows": rows, "inputs": inputs, "diverged": diverged}


def figure(results: list[dict], path: Path) -> None:
    """One PNG: the 8 inputs, then per run its reconstructions at each checkpoint, each row labelled."""
    label_w = 360
    blocks = [("inputs", np.array(next(r["inputs"] for r in results if r["inputs"]), dtype=np.uint8))]
    for r in results:
        for row in r["rows"]:
            text = f"{r['label']}\n{row['minutes']:.1f} min, {row['steps']} steps, rec_loss {row['rec_loss']:.0f}"
            blocks.append((text, np.array(row["pixels"], dtype=np.uint8)))
    width = label_w + blocks[0][1].shape[1]
    canvas = Image.new("L", (width, sum(b.shape[0] for _, b in blocks)), 255)
    draw, top = ImageDraw.Draw(canvas), 0
    for text, pixels in blocks:
        canvas.paste(Image.fromarray(pixels), (label_w, top))
        draw.multiline_text((4, top + pixels.shape[0] // 2 - 12), text, fill=0)
        top += pixels.shape[0]
    canvas.save(path)


def first_below(curve: list[dict], level: float) -> str:
    point = next((p for p in curve if p["rec_loss"] <= level), None)
    return f"{point['minutes']:.1f} min ({point['steps']} steps)" if point else "not reached"


def markdown(results: list[dict], args: argparse.Namespace, load: tuple[float, float]) -> str:
    import torch

    lines = [f"Measured {datetime.date.today()} on {cpu_name()} "
             f"({os.cpu_count()} CPUs), torch {torch.__version__}, with `python bench/bench_time_to_shapes.py "
             f"--minutes {args.minutes:g} --train-images {args.train_images} --checkpoints "
             f"{','.join(f'{c:g}' for c in args.checkpoints)}`: each run {args.minutes:g} minutes of one core, "
             f"two runs at a time. Load average (1 min) before / after: {load[0]:.1f} / {load[1]:.1f}.", "",
             "| run | precision | images/s | epochs | steps | rec_loss, last epoch | lowest rec_loss "
             "| first rec_loss <= 230 | <= 100 | <= 75 | diverged |",
             "|---|---|---:|---:|---:|---:|---:|---|---|---|---|"]
    for r in results:
        c, last = r["curve"], r["curve"][-1] if r["curve"] else None
        per_s = (last["epoch"] * args.train_images // r["config"]["batch_size"] * r["config"]["batch_size"]
                 / (last["minutes"] * 60)) if last else 0.0
        gone = (f"epoch {r['diverged']['epoch']} ({r['diverged']['minutes']:.1f} min)" if r["diverged"] else "no")
        lines.append(f"| {r['label']} | {r['precision']} | {per_s:.0f} | {last['epoch'] if last else 0} "
                     f"| {last['steps'] if last else 0} | {last['rec_loss']:.1f} | "
                     f"{min(p['rec_loss'] for p in c):.1f} | {first_below(c, 230)} | {first_below(c, 100)} "
                     f"| {first_below(c, 75)} | {gone} |")
    lines += ["", f"![inputs, then each run's reconstructions after {', '.join(f'{c:g}' for c in args.checkpoints)}"
                  f" minutes]({Path(args.out).with_suffix('.png').name})", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=8.0, help="wall time of each run, on one core")
    parser.add_argument("--checkpoints", type=lambda s: [float(x) for x in s.split(",")], default=[2.0, 4.0, 8.0],
                        help="minutes after which to keep the reconstructions")
    parser.add_argument("--train-images", type=int, default=1500, help="the fixed subset (the cpu preset's)")
    parser.add_argument("--out", default="docs/bench/time_to_shapes.md")
    args = parser.parse_args()
    out = Path(args.out)
    before = os.getloadavg()[0]
    jobs = [(label, args.minutes, args.checkpoints, args.train_images) for label in RUNS]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.starmap(train_for, jobs)
    out.with_suffix(".json").write_text(json.dumps(
        [{k: v for k, v in r.items() if k not in ("rows", "inputs")} for r in results]))
    figure(results, out.with_suffix(".png"))
    text = markdown(results, args, (before, os.getloadavg()[0]))
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
