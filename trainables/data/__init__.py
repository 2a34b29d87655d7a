"""Data sets: dSprites (real file or procedural) and ARC Ukiyo-e faces behind one `Dataset` type.

The contract is in docs/architecture.md ("Data"); the data sets themselves, the cache and the
differences between the procedural dSprites and the original file are in docs/data.md.

    ds = load_dataset("dsprites_small")          # 7,200 images, rendered (or read from the npz)
    x = ds.batch(np.arange(64))                   # (64, 1, 64, 64) float32 in [0, 1]
    x = ds.images_of(ds.factors.sample(64, rng))  # images of 64 random factor combinations
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainables.storage import atomic_path
from trainables.vocabulary import DATASETS

__all__ = ["DATASETS", "Dataset", "DatasetError", "FactorSpace", "cache_dir", "load_dataset"]

log = logging.getLogger(__name__)


class DatasetError(ValueError):
    """A data set could not be loaded. The message is one line: what was expected where, and the fix."""


@dataclass(frozen=True)
class FactorSpace:
    """A full grid of discrete factors; row index is mixed radix, the last factor fastest."""

    names: tuple[str, ...]
    sizes: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.sizes) or min(self.sizes, default=0) < 1:
            raise ValueError(f"FactorSpace needs one positive size per name, got {self.names} {self.sizes}")

    @property
    def num_combinations(self) -> int:
        return int(np.prod(self.sizes))

    def index(self, classes: np.ndarray) -> np.ndarray:
        """(N, F) integer classes -> (N,) int64 row index."""
        classes = np.asarray(classes)
        if classes.ndim != 2 or classes.shape[1] != len(self.sizes):
            raise ValueError(f"classes must have shape (N, {len(self.sizes)}) for factors {self.names}, "
                             f"got {classes.shape}")
        if not np.issubdtype(classes.dtype, np.integer):
            raise ValueError(f"classes must be integers, got dtype {classes.dtype}")
        sizes = np.asarray(self.sizes, dtype=np.int64)
        bad = (classes < 0) | (classes >= sizes)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise ValueError(f"class {classes[row, col]} out of range for factor {self.names[col]!r} "
                             f"(size {self.sizes[col]}) in row {row}")
        strides = np.cumprod((sizes[1:].tolist() + [1])[::-1])[::-1]  # (F,) last factor stride 1
        return classes.astype(np.int64) @ strides

    def classes(self, index: np.ndarray) -> np.ndarray:
        """(N,) row index -> (N, F) int64 classes; the inverse of `index`."""
        index = np.asarray(index, dtype=np.int64)
        if index.ndim != 1:
            raise ValueError(f"index must be one-dimensional, got shape {index.shape}")
        if index.size and (index.min() < 0 or index.max() >= self.num_combinations):
            raise ValueError(f"index out of range [0, {self.num_combinations}) for factors {self.names}")
        return np.stack(np.unravel_index(index, self.sizes), axis=1).astype(np.int64)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, F) classes drawn uniformly and independently per factor."""
        return rng.integers(0, np.asarray(self.sizes), size=(n, len(self.sizes)), dtype=np.int64)


@dataclass
class Dataset:
    """Images (N, C, H, W) uint8 with pixel value images / pixel_max, and their factors if known.

    `files` and `metadata` are optional extras for image folders (Ukiyo-e): the file name of
    each row, and the metadata CSV row (a dict of column -> text) of each file that has one.
    """

    name: str
    images: np.ndarray  # (N, C, H, W) uint8, may be a np.memmap
    pixel_max: int
    likelihood: str  # "bernoulli" or "gaussian"
    factors: FactorSpace | None
    values: list[np.ndarray] | None  # per factor, the real value of each class
    files: list[str] | None = None
    metadata: dict[str, dict[str, str]] | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def batch(self, index) -> torch.Tensor:
        """Rows `index` (int, slice, sequence, array or tensor) -> (B, C, H, W) float32 in [0, 1]."""
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        x = torch.from_numpy(np.ascontiguousarray(self.images[index])).to(torch.float32)
        return x if self.pixel_max == 1 else x.div_(self.pixel_max)

    def training_subset(self, n: int, seed: int) -> Dataset:
        """A fixed random subset of n images for training (n = 0 or >= len: the whole set), the
        same for the same seed. The metrics always see the whole data set: factor lookups index
        its full grid."""
        if not n or n >= len(self):
            return self
        keep = np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False))
        return dataclasses.replace(self, images=np.ascontiguousarray(self.images[keep]))

    def images_of(self, classes: np.ndarray) -> torch.Tensor:
        """(B, F) factor classes -> their images (B, C, H, W) float32 in [0, 1]."""
        if self.factors is None:
            raise ValueError(f"data set {self.name!r} has no ground-truth factors")
        return self.batch(self.factors.index(classes))


def load_dataset(name: str, *, root: str | os.PathLike | None = None, image_size: int | None = None) -> Dataset:
    """Load a data set by name ("dsprites", "dsprites_small", "ukiyoe"); see docs/data.md for `root`."""
    if name in ("dsprites", "dsprites_small"):
        from . import dsprites

        return dsprites.load(name, root=root, image_size=image_size)
    if name == "ukiyoe":
        from . import ukiyoe

        return ukiyoe.load(root=root, image_size=image_size)
    raise DatasetError(f"unknown data set {name!r}: expected one of {', '.join(DATASETS)}")


def cache_dir() -> Path:
    """Folder for derived arrays (rendered grids, decompressed npz): $VAE_STUDY_CACHE or ~/.cache/vae-study."""
    return Path(os.environ.get("VAE_STUDY_CACHE") or Path.home() / ".cache" / "vae-study").expanduser()


def cached_array(path: Path, shape: tuple[int, ...], fill: Callable[[np.ndarray], None]) -> np.ndarray:
    """The uint8 .npy at `path` memory-mapped; built first by `fill(array)` if absent or damaged.

    The file is written under a temporary name and renamed, so a reader never sees half a cache
    and concurrent builders (parallel trials) simply race to the same content.
    """
    if path.exists():
        try:
            arr = np.load(path, mmap_mode="c")
            if arr.shape == tuple(shape) and arr.dtype == np.uint8:
                return arr
        except (OSError, ValueError):
            pass
        log.warning("cache %s is damaged or stale; rebuilding it", path)
    try:
        with atomic_path(path) as tmp:
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=tuple(shape))
            fill(arr)
            arr.flush()
            del arr
    except OSError as e:
        raise DatasetError(f"cannot write the data cache {path} ({e.strerror or e}): "
                           f"set VAE_STUDY_CACHE to a writable folder with enough space") from e
    return np.load(path, mmap_mode="c")
