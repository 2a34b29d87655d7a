"""Does the report code's TC estimator change results? The evidence for `--space paper`'s choice.

    python bench/bench_report_estimator.py [--seeds 3] [--epochs 3] [--out docs/bench/report_estimator.md]

The report's code estimates the total correlation with minibatch stratified sampling whose weight
matrix fills columns 0 and 1 instead of the diagonal, and clamps every per-dimension log density
at -50 (trainables/objectives.py, estimator "mss_report"); the project's default is the corrected
MSS ("mss"). Two measurements, side by side in one run:

1. The same tensors, TC per sample under both estimators (means, mean difference, correlation):
   posteriors of a model trained one epoch (beta-TCVAE, the paper's losses), and synthetic
   posteriors whose true TC is known (independent and correlated latents).
2. Training: beta-TCVAE and Soft-Intro-TCVAE with the `paper` space's settings (the report's
   losses and weights, batch 128, the standard model, dsprites_small), `--seeds` seeds x both
   estimators x `--epochs` epochs, full metrics at the end. For every metric: mean and standard
   deviation per estimator, the difference of means in units of the seed spread, and Welch's
   t-test. "Measurably different" means p < 0.05 on a metric that does not itself read the
   estimator (the `tc` term obviously does).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path

import numpy as np
import scipy.stats
import torch

from search_spaces import get_space
from trainables import objectives as obj
from trainables.data import load_dataset
from trainables.metrics.evaluate import evaluate
from trainables.trainer import TrainConfig, Trainer

ESTIMATORS = ("mss", "mss_report")
METRICS = ("mig", "beta_vae", "factor_vae", "modularity", "explicitness", "dci_disentanglement", "sap",
           "gaussian_tc", "active_units", "rec_loss", "kl", "tc")


def paper_config(variant: str, **overrides) -> TrainConfig:
    """The `paper` space's constants for `variant` on dsprites_small, with the standard model."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    study = optuna.create_study()
    study.enqueue_trial({"variant": variant})
    constants = get_space("paper")(study.ask())
    return TrainConfig(variant=variant, arch="standard", **{**constants, **overrides})


def same_tensors(data, *, batches: int = 20) -> list[str]:
    trainer = Trainer(paper_config("beta_tcvae", epochs=1, seed=0), data)
    trainer.train_epoch()
    trainer.model.eval()
    gen = torch.Generator().manual_seed(0)
    tcs = {e: [] for e in ESTIMATORS}
    with torch.no_grad():
        for _ in range(batches):
            index = torch.randperm(len(data), generator=gen)[:trainer.config.batch_size]
            mu, logvar = trainer.model.encode(data.batch(index))
            z = mu + torch.randn(mu.shape, generator=gen) * torch.exp(0.5 * logvar)
            for e in ESTIMATORS:
                tcs[e].append(obj.tc_decomposition(z, mu, logvar, dataset_size=len(data), estimator=e)[1])
    lines = [f"TC per sample over {batches} batches of {trainer.config.batch_size}:", "",
             "| posteriors | true TC (nats) | mss: mean (sd) | mss_report: mean (sd) | mean difference | correlation |",
             "|---|---|---|---|---|---|"]
    lines.append(_row("beta-TCVAE after one epoch (paper losses)", float("nan"), tcs))
    for name, corr in CORRELATED.items():  # known answers: mu ~ N(0, C), posterior variance 0.1
        lines.append(_row(name, *_correlated_tcs(corr, batch=trainer.config.batch_size, n=len(data), batches=batches)))
    return lines


# mu ~ N(0, C) with posterior variance s2 in every dimension: the aggregate posterior is N(0, C + s2 I),
# whose TC is -0.5 log det corr(C + s2 I) (docs/objectives.md, "Known answers on a large batch").
CORRELATED = {
    "synthetic, 10 independent latents": np.eye(10),
    "synthetic, 10 latents, pairwise correlation 0.6": 0.4 * np.eye(10) + 0.6,
}


