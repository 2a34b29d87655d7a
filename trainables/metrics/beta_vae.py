"""beta-VAE score (Higgins et al. 2017, "beta-VAE: Learning basic visual concepts with a
constrained variational framework", ICLR; section 3 and appendix A.4).

One training point: pick a factor k uniformly; draw two batches of `batch_size` factor
combinations that share the value of factor k row by row (the other factors independent);
encode both; the point's feature is the mean over the batch of |r1 - r2| (an (L,) vector), its
label is k. A linear classifier (logistic regression) learns to predict k from the feature;
the score is its accuracy on independently drawn evaluation points. A code that holds factor k
alone has zero difference in that dimension, so the classifier wins.

Defaults as disentanglement_lib (`beta_vae.py`): batch 64, 10,000 training and 5,000
evaluation points, sklearn's LogisticRegression (C=1). One change: the features are z-scored
with the training points' mean and std before the fit. The classifier's family is the same, but
the regularisation no longer depends on the codes' scale, and the fit converges in a few
iterations instead of hundreds (raw features of very different scales). Noise scores chance, 1/F.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from .utils import MAX_ROWS_PER_CALL, SOLVER, represent_rows, standardize


def compute_beta_vae(represent: Callable[[np.ndarray], np.ndarray], factors, rng: np.random.Generator, *,
                     batch_size: int = 64, num_train: int = 10_000, num_eval: int = 5_000) -> dict[str, float]:
    """beta-VAE score of `represent` ((n, F) int classes -> (n, L) codes) on `factors` (a
    FactorSpace: `sizes`, `sample(n, rng)`); all randomness from `rng`. -> {"beta_vae": accuracy}."""
    train_x, train_y = _sample_points(represent, factors, rng, num_train, batch_size)
    eval_x, eval_y = _sample_points(represent, factors, rng, num_eval, batch_size)
    return _compute_beta_vae(train_x, train_y, eval_x, eval_y, random_state=int(rng.integers(2**31)))


def _sample_points(represent, factors, rng: np.random.Generator, num_points: int,
                   batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """-> features (num_points, L) mean |r1 - r2| over each batch pair, labels (num_points,) factor k."""
    num_factors = len(factors.sizes)
    labels = rng.integers(num_factors, size=num_points)
    first = factors.sample(num_points * batch_size, rng).reshape(num_points, batch_size, num_factors)
    second = factors.sample(num_points * batch_size, rng).reshape(num_points, batch_size, num_factors)
    rows = np.arange(num_points)
    second[rows, :, labels] = first[rows, :, labels]  # (n, B): the pair shares factor k row by row
    features = []
    step = max(1, MAX_ROWS_PER_CALL // batch_size)  # points per representation call
    for s in range(0, num_points, step):
        r1 = represent_rows(represent, first[s:s + step].reshape(-1, num_factors))
        r2 = represent_rows(represent, second[s:s + step].reshape(-1, num_factors))
        features.append(np.abs(r1 - r2).reshape(-1, batch_size, r1.shape[1]).mean(axis=1))  # (chunk, L)
    return np.concatenate(features), labels


def _compute_beta_vae(train_features: np.ndarray, train_labels: np.ndarray, eval_features: np.ndarray,
                      eval_labels: np.ndarray, *, C: float = 1.0, random_state: int = 0) -> dict[str, float]:
    """The score from features (n, L) and factor labels (n,): evaluation accuracy of a logistic
    regression trained on the training points' z-scored features."""
    x_train, x_eval = standardize(train_features, eval_features)
    with threadpool_limits(limits=1, user_api="blas"):  # a small fit: BLAS threads only add overhead
        model = LogisticRegression(C=C, solver=SOLVER, max_iter=1000, random_state=random_state)
        model.fit(x_train, train_labels)
    return {"beta_vae": float(model.score(x_eval, eval_labels))}
