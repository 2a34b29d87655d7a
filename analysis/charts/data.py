"""What a chart shows unless told: which trials count, which metrics, in which order."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from analysis.experiment import Experiment
from analysis.tables import is_detail
from trainables.vocabulary import (
    CONFIG_GROUP,
    DISENTANGLEMENT_METRICS,
    METRICS,
    RECONSTRUCTION,
    SAMPLE_METRICS,
    SCORED_OUTCOMES,
    TRIAL_KEYS,
    UNSUPERVISED_METRICS,
    VARIANT_NAMES,
    Family,
)

# The loss terms a compact chart (the correlation matrix) keeps.
MAIN_LOSSES = ("rec_loss", "kl", "mi", "tc", "dwkl", "kl_fake_minus_real")
_NOT_CONFIGURATION = {*TRIAL_KEYS, "seed", "data_root", "device"}  # differ between seeds of one configuration
LOG_SPAN = 100.0  # values spanning this ratio (two decades) or more get a log axis


class Sample(NamedTuple):
    """How many values a statistic has and how many it needs (analysis.stats' thresholds); a
    chart without enough is greyed with :meth:`note`."""

    have: int
    needed: int
    what: str  # what is counted: "completed trials", "seeds of one configuration"

    @property
    def enough(self) -> bool:
        return self.have >= self.needed

    def note(self) -> str:
        return f"Too few {self.what} to read this chart: it needs at least {self.needed}, the study has {self.have}."


def bounds(metric: str) -> tuple[float | None, float | None]:
    """The range a metric's values lie in (vocabulary.METRICS; unknown: unbounded)."""
    known = METRICS.get(metric)
    return (known.lower, known.upper) if known is not None else (None, None)


def axis_title(metric: str, maximize: bool | None = None, *, short: bool = False) -> str:
    """"reconstruction loss (rec_loss) [nats/image], lower is better": the vocabulary's label,
    the column name, the unit and, for an objective, its better side; ``short``: without the label."""
    known = METRICS.get(metric)
    label = known.label if known is not None and not short else metric
    text = label if label.lower() == metric.lower() else f"{label} ({metric})"
    if known is not None and known.unit:
        text += f" [{known.unit}]"
    return text + ("" if maximize is None else ", higher is better" if maximize else ", lower is better")


def log_ticks(lo: float, hi: float, margin: float = 0.0) -> list[float]:
    """Round values for a log axis over [lo, hi]: 1-2-5 (or 1-3, or 1) times a power of ten,
    at most five, none within `margin` (a share of the axis) of either end."""
    a, b = math.log10(lo), math.log10(hi)
    inner: list[float] = []
    for steps in ((1.0, 2.0, 5.0), (1.0, 3.0), (1.0,)):
        inner = [m * 10.0 ** d for d in range(math.floor(a), math.ceil(b) + 1) for m in steps]
        inner = [v for v in inner if a + margin * (b - a) <= math.log10(v) <= b - margin * (b - a)]
        if len(inner) <= 5:
            break
    return inner


def spans_decades(values: Sequence[float]) -> bool:
    """Positive values spanning LOG_SPAN or more: a log axis reads them better."""
    v = np.asarray([x for x in values if x is not None], dtype="float64")
    v = v[np.isfinite(v)]
    return len(v) > 1 and bool((v > 0).all()) and v.max() / v.min() >= LOG_SPAN


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
    return ordered_variants(frame["variant"].dropna().unique().tolist() if "variant" in frame else [])


def ordered_variants(names: Sequence[str]) -> list[str]:
    """Variant names once each, in the vocabulary's order, then any others sorted."""
    seen = set(names)
    return [v for v in VARIANT_NAMES if v in seen] + sorted(v for v in seen if v not in VARIANT_NAMES)


def scored(exp: Experiment, columns: Sequence[str]) -> pd.DataFrame:
    """Trials with final values (completed or stopped) that are finite in every one of ``columns``."""
    t = exp.trials
    ok = t["outcome"].isin(SCORED_OUTCOMES)
    for c in columns:
        ok &= np.isfinite(pd.to_numeric(t[c], errors="coerce").astype("float64")) if c in t else False
    return t.loc[ok]


def configurations(trials: pd.DataFrame) -> pd.Series:
    """Which configuration each trial trains (its seeds share it): the launcher's config_group,
    else the configuration without its seed and bookkeeping, as text."""
    if CONFIG_GROUP in trials and trials[CONFIG_GROUP].notna().all():
        return trials[CONFIG_GROUP].astype("int64").astype(str)
    cols = ["variant", *(c for c in trials.columns if c.startswith("config/") and c.removeprefix("config/")
                         not in _NOT_CONFIGURATION)]
    return trials[[c for c in cols if c in trials]].astype(str).agg("|".join, axis=1)


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


def objective_pair(exp: Experiment, y: str | None = None, x: str | None = None) -> tuple[str, str]:
    """(y, x) of a trade-off chart: as given, else the study's first objective to maximise (or
    its first) up and its first other objective to minimise (or its next) across, else the
    first disentanglement score against rec_loss."""
    metrics = [m for m in exp.metrics if m in exp.trials]
    objs = [o.metric for o in exp.objectives if o.metric in exp.trials]
    if y is None:
        y = next((o.metric for o in exp.objectives if o.direction == "maximize" and o.metric in objs), None) or next(
            iter(objs), None) or next((m for m in DISENTANGLEMENT_METRICS if m in metrics), None)
    if x is None:
        others = [o for o in exp.objectives if o.metric in objs and o.metric != y]
        x = next((o.metric for o in others if o.direction == "minimize"), None) or next(
            (o.metric for o in others), None) or (RECONSTRUCTION if RECONSTRUCTION in metrics and y != RECONSTRUCTION
                                                  else None)
    if y is None or x is None:
        raise ValueError(f"y={y!r}, x={x!r}: the experiment reports no disentanglement score or "
                         f"no reconstruction loss (metrics: {', '.join(metrics) or 'none'}); pass y= and x=")
    for name, value in (("y", y), ("x", x)):
        if value not in exp.trials:
            raise ValueError(f"{name}={value!r} is not a column of the trials table; use one of {', '.join(metrics)}")
    return y, x


def objective_pairs(exp: Experiment) -> list[tuple[str, str]]:
    """Every (y, x) pair of the study's objectives, the default pair first: the trade-off
    charts a study of more than two objectives offers."""
    first = objective_pair(exp)
    objs = [o.metric for o in exp.objectives if o.metric in exp.trials]
    pairs = [(a, b) for i, a in enumerate(objs) for b in objs[i + 1:]]
    return [first, *(p for p in pairs if set(p) != set(first))]
