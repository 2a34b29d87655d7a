"""dSprites (Matthey et al. 2017): the factor grid, a procedural renderer and the npz loader.

Two data sets share this module (docs/data.md):
- `dsprites`: the full grid, 3 shapes x 6 scales x 40 orientations x 32 posX x 32 posY
  = 737,280 binary 64x64 images (the single colour factor is dropped);
- `dsprites_small`: the report's reduced grid, orientation classes [0, 10, 20, 29] and
  posX / posY classes [0, 3, 7, 10, 14, 17, 21, 24, 28, 31]: 7,200 images.

Images come from the original file when the user points at it (argument `root` or $DSPRITES_NPZ),
otherwise from `render`, which draws the shapes with the geometry fitted to the original frames.
Both paths end in a uint8 .npy memory map under `cache_dir()`, built once and reused.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np

from . import Dataset, DatasetError, FactorSpace, cache_dir, cached_array

log = logging.getLogger(__name__)

FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
FULL_SIZES = (3, 6, 40, 32, 32)
# Per factor, the real value of each class, as in the file's latents_values (shape is 1, 2, 3 for
# square, ellipse, heart; orientation in radians; positions in [0, 1]).
FULL_VALUES = (
    np.array([1.0, 2.0, 3.0]),
    np.linspace(0.5, 1.0, 6),
    np.linspace(0.0, 2 * np.pi, 40),
    np.linspace(0.0, 1.0, 32),
    np.linspace(0.0, 1.0, 32),
)
_POS_SMALL = (0, 3, 7, 10, 14, 17, 21, 24, 28, 31)
SMALL_CLASSES = (tuple(range(3)), tuple(range(6)), (0, 10, 20, 29), _POS_SMALL, _POS_SMALL)

NPZ_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
NPZ_ENV = "DSPRITES_NPZ"
_NPZ_KEYS = ("imgs", "latents_classes", "latents_values")

# Geometry fitted to the original frames (docs/data.md, "Procedural rendering"), in pixels at scale 1.
SIZE = 64
SQUARE_HALF = 9.6  # half of the 19.2 px side
ELLIPSE_AXES = (12.76, 7.22)  # semi-axes, horizontal one first at orientation 0
HEART_X, HEART_Y, HEART_SHIFT = 9.6, 10.6 / 16, 1.44  # x = 9.6 sin^3 t, y = -(10.6/16)(...) - 1.44
HEART_VERTICES = 8192  # polygon vertices on the parametric curve
RENDER_VERSION = 1  # bump when the renderer's output changes: it is part of the cache file name
_WINDOW = 32  # every shape fits in 32x32 px around its centre (largest radius 13.6 px)
_CHUNK = 2048  # images per vectorised rendering step (about 10 float64 arrays of 16 MB)


# --- procedural renderer ---------------------------------------------------------------------


def _heart_branches(n_vertices: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The right half (x >= 0) of the heart polygon as two branches monotone in y.

    The curve for t in [0, pi] runs from the dip between the lobes (x = 0, y = -4.75) up over the
    right lobe (y minimum at t ~ 0.91) and down to the tip (x = 0, y = 9.82). Split at the top of
    the lobe, each branch is a function x(y): `np.interp` on its vertices is exactly the polygon
    edge crossed by a horizontal line, so the even-odd test of the mirrored polygon becomes
    "x_inner(y) <= |x| <= x_outer(y)" (x_inner only where y is between the lobe top and the dip).
    Returns (y_inner, x_inner, y_outer, x_outer), each y increasing.
    """
    t = np.linspace(0.0, np.pi, n_vertices // 2 + 1)
    x = HEART_X * np.sin(t) ** 3
    y = -HEART_Y * (13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)) - HEART_SHIFT
    top = int(np.argmin(y))
    y_in, x_in = y[: top + 1][::-1], x[: top + 1][::-1]
    y_out, x_out = y[top:], x[top:]
    assert np.all(np.diff(y_in) > 0) and np.all(np.diff(y_out) > 0), "heart branches must be monotone"
    return y_in, x_in, y_out, x_out


