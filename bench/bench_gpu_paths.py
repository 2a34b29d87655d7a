"""The fast paths against the plain float32 path: same loss curve within tolerance, and the speed-up.

    python bench/bench_gpu_paths.py --device cuda [--epochs 3] [--out docs/bench/gpu_paths.md]

Each path trains the same seed on the same data for the same steps; the table gives the largest
relative difference of the per-epoch reconstruction loss from the float32 curve and the speed-up
as a ratio measured in the same run. Paths: bf16 autocast (TrainConfig.precision), channels-last,
both, torch.compile on top, and on CUDA torch.compile's "reduce-overhead" mode, which captures the
encoder's and decoder's kernels in CUDA graphs (for the standard model, whose step is bound by
the host launching ~1,500 small kernels). On a CPU the trainer uses channels-last only with bf16,
and there are no CUDA graphs: the float32, bf16 (+ channels-last) and compile paths run there. A
path that fails is a row saying so.
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
    "float32": dict(precision="fp32", channels_last=False),
    "bf16": dict(precision="bf16", channels_last=False),
    "channels_last": dict(precision="fp32", channels_last=True),
    "bf16+channels_last": dict(precision="bf16", channels_last=True),
    "bf16+channels_last+compile": dict(precision="bf16", channels_last=True, compile_mode="default"),
    "bf16+channels_last+cudagraphs": dict(precision="bf16", channels_last=True, compile_mode="reduce-overhead"),
}
CPU_PATHS = ("float32", "bf16", "bf16+channels_last", "bf16+channels_last+compile")


def curve(variant: str, data, device: str, epochs: int, batch_size: int, precision: str, channels_last: bool,
          compile_mode: str | None = None) -> tuple[list[float], float]:
    trainer = Trainer(TrainConfig(variant=variant, device=device, batch_size=batch_size, lr=5e-4, seed=0,
                                  epochs=epochs, beta_neg=16.0, precision=precision, channels_last=channels_last),
                      data)
    if compile_mode is not None:  # in place, as TrainConfig.compile does, with the path's mode
        trainer.model.encoder.compile(mode=compile_mode)
        trainer.model.decoder.compile(mode=compile_mode)
    trainer.train_epoch()  # warm-up epoch (compilation, cuDNN autotuning, graph capture) is not timed
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
    paths = PATHS if args.device.startswith("cuda") else {k: PATHS[k] for k in CPU_PATHS}
    rows = []
    for variant in args.variants.split(","):
        reference, ref_time = curve(variant, data, args.device, args.epochs, args.batch_size, **PATHS["float32"])
        for name, path in paths.items():
            try:
                losses, seconds = (reference, ref_time) if name == "float32" else curve(
                    variant, data, args.device, args.epochs, args.batch_size, **path)
            except Exception as e:  # e.g. a capture that this torch cannot make: a row that says so
                rows.append((variant, name, f"failed: {type(e).__name__}: {str(e).splitlines()[0][:80]}"))
                print(rows[-1], flush=True)
                continue
            worst = max(abs(a - b) / abs(b) for a, b in zip(losses, reference))
            rows.append((variant, name, worst, ref_time / seconds, losses[-1]))
            print(rows[-1], flush=True)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    lines = [f"Measured {datetime.date.today()} on {name}, torch {torch.__version__}, dsprites_small, "
             f"batch {args.batch_size}, {args.epochs} timed epochs after one warm-up epoch.", "",
             "| variant | path | max rel. diff of rec_loss curve vs float32 | speed-up vs float32 | final rec_loss |",
             "|---|---|---:|---:|---:|"]
    lines += [f"| {r[0]} | {r[1]} | {r[2]} | - | - |" if len(r) == 3 else
              f"| {r[0]} | {r[1]} | {r[2]:.3%} | {r[3]:.2f}x | {r[4]:.2f} |" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
