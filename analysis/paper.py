"""The report's comparison, with seeds: tables and figures of a ``--space paper`` study.

    python -m analysis.paper runs/paper-cpu              # writes runs/paper-cpu/paper/
    from analysis.paper import paper_table, single_run_odds, write_paper

The report (Matt 2022, "Extending the adversarial loss function of Soft-Intro VAE for stronger
disentanglement") compared beta-VAE, beta-TCVAE, Soft-Intro-VAE and Soft-Intro-TCVAE from one
training each. Here every variant has several seeds, so each number comes with its spread:

- ``comparison.csv`` / ``comparison.md``: per variant, the mean, 95% Student-t interval, min and
  max over seeds of the beta-VAE score, MIG, Modularity, Explicitness, DCI disentanglement and the
  reconstruction loss (on Ukiyo-e, which has no factors: reconstruction and unsupervised measures).
- ``single_run.csv``: per metric, the chance that each variant comes out best when every variant
  is trained once, as in the report (exact over all seed combinations).
- ``samples.csv``: figure 3c in numbers, over all seeds: the share of decoded random latents
  with any output, and their mean pixel value, per variant and prior standard deviation.
- ``fig1_metrics``: the metrics over training, mean and 95% band per epoch (report figure 1).
- ``fig2_losses`` (``fig4_losses`` on Ukiyo-e): the unscaled reconstruction loss, KL and TC over
  training (figures 2 and 4). Unscaled: the terms before the weights of 8, so variants compare.
- ``fig3_*.png`` (``fig5_*`` on Ukiyo-e): reconstructions, latent traversals and decodes of random
  latents at prior standard deviation 1 and 3, one row per variant (figures 3 and 5). The report
  chose the traversed latent by eye; here they are the three latents with the largest KL.
- ``paper.html``: all of the above on one page that works offline.

Figures are written as PNG when kaleido and a Chrome/Chromium are installed (the ``figures``
extra), and always as interactive HTML. Every file is written atomically.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import math
import os
import sys
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image, ImageDraw

from analysis.charts import (VARIANT_LABELS, curves_figure, curves_info, seed_distributions_info, t_interval,
                             variant_label)
from analysis.results import Experiment, ExperimentError, _Store, join_uri, load_experiment, run_command

__all__ = ["FACTOR_METRICS", "UNSUPERVISED_METRICS", "LOSSES", "paper_table", "p_best", "single_run_odds", "sample_table",
           "write_paper", "main"]

# The report's table (section 4.1) plus DCI, and the reconstruction loss it traded against.
FACTOR_METRICS = ("beta_vae", "mig", "modularity", "explicitness", "dci_disentanglement", "rec_loss")
# Ukiyo-e has no ground-truth factors: reconstruction quality and what needs no labels.
UNSUPERVISED_METRICS = ("rec_loss", "mse", "psnr", "kl", "gaussian_tc", "active_units")
CURVE_METRICS = ("beta_vae", "mig", "modularity", "explicitness")  # the four panels of figure 1
LOSSES = ("rec_loss", "kl", "tc")  # figure 2/4: tc exists for the TC variants only
LOWER_IS_BETTER = {"rec_loss", "mse", "kl", "gaussian_tc"}
TRAVERSED_LATENTS = 3
PAPER_DIR = "paper"


def _has_factors(exp: Experiment) -> bool:
    return "mig" in exp.trials and exp.trials["mig"].notna().any()


def _check(exp: Experiment) -> None:
    space = exp.study.get("space")
    if space not in (None, "paper"):
        raise ExperimentError(f"{exp.name} is a study of --space {space}: its variants mix searched "
                              "configurations; analysis.paper compares the report's fixed ones (run --space paper)")
    if not (exp.trials["outcome"] == "completed").any():
        raise ExperimentError(f"{exp.name} has no completed trial yet: wait for the study, or resume it "
                              "with python -m study.launch --resume")


def paper_table(exp: Experiment, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per variant (the report's order): trials finished, diverged, and per metric
    ``<m>_mean``, ``<m>_low``, ``<m>_high`` (95% Student-t interval of the mean over seeds),
    ``<m>_min``, ``<m>_max``. A metric no trial reported is left out."""
    names = list(metrics) if metrics is not None else list(FACTOR_METRICS if _has_factors(exp) else UNSUPERVISED_METRICS)
    names = [m for m in names if m in exp.trials and exp.trials[m].notna().any()]
    info = seed_distributions_info(exp, metrics=names)
    finished = exp.trials.loc[exp.trials["outcome"].isin(["completed", "diverged", "error"])]
    rows = []
    for j, v in enumerate(info.variants):
        mine = finished.loc[finished["variant"] == v]
        row: dict[str, Any] = {"variant": v, "label": variant_label(v),
                               "completed": int((mine["outcome"] == "completed").sum()),
                               "diverged": int((mine["outcome"] == "diverged").sum())}
        for i, m in enumerate(info.metrics):
            s = next(s for s in info.summaries if s.metric == m and s.variant == v)
            vals = info.values[i][j]
            row.update({f"{m}_mean": s.mean, f"{m}_low": s.low, f"{m}_high": s.high,
                        f"{m}_min": min(vals, default=math.nan), f"{m}_max": max(vals, default=math.nan)})
        rows.append(row)
    order = {v: k for k, v in enumerate(VARIANT_LABELS)}
    return pd.DataFrame(rows).sort_values("variant", key=lambda s: s.map(lambda v: order.get(v, 99))).reset_index(drop=True)


