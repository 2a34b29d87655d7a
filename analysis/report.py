"""One self-contained HTML report of an experiment.

    python -m analysis.report runs/compare            # writes runs/compare/report.html
    python -m analysis.report s3://bucket/studies/x --out x.html

The file works offline from disk: plotly.js is embedded once, every figure is plotted from JSON
embedded in the page, the images of the trials that matter most are embedded as data: URIs (all
of them in a small study; analysis.report_trials says which), the others linked from the
experiment folder. The trade-off chart opens with the best trial selected; clicking a point (or
a row of the trials table, or a point of any chart) shows that trial's images, values and
configuration; ranges chosen on the parallel-coordinates axes filter the table and the front.
The command also writes trials.parquet and history.parquet next to the experiment (unless
``--no-parquet``); every file is written atomically. Exit status: analysis.command.
"""

from __future__ import annotations

import html
import json
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
from analysis import report_html as H
from analysis.charts.curves import headline_metrics
from analysis.charts.data import Sample, objective_pairs
from analysis.charts.images import best_per_variant
from analysis.charts.seeds import METHOD as SEEDS_METHOD
from analysis.command import parser, run_command
from analysis.experiment import Experiment
from analysis.folder import load_experiment
from analysis.parquet import write_results
from analysis.report_trials import IMAGE_BUDGET, ImageStore, image_order, trial_data
from trainables import storage
from trainables.vocabulary import REPORT_FILE

__all__ = ["build_report", "main", "write_report"]

Chart = tuple[str, str, str, Callable[[], tuple[go.Figure | str, Sample | None]]]


def _json_for_script(obj: Any) -> str:
    """JSON safe inside <script type="application/json">: no '</' can close the tag."""
    text = json.dumps(obj, separators=(",", ":"), default=_default, allow_nan=False)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def _default(v: Any) -> Any:
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if hasattr(v, "item"):
        return v.item()
    return str(v)


def _figure_json(fig: go.Figure) -> dict[str, Any]:
    return json.loads(fig.to_json())


def _charts(exp: Experiment) -> list[Chart]:
    """(anchor, title, explanation, build) in page order; build gives the figure (or a line of
    text) and the sample it needs, if any."""
    def importance() -> tuple[go.Figure, Sample]:
        info = C.param_importances_info(exp)
        return C.param_importances_figure(info), info.sample

    def seeds() -> tuple[go.Figure, Sample]:
        info = C.seed_distributions_info(exp, metrics=headline_metrics(exp))
        return C.seed_distributions_figure(info), info.sample

    def correlation() -> tuple[go.Figure, Sample]:
        info = C.correlation_info(exp)
        return C.correlation_figure(info), info.sample

    def divergence() -> tuple[go.Figure | str, None]:
        info = C.divergence_info(exp)
        return (C.divergence_figure(info) if sum(info.n_diverged) else C.divergence_summary(info)), None

    return [
        ("history", "Search progress", "Each objective by trial number, with the best value so far: is the search "
         "still improving?", lambda: (C.plot_optimization_history(exp), None)),
        ("parallel", "Searched parameters", "One line per completed trial. Drag along an axis to choose a range: the "
         "trials table and the Pareto front show only the trials inside every chosen range.",
         lambda: (C.plot_parallel_coordinates(exp), None)),
        ("slices", "Objectives against each parameter", "One point per completed trial; darker points came later "
         "in the search.", lambda: (C.plot_slices(exp), None)),
        ("importance", "Parameter importance", "Which searched parameters explain each objective (fANOVA over "
         "completed trials, the whiskers its range over three seeds of its random forest; PED-ANOVA past 300 "
         "trials).", importance),
        ("curves", "Training curves", "The objectives and main losses per epoch, one line per trial "
         "(history.parquet has every metric).", lambda: (C.plot_curves(exp, metrics=headline_metrics(exp)), None)),
        ("seeds", "Configurations across seeds", f"Final values of each configuration's seeds. {SEEDS_METHOD}.",
         seeds),
        ("correlation", "Metric correlation", "Spearman rank correlation between final values across completed "
         "trials; hover a cell for its 95% interval (Fisher z, Bonett-Wright standard error).", correlation),
        ("divergence", "Divergence", "Share of finished trials whose loss became NaN or Inf, with 95% Wilson "
         "intervals, and the epoch it happened in.", divergence),
    ]


def _pareto_section(exp: Experiment, figures: dict[str, Any]) -> tuple[str, str | None]:
    """The trade-off chart next to the selection panel, a menu of objective pairs when the study
    has more than two objectives; returns the HTML and the trial shown first."""
    try:
        pairs = objective_pairs(exp) if len(exp.objectives) > 2 else [None]
        infos = [C.pareto_front_info(exp, **({"y": p[0], "x": p[1]} if p else {})) for p in pairs]
    except ValueError as exc:
        return f'<p class="unavailable">Not available: {html.escape(str(exc))}</p>', None
    figures["chart-pareto"] = _figure_json(C.pareto_front_figure(infos[0]))
    menu = ""
    if len(infos) > 1:
        figures["pareto-pairs"] = [_figure_json(C.pareto_front_figure(i)) for i in infos]
        options = "".join(f'<option value="{k}">{html.escape(i.y_metric)} against {html.escape(i.x_metric)}</option>'
                          for k, i in enumerate(infos))
        menu = f'<label class="pair">objectives shown: <select id="pareto-pair">{options}</select></label>'
    return menu + '<div id="chart-pareto" class="chart"></div>', infos[0].best


