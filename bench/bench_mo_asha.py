"""MO-ASHA against FIFO on one fixed set of configurations: hypervolume against trial-epochs.

    python bench/bench_mo_asha.py [--configs 16] [--epochs 9] [--train-images 2000] [--space sintro_tc]
                                  [--precision auto] [--grace-period 1] [--reduction-factor 3] [--plain]
                                  [--sample-seed 0] [--reuse earlier.json] [--out docs/bench/mo_asha.md]

--configs configurations are drawn once from the search space (Optuna's RandomSampler, seed
--sample-seed; every training with seed 0), then trained twice through Ray Tune with the project's trainable,
two at a time (1 CPU and 1 torch thread each, actors reused, in the order drawn): once FIFO,
every configuration to its last epoch, and once with study.scheduler.MultiObjectiveASHA over
(MIG up, rec_loss down) with --grace-period and --reduction-factor (the launcher's defaults: 1
and 3). MO-ASHA measures the `fast` metrics at its rungs and after the last epoch; FIFO measures
them after every epoch, so that its curves can replay any rung schedule. Measuring does not
change the training (the metrics draw from their own generators), so the two runs see the same
numbers wherever both trained; the benchmark checks that it did.

--reuse takes the runs of an earlier JSON whose configurations and training settings are these
(a training is deterministic: the same seed gives the same curve), so that a second scheduler
setting costs only its own run.

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
import heapq
import json
import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import optuna

from search_spaces import get_space
from study.scheduler import reaches_the_end, rung_epochs
from trainables.trainable import SENTINEL_MIN

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

    from study.scheduler import MultiObjectiveASHA
    from trainables.trainable import Resources

    rungs = rung_epochs(args.epochs, args.grace_period, args.reduction_factor)
    base = {"dataset": "dsprites_small", "epochs": args.epochs, "train_images": args.train_images,
            "metrics_every": 1 if scheduler == "fifo" else args.epochs, "metrics_at": rungs,
            "final_metrics": "fast", "objectives": [list(o) for o in OBJECTIVES], "precision": args.precision}
    asha = (MultiObjectiveASHA(OBJECTIVES, max_t=args.epochs, grace_period=args.grace_period,
                               reduction_factor=args.reduction_factor, keep_extremes=not args.plain)
            if scheduler == "asha" else None)
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
        columns = ["epoch", "metrics_epoch", "outcome", "mig", "rec_loss", "timestamp", "time_this_iter_s"]
        rows = history[columns].to_dict("records")
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


def point_at(record: dict, epoch: int | None = None) -> tuple[float, float]:
    """(MIG, rec_loss) a trial reported after `epoch` (None: its last report)."""
    row = record["history"][-1 if epoch is None else epoch - 1]
    return float(row["mig"]), float(row["rec_loss"])


def final_point(record: dict) -> tuple[float, float]:
    return point_at(record)


def diverged(row: dict) -> bool:
    """A report with the trainable's divergence sentinel (runs before `outcome` was kept lack it)."""
    return row["rec_loss"] >= SENTINEL_MIN


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


class _ReplayedTrial:
    """What MultiObjectiveASHA reads and writes of a Ray Tune trial."""

    def __init__(self, trial_id: str) -> None:
        from ray.tune.experiment import Trial

        self.trial_id, self.status = trial_id, Trial.PENDING

    def set_status(self, status: str) -> None:
        self.status = status


class _ReplayController:
    """What MultiObjectiveASHA asks of Tune's controller; every configuration is already added."""

    def __init__(self, trials: list[_ReplayedTrial]) -> None:
        self.trials = trials
        self.search_alg = SimpleNamespace(is_finished=lambda: True)

    def get_trials(self) -> list[_ReplayedTrial]:
        return self.trials

    def stop_trial(self, trial: _ReplayedTrial) -> None:
        from ray.tune.experiment import Trial

        trial.status = Trial.TERMINATED


