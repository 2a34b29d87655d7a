"""The report's comparison (issue: the `paper` study): the fixed design in the launcher, the
single-run odds on known answers, the tables read from the trials' numbers and the figures from
whole images (a generated folder), and `--space paper` at smoke size end to end on a real local
Ray, checking the table against the trials and the figure files as real PNG images."""

from __future__ import annotations

import csv
import importlib.util
import io
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
from analysis import ExperimentError, load_experiment, paper
from analysis.paper import (
    CURVE_METRICS,
    FACTOR_METRICS,
    LOSSES,
    NO_FACTOR_METRICS,
    sample_table,
    single_run_odds,
    write_paper,
)
from analysis.stats import p_best, t_interval
from study import launch
from study import settings as cli
from trainables.vocabulary import (
    DISENTANGLEMENT_METRICS,
    METRICS,
    SAMPLE_MEASURES,
    SAMPLE_METRICS,
    SAMPLE_STDS,
    sample_key,
    variant,
)

sys.path.insert(0, str(Path(__file__).parent))
from analysis_helpers import FakeTrial, make_experiment

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
        best = [k for k, s in zip(keys, scores, strict=True) if s == max(scores)]
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


# --- numbers from the tables, images whole (a generated --space paper folder) --------------------------
def test_paper_metric_names_are_in_the_vocabulary():
    for names in (FACTOR_METRICS, NO_FACTOR_METRICS, CURVE_METRICS, LOSSES):
        assert set(names) <= set(METRICS), names
    assert {sample_key(s, m) for s in SAMPLE_STDS for m in SAMPLE_MEASURES} == set(SAMPLE_METRICS)


@pytest.fixture(scope="module")
def paper_like(tmp_path_factory) -> Path:
    """The paper's design in a generated folder: four variants x three seeds, all completed."""
    def params(v: str) -> dict:
        return {"variant": v, "lr": 3e-4, "beta_kl": 2.0, "latent_dim": 6,
                **({"tc_weight": 2.0} if variant(v).decomposed else {}),
                **({"beta_neg": 256.0} if variant(v).adversarial else {})}
    trials = [FakeTrial(v, s, params(v), images_in_checkpoint=(s == 1)) for v in ORDER for s in range(3)]
    return make_experiment(tmp_path_factory.mktemp("paper_like"), trials=trials, space="paper")


def test_sample_table_aggregates_the_sample_metrics(paper_like):
    exp = load_experiment(paper_like)
    table = sample_table(exp)
    assert [(r["variant"], r["std"]) for _, r in table.iterrows()] == [(v, s) for v in ORDER for s in SAMPLE_STDS]
    for _, r in table.iterrows():
        mine = exp.trials.loc[exp.trials["variant"] == r["variant"]]
        assert r["trials"] == 3
        for measure in SAMPLE_MEASURES:  # shares and pixel values: the interval stays in [0, 1]
            expected = t_interval(mine[sample_key(r["std"], measure)].to_numpy(), lower=0.0, upper=1.0)
            assert (r[f"{measure}_mean"], r[f"{measure}_low"], r[f"{measure}_high"]) == pytest.approx(expected)
    # Odds only where a metric has a better side: the KL of the training loss has none.
    odds = single_run_odds(exp, ["mig", "kl"])
    assert set(odds["metric"]) == {"mig"} and odds["p_best"].sum() == pytest.approx(1.0)


