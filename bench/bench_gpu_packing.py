"""Aggregate training throughput of one GPU shared by 1, 2, 4 and 8 small dSprites trials.

    python bench/bench_gpu_packing.py [--packs 1,2,4,8] [--variants beta_vae,sintro_tc] [--seconds 12]
                                      [--out docs/bench/gpu_packing.md]

For each variant and each N of --packs, N Ray Tune trials run at once with `{"GPU": 1/N, "CPU": 1}`
(the fractional GPUs study.launch's --gpus-per-trial gives), all on one GPU. Each trial builds
the real Trainer on the GPU (bf16 autocast and channels-last, the trainer's defaults), trains
one warm-up epoch, waits at a file barrier until all N trials are ready, then runs the trainer's
real `train_epoch` on a 2,048-image dSprites subset for --seconds, stamping the wall clock and
the images trained after every epoch (each epoch ends with the trainer's host sync, so the
stamps are honest). Aggregate images/s = images all trials trained inside the common window
(latest first stamp to earliest last stamp, interpolated) / the window's length; "vs 1 trial"
is that over the N = 1 figure of the same variant in the same run.

It needs a CUDA GPU; without one it stops with a message (exit code 2). Ray is started here
(local, 150 MB object store, no dashboard) and shut down at the end.
"""

from __future__ import annotations

import datetime
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

IMAGES = 2048


def packed_trial(config: dict) -> None:
    """One trial: train for config['seconds'] after a barrier, report (time, images) stamps."""
    import torch
    from ray import tune

    from trainables.data import load_dataset
    from trainables.trainer import TrainConfig, Trainer

    torch.set_num_threads(1)
    data = load_dataset("dsprites_small")
    data.images = data.images[:IMAGES]
    # beta_neg 16 as in bench_gpu_paths: a throughput run should not stop on a Soft-Intro divergence
    trainer = Trainer(TrainConfig(variant=config["variant"], device=config["device"], batch_size=64,
                                  beta_neg=16.0, seed=config["seed"]), data)
    trainer.train_epoch()  # warm-up: cuDNN autotuning, allocator
    barrier = Path(config["barrier"])
    Path(barrier, f"ready-{os.getpid()}-{time.time_ns()}").touch()
    give_up = time.time() + 120  # a trial that never starts must not hold the others forever
    while len(list(barrier.glob("ready-*"))) < config["n"] and time.time() < give_up:
        time.sleep(0.05)
    stamps, images = [(time.time(), 0)], 0
    while time.time() - stamps[0][0] < config["seconds"]:
        trainer.train_epoch()
        images += IMAGES // 64 * 64
        stamps.append((time.time(), images))
    memory = torch.cuda.max_memory_reserved() / 2**20 if trainer.device.type == "cuda" else 0.0
    tune.report({"stamps": stamps, "memory_mb": memory})


def aggregate(runs: list[list[tuple[float, int]]]) -> tuple[float, float]:
    """(aggregate images/s inside the common window, window seconds)."""
    lo, hi = max(r[0][0] for r in runs), min(r[-1][0] for r in runs)
    if hi <= lo:
        raise RuntimeError("the trials did not overlap: raise --seconds")

    def at(run, t):  # cumulative images at time t, linear between stamps
        for (t0, n0), (t1, n1) in zip(run, run[1:]):
            if t0 <= t <= t1:
                return n0 + (n1 - n0) * (t - t0) / (t1 - t0)
        raise ValueError(t)

    return sum(at(r, hi) - at(r, lo) for r in runs) / (hi - lo), hi - lo


