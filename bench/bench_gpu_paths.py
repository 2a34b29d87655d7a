"""The fast paths against the plain float32 path: same loss curve within tolerance, and the speed-up.

    python bench/bench_gpu_paths.py --device cuda [--epochs 3] [--out docs/bench/gpu_paths.md]

Each path trains the same seed on the same data for the same steps; the table gives the largest
relative difference of the per-epoch reconstruction loss from the float32 curve and the speed-up
as a ratio measured in the same run. Paths: bf16 autocast, channels-last, both, and
torch.compile on top. On a CPU only the float32 and compile paths apply (autocast and
channels-last are CUDA-only in the trainer).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import time
from pathlib import Path

import torch

from trainables.data import load_dataset
from trainables.trainer import TrainConfig, Trainer

PATHS = {
    "float32": dict(amp=False, channels_last=False, compile=False),
    "bf16": dict(amp=True, channels_last=False, compile=False),
    "channels_last": dict(amp=False, channels_last=True, compile=False),
    "bf16+channels_last": dict(amp=True, channels_last=True, compile=False),
    "bf16+channels_last+compile": dict(amp=True, channels_last=True, compile=True),
}


def curve(variant: str, data, device: str, epochs: int, batch_size: int, **path) -> tuple[list[float], float]:
    trainer = Trainer(TrainConfig(variant=variant, device=device, batch_size=batch_size, lr=5e-4, seed=0,
                                  epochs=epochs, beta_neg=16.0, **path), data)
    trainer.train_epoch()  # warm-up epoch (compilation, cuDNN autotuning) is not timed
    start = time.perf_counter()
    losses = [trainer.train_epoch()["rec_loss"] for _ in range(epochs)]
    return losses, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--variants", default="beta_tcvae,sintro_tc")
    parser.add_argument("--out", default="docs/bench/gpu_paths.md")
    args = parser.parse_args()
    data = load_dataset("dsprites_small")
    if args.device == "cpu":
        data = dataclasses.replace(data, images=data.images[:1024])
    cpu_paths = ("float32", "bf16+channels_last+compile")
    paths = PATHS if args.device.startswith("cuda") else {k: PATHS[k] for k in cpu_paths}
    rows = []
    for variant in args.variants.split(","):
        reference, ref_time = curve(variant, data, args.device, args.epochs, args.batch_size, **PATHS["float32"])
        for name, path in paths.items():
            losses, seconds = (reference, ref_time) if name == "float32" else curve(
                variant, data, args.device, args.epochs, args.batch_size, **path)
            worst = max(abs(a - b) / abs(b) for a, b in zip(losses, reference))
            rows.append((variant, name, worst, ref_time / seconds, losses[-1]))
            print(rows[-1], flush=True)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    lines = [f"Measured {datetime.date.today()} on {name}, torch {torch.__version__}, dsprites_small, "
             f"batch {args.batch_size}, {args.epochs} timed epochs after one warm-up epoch.", "",
             "| variant | path | max rel. diff of rec_loss curve vs float32 | speed-up vs float32 | final rec_loss |",
             "|---|---|---:|---:|---:|"]
    lines += [f"| {v} | {p} | {d:.3%} | {s:.2f}x | {f:.2f} |" for v, p, d, s, f in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
