"""Modularity (Ridgeway & Mozer 2018, "Learning Deep Disentangled Embeddings with the F-Statistic
Loss", NeurIPS; section 3, "modularity").

Per code j, with m_jk the mutual information between code j and factor k and theta_j its
maximum over k:

    delta_j = sum_{k != argmax} m_jk^2 / (theta_j^2 * (F - 1)),   modularity_j = 1 - delta_j

and the score is the mean over codes (a code with no information scores 0). The mutual
information is the plug-in estimate on 20-bin histograms of the codes (disentanglement_lib's
`modularity_explicitness.py`), 10,000 points.

A code that depends on one factor scores 1 however many codes copy it (modularity stays when a
factor is duplicated); a code mixing two factors scores less. Independent noise does NOT score
0: its small, uneven MIs still have a maximum, and with 10,000 points and 20 bins Gaussian noise
scores about 0.70 (tests/test_metrics.py measures it). Modularity alone never certifies disentanglement.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .utils import discretize, mutual_information, represent_rows


def compute_modularity(represent: Callable[[np.ndarray], np.ndarray], factors, rng: np.random.Generator, *,
                       num_train: int = 10_000, num_bins: int = 20) -> dict[str, float]:
    """Modularity of `represent` ((n, F) int classes -> (n, L) codes) on `num_train` points drawn
    from `factors` with `rng`. -> {"modularity": float}."""
    classes = factors.sample(num_train, rng)
    return _compute_modularity(represent_rows(represent, classes), classes, num_bins=num_bins)


def _compute_modularity(codes: np.ndarray, classes: np.ndarray, *, num_bins: int = 20) -> dict[str, float]:
    """Modularity from codes (n, L) and factor classes (n, F), F >= 2."""
    if classes.shape[1] < 2:
        raise ValueError(f"modularity needs at least 2 factors, got classes of shape {classes.shape}")
    return {"modularity": _modularity(mutual_information(discretize(codes, num_bins), classes))}


def _modularity(mi: np.ndarray) -> float:
    """Modularity from the (L, F) mutual information matrix."""
    squared = np.square(mi)
    theta2 = squared.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = (squared.sum(axis=1) - theta2) / (theta2 * (mi.shape[1] - 1))
    score = np.where(theta2 > 0, 1.0 - delta, 0.0)
    return float(score.mean())
