"""The HTML pieces of the report: the header, a section (with its note when the sample is too
small), the trials table, the comparison table and the image panels of the best trials."""

from __future__ import annotations

import html
import math
from typing import Any

from analysis.charts import comparison_table
from analysis.charts.data import Sample
from analysis.experiment import Experiment
from analysis.report_trials import clean, outcome_text
from trainables.vocabulary import DISENTANGLEMENT_METRICS, METRICS, RECONSTRUCTION, Outcome, variant_label

# The outcomes in the header's order: the finished ones first, then what is still to come.
OUTCOME_ORDER = tuple(o.value for o in (Outcome.COMPLETED, Outcome.STOPPED, Outcome.DIVERGED, Outcome.ERROR,
                                        Outcome.UNREADABLE, Outcome.RUNNING, Outcome.INTERRUPTED, Outcome.PENDING))
_UNFINISHED = (Outcome.RUNNING.value, Outcome.INTERRUPTED.value, Outcome.PENDING.value)


def fmt(v: Any) -> str:
    v = clean(v)
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def section(anchor: str, title: str, body: str, intro: str = "", sample: Sample | None = None) -> str:
    """A section; when `sample` is too small, a note says how many it needs and the charts are greyed."""
    intro_html = f'<p class="intro">{intro}</p>' if intro else ""
    short = sample is not None and not sample.enough
    note = f'<p class="sample-note">{html.escape(sample.note())}</p>' if short else ""
    cls = ' class="insufficient"' if short else ""
    return f'<section id="{anchor}"{cls}><h2>{html.escape(title)}</h2>{intro_html}{note}{body}</section>'


def header(exp: Experiment) -> str:
    s = exp.study
    counts = exp.trials["outcome"].value_counts().to_dict() if len(exp.trials) else {}
    outcome_txt = ", ".join(f"{counts[o]} {o}" for o in OUTCOME_ORDER if counts.get(o)) or "no trials yet"
    facts = [("space", s.get("space")), ("dataset", s.get("dataset")), ("preset", s.get("preset")),
             ("status", s.get("status")), ("started", s.get("started_at") or s.get("started")),
             ("ended", s.get("ended_at") or s.get("ended")),
             ("objectives", ", ".join(f"{o.metric} ({'max' if o.direction == 'maximize' else 'min'})"
                                      for o in exp.objectives))]
    items = "".join(f"<span><b>{k}</b> {html.escape(str(v))}</span>" for k, v in facts if v not in (None, ""))
    versions = s.get("versions") if isinstance(s.get("versions"), dict) else {}
    vers = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in exp.notes)
    return (f"<header><h1>Study <code>{html.escape(exp.name)}</code></h1>"
            f'<p class="facts">{items}</p>'
            f'<p class="facts"><b>{len(exp.trials)} trials</b>: {html.escape(outcome_txt)}</p>'
            + (f'<p class="versions">versions: {html.escape(vers)}</p>' if vers else "")
            + f'<p class="versions">source: <code>{html.escape(exp.path)}</code></p>{_banner(exp, counts)}{notes}'
            "</header>")


def _banner(exp: Experiment, counts: dict[str, int]) -> str:
    unfinished = sum(counts.get(o, 0) for o in _UNFINISHED)
    if not unfinished:
        return ""
    if exp.launch_runs:
        return (f'<p class="banner">The study is still running ({unfinished} trials running or pending): '
                "values of running trials may still change; run the report again for newer results.</p>")
    # study.json says `running` after a killed driver: say what is known, that no launch runs it
    return (f'<p class="banner">No launch runs the study now ({unfinished} trials interrupted or pending); '
            "resume it with python -m study.launch --resume to complete them.</p>")


