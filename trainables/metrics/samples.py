"""Decodes of random latents: what the decoder draws away from the data's codes.

The report's figure 3c shows decodes of z ~ N(0, s^2 I) for a small and a large s and reads
from them that "Soft-Intro-TCVAE shows no output in the sampling range". Measured instead of
looked at, per s in SAMPLE_STDS (1 and 3), over `num_samples` draws:

- samples_std{s}_with_output: the share of decodes with any output, an image whose largest
  pixel reaches IMAGE_OUTPUT_LEVEL (0.5; dSprites has a black background, so 0 means blank);
- samples_std{s}_mean_pixel: their mean pixel value (dSprites' own mean is 0.042494, Matthey et
  al. 2017), so a decoder that paints the whole canvas reads high and a blank one near 0.

Decoded images are in [0, 1]: the sigmoid of Bernoulli logits, the Gaussian mean clamped.
"""

from __future__ import annotations

import numpy as np

from trainables.vocabulary import IMAGE_OUTPUT_LEVEL, SAMPLE_STDS


def compute_samples(encoder, rng: np.random.Generator, *, num_samples: int = 1_000,
                    stds: tuple[float, ...] = SAMPLE_STDS, level: float = IMAGE_OUTPUT_LEVEL) -> dict[str, float]:
    """The measures of the module docstring for `encoder` (a `represent.Encoder`), codes drawn
    with `rng`. -> {"samples_std1_with_output", "samples_std1_mean_pixel", ...}."""
    latent_dim = int(encoder.model.latent_dim)
    out: dict[str, float] = {}
    for std in stds:
        z = std * rng.standard_normal((int(num_samples), latent_dim))
        lit, mean_pixel = encoder.decode_statistics(z, level=level)
        out.update(_compute_samples(lit, mean_pixel, std))
    return out


def _compute_samples(lit: np.ndarray, mean_pixel: np.ndarray, std: float) -> dict[str, float]:
    """From per-decode `lit` (n,) bool and `mean_pixel` (n,): the two measures for one std."""
    name = f"samples_std{std:g}"
    return {f"{name}_with_output": float(np.mean(lit)), f"{name}_mean_pixel": float(np.mean(mean_pixel))}
