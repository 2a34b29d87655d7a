"""ARC Ukiyo-e faces (Tian et al. 2021, CC BY 4.0): a folder of face crops and the ARC metadata CSV.

Layout (as extracted from the ARC source, and as in shared/fixtures/ukiyoe):

    <root>/arc_extracted_face_images/00000001.jpg ...
    <root>/arc_extracted_face_metadata.csv      # 27 Japanese-named columns, `filename` last

A plain folder of images (no CSV) works too. Images are centre-cropped to a square, resized to
`image_size` (64 or 128) and kept as RGB uint8; images without a metadata row are kept, unreadable
files are skipped with one warning naming them. There are no ground-truth factors. The decoded
array is cached under `cache_dir()`, keyed by the folder's file names, sizes and times.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from trainables.storage import write_atomic

from . import Dataset, DatasetError, cache_dir, cached_array

IMAGES_DIR = "arc_extracted_face_images"
METADATA_CSV = "arc_extracted_face_metadata.csv"
ROOT_ENV = "UKIYOE_ROOT"
IMAGE_SIZES = (64, 128)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
CACHE_VERSION = 1  # bump when decoding or resizing changes

log = logging.getLogger(__name__)


def find_folders(root: str | os.PathLike | None) -> tuple[Path, Path | None]:
    """(images folder, metadata CSV or None) for `root` (or $UKIYOE_ROOT)."""
    source = "the data root"
    if root is None:
        root = os.environ.get(ROOT_ENV) or None
        if root is None:
            raise DatasetError(f"ukiyoe needs its image folder: pass --data-root (or set {ROOT_ENV}) to the folder "
                               f"holding {IMAGES_DIR}/ and {METADATA_CSV}, or to a folder of images")
        source = f"${ROOT_ENV}"
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"ukiyoe folder not found: expected a folder at {root} (from {source}) holding "
                           f"{IMAGES_DIR}/ and {METADATA_CSV}, or images; pass --data-root or set {ROOT_ENV}")
    images = root / IMAGES_DIR if (root / IMAGES_DIR).is_dir() else root
    for folder in (root, images, images.parent):
        if (folder / METADATA_CSV).is_file():
            return images, folder / METADATA_CSV
    return images, None


def read_metadata(path: Path) -> dict[str, dict[str, str]]:
    """filename -> the CSV row (column -> text) of the ARC metadata file."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "filename" not in reader.fieldnames:
                raise DatasetError(f"ukiyoe metadata {path} has no 'filename' column: expected the ARC "
                                   f"{METADATA_CSV} (filename last), or remove the file to load the images alone")
            return {row["filename"]: dict(row) for row in reader if row.get("filename")}
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"ukiyoe metadata {path} is unreadable ({type(e).__name__}: {e}): expected a UTF-8 CSV "
                           f"like ARC's {METADATA_CSV}; replace it, or remove it to load the images alone") from e


def decode(path: Path, size: int) -> np.ndarray:
    """One image file -> (3, size, size) uint8: RGB, centre-cropped to a square, Lanczos-resized."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        w, h = img.size
        side = min(w, h)
        box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
        img = img.crop(box).resize((size, size), Image.Resampling.LANCZOS)  # crop first: no filter bleed
        return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def _decode_all(files: list[Path], size: int) -> tuple[np.ndarray, list[str], list[str]]:
    """Decode every file; return (images (N, 3, size, size), kept names, unreadable names)."""
    arrays, kept, bad = [], [], []
    for path in files:
        try:
            arrays.append(decode(path, size))
            kept.append(path.name)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            bad.append(path.name)
    images = np.stack(arrays) if arrays else np.zeros((0, 3, size, size), np.uint8)
    return images, kept, bad


def load(*, root: str | os.PathLike | None = None, image_size: int | None = None) -> Dataset:
    """The `ukiyoe` data set; see the module docstring."""
    size = 64 if image_size is None else image_size
    if size not in IMAGE_SIZES:
        raise DatasetError(f"ukiyoe image_size must be one of {IMAGE_SIZES}, got {image_size}: "
                           f"use image_size 64 or 128")
    folder, csv_path = find_folders(root)
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DatasetError(f"no images in {folder}: expected {', '.join(IMAGE_EXTENSIONS[:3])} files in "
                           f"<root>/{IMAGES_DIR}/ or directly in <root>; point --data-root or {ROOT_ENV} at the "
                           f"extracted ARC faces")
    stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    key = hashlib.sha1(repr((CACHE_VERSION, size, str(folder.resolve()), stats)).encode()).hexdigest()[:16]
    base = cache_dir() / f"ukiyoe_{size}_{key}"
    cached = _open_cache(base, size)
    if cached is None:
        images, kept, bad = _decode_all(files, size)
        names = {"kept": kept, "unreadable": bad}
        if kept:
            _save_cache(base, images, names)
    else:
        images, names = cached
    kept, bad = names["kept"], names["unreadable"]
    if bad:
        shown = ", ".join(bad[:20]) + (f" and {len(bad) - 20} more" if len(bad) > 20 else "")
        warnings.warn(f"ukiyoe: skipped {len(bad)} unreadable image file(s) in {folder}: {shown}", stacklevel=3)
    if not kept:
        raise DatasetError(f"no readable images in {folder} ({len(bad)} file(s) failed to decode): expected "
                           f"JPEG/PNG face crops; replace the files or point --data-root / {ROOT_ENV} elsewhere")
    rows = read_metadata(csv_path) if csv_path is not None else {}
    metadata = {name: rows[name] for name in kept if name in rows}
    return Dataset(name="ukiyoe", images=images, pixel_max=255, likelihood="gaussian", factors=None, values=None,
                   files=list(kept), metadata=metadata if csv_path is not None else None)


def _open_cache(base: Path, size: int) -> tuple[np.ndarray, dict[str, list[str]]] | None:
    """(images memmap, {"kept": names, "unreadable": names}) from a previous decode, or None."""
    try:
        names = json.loads(base.with_suffix(".json").read_text(encoding="utf-8"))
        images = np.load(base.with_suffix(".npy"), mmap_mode="c")
    except (OSError, ValueError):
        return None
    if not isinstance(names, dict) or not {"kept", "unreadable"} <= names.keys():
        return None
    if images.shape != (len(names["kept"]), 3, size, size):
        return None
    return images, names


def _save_cache(base: Path, images: np.ndarray, names: dict[str, list[str]]) -> None:
    """Store a decode for the next load (best effort: a failure only costs decoding again).

    The file list goes first; the array, written atomically, marks the cache complete.
    """
    try:
        write_atomic(base.with_suffix(".json"), json.dumps(names, ensure_ascii=False))
        cached_array(base.with_suffix(".npy"), images.shape, lambda out: out.__setitem__(Ellipsis, images))
    except (OSError, DatasetError) as e:
        log.warning("ukiyoe: could not cache the decoded images under %s (%s)", base.parent, e)