_HEART = _heart_branches(HEART_VERTICES)
_RADIUS = max(SQUARE_HALF * np.sqrt(2), ELLIPSE_AXES[0], float(np.hypot(
    np.concatenate([_HEART[1], _HEART[3]]), np.concatenate([_HEART[0], _HEART[2]])).max()))
assert _RADIUS + 1.5 < _WINDOW / 2, "a shape would not fit the rendering window"
GEOMETRY_KEY = hashlib.sha1(repr((RENDER_VERSION, SIZE, SQUARE_HALF, ELLIPSE_AXES, HEART_X, HEART_Y, HEART_SHIFT,
                                  HEART_VERTICES, FULL_SIZES)).encode()).hexdigest()[:10]


def _inside_square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v)) <= SQUARE_HALF


def _inside_ellipse(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (u / ELLIPSE_AXES[0]) ** 2 + (v / ELLIPSE_AXES[1]) ** 2 <= 1.0


def _inside_heart(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    y_in, x_in, y_out, x_out = _HEART
    au = np.abs(u)
    inside = au <= np.interp(v, y_out, x_out, left=-1.0, right=-1.0)
    inside &= ~(au < np.interp(v, y_in, x_in, left=-1.0, right=-1.0))  # the notch between the lobes
    return inside


_INSIDE = (_inside_square, _inside_ellipse, _inside_heart)


def _render_chunk(classes: np.ndarray) -> np.ndarray:
    """(B, 5) full-grid classes -> (B, 64, 64) uint8 in {0, 1}.

    Each image is drawn directly (centres sit on a 32/31 px lattice, so translating one sprite
    would not be exact), but only inside a 32x32 window around its centre, which holds the shape.
    Pixel (r, c) is on when its centre (c + 0.5, r + 0.5) lies inside the shape rotated
    counter-clockwise as displayed (row 0 on top) about (16 + 32 posX, 16 + 32 posY).
    """
    b = len(classes)
    shape = classes[:, 0]
    scale = FULL_VALUES[1][classes[:, 1]][:, None, None]
    theta = np.mod(FULL_VALUES[2][classes[:, 2]], 2 * np.pi)  # 2 pi -> exactly 0: last == first
    cx = 16 + 32 * FULL_VALUES[3][classes[:, 3]]
    cy = 16 + 32 * FULL_VALUES[4][classes[:, 4]]
    c0 = np.floor(cx).astype(np.int64) - _WINDOW // 2  # window origin, in [0, 32]
    r0 = np.floor(cy).astype(np.int64) - _WINDOW // 2
    offsets = np.arange(_WINDOW)
    dx = (c0[:, None] + offsets + 0.5 - cx[:, None])[:, None, :]  # (B, 1, W) pixel centre - sprite centre
    dy = (r0[:, None] + offsets + 0.5 - cy[:, None])[:, :, None]  # (B, W, 1), y down
    cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    # Shape coordinates (y down, scale 1) of each pixel: flip to y up, rotate by -theta, flip
    # back, divide by the scale. Check: at 90 deg the screen's "up" (0, -1) is the shape's right.
    u = (dx * cos - dy * sin) / scale  # (B, W, W)
    v = (dx * sin + dy * cos) / scale
    window = np.zeros((b, _WINDOW, _WINDOW), dtype=bool)
    for k, inside in enumerate(_INSIDE):
        mask = shape == k
        if mask.any():
            window[mask] = inside(u[mask], v[mask])
    out = np.zeros((b, SIZE, SIZE), dtype=np.uint8)
    rows = (r0[:, None] + offsets)[:, :, None]
    cols = (c0[:, None] + offsets)[:, None, :]
    out[np.arange(b)[:, None, None], rows, cols] = window
    return out


def render(classes: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(N, 5) full-grid factor classes -> (N, 64, 64) uint8 images in {0, 1}, deterministic.

    `out`, if given, receives the images (any array with N * 4096 elements per row layout,
    e.g. an (N, 1, 64, 64) memory map) and is returned.
    """
    classes = np.asarray(classes)
    FactorSpace(FACTOR_NAMES, FULL_SIZES).index(classes)  # validates shape and ranges
    n = len(classes)
    if out is None:
        out = np.empty((n, SIZE, SIZE), dtype=np.uint8)
    flat = out.reshape(n, SIZE, SIZE)
    for start in range(0, n, _CHUNK):
        flat[start : start + _CHUNK] = _render_chunk(classes[start : start + _CHUNK])
    return out


def _render_grid_into(out: np.ndarray, space: FactorSpace) -> None:
    """Render every row of the full grid into `out` (N, 1, 64, 64), chunk by chunk, with progress."""
    n, step, t0 = space.num_combinations, 64 * _CHUNK, time.monotonic()
    log.info("rendering the full dSprites grid (%d images) into the cache, once", n)
    for start in range(0, n, step):
        stop = min(start + step, n)
        render(space.classes(np.arange(start, stop)), out=out[start:stop])
        log.info("dSprites render: %d/%d images, %.0f s", stop, n, time.monotonic() - t0)


# --- grid selection --------------------------------------------------------------------------


def grid_classes(keep: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """Every combination of the kept classes per factor, (N, F), in mixed radix order (last fastest)."""
    mesh = np.meshgrid(*[np.asarray(k, dtype=np.int64) for k in keep], indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def subset_rows(sizes: tuple[int, ...], keep: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """Rows of a full grid with `sizes` that form the sub-grid `keep`, in the sub-grid's own order."""
    return FactorSpace(FACTOR_NAMES, sizes).index(grid_classes(keep))


# --- the original file -----------------------------------------------------------------------


def find_npz(root: str | os.PathLike | None) -> Path | None:
    """The npz the user points at (`root`: the file or its folder; else $DSPRITES_NPZ), or None."""
    source = "the data root"
    if root is None:
        root = os.environ.get(NPZ_ENV) or None
        if root is None:
            return None
        source = f"${NPZ_ENV}"
    path = Path(root).expanduser()
    if path.is_dir():
        path = path / NPZ_NAME
    if not path.is_file():
        raise DatasetError(f"dSprites file not found: expected {path} (from {source}); set {NPZ_ENV} or pass "
                           f"--data-root to {NPZ_NAME} or its folder, or unset both to render dSprites procedurally")
    return path


def _corrupt(path: Path, why: str) -> DatasetError:
    return DatasetError(f"dSprites file {path} is not usable ({why}): expected the original {NPZ_NAME} with arrays "
                        f"{', '.join(_NPZ_KEYS)}; download it again, or unset {NPZ_ENV} / --data-root to render "
                        f"dSprites procedurally")


def _copy_images(path: Path, n: int, out: np.ndarray) -> None:
    """Stream imgs.npy out of the zip into `out` (N, 1, 64, 64) without holding it all in memory."""
    try:
        with zipfile.ZipFile(path) as zf, zf.open("imgs.npy") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise _corrupt(path, f"imgs has unsupported npy format version {version}")
            if shape != (n, SIZE, SIZE) or dtype != np.uint8 or fortran:
                raise _corrupt(path, f"imgs is {dtype} {shape}{' Fortran-ordered' if fortran else ''}, "
                                     f"expected uint8 ({n}, {SIZE}, {SIZE})")
            flat = out.reshape(n, SIZE * SIZE)
            for start in range(0, n, 16384):
                block = memoryview(flat[start : start + 16384]).cast("B")
                got = 0
                while got < len(block):
                    k = f.readinto(block[got:])
                    if not k:
                        raise _corrupt(path, "imgs ends early")
                    got += k
            if f.read(1):
                raise _corrupt(path, "imgs has trailing data")
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, ValueError, OSError) as e:
        if isinstance(e, DatasetError):
            raise
        raise _corrupt(path, f"{type(e).__name__}: {e}") from e


def read_npz(path: Path) -> tuple[np.ndarray, tuple[int, ...], list[np.ndarray]]:
    """Validate a dSprites npz; return (images (N, 1, 64, 64) memmap, grid sizes, values per factor).

    The rows must form a complete grid in the documented order (color, shape, scale, orientation,
    posX, posY; posY fastest) of whatever sizes the file has; `load` then demands the full sizes.
    Images are decompressed once into the cache, keyed by the zip member's CRC and size.
    The file's `metadata` entry (a Python 2 pickle, which would need allow_pickle=True and
    encoding="latin1") is never read: the arrays carry everything, and no pickle from a
    user-supplied file gets executed.
    """
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise _corrupt(path, "not a zip archive, or truncated")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _NPZ_KEYS if k not in z.files]
            if missing:
                raise _corrupt(path, f"missing {', '.join(missing)}")
            classes, values = z["latents_classes"], z["latents_values"]
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo("imgs.npy")
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, ValueError, OSError) as e:
        if isinstance(e, DatasetError):
            raise
        raise _corrupt(path, f"{type(e).__name__}: {e}") from e
    if classes.ndim != 2 or classes.shape[1] != 6 or values.shape != classes.shape:
        raise _corrupt(path, f"latents_classes {classes.shape} and latents_values {values.shape}, expected (N, 6) each")
    if not np.issubdtype(classes.dtype, np.integer) or len(classes) == 0 or classes.min() < 0:
        raise _corrupt(path, "latents_classes must be non-negative integers")
    sizes = tuple(int(s) for s in classes[:, 1:].max(axis=0) + 1)
    space = FactorSpace(FACTOR_NAMES, sizes)
    n = len(classes)
    if (n != space.num_combinations or np.any(classes[:, 0] != 0)
            or not np.array_equal(space.index(classes[:, 1:]), np.arange(n))):
        raise _corrupt(path, "rows are not the complete factor grid in order color, shape, scale, orientation, "
                             "posX, posY (posY fastest)")
    strides = space.index(np.eye(5, dtype=np.int64))  # row step of one class of each factor
    factor_values = [values[np.arange(size) * stride, f + 1].astype(np.float64)
                     for f, (size, stride) in enumerate(zip(sizes, strides))]
    key = f"{info.CRC:08x}_{info.file_size}_{n}"
    images = cached_array(cache_dir() / f"dsprites_npz_{key}.npy", (n, 1, SIZE, SIZE),
                          lambda out: _copy_images(path, n, out))
    return images, sizes, factor_values