def _correlated_tcs(corr: np.ndarray, *, batch: int, n: int, batches: int, s2: float = 0.1):
    gen = torch.Generator().manual_seed(1)
    c = torch.tensor(corr, dtype=torch.float64)
    s = c + s2 * torch.eye(len(c), dtype=torch.float64)
    d = s.diagonal().sqrt()
    true_tc = -0.5 * torch.logdet(s / d[:, None] / d[None, :]).item()
    tcs = {e: [] for e in ESTIMATORS}
    for _ in range(batches):
        mu = torch.randn(batch, len(c), generator=gen, dtype=torch.float64) @ torch.linalg.cholesky(c).T
        logvar = torch.full_like(mu, np.log(s2))
        z = mu + np.sqrt(s2) * torch.randn(mu.shape, generator=gen, dtype=torch.float64)
        for e in ESTIMATORS:
            tcs[e].append(obj.tc_decomposition(z, mu, logvar, dataset_size=n, estimator=e)[1])
    return true_tc, tcs


def _row(name: str, true_tc: float, tcs: dict[str, list[torch.Tensor]]) -> str:
    a, b = (torch.cat(tcs[e]).numpy() for e in ESTIMATORS)
    known = "unknown" if np.isnan(true_tc) else f"{true_tc:.3f}"
    return (f"| {name} | {known} | {a.mean():.3f} ({a.std():.3f}) | {b.mean():.3f} ({b.std():.3f}) | "
            f"{np.mean(b - a):+.3f} | {np.corrcoef(a, b)[0, 1]:.3f} |")


def train_runs(data, *, seeds: int, epochs: int, log) -> dict[tuple[str, str], list[dict[str, float]]]:
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for variant in ("beta_tcvae", "sintro_tc"):
        for seed in range(seeds):
            for estimator in ESTIMATORS:
                start = time.perf_counter()
                trainer = Trainer(paper_config(variant, tc_estimator=estimator, epochs=epochs, seed=seed), data)
                for _ in range(epochs):
                    losses = trainer.train_epoch()
                metrics = evaluate(trainer.model, data, preset="full", seed=seed)
                row = {**{k: losses[k] for k in ("rec_loss", "kl", "tc")}, **metrics}
                runs.setdefault((variant, estimator), []).append(row)
                log(f"{variant} seed {seed} {estimator}: mig {row['mig']:.3f} rec {row['rec_loss']:.1f} "
                    f"kl {row['kl']:.2f} tc {row['tc']:.2f} ({time.perf_counter() - start:.0f} s)")
    return runs


def compare(runs, *, seeds: int) -> list[str]:
    lines = ["| variant | metric | mss: mean (sd) | mss_report: mean (sd) | difference / pooled sd | Welch p |",
             "|---|---|---|---|---|---|"]
    verdicts = []
    for variant in ("beta_tcvae", "sintro_tc"):
        for metric in METRICS:
            a = np.array([r[metric] for r in runs[(variant, "mss")]])
            b = np.array([r[metric] for r in runs[(variant, "mss_report")]])
            pooled = np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2) if seeds > 1 else float("nan")
            effect = (b.mean() - a.mean()) / pooled if pooled > 0 else float("nan")
            p = scipy.stats.ttest_ind(a, b, equal_var=False).pvalue if seeds > 1 else float("nan")
            lines.append(f"| {variant} | {metric} | {a.mean():.4g} ({a.std(ddof=1):.2g}) | "
                         f"{b.mean():.4g} ({b.std(ddof=1):.2g}) | {effect:+.2f} | {p:.3f} |")
            if metric != "tc" and p < 0.05:
                verdicts.append(f"{variant} {metric} (p = {p:.3f})")
    lines += ["", "Differences at p < 0.05 on metrics that do not read the estimator: "
              + (", ".join(verdicts) if verdicts else "none")]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default="docs/bench/report_estimator.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("dsprites_small")
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    lines = [f"# The report's TC estimator against the corrected MSS ({datetime.date.today()})", "",
             f"`python bench/bench_report_estimator.py --seeds {args.seeds} --epochs {args.epochs}`; "
             f"{platform.processor() or platform.machine()}, 1 torch thread, torch {torch.__version__}, "
             f"numpy {np.__version__}.", "", "## 1. The same tensors", ""]
    lines += same_tensors(data)
    if args.seeds:  # --seeds 0: the same-tensor comparison alone
        runs = train_runs(data, seeds=args.seeds, epochs=args.epochs, log=lambda s: print(s, flush=True))
        lines += ["", f"## 2. Training: {args.seeds} seeds x {args.epochs} epochs, the paper's losses and weights", ""]
        lines += compare(runs, seeds=args.seeds)
    lines += ["", f"Wall time {(time.perf_counter() - start) / 60:.1f} min; load average {load_before:.1f} before, "
              f"{os.getloadavg()[0]:.1f} after."]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