def replay(fifo: list[dict], max_t: int, grace_period: int, reduction_factor: float, *, keep_extremes: bool = True,
           slots: int = 2) -> dict:
    """The project's MultiObjectiveASHA run on FIFO's curves instead of on trainings: `slots`
    trials at a time, each epoch taking as long as it took in FIFO, the configurations in FIFO's
    order. A training is deterministic, so a trial the scheduler runs to epoch k reports what
    FIFO's did at epoch k; FIFO measured the metrics after every epoch, so any rung can be read.
    Returns the trial-epochs spent and the hypervolume of the trials that trained every epoch."""
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    from study.scheduler import MultiObjectiveASHA

    curves = {str(r["index"]): r["history"][:max_t] for r in fifo}
    scheduler = MultiObjectiveASHA(OBJECTIVES, max_t=max_t, grace_period=grace_period,
                                   reduction_factor=reduction_factor, keep_extremes=keep_extremes)
    trials = [_ReplayedTrial(str(r["index"])) for r in fifo]
    controller = _ReplayController(trials)
    trained = dict.fromkeys(curves, 0)
    running: list[tuple[float, str, _ReplayedTrial]] = []  # (when its epoch ends, id, trial)
    now = 0.0
    while True:
        while len(running) < slots and (trial := scheduler.choose_trial_to_run(controller)) is not None:
            trial.status = Trial.RUNNING
            heapq.heappush(running, (now + curves[trial.trial_id][trained[trial.trial_id]]["time_this_iter_s"],
                                     trial.trial_id, trial))
        if not running:
            break
        now, trial_id, trial = heapq.heappop(running)
        result = curves[trial_id][trained[trial_id]]
        trained[trial_id] += 1
        decision = scheduler.on_trial_result(controller, trial, result)
        if trained[trial_id] == len(curves[trial_id]):  # the last epoch, or a divergence
            scheduler.on_trial_complete(controller, trial, result)
            trial.status = Trial.TERMINATED
        elif decision == TrialScheduler.PAUSE:
            trial.status = Trial.PAUSED
        else:
            heapq.heappush(running, (now + curves[trial_id][trained[trial_id]]["time_this_iter_s"], trial_id, trial))
    completed = [r for r in fifo if trained[str(r["index"])] == max_t and not diverged(curves[str(r["index"])][-1])]
    return {"trial_epochs": sum(trained.values()), "hv": hypervolume([point_at(r, max_t) for r in completed]),
            "completed": sorted(r["index"] for r in completed)}


def fifo_hypervolume(fifo: list[dict], max_t: int) -> float:
    """FIFO's hypervolume at epoch max_t: every trial that trained that long."""
    return hypervolume([point_at(r, max_t) for r in fifo if len(r["history"]) >= max_t])


def accepted_schedules(max_t: int, configs: int, grace_periods, factors):
    """(grace period, reduction factor, rungs) the launcher accepts for `configs` configurations:
    at least one rung, and enough configurations for one to pass every rung."""
    for grace in grace_periods:
        for factor in factors:
            rungs = rung_epochs(max_t, grace, factor)
            if rungs and reaches_the_end(configs, rungs, factor):
                yield grace, factor, rungs


def replay_table(fifo: list[dict], max_t: int, grace_periods: list[int], factors: list[float]) -> list[str]:
    """Markdown rows: each (grace period, reduction factor) replayed on FIFO's first max_t epochs,
    with the plain promotion rule and with keep_extremes, as shares of FIFO's trial-epochs and
    hypervolume over the same max_t epochs; settings with too few configurations for one to pass
    every rung are left out, as the launcher refuses them."""
    whole = fifo_hypervolume(fifo, max_t)
    lines = ["| grace period | reduction factor | rungs (epochs) | plain: trial-epochs | plain: hypervolume "
             "| keep_extremes: trial-epochs | keep_extremes: hypervolume | keep_extremes: trained every epoch |",
             "|---:|---:|---|---:|---:|---:|---:|---|"]
    for grace, factor, rungs in accepted_schedules(max_t, len(fifo), grace_periods, factors):
        cells = []
        for keep in (False, True):
            r = replay(fifo, max_t, grace, factor, keep_extremes=keep)
            cells += [f"{r['trial_epochs']} ({r['trial_epochs'] / (max_t * len(fifo)):.0%})",
                      f"{r['hv']:.2f} ({r['hv'] / whole:.0%})"]
        lines.append(f"| {grace} | {factor:g} | {', '.join(map(str, rungs))} | " + " | ".join(cells)
                     + f" | {', '.join(f'#{i}' for i in r['completed'])} |")
    return lines


