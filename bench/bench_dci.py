"""DCI's tree variants against disentanglement_lib's definition on codes with known answers.

    python bench/bench_dci.py                                   # both sizes, writes docs/bench/dci.md
    python bench/bench_dci.py --sizes 2000 --out /tmp/dci.md    # the small size only
    python bench/bench_dci.py --seeds 0 1 2                     # seed 0 as above, then two more draws

On dsprites_small's factor grid (sizes 3, 6, 4, 10, 10, classes drawn uniformly, seed 0 unless
--seeds says more) the code of each case is built from the classes:

- `factors`: the classes as floats plus N(0, 0.1^2) noise (a near-perfect code; D = C = I = 1);
- `noise`: five N(0, 1) latents independent of the factors (D = C = 0, I = chance);
- `rotated`: the classes times a random 5 x 5 rotation, plus the same noise (every code mixes
  every factor);
- `extra`: `factors` plus five N(0, 1) latents (a 10-latent near-perfect code);
- `mixed` (timing reference, not one of the four agreement cases): ten continuous latents,
  tanh of a random linear map of the scaled classes plus N(0, 0.3^2), like a trained model's
  means: every code has more distinct values than `max_bins`.

For each case and size it fits DCI three ways on identical arrays: `trees="exact"` (sklearn's
GradientBoostingClassifier with impurity importances: disentanglement_lib's definition, the
reference), `trees="hist"` (the default: the same algorithm on binned codes) and `trees="hgb"`
(the default before, HistGradientBoostingClassifier with split-gain importances); 100 rounds,
depth 3, rate 0.1 (the `full` preset's trees), one fit at a time (`--jobs`). Prints a markdown
table and writes it to --out.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trainables.metrics.dci import _compute_dci  # noqa: E402

SIZES = np.array([3, 6, 4, 10, 10])  # dsprites_small's factor grid
CASES = ("factors", "noise", "rotated", "extra", "mixed")
KEYS = ("dci_disentanglement", "dci_completeness", "dci_informativeness")


def make_case(case: str, num_train: int, num_test: int, seed: int = 0):
    """-> codes_train, classes_train, codes_test, classes_test of one case (see the module doc)."""
    rng = np.random.default_rng(seed)
    classes_train = rng.integers(0, SIZES, size=(num_train, len(SIZES)))
    classes_test = rng.integers(0, SIZES, size=(num_test, len(SIZES)))
    rotation, _ = np.linalg.qr(np.random.default_rng(seed + 100).normal(size=(len(SIZES), len(SIZES))))
    mixing = np.random.default_rng(seed + 200).normal(size=(len(SIZES), 10))
    noise = np.random.default_rng(seed + 1)

    def code(classes: np.ndarray) -> np.ndarray:
        x = classes.astype(np.float64)
        if case == "noise":
            return noise.normal(size=(len(x), 5))
        if case == "mixed":
            return np.tanh((x / (SIZES - 1) - 0.5) @ mixing) + 0.3 * noise.normal(size=(len(x), 10))
        if case == "rotated":
            x = x @ rotation
        x = x + 0.1 * noise.normal(size=x.shape)
        if case == "extra":
            x = np.concatenate([x, noise.normal(size=(len(x), 5))], axis=1)
        return x

    return code(classes_train), classes_train, code(classes_test), classes_test


def run(case: str, num_train: int, trees: str, jobs: int, seed: int) -> tuple[dict[str, float], float]:
    arrays = make_case(case, num_train, num_train // 2, seed)
    start = time.perf_counter()
    result = _compute_dci(*arrays, trees=trees, n_estimators=100, max_depth=3, learning_rate=0.1, random_state=0,
                          n_jobs=jobs)
    return result, time.perf_counter() - start


def fmt(result: dict[str, float]) -> str:
    return " / ".join(f"{result[k]:.3f}" for k in KEYS)


def diff(a: dict[str, float], b: dict[str, float]) -> float:
    return max(abs(a[k] - b[k]) for k in KEYS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2_000, 10_000],
                        help="training points (test points: half as many)")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--jobs", type=int, default=1, help="classifier fits in parallel (default 1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="data seeds (classes, noise, rotation, mixing); the first gives the main table")
    parser.add_argument("--out", default=str(REPO / "docs" / "bench" / "dci.md"))
    args = parser.parse_args(argv)

    import sklearn

    load_before = os.getloadavg()[0]
    header = ("| seed | case | points (train / test) | hist D / C / I | exact D / C / I | max \\|hist - exact\\| "
              "| hgb D / C / I | max \\|hgb - exact\\| | s hist / exact / hgb |\n|---|---|---|---|---|---|---|---|---|")
    print(header, flush=True)
    tables: list[list[str]] = []
    for seed in args.seeds:
        rows = []
        for size in args.sizes:
            for case in args.cases:
                out = {trees: run(case, size, trees, args.jobs, seed) for trees in ("hist", "exact", "hgb")}
                (hist, t_hist), (exact, t_exact), (hgb, t_hgb) = out["hist"], out["exact"], out["hgb"]
                row = (f"| {seed} | {case} | {size:,} / {size // 2:,} | {fmt(hist)} | {fmt(exact)} "
                       f"| {diff(hist, exact):.4f} | {fmt(hgb)} | {diff(hgb, exact):.4f} "
                       f"| {t_hist:.1f} / {t_exact:.1f} / {t_hgb:.1f} |")
                print(row, flush=True)
                rows.append(row)
        tables.append(rows)
    load_after = os.getloadavg()[0]
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    text = "\n".join([
        "# DCI: tree variants against disentanglement_lib's definition",
        "",
        f"Written by `python bench/bench_dci.py{' ' + ' '.join(argv) if argv else ''}` on "
        f"{datetime.date.today().isoformat()}.",
        f"Machine: {cpu}, {os.cpu_count()} CPUs; Python {platform.python_version()}, numpy {np.__version__}, "
        f"scikit-learn {sklearn.__version__}; {args.jobs} fit(s) at a time. Load average before / after: "
        f"{load_before:.1f} / {load_after:.1f} (other jobs shared the CPUs when above ~0.5).",
        "",
        "Cases (module docstring of bench/bench_dci.py): codes built from dsprites_small's factor classes, "
        "seed 0; 100 rounds, depth 3, rate 0.1. `exact` is disentanglement_lib's definition "
        "(GradientBoostingClassifier, impurity importances), `hist` the default (the same algorithm on "
        "binned codes), `hgb` the default before (HistGradientBoostingClassifier, split-gain importances). "
        "`mixed` is the timing reference (ten continuous latents, like a model's).",
        "",
        header,
        *tables[0],
        "",
        *([f"Other draws of the classes, noise, rotation and mixing (seeds {', '.join(map(str, args.seeds[1:]))}):",
           "", header, *[row for rows in tables[1:] for row in rows], ""] if len(tables) > 1 else []),
    ])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
