"""Shared helpers of the metrics: histogram discretisation, entropy, vectorised mutual information.

Conventions of the whole package: arrays are row-major samples, codes `(n, L)` float (the encoder
mean), factor classes `(n, F)` int; mutual information and entropy are in nats.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from threadpoolctl import ThreadpoolController

# Solver of every logistic regression: the same objective as scikit-learn's default "lbfgs", a
# Newton method that reaches the optimum in a few iterations on these small dense problems
# (measured: 3-9 iterations against 80-550, 2-10x faster on 10,000 points).
SOLVER = "newton-cholesky"

# Rows handed to a representation function at once by `represent_rows`: bounds the memory of one
# call (2**16 images of 64x64 float32 would be 1 GiB if a caller rendered them in one go).
MAX_ROWS_PER_CALL = 1 << 16


def default_n_jobs() -> int:
    """The CPUs this process may use: $OMP_NUM_THREADS when set (Ray sets it to the trial's CPU
    count), otherwise the CPU affinity of the process."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    if value.strip().isdigit() and int(value) > 0:
        return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def parallel_map(fn: Callable[..., Any], items: Iterable[Any], *, n_jobs: int | None) -> list[Any]:
    """[fn(item) for item in items], with `n_jobs` threads (None: `default_n_jobs()`).

    Threads, not processes: the classifier fits release the GIL (liblinear, scikit-learn's tree
    builders, BLAS), there is nothing to pickle, and there is no process start-up per call.
    Native thread pools (OpenMP, BLAS) are held to one thread meanwhile: the fits are small, and
    a pool per fit on top of the jobs oversubscribes the CPUs (measured: one 5-factor DCI fit
    took 65 s with OpenMP's default threads on a busy 2-core machine, 7.5 s with one thread).
    """
    items = list(items)
    n_jobs = default_n_jobs() if n_jobs is None else int(n_jobs)
    controller = _controller()

    def one_thread(item):
        # OpenMP's thread count is per thread (a limit set in the caller does not reach a worker
        # thread): set it in each worker. The BLAS limit below is process-wide.
        with controller.limit(limits=1, user_api="openmp"):
            return fn(item)

    with controller.limit(limits=1):
        if n_jobs <= 1 or len(items) <= 1:
            return [fn(item) for item in items]
        return Parallel(n_jobs=min(n_jobs, len(items)), prefer="threads")(delayed(one_thread)(i) for i in items)


@functools.cache
def _controller() -> ThreadpoolController:
    """The native thread pools of this process, inspected once (threadpoolctl)."""
    return ThreadpoolController()


def represent_rows(represent: Callable[[np.ndarray], np.ndarray], classes: np.ndarray) -> np.ndarray:
    """Codes of many factor rows: `represent` on (n, F) classes -> (n, L) float64, called on at
    most MAX_ROWS_PER_CALL rows at a time."""
    classes = np.asarray(classes)
    parts = [np.asarray(represent(classes[i:i + MAX_ROWS_PER_CALL]), dtype=np.float64)
             for i in range(0, len(classes), MAX_ROWS_PER_CALL)]
    codes = np.concatenate(parts) if parts else np.zeros((0, 0))
    if codes.ndim != 2 or codes.shape[0] != len(classes):
        raise ValueError(f"the representation function must map (n, F) classes to (n, L) codes; "
                         f"got {codes.shape} for {classes.shape}")
    return codes


def discretize(codes: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """(n, L) codes -> (n, L) int64 bin labels in [0, num_bins), one equal-width histogram per column.

    The bins of `np.histogram(column, num_bins)` (min to max of the column), as
    disentanglement_lib's `_histogram_discretize`; the maximum falls in the last bin. An affine
    map of a column (scale > 0) leaves its labels unchanged, up to rounding at bin edges.
    """
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2:
        raise ValueError(f"codes must be (n, L), got shape {codes.shape}")
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}")
    out = np.empty(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):  # L edges computations; the binning itself is vectorised
        edges = np.histogram_bin_edges(codes[:, j], bins=num_bins)
        out[:, j] = np.digitize(codes[:, j], edges[1:-1])  # interior edges -> labels 0..num_bins-1
    return out


def _relabel(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, K) integer labels -> (n, K) labels 0..m_k-1 per column, and (K,) the counts m_k."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        labels = labels[:, None]
    if labels.ndim != 2:
        raise ValueError(f"labels must be (n,) or (n, K), got shape {labels.shape}")
    out = np.empty(labels.shape, dtype=np.int64)
    sizes = np.empty(labels.shape[1], dtype=np.int64)
    for j in range(labels.shape[1]):
        values, out[:, j] = np.unique(labels[:, j], return_inverse=True)
        sizes[j] = len(values)
    return out, sizes


def entropy(labels: np.ndarray) -> np.ndarray:
    """Plug-in entropy in nats of each column of (n, K) discrete labels -> (K,); of (n,) -> (1,).

    Two equiprobable values give log 2, three give log 3.
    """
    labels, sizes = _relabel(labels)
    n, k = labels.shape
    out = np.zeros(k)
    for j in range(k):
        p = np.bincount(labels[:, j], minlength=sizes[j]) / n
        p = p[p > 0]
        out[j] = -np.sum(p * np.log(p))
    return out


def mutual_information(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Plug-in mutual information in nats between every column of `a` and every column of `b`.

    a: (n, A) discrete labels (e.g. discretised codes), b: (n, B) discrete labels (factor classes)
    -> (A, B). Equal to sklearn.metrics.mutual_info_score(a[:, i], b[:, j]) for every pair.

    Vectorised: every pair's joint label is offset into its own block of one array, so a single
    np.bincount counts all A*B contingency tables; there is no loop over pairs.
    I(X; Y) = sum_xy p(x, y) log(p(x, y) / (p(x) p(y))), over the cells with p(x, y) > 0.
    """
    a, size_a = _relabel(a)
    b, size_b = _relabel(b)
    if len(a) != len(b):
        raise ValueError(f"a and b must have the same number of rows, got {len(a)} and {len(b)}")
    n, na = a.shape
    nb = b.shape[1]
    ka, kb = int(size_a.max(initial=1)), int(size_b.max(initial=1))
    block = ka * kb
    pair = np.arange(na * nb, dtype=np.int64).reshape(na, nb)  # (A, B) block of each pair
    # joint[i, j, s] = pair (i, j)'s cell of sample s
    joint = pair[:, :, None] * block + (a.T[:, None, :] * kb + b.T[None, :, :])  # (A, B, n)
    counts = np.bincount(joint.ravel(), minlength=na * nb * block).reshape(na, nb, ka, kb).astype(np.float64)
    count_a = counts.sum(axis=3, keepdims=True)  # (A, B, ka, 1)
    count_b = counts.sum(axis=2, keepdims=True)  # (A, B, 1, kb)
    nz = counts > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(nz, counts / n * np.log(counts * n / (count_a * count_b)), 0.0)
    return np.clip(terms.sum(axis=(2, 3)), 0.0, None)  # as sklearn: MI >= 0 despite rounding


def standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """z-score the columns of (n, L) `train` with its own mean and std, and `others` with the same
    statistics; constant columns are only centred."""
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return [(x - mean) / std for x in (train, *others)]