def what_the_goal_needs(fifo: list[dict], max_t: int, share: float = 0.9) -> list[str]:
    """Markdown: the smallest sets of completed FIFO trials that reach `share` of FIFO's
    hypervolume at epoch max_t (a scheduler must train one of them to the end), with the best
    share reachable without each member, and where each member stood at the early epochs: its rank
    in each objective and its non-dominated front among the configurations (1 = best; a trial that
    had diverged by then ranks last)."""
    import itertools

    import numpy as np

    from analysis.stats import pareto_ranks

    final = {r["index"]: point_at(r, max_t) for r in fifo if len(r["history"]) >= max_t}
    useful = [i for i, (m, rec) in final.items() if m > REFERENCE[0] and rec < REFERENCE[1]]
    whole = hypervolume(list(final.values()))
    share_of = lambda trials: hypervolume([final[i] for i in trials]) / whole  # noqa: E731
    smallest = next(sets for k in range(1, len(useful) + 1)
                    if (sets := [c for c in itertools.combinations(useful, k) if share_of(c) >= share]))
    members = sorted({i for c in smallest for i in c})
    without = {i: max(share_of(c) for k in range(1, len(useful))
                      for c in itertools.combinations([j for j in useful if j != i], k)) for i in members}
    lines = [f"The smallest sets of completed trials with at least {share:.0%} of FIFO's hypervolume at epoch "
             f"{max_t}: " + "; ".join("{" + ", ".join(f"#{i}" for i in c) + "}" for c in smallest)
             + ". The best share without each member: " + ", ".join(f"#{i} {without[i]:.0%}" for i in members)
             + ". Where they stood earlier, among all configurations (rank in MIG / rank in rec_loss / front):"]
    epochs = [e for e in (1, 2, 3, 6, 9, 18) if e < max_t]
    lines += ["", "| trial | " + " | ".join(f"epoch {e}" for e in epochs) + " |", "|---|" + "---|" * len(epochs)]
    for i in members:
        cells = []
        for e in epochs:
            costs = np.array([[-r["history"][e - 1]["mig"], r["history"][e - 1]["rec_loss"]]
                              if len(r["history"]) >= e and not diverged(r["history"][e - 1])
                              else [np.inf, np.inf] for r in fifo])
            row = [r["index"] for r in fifo].index(i)
            ranks = [1 + int((costs[:, k] < costs[row, k]).sum()) for k in range(2)]
            cells.append(f"{ranks[0]} / {ranks[1]} / {pareto_ranks(costs, [False, False])[row]}")
        lines.append(f"| #{i} | " + " | ".join(cells) + " |")
    return lines


