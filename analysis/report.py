"""One self-contained HTML report of an experiment.

    python -m analysis.report runs/compare            # writes runs/compare/report.html
    python -m analysis.report s3://bucket/studies/x --out x.html

The file works offline from disk: plotly.js is embedded once, every figure is plotted from JSON
embedded in the page, the trials' images are embedded as data: URIs. Clicking a point of the
Pareto front (or a row of the trials table) shows that trial's images and configuration.
The command also writes trials.parquet and history.parquet next to the experiment (unless
``--no-parquet``); every file is written atomically.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import os
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import plotly
import plotly.graph_objects as go

from analysis import charts as C
from analysis.command import run_command
from analysis.experiment import Experiment
from analysis.folder import load_experiment
from analysis.parquet import write_results
from trainables import storage
from trainables.vocabulary import (
    DISENTANGLEMENT_METRICS,
    IMAGE_KINDS,
    RECONSTRUCTION,
    REPORT_FILE,
    Outcome,
    variant_label,
)

__all__ = ["build_report", "main", "write_report"]

# The outcomes in the header's order: the finished ones first, then what is still to come.
_OUTCOME_ORDER = tuple(o.value for o in (Outcome.COMPLETED, Outcome.STOPPED, Outcome.DIVERGED, Outcome.ERROR,
                                         Outcome.RUNNING, Outcome.PENDING))
_UNFINISHED = (Outcome.RUNNING.value, Outcome.PENDING.value)


def _json_for_script(obj: Any) -> str:
    """JSON safe inside <script type="application/json">: no '</' can close the tag."""
    text = json.dumps(obj, separators=(",", ":"), default=_default, allow_nan=False)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def _default(v: Any) -> Any:
    if isinstance(v, (pd.Timestamp,)):
        return v.isoformat()
    if hasattr(v, "item"):
        return v.item()
    return str(v)


def _clean(v: Any) -> Any:
    """A JSON-able scalar: NaN and NA become None."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if hasattr(v, "item") and not isinstance(v, str):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v


def _fmt(v: Any) -> str:
    v = _clean(v)
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _figure_json(fig: go.Figure) -> dict[str, Any]:
    return json.loads(fig.to_json())


def _section(anchor: str, title: str, body: str, intro: str = "") -> str:
    intro_html = f'<p class="intro">{intro}</p>' if intro else ""
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{intro_html}{body}</section>'


def _charts(exp: Experiment) -> list[tuple[str, str, str, Callable[[], go.Figure]]]:
    """(anchor, title, explanation, figure builder) in page order."""
    return [
        ("importance", "Parameter importance",
         "Which searched parameters explain each objective, over completed trials.",
         lambda: C.plot_param_importances(exp)),
        ("parallel", "Searched parameters",
         "One line per completed trial; the menu switches the colour between objectives.",
         lambda: C.plot_parallel_coordinates(exp)),
        ("curves", "Training curves",
         "Every loss term and metric per epoch, one line per trial, coloured by variant.",
         lambda: C.plot_curves(exp)),
        ("seeds", "Variants across seeds",
         "Final values of completed trials per variant. The diamond is the mean with its 95% "
         "Student-t interval: with a handful of seeds, intervals that overlap mean the data cannot "
         "order the variants.",
         lambda: C.plot_seed_distributions(exp)),
        ("correlation", "Metric correlation",
         "Spearman rank correlation between final values across completed trials.",
         lambda: C.plot_correlation(exp)),
        ("divergence", "Divergence",
         "Share of finished trials whose loss became NaN or Inf, and the epoch it happened in.",
         lambda: C.plot_divergence(exp)),
        ("panels", "Images of the best trials",
         "The best Pareto-front trial of each variant: reconstructions, latent traversals and decodes of "
         "random latents at prior standard deviation 1 and 3.",
         lambda: C.plot_image_panels(exp)),
    ]


def _header(exp: Experiment) -> str:
    s = exp.study
    counts = exp.trials["outcome"].value_counts().to_dict() if len(exp.trials) else {}
    outcome_txt = ", ".join(f"{counts[o]} {o}" for o in _OUTCOME_ORDER if counts.get(o)) or "no trials yet"
    facts = [("space", s.get("space")), ("dataset", s.get("dataset")), ("preset", s.get("preset")),
             ("status", s.get("status")), ("started", s.get("started_at") or s.get("started")),
             ("ended", s.get("ended_at") or s.get("ended")),
             ("objectives", ", ".join(f"{o.metric} ({'max' if o.direction == 'maximize' else 'min'})"
                                      for o in exp.objectives))]
    items = "".join(f"<span><b>{k}</b> {html.escape(str(v))}</span>" for k, v in facts if v not in (None, ""))
    versions = s.get("versions") if isinstance(s.get("versions"), dict) else {}
    vers = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
    running = sum(counts.get(o, 0) for o in _UNFINISHED)
    banner = ""
    if running and s.get("status") in (None, "running"):
        banner = (f'<p class="banner">The study is still running ({running} trials running or pending): '
                  "values of running trials may still change; run the report again for newer results.</p>")
    elif running:
        banner = (f'<p class="banner">The study is {html.escape(str(s.get("status")))} with {running} trials '
                  "unfinished; resume it with python -m study.launch --resume to complete them.</p>")
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in exp.notes)
    return (f"<header><h1>Study <code>{html.escape(exp.name)}</code></h1>"
            f'<p class="facts">{items}</p>'
            f'<p class="facts"><b>{len(exp.trials)} trials</b>: {html.escape(outcome_txt)}</p>'
            + (f'<p class="versions">versions: {html.escape(vers)}</p>' if vers else "")
            + f'<p class="versions">source: <code>{html.escape(exp.path)}</code></p>{banner}{notes}</header>')


