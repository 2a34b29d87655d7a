"""What a chart shows unless told: which trials count, which metrics, in which order."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from analysis.experiment import Experiment
from analysis.tables import is_detail
from trainables.vocabulary import (
    DISENTANGLEMENT_METRICS,
    METRICS,
    RECONSTRUCTION,
    SAMPLE_METRICS,
    SCORED_OUTCOMES,
    UNSUPERVISED_METRICS,
    VARIANT_NAMES,
    Family,
)

# The loss terms a compact chart (the correlation matrix) keeps.
MAIN_LOSSES = ("rec_loss", "kl", "mi", "tc", "dwkl", "kl_fake_minus_real")


def present(v: Any) -> bool:
    """A value, not a missing one (None, NaN, pandas' NA)."""
    return v is not None and not (isinstance(v, float) and math.isnan(v)) and v is not pd.NA


def fmt(v: Any) -> str:
    if not present(v):
        return "-"
    if isinstance(v, (float, np.floating)):
        return f"{v:.4g}"
    return str(v)


def variants(frame: pd.DataFrame) -> list[str]:
    """The variants of a table in the vocabulary's order, then any others sorted."""
    seen = frame["variant"].dropna().unique().tolist() if "variant" in frame else []
    return [v for v in VARIANT_NAMES if v in seen] + sorted(v for v in seen if v not in VARIANT_NAMES)


def scored(exp: Experiment, columns: Sequence[str]) -> pd.DataFrame:
    """Trials with final values (completed or stopped) that are finite in every one of ``columns``."""
    t = exp.trials
    ok = t["outcome"].isin(SCORED_OUTCOMES)
    for c in columns:
        ok &= np.isfinite(pd.to_numeric(t[c], errors="coerce").astype("float64")) if c in t else False
    return t.loc[ok]


def default_metrics(exp: Experiment, *, scores_only: bool = False, compact: bool = False) -> list[str]:
    """Metrics a chart shows unless told: losses, then scores, the unsupervised measures and the
    decoded samples; per-latent KLs and throughput left out. ``compact``: the main loss terms,
    the scores and the unsupervised measures."""
    shown = [m for m in exp.metrics if m in exp.trials and exp.trials[m].notna().any()]
    scores = [m for m in DISENTANGLEMENT_METRICS if m in shown]
    if scores_only:
        return scores
    losses = [m for m in shown if (m not in METRICS or METRICS[m].family == Family.LOSS) and not is_detail(m)
              and (not compact or m in MAIN_LOSSES)]
    samples = [] if compact else [m for m in SAMPLE_METRICS if m in shown]
    return losses + scores + [m for m in UNSUPERVISED_METRICS if m in shown] + samples


def objective_pair(exp: Experiment, score: str | None, loss: str | None) -> tuple[str, str]:
    """(score, loss) of a trade-off chart: as given, else the study's first objective to
    maximise and first to minimise, else the first disentanglement score and rec_loss."""
    metrics = [m for m in exp.metrics if m in exp.trials]
    if score is None:
        score = next((o.metric for o in exp.objectives if o.direction == "maximize"), None) or next(
            (m for m in DISENTANGLEMENT_METRICS if m in metrics), None)
    if loss is None:
        loss = next((o.metric for o in exp.objectives if o.direction == "minimize"), None) or (
            RECONSTRUCTION if RECONSTRUCTION in metrics else None)
    if score is None or loss is None:
        raise ValueError(f"score={score!r}, loss={loss!r}: the experiment reports no disentanglement score or "
                         f"no reconstruction loss (metrics: {', '.join(metrics) or 'none'}); pass score= and loss=")
    for name, value in (("score", score), ("loss", loss)):
        if value not in exp.trials:
            raise ValueError(f"{name}={value!r} is not a column of the trials table; use one of {', '.join(metrics)}")
    return score, loss
