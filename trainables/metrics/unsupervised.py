"""Unsupervised measures: for data without ground-truth factors (Ukiyo-e), reported for dSprites too.

The code statistics use `num_images` images drawn without replacement (all of them if the data
set is smaller); the reconstruction measures the first `num_reconstructions` of them, because a
decoder pass costs about three encoder passes (standard model on CPU):
- mse: per-pixel mean squared error between the image in [0, 1] and the decoded encoder mean
  (sigmoid of the logits for Bernoulli data, the Gaussian mean clamped to [0, 1] otherwise);
- psnr: mean over images of 10 log10(1 / per-image MSE) in dB (peak 1), the MSE floored at 1e-10
  so that a perfect reconstruction reads 100 dB instead of infinity;
- active_units: the number of latent dimensions whose encoder mean varies over the data,
  Var_x[mu_l(x)] > 0.01 (Burda et al. 2016, "Importance Weighted Autoencoders", section 5.2);
- kl_total and kl_dim_00, kl_dim_01, ...: KL(q(z_l|x) || N(0, 1)) per dimension, averaged over
  the images, = 0.5 * (mu^2 + exp(logvar) - logvar - 1); kl_total is their sum (nats);
- gaussian_tc: total correlation of a Gaussian fitted to the encoder means,
  -0.5 * log det(corr(mu)) (nats); 0 when the dimensions are uncorrelated. Dimensions whose
  mean never changes (variance 0) are left out; it grows as two dimensions become collinear
  (eigenvalues of the correlation matrix are floored at 1e-12, so it stays finite).
"""

from __future__ import annotations

import numpy as np


def compute_unsupervised(encoder, rng: np.random.Generator, *, num_images: int = 10_000,
                         num_reconstructions: int = 2_000, active_threshold: float = 0.01) -> dict[str, float]:
    """The measures of the module docstring for `encoder` (a `represent.Encoder`: a model and a
    data set) on `num_images` rows drawn with `rng`, `num_reconstructions` of them decoded.
    -> a flat dict of floats."""
    n = len(encoder.dataset)
    index = rng.choice(n, size=min(int(num_images), n), replace=False)
    mu, logvar = encoder.encode_index(index)
    first = np.argsort(index[:max(1, min(int(num_reconstructions), len(index)))])  # in row order: memmap reads
    mse = encoder.reconstruction_error(index[first], mu[first])
    return _compute_unsupervised(mse, mu, logvar, active_threshold=active_threshold)


def _compute_unsupervised(mse_per_image: np.ndarray, mu: np.ndarray, logvar: np.ndarray, *,
                          active_threshold: float = 0.01) -> dict[str, float]:
    """The measures from per-image MSE (n,), encoder means (n, L) and log-variances (n, L)."""
    mu = np.asarray(mu, dtype=np.float64)
    logvar = np.asarray(logvar, dtype=np.float64)
    kl = 0.5 * (mu**2 + np.exp(logvar) - logvar - 1.0).mean(axis=0)  # (L,)
    width = max(2, len(str(len(kl) - 1)))
    out = {
        "mse": float(np.mean(mse_per_image)),
        "psnr": float(np.mean(10.0 * np.log10(1.0 / np.maximum(mse_per_image, 1e-10)))),
        "active_units": float(np.sum(mu.var(axis=0) > active_threshold)),
        "kl_total": float(kl.sum()),
        "gaussian_tc": gaussian_total_correlation(mu),
    }
    out.update({f"kl_dim_{l:0{width}d}": float(v) for l, v in enumerate(kl)})
    return out


def gaussian_total_correlation(codes: np.ndarray) -> float:
    """-0.5 * log det of the correlation matrix of (n, L) codes: the total correlation (nats) of
    the Gaussian with their covariance. Constant columns are dropped; fewer than two left -> 0;
    eigenvalues floored at 1e-12."""
    codes = np.asarray(codes, dtype=np.float64)
    codes = codes[:, codes.std(axis=0) > 0]
    if codes.shape[1] < 2 or codes.shape[0] < 2:
        return 0.0
    eigenvalues = np.linalg.eigvalsh(np.corrcoef(codes, rowvar=False))
    # Floor at 1e-12 so that exactly collinear dimensions give a large finite value, not inf.
    return float(max(0.0, -0.5 * np.sum(np.log(np.maximum(eigenvalues, 1e-12)))))