def rank_agreement(fifo: list[dict], max_t: int) -> list[str]:
    """Markdown rows: Spearman rank correlation of each objective at epoch e with its value at max_t."""
    import pandas as pd

    finished = [r for r in fifo if len(r["history"]) >= max_t and not diverged(r["history"][max_t - 1])]
    epochs = [e for e in (1, 2, 3, 4, 6, 9, 12, 18) if e < max_t]
    lines = ["| objective | " + " | ".join(f"epoch {e}" for e in epochs) + " |", "|---|" + "---:|" * len(epochs)]
    for metric, _ in OBJECTIVES:
        final = pd.Series([r["history"][max_t - 1][metric] for r in finished])
        cells = [pd.Series([r["history"][e - 1][metric] for r in finished]).corr(final, method="spearman")
                 for e in epochs]
        lines.append(f"| {metric} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
    return lines


def markdown(runs: dict[str, list[dict]], configs: list[dict], args: argparse.Namespace, load: tuple,
             reused: set[str]) -> str:
    fifo, asha = summary(runs["fifo"]), summary(runs["asha"])
    ended = {name: datetime.datetime.fromtimestamp(max(row["timestamp"] for r in records for row in r["history"]))
             for name, records in runs.items()}
    lines = [f"Runs ended {ended['fifo']:%Y-%m-%d %H:%M} (FIFO) and {ended['asha']:%Y-%m-%d %H:%M} (MO-ASHA); "
             f"run with `python bench/bench_mo_asha.py --configs "
             f"{args.configs} --epochs {args.epochs} --train-images {args.train_images} --space {args.space} "
             f"--precision {args.precision} --grace-period {args.grace_period} --reduction-factor "
             f"{args.reduction_factor:g}{' --plain' if args.plain else ''}"
             f"{f' --sample-seed {args.sample_seed}' if args.sample_seed else ''}`: {args.configs} configurations of "
             f"`{args.space}` (RandomSampler seed {args.sample_seed}, "
             f"training seed 0), 2 trials at a time, 1 torch thread each, precision {args.precision} in both runs. "
             f"Reference point of the hypervolume: "
             f"MIG {REFERENCE[0]:g}, rec_loss {REFERENCE[1]:g} nats."
             + (f" Load average (1 min) before / after the run made here: {load[0]:.1f} / {load[1]:.1f}."
                if len(reused) < len(runs) else "")
             + (f" Taken from `{args.reuse}` (same configurations and training settings, not run again): "
                f"{' and '.join(sorted(reused))}." if reused else ""), "",
             "| run | trial-epochs | trials completed | hypervolume (completed) | with stopped trials' last values "
             "| wall time |", "|---|---:|---:|---:|---:|---:|"]
    for name, s in (("fifo", fifo), ("mo-asha", asha)):
        lines.append(f"| {name} | {s['trial_epochs']} | {s['completed']} | {s['hv']:.2f} | {s['hv_with_stopped']:.2f} "
                     f"| {s['wall_s'] / 60:.1f} min |")
    lines += ["", f"MO-ASHA: **{asha['hv'] / fifo['hv']:.0%} of FIFO's hypervolume at "
                  f"{asha['trial_epochs'] / fifo['trial_epochs']:.0%} of its trial-epochs** "
                  f"({asha['wall_s'] / fifo['wall_s']:.0%} of its wall time; FIFO's includes the `fast` metrics after "
                  "every epoch, for the replay below, MO-ASHA's only at its rungs).", ""]
    at_same = max((hv for spent, hv in hv_over_time(runs["fifo"]) if spent <= asha["trial_epochs"]), default=0.0)
    lines += [f"FIFO after the same {asha['trial_epochs']} trial-epochs (its configurations in the order drawn, "
              f"two at a time): hypervolume {at_same:.2f}, {at_same / fifo['hv']:.0%} of its final."]
    reached = next((spent for spent, hv in hv_over_time(runs["asha"]) if hv >= 0.9 * fifo["hv"]), None)
    lines += ["On MO-ASHA's curve of hypervolume against trial-epochs, 90% of FIFO's final hypervolume " + (
        f"was reached after {reached} trial-epochs ({reached / fifo['trial_epochs']:.0%} of FIFO's); the rest "
        "of its spend added less than the last 10%." if reached else "was never reached."), ""]
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
    same, pairs = agreement(runs)
    lines += ["", f"Both runs saw the same numbers: MO-ASHA's rec_loss equals FIFO's at {same[0]} of the {pairs[0]} "
                  f"(trial, epoch) pairs both trained, its MIG at {same[1]} of the {pairs[1]} pairs where it measured "
                  "MIG.", "", f"Replayed on FIFO's curves ({args.epochs} epochs; `replay`: the same scheduler "
                  "code, each epoch as long as it took in FIFO; not runs. Shares: of configurations x epochs, "
                  "and of FIFO's hypervolume at that epoch):", ""]
    factors = [2.0, 3.0, 4.0]
    lines += replay_table(runs["fifo"], args.epochs, [g for g in (1, 2, 3, 5, 9) if g < args.epochs], factors)
    for horizon in (h for h in (9, 12) if h < args.epochs):  # the README main job's horizons, before and now
        lines += ["", f"The same on FIFO's first {horizon} epochs:", ""]
        lines += replay_table(runs["fifo"], horizon, [1, 2, 3, 4], factors)
    lines += ["", *what_the_goal_needs(runs["fifo"], args.epochs)]
    for horizon in (h for h in (9, 12) if h < args.epochs):
        lines += ["", *what_the_goal_needs(runs["fifo"], horizon)]
    lines += ["", "Spearman rank correlation of each objective at epoch e with its value at the last epoch "
                  "(FIFO's trials that did not diverge):", ""]
    lines += rank_agreement(runs["fifo"], args.epochs)
    return "\n".join(lines) + "\n"


def agreement(runs: dict[str, list[dict]]) -> tuple[tuple[int, int], tuple[int, int]]:
    """How many (trial, epoch) values of MO-ASHA equal FIFO's: (rec_loss, MIG where measured),
    each as (equal, compared)."""
    same, pairs = [0, 0], [0, 0]
    for f, a in zip(runs["fifo"], runs["asha"]):
        for fa, aa in zip(f["history"], a["history"]):
            pairs[0] += 1
            same[0] += fa["rec_loss"] == aa["rec_loss"]
            if aa.get("metrics_epoch") == aa["epoch"]:
                pairs[1] += 1
                same[1] += fa["mig"] == aa["mig"]
    return (same[0], same[1]), (pairs[0], pairs[1])


def plot(runs: dict[str, list[dict]], path: Path) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("final values (filled: trained every epoch; no diverged)",
                                                        "hypervolume against trial-epochs spent"))
    colours = {"fifo": "#1f77b4", "asha": "#d62728"}
    for name, records in runs.items():
        label = "FIFO" if name == "fifo" else "MO-ASHA"
        # a diverged trial reports a sentinel rec_loss (1e9) that would squash the axis: left out
        pts = [(final_point(r), r["completed"]) for r in records if not diverged(r["history"][-1])]
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


