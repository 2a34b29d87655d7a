"""Mutual Information Gap (Chen et al. 2018, "Isolating Sources of Disentanglement in Variational
Autoencoders", NeurIPS; section 4.1, equation (6)).

    MIG = 1/F * sum_k (I(z_j(k); v_k) - max_{j != j(k)} I(z_j; v_k)) / H(v_k),   j(k) = argmax_j I(z_j; v_k)

Per factor k, the gap between the two codes with the largest mutual information with it,
normalised by the factor's entropy; the mean over factors. As in disentanglement_lib
(`mig.py`), the mutual information is the plug-in estimate between each code discretised into a
20-bin equal-width histogram and the factor's classes (nats), on 10,000 sampled points, not
Chen's own estimator on the full data set: published values move with the estimator.

A code copied into two dimensions has a gap of 0 for its factor. Noise scores near 0; the
factors themselves score about 1 (the small positive MI bias of the other codes aside).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .utils import discretize, entropy, mutual_information, represent_rows


def compute_mig(represent: Callable[[np.ndarray], np.ndarray], factors, rng: np.random.Generator, *,
                num_train: int = 10_000, num_bins: int = 20) -> dict[str, float]:
    """MIG of `represent` ((n, F) int classes -> (n, L) codes) on `num_train` points drawn from
    `factors` with `rng`. -> {"mig": float}."""
    classes = factors.sample(num_train, rng)
    return _compute_mig(represent_rows(represent, classes), classes, num_bins=num_bins)


def _compute_mig(codes: np.ndarray, classes: np.ndarray, *, num_bins: int = 20) -> dict[str, float]:
    """MIG from codes (n, L) and factor classes (n, F). Factors that are constant in the sample
    (entropy 0) are left out of the mean."""
    mi = mutual_information(discretize(codes, num_bins), classes)  # (L, F)
    h = entropy(classes)  # (F,)
    top = np.sort(mi, axis=0)[::-1]  # (L, F) descending per factor
    second = top[1] if len(top) > 1 else np.zeros(mi.shape[1])
    keep = h > 0
    if not keep.any():
        return {"mig": 0.0}
    return {"mig": float(np.mean((top[0] - second)[keep] / h[keep]))}
