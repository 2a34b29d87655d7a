"""The report's comparison (issue: the `paper` study): the fixed design in the launcher, the
single-run odds on known answers, and `--space paper` at smoke size end to end on a real local
Ray, checking the table against the trials and the figure files as real PNG images."""

from __future__ import annotations

import csv
import importlib.util
import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import local_ray_instance
from PIL import Image

import search_spaces
from analysis.paper import FACTOR_METRICS, _tiles, p_best, write_paper
from analysis.results import ExperimentError, load_experiment
from study import launch
from study import settings as cli
from trainables.vocabulary import DISENTANGLEMENT_METRICS

REPO = Path(__file__).resolve().parents[1]
SEEDS = 2
ORDER = ["beta_vae", "beta_tcvae", "sintro", "sintro_tc"]  # the report's order


# --- the fixed design ------------------------------------------------------------------------------
def resolve(*argv: str, gpu: bool = False):
    return cli.resolve(cli.parse_args(["--space", "paper", *argv]), gpu_visible=gpu)


def test_paper_trains_exactly_its_four_configurations_times_seeds():
    assert search_spaces.is_fixed_design("paper") and not search_spaces.is_fixed_design("compare")
    settings, notes = resolve()
    assert (settings.preset, settings.seeds, settings.trials) == ("paper_cpu", 4, 16)
    assert settings.epochs == 5 and settings.train_images == 0 and settings.metrics_every == 1
    assert resolve(gpu=True)[0].preset == "paper_full" and resolve(gpu=True)[0].epochs == 200
    settings, notes = resolve("--preset", "smoke", "--seeds", "3")
    assert settings.trials == 12 and "trials: 12 (4 configurations x 3 seeds)" in notes
    with pytest.raises(cli.LaunchError, match=r"exactly its 4 configurations x 3 seeds = 12 trials, got --trials 10"):
        resolve("--seeds", "3", "--trials", "10")
    assert resolve("--seeds", "3", "--trials", "12")[0].trials == 12
    faces, notes = resolve("--dataset", "ukiyoe")
    assert faces.trials == 16 and any(n.startswith("ukiyoe without a GPU") for n in notes)


