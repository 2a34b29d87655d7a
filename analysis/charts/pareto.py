"""The trade-off: one objective against another (a disentanglement score up, the reconstruction
loss across), the Pareto front of the two, and the trial the report shows first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.charts.data import axis_title, fmt, objective_pair, present, spans_decades
from analysis.charts.style import TEMPLATE, color, empty, rgba
from analysis.experiment import Experiment
from analysis.stats import pareto_ranks
from trainables.vocabulary import METRICS, RANKED_OUTCOMES, SCORED_OUTCOMES, VARIANT_NAMES, Outcome, variant_label

_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "star", "cross")
_PARAMS_PER_LINE = 3  # the hover lists the searched parameters three to a line


class ParetoFrontInfo(NamedTuple):
    y_metric: str                   # up the chart (the first objective: a disentanglement score)
    x_metric: str                   # across (the second: the reconstruction loss)
    y_maximize: bool
    x_maximize: bool
    trial_ids: tuple[str, ...]      # every point, in trial order
    variants: tuple[str, ...]
    x: tuple[float, ...]
    y: tuple[float, ...]
    on_front: tuple[bool, ...]      # no finished trial is better in both (running ones are not ranked)
    running: tuple[bool, ...]       # still training: values may move
    ranks: tuple[int | None, ...]   # the study's pareto_rank over all its objectives (trials.parquet)
    hover: tuple[str, ...]
    front: tuple[str, ...]          # trial ids on the front, by increasing x
    best: str | None                # shown first: the front trial best in the study's first objective
    x_log: bool                     # the values span two decades or more: a log axis by default
    y_log: bool
    left_out: tuple[tuple[str, int], ...]  # (why, how many): an outcome not shown, or "without both values"


def pareto_front_info(exp: Experiment, *, y: str | None = None, x: str | None = None,
                      outcomes: Sequence[str] = (*SCORED_OUTCOMES, Outcome.RUNNING.value)) -> ParetoFrontInfo:
    """Points are trials among ``outcomes`` with finite values of both metrics; defaults: the
    study's objectives (else the first disentanglement score present, and ``rec_loss``). The
    front is that of the trials that trained every epoch (vocabulary.RANKED_OUTCOMES) in these
    two metrics; stopped and running trials are shown, not ranked."""
    y, x = objective_pair(exp, y, x)
    t = exp.trials
    x_all, y_all = (pd.to_numeric(t[m], errors="coerce").astype("float64").to_numpy() for m in (x, y))
    shown = t["outcome"].isin(list(outcomes)).to_numpy()
    keep = shown & np.isfinite(x_all) & np.isfinite(y_all)
    left_out = [*t.loc[~shown, "outcome"].astype(str).value_counts(sort=False).items(),
                ("without both values", int((shown & ~keep).sum()))]
    pts = t.loc[keep]
    xs, ys = x_all[keep], y_all[keep]
    x_up, y_up = exp.direction(x) == "maximize", exp.direction(y) == "maximize"
    finished = pts["outcome"].isin(RANKED_OUTCOMES).to_numpy()
    on_front = np.zeros(len(pts), dtype=bool)
    if finished.any():
        on_front[finished] = pareto_ranks(np.column_stack([xs[finished], ys[finished]]), [x_up, y_up]) == 1
    ids = [str(i) for i in pts["trial_id"]]
    ranks = tuple(int(r) if present(r) else None for r in pts.get("pareto_rank", pd.Series([None] * len(pts))))
    order = [i for i in np.argsort(xs, kind="stable") if on_front[i]]
    return ParetoFrontInfo(
        y_metric=y, x_metric=x, y_maximize=y_up, x_maximize=x_up, trial_ids=tuple(ids),
        variants=tuple(str(v) if present(v) else "" for v in pts["variant"]),
        x=tuple(float(v) for v in xs), y=tuple(float(v) for v in ys), on_front=tuple(bool(f) for f in on_front),
        running=tuple(bool(o == Outcome.RUNNING.value) for o in pts["outcome"]), ranks=ranks,
        hover=tuple(_hover(r, exp, (y, x)) for _, r in pts.iterrows()),
        front=tuple(ids[i] for i in order), best=_best(exp, pts, on_front),
        x_log=spans_decades(xs), y_log=spans_decades(ys),
        left_out=tuple((why, int(n)) for why, n in left_out if n),
    )


def _best(exp: Experiment, pts: pd.DataFrame, on_front: np.ndarray) -> str | None:
    """The trial the report selects first: among the study's Pareto-rank-1 trials (else this
    chart's front), the best in the study's first objective (else the chart's y)."""
    first = next((o for o in exp.objectives if o.metric in pts), None)
    rank1 = pts["pareto_rank"].eq(1).fillna(False).to_numpy(dtype=bool) if "pareto_rank" in pts else on_front
    cand = pts.loc[rank1 if rank1.any() else on_front]
    if cand.empty or first is None:
        return str(cand["trial_id"].iloc[0]) if len(cand) else None
    values = cand[first.metric].astype("float64")
    return str(cand.loc[values.idxmax() if first.direction == "maximize" else values.idxmin(), "trial_id"])


def _hover(row: pd.Series, exp: Experiment, shown: Sequence[str]) -> str:
    """The trial, its outcome and rank, the two values with units, then its searched parameters."""
    head = f"<b>trial {row['trial_id']}</b> · {variant_label(row.get('variant'))}"
    if present(row.get("seed")):
        head += f" · seed {row['seed']}"
    rank = row.get("pareto_rank")
    lines = [head, f"{row['outcome']}" + (f" · Pareto rank {int(rank)}" if present(rank) else "")]
    for m in shown:
        unit = METRICS[m].unit if m in METRICS else ""
        lines.append(f"{m}: {fmt(row.get(m))}" + (f" {unit}" if unit else ""))
    params = [f"{p} {fmt(row.get(c))}" for p, c in exp.searched_columns().items()
              if p != "variant" and present(row.get(c))]
    lines += [" · ".join(params[i:i + _PARAMS_PER_LINE]) for i in range(0, len(params), _PARAMS_PER_LINE)]
    return "<br>".join(lines)


def pareto_front_figure(info: ParetoFrontInfo) -> go.Figure:
    """Per variant one colour and one symbol (both in the legend): front points full size with an
    outline, dominated ones faded, running ones open; a dotted line along the front; a ring on
    the selected trial (the report moves it). Each point's customdata is its trial id."""
    fig = go.Figure()
    seen = list(dict.fromkeys(info.variants))
    ordered = [v for v in VARIANT_NAMES if v in seen] + [v for v in seen if v not in VARIANT_NAMES]
    symbols = dict(zip(ordered, _SYMBOLS * 3, strict=False))
    for v in ordered:
        fig.add_trace(_key(v, ordered, symbols[v]))
        for front in (True, False):
            sel = [i for i, f in enumerate(info.on_front) if f == front and info.variants[i] == v]
            if sel:
                fig.add_trace(_points(info, sel, v, front, symbols[v]))
    if info.front:
        pos = {t: i for i, t in enumerate(info.trial_ids)}
        along = [pos[t] for t in info.front]
        fig.add_trace(go.Scatter(
            x=[info.x[i] for i in along], y=[info.y[i] for i in along], mode="lines", name="Pareto front",
            line=dict(color="#555555", dash="dot", width=1, shape="vh" if info.x_maximize else "hv"),
            hoverinfo="skip"))
    fig.add_trace(_selected(info))
    fig.update_layout(
        template=TEMPLATE, height=560, hovermode="closest", clickmode="event", margin=dict(t=100, r=20),
        title=dict(text=f"Pareto front: {info.y_metric} against {info.x_metric}<br><sup>{_note(info)}</sup>"),
        xaxis=dict(title=axis_title(info.x_metric, info.x_maximize), type="log" if info.x_log else "linear"),
        yaxis=dict(title=axis_title(info.y_metric, info.y_maximize), type="log" if info.y_log else "linear"),
        legend=dict(title=dict(text="variant"), itemclick="toggle", itemdoubleclick="toggleothers"),
        updatemenus=_axis_buttons(info),
    )
    if not info.trial_ids:
        empty(fig, "no trial has both values yet")
    return fig


def _key(variant: str, ordered: list[str], symbol: str) -> go.Scatter:
    """The legend's key of a variant, its colour and symbol at full strength (no point of its own:
    its front and dominated points follow it, as one legend group)."""
    return go.Scatter(x=[None], y=[None], mode="markers", name=variant_label(variant), legendgroup=variant,
                      meta="key", hoverinfo="skip",
                      marker=dict(symbol=symbol, color=color(variant, ordered), size=11,
                                  line=dict(color="#222222", width=1)))


def _points(info: ParetoFrontInfo, sel: list[int], variant: str, front: bool, symbol: str) -> go.Scatter:
    hue = color(variant, [v for v in dict.fromkeys(info.variants)])
    return go.Scatter(
        x=[info.x[i] for i in sel], y=[info.y[i] for i in sel], mode="markers", name=variant_label(variant),
        legendgroup=variant, showlegend=False, meta="front" if front else "dominated",
        marker=dict(symbol=[symbol + ("-open" if info.running[i] else "") for i in sel],
                    color=hue if front else rgba(hue, 0.35), size=13 if front else 9,
                    line=dict(color="#222222" if front else rgba(hue, 0.8), width=1)),
        customdata=[info.trial_ids[i] for i in sel], hovertext=[info.hover[i] for i in sel],
        hovertemplate="%{hovertext}<extra>" + ("on the front" if front else "dominated") + "</extra>",
    )


def _selected(info: ParetoFrontInfo) -> go.Scatter:
    """A ring around the selected trial: the best one to begin with."""
    i = info.trial_ids.index(info.best) if info.best in info.trial_ids else None
    return go.Scatter(
        x=[] if i is None else [info.x[i]], y=[] if i is None else [info.y[i]], mode="markers",
        name="selected trial", meta="selected", customdata=[] if i is None else [info.best], hoverinfo="skip",
        marker=dict(symbol="circle-open", size=26, color="#111111", line=dict(width=3)),
    )


def _axis_buttons(info: ParetoFrontInfo) -> list[dict[str, Any]]:
    """Linear or log, per axis whose values are all positive."""
    menus = []
    for k, (axis, values, log) in enumerate((("xaxis", info.x, info.x_log), ("yaxis", info.y, info.y_log))):
        if not values or min(values) <= 0:
            continue
        buttons = [dict(label=f"{axis[0]}: {kind}", method="relayout", args=[{f"{axis}.type": kind}])
                   for kind in ("linear", "log")]
        menus.append(dict(type="buttons", direction="right", buttons=buttons, active=int(log), showactive=True,
                          x=1.02, xanchor="left", y=0.12 - 0.1 * k, yanchor="top", pad=dict(t=0, r=0),
                          font=dict(size=11)))
    return menus


def _note(info: ParetoFrontInfo) -> str:
    note = f"{len(info.front)} of {len(info.trial_ids)} trials on the front; faded: dominated"
    if any(info.running):
        note += "; open: still training (not ranked)"
    if info.left_out:
        note += "; left out: " + ", ".join(f"{n} {why}" for why, n in info.left_out)
    return note + ". Click a point to see its images."


def plot_pareto_front(exp: Experiment, **kwargs: Any) -> go.Figure:
    """pareto_front_figure(pareto_front_info(exp, **kwargs))."""
    return pareto_front_figure(pareto_front_info(exp, **kwargs))
