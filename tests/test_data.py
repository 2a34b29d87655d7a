"""Data sets: factor grids, the procedural dSprites renderer, the npz loader and Ukiyo-e folders."""

import csv
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainables.data import Dataset, DatasetError, FactorSpace, cache_dir, load_dataset, ukiyoe
from trainables.data import dsprites as ds

FULL = FactorSpace(ds.FACTOR_NAMES, ds.FULL_SIZES)
PUBLISHED_MEAN = 0.042494  # mean pixel value of the original 737,280 images


@pytest.fixture(scope="module")
def small() -> Dataset:
    return load_dataset("dsprites_small")


def assert_one_line(err: pytest.ExceptionInfo, *needles: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg, msg
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"


# --- factor spaces ---------------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [ds.FULL_SIZES, (3, 6, 4, 10, 10), (7,), (2, 1, 5)])
def test_factor_index_round_trip(sizes):
    space = FactorSpace(tuple(f"f{i}" for i in range(len(sizes))), sizes)
    rng = np.random.default_rng(0)
    classes = space.sample(5000, rng)
    index = space.index(classes)
    assert index.shape == (5000,) and index.min() >= 0 and index.max() < space.num_combinations
    np.testing.assert_array_equal(space.classes(index), classes)
    every = np.arange(space.num_combinations)
    np.testing.assert_array_equal(space.index(space.classes(every)), every)


def test_factor_index_is_mixed_radix_last_fastest():
    space = FactorSpace(("a", "b", "c"), (2, 3, 4))
    assert space.index(np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0], [1, 2, 3]])).tolist() == [1, 4, 12, 23]
    np.testing.assert_array_equal(space.index(ds.grid_classes(((0, 1), (0, 1, 2), (0, 1, 2, 3)))), np.arange(24))


def test_factor_index_rejects_bad_classes():
    with pytest.raises(ValueError, match="out of range for factor 'scale'"):
        FULL.index(np.array([[0, 6, 0, 0, 0]]))
    with pytest.raises(ValueError, match="shape"):
        FULL.index(np.zeros((3, 4), dtype=int))
    with pytest.raises(ValueError, match="out of range"):
        FULL.classes(np.array([FULL.num_combinations]))


# --- dsprites_small --------------------------------------------------------------------------


