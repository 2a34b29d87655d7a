"""The statistics the charts, the report and the paper comparison compute, on plain arrays.

A study affords a handful of seeds per configuration, so every interval here is one that
holds at small n: the Student-t interval of a mean, the Wilson interval of a rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import t as student_t

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def t_interval(values: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval for the mean, mean +- t(n-1) * s / sqrt(n), over
    the finite values. With the handful of seeds a study affords, the t-interval is the honest
    choice: a bootstrap percentile interval is too narrow at n = 3 to 5. NaN bounds when n < 2."""
    x = np.asarray(values, dtype="float64")
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return (float("nan"),) * 3
    mean = float(x.mean())
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    half = float(student_t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of a rate k / n: sound at small n and at 0 or n successes,
    unlike the normal approximation. NaN bounds when n = 0."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))


def non_dominated(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Minimise x, maximise y: True where no other point is no worse in both and better in
    one. (n^2 in memory, fine for the thousands of trials a study has.)"""
    if len(x) == 0:
        return np.zeros(0, dtype=bool)
    no_worse = (x[None, :] <= x[:, None]) & (y[None, :] >= y[:, None])
    better = (x[None, :] < x[:, None]) | (y[None, :] > y[:, None])
    return ~(no_worse & better).any(axis=1)


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
