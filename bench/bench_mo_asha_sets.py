"""How often does a rung schedule meet the goal? MO-ASHA replayed on many sets drawn from measured runs.

    python bench/bench_mo_asha_sets.py RUN.json [RUN.json ...] [--epochs 12] [--sets 200] [--size 16]
                                       [--out docs/bench/mo_asha_sets.md]

One run of bench_mo_asha.py is one set of 16 configurations, and whether MO-ASHA keeps FIFO's
front on it turns on one or two trials: the verdict of one set says little about the next. This
pools the FIFO curves of several runs (their first --epochs epochs; a training is deterministic,
so a curve is what any scheduler sees of that configuration up to that epoch), draws --sets sets
of --size configurations from the pool (without replacement, in random order, which is the order
they start in), and replays on each every rung schedule the launcher accepts, with the plain
promotion rule and with `keep_extremes` (bench_mo_asha.replay: the project's scheduler code, each
epoch as long as it took in its run). Per schedule: the share of sets where the issue's goal holds
(at least 90% of FIFO's hypervolume at no more than 40% of FIFO's trial-epochs), the share where
the hypervolume part alone holds, and the medians of both shares.

The sets overlap (they come from one pool), so the shares describe this pool of configurations,
not the search space; the runs must share their training settings (checked).
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import statistics
from pathlib import Path

from bench_mo_asha import accepted_schedules, fifo_hypervolume, replay

GRACE_PERIODS, FACTORS = (1, 2, 3, 4), (2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
GOAL_HV, GOAL_SPEND = 0.9, 0.4
PRESET = (3, 4.0, True)  # the cpu preset's schedule (study/presets.py), marked in the table


def pool_of(paths: list[str], epochs: int) -> list[list[dict]]:
    """The FIFO curves of the runs, cut to `epochs` (a diverged curve stays as short as it is)."""
    pool, shared = [], None
    for path in paths:
        run = json.loads(Path(path).read_text())
        training = {k: v for k, v in run["settings"]["training"].items() if k not in ("epochs", "sample_seed")}
        if shared not in (None, training):
            raise SystemExit(f"{path}: trained with {training}, the others with {shared}: pool like runs only")
        if run["settings"]["training"]["epochs"] < epochs:
            raise SystemExit(f"{path}: trained {run['settings']['training']['epochs']} epochs, fewer than --epochs")
        shared = training
        pool += [record["history"][:epochs] for record in run["runs"]["fifo"]]
    return pool


def drawn_sets(pool: list[list[dict]], n: int, size: int, seed: int = 0) -> list[list[dict]]:
    rng = random.Random(seed)
    return [[{"index": i, "history": pool[k]} for i, k in enumerate(rng.sample(range(len(pool)), size))]
            for _ in range(n)]


def shares(sets: list[list[dict]], epochs: int, grace: int, factor: float, keep: bool) -> list[tuple[float, float]]:
    """(hypervolume, trial-epochs) of the schedule on each set, as shares of FIFO's."""
    out = []
    for fifo in sets:
        whole = fifo_hypervolume(fifo, epochs)
        run = replay(fifo, epochs, grace, factor, keep_extremes=keep)
        out.append((run["hv"] / whole if whole else 1.0, run["trial_epochs"] / (epochs * len(fifo))))
    return out


def markdown(args: argparse.Namespace, pool: list[list[dict]], rows: list[tuple]) -> str:
    lines = [f"Computed {datetime.date.today()} with `python bench/bench_mo_asha_sets.py {' '.join(args.runs)} "
             f"--epochs {args.epochs} --sets {args.sets} --size {args.size}`: a pool of {len(pool)} measured "
             f"configurations (FIFO's curves, first {args.epochs} epochs), {args.sets} sets of {args.size} drawn "
             f"from it, every schedule replayed on every set. Goal: at least {GOAL_HV:.0%} of FIFO's hypervolume "
             f"at no more than {GOAL_SPEND:.0%} of its trial-epochs. Rows sorted by the share of sets where the "
             "goal holds; **bold**: the `cpu` preset's schedule.", "",
             "| grace period | reduction factor | rungs (epochs) | rule | sets meeting the goal "
             "| sets keeping >= 90% of the hypervolume | median hypervolume | median trial-epochs |",
             "|---:|---:|---|---|---:|---:|---:|---:|"]
    for grace, factor, keep, rungs, result in sorted(rows, key=lambda r: -_goal(r[-1])):
        hv, spend = [h for h, _ in result], [s for _, s in result]
        cells = [str(grace), f"{factor:g}", ", ".join(map(str, rungs)), "keep_extremes" if keep else "plain",
                 f"{_goal(result):.0%}", f"{sum(h >= GOAL_HV for h in hv) / len(hv):.0%}",
                 f"{statistics.median(hv):.0%}", f"{statistics.median(spend):.0%}"]
        if (grace, factor, keep) == PRESET:
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _goal(result: list[tuple[float, float]]) -> float:
    return sum(h >= GOAL_HV and s <= GOAL_SPEND for h, s in result) / len(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="bench_mo_asha.py JSON files (their FIFO runs form the pool)")
    parser.add_argument("--epochs", type=int, default=12, help="the horizon: every run must have trained this long")
    parser.add_argument("--sets", type=int, default=200)
    parser.add_argument("--size", type=int, default=16, help="configurations per set")
    parser.add_argument("--out", default="docs/bench/mo_asha_sets.md")
    args = parser.parse_args()
    pool = pool_of(args.runs, args.epochs)
    sets = drawn_sets(pool, args.sets, args.size)
    rows = []
    for grace, factor, rungs in accepted_schedules(args.epochs, args.size, GRACE_PERIODS, FACTORS):
        for keep in (False, True):
            rows.append((grace, factor, keep, rungs, shares(sets, args.epochs, grace, factor, keep)))
            print(grace, factor, keep, f"{_goal(rows[-1][-1]):.0%}", flush=True)
    text = markdown(args, pool, rows)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
