"""analysis.stats on known answers: the intervals (never outside a metric's range, and covering
what they claim on simulated samples), the rank-correlation interval, non-dominated sorting."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.stats import (
    importance_trials_needed,
    pareto_ranks,
    spearman_interval,
    t_interval,
    wilson_interval,
)


def test_t_interval_known_values():
    mean, lo, hi = t_interval(np.array([1.0, 2.0, 3.0]))
    assert mean == 2.0 and hi - mean == pytest.approx(4.302652729911275 / math.sqrt(3))  # t(0.975, 2)
    assert math.isnan(t_interval(np.array([5.0]))[1]) and t_interval(np.array([5.0]))[0] == 5.0
    assert all(math.isnan(v) for v in t_interval(np.array([np.nan])))


def test_t_interval_stays_within_the_range():
    # The case: four MIG-like values near the top, and KL values near 0.
    values = [0.99, 0.80, 0.97, 0.97]
    mean, lo, hi = t_interval(values, lower=0.0, upper=1.0)
    assert hi == 1.0 and lo == pytest.approx(t_interval(values)[1]) and mean == pytest.approx(np.mean(values))
    mean, lo, hi = t_interval([0.5, 30.0, 2.0, 4.0], lower=0.0)
    assert lo == 0.0 and hi == pytest.approx(t_interval([0.5, 30.0, 2.0, 4.0])[2])
    rng = np.random.default_rng(1)
    for _ in range(500):  # any sample of [0, 1] values, any size
        x = rng.beta(0.3, 0.3, size=rng.integers(2, 7))
        _, lo, hi = t_interval(x, lower=0.0, upper=1.0)
        assert 0.0 <= lo <= x.mean() <= hi <= 1.0


def _coverage(draw, truth: float, n: int, reps: int, interval) -> float:
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(reps):
        lo, hi = interval(draw(rng, n))
        hits += lo <= truth <= hi
    return hits / reps


_RESAMPLE = np.random.default_rng(7)


def _bootstrap(x: np.ndarray, b: int = 400) -> tuple[float, float]:
    means = _RESAMPLE.choice(x, size=(b, len(x)), replace=True).mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def test_bounded_t_interval_coverage_on_a_simulated_sample():
    """A score near its floor (Beta(2, 8), mean 0.2, as MIG often is) with 4 seeds: the
    t-interval cut to [0, 1] covers the true mean as often as the uncut one (the cut part can
    never hold it) and about its nominal 95%; the percentile bootstrap, the other candidate,
    covers far less at this n."""
    def draw(rng, n):
        return rng.beta(2.0, 8.0, size=n)

    def bounded(x):
        return t_interval(x, lower=0.0, upper=1.0)[1:]

    def unbounded(x):
        return t_interval(x)[1:]

    cut, plain = (_coverage(draw, 0.2, 4, 2000, f) for f in (bounded, unbounded))
    boot = _coverage(draw, 0.2, 4, 600, _bootstrap)
    assert cut == plain and 0.92 <= cut <= 0.97
    assert boot < 0.85


def test_wilson_interval_known_values():
    assert wilson_interval(0, 4) == (0.0, pytest.approx(0.4899, abs=1e-4))
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(3, 3)[1] == 1.0 and all(math.isnan(v) for v in wilson_interval(0, 0))


def test_spearman_interval():
    # Bonett & Wright (2000): rho = 0.5 from n = 20, SE sqrt(1.125 / 17) on Fisher's z.
    lo, hi = spearman_interval(0.5, 20)
    half = 1.959963984540054 * math.sqrt(1.125 / 17)
    assert (lo, hi) == pytest.approx((math.tanh(math.atanh(0.5) - half), math.tanh(math.atanh(0.5) + half)))
    assert lo < 0.5 < hi and -1 <= lo and hi <= 1
    assert all(math.isnan(v) for v in spearman_interval(0.9, 3))  # n < 4: no interval
    lo4, hi4 = spearman_interval(0.8, 4)  # the case: 4 trials say almost nothing
    assert lo4 < 0 and hi4 > 0.95
    assert spearman_interval(1.0, 10)[1] == pytest.approx(1.0)


def test_pareto_ranks_known_points():
    # (loss down, score up); (2, .5) twice: ties dominate neither; (3, .4) is dominated by
    # (2, .5) only; (1, .05) by (1, .1), itself rank 1.
    points = np.array([[1.0, 0.1], [2.0, 0.5], [2.0, 0.5], [3.0, 0.4], [1.0, 0.05], [4.0, 0.9]])
    assert pareto_ranks(points, [False, True]).tolist() == [1, 1, 1, 2, 2, 1]
    assert pareto_ranks(np.zeros((0, 2)), [False, True]).tolist() == []
    # One objective: the rank of the value; three objectives: brute force.
    assert pareto_ranks(np.array([[3.0], [1.0], [2.0], [1.0]]), [True]).tolist() == [1, 3, 2, 3]
    rng = np.random.default_rng(0)
    p = rng.normal(size=(40, 3))
    ranks = pareto_ranks(p, [True, False, True])
    q = p * np.array([1, -1, 1])  # maximise all
    for i in range(len(p)):
        dominated_by = [j for j in range(len(p)) if (q[j] >= q[i]).all() and (q[j] > q[i]).any()]
        assert (ranks[i] == 1) == (not dominated_by)
        assert all(ranks[j] < ranks[i] for j in dominated_by)


def test_importance_needs():
    assert importance_trials_needed(2) == 10 and importance_trials_needed(9) == 18