def settings(args: argparse.Namespace) -> dict:
    """What a run's curves depend on: a reused run must have been trained with these."""
    drawn = {"sample_seed": args.sample_seed} if args.sample_seed else {}  # absent from runs before the flag
    return {**{k: getattr(args, k) for k in ("configs", "epochs", "train_images", "space", "precision")}, **drawn}


def asha_settings(args: argparse.Namespace) -> list:
    return [args.grace_period, args.reduction_factor, not args.plain]


def reused_runs(path: str | None, configs: list[dict], args: argparse.Namespace) -> dict[str, list[dict]]:
    """The runs of an earlier benchmark JSON; FIFO's only when the ASHA settings differ."""
    if path is None:
        return {}
    earlier = json.loads(Path(path).read_text())
    if earlier.get("configs") != configs or earlier.get("settings", {}).get("training") != settings(args):
        raise SystemExit(f"--reuse {path}: its configurations or training settings differ from these; "
                         "run without --reuse")
    asha = earlier["settings"].get("asha", [])
    asha = asha if len(asha) == 3 else [*asha, False]  # written before keep_extremes existed: the plain rule
    same_asha = asha == asha_settings(args)
    return {name: records for name, records in earlier["runs"].items() if name == "fifo" or same_asha}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--train-images", type=int, default=2000)
    parser.add_argument("--space", default="sintro_tc")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                        help="TrainConfig.precision of every training (both runs alike)")
    parser.add_argument("--grace-period", type=int, default=1, help="MO-ASHA's first rung, in epochs")
    parser.add_argument("--reduction-factor", type=float, default=3.0, help="MO-ASHA: 1 in this many passes a rung")
    parser.add_argument("--plain", action="store_true",
                        help="MO-ASHA without keep_extremes: the top n // reduction factor of a rung alone")
    parser.add_argument("--sample-seed", type=int, default=0, help="the RandomSampler seed of the configurations")
    parser.add_argument("--reuse", help="an earlier run's JSON: take its runs instead of training them again")
    parser.add_argument("--out", default="docs/bench/mo_asha.md")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    configs = configurations(args.space, args.configs, args.sample_seed)
    runs = reused_runs(args.reuse, configs, args)
    reused = set(runs)
    out = Path(args.out)
    record = {"settings": {"training": settings(args), "asha": asha_settings(args)},
              "configs": configs, "runs": runs}
    before = os.getloadavg()[0]
    if len(runs) < 2:
        ray.init(address="local", num_cpus=2, object_store_memory=150 * 1024**2, include_dashboard=False,
                 log_to_driver=False)
        try:
            with tempfile.TemporaryDirectory(prefix="bench-mo-asha-") as storage:
                for scheduler in ("asha", "fifo"):
                    if scheduler not in runs:
                        runs[scheduler] = run(configs, scheduler, args, Path(storage))
                    print(scheduler, summary(runs[scheduler]), flush=True)
                    # kept as each run ends, so a stopped benchmark loses at most the run in progress
                    out.with_suffix(".json").write_text(json.dumps(record, default=str))
        finally:
            ray.shutdown()
    out.with_suffix(".json").write_text(json.dumps(record, default=str))
    text = markdown(runs, configs, args, (before, os.getloadavg()[0]), reused)
    print(text)
    out.write_text(text)
    plot(runs, out.with_suffix(".png"))


if __name__ == "__main__":
    main()
