"""Explicitness (Ridgeway & Mozer 2018, "Learning Deep Disentangled Embeddings with the F-Statistic
Loss", NeurIPS; section 3, "explicitness").

Per factor, a logistic regression predicts the factor's class from all codes, z-scored with the
training points' mean and standard deviation; its one-vs-rest ROC-AUC per class on held-out
points, averaged over classes (macro), is the factor's explicitness; the score is the mean over
factors. disentanglement_lib (`modularity_explicitness.py`) does the same with 10,000 training
and 5,000 test points and sklearn's LogisticRegression (C=1, here multinomial, scikit-learn's
default). Chance is 0.5; a linearly decodable factor scores about 1, and since the codes are
z-scored the score does not change when a code is rescaled.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from .utils import SOLVER, parallel_map, represent_rows, standardize


def compute_explicitness(represent: Callable[[np.ndarray], np.ndarray], factors, rng: np.random.Generator, *,
                         num_train: int = 10_000, num_test: int = 5_000, C: float = 1.0,
                         n_jobs: int | None = None) -> dict[str, float]:
    """Explicitness of `represent` ((n, F) int classes -> (n, L) codes) on points drawn from
    `factors` with `rng`; one fit per factor, `n_jobs` in parallel (None: all CPUs this process
    may use). -> {"explicitness": float}."""
    train = factors.sample(num_train, rng)
    test = factors.sample(num_test, rng)
    return _compute_explicitness(represent_rows(represent, train), train, represent_rows(represent, test), test,
                                 C=C, n_jobs=n_jobs)


def _compute_explicitness(codes_train: np.ndarray, classes_train: np.ndarray, codes_test: np.ndarray,
                          classes_test: np.ndarray, *, C: float = 1.0, n_jobs: int | None = 1) -> dict[str, float]:
    """Explicitness from codes (n, L) and classes (n, F) of training and test points."""
    x_train, x_test = standardize(codes_train, codes_test)

    def factor_score(k: int) -> float:
        model = LogisticRegression(C=C, solver=SOLVER, max_iter=1000).fit(x_train, classes_train[:, k])
        return _macro_auc(classes_test[:, k], model.predict_proba(x_test), model.classes_)

    scores = parallel_map(factor_score, range(classes_train.shape[1]), n_jobs=n_jobs)
    return {"explicitness": float(np.mean(scores))}


def _macro_auc(labels: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """Mean over classes of the one-vs-rest ROC-AUC of proba[:, c] for `labels == classes[c]`;
    classes absent from `labels` (or covering all of it) are left out; 0.5 if none remains."""
    aucs = []
    for c, cls in enumerate(classes):
        positive = labels == cls
        if 0 < positive.sum() < len(labels):
            aucs.append(roc_auc_score(positive, proba[:, c]))
    return float(np.mean(aucs)) if aucs else 0.5