def p_best(values: Mapping[str, Sequence[float]], *, lower_is_better: bool = False) -> dict[str, float]:
    """P(group comes out best) when one value is drawn at random from each group: for each
    value a of group A, the chance that every other group's draw is worse, averaged over A's
    values (ties count half). Exact, no sampling; the chances sum to 1 without ties."""
    sign = -1.0 if lower_is_better else 1.0
    arrays = {k: sign * np.asarray(v, dtype="float64") for k, v in values.items() if len(v)}
    odds = {}
    for k, mine in arrays.items():
        p = np.ones(len(mine))
        for other, theirs in arrays.items():
            if other != k:
                p *= ((theirs[None, :] < mine[:, None]) + 0.5 * (theirs[None, :] == mine[:, None])).mean(axis=1)
        odds[k] = float(p.mean())
    return odds


def single_run_odds(exp: Experiment, metrics: Sequence[str]) -> pd.DataFrame:
    """Per metric and variant, ``p_best``: the chance the variant comes out best when every
    variant is trained once with a random one of its seeds, what the report's one-run design
    could conclude."""
    info = seed_distributions_info(exp, metrics=metrics)
    rows = [{"metric": m, "variant": v, "label": variant_label(v), "p_best": p}
            for m, values in zip(info.metrics, info.values)
            for v, p in p_best(dict(zip(info.variants, values)), lower_is_better=m in LOWER_IS_BETTER).items()]
    return pd.DataFrame(rows, columns=["metric", "variant", "label", "p_best"])


def _num(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.1f}" if abs(x) >= 100 else f"{x:.3g}"


def _interval(r: pd.Series, m: str) -> str:
    mean, lo, hi = r[f"{m}_mean"], r[f"{m}_low"], r[f"{m}_high"]
    if not math.isfinite(mean):
        return "-"
    if not math.isfinite(lo):
        return f"{_num(mean)} (n=1)"
    return f"{_num(mean)} [{_num(lo)}, {_num(hi)}]"


