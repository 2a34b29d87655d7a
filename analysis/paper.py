"""The report's comparison, with seeds: tables and figures of a ``--space paper`` study.

    python -m analysis.paper runs/paper-cpu              # writes runs/paper-cpu/paper/
    from analysis.paper import paper_table, single_run_odds, write_paper

The report (Matt 2022, "Extending the adversarial loss function of Soft-Intro VAE for stronger
disentanglement") compared beta-VAE, beta-TCVAE, Soft-Intro-VAE and Soft-Intro-TCVAE from one
training each. Here every variant has several seeds, so each number comes with its spread:

- ``comparison.csv`` / ``comparison.md``: per variant, the mean, 95% Student-t interval (cut to
  the metric's range: a score's interval stays in [0, 1]), min and max over seeds of the beta-VAE
  score, MIG, Modularity, Explicitness, DCI disentanglement and the reconstruction loss (on
  Ukiyo-e, which has no factors: the reconstruction loss and every unsupervised measure).
- ``single_run.csv``: per metric with a better side, the chance that each variant comes out
  best when every variant is trained once, as in the report (exact over all seed combinations).
- ``samples.csv``: figure 3c in numbers, over all seeds: the share of decoded random latents
  with any output, and their mean pixel value, per variant and prior standard deviation, as the
  trials' final metrics measured them (trainables.metrics.samples).
- ``fig1_metrics``: the metrics over training, mean and 95% band per epoch (report figure 1).
- ``fig2_losses`` (``fig4_losses`` on Ukiyo-e): the unscaled reconstruction loss, KL and TC over
  training (figures 2 and 4). Unscaled: the terms before the weights of 8, so variants compare.
- ``fig3_*.png`` (``fig5_*`` on Ukiyo-e): reconstructions, latent traversals and decodes of random
  latents at prior standard deviation 1 and 3, one row per variant (figures 3 and 5). The report
  chose the traversed latent by eye; here every latent is traversed, one row each in order of
  its KL (largest first), labelled with the latent and its KL from traversals.json.
- ``paper.html``: all of the above on one page that works offline.

Figures are written as PNG when kaleido and a Chrome/Chromium are installed (the ``figures``
extra), and always as interactive HTML. Every file is written atomically. Every number comes
from the tables; the images are shown whole, never measured.
"""

from __future__ import annotations

import html
import io
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from PIL import Image, ImageDraw, ImageFont

from analysis.charts import curves_figure, curves_info, seed_distributions_info
from analysis.charts.data import bounds
from analysis.command import parser, run_command
from analysis.experiment import Experiment, ExperimentError, png_uri
from analysis.folder import load_experiment
from analysis.stats import p_best, t_interval
from trainables import storage
from trainables.vocabulary import (
    DISENTANGLEMENT_METRICS,
    FAILED_OUTCOMES,
    METRICS,
    PAPER_DIR,
    RECONSTRUCTION,
    SAMPLE_MEASURES,
    SAMPLE_STDS,
    UNSUPERVISED_METRICS,
    VARIANT_NAMES,
    Outcome,
    sample_key,
    variant_label,
)

__all__ = ["FACTOR_METRICS", "NO_FACTOR_METRICS", "CURVE_METRICS", "LOSSES", "paper_table", "single_run_odds",
           "sample_table", "write_paper", "main"]

# The report's table (section 4.1) plus DCI, and the reconstruction loss it traded against.
FACTOR_METRICS = ("beta_vae", "mig", "modularity", "explicitness", "dci_disentanglement", RECONSTRUCTION)
# Ukiyo-e has no ground-truth factors: reconstruction quality and what needs no labels.
NO_FACTOR_METRICS = (RECONSTRUCTION, *UNSUPERVISED_METRICS)
CURVE_METRICS = ("beta_vae", "mig", "modularity", "explicitness")  # the four panels of figure 1
LOSSES = (RECONSTRUCTION, "kl", "tc")  # figure 2/4: tc exists for the TC variants only
_COMPLETED = Outcome.COMPLETED.value
_SPACE = "paper"  # the search space of the report's fixed design (search_spaces)


