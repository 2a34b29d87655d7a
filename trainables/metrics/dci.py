"""DCI: disentanglement, completeness, informativeness (Eastwood & Williams 2018, "A Framework for
the Quantitative Evaluation of Disentangled Representations", ICLR; section 3).

Per factor k, a gradient-boosted tree classifier predicts k's class from all codes; the
importance of code j for factor k is R[j, k] (each column normalised to sum 1). With
P = R / row sums and entropies in base F (rows) and L (columns):

    D_j = 1 - H_F(P[j, :]),   D = sum_j rho_j D_j,   rho_j = sum_k R[j, k] / sum R   (eq. 1-2)
    C_k = 1 - H_L(R~[:, k]),  C = sum_k w_k C_k,    w_k = sum_j R[j, k] / sum R    (eq. 3)
    I   = mean over factors of the test accuracy                                    (section 3, informativeness)

disentanglement_lib (`dci.py`) weighs C by factor importance as written here and reports
informativeness as classification accuracy; 10,000 training and 5,000 test points.

Trees. disentanglement_lib fits sklearn's GradientBoostingClassifier with its defaults (100
rounds, depth 3, learning rate 0.1) and takes its impurity importances. Multiclass boosting
grows one tree per class per round: 3,300 trees for dsprites_small's 3+6+4+10+10 classes, which
took 320 s at 10,000 points on the shared 2-core CPU (docs/bench/metrics.md). The default here,
`trees="hist"`, grows the same rounds, depth and rate with HistGradientBoostingClassifier
(features binned into 255 bins; 4 s in the same run) and takes as importance each code's summed
split gain (the loss reduction of the split, the counterpart of the impurity decrease),
normalised per factor as the impurity importances are. `trees="exact"` reproduces
disentanglement_lib's classifier.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier

from .utils import parallel_map, represent_rows

TREES = ("hist", "exact")


def compute_dci(represent: Callable[[np.ndarray], np.ndarray], factors, rng: np.random.Generator, *,
                num_train: int = 10_000, num_test: int = 5_000, trees: str = "hist", n_estimators: int = 100,
                max_depth: int = 3, learning_rate: float = 0.1, n_jobs: int | None = None) -> dict[str, float]:
    """DCI of `represent` ((n, F) int classes -> (n, L) codes) on points drawn from `factors` with
    `rng`; one classifier per factor, `n_jobs` CPUs (None: all this process may use).
    -> {"dci_disentanglement", "dci_completeness", "dci_informativeness"}."""
    train = factors.sample(num_train, rng)
    test = factors.sample(num_test, rng)
    return _compute_dci(represent_rows(represent, train), train, represent_rows(represent, test), test,
                        trees=trees, n_estimators=n_estimators, max_depth=max_depth, learning_rate=learning_rate,
                        random_state=int(rng.integers(2**31)), n_jobs=n_jobs)


def _compute_dci(codes_train: np.ndarray, classes_train: np.ndarray, codes_test: np.ndarray,
                 classes_test: np.ndarray, *, trees: str = "hist", n_estimators: int = 100, max_depth: int = 3,
                 learning_rate: float = 0.1, random_state: int = 0, n_jobs: int | None = 1) -> dict[str, float]:
    """DCI from codes (n, L) and classes (n, F) of training and test points."""
    importance, accuracy = _importance_matrix(
        codes_train, classes_train, codes_test, classes_test, trees=trees, n_estimators=n_estimators,
        max_depth=max_depth, learning_rate=learning_rate, random_state=random_state, n_jobs=n_jobs)
    return {
        "dci_disentanglement": _disentanglement(importance),
        "dci_completeness": _completeness(importance),
        "dci_informativeness": float(np.mean(accuracy)),
    }


def _importance_matrix(codes_train, classes_train, codes_test, classes_test, *, trees: str, n_estimators: int,
                       max_depth: int, learning_rate: float, random_state: int,
                       n_jobs: int | None) -> tuple[np.ndarray, np.ndarray]:
    """-> importance R (L, F), each column summing to 1 (or 0 when no split was made), and the
    test accuracy (F,) of each factor's classifier."""
    if trees not in TREES:
        raise ValueError(f"trees={trees!r} is unknown: use one of {TREES}")
    num_codes, num_factors = codes_train.shape[1], classes_train.shape[1]

    def fit(k: int) -> tuple[np.ndarray, float]:
        y = classes_train[:, k]
        if trees == "hist":
            model = HistGradientBoostingClassifier(
                max_iter=n_estimators, max_depth=max_depth, max_leaf_nodes=None, learning_rate=learning_rate,
                early_stopping=False, random_state=random_state).fit(codes_train, y)
            imp = _hist_gain_importances(model, num_codes)
        else:
            model = GradientBoostingClassifier(n_estimators=n_estimators, max_depth=max_depth,
                                               learning_rate=learning_rate, random_state=random_state)
            imp = np.abs(model.fit(codes_train, y).feature_importances_)
        return imp, float(np.mean(model.predict(codes_test) == classes_test[:, k]))

    results = parallel_map(fit, range(num_factors), n_jobs=n_jobs)  # one thread per fit
    importance = np.stack([imp for imp, _ in results], axis=1)  # (L, F)
    return importance, np.array([acc for _, acc in results])


def _hist_gain_importances(model: HistGradientBoostingClassifier, num_features: int) -> np.ndarray:
    """(num_features,) summed split gain per feature over all trees, normalised to sum 1.

    Reads the fitted predictors' node arrays (fields feature_idx, gain, is_leaf): scikit-learn
    exposes no importances for histogram boosting. tests/test_metrics.py checks the fields."""
    gains = np.zeros(num_features)
    for round_predictors in model._predictors:
        for predictor in round_predictors:
            nodes = predictor.nodes
            split = nodes["is_leaf"] == 0
            np.add.at(gains, nodes["feature_idx"][split], np.maximum(nodes["gain"][split], 0.0))
    total = gains.sum()
    return gains / total if total > 0 else gains


def _entropy_rows(p: np.ndarray, base: int) -> np.ndarray:
    """Entropy in base `base` of each row of non-negative (m, K) weights, normalised per row
    (scipy.stats.entropy of rows + 1e-11, as disentanglement_lib); 0 for base 1."""
    if base <= 1:
        return np.zeros(len(p))
    p = p + 1e-11
    p = p / p.sum(axis=1, keepdims=True)
    return -np.sum(p * np.log(p), axis=1) / np.log(base)


def _disentanglement(importance: np.ndarray) -> float:
    """D from the (L, F) importance matrix: code-weighted 1 - entropy of each row over factors."""
    total = importance.sum()
    if total <= 0:
        return 0.0
    per_code = 1.0 - _entropy_rows(importance, importance.shape[1])
    return float(np.sum(per_code * importance.sum(axis=1) / total))


def _completeness(importance: np.ndarray) -> float:
    """C from the (L, F) importance matrix: factor-weighted 1 - entropy of each column over codes."""
    total = importance.sum()
    if total <= 0:
        return 0.0
    per_factor = 1.0 - _entropy_rows(importance.T, importance.shape[0])
    return float(np.sum(per_factor * importance.sum(axis=0) / total))