def _table_columns(exp: Experiment) -> list[tuple[str, str]]:
    """(column, heading) for the trials table."""
    t = exp.trials
    objs = [o.metric for o in exp.objectives if o.metric in t]
    scores = [m for m in DISENTANGLEMENT_METRICS if m in t and m not in objs and t[m].notna().any()]
    losses = [m for m in (RECONSTRUCTION, "kl") if m in t and m not in objs and t[m].notna().any()]
    params = [p for p in exp.searched if f"config/{p}" in t and p not in ("variant", "seed")]
    cols = [("trial_id", "trial"), ("variant", "variant"), ("seed", "seed"), ("outcome", "outcome"),
            ("epochs", "epochs")]
    cols += [(m, m) for m in objs + losses + scores]
    cols += [(f"config/{p}", p) for p in params]
    cols += [("wall_time_s", "wall time (s)"), ("node_ip", "node"), ("gpu_share", "GPU share"),
             ("retries", "retries"), ("diverged_epoch", "diverged at"), ("error", "error")]
    return [(c, h) for c, h in cols if c in t]


def _trials_table(exp: Experiment) -> str:
    cols = _table_columns(exp)
    head = "".join(f'<th scope="col" data-col="{i}" title="click to sort">{html.escape(h)}</th>'
                   for i, (_, h) in enumerate(cols))
    rows = []
    for _, r in exp.trials.iterrows():
        cells = []
        for c, _ in cols:
            v = _clean(r[c])
            shown = variant_label(v) if c == "variant" and v is not None else _fmt(v)
            if c == "outcome":
                shown = _outcome_text(r)
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            sort = "" if v is None else (repr(float(v)) if number else str(v))
            title = f' title="{html.escape(str(v))}"' if c == "error" and v else ""
            cells.append(f'<td data-sort="{html.escape(sort)}"{title}>{html.escape(shown[:80])}</td>')
        rows.append(f'<tr data-trial="{html.escape(str(r["trial_id"]))}" class="o-{html.escape(str(r["outcome"]))}">'
                    + "".join(cells) + "</tr>")
    body = "".join(rows) or f'<tr><td colspan="{len(cols)}">no trials yet</td></tr>'
    return (f'<div class="table-wrap"><table id="trials-table" class="sortable"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _comparison(exp: Experiment) -> str:
    try:
        table = C.comparison_table(exp)
    except ValueError:
        return ""
    if table.empty:
        return ""
    metrics = [c.removesuffix("_mean") for c in table.columns if c.endswith("_mean")]
    head = "<th>variant</th><th>n</th>" + "".join(f"<th>{html.escape(m)}</th>" for m in metrics)
    rows = []
    for _, r in table.iterrows():
        cells = []
        for m in metrics:
            mean, lo, hi = r[f"{m}_mean"], r[f"{m}_low"], r[f"{m}_high"]
            txt = "" if not math.isfinite(mean) else f"{mean:.3g}" + (
                f" [{lo:.3g}, {hi:.3g}]" if math.isfinite(lo) else "")
            cells.append(f"<td>{txt}</td>")
        rows.append(f"<tr><td>{html.escape(r['label'])}</td><td>{int(r['n'])}</td>{''.join(cells)}</tr>")
    return ('<div class="table-wrap"><table class="comparison"><caption>mean [95% Student-t interval] over '
            f"completed trials</caption><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def _outcome_text(row: pd.Series) -> str:
    """The outcome as shown: a scheduler-stopped trial says where it stopped."""
    outcome, epochs = _clean(row["outcome"]), _clean(row.get("epochs"))
    if outcome == Outcome.STOPPED.value and epochs is not None:
        return f"stopped at epoch {int(epochs)}"
    return _fmt(outcome)


def _trial_data(exp: Experiment) -> dict[str, Any]:
    """What the selection panel shows, per trial: label, outcome, metrics, configuration, images."""
    t = exp.trials
    metrics = [o.metric for o in exp.objectives if o.metric in t]
    metrics += [m for m in exp.metrics if m in t and m not in metrics]
    kinds = exp.image_kinds()
    searched = [p for p in exp.searched if f"config/{p}" in t]
    out = {}
    for _, r in t.iterrows():
        tid = str(r["trial_id"])
        cfg_keys = searched + [c.removeprefix("config/") for c in exp.config_columns()
                               if c.removeprefix("config/") not in searched]
        out[tid] = {
            "label": f"trial {tid} · {variant_label(_clean(r['variant']))}"
                     + (f" · seed {_clean(r['seed'])}" if _clean(r["seed"]) is not None else ""),
            "outcome": _outcome_text(r),
            "n_objectives": sum(1 for o in exp.objectives if o.metric in t and _clean(r[o.metric]) is not None),
            "facts": {k: _fmt(r[k]) for k in ("epochs", "wall_time_s", "node_ip", "gpu_share", "retries",
                                               "diverged_epoch", "error") if k in t and _clean(r[k]) is not None},
            "metrics": [[m, _fmt(r[m])] for m in metrics if _clean(r[m]) is not None],
            "config": [[k, _fmt(r[f"config/{k}"]), k in exp.searched] for k in cfg_keys
                       if _clean(r[f"config/{k}"]) is not None],
            "images": [[k, IMAGE_KINDS.get(k, k), exp.image_uri(tid, k)] for k in kinds
                       if isinstance(_clean(r[f"image/{k}"]), str)],
        }
    return out


# The page's style and script, kept as files of their own so that editors and linters see them.
_CSS = (resources.files("analysis") / "report.css").read_text(encoding="utf-8")
_JS = (resources.files("analysis") / "report.js").read_text(encoding="utf-8")


def build_report(exp: Experiment) -> str:
    """The report's HTML text for a loaded experiment."""
    figures: dict[str, Any] = {}
    nav = [("pareto", "Trade-off"), ("trials", "Trials")]
    sections = []

    try:
        figures["chart-pareto"] = _figure_json(C.plot_pareto_front(exp))
        pareto_body = '<div id="chart-pareto" class="chart"></div>'
    except ValueError as exc:
        pareto_body = f'<p class="unavailable">Not available: {html.escape(str(exc))}</p>'
    aside = ('<aside id="selection" data-trial=""><p class="hint">Click a point of the Pareto front, or a row '
             "of the trials table, to see that trial's reconstructions, traversals, samples and configuration."
             "</p></aside>")
    sections.append(_section("pareto", "Disentanglement against reconstruction",
                             f'<div class="pareto-row">{pareto_body}{aside}</div>',
                             "Coloured points are on the Pareto front (no other trial is better in both); "
                             "grey points are dominated. Hover for the full configuration."))
    sections.append(_section("trials", "Trials", _trials_table(exp),
                             "Click a heading to sort, a row to show the trial above."))
    for anchor, title, intro, build in _charts(exp):
        try:
            figures[f"chart-{anchor}"] = _figure_json(build())
            body = f'<div id="chart-{anchor}" class="chart"></div>'
        except ValueError as exc:
            body = f'<p class="unavailable">Not available: {html.escape(str(exc))}</p>'
        if anchor == "seeds":
            body += _comparison(exp)
        sections.append(_section(anchor, title, body, intro))
        nav.append((anchor, title))

    nav_html = "<nav>" + "".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t in nav) + "</nav>"
    plotly_js = plotly.offline.get_plotlyjs()
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>Study {html.escape(exp.name)}: analysis report</title><style>{_CSS}</style>"
        f"<script>{plotly_js}</script></head><body>"
        f"{_header(exp)}{nav_html}<main>{''.join(sections)}</main>"
        f'<script type="application/json" id="figure-data">{_json_for_script(figures)}</script>'
        f'<script type="application/json" id="trial-data">{_json_for_script(_trial_data(exp))}</script>'
        f"<script>{_JS}</script></body></html>\n"
    )