def _has_factors(exp: Experiment) -> bool:
    return any(m in exp.trials and exp.trials[m].notna().any() for m in DISENTANGLEMENT_METRICS)


def _check(exp: Experiment) -> None:
    space = exp.study.get("space")
    if space not in (None, _SPACE):
        raise ExperimentError(f"{exp.name} is a study of --space {space}: its variants mix searched "
                              f"configurations; analysis.paper compares the report's fixed ones (run --space {_SPACE})")
    if not (exp.trials["outcome"] == _COMPLETED).any() and exp.damaged:
        first = exp.damaged[0]
        raise ExperimentError(f"{exp.name} has no completed trial that can be read: {first.file}: {first.problem}")
    if not (exp.trials["outcome"] == _COMPLETED).any():
        raise ExperimentError(f"{exp.name} has no completed trial yet: wait for the study, or resume it "
                              "with python -m study.launch --resume")


def _variant_order(frame: pd.DataFrame) -> pd.DataFrame:
    rank = {v: k for k, v in enumerate(VARIANT_NAMES)}
    return frame.sort_values("variant", key=lambda s: s.map(lambda v: rank.get(v, len(rank)))).reset_index(drop=True)


# --- tables -----------------------------------------------------------------------------------------
def paper_table(exp: Experiment, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per variant (the report's order): trials finished, diverged, and per metric
    ``<m>_mean``, ``<m>_low``, ``<m>_high`` (95% Student-t interval of the mean over seeds, within
    the metric's range),
    ``<m>_min``, ``<m>_max``. A metric no trial reported is left out."""
    names = list(metrics) if metrics is not None else list(FACTOR_METRICS if _has_factors(exp) else NO_FACTOR_METRICS)
    names = [m for m in names if m in exp.trials and exp.trials[m].notna().any()]
    info = seed_distributions_info(exp, metrics=names, limit=None)
    finished = exp.trials.loc[exp.trials["outcome"].isin([_COMPLETED, *FAILED_OUTCOMES])]
    summary = {(s.metric, s.group): s for s in info.summaries}
    rows = []
    for j, (g, v) in enumerate(zip(info.groups, info.variants, strict=True)):
        mine = finished.loc[finished["variant"] == v]
        row: dict[str, Any] = {"variant": v, "label": variant_label(v),
                               "completed": int((mine["outcome"] == _COMPLETED).sum()),
                               "diverged": int((mine["outcome"] == Outcome.DIVERGED.value).sum())}
        for i, m in enumerate(info.metrics):
            s, vals = summary[(m, g)], info.values[i][j]
            row.update({f"{m}_mean": s.mean, f"{m}_low": s.low, f"{m}_high": s.high,
                        f"{m}_min": min(vals, default=math.nan), f"{m}_max": max(vals, default=math.nan)})
        rows.append(row)
    return _variant_order(pd.DataFrame(rows))


def single_run_odds(exp: Experiment, metrics: Sequence[str]) -> pd.DataFrame:
    """Per metric and variant, ``p_best``: the chance the variant comes out best when every
    variant is trained once with a random one of its seeds, what the report's one-run design
    could conclude. Metrics with no better side (the KL of the codes, active latents) have none."""
    ranked = [m for m in metrics if m in METRICS and METRICS[m].direction is not None]
    info = seed_distributions_info(exp, metrics=ranked, limit=None)
    rows = [{"metric": m, "variant": v, "label": variant_label(v), "p_best": p}
            for m, values in zip(info.metrics, info.values, strict=True)
            for v, p in p_best(dict(zip(info.variants, values, strict=True)),
                               lower_is_better=METRICS[m].direction == "min").items()]
    return pd.DataFrame(rows, columns=["metric", "variant", "label", "p_best"])


def sample_table(exp: Experiment) -> pd.DataFrame:
    """The report's figure 3c in numbers, over every completed trial (not one seed): per variant
    and prior std, the share of decoded random latents with any output (a pixel of at least
    0.5: dSprites has a black background) and their mean pixel value (the data: 0.04), each as
    mean [95% t-interval] over the trials that measured both (their final metrics)."""
    done = exp.trials.loc[exp.trials["outcome"] == _COMPLETED]
    rows = []
    for v in [v for v in VARIANT_NAMES if v in set(done["variant"])]:
        mine = done.loc[done["variant"] == v]
        for std in SAMPLE_STDS:
            cols = {measure: sample_key(std, measure) for measure in SAMPLE_MEASURES}
            if not all(c in mine for c in cols.values()):
                continue
            measured = mine.loc[mine[list(cols.values())].notna().all(axis=1)]
            if measured.empty:
                continue
            row: dict[str, Any] = {"variant": v, "label": variant_label(v), "std": std, "trials": len(measured)}
            for measure, col in cols.items():
                row[f"{measure}_mean"], row[f"{measure}_low"], row[f"{measure}_high"] = t_interval(
                    measured[col], lower=bounds(col)[0], upper=bounds(col)[1])
            rows.append(row)
    return pd.DataFrame(rows)


# --- text ---------------------------------------------------------------------------------------------
def _num(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.1f}" if abs(x) >= 100 else f"{x:.3g}"


def _interval(r: pd.Series, m: str) -> str:
    mean, lo, hi = r[f"{m}_mean"], r[f"{m}_low"], r[f"{m}_high"]
    if not math.isfinite(mean):
        return "-"
    if not math.isfinite(lo):
        return f"{_num(mean)} (n=1)"
    return f"{_num(mean)} [{_num(lo)}, {_num(hi)}]"


def _odds(odds: pd.DataFrame, variant: str, metric: str) -> str:
    """The variant's p_best for the metric, "-" when the metric has none."""
    p = odds.loc[(odds["variant"] == variant) & (odds["metric"] == metric), "p_best"]
    return f"{p.iloc[0]:.2f}" if len(p) else "-"


def _markdown(exp: Experiment, table: pd.DataFrame, odds: pd.DataFrame, samples: pd.DataFrame) -> str:
    metrics = [c.removesuffix("_mean") for c in table.columns if c.endswith("_mean")]
    s = exp.study.get("settings", {})
    epochs = s.get("epochs", "?")
    lower = [m for m in metrics if m in METRICS and METRICS[m].direction == "min"]
    lines = [f"Study `{exp.name}`: {s.get('dataset', '?')}, {epochs} epoch{'' if epochs == 1 else 's'} per trial, "
             f"preset {s.get('preset', '?')}. Mean [95% Student-t interval, cut to the metric's range] over seeds; "
             "min..max below. Lower is better for " + ", ".join(lower) + ".",
             "", "| variant | runs | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
    for _, r in table.iterrows():
        runs = f"{r['completed']}" + (f" (+{r['diverged']} diverged)" if r["diverged"] else "")
        lines.append(f"| {r['label']} | {runs} | " + " | ".join(_interval(r, m) for m in metrics) + " |")
    lines += ["", "| variant | " + " | ".join(f"{m} min..max" for m in metrics) + " |", "|---|" + "---|" * len(metrics)]
    for _, r in table.iterrows():
        lines.append(f"| {r['label']} | " + " | ".join(f"{_num(r[f'{m}_min'])}..{_num(r[f'{m}_max'])}"
                                                       for m in metrics) + " |")
    if not odds.empty:
        lines += ["", "Chance of coming out best when each variant is trained once (the report's design):", "",
                  "| variant | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
        for v in table["variant"]:
            lines.append(f"| {variant_label(v)} | " + " | ".join(_odds(odds, v, m) for m in metrics) + " |")
    if not samples.empty:
        lines += ["", "Decodes of random latents z ~ N(0, std^2), as each trial's final metrics measured them, "
                      "over all seeds (figure 3c in numbers):", "",
                  "| variant | std | share with output | mean pixel |", "|---|---|---|---|"]
        for _, r in samples.iterrows():
            cells = [str(r["std"]), *(_interval(r, m) for m in SAMPLE_MEASURES)]
            lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --- figures ------------------------------------------------------------------------------------------
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
    done = exp.trials.loc[exp.trials["outcome"] == _COMPLETED].sort_values("seed")
    order = [v for v in VARIANT_NAMES if v in set(done["variant"])]
    return [done.loc[done["variant"] == v].iloc[0] for v in order]


def _image(exp: Experiment, trial: pd.Series, kind: str) -> Image.Image | None:
    data = exp.image_bytes(str(trial["trial_id"]), kind)
    return None if data is None else Image.open(io.BytesIO(data)).convert("RGB")


def _vstack(images: Sequence[Image.Image], gap: int = 0) -> Image.Image:
    out = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images) + gap * (len(images) - 1)),
                    "white")
    y = 0
    for i in images:
        out.paste(i, (0, y))
        y += i.height + gap
    return out


# The image figures' layout: a title band, a label column per variant, and for the traversals a
# strip of row labels (latent and KL) and a band of column labels (z values); text FONT_PX high.
FONT_PX = 16
TITLE_H, LABEL_W, ROW_LABEL_W, Z_BAND_H, GAP = 30, 230, 150, 22, 8


def _font(px: int = FONT_PX) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=px)


def _labelled_traversals(exp: Experiment, trial: pd.Series) -> Image.Image | None:
    """The whole traversal image with each row's latent and KL written to its left and each
    column's z value above it. Rows and columns are equal in size, so a label sits at the middle."""
    grid = _image(exp, trial, "traversals")
    info = exp.traversals(str(trial["trial_id"]))
    if grid is None or info is None:
        return grid
    out = Image.new("RGB", (ROW_LABEL_W + grid.width, Z_BAND_H + grid.height), "white")
    out.paste(grid, (ROW_LABEL_W, Z_BAND_H))
    draw = ImageDraw.Draw(out)
    small = _font(FONT_PX - 2)
    for r, label in enumerate(info.row_labels()):
        draw.text((4, Z_BAND_H + (r + 0.5) * grid.height / len(info.latents)), label, fill="black", font=small,
                  anchor="lm")
    for c, label in enumerate(info.column_labels()):
        draw.text((ROW_LABEL_W + (c + 0.5) * grid.width / len(info.values), Z_BAND_H // 2), label, fill="black",
                  font=small, anchor="mm")
    return out


def _traversal_title(exp: Experiment, trials: Sequence[pd.Series]) -> str:
    info = next(filter(None, (exp.traversals(str(t["trial_id"])) for t in trials)), None)
    span = f" from z = {info.values[0]:g} to {info.values[-1]:g}" if info and info.values else ""
    return f"(b) traversals{span} of every latent, one row each, largest KL first (left: the latent and its KL)"


def _image_figure(title: str, rows: list[tuple[str, Image.Image]]) -> bytes | None:
    """One PNG: a title, then per variant a label and its image, stacked."""
    if not rows:
        return None
    width = LABEL_W + max(img.width for _, img in rows)
    height = TITLE_H + sum(img.height + GAP for _, img in rows)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((4, TITLE_H // 2), title, fill="black", font=_font(), anchor="lm")
    y = TITLE_H
    for label, img in rows:
        draw.text((4, y + img.height // 2), label, fill="black", font=_font(), anchor="lm")
        canvas.paste(img, (LABEL_W, y))
        y += img.height + GAP
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


def _image_panels(exp: Experiment) -> dict[str, bytes]:
    """Figures 3a-c (5a-c on Ukiyo-e): one row per variant, its lowest seed's images."""
    n = 3 if _has_factors(exp) else 5
    trials = _panel_trials(exp)

    def stacked(*kinds: str) -> Callable[[pd.Series], Image.Image | None]:
        def build(trial: pd.Series) -> Image.Image | None:
            images = [g for g in (_image(exp, trial, k) for k in kinds) if g is not None]
            return _vstack(images, gap=6) if images else None
        return build

    panels = {
        f"fig{n}a_reconstructions": ("(a) inputs (top) and reconstructions (bottom)", stacked("recon")),
        f"fig{n}b_traversals": (_traversal_title(exp, trials), lambda t: _labelled_traversals(exp, t)),
        f"fig{n}c_samples": ("(c) decodes of z ~ N(0, 1) (top two rows) and z ~ N(0, 3^2) (bottom two rows)",
                             stacked("samples_std1", "samples_std3")),
    }
    out = {}
    for name, (title, build) in panels.items():
        rows = [(f"{variant_label(t['variant'])}, seed {t['seed']}", img) for t in trials
                if (img := build(t)) is not None]
        png = _image_figure(title, rows)
        if png is not None:
            out[name] = png
    return out


# --- writing ------------------------------------------------------------------------------------------
def _page(exp: Experiment, md_table: pd.DataFrame, odds: pd.DataFrame, figs: dict[str, go.Figure],
          images: dict[str, bytes]) -> str:
    metrics = [c.removesuffix("_mean") for c in md_table.columns if c.endswith("_mean")]
    head = "".join(f"<th>{html.escape(m)}</th>" for m in metrics)
    body = "".join(
        f"<tr><td>{html.escape(r['label'])}</td><td>{r['completed']}</td><td>{r['diverged']}</td>"
        + "".join(f"<td>{html.escape(_interval(r, m))}</td>" for m in metrics) + "</tr>"
        for _, r in md_table.iterrows())
    odds_rows = "".join(f"<tr><td>{html.escape(variant_label(v))}</td>"
                        + "".join(f"<td>{_odds(odds, v, m)}</td>" for m in metrics) + "</tr>"
                        for v in md_table["variant"])
    parts = [f"<h1>The report's comparison: <code>{html.escape(exp.name)}</code></h1>",
             "<table><caption>mean [95% Student-t interval] over seeds</caption>"
             f"<tr><th>variant</th><th>completed</th><th>diverged</th>{head}</tr>{body}</table>",
             "<table><caption>chance of coming out best when each variant is trained once</caption>"
             f"<tr><th>variant</th>{head}</tr>{odds_rows}</table>"]
    for k, (name, fig) in enumerate(figs.items()):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(k == 0), div_id=name))
    for name, png in images.items():
        parts.append(f'<figure id="{name}"><img alt="{name}" src="{png_uri(png)}"><figcaption>{name}</figcaption>'
                     "</figure>")
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
    odds = single_run_odds(exp, [c.removesuffix("_mean") for c in table.columns if c.endswith("_mean")])
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
    folder = os.fspath(out) if out is not None else storage.join(experiment_dir, PAPER_DIR)
    for name in figs:  # a PNG from an earlier run that this one could not rewrite would be stale
        if f"{name}.png" not in files:
            storage.delete(storage.join(folder, f"{name}.png"))
    return [storage.write_bytes(storage.join(folder, name), data) for name, data in files.items()]


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m analysis.paper", "Tables and figures of a --space paper study (the report's comparison).")
    p.add_argument("--out", default=None, help="folder to write (default: EXPERIMENT/paper)")
    p.add_argument("--no-png", action="store_true", help="skip the PNG export of the Plotly figures")
    return run_command(p, argv, lambda args, exp: write_paper(args.experiment, args.out, png=not args.no_png,
                                                              experiment=exp), "the paper outputs")


if __name__ == "__main__":
    sys.exit(main())
