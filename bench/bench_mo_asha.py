"""MO-ASHA against FIFO on one fixed set of configurations: hypervolume against trial-epochs.

    python bench/bench_mo_asha.py [--configs 16] [--epochs 9] [--train-images 2000] [--space sintro_tc]
                                  [--precision auto] [--out docs/bench/mo_asha.md]

--configs configurations are drawn once from the search space (Optuna's RandomSampler, seed 0;
every training with seed 0), then trained twice through Ray Tune with the project's trainable,
two at a time (1 CPU and 1 torch thread each, actors reused, in the order drawn): once FIFO,
every configuration to its last epoch, and once with study.scheduler.MultiObjectiveASHA over
(MIG up, rec_loss down) with the launcher's defaults (grace period 1, reduction factor 3). Both runs measure the `fast`
metrics at the rungs and after the last epoch, so the two see the same numbers wherever both
trained.

Reported: trial-epochs spent, wall time, and the hypervolume of the final Pareto front -- the
trials that trained every epoch, as the study tells Optuna -- over the reference point
(MIG 0, rec_loss 720 nats: a decoder that paints every pixel at the data's mean intensity,
docs/bench/report_reading.md). A stopped trial's values are of a shorter training and do not
count; the table also gives the hypervolume they would add. The plot (PNG next to --out) shows
both fronts and, per run, the hypervolume reached against the trial-epochs spent so far.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile
import time
from pathlib import Path

import optuna

from search_spaces import get_space

REFERENCE = (0.0, 720.0)  # (MIG, rec_loss): worse than anything that learned
OBJECTIVES = [("mig", "max"), ("rec_loss", "min")]


def configurations(space: str, n: int, seed: int = 0) -> list[dict]:
    """n configurations of `space` drawn at random (its constants included), each with seed 0."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    study.set_user_attr("dataset", "dsprites_small")
    configs = []
    for _ in range(n):
        trial = study.ask()
        constants = get_space(space)(trial) or {}
        configs.append({**trial.params, **constants, "seed": 0})
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return configs


def run(configs: list[dict], scheduler: str, args: argparse.Namespace, storage: Path) -> list[dict]:
    """Train every configuration through Ray Tune; returns one record per trial."""
    from ray import tune

    from study.scheduler import MultiObjectiveASHA, rung_epochs
    from trainables.trainable import Resources

    rungs = rung_epochs(args.epochs, 1, 3.0)
    base = {"dataset": "dsprites_small", "epochs": args.epochs, "train_images": args.train_images,
            "metrics_every": args.epochs, "metrics_at": rungs, "final_metrics": "fast",
            "objectives": [list(o) for o in OBJECTIVES], "precision": args.precision}
    asha = MultiObjectiveASHA(OBJECTIVES, max_t=args.epochs) if scheduler == "asha" else None
    tuner = tune.Tuner(
        tune.with_resources(_configured, Resources(1, 0)),
        param_space={"base": base, "config": tune.grid_search(configs)},
        # 2 CPUs, 1 per trial: two at a time (a paused trial frees its CPU; no concurrency limiter)
        tune_config=tune.TuneConfig(scheduler=asha, reuse_actors=True),
        run_config=tune.RunConfig(name=scheduler, storage_path=str(storage), verbose=0),
    )
    start = time.monotonic()
    grid = tuner.fit()
    wall = time.monotonic() - start
    records = []
    for result in grid:
        history = result.metrics_dataframe
        index = configs.index(result.config["config"])
        rows = history[["epoch", "mig", "rec_loss", "timestamp"]].to_dict("records")
        records.append({"index": index, "scheduler": scheduler, "history": rows, "wall_s": wall,
                        "completed": result.metrics.get("outcome") == "completed"})
    return sorted(records, key=lambda r: r["index"])


def _configured(config: dict) -> None:
    """The trainable, with the benchmark's shared settings and one configuration merged."""
    from trainables.trainable import train_vae

    train_vae({**config["base"], **config["config"]})


def hypervolume(points: list[tuple[float, float]], reference: tuple[float, float] = REFERENCE) -> float:
    """Area dominated by (MIG up, rec_loss down) points and bounded by the reference point."""
    inside = sorted({(m, r) for m, r in points if m > reference[0] and r < reference[1]}, key=lambda p: -p[0])
    area, best_rec = 0.0, reference[1]
    for i, (mig, rec) in enumerate(inside):
        best_rec = min(best_rec, rec)
        next_mig = inside[i + 1][0] if i + 1 < len(inside) else reference[0]
        area += (mig - next_mig) * (reference[1] - best_rec)
    return area


def final_point(record: dict) -> tuple[float, float]:
    last = record["history"][-1]
    return float(last["mig"]), float(last["rec_loss"])


def hv_over_time(records: list[dict]) -> list[tuple[int, float]]:
    """(trial-epochs spent, hypervolume of the trials completed by then), in the order epochs ended."""
    events = sorted((row["timestamp"], r["index"], row["epoch"]) for r in records for row in r["history"])
    done_at = {r["index"]: r["history"][-1]["timestamp"] for r in records if r["completed"]}
    curve, spent = [], 0
    for stamp, _, _ in events:
        spent += 1
        front = [final_point(r) for r in records if r["completed"] and done_at[r["index"]] <= stamp]
        curve.append((spent, hypervolume(front)))
    return curve


def summary(records: list[dict]) -> dict:
    completed = [final_point(r) for r in records if r["completed"]]
    everything = [final_point(r) for r in records]
    return {"trial_epochs": sum(len(r["history"]) for r in records), "completed": len(completed),
            "hv": hypervolume(completed), "hv_with_stopped": hypervolume(everything), "wall_s": records[0]["wall_s"]}


