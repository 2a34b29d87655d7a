"""FactorVAE score (Kim & Mnih 2018, "Disentangling by Factorising", ICML; section 4, figure 2).

Global scale: the variance of each code over `num_variance_estimate` random inputs; codes whose
standard deviation is below `prune_threshold` (collapsed dimensions) are dropped. One vote: pick
a factor k uniformly, draw `batch_size` factor combinations that all share one value of factor
k, encode them, divide each active code's variance within the batch by its global variance, and
vote (argmin code, k). The classifier is the majority vote: each code predicts the factor it
voted for most often on the training votes; the score is its accuracy on the evaluation votes.
Normalising by the global variance makes the score invariant to rescaling a code.

Defaults as disentanglement_lib (`factor_vae.py`): batch 64, 10,000 training and 5,000
evaluation votes, 10,000 points for the variances, prune at std < 0.05, variances with ddof=1.
Noise scores about chance, 1/F.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .utils import MAX_ROWS_PER_CALL, represent_rows


def compute_factor_vae(represent: Callable[[np.ndarray], np.ndarray], factors, rng: np.random.Generator, *,
                       batch_size: int = 64, num_train: int = 10_000, num_eval: int = 5_000,
                       num_variance_estimate: int = 10_000, prune_threshold: float = 0.05) -> dict[str, float]:
    """FactorVAE score of `represent` ((n, F) int classes -> (n, L) codes) on `factors`; all
    randomness from `rng`. -> {"factor_vae": majority-vote accuracy on the evaluation votes}."""
    global_variances = np.var(represent_rows(represent, factors.sample(num_variance_estimate, rng)), axis=0, ddof=1)
    train_var, train_labels = _sample_votes(represent, factors, rng, num_train, batch_size)
    eval_var, eval_labels = _sample_votes(represent, factors, rng, num_eval, batch_size)
    return _compute_factor_vae(global_variances, train_var, train_labels, eval_var, eval_labels,
                               num_factors=len(factors.sizes), prune_threshold=prune_threshold)


def _sample_votes(represent, factors, rng: np.random.Generator, num_votes: int,
                  batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """-> within-batch variances (num_votes, L) (ddof=1), labels (num_votes,) the fixed factor."""
    num_factors = len(factors.sizes)
    labels = rng.integers(num_factors, size=num_votes)
    classes = factors.sample(num_votes * batch_size, rng).reshape(num_votes, batch_size, num_factors)
    rows = np.arange(num_votes)
    classes[rows, :, labels] = classes[rows, 0, labels][:, None]  # factor k fixed within each batch
    variances = []
    step = max(1, MAX_ROWS_PER_CALL // batch_size)
    for s in range(0, num_votes, step):
        codes = represent_rows(represent, classes[s:s + step].reshape(-1, num_factors))
        variances.append(codes.reshape(-1, batch_size, codes.shape[1]).var(axis=1, ddof=1))
    return np.concatenate(variances), labels


def _compute_factor_vae(global_variances: np.ndarray, train_variances: np.ndarray, train_labels: np.ndarray,
                        eval_variances: np.ndarray, eval_labels: np.ndarray, *, num_factors: int,
                        prune_threshold: float = 0.05) -> dict[str, float]:
    """The score from global variances (L,), within-batch variances (n, L) and fixed-factor
    labels (n,). No active code (all std < prune_threshold) scores 0."""
    active = np.sqrt(global_variances) >= prune_threshold
    if not active.any():
        return {"factor_vae": 0.0}
    scale = global_variances[active]

    def votes(variances: np.ndarray, labels: np.ndarray) -> np.ndarray:  # (F, active codes) counts
        winner = np.argmin(variances[:, active] / scale, axis=1)
        counts = np.zeros((num_factors, int(active.sum())), dtype=np.int64)
        np.add.at(counts, (labels, winner), 1)
        return counts

    classifier = np.argmax(votes(train_variances, train_labels), axis=0)  # (active codes,) -> factor
    eval_votes = votes(eval_variances, eval_labels)
    accuracy = eval_votes[classifier, np.arange(len(classifier))].sum() / max(1, eval_votes.sum())
    return {"factor_vae": float(accuracy)}
