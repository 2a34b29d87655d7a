"""Training throughput per variant and architecture, with FLOPs and the fraction of peak reached.

    python bench/bench_training.py [--threads 1,2] [--steps 20] [--device cpu] [--out docs/bench/training.md]
    python bench/bench_training.py --device cuda --out docs/bench/training_cuda.md

What it measures, per variant x architecture (x CPU thread count): images/s of the trainer's real
training step (`Trainer._beta_step` / `_soft_intro_step`, batch 64 by default, data already on
the device), timed over --steps steps after 4 warm-up steps (on a CPU the residual model, minutes
per step, gets --steps/20 timed steps and no extra warm-up). A "steps" column records the count.

- FLOPs per image: torch's FlopCounterMode over one real training step (forward and backward of
  every pass the variant makes, so the Soft-Intro step's extra passes are included).
- aten ops per step: the operators the step dispatches (forward, backward, optimiser). On a GPU
  each is at least one kernel launch, so this bounds the step time when the model is small.
- fraction of peak: achieved FLOP/s over the device's dense matmul rate, measured right before
  each row at the same thread count (a ratio of two numbers taken side by side). The matmul is
  in the precision the trainer runs in: float32, or bf16 when TrainConfig.precision resolves to
  bf16 (--precision; "auto" is bf16 on CUDA and on CPUs with native bf16).
- CPU threads: `torch.set_num_threads(t)` for every t of --threads, each row measured for all
  thread counts back to back, so the "x vs 1 thread" ratio is side by side. On a shared machine,
  oversubscribed threads can be far slower than one; the load average is printed with the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from trainables.data import load_dataset
from trainables.device import resolve_precision
from trainables.trainer import TrainConfig, Trainer
from trainables.vocabulary import VARIANT_NAMES


class OpCounter(TorchDispatchMode):
    """Counts aten operator calls (forward, backward and optimiser) while active."""

    def __init__(self):
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        return func(*args, **(kwargs or {}))


def matmul_n(device: torch.device) -> int:
    """Matrix size for the dense rate: 2048 on a CPU, 8192 on a GPU (2048 is too small to fill one)."""
    return 8192 if device.type == "cuda" else 2048


def matmul_flops_per_s(device: torch.device, dtype=torch.float32, seconds: float = 1.0) -> float:
    n = matmul_n(device)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(10 if device.type == "cuda" else 1):
            a @ b
            reps += 1
        sync()
    return 2 * n**3 * reps / (time.perf_counter() - start)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def measure(variant: str, arch: str, data, device: str, steps: int, batch_size: int, precision: str = "auto",
            warmup: int = 4) -> dict:
    trainer = Trainer(TrainConfig(variant=variant, arch=arch, batch_size=batch_size, device=device,
                                  precision=precision), data)
    step = trainer._soft_intro_step if trainer.config.adversarial else trainer._beta_step
    batches = [(trainer.images[i * batch_size:(i + 1) * batch_size].float() / data.pixel_max)
               .contiguous(memory_format=trainer.memory_format) for i in range(4)]
    with FlopCounterMode(display=False) as counter:
        step(batches[0])
    with OpCounter() as ops:
        step(batches[1])
    for x in batches[:warmup]:  # warm-up (the two counted steps above warm up as well)
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
            "achieved_gflop_s": flops * images_per_s / 1e9, "ops_per_step": ops.ops}


def run(device: str, threads: list[int], archs: list[str], variants: list[str], steps: int, batch_size: int,
        precision: str = "auto", on_row=None) -> tuple[list[dict], dict[int, float]]:
    """Measure every row; on_row(rows, peaks) after each (e.g. to write the table as it grows)."""
    dev = torch.device(device)
    peak_dtype = torch.bfloat16 if resolve_precision(precision, dev) == "bf16" else torch.float32
    threads = threads if dev.type == "cpu" else [torch.get_num_threads()]
    data = load_dataset("dsprites_small")
    data = dataclasses.replace(data, images=data.images[: 8 * batch_size])
    rows, peaks = [], {}
    for arch in archs:
        # The residual model is ~100x heavier (minutes per step on a CPU): one timed step, and the
        # two counted steps as the only warm-up, keep the CPU run in minutes.
        light = arch == "standard" or dev.type == "cuda"
        n, warmup = (steps, 4) if light else (max(1, steps // 20), 0)
        for variant in variants:
            for t in threads:
                torch.set_num_threads(t)
                peak = matmul_flops_per_s(dev, dtype=peak_dtype)
                peaks.setdefault(t, []).append(peak)
                row = measure(variant, arch, data, device, n, batch_size, precision, warmup)
                row.update(threads=t, steps=n, fraction_of_matmul_peak=row["achieved_gflop_s"] * 1e9 / peak)
                rows.append(row)
                print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
                if on_row:
                    on_row(rows, _medians(peaks))
    return rows, _medians(peaks)


def _medians(peaks: dict[int, list[float]]) -> dict[int, float]:
    return {t: sorted(p)[len(p) // 2] for t, p in peaks.items()}


def _rate(x: float) -> str:
    return f"{x:.0f}" if x >= 100 else f"{x:.3g}"


def table(rows: list[dict], peaks: dict[int, float], device: str, batch_size: int, precision: str,
          load: tuple) -> str:
    dev = torch.device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name()
    cpus = os.cpu_count()
    dtype = "bf16" if resolve_precision(precision, dev) == "bf16" else "float32"
    base = {(r["variant"], r["arch"]): r["images_per_s"] for r in rows if r["threads"] == min(peaks)}
    lines = [
        f"Measured {datetime.date.today()} on {name} ({cpus} CPUs), torch {torch.__version__}, "
        f"batch {batch_size}, 64x64x1 dSprites, {'bf16 autocast + channels-last' if dtype == 'bf16' else 'float32'}. "
        f"Load average (1 min) before / after: {load[0]:.1f} / {load[1]:.1f}. "
        f"Dense {dtype} matmul ({matmul_n(dev)}^2), median of the measurements taken next to each row: "
        + ", ".join(f"{p / 1e9:.1f} GFLOP/s " + (f"at {t} thread(s)" if dev.type == "cpu" else "on the GPU")
                    for t, p in peaks.items()) + ".",
        "",
        f"| variant | arch | threads | images/s | vs {min(peaks)} thread(s) | GFLOP per image (train step) "
        "| aten ops per step | achieved GFLOP/s | fraction of matmul peak | timed steps |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['variant']} | {r['arch']} | {r['threads'] if dev.type == 'cpu' else '-'} | {_rate(r['images_per_s'])} | "
        f"{r['images_per_s'] / base[(r['variant'], r['arch'])]:.2f}x | {r['gflop_per_image']:.3f} | "
        f"{r['ops_per_step']} | {r['achieved_gflop_s']:.1f} | {r['fraction_of_matmul_peak']:.3f} | {r['steps']} |"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", default="1,2", help="CPU thread counts, each measured (ignored on CUDA)")
    parser.add_argument("--archs", default="standard,residual")
    parser.add_argument("--variants", default=",".join(VARIANT_NAMES))
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                        help="TrainConfig.precision (auto: bf16 on CUDA and on CPUs with native bf16)")
    parser.add_argument("--out", default="docs/bench/training.md")
    args = parser.parse_args()
    before = os.getloadavg()[0]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)

    def write(rows, peaks):
        text = table(rows, peaks, args.device, args.batch_size, args.precision, (before, os.getloadavg()[0]))
        Path(args.out).write_text(text)  # after every row: a run cut short keeps what it measured
        return text

    rows, peaks = run(args.device, [int(t) for t in args.threads.split(",")], args.archs.split(","),
                      args.variants.split(","), args.steps, args.batch_size, precision=args.precision, on_row=write)
    print(write(rows, peaks))
