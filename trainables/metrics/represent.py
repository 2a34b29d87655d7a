"""The representation function of the metrics: a VAE's encoder mean, with a per-image code cache.

The disentanglement metrics only see `represent(classes) -> codes`: (n, F) int factor classes ->
(n, L) float codes, the encoder mean (disentanglement_lib's convention). `Encoder` builds it
from a model and a data set in one of two protocols:

- cached (default): for data whose image is a deterministic function of its factors (dSprites),
  the code of an image is a deterministic function of its row. Each needed row is encoded once,
  and every later request indexes the cached codes. The metrics' sample counts then cost at most
  one encoder pass per distinct image: 7,200 for dsprites_small, instead of about 2.9 million
  passes for the `full` suite (docs/metrics.md, "Encoding once").
- re-encoding (`cached=False`): the reference protocol; every requested row is rendered
  (`Dataset.images_of`) and encoded again. It is needed when the same factors do not always
  give the same code: stochastic rendering, data augmentation, an encoder that is random at
  evaluation time (dropout left on, sampling), or a non-deterministic device kernel.

Both protocols give bit-identical codes on CPU: the encoder always runs on chunks of exactly
`batch_size` images (the last chunk is padded with zeros), so an image's code does not depend on
which other images share its batch. (On CPU, PyTorch's convolutions give slightly different bits
for the same image at different batch sizes; at a fixed batch size they do not depend on the
image's position.) Evaluation runs in float32 without autocast.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from trainables.objectives import as_image


def default_batch_size(device: torch.device) -> int:
    """Images per encoder call: 64 on CPU (the fastest on a 2-core CPU for the standard model;
    larger batches fall out of cache), 1024 on accelerators."""
    return 64 if device.type == "cpu" else 1024


def model_device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


@dataclass
class EncoderStats:
    """Counters of one `Encoder`: rows asked for, images encoded and decoded, seconds spent."""

    rows_requested: int = 0  # rows passed to `represent` (= encoder passes of the re-encoding protocol)
    images_encoded: int = 0  # images through the encoder, padding excluded
    images_decoded: int = 0
    encode_s: float = 0.0  # wall time of loading/rendering + encoding
    decode_s: float = 0.0


class Encoder:
    """Encodes (and decodes) a data set's images with a VAE, for the metrics.

    model: a `trainables.models.VAE` (anything with `encode(x) -> (mu, logvar)` and `decode(z)`),
    used as it is: the caller puts it in eval mode (`evaluate` does).
    dataset: a `trainables.data.Dataset`; `represent` needs its `factors`.
    device: where the images go; None: the model's device (the model is never moved).
    batch_size: images per encoder call (fixed; see the module docstring); None: `default_batch_size`.
    cached: encode each row once and reuse its code (see the module docstring for when not to).
    """

    def __init__(self, model: torch.nn.Module, dataset, *, device: str | torch.device | None = None,
                 batch_size: int | None = None, cached: bool = True):
        self.model = model
        self.dataset = dataset
        self.device = model_device(model) if device is None else torch.device(device)
        self.batch_size = int(batch_size or default_batch_size(self.device))
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.cached = bool(cached)
        self.stats = EncoderStats()
        self._mu: np.ndarray | None = None  # (N, L) float32, the cache
        self._logvar: np.ndarray | None = None
        self._known: np.ndarray | None = None  # (N,) bool, which rows of the cache are filled

    # --- the encoder on image tensors -------------------------------------------------------------
    @torch.inference_mode()
    def _encode_images(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(B, C, H, W) float in [0, 1], any B -> (mu, logvar) (B, L) float32, in padded chunks."""
        b, bs = images.shape[0], self.batch_size
        mus, logvars = [], []
        for start in range(0, b, bs):
            x = images[start:start + bs].to(self.device, torch.float32)
            if x.shape[0] < bs:  # pad: every encoder call sees exactly `bs` images
                x = torch.cat([x, x.new_zeros((bs - x.shape[0], *x.shape[1:]))])
            mu, logvar = self.model.encode(x)
            keep = min(bs, b - start)
            mus.append(mu[:keep].float().cpu())
            logvars.append(logvar[:keep].float().cpu())
        if not mus:
            latent = int(getattr(self.model, "latent_dim", 0))
            return np.zeros((0, latent), np.float32), np.zeros((0, latent), np.float32)
        return torch.cat(mus).numpy(), torch.cat(logvars).numpy()

    def _encode_rows(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Dataset rows -> (mu, logvar), loading `batch_size * 16` images at a time."""
        start_t = time.perf_counter()
        mus, logvars = [], []
        step = self.batch_size * 16
        for start in range(0, len(index), step):
            mu, logvar = self._encode_images(self.dataset.batch(index[start:start + step]))
            mus.append(mu)
            logvars.append(logvar)
        self.stats.images_encoded += len(index)
        self.stats.encode_s += time.perf_counter() - start_t
        if not mus:
            return self._encode_images(self.dataset.batch(index[:0]))
        return np.concatenate(mus), np.concatenate(logvars)

    # --- rows of the data set ---------------------------------------------------------------------
    def encode_index(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n,) dataset rows -> (mu, logvar), each (n, L) float32; from the cache when `cached`."""
        index = np.asarray(index, dtype=np.int64).ravel()
        if not self.cached:
            return self._encode_rows(index)
        if self._known is None:
            self._known = np.zeros(len(self.dataset), dtype=bool)
        missing = np.unique(index[~self._known[index]])  # sorted: sequential reads of a memmap
        if len(missing):
            mu, logvar = self._encode_rows(missing)
            if self._mu is None:
                self._mu = np.zeros((len(self.dataset), mu.shape[1]), np.float32)
                self._logvar = np.zeros_like(self._mu)
            self._mu[missing], self._logvar[missing] = mu, logvar
            self._known[missing] = True
        return self._mu[index], self._logvar[index]

    def represent(self, classes: np.ndarray) -> np.ndarray:
        """The representation function: (n, F) int factor classes -> (n, L) float32 encoder means."""
        factors = self.dataset.factors
        if factors is None:
            raise ValueError(f"data set {self.dataset.name!r} has no ground-truth factors: "
                             "only the unsupervised measures apply")
        classes = np.asarray(classes)
        self.stats.rows_requested += len(classes)
        if self.cached:
            return self.encode_index(factors.index(classes))[0]
        # Re-encoding protocol: render (or load) the images of these factors and encode them.
        start_t = time.perf_counter()
        step = self.batch_size * 16
        mus = [self._encode_images(self.dataset.images_of(classes[s:s + step]))[0]
               for s in range(0, len(classes), step)]
        self.stats.images_encoded += len(classes)
        self.stats.encode_s += time.perf_counter() - start_t
        return np.concatenate(mus) if mus else np.zeros((0, int(getattr(self.model, "latent_dim", 0))), np.float32)

    def _decode(self, z: np.ndarray) -> torch.Tensor:
        """Codes (n, L) -> images (n, C, H, W) in [0, 1] on the device: sigmoid(logits) for a
        Bernoulli decoder, the Gaussian mean clamped to [0, 1] otherwise."""
        raw = self.model.decode(torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32)).to(self.device)).float()
        self.stats.images_decoded += len(z)
        return as_image(raw, self.dataset.likelihood).clamp(0.0, 1.0)

    @torch.inference_mode()
    def reconstruction_error(self, index: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """Per-image mean squared error over pixels between rows `index` (in [0, 1]) and the
        decoded means `mu` (n, L) -> (n,) float64."""
        start_t = time.perf_counter()
        index = np.asarray(index, dtype=np.int64).ravel()
        out = np.empty(len(index))
        bs = self.batch_size
        for start in range(0, len(index), bs):
            x = self.dataset.batch(index[start:start + bs]).to(self.device, torch.float32)
            squared = (self._decode(mu[start:start + bs]) - x).pow(2)
            out[start:start + bs] = squared.flatten(1).mean(1).double().cpu().numpy()
        self.stats.decode_s += time.perf_counter() - start_t
        return out

    @torch.inference_mode()
    def decode_statistics(self, z: np.ndarray, *, level: float) -> tuple[np.ndarray, np.ndarray]:
        """For codes (n, L): per decoded image, its largest pixel >= `level` (n,) bool and its
        mean pixel (n,) float64, decoded in batches (the images never leave the device)."""
        start_t = time.perf_counter()
        lit, mean = np.empty(len(z), dtype=bool), np.empty(len(z))
        for start in range(0, len(z), self.batch_size):
            images = self._decode(z[start:start + self.batch_size]).flatten(1)
            lit[start:start + self.batch_size] = (images.amax(1) >= level).cpu().numpy()
            mean[start:start + self.batch_size] = images.mean(1).double().cpu().numpy()
        self.stats.decode_s += time.perf_counter() - start_t
        return lit, mean