def _sections(exp: Experiment, figures: dict[str, Any]) -> tuple[list[str], list[tuple[str, str]]]:
    sections, nav = [], []
    for anchor, title, intro, build in _charts(exp):
        try:
            content, sample = build()
        except ValueError as exc:
            content, sample = None, None
            body = f'<p class="unavailable">Not available: {html.escape(str(exc))}</p>'
        if isinstance(content, str):  # a chart said in one line
            body = f'<p class="summary">{html.escape(content)}</p>'
        elif content is not None:
            figures[f"chart-{anchor}"] = _figure_json(content)
            body = f'<div id="chart-{anchor}" class="chart"></div>'
        if anchor == "seeds":
            body += H.comparison(exp, headline_metrics(exp))
        sections.append(H.section(anchor, title, body, intro, sample))
        nav.append((anchor, title))
    return sections, nav


# The page's style and script, kept as files of their own so that editors and linters see them.
_CSS = (resources.files("analysis") / "report.css").read_text(encoding="utf-8")
_JS = (resources.files("analysis") / "report.js").read_text(encoding="utf-8")


def build_report(exp: Experiment, *, report_dir: str | None = None, image_budget: int = IMAGE_BUDGET) -> str:
    """The report's HTML text for a loaded experiment. ``report_dir``: the local folder the
    report will be in (images not embedded are linked relative to it; None: not linked);
    ``image_budget``: bytes of images to embed (report_trials)."""
    figures: dict[str, Any] = {}
    pareto, best = _pareto_section(exp, figures)
    panels = best_per_variant(exp)
    store = ImageStore(exp, report_dir, image_budget)
    images = store.add_trials(image_order(exp, [i for i in (best, *panels) if i]))
    trials = trial_data(exp, images)
    aside = ('<aside id="selection" data-trial=""><p class="hint">Click a point of the Pareto front, or a row '
             "of the trials table, to see that trial's reconstructions, traversals, samples and configuration."
             "</p></aside>")
    intro = ("Coloured points are on the Pareto front (no other finished trial is better in both); faded points "
             "are dominated. The selected trial has a ring; the best trial in the first objective is selected first.")
    sections = [H.section("pareto", "The trade-off", f'<div class="pareto-row"><div class="pareto-chart">{pareto}'
                          f"</div>{aside}</div>", intro),
                H.section("trials", "Trials", _FILTER_BAR + H.trials_table(exp),
                          "Click a heading to sort, a row to show the trial above. Rank 1 is the Pareto front over "
                          "all objectives.")]
    more, nav = _sections(exp, figures)
    sections += more
    sections.append(H.section("panels", "Images of the best trials", H.image_panels(trials, panels),
                              "The best Pareto-front trial of each variant: reconstructions, latent traversals (each "
                              "row a latent with its KL, each column a z value) and decodes of random latents."))
    nav = [("pareto", "Trade-off"), ("trials", "Trials"), *nav, ("panels", "Images")]
    meta = {"best": best, "images": store.embedded}
    nav_html = "<nav>" + "".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t in nav) + "</nav>"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>Study {html.escape(exp.name)}: analysis report</title><style>{_CSS}</style>"
        f"<script>{plotly.offline.get_plotlyjs()}</script></head><body>"
        f"{H.header(exp)}{nav_html}<main>{''.join(sections)}</main>"
        f'<script type="application/json" id="figure-data">{_json_for_script(figures)}</script>'
        f'<script type="application/json" id="trial-data">{_json_for_script(trials)}</script>'
        f'<script type="application/json" id="report-data">{_json_for_script(meta)}</script>'
        f"<script>{_JS}</script></body></html>\n"
    )


_FILTER_BAR = ('<p id="filter-bar" hidden>The table and the front show <b id="filter-count"></b> trials: those inside '
               'the ranges chosen on the axes of <a href="#parallel">Searched parameters</a>. '
               '<button type="button" id="filter-clear">Show all</button></p>')


def write_report(experiment_dir: str | os.PathLike, out: str | os.PathLike | None = None, *,
                 parquet: bool = True, experiment: Experiment | None = None,
                 image_budget: int = IMAGE_BUDGET) -> Path | str:
    """Write the report of the experiment at ``experiment_dir`` (local or s3://) to ``out``
    (default ``<experiment_dir>/report.html``), atomically; with ``parquet`` also write
    trials.parquet and history.parquet into the experiment folder. ``experiment``: the folder
    already loaded; ``image_budget``: bytes of images to embed. Returns the report's path (a
    Path when local, the URI on an object store)."""
    exp = experiment if experiment is not None else load_experiment(experiment_dir)
    target = os.fspath(out) if out is not None else storage.join(experiment_dir, REPORT_FILE)
    local_dir = None if storage.is_remote(target) else os.path.dirname(os.path.abspath(target))
    text = build_report(exp, report_dir=local_dir, image_budget=image_budget)
    if parquet:
        write_results(experiment_dir, experiment=exp)
    written = storage.write_bytes(target, text)
    return written if storage.is_remote(written) else Path(written)


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m analysis.report", "Write a self-contained HTML report of an experiment.")
    p.add_argument("--out", default=None, help="HTML file to write (default: EXPERIMENT/report.html)")
    p.add_argument("--no-parquet", action="store_true", help="do not write trials.parquet and history.parquet")
    p.add_argument("--image-budget-mb", type=float, default=IMAGE_BUDGET / 1e6,
                   help="megabytes of trial images to embed, most interesting trials first; the others are linked "
                        f"from the experiment folder (default {IMAGE_BUDGET / 1e6:g})")
    return run_command(p, argv, lambda args, exp: write_report(
        args.experiment, args.out, parquet=not args.no_parquet, experiment=exp,
        image_budget=int(args.image_budget_mb * 1e6)), "the report")


if __name__ == "__main__":
    sys.exit(main())
