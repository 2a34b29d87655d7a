"""The trainer's training step, side by side across checkouts of this project: images/s and ratios.

    git worktree add /work/wt/base 7250513
    python bench/bench_step_speed.py --checkout base=/work/wt/base --checkout main=/work/wt/main \\
        --checkout new=. --checkout new-fp32=.:fp32 [--reps 2] [--out docs/bench/step_speed.md]

Each row times one variant and architecture in every checkout: a fresh process per checkout and
repetition (PYTHONPATH set to the checkout, 1 torch thread), one training step of warm-up, then
--steps timed steps (--residual-steps for the residual model) of the checkout's own
`Trainer._soft_intro_step` / `_beta_step` on the same batch of dsprites_small images (batch 64).
The checkouts run interleaved -- rep 1: A B C, rep 2: B C A, ... -- so that a change of the
machine's load hits them alike; the table gives the median images/s per checkout, each
checkout's ratio to the first one, and the load average before and after. `PATH:fp32` or
`PATH:bf16` runs a checkout with that `TrainConfig.precision` (checkouts from before the
`precision` field train float32 on a CPU whatever they are given).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

# Runs inside each checkout's process: only the API every version of the trainer has.
CHILD = r"""
import dataclasses, json, sys, time, torch
torch.set_num_threads(1)
from trainables.data import load_dataset
from trainables.trainer import TrainConfig, Trainer
variant, arch, precision, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
data = load_dataset("dsprites_small")
data = dataclasses.replace(data, images=data.images[:256])
fields = {f.name for f in dataclasses.fields(TrainConfig)}
extra = {"precision": precision} if precision and "precision" in fields else {}
trainer = Trainer(TrainConfig(variant=variant, arch=arch, batch_size=64, device="cpu", **extra), data)
step = trainer._soft_intro_step if trainer.config.variant.startswith("sintro") else trainer._beta_step
x = (trainer.images[:64].float() / data.pixel_max).contiguous(
    memory_format=getattr(trainer, "memory_format", torch.contiguous_format))
step(x)
start = time.perf_counter()
for _ in range(steps):
    step(x)
elapsed = time.perf_counter() - start
print(json.dumps({"images_per_s": steps * 64 / elapsed, "precision": getattr(trainer, "precision", "fp32")}))
"""


def run_one(path: str, precision: str, variant: str, arch: str, steps: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(path).resolve()), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, variant, arch, precision, str(steps)], env=env,
                         capture_output=True, text=True, check=True, cwd=path)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(checkouts: list[tuple[str, str, str]], rows: list[tuple[str, str]], reps: int, steps: int,
            residual_steps: int) -> list[dict]:
    """Per (variant, arch): every checkout `reps` times, interleaved with a rotating order."""
    table = []
    for variant, arch in rows:
        rates: dict[str, list[float]] = {label: [] for label, _, _ in checkouts}
        ran_as: dict[str, str] = {}
        n = steps if arch == "standard" else residual_steps
        for rep in range(reps):
            order = checkouts[rep % len(checkouts):] + checkouts[:rep % len(checkouts)]
            for label, path, precision in order:
                result = run_one(path, precision, variant, arch, n)
                rates[label].append(result["images_per_s"])
                ran_as[label] = result["precision"]
                print(variant, arch, label, round(result["images_per_s"], 3), result["precision"], flush=True)
        table.append({"variant": variant, "arch": arch, "steps": n, "rates": rates, "precision": ran_as})
    return table


def markdown(table: list[dict], checkouts: list[tuple[str, str, str]], reps: int, load: tuple[float, float]) -> str:
    labels = [label for label, _, _ in checkouts]
    base = labels[0]
    described = "; ".join(f"`{label}` = {path}" + (f" with precision {p}" if p else "")
                          for label, path, p in checkouts)
    lines = [f"Measured {datetime.datetime.now():%Y-%m-%d %H:%M} with `python bench/bench_step_speed.py "
             f"{' '.join(sys.argv[1:])}`: 1 torch thread, batch 64, 1x64x64 dsprites_small, one warm-up step, "
             f"{reps} interleaved fresh processes per checkout (median). Checkouts: {described}. "
             f"Load average (1 min) before / after: {load[0]:.1f} / {load[1]:.1f}.", "",
             "| variant | arch | timed steps | " + " | ".join(f"{lb} images/s" for lb in labels) + " | "
             + " | ".join(f"{lb} / {base}" for lb in labels[1:]) + " |",
             "|---|---|---:|" + "---:|" * (2 * len(labels) - 1)]
    for row in table:
        med = {lb: statistics.median(v) for lb, v in row["rates"].items()}
        cells = [f"{med[lb]:.3g} ({row['precision'][lb]})" for lb in labels]
        ratios = [f"{med[lb] / med[base]:.2f}x" for lb in labels[1:]]
        lines.append(f"| {row['variant']} | {row['arch']} | {row['steps']} | " + " | ".join(cells + ratios) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", action="append", required=True, help="LABEL=PATH[:PRECISION]; first = baseline")
    parser.add_argument("--rows", default="sintro_tc/standard,beta_vae/standard,sintro_tc/residual",
                        help="variant/arch pairs")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6, help="timed steps, standard model")
    parser.add_argument("--residual-steps", type=int, default=1, help="timed steps, residual model")
    parser.add_argument("--out", default="docs/bench/step_speed.md")
    args = parser.parse_args()
    checkouts = []
    for item in args.checkout:
        label, _, rest = item.partition("=")
        path, _, precision = rest.partition(":")
        checkouts.append((label, path, precision))
    rows = [tuple(r.split("/")) for r in args.rows.split(",")]
    before = os.getloadavg()[0]
    table = measure(checkouts, rows, args.reps, args.steps, args.residual_steps)
    text = markdown(table, checkouts, args.reps, (before, os.getloadavg()[0]))
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