def test_paper_traversals_are_whole_images_labelled_from_traversals_json(paper_like, tmp_path):
    exp = load_experiment(paper_like)
    write_paper(paper_like, tmp_path, png=False)
    samples = read_csv(tmp_path / "samples.csv")
    assert [(r["variant"], r["std"]) for r in samples] == [(v, str(s)) for v in ORDER for s in SAMPLE_STDS]
    assert "| beta-VAE | 1 |" in (tmp_path / "comparison.md").read_text()
    figure = np.asarray(Image.open(tmp_path / "fig3b_traversals.png").convert("RGB"))
    y, x = paper.TITLE_H, paper.LABEL_W + paper.ROW_LABEL_W  # the title band; the variant label and row labels
    for v in ORDER:  # one row per variant: its lowest seed's traversals.png, whole, below its z values
        tid = exp.trials.loc[(exp.trials["variant"] == v) & (exp.trials["seed"] == 0), "trial_id"].iloc[0]
        grid = np.asarray(Image.open(io.BytesIO(exp.image_bytes(tid, "traversals"))).convert("RGB"))
        top = y + paper.Z_BAND_H
        assert np.array_equal(figure[top:top + grid.shape[0], x:x + grid.shape[1]], grid)
        rows = len(json.loads(exp.traversals_bytes(tid))["latents"])
        assert rows == grid.shape[0] // 66
        for r in range(rows):  # a label (dark text on white) beside every row
            band = figure[top + r * grid.shape[0] // rows:top + (r + 1) * grid.shape[0] // rows, paper.LABEL_W:x]
            assert (band < 128).any(), (v, r)
        for c in range(9):  # and a z value above every column
            assert (figure[y:top, x + c * grid.shape[1] // 9:x + (c + 1) * grid.shape[1] // 9] < 128).any(), (v, c)
        y = top + grid.shape[0] + paper.GAP
    assert figure.shape[0] == y
    # Readable text: the title's letters are about FONT_PX high, not the 9 px of PIL's bitmap font.
    ink = np.flatnonzero((figure[:paper.TITLE_H, :400] < 128).any(axis=(1, 2)))
    assert ink[-1] - ink[0] >= paper.FONT_PX * 0.7


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


@pytest.mark.ray
@pytest.mark.timeout(900)
def test_paper_smoke_study_writes_the_comparison_table(paper_study):
    assert paper_study["rc"] == 0
    exp = load_experiment(paper_study["experiment"])
    out = paper_study["experiment"] / "paper"
    # Four configurations, each trained with every seed, nothing sampled besides them.
    done = exp.trials.loc[exp.trials["outcome"] == "completed"]
    assert sorted(zip(done["variant"], done["seed"], strict=True)) == sorted(itertools.product(ORDER, range(SEEDS)))
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
            assert float(r[f"{m}_min"]) == pytest.approx(vals.min())
            assert float(r[f"{m}_max"]) == pytest.approx(vals.max())
            half = 12.706204736174694 * vals.std(ddof=1) / np.sqrt(2)  # t(0.975, df=1), exact ...
            floor, top = METRICS[m].lower, METRICS[m].upper  # ... within the metric's range
            expected = (max(floor, mean - half), mean + half if top is None else min(top, mean + half))
            assert (lo, hi) == pytest.approx(expected, rel=1e-3, abs=1e-9)

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


@pytest.mark.ray
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


@pytest.mark.ray
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


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_paper_analysis_without_factors_writes_figures_4_and_5(paper_study, tmp_path):
    """Ukiyo-e has no ground-truth factors: the same study, its factor scores removed, gives the
    report's Ukiyo-e outputs (losses = figure 4, images = figure 5) and an unsupervised table."""
    copy = tmp_path / "faces"
    shutil.copytree(paper_study["experiment"], copy, ignore=shutil.ignore_patterns("paper", "*.parquet"))
    factor_keys = set(DISENTANGLEMENT_METRICS)
    for result in copy.glob("*/result.json"):
        lines = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        kept = [{k: v for k, v in r.items() if k not in factor_keys} for r in lines]
        result.write_text("".join(json.dumps(r) + "\n" for r in kept))
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


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_paper_without_png_leaves_no_stale_figures(paper_study, tmp_path):
    copy = tmp_path / "again"
    shutil.copytree(paper_study["experiment"], copy)
    (copy / "paper" / "fig1_metrics.png").write_bytes(b"an earlier run's figure")
    write_paper(copy, png=False)
    names = {p.name for p in (copy / "paper").iterdir()}
    assert "fig1_metrics.png" not in names and "fig2_losses.png" not in names  # not rewritten: removed
    assert {"fig3a_reconstructions.png", "comparison.csv", "paper.html"} <= names