def test_paper_space_cli_error_is_one_line():
    out = subprocess.run([sys.executable, "-m", "study.launch", "--space", "paper", "--trials", "5"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "drop --trials (use --seeds for more trainings)" in out.stderr


# --- single-run odds ---------------------------------------------------------------------------------
def brute_force(values: dict[str, list[float]], lower: bool = False) -> dict[str, float]:
    """Enumerate every draw of one value per group; ties share the win."""
    keys = list(values)
    wins = dict.fromkeys(keys, 0.0)
    draws = list(itertools.product(*(values[k] for k in keys)))
    for draw in draws:
        scores = [-x if lower else x for x in draw]
        best = [k for k, s in zip(keys, scores) if s == max(scores)]
        for k in best:
            wins[k] += 1 / len(best)
    return {k: w / len(draws) for k, w in wins.items()}


def test_p_best_known_answers():
    assert p_best({"a": [1, 2], "b": [0, 3]}) == {"a": 0.5, "b": 0.5}
    assert p_best({"a": [1, 2], "b": [0, 3], "c": [5, 6]}) == {"a": 0.0, "b": 0.0, "c": 1.0}
    assert p_best({"a": [1.0], "b": [1.0]}) == {"a": 0.5, "b": 0.5}
    # Lower is better for a loss: the group with the smaller values wins.
    assert p_best({"loss_a": [10, 11], "loss_b": [20, 21]}, lower_is_better=True) == {"loss_a": 1.0, "loss_b": 0.0}
    rng = np.random.default_rng(0)
    values = {k: list(rng.normal(size=4).round(3)) for k in "abcd"}
    assert p_best(values) == pytest.approx(brute_force(values))
    assert p_best(values, lower_is_better=True) == pytest.approx(brute_force(values, lower=True))
    assert sum(p_best(values).values()) == pytest.approx(1.0)


def test_tiles_of_a_sample_grid():
    """A 2 x 3 grid in Trainer.save_images' layout (64 px tiles, 2 px white padding): tile k
    holds a k x k white square on black, so the means and the 'with output' share are known."""
    grid = Image.new("L", (3 * 66 + 2, 2 * 66 + 2), 255)
    for k in range(6):
        r, c = divmod(k, 3)
        x, y = 2 + c * 66, 2 + r * 66
        grid.paste(0, (x, y, x + 64, y + 64))
        if k:
            grid.paste(255, (x, y, x + k, y + k))
    tiles = _tiles(grid, rows=2)
    assert tiles.shape == (6, 64, 64)
    assert tiles.mean(axis=(1, 2)) == pytest.approx([k * k / 4096 for k in range(6)])
    assert (tiles.max(axis=(1, 2)) >= 0.5).mean() == pytest.approx(5 / 6)


# --- `--space paper` at smoke size, end to end --------------------------------------------------------
@pytest.fixture(scope="module")
def paper_study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("paper")
    with local_ray_instance():
        rc = launch.main(["--space", "paper", "--preset", "smoke", "--seeds", str(SEEDS), "--train-images", "256",
                          "--storage", str(tmp), "--name", "paper"])
    return {"rc": rc, "experiment": tmp / "paper"}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.timeout(900)
def test_paper_smoke_study_writes_the_comparison_table(paper_study):
    assert paper_study["rc"] == 0
    exp = load_experiment(paper_study["experiment"])
    out = paper_study["experiment"] / "paper"
    # Four configurations, each trained with every seed, nothing sampled besides them.
    done = exp.trials.loc[exp.trials["outcome"] == "completed"]
    assert sorted(zip(done["variant"], done["seed"])) == sorted(itertools.product(ORDER, range(SEEDS)))
    assert (done["config/beta_rec"] == 8.0).all() and (done["config/latent_dim"] == 10).all()

    table = read_csv(out / "comparison.csv")
    assert [r["variant"] for r in table] == ORDER
    for r in table:
        assert int(r["completed"]) == SEEDS and int(r["diverged"]) == 0
        mine = done.loc[done["variant"] == r["variant"]]
        for m in FACTOR_METRICS:
            vals = mine[m].to_numpy(dtype=float)
            mean, lo, hi = float(r[f"{m}_mean"]), float(r[f"{m}_low"]), float(r[f"{m}_high"])
            assert mean == pytest.approx(vals.mean())
            assert float(r[f"{m}_min"]) == pytest.approx(vals.min()) and float(r[f"{m}_max"]) == pytest.approx(vals.max())
            half = 12.706 * vals.std(ddof=1) / np.sqrt(2)  # t(0.975, df=1)
            assert (lo, hi) == pytest.approx((mean - half, mean + half), rel=1e-3, abs=1e-9)

    odds = read_csv(out / "single_run.csv")
    for m in FACTOR_METRICS:
        ps = [float(r["p_best"]) for r in odds if r["metric"] == m]
        assert len(ps) == 4 and sum(ps) == pytest.approx(1.0)
    md = (out / "comparison.md").read_text()
    assert md.count("| beta-VAE |") == 5 and "Soft-Intro-TCVAE" in md and "1 epoch per trial" in md

    samples = read_csv(out / "samples.csv")
    assert [(r["variant"], r["std"]) for r in samples] == [(v, s) for v in ORDER for s in ("1", "3")]
    for r in samples:
        assert int(r["trials"]) == SEEDS
        assert 0 <= float(r["with_output_mean"]) <= 1 and 0 <= float(r["mean_pixel_mean"]) <= 1


@pytest.mark.timeout(900)
def test_paper_smoke_study_writes_the_figures(paper_study):
    out = paper_study["experiment"] / "paper"
    tile = 64 + 2  # Trainer.save_images: 64x64 images, 2 px padding
    sizes = {}
    for name in ("fig3a_reconstructions", "fig3b_traversals", "fig3c_samples"):
        img = Image.open(out / f"{name}.png")
        img.verify()
        sizes[name] = Image.open(out / f"{name}.png").size
    # Four variants stacked: 2 rows (input, reconstruction) / 3 traversed latents / 2 + 2 sample rows each.
    assert sizes["fig3a_reconstructions"][1] >= 4 * 2 * tile
    assert sizes["fig3b_traversals"][1] >= 4 * 3 * tile and sizes["fig3b_traversals"][0] >= 9 * tile
    assert sizes["fig3c_samples"][1] >= 4 * 4 * tile
    # Decoded images, not blank canvases: the grids carry the models' output.
    pixels = np.asarray(Image.open(out / "fig3a_reconstructions.png").convert("L"), dtype=float)
    assert pixels.std() > 10

    page = (out / "paper.html").read_text()
    for needle in ('id="fig1_metrics"', 'id="fig2_losses"', 'id="fig3b_traversals"', "Soft-Intro-TCVAE",
                   "chance of coming out best"):
        assert needle in page
    assert "<script src=" not in page and page.count("plotly.js v") == 1  # offline: plotly.js inlined once
    assert page.count("Plotly.newPlot(") == 2  # figures 1 and 2

    # Plotly figures as PNG when kaleido finds a browser (CI installs Chromium).
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if importlib.util.find_spec("kaleido") and browser:
        for name in ("fig1_metrics", "fig2_losses"):
            with Image.open(out / f"{name}.png") as img:
                assert img.format == "PNG" and img.size[0] == 1100 and img.size[1] >= 300
    else:
        assert not (out / "fig1_metrics.png").exists()


@pytest.mark.timeout(300)
def test_paper_analysis_refuses_a_searching_study(paper_study, tmp_path):
    copy = tmp_path / "searched"
    shutil.copytree(paper_study["experiment"], copy, ignore=shutil.ignore_patterns("paper"))
    record = json.loads((copy / "study.json").read_text())
    (copy / "study.json").write_text(json.dumps({**record, "space": "compare"}))
    with pytest.raises(ExperimentError, match="--space compare"):
        write_paper(copy)
    cli = subprocess.run([sys.executable, "-m", "analysis.paper", str(copy)], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert cli.returncode == 2 and cli.stderr.count("\n") == 1 and "run --space paper" in cli.stderr
    assert not (copy / "paper").exists()  # nothing written


@pytest.mark.timeout(300)
def test_paper_analysis_without_factors_writes_figures_4_and_5(paper_study, tmp_path):
    """Ukiyo-e has no ground-truth factors: the same study, its factor scores removed, gives the
    report's Ukiyo-e outputs (losses = figure 4, images = figure 5) and an unsupervised table."""
    copy = tmp_path / "faces"
    shutil.copytree(paper_study["experiment"], copy, ignore=shutil.ignore_patterns("paper", "*.parquet"))
    factor_keys = set(DISENTANGLEMENT_METRICS)
    for result in copy.glob("*/result.json"):
        lines = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        result.write_text("".join(json.dumps({k: v for k, v in r.items() if k not in factor_keys}) + "\n" for r in lines))
    write_paper(copy, png=False)
    out = copy / "paper"
    names = {p.name for p in out.iterdir()}
    assert {"fig4_losses.png", "fig1_metrics.png", "fig2_losses.png"}.isdisjoint(names)  # png=False: HTML only
    assert {"fig5a_reconstructions.png", "fig5b_traversals.png", "fig5c_samples.png"} <= names
    assert not any(n.startswith("fig3") for n in names)
    page = (out / "paper.html").read_text()
    assert 'id="fig4_losses"' in page and 'id="fig1_metrics"' not in page
    header = read_csv(out / "comparison.csv")[0].keys()
    assert {"rec_loss_mean", "mse_mean", "psnr_mean", "gaussian_tc_mean"} <= set(header)
    assert not any(k.startswith(("mig", "beta_vae")) for k in header)


@pytest.mark.timeout(300)
def test_paper_without_png_leaves_no_stale_figures(paper_study, tmp_path):
    copy = tmp_path / "again"
    shutil.copytree(paper_study["experiment"], copy)
    (copy / "paper" / "fig1_metrics.png").write_bytes(b"an earlier run's figure")
    write_paper(copy, png=False)
    names = {p.name for p in (copy / "paper").iterdir()}
    assert "fig1_metrics.png" not in names and "fig2_losses.png" not in names  # not rewritten: removed
    assert {"fig3a_reconstructions.png", "comparison.csv", "paper.html"} <= names