def _table_columns(exp: Experiment) -> list[tuple[str, str]]:
    """(column, heading) for the trials table."""
    t = exp.trials
    objs = [o.metric for o in exp.objectives if o.metric in t]
    scores = [m for m in DISENTANGLEMENT_METRICS if m in t and m not in objs and t[m].notna().any()]
    losses = [m for m in (RECONSTRUCTION, "kl") if m in t and m not in objs and t[m].notna().any()]
    params = [(c, p) for p, c in exp.searched_columns().items() if p != "variant"]
    cols = [("trial_id", "trial"), ("variant", "variant"), ("seed", "seed"), ("config_group", "config"),
            ("outcome", "outcome"), ("pareto_rank", "Pareto rank"), ("epochs", "epochs")]
    cols += [(m, _heading(m)) for m in objs + losses + scores]
    cols += params
    cols += [("wall_time_s", "wall time (s)"), ("node", "node"), ("gpu_share", "GPU share"),
             ("retries", "retries"), ("diverged_epoch", "diverged at"), ("error", "error")]
    return [(c, h) for c, h in cols if c in t]


def _heading(metric: str) -> str:
    unit = METRICS[metric].unit if metric in METRICS else ""
    return f"{metric} [{unit}]" if unit else metric


def trials_table(exp: Experiment) -> str:
    """Sortable; a row per trial with its outcome and, on the front, the class ``front``."""
    cols = _table_columns(exp)
    head = "".join(f'<th scope="col" data-col="{i}" title="click to sort">{html.escape(h)}</th>'
                   for i, (_, h) in enumerate(cols))
    rows = []
    for r in exp.trials.to_dict("records"):
        cells = "".join(_cell(c, clean(r[c]), outcome_text(r) if c == "outcome" else None) for c, _ in cols)
        cls = f"o-{html.escape(str(r['outcome']))}" + (" front" if r.get("on_front") else "")
        rows.append(f'<tr data-trial="{html.escape(str(r["trial_id"]))}" class="{cls}">{cells}</tr>')
    body = "".join(rows) or f'<tr><td colspan="{len(cols)}">no trials yet</td></tr>'
    return (f'<div class="table-wrap"><table id="trials-table" class="sortable"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _cell(column: str, v: Any, shown: str | None = None) -> str:
    """A table cell sorted by its value `v`; `shown` when the text differs from it."""
    if shown is None:
        shown = variant_label(v) if column == "variant" and v is not None else (
            f"#{v}" if column == "config_group" and v is not None else fmt(v))
    if column == "pareto_rank" and v == 1:
        shown = "1 (front)"
    number = isinstance(v, (int, float)) and not isinstance(v, bool)
    sort = "" if v is None else (repr(float(v)) if number else str(v))
    title = f' title="{html.escape(str(v))}"' if column == "error" and v else ""
    return f'<td data-sort="{html.escape(sort)}"{title}>{html.escape(shown[:80])}</td>'


def comparison(exp: Experiment, metrics: list[str]) -> str:
    """The configurations across seeds as a table: mean [interval] per metric."""
    try:
        table = comparison_table(exp, metrics=metrics)
    except ValueError:
        return ""
    if table.empty:
        return ""
    metrics = [c.removesuffix("_mean") for c in table.columns if c.endswith("_mean")]
    head = "<th>configuration</th><th>seeds</th>" + "".join(f"<th>{html.escape(_heading(m))}</th>" for m in metrics)
    rows = []
    for _, r in table.iterrows():
        cells = []
        for m in metrics:
            mean, lo, hi = r[f"{m}_mean"], r[f"{m}_low"], r[f"{m}_high"]
            txt = "" if not math.isfinite(mean) else f"{mean:.3g}" + (
                f" [{lo:.3g}, {hi:.3g}]" if math.isfinite(lo) else "")
            cells.append(f"<td>{txt}</td>")
        rows.append(f"<tr><td>{html.escape(r['label'])}</td><td>{int(r['n'])}</td>{''.join(cells)}</tr>")
    return ('<div class="table-wrap"><table class="comparison"><caption>mean [95% interval] over the seeds of each '
            "configuration (an interval needs two seeds)</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def image_panels(trials: dict[str, dict[str, Any]], ids: list[str]) -> str:
    """The best trial of each variant: its images as figures (filled in by report.js from the
    trial data, the same images the selection panel shows)."""
    if not ids:
        return '<p class="unavailable">Not available: no trial with images on the front yet.</p>'
    return '<div class="panels">' + "".join(
        f'<div class="panel-row" data-trial="{html.escape(i)}"><h3>{html.escape(trials[i]["label"])}</h3>'
        '<div class="panel-images"></div></div>' for i in ids if i in trials) + "</div>"