def _markdown(exp: Experiment, table: pd.DataFrame, odds: pd.DataFrame, samples: pd.DataFrame) -> str:
    metrics = [c.removesuffix("_mean") for c in table.columns if c.endswith("_mean")]
    s = exp.study.get("settings", {})
    epochs = s.get("epochs", "?")
    lines = [f"Study `{exp.name}`: {s.get('dataset', '?')}, {epochs} epoch{'' if epochs == 1 else 's'} per trial, "
             f"preset {s.get('preset', '?')}. Mean [95% Student-t interval] over seeds; "
             "min..max below. Lower is better for " + ", ".join(m for m in metrics if m in LOWER_IS_BETTER) + ".",
             "", "| variant | runs | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
    for _, r in table.iterrows():
        runs = f"{r['completed']}" + (f" (+{r['diverged']} diverged)" if r["diverged"] else "")
        lines.append(f"| {r['label']} | {runs} | " + " | ".join(_interval(r, m) for m in metrics) + " |")
    lines += ["", "| variant | " + " | ".join(f"{m} min..max" for m in metrics) + " |", "|---|" + "---|" * len(metrics)]
    for _, r in table.iterrows():
        lines.append(f"| {r['label']} | " + " | ".join(f"{_num(r[f'{m}_min'])}..{_num(r[f'{m}_max'])}" for m in metrics) + " |")
    if not odds.empty:
        lines += ["", "Chance of coming out best when each variant is trained once (the report's design):", "",
                  "| variant | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
        for v in table["variant"]:
            p = odds.loc[odds["variant"] == v].set_index("metric")["p_best"]
            lines.append(f"| {variant_label(v)} | " + " | ".join(f"{p.get(m, math.nan):.2f}" for m in metrics) + " |")
    if not samples.empty:
        lines += ["", "Decodes of random latents z ~ N(0, std^2), 16 per trial, over all seeds (figure 3c in numbers):", "",
                  "| variant | std | share with output | mean pixel |", "|---|---|---|---|"]
        for _, r in samples.iterrows():
            lines.append(f"| {r['label']} | {r['std']} | {_interval(r, 'with_output')} | {_interval(r, 'mean_pixel')} |")
    return "\n".join(lines) + "\n"


# --- decodes of random latents, measured ------------------------------------------------------------
def _tile_size(grid: Image.Image, rows: int, pad: int = 2) -> int:
    """The image side in a Trainer.save_images grid of `rows` rows (``pad`` px of white between)."""
    return (grid.height - pad) // rows - pad


def _tiles(grid: Image.Image, rows: int, pad: int = 2) -> np.ndarray:
    """A Trainer.save_images grid of `rows` rows -> (n, tile, tile) grey levels in [0, 1]."""
    tile = _tile_size(grid, rows, pad)
    a = np.asarray(grid.convert("L"), dtype="float64") / 255.0
    cols = (a.shape[1] - pad) // (tile + pad)
    return np.stack([a[pad + r * (tile + pad):pad + r * (tile + pad) + tile, pad + c * (tile + pad):pad + c * (tile + pad) + tile]
                     for r in range(rows) for c in range(cols)])


def sample_table(exp: Experiment) -> pd.DataFrame:
    """The report's figure 3c in numbers, over every completed trial (not one seed): per variant
    and prior std (1, 3), the share of decoded random latents with any output (a pixel of at
    least 0.5: dSprites has a black background) and their mean pixel value (the data: 0.04),
    each as mean [95% t-interval] over seeds."""
    done = exp.trials.loc[exp.trials["outcome"] == "completed"]
    rows = []
    for v in [v for v in VARIANT_LABELS if v in set(done["variant"])]:
        for std in (1, 3):
            shares, means = [], []
            for _, trial in done.loc[done["variant"] == v].iterrows():
                grid = _grid(exp, trial, f"samples_std{std}")
                if grid is not None:
                    tiles = _tiles(grid, rows=2)  # Trainer.save_images: two rows of samples per std
                    shares.append(float((tiles.max(axis=(1, 2)) >= 0.5).mean()))
                    means.append(float(tiles.mean()))
            if shares:
                row = {"variant": v, "label": variant_label(v), "std": std, "trials": len(shares)}
                for name, vals in (("with_output", shares), ("mean_pixel", means)):
                    row[f"{name}_mean"], row[f"{name}_low"], row[f"{name}_high"] = t_interval(np.array(vals))
                rows.append(row)
    return pd.DataFrame(rows)


# --- figures ------------------------------------------------------------------------------------
def _figures(exp: Experiment) -> dict[str, go.Figure]:
    faces = not _has_factors(exp)
    figs: dict[str, go.Figure] = {}
    if not faces:
        info = curves_info(exp, metrics=[m for m in CURVE_METRICS if m in exp.history], aggregate=True)
        fig = curves_figure(info, columns=2)
        fig.update_layout(title_text="Figure 1: metrics over training (mean over seeds, 95% t-band)")
        figs["fig1_metrics"] = fig
    losses = [m for m in LOSSES if m in exp.history and exp.history[m].notna().any()]
    fig = curves_figure(curves_info(exp, metrics=losses, aggregate=True), columns=len(losses))
    fig.update_layout(title_text=f"Figure {4 if faces else 2}: unscaled losses over training "
                                 "(mean over seeds, 95% t-band)")
    figs["fig4_losses" if faces else "fig2_losses"] = fig
    return figs


def _png(fig: go.Figure) -> bytes:
    return fig.to_image(format="png", width=1100, height=int(fig.layout.height or 500), scale=1)


def _panel_trials(exp: Experiment) -> list[pd.Series]:
    """Per variant (report order), its completed trial with the lowest seed."""
    done = exp.trials.loc[exp.trials["outcome"] == "completed"].sort_values("seed")
    order = [v for v in VARIANT_LABELS if v in set(done["variant"])]
    return [done.loc[done["variant"] == v].iloc[0] for v in order]


def _grid(exp: Experiment, trial: pd.Series, kind: str) -> Image.Image | None:
    data = exp.image_bytes(str(trial["trial_id"]), kind)
    return None if data is None else Image.open(io.BytesIO(data)).convert("RGB")


def _vstack(images: Sequence[Image.Image], gap: int = 0) -> Image.Image:
    out = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images) + gap * (len(images) - 1)), "white")
    y = 0
    for i in images:
        out.paste(i, (0, y))
        y += i.height + gap
    return out


