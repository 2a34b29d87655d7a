"""Study overhead: time from a trial's start to its first training step, per trial vs prepared once.

    python bench/bench_study_overhead.py [--trials 4] [--modes render,cache,object_store,cache+reuse]
                                         [--dataset dsprites_small] [--out docs/bench/study_overhead.md]
    python bench/bench_study_overhead.py --device cuda --gpus-per-trial 0.25   # on a GPU machine

Two measurements, both in the table:

1. Real Ray Tune trials (the honest end-to-end figure). A probe trainable, run as sequential
   trials (one at a time, 1 CPU, torch 1 thread) in a Ray instance this script starts, stamps
   the wall clock when it is entered, after importing torch and the project, after the device
   is initialised, after the data set is materialised, after the Trainer (model, optimisers,
   data on the device) is built and after one real training step. A Tune callback stamps when
   the previous trial completed (the slot is free) or, for the first trial, when `fit()` began,
   so "Ray start" covers Tune scheduling, the new worker process and the actor start. Data modes:
   - render: every trial renders dSprites from scratch (its own empty $VAE_STUDY_CACHE);
   - cache: prepared once per node -- the driver renders into an on-disk cache, trials
     memory-map it (what study.launch does: it loads the data set once before the trials);
   - object_store: prepared once per cluster -- the driver `ray.put`s the Dataset, trials
     `ray.get` it (zero-copy from shared memory on the same node);
   - cache+reuse: as cache, with Tune's `reuse_actors=True`: later trials run in the process of
     the one before, so the imports (and on a GPU the CUDA context) are paid once per worker.
     Its row is the median over trials 2..n (trial 1 starts the actor and costs what `cache` does).
2. The same calls timed directly in a fresh process without Ray (spawned, so imports are cold):
   the component costs without Ray's share, plus the checkpoint a trial writes every epoch.

Medians over --trials trials (or processes). Load average is printed with the table: on a
shared machine the absolute figures move with it, the ratios between modes much less.
"""

from __future__ import annotations

import datetime
import multiprocessing
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

STAGES = ("ray_start", "imports", "device_init", "data", "model_build", "first_step")


def _materialise(mode: str, dataset: str, box):
    from trainables.data import load_dataset

    if mode == "object_store":
        import ray

        return ray.get(box[0])
    return load_dataset(dataset)


def _first_step(stamps: dict, mode: str, dataset: str, device: str, box=None, checkpoint: str | None = None):
    """Everything a trial does before its first step, stamping time.time() after each stage."""
    import torch
    import torch._dynamo

    from trainables.trainer import TrainConfig, Trainer

    stamps["imports"] = time.time()
    torch.set_num_threads(1)
    torch.empty(1, device=device)  # CUDA context creation happens here on a GPU
    stamps["device_init"] = time.time()
    data = _materialise(mode, dataset, box)
    stamps["data"] = time.time()
    trainer = Trainer(TrainConfig(variant="beta_vae", dataset=dataset, device=device, batch_size=64), data)
    stamps["model_build"] = time.time()
    trainer._beta_step(trainer.images[:64].float() / data.pixel_max)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    stamps["first_step"] = time.time()
    if checkpoint:
        trainer.save_checkpoint(checkpoint)
        stamps["checkpoint"] = time.time()
    return stamps


def probe(config: dict, box=None) -> None:
    """The Ray trainable: stamps each stage and reports the stamps."""
    stamps = {"entered": time.time()}
    mode = config["mode"].split("+")[0]
    if mode == "render":  # a fresh, empty cache: this trial renders from scratch
        os.environ["VAE_STUDY_CACHE"] = tempfile.mkdtemp(dir=config["cache"])
    else:
        os.environ["VAE_STUDY_CACHE"] = config["cache"]
    from ray import tune

    _first_step(stamps, mode, config["dataset"], config["device"], box)
    tune.report(stamps)


