"""DCI: disentanglement, completeness, informativeness (Eastwood & Williams 2018, "A Framework for
the Quantitative Evaluation of Disentangled Representations", ICLR; section 3).

Per factor k, a gradient-boosted tree classifier predicts k's class from all codes; the
importance of code j for factor k is R[j, k] (each column normalised to sum 1). With
P = R / row sums and entropies in base F (rows) and L (columns):

    D_j = 1 - H_F(P[j, :]),   D = sum_j rho_j D_j,   rho_j = sum_k R[j, k] / sum R   (eq. 1-2)
    C_k = 1 - H_L(R~[:, k]),  C = sum_k w_k C_k,    w_k = sum_j R[j, k] / sum R    (eq. 3)
    I   = mean over factors of the test accuracy                                    (section 3, informativeness)

disentanglement_lib (google-research/disentanglement_lib, disentanglement_lib/evaluation/metrics/
dci.py) weighs C by factor importance as written here and reports informativeness as
classification accuracy; 10,000 training and 5,000 test points.

Trees. disentanglement_lib fits sklearn's GradientBoostingClassifier with its defaults (100
rounds, depth 3, learning rate 0.1: per round one regression tree per class on the negative
gradient of the multinomial log loss, splits chosen by the decrease of the squared error, leaves
set by one Newton step times (K-1)/K) and takes its impurity importances: each code's summed
weighted decrease of the squared error over all splits on it. That is `trees="exact"`: 3,300
trees for dsprites_small's 3+6+4+10+10 classes, 45-180 s at 10,000 points on this project's
shared 2-core CPU (docs/bench/dci.md).

The default, `trees="hist"`, runs the same algorithm (`_boosted_trees`: same loss, start, split
criterion, minimum leaf size 1, leaf values, threshold placement and importances) with the
candidate thresholds of each code restricted to at most `max_bins` (256) bins, all trees of a
round and all nodes of a level grown together in numpy from per-bin histograms. A code with at
most `max_bins` distinct values keeps every threshold the exact trees can use; a continuous one
gets quantile bins whose edges move to the widest gap near each quantile (`_bin_edges`), so the
clusters of a near-perfect code stay separable. On the known-answer codes of docs/bench/dci.md
it agrees with the exact trees within 0.01 on D, C and I at 2,000 and 10,000 points, in about
a tenth of their time. Coarser thresholds overfit a little less: on small samples the test
accuracy (I) of entangled codes can read up to ~0.015 higher than the exact trees' (2,000
points, another seed); `max_bins` >= the number of training points removes the difference at
the exact trees' cost.

`trees="hgb"` is the default before: sklearn's HistGradientBoostingClassifier with the same
rounds, depth and rate, 255 quantile bins, and each code's summed Newton split gain as its
importance. Its quantile bins can straddle the gap between two classes of a near-perfect code;
the boosting then keeps splitting other codes to fit the mixed bins, and those gains count as
importance: D 0.976 and I 0.993 where the exact trees read 1.0. Kept to compare with results
computed before.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier

from .utils import parallel_map, represent_rows

TREES = ("hist", "exact", "hgb")
MAX_BINS = 256  # bins per code of trees="hist" (docs/bench/dci.md)


def compute_dci(represent: Callable[[np.ndarray], np.ndarray], factors, rng: np.random.Generator, *,
                num_train: int = 10_000, num_test: int = 5_000, trees: str = "hist", n_estimators: int = 100,
                max_depth: int = 3, learning_rate: float = 0.1, max_bins: int = MAX_BINS,
                n_jobs: int | None = None) -> dict[str, float]:
    """DCI of `represent` ((n, F) int classes -> (n, L) codes) on points drawn from `factors` with
    `rng`; one classifier per factor, `n_jobs` CPUs (None: all this process may use).
    -> {"dci_disentanglement", "dci_completeness", "dci_informativeness"}."""
    train = factors.sample(num_train, rng)
    test = factors.sample(num_test, rng)
    return _compute_dci(represent_rows(represent, train), train, represent_rows(represent, test), test,
                        trees=trees, n_estimators=n_estimators, max_depth=max_depth, learning_rate=learning_rate,
                        max_bins=max_bins, random_state=int(rng.integers(2**31)), n_jobs=n_jobs)


def _compute_dci(codes_train: np.ndarray, classes_train: np.ndarray, codes_test: np.ndarray,
                 classes_test: np.ndarray, *, trees: str = "hist", n_estimators: int = 100, max_depth: int = 3,
                 learning_rate: float = 0.1, max_bins: int = MAX_BINS, random_state: int = 0,
                 n_jobs: int | None = 1) -> dict[str, float]:
    """DCI from codes (n, L) and classes (n, F) of training and test points."""
    importance, accuracy = _importance_matrix(
        codes_train, classes_train, codes_test, classes_test, trees=trees, n_estimators=n_estimators,
        max_depth=max_depth, learning_rate=learning_rate, max_bins=max_bins, random_state=random_state,
        n_jobs=n_jobs)
    return {
        "dci_disentanglement": _disentanglement(importance),
        "dci_completeness": _completeness(importance),
        "dci_informativeness": float(np.mean(accuracy)),
    }


def _importance_matrix(codes_train, classes_train, codes_test, classes_test, *, trees: str, n_estimators: int,
                       max_depth: int, learning_rate: float, random_state: int, n_jobs: int | None,
                       max_bins: int = MAX_BINS) -> tuple[np.ndarray, np.ndarray]:
    """-> importance R (L, F), each column summing to 1 (or 0 when no split was made), and the
    test accuracy (F,) of each factor's classifier. `random_state` seeds the sklearn trees (it
    only breaks ties); the numpy trees are deterministic."""
    if trees not in TREES:
        raise ValueError(f"trees={trees!r} is unknown: use one of {TREES}")
    num_codes, num_factors = codes_train.shape[1], classes_train.shape[1]
    binned = _Binned(codes_train, codes_test, max_bins) if trees == "hist" else None

    def fit(k: int) -> tuple[np.ndarray, float]:
        y = classes_train[:, k]
        if trees == "hist":
            imp, predicted = _boosted_trees(binned, y, n_estimators=n_estimators, max_depth=max_depth,
                                            learning_rate=learning_rate)
        elif trees == "hgb":
            model = HistGradientBoostingClassifier(
                max_iter=n_estimators, max_depth=max_depth, max_leaf_nodes=None, learning_rate=learning_rate,
                early_stopping=False, random_state=random_state).fit(codes_train, y)
            imp, predicted = _hist_gain_importances(model, num_codes), model.predict(codes_test)
        else:
            model = GradientBoostingClassifier(n_estimators=n_estimators, max_depth=max_depth,
                                               learning_rate=learning_rate, random_state=random_state)
            imp = np.abs(model.fit(codes_train, y).feature_importances_)
            predicted = model.predict(codes_test)
        total = imp.sum()
        return (imp / total if total > 0 else imp), float(np.mean(predicted == classes_test[:, k]))

    results = parallel_map(fit, range(num_factors), n_jobs=n_jobs)  # one thread per fit
    importance = np.stack([imp for imp, _ in results], axis=1)  # (L, F)
    return importance, np.array([acc for _, acc in results])


# --- trees="hist": GradientBoostingClassifier's algorithm on binned codes -------------------------
def _bin_edges(column: np.ndarray, max_bins: int) -> np.ndarray:
    """Increasing thresholds (at most max_bins - 1) that cut one code into bins.

    With at most `max_bins` distinct values: the midpoints between consecutive ones, the
    thresholds the exact trees choose from. Otherwise one cut per quantile window (window j holds
    the cuts whose rank is within half a bin of j * n / max_bins), placed at the widest gap between
    consecutive distinct values in the window: on a clustered code that is the gap between two
    clusters whenever the window contains one, so clusters of more than about n / max_bins
    points never share a bin, where plain quantile edges would straddle the gaps.
    """
    values, counts = np.unique(column, return_counts=True)
    if len(values) <= max_bins:
        return (values[:-1].astype(np.float64) + values[1:]) / 2
    below = np.cumsum(counts)[:-1]  # points at or below values[i]: rank of the cut after values[i]
    gaps = np.diff(values.astype(np.float64))
    window = np.floor(below * max_bins / counts.sum() + 0.5).astype(np.int64)
    cuts = np.flatnonzero((window >= 1) & (window < max_bins))
    order = cuts[np.lexsort((-gaps[cuts], window[cuts]))]  # per window, the widest gap first
    _, first = np.unique(window[order], return_index=True)
    chosen = np.sort(order[first])
    return (values[chosen].astype(np.float64) + values[chosen + 1]) / 2


class _Binned:
    """Codes of the training points as bin indices, shared by the factors' fits.

    Codes are cast to float32 first, as GradientBoostingClassifier does, so values equal in
    float32 share a bin. `onehot_t` (L * B, n) has a 1 at row b * L + j of column i when code j of
    training point i falls in bin b: `onehot_t @ weights` sums weights per bin and code.
    `low` / `high` (B * L,): the smallest / largest training value in each bin, at b * L + j;
    test points are routed by value against thresholds placed as sklearn places them.
    """

    def __init__(self, codes_train: np.ndarray, codes_test: np.ndarray, max_bins: int):
        if max_bins < 2:
            raise ValueError(f"max_bins must be >= 2, got {max_bins}")
        train = np.asarray(codes_train, dtype=np.float32)
        test = np.asarray(codes_test, dtype=np.float32)
        if not (np.isfinite(train).all() and np.isfinite(test).all()):
            raise ValueError("DCI: the codes contain NaN or infinite values")
        self.n, self.num_codes = train.shape
        edges = [_bin_edges(train[:, j], max_bins) for j in range(self.num_codes)]
        self.train = np.stack([np.searchsorted(e, train[:, j]) for j, e in enumerate(edges)], axis=1)
        self.test_values = test
        self.num_bins = np.array([len(e) + 1 for e in edges])  # (L,) bins per code
        self.width = int(self.num_bins.max())  # B: histograms are (B, L, ...), short codes zero-padded
        low = np.full((self.width, self.num_codes), np.inf)
        high = np.full((self.width, self.num_codes), -np.inf)
        for j, e in enumerate(edges):  # every bin holds a training value: its edges lie between two
            ordered = np.sort(train[:, j])
            bins = np.searchsorted(e, ordered)
            starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
            low[bins[starts], j] = ordered[starts]
            high[bins[starts], j] = ordered[np.r_[starts[1:], len(ordered)] - 1]
        self.low, self.high = low.ravel(), high.ravel()
        rows = (self.train * self.num_codes + np.arange(self.num_codes)).ravel()
        self.onehot_t = scipy.sparse.csr_matrix(
            (np.ones(len(rows)), rows, np.arange(0, len(rows) + 1, self.num_codes)),
            shape=(self.n, self.width * self.num_codes)).T.tocsr()
        self.root_counts = np.cumsum(np.bincount(rows, minlength=self.width * self.num_codes).reshape(
            self.width, self.num_codes, 1), axis=0).astype(np.float64)  # cumulative, as the histograms below


def _boosted_trees(binned: _Binned, y: np.ndarray, *, n_estimators: int, max_depth: int,
                   learning_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """GradientBoostingClassifier's fit on binned codes -> (L,) unnormalised impurity importances
    and the predicted classes of the test points.

    As sklearn (loss, init and leaf update of `sklearn.ensemble._gb`): K > 2 classes get K trees
    per round fitted to the residuals r = onehot(y) - softmax(raw), 2 classes one tree on
    r = y - sigmoid(raw); raw starts at the log prior. A tree grows depth-first to `max_depth`
    with the split that most decreases the squared error of r, sum_L^2/n_L + sum_R^2/n_R -
    sum^2/n (the friedman_mse criterion with unit weights), any nonempty children; a node whose
    residuals are all equal stays a leaf. A leaf predicts ((K-1)/K for K > 2) sum r / sum p(1-p),
    0 when that sum is below 1e-150, scaled by the learning rate. A code's importance is the
    sum of the decreases of the splits on it (sklearn's feature_importances_ before normalising).

    The threshold lies midway between the largest training value of the node on its left and the
    smallest on its right, as sklearn places it; training points are routed by bin, test points
    by value.

    All trees of a round and all nodes of a level are grown at once: the per-bin sums of the
    residuals and the counts of the left children are one sparse product, cumulated over the
    bins (a right child's are its parent's minus the left child's), and the best threshold of
    every node is one argmax. Ties between equally good splits go to the lowest bin, then the
    lowest code (sklearn draws the order of the codes at random).
    """
    n, num_codes, width = binned.n, binned.num_codes, binned.width
    num_test = len(binned.test_values)
    classes, labels = np.unique(y, return_inverse=True)
    num_classes = len(classes)
    importance = np.zeros(num_codes)
    if num_classes < 2:  # nothing to learn: predict the only class
        return importance, np.full(num_test, classes[0] if num_classes else 0)
    trees = num_classes if num_classes > 2 else 1
    target = np.eye(num_classes)[labels] if num_classes > 2 else labels[:, None].astype(np.float64)
    prior = np.bincount(labels, minlength=num_classes) / n
    start = np.log(prior) if num_classes > 2 else np.array([np.log(prior[1] / prior[0])])
    raw = np.tile(start, (n + num_test, 1))  # training points first, then test points
    leaf_factor = (num_classes - 1) / num_classes if num_classes > 2 else 1.0
    num_nodes = 2 ** (max_depth + 1) - 1  # heap layout: the children of node h are 2h + 1, 2h + 2
    tree = np.arange(trees)
    train_codes, test_codes = binned.train.ravel(), binned.test_values.ravel()
    train_start, test_start = (np.arange(n) * num_codes)[:, None], (np.arange(num_test) * num_codes)[:, None]
    eps = np.finfo(np.float64).eps

    for _ in range(n_estimators):
        if num_classes > 2:
            e = np.exp(raw[:n] - raw[:n].max(axis=1, keepdims=True))
            p = e / e.sum(axis=1, keepdims=True)
        else:
            p = 1.0 / (1.0 + np.exp(-raw[:n]))
        r = target - p  # (n, trees): the negative gradient each tree fits
        node = np.zeros((n + num_test, trees), dtype=np.int64)
        parent = None
        for depth in range(max_depth):
            level_width, first = 2 ** depth, 2 ** depth - 1  # nodes on this level: first ... first + width - 1
            local = node - first
            on_level = (local >= 0) & (local < level_width)
            slot = np.where(on_level, tree * level_width + local, trees * level_width)  # last slot: off the level
            if depth == 0:
                sums = np.cumsum((binned.onehot_t @ r).reshape(width, num_codes, trees), axis=0)
                counts = np.broadcast_to(binned.root_counts, (width, num_codes, trees))
            else:
                sums, counts = _level_histograms(binned, r, local[:n], on_level[:n], parent, trees, level_width)
            best, gain, total, count = _best_splits(sums, counts)
            # the node's squared error per point, as sklearn's MSE criterion computes it: <= eps
            # (all residuals equal) keeps the node a leaf
            sums_node = np.bincount(slot[:n].ravel(), r.ravel(), trees * level_width + 1)[:-1]
            squares = np.bincount(slot[:n].ravel(), (r * r).ravel(), trees * level_width + 1)[:-1]
            with np.errstate(divide="ignore", invalid="ignore"):
                impurity = squares / count - (sums_node / count) ** 2
            split = np.isfinite(gain) & (count >= 2) & (impurity > eps)
            threshold, code = np.divmod(best, num_codes)
            importance += np.bincount(code[split], np.maximum(gain[split], 0.0), num_codes)
            # as sklearn, the threshold lies midway between the node's largest value on the left
            # and smallest on the right: the next bin after `threshold` holding points of the node
            nodes = np.arange(len(best))
            column = counts[:, code, nodes]  # (B, nodes): cumulative counts of the chosen codes
            after = (column > column[threshold, nodes] + 0.5).argmax(axis=0)
            value = (binned.high[best] + binned.low[after * num_codes + code]) / 2
            code, threshold, value, split = (np.append(a, 0) for a in (code, threshold, value, split))
            go_right = np.concatenate([train_codes[train_start + code[slot[:n]]] > threshold[slot[:n]],
                                       test_codes[test_start + code[slot[n:]]] > value[slot[n:]]])
            np.copyto(node, 2 * node + 1 + go_right, where=split.astype(bool)[slot])
            parent = (sums, counts)
        leaf = (tree * num_nodes + node[:n]).ravel()
        numerator = np.bincount(leaf, r.ravel(), trees * num_nodes)
        denominator = np.bincount(leaf, (p * (1.0 - p)).ravel(), trees * num_nodes)
        small = np.abs(denominator) < 1e-150
        value = np.where(small, 0.0, leaf_factor * numerator / np.where(small, 1.0, denominator))
        raw += learning_rate * value[tree * num_nodes + node]
    test_raw = raw[n:]
    predicted = test_raw.argmax(axis=1) if num_classes > 2 else (test_raw[:, 0] > 0).astype(np.int64)
    return importance, classes[predicted]


def _level_histograms(binned: _Binned, r: np.ndarray, local: np.ndarray, on_level: np.ndarray, parent,
                      trees: int, level_width: int) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative per-bin residual sums and counts (B, L, trees * level_width) of the nodes of one
    level below the root: left children (even local index) from one sparse product, right
    children as their parent's cumulative sums minus the left child's."""
    half = level_width // 2
    n = len(r)
    is_left = on_level & (local % 2 == 0)  # (n, trees)
    rhs = np.empty((n, 2, trees, half))  # per point: [residual, 1] in the column of its left child
    for k in range(half):
        np.logical_and(is_left, local // 2 == k, out=rhs[:, 1, :, k], casting="unsafe")
    np.multiply(rhs[:, 1], r[:, :, None], out=rhs[:, 0])
    width, num_codes = binned.width, binned.num_codes
    left = np.cumsum((binned.onehot_t @ rhs.reshape(n, -1)).reshape(width, num_codes, 2, trees, half), axis=0)
    out = []
    for part in range(2):
        both = np.empty((width, num_codes, trees, half, 2))
        both[..., 0] = left[:, :, part]
        np.subtract(parent[part].reshape(width, num_codes, trees, half), left[:, :, part], out=both[..., 1])
        out.append(both.reshape(width, num_codes, trees * level_width))
    return out[0], out[1]


def _best_splits(sums: np.ndarray, counts: np.ndarray):
    """Best threshold of every node from its cumulative per-bin residual sums and counts
    (B, L, nodes: totals over the bins up to b of code j) -> (flat index b * L + j of the best
    threshold, its squared-error decrease (-inf: no threshold leaves both children nonempty),
    the node's residual sum and count), each (nodes,).

    An empty child has a residual sum of exactly 0, so dividing by max(count, 0.5) instead of
    masking scores such a threshold exactly as no split (decrease 0); one is only chosen when no
    threshold decreases the error, and is then reported as -inf. The padding bins of short codes
    repeat the code's last cumulative value: an empty right child."""
    total, count = sums[-1, 0], counts[-1, 0]  # code 0's bins hold every point of the node
    score = np.square(sums)
    score /= np.maximum(counts, 0.5)
    right = total - sums
    right *= right
    right /= np.maximum(count - counts, 0.5)
    score += right
    score = score.reshape(-1, score.shape[-1])
    best = score.argmax(axis=0)
    nodes = np.arange(score.shape[1])
    n_best = counts.reshape(score.shape)[best, nodes] if counts.shape == sums.shape else \
        np.broadcast_to(counts, sums.shape).reshape(score.shape)[best, nodes]
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = score[best, nodes] - total * total / count
    return best, np.where((n_best > 0.5) & (n_best < count - 0.5), gain, -np.inf), total, count


# --- trees="hgb": the previous default --------------------------------------------------------------
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


# --- D and C ---------------------------------------------------------------------------------------
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