def pack(n: int, variant: str, seconds: float, device: str = "cuda", cpus: float = 1.0) -> dict:
    """N trials of `variant` at once on one device (GPU share 1/N); Ray must be initialised."""
    from ray import tune

    with tempfile.TemporaryDirectory(prefix="bench-pack-") as folder:
        gpu = 1.0 / n if device.startswith("cuda") else 0.0
        tuner = tune.Tuner(
            tune.with_resources(packed_trial, {"cpu": cpus, "gpu": gpu}),
            param_space={"variant": variant, "device": device, "seconds": seconds, "n": n,
                         "barrier": folder, "seed": tune.grid_search(list(range(n)))},
            tune_config=tune.TuneConfig(max_concurrent_trials=n),
            run_config=tune.RunConfig(name=f"pack{n}-{variant}", storage_path=f"{folder}/ray", verbose=0),
        )
        results = tuner.fit()
    errors = [r.error for r in results if r.error is not None]
    if errors:
        raise RuntimeError(f"{len(errors)} trial(s) failed: {errors[0]}")
    runs = [r.metrics["stamps"] for r in results]
    total, window = aggregate(runs)
    per_trial = [(r[-1][1] - r[0][1]) / (r[-1][0] - r[0][0]) for r in runs]
    return {"variant": variant, "n": n, "aggregate": total, "window_s": window,
            "per_trial": statistics.median(per_trial),
            "memory_mb": max(r.metrics["memory_mb"] for r in results)}


def table(rows: list[dict], seconds: float, load: tuple) -> str:
    import ray
    import torch

    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU (plumbing check only)"
    base = {r["variant"]: r["aggregate"] for r in rows if r["n"] == 1}
    lines = [
        f"Measured {datetime.date.today()} on {name} ({os.cpu_count()} CPUs), torch {torch.__version__}, "
        f"ray {ray.__version__}; dSprites 64x64, batch 64, {IMAGES}-image epochs, bf16 autocast + channels-last; "
        f"1 CPU per trial; {seconds:g} s of training per trial after a barrier. Load average (1 min) "
        f"before / after: {load[0]:.1f} / {load[1]:.1f}.",
        "",
        "| variant | trials on the GPU | GPU share each | images/s per trial (median) | aggregate images/s "
        "| vs 1 trial | common window (s) | peak memory reserved per trial (MiB, + CUDA context) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['variant']} | {r['n']} | {1 / r['n']:.3g} | {r['per_trial']:.0f} | {r['aggregate']:.0f} | "
              f"{r['aggregate'] / base[r['variant']]:.2f}x | {r['window_s']:.1f} | {r['memory_mb']:.0f} |"
              for r in rows]
    return "\n".join(lines) + "\n"


def main(packs: list[int], variants: list[str], seconds: float, out: str, device: str = "cuda") -> None:
    import ray

    from trainables.data import load_dataset

    before = os.getloadavg()[0]
    load_dataset("dsprites_small")  # fill the on-disk cache once, before the trials
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    ray.init(address="local", num_cpus=max(os.cpu_count() or 1, max(packs)), num_gpus=1 if device == "cuda" else 0,
             object_store_memory=150 * 1024**2, include_dashboard=False, log_to_driver=False)
    rows = []
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    try:
        for variant in variants:
            for n in packs:
                rows.append(pack(n, variant, seconds, device))
                print(rows[-1], flush=True)
                text = table(rows, seconds, (before, os.getloadavg()[0]))
                Path(out).write_text(text)  # after every round: a run cut short keeps its rows
    finally:
        ray.shutdown()
    print(text)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packs", default="1,2,4,8", help="trials sharing the GPU, one round each")
    parser.add_argument("--variants", default="beta_vae,sintro_tc")
    parser.add_argument("--seconds", type=float, default=12.0, help="training seconds per trial after the barrier")
    parser.add_argument("--out", default="docs/bench/gpu_packing.md")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import torch

    if not torch.cuda.is_available():
        print("bench_gpu_packing: no CUDA GPU is visible (torch.cuda.is_available() is False; torch "
              f"{torch.__version__}). This benchmark measures one GPU shared by several trials: run it, or "
              "bench/gpu_check.sh, on a GPU machine with a CUDA build of torch.", file=sys.stderr)
        sys.exit(2)
    main([int(n) for n in args.packs.split(",")], args.variants.split(","), args.seconds, args.out)