def markdown(runs: dict[str, list[dict]], configs: list[dict], args: argparse.Namespace, load: tuple) -> str:
    fifo, asha = summary(runs["fifo"]), summary(runs["asha"])
    lines = [f"Measured {datetime.datetime.now():%Y-%m-%d %H:%M} with `python bench/bench_mo_asha.py --configs "
             f"{args.configs} --epochs {args.epochs} --train-images {args.train_images} --space {args.space} "
             f"--precision {args.precision}`: {args.configs} configurations of `{args.space}` (RandomSampler seed 0, "
             f"training seed 0), 2 trials at a time, 1 torch thread each, precision {args.precision} in both runs. "
             f"Reference point of the hypervolume: "
             f"MIG {REFERENCE[0]:g}, rec_loss {REFERENCE[1]:g} nats. Load average (1 min) before / after: "
             f"{load[0]:.1f} / {load[1]:.1f}.", "",
             "| run | trial-epochs | trials completed | hypervolume (completed) | with stopped trials' last values "
             "| wall time |", "|---|---:|---:|---:|---:|---:|"]
    for name, s in (("fifo", fifo), ("mo-asha", asha)):
        lines.append(f"| {name} | {s['trial_epochs']} | {s['completed']} | {s['hv']:.2f} | {s['hv_with_stopped']:.2f} "
                     f"| {s['wall_s'] / 60:.1f} min |")
    lines += ["", f"MO-ASHA: **{asha['hv'] / fifo['hv']:.0%} of FIFO's hypervolume at "
                  f"{asha['trial_epochs'] / fifo['trial_epochs']:.0%} of its trial-epochs** "
                  f"({asha['wall_s'] / fifo['wall_s']:.0%} of its wall time).", ""]
    keys = sorted({k for c in configs for k in c if k != "seed"})
    lines += ["| # | " + " | ".join(keys) + " | FIFO MIG | FIFO rec_loss | MO-ASHA epochs | MO-ASHA MIG "
              "| MO-ASHA rec_loss |", "|" + "---|" * (len(keys) + 6)]
    for f, a in zip(runs["fifo"], runs["asha"]):
        c = configs[f["index"]]
        cells = [f"{c[k]:.3g}" if isinstance(c.get(k), float) else str(c.get(k, "")) for k in keys]
        fm, fr = final_point(f)
        am, ar = final_point(a)
        lines.append(f"| {f['index']} | " + " | ".join(cells) + f" | {fm:.3f} | {fr:.0f} | {len(a['history'])}"
                     f"{'' if a['completed'] else ' (stopped)'} | {am:.3f} | {ar:.0f} |")
    return "\n".join(lines) + "\n"


def plot(runs: dict[str, list[dict]], path: Path) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("final values (filled: trained every epoch; no diverged)",
                                                        "hypervolume against trial-epochs spent"))
    colours = {"fifo": "#1f77b4", "asha": "#d62728"}
    for name, records in runs.items():
        label = "FIFO" if name == "fifo" else "MO-ASHA"
        # a diverged trial reports a sentinel rec_loss (1e9) that would squash the axis: left out
        pts = [(final_point(r), r["completed"]) for r in records if final_point(r)[1] < 1e6]
        fig.add_trace(go.Scatter(x=[p[0][1] for p in pts], y=[p[0][0] for p in pts], mode="markers", name=label,
                                 marker={"color": colours[name], "size": 9,
                                         "symbol": ["circle" if done else "circle-open" for _, done in pts]}),
                      row=1, col=1)
        curve = hv_over_time(records)
        fig.add_trace(go.Scatter(x=[c[0] for c in curve], y=[c[1] for c in curve], mode="lines", name=label,
                                 line={"color": colours[name], "shape": "hv"}, showlegend=False), row=1, col=2)
    fig.update_xaxes(title_text="rec_loss (nats/image, lower is better)", row=1, col=1)
    fig.update_yaxes(title_text="MIG (higher is better)", row=1, col=1)
    fig.update_xaxes(title_text="trial-epochs", row=1, col=2)
    fig.update_yaxes(title_text=f"hypervolume over (MIG {REFERENCE[0]:g}, rec_loss {REFERENCE[1]:g})", row=1, col=2)
    fig.update_layout(width=1100, height=420, template="plotly_white", margin={"t": 40, "b": 50, "l": 60, "r": 20})
    fig.write_image(str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--train-images", type=int, default=2000)
    parser.add_argument("--space", default="sintro_tc")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                        help="TrainConfig.precision of every training (both runs alike)")
    parser.add_argument("--out", default="docs/bench/mo_asha.md")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    configs = configurations(args.space, args.configs)
    before = os.getloadavg()[0]
    ray.init(address="local", num_cpus=2, object_store_memory=150 * 1024**2, include_dashboard=False,
             log_to_driver=False)
    runs = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-mo-asha-") as storage:
            for scheduler in ("asha", "fifo"):
                runs[scheduler] = run(configs, scheduler, args, Path(storage))
                print(scheduler, summary(runs[scheduler]), flush=True)
                # kept as each run ends, so a stopped benchmark loses at most the run in progress
                Path(args.out).with_suffix(".json").write_text(json.dumps({"configs": configs, "runs": runs},
                                                                          default=str))
    finally:
        ray.shutdown()
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps({"configs": configs, "runs": runs}, default=str))
    text = markdown(runs, configs, args, (before, os.getloadavg()[0]))
    print(text)
    out.write_text(text)
    plot(runs, out.with_suffix(".png"))


if __name__ == "__main__":
    main()