def test_small_shapes_dtypes_and_values(small):
    assert small.name == "dsprites_small" and len(small) == 7200
    assert small.images.shape == (7200, 1, 64, 64) and small.images.dtype == np.uint8
    assert small.pixel_max == 1 and small.likelihood == "bernoulli"
    assert set(np.unique(small.images[::97])) == {0, 1}
    assert small.factors == FactorSpace(("shape", "scale", "orientation", "posX", "posY"), (3, 6, 4, 10, 10))
    np.testing.assert_allclose(small.values[1], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    np.testing.assert_allclose(np.degrees(small.values[2]), [0, 92.3, 184.6, 267.7], atol=0.05)
    pos = np.array([0, 3, 7, 10, 14, 17, 21, 24, 28, 31]) / 31
    np.testing.assert_allclose(small.values[3], pos)
    np.testing.assert_allclose(small.values[4], pos)
    assert small.images.reshape(7200, -1).sum(1).min() > 20  # no empty or clipped frame


def test_small_batch_and_images_of(small):
    x = small.batch(np.array([0, 7199, 5]))
    assert x.dtype == torch.float32 and x.shape == (3, 1, 64, 64)
    assert torch.equal(x, torch.from_numpy(small.images[[0, 7199, 5]]).float())
    assert torch.equal(small.batch(torch.tensor([5])), small.batch(5))
    assert small.batch(slice(0, 10)).shape == (10, 1, 64, 64)
    # images_of maps small-grid classes to the image of the corresponding full-grid factors
    classes = small.factors.sample(64, np.random.default_rng(1))
    full = np.stack([np.asarray(k)[classes[:, f]] for f, k in enumerate(ds.SMALL_CLASSES)], axis=1)
    expected = torch.from_numpy(ds.render(full)[:, None]).float()
    assert torch.equal(small.images_of(classes), expected)


def test_small_is_cached_and_deterministic(small):
    cached = list(cache_dir().glob(f"dsprites_render_{ds.GEOMETRY_KEY}_small.npy"))
    assert len(cached) == 1
    t0 = time.perf_counter()
    again = load_dataset("dsprites_small")
    assert time.perf_counter() - t0 < 0.5
    np.testing.assert_array_equal(again.images, small.images)
    np.testing.assert_array_equal(ds.render(ds.grid_classes(ds.SMALL_CLASSES))[:, None], small.images)


def test_every_factor_changes_small_images(small):
    im = np.asarray(small.images).reshape(3, 6, 4, 10, 10, -1)
    for axis in (0, 1, 3, 4):
        moved = np.moveaxis(im, axis, 0)
        for a in range(moved.shape[0] - 1):
            assert np.all(np.any(moved[a] != moved[a + 1], axis=-1)), f"factor {axis} class {a}"
    # orientation: always for hearts; squares and ellipses have the symmetry caveat (docs/data.md)
    hearts = im[2]
    for a in range(4):
        for b in range(a + 1, 4):
            assert np.all(np.any(hearts[:, a] != hearts[:, b], axis=-1))


# --- the renderer on the full grid -----------------------------------------------------------


def test_every_factor_changes_the_image():
    rng = np.random.default_rng(2)
    base = FULL.sample(1000, rng)
    ref = ds.render(base)
    for f, size in enumerate(ds.FULL_SIZES):
        other = base.copy()
        if f == 2:  # a 46 deg turn: far from the square's 90 and the ellipse's 180 deg symmetry
            other[:, f] = (base[:, f] + 5) % 39
        else:
            other[:, f] = (base[:, f] + rng.integers(1, size, len(base))) % size
        same = np.all(ds.render(other) == ref, axis=(1, 2))
        assert not same.any(), f"{ds.FACTOR_NAMES[f]}: {base[same][:3]} -> {other[same][:3]}"


def test_first_and_last_orientation_render_the_same():
    base = FULL.sample(500, np.random.default_rng(3))
    first, last = base.copy(), base.copy()
    first[:, 2], last[:, 2] = 0, 39
    np.testing.assert_array_equal(ds.render(first), ds.render(last))


def test_rotation_is_counter_clockwise_as_displayed():
    # heart, scale 1, centred at (row 32.5, col 32.5) for posX = posY = class 16 (value 16/31)
    c = 16 + 32 * 16 / 31
    rows, cols = np.mgrid[0:64, 0:64] + 0.5
    up, left = rows < c, cols < c
    upright, turned = ds.render(np.array([[2, 5, 0, 16, 16], [2, 5, 10, 16, 16]]))
    assert upright[up].sum() > 1.3 * upright[~up].sum()  # lobes up, tip down
    assert turned[left].sum() > 1.3 * turned[~left].sum()  # a quarter turn CCW: lobes to the left
    ellipse = ds.render(np.array([[1, 5, 5, 16, 16]]))[0]  # 46 deg: long axis lower-left to upper-right
    assert ellipse[up & ~left].sum() + ellipse[~up & left].sum() > 1.5 * (ellipse[up & left].sum()
                                                                           + ellipse[~up & ~left].sum())


def centroids(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 64, 64) -> (row, column) centroids, each (N,)."""
    images = images.astype(np.float64)
    mass = images.sum(axis=(1, 2))
    r = np.arange(images.shape[1]) + 0.5
    return images.sum(axis=2) @ r / mass, images.sum(axis=1) @ r / mass


def test_one_posx_step_moves_the_centroid_along_columns():
    rng = np.random.default_rng(4)
    base = FULL.sample(2000, rng)
    base[:, 3] = rng.integers(0, 31, len(base))
    step = base.copy()
    step[:, 3] += 1
    (r0, c0), (r1, c1) = centroids(ds.render(base)), centroids(ds.render(step))
    dc, dr = c1 - c0, r1 - r0
    assert abs(dc.mean() - 32 / 31) < 0.01, dc.mean()
    assert np.all((dc > 0.5) & (dc < 1.6)), (dc.min(), dc.max())  # single frames: raster steps
    assert abs(dr.mean()) < 0.01 and np.abs(dr).max() < 0.3, (dr.mean(), np.abs(dr).max())
    # and posY moves along the rows only: centre at 16 + 32 * posY
    rows, cols = centroids(ds.render(np.array([[1, 5, 0, 0, 0], [1, 5, 0, 0, 31]])))
    np.testing.assert_allclose(rows, [16, 48], atol=0.05)
    np.testing.assert_allclose(cols, [16, 16], atol=0.05)


@pytest.mark.parametrize("shape, area", [(0, 19.2**2), (1, np.pi * 12.76 * 7.22), (2, 180 * np.pi * 0.6 * 10.6 / 16)])
def test_area_grows_with_scale_squared(shape, area):
    rng = np.random.default_rng(5 + shape)
    base = FULL.sample(400, rng)
    base[:, 0] = shape
    per_unit = []
    for s in range(6):
        base[:, 1] = s
        on = ds.render(base).reshape(len(base), -1).sum(axis=1).mean()
        per_unit.append(on / ds.FULL_VALUES[1][s] ** 2)
    per_unit = np.array(per_unit)
    assert per_unit.max() / per_unit.min() < 1.02, per_unit  # area / scale^2 is constant
    np.testing.assert_allclose(per_unit, area, rtol=0.02)  # and equals the shape's true area


def test_mean_pixel_value_matches_the_published_one():
    classes = FULL.sample(20_000, np.random.default_rng(6))
    per_image = ds.render(classes).reshape(len(classes), -1).mean(axis=1)
    mean, se = per_image.mean(), per_image.std(ddof=1) / np.sqrt(len(per_image))
    assert abs(mean - PUBLISHED_MEAN) < 4 * se, f"mean {mean:.6f} vs {PUBLISHED_MEAN} (SE {se:.6f})"


def test_render_is_deterministic_and_validates():
    classes = FULL.sample(300, np.random.default_rng(7))
    np.testing.assert_array_equal(ds.render(classes), ds.render(classes.copy()))
    with pytest.raises(ValueError, match="orientation"):
        ds.render(np.array([[0, 0, 40, 0, 0]]))


# --- the original npz ------------------------------------------------------------------------

REDUCED = ((0, 1, 2), (0, 5), (0, 10, 39), (0, 1, 30, 31), (2, 3, 31))  # full-grid classes in a test file


def write_npz(path: Path, keep=REDUCED, **override) -> Path:
    """A file in the original layout (keys, dtypes, row order, Python-pickled metadata) for a sub-grid."""
    full = ds.grid_classes(keep)
    local = ds.grid_classes(tuple(tuple(range(len(k))) for k in keep))
    values = np.stack([ds.FULL_VALUES[f][full[:, f]] for f in range(5)], axis=1)
    arrays = {
        "imgs": ds.render(full),
        "latents_classes": np.hstack([np.zeros((len(full), 1), np.int64), local]),
        "latents_values": np.hstack([np.ones((len(full), 1)), values]),
        "metadata": np.array({"latents_names": ("color",) + ds.FACTOR_NAMES, "title": "test"}, dtype=object),
    }
    arrays.update(override)
    np.savez_compressed(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def test_read_npz_reads_grid_values_and_images(tmp_path, monkeypatch):
    path = write_npz(tmp_path / ds.NPZ_NAME)
    images, sizes, values = ds.read_npz(path)
    assert sizes == tuple(len(k) for k in REDUCED)
    assert isinstance(images, np.memmap) and images.shape == (int(np.prod(sizes)), 1, 64, 64)
    np.testing.assert_array_equal(images[:, 0], ds.render(ds.grid_classes(REDUCED)))
    for f, k in enumerate(REDUCED):
        np.testing.assert_allclose(values[f], ds.FULL_VALUES[f][list(k)])
    # the second read reuses the decompressed cache instead of decompressing again
    monkeypatch.setattr(ds, "_copy_images", lambda *a: pytest.fail("decompressed twice"))
    again, _, _ = ds.read_npz(path)
    np.testing.assert_array_equal(again, images)


def test_npz_sub_grid_selection_picks_the_right_rows(tmp_path):
    images, sizes, _ = ds.read_npz(write_npz(tmp_path / "f.npz"))
    keep = ((2, 0), (1,), (0, 2), (1, 3), (0, 2))  # local classes of the file's grid, in any order
    rows = ds.subset_rows(sizes, keep)
    full = np.stack([np.asarray(REDUCED[f])[ds.grid_classes(keep)[:, f]] for f in range(5)], axis=1)
    np.testing.assert_array_equal(images[rows, 0], ds.render(full))


def test_npz_of_a_partial_grid_is_refused_by_load(tmp_path):
    write_npz(tmp_path / ds.NPZ_NAME)
    with pytest.raises(DatasetError) as err:
        load_dataset("dsprites_small", root=tmp_path)
    assert_one_line(err, str(tmp_path / ds.NPZ_NAME), "full dSprites grid", "DSPRITES_NPZ")


def test_missing_npz_names_the_expected_file(tmp_path, monkeypatch):
    with pytest.raises(DatasetError) as err:
        load_dataset("dsprites", root=tmp_path)
    assert_one_line(err, str(tmp_path / ds.NPZ_NAME), "DSPRITES_NPZ", "--data-root")
    monkeypatch.setenv("DSPRITES_NPZ", str(tmp_path / "nowhere.npz"))
    with pytest.raises(DatasetError) as err:
        load_dataset("dsprites_small")
    assert_one_line(err, str(tmp_path / "nowhere.npz"), "$DSPRITES_NPZ")


def corrupt_member(path: Path, member: str) -> None:
    """Overwrite bytes in the middle of one member's compressed data."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    data = bytearray(path.read_bytes())
    name_len, extra_len = (int.from_bytes(data[info.header_offset + o : info.header_offset + o + 2], "little")
                           for o in (26, 28))
    start = info.header_offset + 30 + name_len + extra_len
    mid = start + info.compress_size // 2
    data[mid : mid + 64] = bytes(64 * [0xA5])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing key", "bad imgs data", "bad imgs shape",
                                    "rows out of order"])