# --- the two data sets -----------------------------------------------------------------------


def load(name: str, *, root: str | os.PathLike | None = None, image_size: int | None = None) -> Dataset:
    """`dsprites` or `dsprites_small`, from the npz if one is pointed at, else rendered (cached)."""
    if name not in ("dsprites", "dsprites_small"):
        raise DatasetError(f"unknown dSprites variant {name!r}: expected dsprites or dsprites_small")
    if image_size not in (None, SIZE):
        raise DatasetError(f"dSprites images are {SIZE}x{SIZE}, got image_size={image_size}: "
                           f"leave image_size unset (or {SIZE}) for {name}")
    small = name == "dsprites_small"
    npz = find_npz(root)
    full = FactorSpace(FACTOR_NAMES, FULL_SIZES)
    if npz is not None:
        images, sizes, values = read_npz(npz)
        if sizes != FULL_SIZES:
            raise _corrupt(npz, f"factor grid {sizes}, expected the full dSprites grid {FULL_SIZES}")
        if small:
            images = np.ascontiguousarray(images[subset_rows(FULL_SIZES, SMALL_CLASSES)])
    else:
        values = [v.copy() for v in FULL_VALUES]
        if small:
            classes = grid_classes(SMALL_CLASSES)
            path = cache_dir() / f"dsprites_render_{GEOMETRY_KEY}_small.npy"
            images = cached_array(path, (len(classes), 1, SIZE, SIZE), lambda out: render(classes, out=out))
        else:
            path = cache_dir() / f"dsprites_render_{GEOMETRY_KEY}_full.npy"
            shape = (full.num_combinations, 1, SIZE, SIZE)
            images = cached_array(path, shape, lambda out: _render_grid_into(out, full))
    if small:
        values = [v[list(k)] for v, k in zip(values, SMALL_CLASSES)]
        space = FactorSpace(FACTOR_NAMES, tuple(len(k) for k in SMALL_CLASSES))
    else:
        space = full
    return Dataset(name=name, images=images, pixel_max=1, likelihood="bernoulli", factors=space, values=values)
