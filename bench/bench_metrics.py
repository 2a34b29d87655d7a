"""Benchmark of the metrics suite on dsprites_small with a trained 10-latent model.

    python bench/bench_metrics.py                          # trains beta_tcvae for 3 epochs (once, reused)
    python bench/bench_metrics.py --checkpoint runs/one/trainer.pt
    python bench/bench_metrics.py --fraction 0.02 --exact-dci --out docs/bench/metrics.md

Measures, at equal seeds: the `full` preset with the code cache, with and without DCI's tree
fits; the `fast` preset; one training epoch (the yardstick of the fast preset); and the
re-encoding protocol. Re-encoding the full counts means about 2.9 million encoder passes, so it
is measured at `--fraction` of every sample count (cached and re-encoded, a measured ratio) and
extrapolated to the full counts linearly in the encoder passes: the suite's time without
encoding (from the cached full run) plus the full run's requested rows times the measured
seconds per re-encoded row. Prints a markdown table and writes it to --out.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trainables.metrics.evaluate import PRESETS, evaluate  # noqa: E402

COUNT_KEYS = ("num_train", "num_eval", "num_test", "num_variance_estimate", "num_images", "num_reconstructions")


def scaled(preset: dict, fraction: float) -> dict:
    """The preset with every sample count multiplied by `fraction` (at least 2)."""
    out = copy.deepcopy(preset)
    for kwargs in out.values():
        for key in COUNT_KEYS:
            if key in kwargs:
                kwargs[key] = max(2, int(round(kwargs[key] * fraction)))
    return out


def trained_trainer(checkpoint: str | None, epochs: int, data):
    from trainables.trainer import TrainConfig, Trainer

    path = Path(checkpoint) if checkpoint else REPO / "runs" / "bench_metrics" / "trainer.pt"
    if path.exists():
        print(f"using the checkpoint {path}")
        return Trainer.from_checkpoint(path, data, device="cpu"), path, []
    print(f"training beta_tcvae for {epochs} epochs on dsprites_small -> {path}")
    trainer = Trainer(TrainConfig(variant="beta_tcvae", dataset="dsprites_small", latent_dim=10, epochs=epochs,
                                  device="cpu", seed=0), data)
    history = trainer.train(path.parent, log=lambda line: print("  " + line))
    return trainer, path, history


def timed(model, data, preset, **kwargs) -> tuple[float, dict, dict]:
    timings: dict[str, float] = {}
    start = time.perf_counter()
    out = evaluate(model, data, preset=preset, timings=timings, **kwargs)
    return time.perf_counter() - start, out, timings


def summary(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if not k.startswith("kl_dim"))


def machine() -> str:
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{name}, {cpus} CPUs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="trainer.pt of a trained model (default: train one)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of beta_tcvae when training one")
    parser.add_argument("--fraction", type=float, default=0.02, help="fraction of the full counts to re-encode")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--n-jobs", type=int, default=None, help="classifier jobs (default: all CPUs)")
    parser.add_argument("--exact-dci", action="store_true",
                        help="also time DCI with disentanglement_lib's GradientBoostingClassifier (minutes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "docs" / "bench" / "metrics.md"))
    args = parser.parse_args(argv)

    import sklearn

    from trainables.data import load_dataset

    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset("dsprites_small")
    trainer, path, history = trained_trainer(args.checkpoint, args.epochs, data)
    model = trainer.model
    common = dict(seed=args.seed, device="cpu", n_jobs=args.n_jobs)
    load_before = os.getloadavg()

    full = PRESETS["full"]
    no_dci = {k: v for k, v in full.items() if k != "dci"}
    small = scaled(full, args.fraction)
    rows: list[tuple[str, str, str]] = []

    t_full, m_full, tim_full = timed(model, data, full, **common)
    print(f"full, cached: {t_full:.1f} s")
    t_nodci, _, tim_nodci = timed(model, data, no_dci, **common)
    print(f"full without DCI, cached: {t_nodci:.1f} s")
    t_fast, m_fast, tim_fast = timed(model, data, "fast", **common)
    print(f"fast, cached: {t_fast:.1f} s")
    t_small_c, m_small_c, tim_small_c = timed(model, data, small, cached=True, **common)
    t_small_r, m_small_r, tim_small_r = timed(model, data, small, cached=False, **common)
    print(f"{args.fraction:g} x full counts: cached {t_small_c:.1f} s, re-encoded {t_small_r:.1f} s")
    same = m_small_c == m_small_r
    # Re-encoding passes: every requested code, plus the unsupervised measures' own images.
    per_row = tim_small_r["encoder_encode_s"] / max(1.0, tim_small_r["encoder_images_encoded"])
    passes_full = tim_full["encoder_rows_requested"] + min(full["unsupervised"]["num_images"], len(data))
    t_full_r = (t_full - tim_full["encoder_encode_s"]) + passes_full * per_row
    t_exact = None
    if args.exact_dci:
        exact = {"dci": dict(full["dci"], trees="exact")}
        t_exact, m_exact, _ = timed(model, data, exact, **common)
        print(f"DCI with exact trees: {t_exact:.1f} s")
    # One more epoch of the same model: the yardstick of the fast preset.
    epoch = trainer.train_epoch()
    t_epoch = epoch["epoch_time_s"]
    load_after = os.getloadavg()

    def n(x: float) -> str:
        return f"{x:,.0f}"

    rows += [
        ("`full`, cached, with DCI trees", f"{t_full:.1f} s",
         f"{n(tim_full['encoder_images_encoded'])} encoder passes for {n(tim_full['encoder_rows_requested'])} "
         f"requested codes; encode {tim_full['encoder_encode_s']:.1f} s, decode {tim_full['encoder_decode_s']:.1f} s; "
         f"DCI {tim_full['dci']:.1f} s (target: 30 s)"),
        ("`full`, cached, without DCI", f"{t_nodci:.1f} s", "target: 10 s"),
        ("`fast`, cached", f"{t_fast:.1f} s",
         f"{t_fast / t_epoch:.0%} of one training epoch ({t_epoch:.1f} s, beta_tcvae, batch 64); "
         f"{n(tim_fast['encoder_images_encoded'])} encoder passes"),
        (f"`full` x {args.fraction:g}, cached", f"{t_small_c:.1f} s",
         f"{n(tim_small_c['encoder_images_encoded'])} encoder passes"),
        (f"`full` x {args.fraction:g}, re-encoded", f"{t_small_r:.1f} s",
         f"{n(tim_small_r['encoder_images_encoded'])} encoder passes; measured ratio "
         f"{t_small_r / t_small_c:.1f}x; results identical to cached: {'yes' if same else 'NO'}"),
        ("`full`, re-encoded (extrapolated)", f"{t_full_r:,.0f} s",
         f"{n(passes_full)} encoder passes at {per_row * 1e3:.3f} ms each (rendering included, measured at "
         f"x {args.fraction:g}) + {t_full - tim_full['encoder_encode_s']:.1f} s of fits; "
         f"ratio to cached {t_full_r / t_full:.0f}x"),
    ]
    if t_exact is not None:
        rows.append(("DCI alone, `trees=\"exact\"` (disentanglement_lib's GradientBoostingClassifier)",
                     f"{t_exact:.1f} s", f"vs {tim_full['dci']:.1f} s with `trees=\"hist\"`"))
    breakdown = ", ".join(f"{k} {v:.2f} s" for k, v in tim_full.items() if not k.startswith("encoder_"))

    versions = (f"Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
                f"numpy {np.__version__}, scikit-learn {sklearn.__version__}")
    lines = [
        "# Metrics benchmark (dsprites_small)",
        "",
        f"Written by `python bench/bench_metrics.py` on {datetime.date.today().isoformat()}.",
        f"Machine: {machine()}; {versions}. Load average before / after: "
        f"{load_before[0]:.1f} / {load_after[0]:.1f} (other jobs shared the CPUs when above ~0.5).",
        f"Model: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}, beta_tcvae, 10 latents, "
        f"epoch {trainer.epoch - 1}; seed {args.seed}; classifier jobs: {args.n_jobs or 'all CPUs'}.",
        "",
        "| run | wall time | notes |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
        f"Per metric, `full` cached (the first metric pays for encoding the 7,200 images): {breakdown}.",
        "",
        "Values of the `full` run: " + summary(m_full),
        "",
        "Values of the `fast` run: " + summary(m_fast),
        "",
    ]
    text = "\n".join(lines)
    print()
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