def test_corrupt_npz_gives_a_one_line_error(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("VAE_STUDY_CACHE", str(tmp_path / "cache"))  # no intact copy decompressed earlier
    path = tmp_path / ds.NPZ_NAME
    if damage == "garbage":
        path.write_bytes(b"this is not an npz file\n" * 10)
    elif damage == "truncated":
        write_npz(path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "missing key":
        write_npz(path, latents_values=None)
    elif damage == "bad imgs data":
        write_npz(path)
        corrupt_member(path, "imgs.npy")
    elif damage == "bad imgs shape":
        write_npz(path, imgs=np.zeros((5, 64, 64), np.uint8))
    else:
        write_npz(path)
        with np.load(path) as z:
            arrays = {k: z[k] for k in ("imgs", "latents_classes", "latents_values")}
        write_npz(path, **{k: v[::-1] for k, v in arrays.items()})
    with pytest.raises(DatasetError) as err:
        ds.read_npz(path)
    assert_one_line(err, str(path), ds.NPZ_NAME, "DSPRITES_NPZ")
    assert not list(cache_dir().glob(".*.tmp")), "a failed decompression left a temporary file"


def write_streamed_npz(path: Path) -> None:
    """The full 737,280-row layout, written in chunks; image i carries i in its first three bytes."""
    n = FULL.num_combinations
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("imgs.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": (n, 64, 64)})
            for start in range(0, n, 32768):
                idx = np.arange(start, min(start + 32768, n))
                block = np.zeros((len(idx), 64 * 64), np.uint8)
                block[:, :3] = (idx[:, None] >> np.array([0, 8, 16])) & 0xFF
                f.write(block.tobytes())
        classes = FULL.classes(np.arange(n))
        values = np.stack([ds.FULL_VALUES[k][classes[:, k]] for k in range(5)], axis=1)
        for key, arr in (("latents_classes", np.hstack([np.zeros((n, 1), np.int64), classes])),
                         ("latents_values", np.hstack([np.ones((n, 1)), values]))):
            with zf.open(f"{key}.npy", "w") as f:
                np.lib.format.write_array(f, arr)


@pytest.mark.slow
def test_full_size_npz_end_to_end(tmp_path, monkeypatch):
    """Real layout and size (about 3 GB decompressed into the cache): selects the report's rows."""
    write_streamed_npz(tmp_path / ds.NPZ_NAME)
    monkeypatch.setenv("DSPRITES_NPZ", str(tmp_path))
    small = load_dataset("dsprites_small")
    row_of = lambda im: im[:, 0, 0, 0].astype(np.int64) | im[:, 0, 0, 1].astype(np.int64) << 8 \
        | im[:, 0, 0, 2].astype(np.int64) << 16  # noqa: E731
    np.testing.assert_array_equal(row_of(small.images), ds.subset_rows(ds.FULL_SIZES, ds.SMALL_CLASSES))
    np.testing.assert_allclose(small.values[2], ds.FULL_VALUES[2][[0, 10, 20, 29]])
    full = load_dataset("dsprites")
    assert full.images.shape == (737_280, 1, 64, 64) and full.factors == FULL
    rows = np.random.default_rng(0).integers(0, 737_280, 1000)
    np.testing.assert_array_equal(row_of(full.images[rows]), rows)


@pytest.mark.slow
def test_full_rendered_grid():
    """Renders and caches all 737,280 images (about a minute and 3 GB), then checks the whole set."""
    full = load_dataset("dsprites")
    assert full.images.shape == (737_280, 1, 64, 64) and isinstance(full.images, np.memmap)
    grid = np.asarray(full.images).reshape(3, 6, 40, 32 * 32, 64 * 64)
    np.testing.assert_array_equal(grid[:, :, 0], grid[:, :, 39])
    mean = float(np.mean([grid[s].mean(dtype=np.float64) for s in range(3)]))
    assert abs(mean - PUBLISHED_MEAN) / PUBLISHED_MEAN < 0.002, mean
    t0 = time.perf_counter()
    load_dataset("dsprites")
    assert time.perf_counter() - t0 < 1.0


def test_dsprites_rejects_other_image_sizes():
    with pytest.raises(DatasetError) as err:
        load_dataset("dsprites_small", image_size=128)
    assert_one_line(err, "64x64", "image_size")


def test_unknown_data_set_lists_the_valid_names():
    with pytest.raises(DatasetError) as err:
        load_dataset("mnist")
    assert_one_line(err, "'mnist'", "dsprites", "dsprites_small", "ukiyoe")


# --- Ukiyo-e -----------------------------------------------------------------------------------


def test_ukiyoe_reads_the_fixture(ukiyoe_fixture):
    data = load_dataset("ukiyoe", root=ukiyoe_fixture)
    assert data.images.shape == (5, 3, 64, 64) and data.images.dtype == np.uint8
    assert data.pixel_max == 255 and data.likelihood == "gaussian"
    assert data.factors is None and data.values is None
    assert data.files == [f"0000000{i}.jpg" for i in range(1, 6)]
    assert sorted(data.metadata) == data.files[:3]
    row = data.metadata["00000002.jpg"]
    assert len(row) == 27 and list(row)[-1] == "filename" and row["絵師"] == "広貞"
    x = data.batch(np.arange(5))
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 and x.std() > 0.1
    with pytest.raises(ValueError, match="no ground-truth factors"):
        data.images_of(np.zeros((1, 5), dtype=int))
    big = load_dataset("ukiyoe", root=ukiyoe_fixture, image_size=128)
    assert big.images.shape == (5, 3, 128, 128)
    # the 64 px image is the 128 px one at lower resolution, not another picture
    assert np.abs(big.images.reshape(5, 3, 64, 2, 64, 2).mean(axis=(3, 5)) - data.images).mean() < 6


def write_image(path: Path, size=(80, 80), colour=(200, 30, 40)) -> None:
    Image.new("RGB", size, colour).save(path)


def test_ukiyoe_synthetic_folder(tmp_path):
    images = tmp_path / ukiyoe.IMAGES_DIR
    images.mkdir()
    write_image(images / "a.jpg", colour=(250, 0, 0))
    write_image(images / "b.png", colour=(0, 0, 250))
    wide = Image.new("RGB", (300, 200), (0, 255, 0))  # green, with white side margins to crop away
    wide.paste((255, 255, 255), (0, 0, 50, 200))
    wide.paste((255, 255, 255), (250, 0, 300, 200))
    wide.save(images / "c.png")
    (images / "d.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (images / "notes.txt").write_text("ignored: not an image")
    with open(tmp_path / ukiyoe.METADATA_CSV, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["ACNo.", "絵師", "filename"])
        writer.writerow(["arc1", "国周", "a.jpg"])
        writer.writerow(["arc3", "広貞", "c.png"])
        writer.writerow(["arc9", "?", "gone.jpg"])  # a row without an image
    for attempt in ("decoded", "cached"):
        with pytest.warns(UserWarning, match=r"skipped 1 unreadable .*d\.jpg"):
            data = load_dataset("ukiyoe", root=tmp_path)
        assert data.files == ["a.jpg", "b.png", "c.png"], attempt
        assert data.images.shape == (3, 3, 64, 64)
        assert set(data.metadata) == {"a.jpg", "c.png"} and data.metadata["c.png"]["絵師"] == "広貞"
        np.testing.assert_allclose(data.images[0].reshape(3, -1).mean(1), [250, 0, 0], atol=3)
        np.testing.assert_allclose(data.images[1].reshape(3, -1).mean(1), [0, 0, 250], atol=3)
        assert np.all(data.images[2, 1] > 250) and np.all(data.images[2, 0] < 5)  # centre crop: green only
    # pointing at the images folder itself still finds the CSV next to it
    with pytest.warns(UserWarning):
        assert load_dataset("ukiyoe", root=images).metadata.keys() == {"a.jpg", "c.png"}


def test_ukiyoe_folder_without_csv(tmp_path):
    for name in ("x.jpg", "y.jpeg"):
        write_image(tmp_path / name, size=(256, 256))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_dataset("ukiyoe", root=tmp_path)
    assert data.files == ["x.jpg", "y.jpeg"] and data.metadata is None and len(data) == 2


@pytest.mark.parametrize("case", ["empty", "only unreadable", "missing", "no root"])
def test_ukiyoe_errors(tmp_path, case):
    root = tmp_path
    if case == "only unreadable":
        (tmp_path / "bad.jpg").write_bytes(b"nope")
    elif case == "missing":
        root = tmp_path / "does-not-exist"
    elif case == "no root":
        root = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DatasetError) as err:
            load_dataset("ukiyoe", root=root)
    assert_one_line(err, "--data-root")
    if root is not None:
        assert str(root) in str(err.value)


def test_ukiyoe_rejects_other_sizes(ukiyoe_fixture):
    with pytest.raises(DatasetError) as err:
        load_dataset("ukiyoe", root=ukiyoe_fixture, image_size=100)
    assert_one_line(err, "64", "128")


def test_a_training_subset_is_fixed_by_its_seed_and_leaves_the_factor_grid_whole(small):
    """The launcher trains on `--train-images` of the images; the metrics keep the whole grid."""
    assert small.training_subset(0, 3) is small and small.training_subset(len(small), 3) is small
    a, again, other = (small.training_subset(500, s) for s in (3, 3, 4))
    assert a.images.shape == (500, *small.images.shape[1:])
    np.testing.assert_array_equal(a.images, again.images)  # the same seed, the same images
    assert not np.array_equal(a.images, other.images)
    flat = small.images.reshape(len(small), -1)
    rows = [np.flatnonzero((flat == img.ravel()).all(axis=1)) for img in a.images[:20]]
    assert all(len(r) >= 1 for r in rows)  # images of the data set, not altered
    assert a.factors is small.factors and a.values is small.values