def write_report(experiment_dir: str | os.PathLike, out: str | os.PathLike | None = None, *,
                 parquet: bool = True, experiment: Experiment | None = None) -> Path | str:
    """Write the report of the experiment at ``experiment_dir`` (local or s3://) to ``out``
    (default ``<experiment_dir>/report.html``), atomically; with ``parquet`` also write
    trials.parquet and history.parquet into the experiment folder. ``experiment``: the folder
    already loaded. Returns the report's path (a Path when local, the URI on an object store)."""
    exp = experiment if experiment is not None else load_experiment(experiment_dir)
    text = build_report(exp)
    if parquet:
        write_results(experiment_dir, experiment=exp)
    target = os.fspath(out) if out is not None else storage.join(experiment_dir, REPORT_FILE)
    written = storage.write_bytes(target, text)
    return written if storage.is_remote(written) else Path(written)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.report",
                                     description="Write a self-contained HTML report of an experiment.")
    parser.add_argument("experiment", help="experiment folder (<storage>/<name>), local or s3://")
    parser.add_argument("--out", default=None, help="HTML file to write (default: EXPERIMENT/report.html)")
    parser.add_argument("--no-parquet", action="store_true", help="do not write trials.parquet and history.parquet")
    args = parser.parse_args(argv)
    return run_command(lambda: write_report(args.experiment, args.out, parquet=not args.no_parquet), "the report")


if __name__ == "__main__":
    sys.exit(main())