def _traversal_rows(exp: Experiment, trial: pd.Series, grid: Image.Image, pad: int = 2) -> Image.Image:
    """The traversal rows of the TRAVERSED_LATENTS latents with the largest KL (the most used)."""
    kl = {int(c.rsplit("_", 1)[1]): float(trial[c]) for c in exp.trials.columns
          if c.startswith("kl_dim_") and pd.notna(trial[c])}
    latents = int(trial.get("config/latent_dim") or len(kl))  # one grid row per latent
    step = _tile_size(grid, latents, pad) + pad
    top = sorted(kl, key=kl.get, reverse=True)[:TRAVERSED_LATENTS] if kl else range(min(latents, TRAVERSED_LATENTS))
    return _vstack([grid.crop((0, d * step, grid.width, (d + 1) * step + pad)) for d in sorted(top)])


def _image_figure(exp: Experiment, title: str, build) -> bytes | None:
    """One PNG: per variant a label and the image ``build(trial)`` returns, stacked."""
    rows = []
    for trial in _panel_trials(exp):
        img = build(trial)
        if img is not None:
            rows.append((f"{variant_label(trial['variant'])}, seed {trial['seed']}", img))
    if not rows:
        return None
    label_w, head, gap = 170, 24, 8
    width = label_w + max(img.width for _, img in rows)
    height = head + sum(img.height + gap for _, img in rows)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 4), title, fill="black")
    y = head
    for label, img in rows:
        draw.text((4, y + img.height // 2 - 6), label, fill="black")
        canvas.paste(img, (label_w, y))
        y += img.height + gap
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


def _image_panels(exp: Experiment) -> dict[str, bytes]:
    n = 5 if not _has_factors(exp) else 3

    def stacked(*kinds: str):
        def build(trial):
            grids = [g for g in (_grid(exp, trial, k) for k in kinds) if g is not None]
            return _vstack(grids, gap=6) if grids else None
        return build

    def traversals(trial):
        grid = _grid(exp, trial, "traversals")
        return None if grid is None else _traversal_rows(exp, trial, grid)

    panels = {
        f"fig{n}a_reconstructions": ("(a) inputs (top) and reconstructions (bottom)", stacked("recon")),
        f"fig{n}b_traversals": (f"(b) traversals from -2.5 to 2.5 of the {TRAVERSED_LATENTS} latents with the largest KL",
                                traversals),
        f"fig{n}c_samples": ("(c) decodes of z ~ N(0, 1) (top two rows) and z ~ N(0, 3^2) (bottom two rows)",
                             stacked("samples_std1", "samples_std3")),
    }
    out = {}
    for name, (title, build) in panels.items():
        png = _image_figure(exp, title, build)
        if png is not None:
            out[name] = png
    return out


# --- writing ------------------------------------------------------------------------------------
def _page(exp: Experiment, md_table: pd.DataFrame, odds: pd.DataFrame, figs: dict[str, go.Figure],
          images: dict[str, bytes]) -> str:
    metrics = [c.removesuffix("_mean") for c in md_table.columns if c.endswith("_mean")]
    head = "".join(f"<th>{html.escape(m)}</th>" for m in metrics)
    body = "".join(
        f"<tr><td>{html.escape(r['label'])}</td><td>{r['completed']}</td><td>{r['diverged']}</td>"
        + "".join(f"<td>{html.escape(_interval(r, m))}</td>" for m in metrics) + "</tr>"
        for _, r in md_table.iterrows())
    odds_rows = "".join(
        f"<tr><td>{html.escape(variant_label(v))}</td>" + "".join(
            f"<td>{odds.loc[(odds['variant'] == v) & (odds['metric'] == m), 'p_best'].sum():.2f}</td>" for m in metrics)
        + "</tr>" for v in md_table["variant"])
    parts = [f"<h1>The report's comparison: <code>{html.escape(exp.name)}</code></h1>",
             "<table><caption>mean [95% Student-t interval] over seeds</caption>"
             f"<tr><th>variant</th><th>completed</th><th>diverged</th>{head}</tr>{body}</table>",
             "<table><caption>chance of coming out best when each variant is trained once</caption>"
             f"<tr><th>variant</th>{head}</tr>{odds_rows}</table>"]
    for k, (name, fig) in enumerate(figs.items()):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(k == 0), div_id=name))
    for name, png in images.items():
        parts.append(f'<figure id="{name}"><img alt="{name}" src="data:image/png;base64,'
                     f'{base64.b64encode(png).decode("ascii")}"><figcaption>{name}</figcaption></figure>')
    css = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;"
           "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:14px}caption{text-align:left;"
           "font-weight:bold}img{max-width:100%}")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Paper comparison "
            f"{html.escape(exp.name)}</title><style>{css}</style></head><body>{''.join(parts)}</body></html>\n")


