"""SAP score, Separated Attribute Predictability (Kumar et al. 2018, "Variational Inference of
Disentangled Latent Concepts from Unlabeled Observations", ICLR; section 3, "SAP score").

Score matrix S[j, k]: how well code j alone predicts factor k, here (discrete factors) the test
accuracy of a linear classifier trained on that one code. Per factor, the gap between the two best
codes; the score is the mean gap over factors:

    SAP = 1/F * sum_k (S[j1(k), k] - S[j2(k), k])   with j1, j2 the best and second-best codes

Kumar et al. fit "one or more thresholds" on the code per discrete factor (section 3);
disentanglement_lib (`sap_score.py`) fits sklearn's LinearSVC(C=0.01, class_weight="balanced")
one-vs-rest on the raw code, 10,000 training and 5,000 test points. Two changes here, both
options (classifier="svm", C=0.01, standardize_codes=False reproduce disentanglement_lib):
- the code is z-scored with the training mean and std, so that rescaling a code does not change
  its score (a fixed C regularises a small-scale code harder);
- the classifier is a multinomial logistic regression (C=1, balanced class weights) on the one
  code: an argmax of affine functions of a scalar, i.e. thresholds that give each class one
  interval, as Kumar et al. describe. On a single dimension a one-vs-rest linear classifier
  cannot isolate a middle class of an ordered factor: with disentanglement_lib's settings even
  the true posX code of dsprites_small reaches only about 0.3 accuracy over its 10 positions;
  the joint classifier reaches 1. (The joint Crammer-Singer linear SVM does too, but takes
  about 0.3 s per fit on an uninformative code, 15 s for the suite's 50 fits.)

Accuracy has a floor, not 0: a code independent of a factor with K equiprobable classes still
scores about 1/K. So a perfect code scores a gap of about 1 - 1/K, and the ceiling of SAP on
dsprites_small's uniform factors (3, 6, 4, 10, 10 classes) is about 0.82, not 1. Noise scores
near 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from .utils import SOLVER, parallel_map, represent_rows, standardize

CLASSIFIERS = ("logistic", "svm")


def compute_sap(represent: Callable[[np.ndarray], np.ndarray], factors, rng: np.random.Generator, *,
                num_train: int = 10_000, num_test: int = 5_000, classifier: str = "logistic", C: float = 1.0,
                standardize_codes: bool = True, n_jobs: int | None = None) -> dict[str, float]:
    """SAP of `represent` ((n, F) int classes -> (n, L) codes) on points drawn from `factors` with
    `rng`; L x F single-code fits, `n_jobs` in parallel (None: all CPUs this process may use).
    -> {"sap": float}."""
    train = factors.sample(num_train, rng)
    test = factors.sample(num_test, rng)
    return _compute_sap(represent_rows(represent, train), train, represent_rows(represent, test), test,
                        classifier=classifier, C=C, standardize_codes=standardize_codes, n_jobs=n_jobs)


def _compute_sap(codes_train: np.ndarray, classes_train: np.ndarray, codes_test: np.ndarray,
                 classes_test: np.ndarray, *, classifier: str = "logistic", C: float = 1.0,
                 standardize_codes: bool = True, n_jobs: int | None = 1) -> dict[str, float]:
    """SAP from codes (n, L) and classes (n, F) of training and test points."""
    scores = _score_matrix(codes_train, classes_train, codes_test, classes_test, classifier=classifier, C=C,
                           standardize_codes=standardize_codes, n_jobs=n_jobs)
    return {"sap": _top_two_gap(scores)}


def _score_matrix(codes_train, classes_train, codes_test, classes_test, *, classifier: str, C: float,
                  standardize_codes: bool, n_jobs: int | None) -> np.ndarray:
    """(L, F) test accuracy of a classifier on code j alone predicting factor k."""
    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier={classifier!r} is unknown: use one of {CLASSIFIERS}")
    if standardize_codes:
        codes_train, codes_test = standardize(codes_train, codes_test)
    num_factors = classes_train.shape[1]

    def make():
        if classifier == "logistic":
            return LogisticRegression(C=C, class_weight="balanced", solver=SOLVER, max_iter=1000)
        return LinearSVC(C=C, class_weight="balanced")

    def code_row(j: int) -> list[float]:
        x, x_test = codes_train[:, j:j + 1], codes_test[:, j:j + 1]
        row = []
        for k in range(num_factors):
            y = classes_train[:, k]
            if len(np.unique(y)) < 2:  # nothing to learn: predict the only class
                row.append(float(np.mean(classes_test[:, k] == y[0])))
                continue
            with warnings.catch_warnings():  # a code unrelated to the factor need not converge
                warnings.simplefilter("ignore", ConvergenceWarning)
                model = make().fit(x, y)
            row.append(float(np.mean(model.predict(x_test) == classes_test[:, k])))
        return row

    return np.array(parallel_map(code_row, range(codes_train.shape[1]), n_jobs=n_jobs))


def _top_two_gap(scores: np.ndarray) -> float:
    """Mean over factors (columns) of the gap between the two largest entries; one code: the entry."""
    ordered = np.sort(scores, axis=0)
    second = ordered[-2] if len(ordered) > 1 else np.zeros(scores.shape[1])
    return float(np.mean(ordered[-1] - second))
