"""Training throughput per variant and architecture, with FLOPs and the fraction of peak reached.

    python bench/bench_training.py [--steps 20] [--device cpu] [--out docs/bench/training.md]

FLOPs per image are counted by torch's FlopCounterMode over one real training step (forward and
backward of every pass the variant makes), so the Soft-Intro step's extra passes are included.
The device's dense matmul rate is measured in the same run, so the fraction is a ratio of two
numbers taken side by side.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import platform
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from trainables.data import load_dataset
from trainables.trainer import VARIANTS, TrainConfig, Trainer


def matmul_flops_per_s(device: torch.device, n: int = 2048, dtype=torch.float32, seconds: float = 2.0) -> float:
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        reps += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - start)


def measure(variant: str, arch: str, data, device: str, steps: int, batch_size: int) -> dict:
    trainer = Trainer(TrainConfig(variant=variant, arch=arch, batch_size=batch_size, device=device), data)
    step = trainer._soft_intro_step if trainer.config.adversarial else trainer._beta_step
    batches = [trainer.images[i * batch_size:(i + 1) * batch_size].float() / data.pixel_max for i in range(4)]
    with FlopCounterMode(display=False) as counter:
        step(batches[0])
    for x in batches:  # warm-up
        step(x)
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for i in range(steps):
        step(batches[i % len(batches)])
    sync()
    images_per_s = steps * batch_size / (time.perf_counter() - start)
    flops = counter.get_total_flops() / batch_size
    return {"variant": variant, "arch": arch, "images_per_s": images_per_s, "gflop_per_image": flops / 1e9,
            "achieved_gflop_s": flops * images_per_s / 1e9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--archs", default="standard,residual")
    parser.add_argument("--out", default="docs/bench/training.md")
    args = parser.parse_args()
    device = torch.device(args.device)
    data = load_dataset("dsprites_small")
    data = dataclasses.replace(data, images=data.images[: 8 * args.batch_size])
    peak = matmul_flops_per_s(device)
    rows = []
    for arch in args.archs.split(","):
        # The residual model is ~100x heavier: fewer steps keep the CPU run in minutes.
        steps = args.steps if arch == "standard" or device.type == "cuda" else max(2, args.steps // 10)
        for variant in VARIANTS:
            row = measure(variant, arch, data, args.device, steps, args.batch_size)
            row["fraction_of_matmul_peak"] = row["achieved_gflop_s"] * 1e9 / peak
            rows.append(row)
            print(row, flush=True)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    lines = [
        f"Measured {datetime.date.today()} on {device_name} ({torch.get_num_threads()} threads), "
        f"torch {torch.__version__}, batch {args.batch_size}, 64x64x1 dSprites. "
        f"Dense float32 matmul (2048^2) in the same run: {peak / 1e9:.1f} GFLOP/s.",
        "",
        "| variant | arch | images/s | GFLOP per image (train step) | achieved GFLOP/s | fraction of matmul peak |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['variant']} | {r['arch']} | {r['images_per_s']:.0f} | {r['gflop_per_image']:.3f} | "
        f"{r['achieved_gflop_s']:.1f} | {r['fraction_of_matmul_peak']:.2f} |"
        for r in rows
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