def write_paper(experiment_dir: str | os.PathLike, out: str | os.PathLike | None = None, *,
                png: bool = True, experiment: Experiment | None = None) -> list[str]:
    """Write the tables and figures of a ``--space paper`` study into ``out`` (default
    ``<experiment_dir>/paper``); ``experiment``: the folder already loaded. Returns the written
    paths; PNG figures need kaleido and a Chrome/Chromium (otherwise left out, with a line on
    stderr)."""
    exp = experiment if experiment is not None else load_experiment(experiment_dir)
    _check(exp)
    table = paper_table(exp)
    metrics = [c.removesuffix("_mean") for c in table.columns if c.endswith("_mean")]
    odds = single_run_odds(exp, metrics)
    samples = sample_table(exp)
    figs = _figures(exp)
    images = _image_panels(exp)

    files: dict[str, bytes] = {
        "comparison.csv": table.to_csv(index=False).encode(),
        "comparison.md": _markdown(exp, table, odds, samples).encode(),
        "single_run.csv": odds.to_csv(index=False).encode(),
        "samples.csv": samples.to_csv(index=False).encode(),
        **{f"{name}.png": data for name, data in images.items()},
    }
    if png:
        try:
            files.update({f"{name}.png": _png(fig) for name, fig in figs.items()})
        except Exception as exc:  # kaleido missing, or it found no browser
            reason = " ".join(str(exc).split())[:160] or type(exc).__name__
            print(f"note: PNG figures skipped ({reason}); install the 'figures' extra and Chrome or Chromium. "
                  "The HTML figures in paper.html are complete.", file=sys.stderr)
    files["paper.html"] = _page(exp, table, odds, figs, images).encode()
    stale = [f"{name}.png" for name in figs if f"{name}.png" not in files]  # from an earlier run with PNGs

    if out is None:
        root = os.fspath(experiment_dir)
        out = join_uri(root, PAPER_DIR) if "://" in root else os.path.join(root, PAPER_DIR)
    store = _Store.open(out)
    for name in stale:
        store.delete(name)
    return [store.write_atomic(name, data) for name, data in files.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.paper",
                                     description="Tables and figures of a --space paper study (the report's comparison).")
    parser.add_argument("experiment", help="experiment folder (<storage>/<name>), local or s3://")
    parser.add_argument("--out", default=None, help="folder to write (default: EXPERIMENT/paper)")
    parser.add_argument("--no-png", action="store_true", help="skip the PNG export of the Plotly figures")
    args = parser.parse_args(argv)
    return run_command(lambda: write_paper(args.experiment, args.out, png=not args.no_png), "the paper outputs")

if __name__ == "__main__":
    sys.exit(main())
