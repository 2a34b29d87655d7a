"""Known-answer tests of trainables.metrics (docs/metrics.md).

Most tests use a small synthetic factor space and representations whose answers are known (the
factors themselves, independent noise, a permutation and rescaling, a duplicated factor, mixed
factors), so they need neither a model nor the data package. The last ones run `evaluate` end
to end on dsprites_small with a randomly initialised VAE.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import mutual_info_score

from trainables.metrics import (
    compute_beta_vae,
    compute_dci,
    compute_explicitness,
    compute_factor_vae,
    compute_mig,
    compute_modularity,
    compute_sap,
    dci,
    factor_vae,
    mig,
    modularity,
    sap,
    unsupervised,
    utils,
)
from trainables.metrics.evaluate import PRESETS, evaluate, metric_rng
from trainables.vocabulary import metric_keys

SIZES = (3, 6, 4, 10, 10)  # dsprites_small's grid
SAP_CEILING = float(np.mean([1 - 1 / k for k in SIZES]))  # a perfect code still leaves chance to the runner-up


@dataclass(frozen=True)
class Grid:
    """A FactorSpace-like grid: `sizes`, `sample(n, rng)`, `index(classes)`."""

    sizes: tuple[int, ...]

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, np.asarray(self.sizes), size=(n, len(self.sizes)))

    def index(self, classes: np.ndarray) -> np.ndarray:
        return np.ravel_multi_index(np.asarray(classes).T, self.sizes)


GRID = Grid(SIZES)


def _noise(seed: int = 1, dim: int = 10):
    rng = np.random.default_rng(seed)
    return lambda classes: rng.normal(size=(len(classes), dim))  # independent of the factors


REPRESENTATIONS = {
    "factors": lambda c: c.astype(float),
    "noise": _noise(),
    # permuted, rescaled (one negative scale) and shifted factors
    "permuted": lambda c: c[:, [3, 0, 4, 2, 1]] * np.array([2.0, -0.5, 7.0, 0.1, 3.0]) + 5.0,
    "duplicated": lambda c: c[:, [0, 0, 1, 2, 3, 4]].astype(float),  # factor 0 in two codes
    "mixed": lambda c: np.stack([c[:, 0], c[:, 1], c[:, 2], c[:, 3] + c[:, 4], c[:, 3] - c[:, 4]], 1).astype(float),
}

# Sample counts of the known-answer tests: enough for clear answers, small enough to be fast.
COUNTS = {
    "beta_vae": (compute_beta_vae, dict(num_train=1_000, num_eval=500)),
    "factor_vae": (compute_factor_vae, dict(num_train=1_000, num_eval=500, num_variance_estimate=2_000)),
    "mig": (compute_mig, dict(num_train=5_000)),
    "modularity": (compute_modularity, dict(num_train=5_000)),
    "explicitness": (compute_explicitness, dict(num_train=2_000, num_test=1_000, n_jobs=2)),
    "dci": (compute_dci, dict(num_train=2_000, num_test=1_000, n_estimators=30, n_jobs=2)),
    "sap": (compute_sap, dict(num_train=2_000, num_test=1_000, n_jobs=2)),
}


@pytest.fixture(scope="module")
def scores():
    """name of representation -> all metric values (computed once per module, lazily)."""
    cache: dict[str, dict[str, float]] = {}

    def get(name: str) -> dict[str, float]:
        if name not in cache:
            out: dict[str, float] = {}
            for metric, (fn, kwargs) in COUNTS.items():
                out.update(fn(REPRESENTATIONS[name], GRID, metric_rng(0, metric), **kwargs))
            cache[name] = out
        return cache[name]

    return get


# --- helpers: mutual information, entropy, discretisation -----------------------------------------------
def test_mutual_information_equals_sklearn_on_random_discrete_data():
    rng = np.random.default_rng(0)
    a = np.stack([rng.integers(0, k, 2_000) for k in (2, 5, 20)], axis=1)
    b = np.stack([rng.integers(0, k, 2_000) for k in (3, 10)] + [a[:, 1] * 2 + rng.integers(0, 2, 2_000)], axis=1)
    b[:, 0] += 7  # labels need not start at 0
    mi = utils.mutual_information(a, b)
    assert mi.shape == (3, 3)
    for i in range(3):
        for j in range(3):
            assert mi[i, j] == pytest.approx(mutual_info_score(a[:, i], b[:, j]), abs=1e-9)


def test_entropies_are_exact():
    assert utils.entropy(np.array([0, 1] * 50))[0] == pytest.approx(math.log(2), abs=1e-12)
    assert utils.entropy(np.array([4, 7, 9] * 50))[0] == pytest.approx(math.log(3), abs=1e-12)
    assert utils.entropy(np.zeros(10, dtype=int))[0] == 0.0
    both = utils.entropy(np.stack([np.tile([0, 1], 30), np.tile([0, 1, 2], 20)], axis=1))
    np.testing.assert_allclose(both, [math.log(2), math.log(3)], atol=1e-12)


def test_discretize_matches_disentanglement_lib_and_ignores_affine_maps():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(1_000, 3))
    labels = utils.discretize(codes, 20)
    for j in range(3):  # disentanglement_lib: np.digitize(x, np.histogram(x, bins)[1][:-1]), labels 1..bins
        reference = np.digitize(codes[:, j], np.histogram(codes[:, j], 20)[1][:-1]) - 1
        np.testing.assert_array_equal(labels[:, j], reference)
    assert labels.min() == 0 and labels.max() == 19
    np.testing.assert_array_equal(utils.discretize(codes * 4.0 + 1.0, 20), labels)
    assert len(np.unique(utils.discretize(np.ones((5, 1)), 20))) == 1  # a constant code is one bin


# --- known answers through the public functions ---------------------------------------------------------
def test_ground_truth_factors_score_the_maximum(scores):
    s = scores("factors")
    for key in ("beta_vae", "factor_vae", "mig", "modularity", "explicitness",
                "dci_disentanglement", "dci_completeness", "dci_informativeness"):
        assert s[key] > 0.97, (key, s[key])
    assert s["sap"] > 0.95 * SAP_CEILING  # the ceiling of accuracy-based SAP, about 0.82


def test_independent_noise_scores_chance(scores):
    s = scores("noise")
    chance = 1 / len(SIZES)
    assert abs(s["beta_vae"] - chance) < 0.06
    assert abs(s["factor_vae"] - chance) < 0.08
    assert s["mig"] < 0.02
    assert s["sap"] < 0.03
    assert abs(s["explicitness"] - 0.5) < 0.04
    assert s["dci_disentanglement"] < 0.1 and s["dci_completeness"] < 0.1
    assert s["dci_informativeness"] < float(np.mean([1 / k for k in SIZES])) + 0.05


def test_modularity_of_noise_is_about_0_7_not_0():
    # 10,000 points, 20 bins, independent Gaussian noise -> about 0.70 (the plug-in MI bias has a maximum).
    value = compute_modularity(_noise(seed=3), GRID, np.random.default_rng(0), num_train=10_000)["modularity"]
    assert 0.6 < value < 0.8


def test_permuting_and_rescaling_the_factors_changes_nothing(scores):
    base, moved = scores("factors"), scores("permuted")
    for key, value in base.items():
        assert moved[key] == pytest.approx(value, abs=0.02), key
    assert moved["mig"] == pytest.approx(base["mig"], abs=1e-9)  # histograms ignore affine maps exactly
    assert moved["modularity"] == pytest.approx(base["modularity"], abs=1e-9)


def test_a_factor_copied_into_two_codes_drops_mig_not_modularity(scores):
    base, dup = scores("factors"), scores("duplicated")
    assert dup["mig"] < base["mig"] - 0.15  # factor 0's gap is 0: MIG loses about 1/F
    assert dup["modularity"] > 0.99
    assert dup["sap"] < base["sap"] - 0.1


def test_a_code_mixing_two_factors_drops_modularity(scores):
    base, mixed = scores("factors"), scores("mixed")
    assert mixed["modularity"] < base["modularity"] - 0.05
    assert mixed["mig"] < base["mig"] - 0.2
    assert mixed["dci_disentanglement"] < base["dci_disentanglement"] - 0.1


def test_results_are_seeded():
    rep = _noise(seed=5)
    one = compute_explicitness(lambda c: c + 0.0, GRID, np.random.default_rng(7), num_train=300, num_test=200)
    two = compute_explicitness(lambda c: c + 0.0, GRID, np.random.default_rng(7), num_train=300, num_test=200)
    assert one == two
    a = compute_mig(rep, GRID, np.random.default_rng(1), num_train=500)
    b = compute_mig(rep, GRID, np.random.default_rng(2), num_train=500)
    assert a != b


def test_mig_is_not_capped_by_extra_latents():
    # The report reads 0.5 as MIG's best value with twice as many latents as factors; unused
    # latents carry no information about a factor, so the true factors plus five noise latents
    # still score about 1 (docs/paper.md).
    noise = np.random.default_rng(7)
    rep = lambda c: np.concatenate([c.astype(float), noise.normal(size=(len(c), 5))], 1)  # noqa: E731
    assert compute_mig(rep, GRID, np.random.default_rng(0), num_train=10_000)["mig"] > 0.99


# --- the pure functions on arrays -----------------------------------------------------------------------
def test_mig_pure_function_on_a_balanced_design():
    f = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 25)  # two independent binary factors, exactly balanced
    assert mig._compute_mig(f.astype(float), f)["mig"] == pytest.approx(1.0, abs=1e-12)
    assert mig._compute_mig(f[:, [0, 0]].astype(float), f)["mig"] == pytest.approx(0.0, abs=1e-12)


def test_modularity_formula():
    assert modularity._modularity(np.array([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(1.0)
    assert modularity._modularity(np.array([[1.0, 1.0], [0.0, 0.0]])) == pytest.approx(0.0)
    # squared MIs (4, 1, 1): delta = 2 / (4 * 2) = 0.25
    assert modularity._modularity(np.array([[2.0, 1.0, 1.0]])) == pytest.approx(0.75)


def test_dci_disentanglement_and_completeness_formulas():
    eye = np.eye(5)
    assert dci._disentanglement(eye) == pytest.approx(1.0, abs=1e-6)
    assert dci._completeness(eye) == pytest.approx(1.0, abs=1e-6)
    uniform = np.full((5, 5), 0.2)
    assert dci._disentanglement(uniform) == pytest.approx(0.0, abs=1e-9)
    assert dci._completeness(uniform) == pytest.approx(0.0, abs=1e-9)
    one_code = np.zeros((5, 5))
    one_code[0] = 1.0  # code 0 carries every factor
    assert dci._disentanglement(one_code) == pytest.approx(0.0, abs=1e-6)
    assert dci._completeness(one_code) == pytest.approx(1.0, abs=1e-6)
    assert dci._disentanglement(np.zeros((3, 2))) == 0.0


def test_dci_hist_gain_importances_find_the_informative_code():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1_000, 4))
    y = (x[:, 2] > 0).astype(int) + (x[:, 2] > 1).astype(int)
    model = HistGradientBoostingClassifier(max_iter=10, max_depth=3, early_stopping=False).fit(x, y)
    imp = dci._hist_gain_importances(model, 4)  # reads the predictors' node fields: fails if they change
    assert imp.sum() == pytest.approx(1.0)
    assert imp.argmax() == 2 and imp[2] > 0.9


def _dci_case(case: str, num_train: int, num_test: int, seed: int = 0):
    """Codes with known answers on dsprites_small's grid, as bench/bench_dci.py builds them:
    `factors` (the classes + N(0, 0.1^2)), `noise` (five N(0, 1) latents), `rotated` (the classes
    times a random rotation + the same noise), `extra` (`factors` + five N(0, 1) latents)."""
    sizes = np.array(SIZES)
    rng = np.random.default_rng(seed)
    classes_train = rng.integers(0, sizes, size=(num_train, len(SIZES)))
    classes_test = rng.integers(0, sizes, size=(num_test, len(SIZES)))
    rotation, _ = np.linalg.qr(np.random.default_rng(seed + 100).normal(size=(len(SIZES), len(SIZES))))
    noise = np.random.default_rng(seed + 1)

    def code(classes):
        x = classes.astype(np.float64)
        if case == "noise":
            return noise.normal(size=(len(x), 5))
        if case == "rotated":
            x = x @ rotation
        x = x + 0.1 * noise.normal(size=x.shape)
        if case == "extra":
            x = np.concatenate([x, noise.normal(size=(len(x), 5))], axis=1)
        return x

    return code(classes_train), classes_train, code(classes_test), classes_test


DCI_CASES = ("factors", "noise", "rotated", "extra")


@pytest.mark.parametrize("case", DCI_CASES)
def test_dci_default_trees_agree_with_the_exact_trees(case):
    # 500 points, 30 rounds (fast); the slow test below has the `full` preset's 100 rounds at
    # 2,000 points, docs/bench/dci.md 10,000. The default bins each code into 256 bins here.
    arrays = _dci_case(case, 500, 250)
    hist = dci._compute_dci(*arrays, n_estimators=30, n_jobs=2)
    exact = dci._compute_dci(*arrays, trees="exact", n_estimators=30, n_jobs=2)
    for key in hist:
        assert hist[key] == pytest.approx(exact[key], abs=0.01), key


@pytest.mark.slow
@pytest.mark.parametrize("case", DCI_CASES)
def test_dci_default_trees_agree_with_the_exact_trees_at_2000_points(case):
    # 2,000 continuous values per code in 256 bins, 100 rounds as the `full` preset (docs/bench/
    # dci.md has the 10,000-point numbers). About 10 s each.
    arrays = _dci_case(case, 2_000, 1_000)
    hist = dci._compute_dci(*arrays, n_jobs=2)
    exact = dci._compute_dci(*arrays, trees="exact", n_jobs=2)
    for key in hist:
        assert hist[key] == pytest.approx(exact[key], abs=0.01), key


def test_dci_default_reads_1_on_a_near_perfect_code():
    # The factors + small noise + five noise latents, more distinct values than bins: the former
    # default (HistGradientBoostingClassifier, 255 quantile bins, gain importances) read D 0.98 here.
    noise = np.random.default_rng(3)
    rep = lambda c: np.concatenate([c + 0.1 * noise.normal(size=c.shape), noise.normal(size=(len(c), 5))], 1)  # noqa: E731
    s = compute_dci(rep, GRID, np.random.default_rng(0), num_train=2_000, num_test=1_000, n_estimators=30, n_jobs=2)
    for key, value in s.items():
        assert value > 0.999, (key, value)


def test_dci_bins_keep_the_clusters_of_a_near_perfect_code_apart():
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 10, size=5_000)
    code = (classes + 0.1 * rng.normal(size=5_000)).astype(np.float32)
    gaps = [(code[classes == k].max(), code[classes == k + 1].min()) for k in range(9)]
    edges = dci._bin_edges(code, 64)
    assert len(edges) <= 63 and np.all(np.diff(edges) > 0)
    assert all(((edges > hi) & (edges < lo)).any() for hi, lo in gaps)  # an edge in every gap
    counts = np.bincount(np.searchsorted(edges, code))
    assert counts.min() > 0 and counts.max() < 3 * len(code) / 64  # still about quantile bins
    # plain quantile edges (as HistGradientBoostingClassifier's bins) leave some gaps without one
    quantiles = np.quantile(code, np.linspace(0, 1, 65)[1:-1])
    assert not all(((quantiles > hi) & (quantiles < lo)).any() for hi, lo in gaps)
    few = np.array([0.5, 0.5, 2.0, 3.0], dtype=np.float32)
    np.testing.assert_array_equal(dci._bin_edges(few, 64), [1.25, 2.5])  # few values: every midpoint


def test_dci_default_trees_match_sklearn_on_two_classes_and_skip_a_constant_factor():
    from sklearn.ensemble import GradientBoostingClassifier

    rng = np.random.default_rng(0)
    x, x_test = rng.normal(size=(600, 3)), rng.normal(size=(300, 3))
    y = (x[:, 0] + 0.5 * rng.normal(size=600) > 0).astype(int) + 4  # two classes, labels 4 and 5
    model = GradientBoostingClassifier(random_state=0).fit(x, y)
    # 1,024 bins > 600 points: every threshold, as the exact trees
    imp, predicted = dci._boosted_trees(dci._Binned(x, x_test, 1_024), y, n_estimators=100, max_depth=3,
                                        learning_rate=0.1)
    np.testing.assert_allclose(imp / imp.sum(), model.feature_importances_, atol=0.01)
    assert np.mean(predicted == model.predict(x_test)) > 0.98
    classes = np.stack([y, np.zeros(600, dtype=int)], axis=1)  # factor 1 has one class only
    classes_test = np.stack([model.predict(x_test), np.zeros(300, dtype=int)], axis=1)
    importance, accuracy = dci._importance_matrix(x, classes, x_test, classes_test, trees="hist", n_estimators=100,
                                                  max_depth=3, learning_rate=0.1, random_state=0, n_jobs=1)
    assert np.all(importance[:, 1] == 0) and accuracy[1] == 1.0  # nothing to learn: its only class
    assert accuracy[0] > 0.9 and importance[:, 0].argmax() == 0
    with pytest.raises(ValueError, match="NaN"):
        dci._compute_dci(np.full((10, 2), np.nan), classes[:10], x_test[:5, :2], classes[:5])


def test_dci_tree_variants_and_unknown_ones():
    rng = np.random.default_rng(0)
    train, test = GRID.sample(600, rng), GRID.sample(300, rng)
    kwargs = dict(n_estimators=10, n_jobs=1)
    hist = dci._compute_dci(train + 0.0, train, test + 0.0, test, **kwargs)
    for trees in ("exact", "hgb"):
        other = dci._compute_dci(train + 0.0, train, test + 0.0, test, trees=trees, **kwargs)
        for key in hist:
            assert hist[key] == pytest.approx(other[key], abs=0.02), (trees, key)
    with pytest.raises(ValueError, match="trees"):
        dci._compute_dci(train + 0.0, train, test + 0.0, test, trees="xgboost")


def test_factor_vae_majority_vote_and_pruning():
    labels = np.array([0, 1, 2, 0, 1, 2])
    variances = np.ones((6, 3))
    variances[np.arange(6), labels] = 0.0  # factor k -> code k has the smallest variance
    out = factor_vae._compute_factor_vae(np.ones(3), variances, labels, variances, labels, num_factors=3)
    assert out["factor_vae"] == 1.0
    dead = factor_vae._compute_factor_vae(np.full(3, 1e-4), variances, labels, variances, labels, num_factors=3)
    assert dead["factor_vae"] == 0.0


def test_sap_gap_and_disentanglement_lib_mode():
    assert sap._top_two_gap(np.array([[0.9, 0.2], [0.1, 0.2], [0.3, 0.7]])) == pytest.approx((0.6 + 0.5) / 2)
    rng = np.random.default_rng(0)
    train, test = GRID.sample(2_000, rng), GRID.sample(1_000, rng)
    # disentanglement_lib's one-vs-rest SVM cannot isolate the middle positions of a 10-class factor
    dlib = sap._score_matrix(train + 0.0, train, test + 0.0, test, classifier="svm", C=0.01,
                             standardize_codes=False, n_jobs=1)
    ours = sap._score_matrix(train + 0.0, train, test + 0.0, test, classifier="logistic", C=1.0,
                             standardize_codes=True, n_jobs=1)
    assert dlib[3, 3] < 0.5 and ours[3, 3] > 0.97


def test_unsupervised_measures_exact_values():
    n = 100
    mu = np.zeros((n, 3))
    mu[:, 1] = np.tile([-1.0, 1.0], n // 2)  # variance 1: active; KL 0.5 * mu^2 = 0.5
    mu[:, 2] = np.tile([-0.05, 0.05], n // 2)  # variance 0.0025: inactive
    logvar = np.zeros((n, 3))
    out = unsupervised._compute_unsupervised(np.full(n, 0.01), mu, logvar)
    assert out["mse"] == pytest.approx(0.01)
    assert out["psnr"] == pytest.approx(20.0)
    assert out["active_units"] == 1.0
    assert out["kl_dim_00"] == 0.0 and out["kl_dim_01"] == pytest.approx(0.5)
    assert out["kl_total"] == pytest.approx(0.5 + 0.5 * 0.0025)
    assert all(isinstance(v, float) for v in out.values())
    assert unsupervised._compute_unsupervised(np.zeros(4), np.zeros((4, 2)), np.zeros((4, 2)))["psnr"] == 100.0


def test_gaussian_total_correlation():
    rng = np.random.default_rng(0)
    rho = 0.6
    x = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=200_000)
    assert unsupervised.gaussian_total_correlation(x) == pytest.approx(-0.5 * math.log(1 - rho**2), abs=0.01)
    assert unsupervised.gaussian_total_correlation(rng.normal(size=(50_000, 4))) < 0.01
    assert unsupervised.gaussian_total_correlation(np.ones((10, 3))) == 0.0  # constant columns dropped
    collinear = unsupervised.gaussian_total_correlation(np.repeat(rng.normal(size=(100, 1)), 2, axis=1))
    assert math.isfinite(collinear) and collinear > 10


def test_default_n_jobs_follows_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert utils.default_n_jobs() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert utils.default_n_jobs() >= 1


# --- end to end on dsprites_small -----------------------------------------------------------------------
# A preset small enough to re-encode every sampled batch in a few seconds.
MINI = {
    "beta_vae": dict(batch_size=16, num_train=12, num_eval=8),
    "factor_vae": dict(batch_size=16, num_train=12, num_eval=8, num_variance_estimate=200),
    "mig": dict(num_train=200),
    "modularity": dict(num_train=200),
    "explicitness": dict(num_train=200, num_test=100),
    "dci": dict(num_train=200, num_test=100, n_estimators=5),
    "sap": dict(num_train=200, num_test=100),
    "unsupervised": dict(num_images=200, num_reconstructions=50),
    "samples": dict(num_samples=50),
}


@pytest.fixture(scope="module")
def small_data():
    from trainables.data import load_dataset
    from trainables.models import VAE

    torch.manual_seed(0)
    model = VAE(arch="standard", channels=1, image_size=64, latent_dim=10)
    with torch.no_grad():  # spread the random encoder's means so that every metric has something to see
        model.encoder[-1].weight.mul_(30.0)
    return model, load_dataset("dsprites_small")


def _expected_keys(latent_dim: int) -> set[str]:
    return set(metric_keys(has_factors=True, latent_dim=latent_dim))


def test_evaluate_fast_preset_on_dsprites_small(small_data):
    model, data = small_data
    model.train()
    timings: dict[str, float] = {}
    out = evaluate(model, data, preset="fast", seed=0, n_jobs=2, timings=timings)
    assert set(out) == _expected_keys(10)
    assert all(isinstance(v, float) and math.isfinite(v) for v in out.values()), out
    assert model.training  # restored
    assert timings["encoder_images_encoded"] == len(data)  # each image encoded once


def test_cached_and_reencoded_protocols_agree_exactly(small_data):
    model, data = small_data
    cached = evaluate(model, data, preset=MINI, seed=3, cached=True, n_jobs=1)
    fresh = evaluate(model, data, preset=MINI, seed=3, cached=False, n_jobs=1)
    assert cached == fresh
    other = evaluate(model, data, preset={"mig": MINI["mig"]}, seed=4)
    assert other["mig"] != cached["mig"]


def test_encoder_codes_do_not_depend_on_the_batch(small_data):
    from trainables.metrics.represent import Encoder

    model, data = small_data
    model.eval()
    classes = data.factors.sample(150, np.random.default_rng(0))  # not a multiple of the batch size
    a = Encoder(model, data, cached=True).represent(classes)
    b = Encoder(model, data, cached=False).represent(classes)
    c = Encoder(model, data, cached=False).represent(classes[::-1])[::-1]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_evaluate_rejects_unknown_presets_and_metrics(small_data):
    model, data = small_data
    with pytest.raises(ValueError, match="preset 'huge' is unknown"):
        evaluate(model, data, preset="huge")
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(model, data, preset={"migg": {}})
    assert set(PRESETS) == {"fast", "full"} and set(PRESETS["fast"]) == set(PRESETS["full"])


def test_command_line_writes_json(small_data, tmp_path, monkeypatch, capsys):
    from trainables.metrics import evaluate as evaluate_module
    from trainables.trainer import TrainConfig, Trainer

    model, data = small_data
    trainer = Trainer(TrainConfig(epochs=0, device="cpu"), data)
    checkpoint = trainer.save_checkpoint(tmp_path / "run" / "trainer.pt")
    monkeypatch.setitem(evaluate_module.PRESETS, "fast", MINI)
    out = tmp_path / "metrics.json"
    assert evaluate_module.main(["--checkpoint", str(checkpoint), "--preset", "fast", "--seed", "1",
                                 "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["preset"] == "fast" and payload["dataset"] == "dsprites_small"
    assert set(payload["metrics"]) == _expected_keys(10)
    assert "mig" in capsys.readouterr().out
    assert not list(out.parent.glob("*.tmp"))
    assert evaluate_module.main(["--checkpoint", str(tmp_path / "missing.pt")]) == 2


def test_evaluate_without_factors_gives_the_unsupervised_measures_only():
    from trainables.data import Dataset
    from trainables.models import VAE

    rng = np.random.default_rng(0)
    data = Dataset(name="ukiyoe", images=rng.integers(0, 256, size=(40, 3, 16, 16), dtype=np.uint8), pixel_max=255,
                   likelihood="gaussian", factors=None, values=None)
    torch.manual_seed(0)
    model = VAE(arch="residual", channels=3, image_size=16, latent_dim=4)
    out = evaluate(model, data, preset="full", seed=0)  # 40 images: the counts cap at the data set
    assert set(out) == set(metric_keys(has_factors=False, latent_dim=4))
    assert all(math.isfinite(v) for v in out.values())
    assert 0.0 < out["mse"] < 1.0


@pytest.mark.parametrize(("bias", "with_output", "mean_pixel"), [(-20.0, 0.0, 0.0), (20.0, 1.0, 1.0)])
def test_samples_measures_of_a_blank_and_a_full_decoder(bias, with_output, mean_pixel):
    """A decoder that ignores its code and paints every pixel at sigmoid(bias): blank or white."""
    from trainables.data import load_dataset
    from trainables.models import VAE

    model = VAE(arch="standard", channels=1, image_size=64, latent_dim=4)
    last = model.decoder[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(bias)
    out = evaluate(model, load_dataset("dsprites_small"), preset={"samples": dict(num_samples=20)}, seed=0)
    assert out == pytest.approx({"samples_std1_with_output": with_output, "samples_std1_mean_pixel": mean_pixel,
                                 "samples_std3_with_output": with_output, "samples_std3_mean_pixel": mean_pixel},
                                abs=1e-6)


def test_samples_measures_count_lit_decodes():
    from trainables.metrics import samples

    out = samples._compute_samples(np.array([True, False, False, True]), np.array([0.1, 0.0, 0.0, 0.3]), 3)
    assert out == {"samples_std3_with_output": 0.5, "samples_std3_mean_pixel": pytest.approx(0.1)}
