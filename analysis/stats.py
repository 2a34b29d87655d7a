"""The statistics the charts, the report and the paper comparison compute, on plain arrays.

A study affords a handful of seeds per configuration and often a few dozen trials, so every
statistic here is one that holds at small n, and each says how many values it needs:

- the mean of a metric over the seeds of one configuration: the Student-t interval, intersected
  with the metric's range (a [0, 1] score's interval never leaves [0, 1]);
- a rate (divergences): the Wilson score interval;
- a rank correlation: Fisher's z interval with Bonett and Wright's standard error for Spearman;
- the Pareto front: non-dominated sorting, rank 1 = the front.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import t as student_t

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile

# How many values each statistic needs before the report draws it as an answer; below, the
# chart is greyed with a note (analysis.charts.data.Sample).
MIN_SEEDS = 2  # a t-interval of a configuration's mean needs two seeds of it
MIN_CORRELATION_TRIALS = 10  # below 10 trials |rho| must exceed 0.65 to differ from 0 at the 5% level
MIN_IMPORTANCE_TRIALS = 10  # a random forest (fANOVA) over fewer configurations ranks by noise ...
IMPORTANCE_TRIALS_PER_PARAM = 2  # ... and so it does with fewer than two per parameter


def importance_trials_needed(n_params: int) -> int:
    """Completed configurations parameter importance needs for `n_params` parameters."""
    return max(MIN_IMPORTANCE_TRIALS, IMPORTANCE_TRIALS_PER_PARAM * n_params)


def t_interval(values: Sequence[float] | np.ndarray, level: float = 0.95, *, lower: float | None = None,
               upper: float | None = None) -> tuple[float, float, float]:
    """(mean, low, high): the Student-t interval of the mean, mean +- t(n-1) * s / sqrt(n), over
    the finite values, intersected with [lower, upper] (the metric's range; None: unbounded).

    The intersection keeps the coverage exactly: the true mean of a metric lies in its range, so
    the part of the interval outside it can never cover it. At the 2 to 5 seeds a study affords
    the t-interval is the honest choice; a percentile bootstrap covers far less than its nominal
    95% there (tests/test_stats.py measures both). NaN bounds when n < 2."""
    x = np.asarray(values, dtype="float64")
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return (float("nan"),) * 3
    mean = float(x.mean())
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    half = float(student_t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    low, high = mean - half, mean + half
    return mean, low if lower is None else max(lower, low), high if upper is None else min(upper, high)


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of a rate k / n: sound at small n and at 0 or n successes,
    unlike the normal approximation. NaN bounds when n = 0."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))


def spearman_interval(rho: float, n: int, z: float = Z95) -> tuple[float, float]:
    """95% interval of a Spearman correlation from n pairs: Fisher's z with the standard error
    sqrt((1 + rho^2 / 2) / (n - 3)) of Bonett and Wright (2000). NaN when n < 4."""
    if n < 4 or not math.isfinite(rho):
        return float("nan"), float("nan")
    r = min(max(rho, -1 + 1e-12), 1 - 1e-12)  # atanh(+-1) is infinite: a perfect rank agreement stays at 1
    half = z * math.sqrt((1 + r * r / 2) / (n - 3))
    return math.tanh(math.atanh(r) - half), math.tanh(math.atanh(r) + half)


def pareto_ranks(points: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Non-dominated sorting: rank 1 for the points no other point dominates (no worse in every
    objective and better in one), rank 2 for those only rank-1 points dominate, and so on.
    `points` is (n, k), one column per objective; ties dominate neither."""
    p = np.asarray(points, dtype="float64").reshape(len(points), len(maximize))
    p = np.where(np.asarray(maximize, dtype=bool)[None, :], -p, p)  # minimise every column
    no_worse = (p[:, None, :] <= p[None, :, :]).all(axis=2)  # [i, j]: i is no worse than j
    better = (p[:, None, :] < p[None, :, :]).any(axis=2)
    dominates = no_worse & better
    ranks = np.zeros(len(p), dtype=np.int64)
    rank = 1
    while (ranks == 0).any():
        left = ranks == 0
        front = left & ~(dominates & left[:, None]).any(axis=0)  # dominated by no point still left
        ranks[front] = rank
        rank += 1
    return ranks


def p_best(values: Mapping[str, Sequence[float]], *, lower_is_better: bool = False) -> dict[str, float]:
    """P(group comes out best) when one value is drawn at random from each group: for each
    value a of group A, the chance that every other group's draw is worse, averaged over A's
    values (ties count half). Exact, no sampling; the chances sum to 1 without ties."""
    sign = -1.0 if lower_is_better else 1.0
    arrays = {k: sign * np.asarray(v, dtype="float64") for k, v in values.items() if len(v)}
    odds = {}
    for k, mine in arrays.items():
        p = np.ones(len(mine))
        for other, theirs in arrays.items():
            if other != k:
                p *= ((theirs[None, :] < mine[:, None]) + 0.5 * (theirs[None, :] == mine[:, None])).mean(axis=1)
        odds[k] = float(p.mean())
    return odds