def ray_trials(modes: list[str], trials: int, dataset: str, device: str, gpus: float, workdir: Path) -> dict:
    """{mode: {stage: [seconds per trial]}} from real sequential Ray Tune trials, plus prepare costs."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no progress tables
    import ray
    from ray import tune

    class Stamps(tune.Callback):
        def __init__(self):
            self.completed = []

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.completed.append(time.time())

    import trainables.data  # noqa: F401  (imported before the driver's "prepared once" is timed)

    ray.init(address="local", num_cpus=os.cpu_count(), object_store_memory=150 * 1024**2,
             include_dashboard=False, log_to_driver=False)
    out = {}
    try:
        for mode in modes:
            cache = workdir / f"cache-{mode.replace('+', '-')}"
            cache.mkdir(parents=True, exist_ok=True)
            os.environ["VAE_STUDY_CACHE"] = str(cache)
            box, prepare = None, 0.0
            if not mode.startswith("render"):  # the once-per-node (or per-cluster) preparation, by the driver
                start = time.time()
                data = _materialise("cache", dataset, None)
                box = [ray.put(data)] if mode.startswith("object_store") else None
                prepare = time.time() - start
            callback = Stamps()
            trainable = tune.with_resources(tune.with_parameters(probe, box=box), {"cpu": 1, "gpu": gpus})
            tuner = tune.Tuner(
                trainable,
                param_space={"mode": mode, "dataset": dataset, "device": device, "cache": str(cache)},
                tune_config=tune.TuneConfig(num_samples=trials, max_concurrent_trials=1,
                                            reuse_actors=mode.endswith("+reuse")),
                run_config=tune.RunConfig(name=mode, storage_path=str(workdir / "ray"), verbose=0,
                                          callbacks=[callback]),
            )
            began = time.time()
            results = tuner.fit()
            stamps = sorted((r.metrics for r in results if r.error is None), key=lambda m: m["entered"])
            slot_free = [began] + callback.completed
            rows = {stage: [] for stage in (*STAGES, "total")}
            first = 1 if mode.endswith("+reuse") else 0  # the first trial starts the actor: as `cache`
            for i, s in enumerate(stamps[first:], start=first):
                previous = max(t for t in slot_free if t <= s["entered"]) if i else began
                rows["ray_start"].append(s["entered"] - previous)
                last = s["entered"]
                for stage in STAGES[1:]:
                    rows[stage].append(s[stage] - last)
                    last = s[stage]
                rows["total"].append(s["first_step"] - previous)
            rows["prepare_once"] = [prepare]
            out[mode] = rows
            print(mode, {k: round(statistics.median(v), 3) for k, v in rows.items()}, flush=True)
    finally:
        ray.shutdown()
    return out


def _direct_child(dataset: str, device: str, cache: str, render: bool, checkpoint: str) -> dict:
    stamps = {"entered": time.time()}
    os.environ["VAE_STUDY_CACHE"] = tempfile.mkdtemp(dir=cache) if render else cache
    return _first_step(stamps, "render" if render else "cache", dataset, device, checkpoint=checkpoint)


def direct(trials: int, dataset: str, device: str, workdir: Path) -> dict:
    """{label: {stage: [seconds]}} of the same calls in fresh spawned processes, without Ray."""
    ctx = multiprocessing.get_context("spawn")
    cache = workdir / "cache-direct"
    cache.mkdir(parents=True, exist_ok=True)
    out = {}
    for label, render in (("render", True), ("cache", False)):
        rows = {stage: [] for stage in (*STAGES[1:], "checkpoint")}
        for _ in range(trials + (0 if render else 1)):  # the first cache run fills the cache: dropped
            with ctx.Pool(1) as pool:
                s = pool.apply(_direct_child, (dataset, device, str(cache), render, str(workdir / "ckpt.pt")))
            last = s["entered"]
            for stage in rows:
                rows[stage].append(s[stage] - last)
                last = s[stage]
        if not render:
            rows = {k: v[1:] for k, v in rows.items()}
        out[label] = rows
        print("direct", label, {k: round(statistics.median(v), 3) for k, v in rows.items()}, flush=True)
    return out


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"


def table(ray_rows: dict, direct_rows: dict, args, load: tuple) -> str:
    import ray
    import torch

    med = lambda v: f"{statistics.median(v):.2f}" if v else "-"  # noqa: E731
    lines = [
        f"Measured {datetime.date.today()} with `python bench/bench_study_overhead.py {' '.join(sys.argv[1:])}` "
        f"on {_cpu_name()} ({os.cpu_count()} CPUs) "
        f"({'GPU: ' + torch.cuda.get_device_name() if args.device.startswith('cuda') else 'CPU only'}), "
        f"Python {platform.python_version()}, torch {torch.__version__}, ray {ray.__version__}; data set "
        f"{args.dataset}; 1 CPU and torch 1 thread per trial, trials one at a time. Load average (1 min) "
        f"before / after: {load[0]:.1f} / {load[1]:.1f}. Seconds, median over {args.trials} trials "
        f"({args.trials - 1} for cache+reuse: trials 2..n).",
        "",
        "Real Ray Tune trials (probe trainable; `ray start` = slot free -> trainable entered: Tune scheduling, "
        "new worker process, actor start):",
        "",
        "| data mode | prepared once (driver) | ray start | imports | device init | data | model build "
        "| first step | total to first step |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, rows in ray_rows.items():
        lines.append(f"| {mode} | {med(rows['prepare_once']) if not mode.startswith('render') else '-'} | "
                     + " | ".join(med(rows[s]) for s in (*STAGES, "total")) + " |")
    if direct_rows:
        lines += ["", "The same calls in a fresh process without Ray (spawned; cold imports):", "",
                  "| data mode | imports | device init | data | model build | first step | total | checkpoint save |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, rows in direct_rows.items():
        total = [sum(v) for v in zip(*(rows[s] for s in STAGES[1:]))]
        lines.append(f"| {mode} | " + " | ".join(med(rows[s]) for s in STAGES[1:]) + f" | {med(total)} | "
                     f"{med(rows['checkpoint'])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--modes", default="render,cache,object_store,cache+reuse")
    parser.add_argument("--dataset", default="dsprites_small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--gpus-per-trial", type=float, default=0.0, help="with --device cuda, e.g. 0.25")
    parser.add_argument("--skip-direct", action="store_true")
    parser.add_argument("--out", default="docs/bench/study_overhead.md")
    args = parser.parse_args()
    if args.device.startswith("cuda") and args.gpus_per_trial <= 0:
        args.gpus_per_trial = 0.25
    before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    try:
        ray_rows = ray_trials(args.modes.split(","), args.trials, args.dataset, args.device, args.gpus_per_trial,
                              workdir)
        direct_rows = {} if args.skip_direct else direct(args.trials, args.dataset, args.device, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    text = table(ray_rows, direct_rows, args, (before, os.getloadavg()[0]))
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
