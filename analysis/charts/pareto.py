"""The Pareto front: a disentanglement score (up) against the reconstruction loss (down)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.charts.data import fmt, objective_pair, present
from analysis.charts.style import GREY, TEMPLATE, color, empty
from analysis.experiment import Experiment
from analysis.stats import non_dominated
from trainables.vocabulary import SCORED_OUTCOMES, VARIANT_NAMES, Outcome, variant_label

_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "star", "cross")


class ParetoFrontInfo(NamedTuple):
    score: str                      # y axis, higher is better
    loss: str                       # x axis, lower is better
    trial_ids: tuple[str, ...]      # every point, in trial order
    variants: tuple[str, ...]
    x: tuple[float, ...]            # loss
    y: tuple[float, ...]            # score
    on_front: tuple[bool, ...]      # not dominated by any other point
    running: tuple[bool, ...]       # still training: values may move
    hover: tuple[str, ...]
    front: tuple[str, ...]          # trial ids on the front, by increasing loss
    n_excluded: int                 # trials without both values (diverged, error, pending)


def pareto_front_info(exp: Experiment, *, score: str | None = None, loss: str | None = None,
                      outcomes: Sequence[str] = (*SCORED_OUTCOMES, Outcome.RUNNING.value)) -> ParetoFrontInfo:
    """Points are trials with finite values of both metrics among ``outcomes``; defaults: the
    study's objectives (else the first disentanglement score present, and ``rec_loss``)."""
    score, loss = objective_pair(exp, score, loss)
    t = exp.trials
    x_all = pd.to_numeric(t[loss], errors="coerce").astype("float64").to_numpy()
    y_all = pd.to_numeric(t[score], errors="coerce").astype("float64").to_numpy()
    keep = t["outcome"].isin(list(outcomes)).to_numpy() & np.isfinite(x_all) & np.isfinite(y_all)
    pts = t.loc[keep]
    x, y = x_all[keep], y_all[keep]
    front = non_dominated(x, y)
    ids = tuple(str(i) for i in pts["trial_id"])
    order = np.argsort(x[front], kind="stable")
    return ParetoFrontInfo(
        score=score, loss=loss, trial_ids=ids,
        variants=tuple(str(v) if present(v) else "" for v in pts["variant"]),
        x=tuple(float(v) for v in x), y=tuple(float(v) for v in y),
        on_front=tuple(bool(f) for f in front),
        running=tuple(bool(o == Outcome.RUNNING.value) for o in pts["outcome"]),
        hover=tuple(_hover(r, exp, (score, loss)) for _, r in pts.iterrows()),
        front=tuple(np.asarray(ids, dtype=object)[front][order].tolist()),
        n_excluded=int(len(t) - keep.sum()),
    )


def _hover(row: pd.Series, exp: Experiment, first: Sequence[str] = ()) -> str:
    """The trial, its outcome and values, then its full configuration (searched keys first)."""
    head = f"<b>trial {row['trial_id']}</b> &middot; {variant_label(row.get('variant'))}"
    if present(row.get("seed")):
        head += f" &middot; seed {row['seed']}"
    lines = [head, f"outcome: {row['outcome']}"]
    lines += [f"{m}: {fmt(row.get(m))}" for m in first]
    cfg = [c.removeprefix("config/") for c in exp.config_columns() if c != "config/objectives"]
    keys = [k for k in exp.searched if k in cfg] + [k for k in cfg if k not in exp.searched]
    lines.append("<i>configuration</i>")
    lines += [f"{k}: {fmt(row.get('config/' + k))}" for k in keys if present(row.get("config/" + k))]
    return "<br>".join(lines)


def pareto_front_figure(info: ParetoFrontInfo) -> go.Figure:
    """One coloured trace per variant for the front, one grey trace for dominated points
    (symbol by variant), a dashed line along the front. Each point's customdata is its trial id."""
    fig = go.Figure()
    seen = list(dict.fromkeys(info.variants))
    ordered = [v for v in VARIANT_NAMES if v in seen] + [v for v in seen if v not in VARIANT_NAMES]
    symbols = dict(zip(ordered, _SYMBOLS * 3, strict=False))

    def symbol(i: int) -> str:
        return symbols[info.variants[i]] + ("-open" if info.running[i] else "")

    dominated = [i for i, f in enumerate(info.on_front) if not f]
    if dominated:
        fig.add_trace(_points(info, dominated, name="dominated", extra="dominated", marker=dict(
            color=GREY, size=8, opacity=0.7, symbol=[symbol(i) for i in dominated])))
    if info.front:
        pos = {t: i for i, t in enumerate(info.trial_ids)}
        along = [pos[t] for t in info.front]
        fig.add_trace(go.Scatter(
            x=[info.x[i] for i in along], y=[info.y[i] for i in along], mode="lines", name="Pareto front",
            line=dict(color="#555555", dash="dot", width=1, shape="hv"), hoverinfo="skip"))
    for v in ordered:
        sel = [i for i, f in enumerate(info.on_front) if f and info.variants[i] == v]
        if sel:
            fig.add_trace(_points(info, sel, name=variant_label(v), extra="", marker=dict(
                color=color(v, ordered), size=13, line=dict(color="#222222", width=1),
                symbol=[symbol(i) for i in sel])))
    fig.update_layout(
        template=TEMPLATE, height=540, hovermode="closest", clickmode="event+select", margin=dict(t=110),
        title=dict(text=f"Pareto front: {info.score} (higher is better) against {info.loss} (lower is better)"
                        f"<br><sup>{_note(info)} Click a point to see its images.</sup>"),
        xaxis_title=f"{info.loss} (lower is better)", yaxis_title=f"{info.score} (higher is better)",
        legend=dict(title="on the front"),
    )
    # Clicking selects the point; keep the others readable rather than faded out.
    fig.update_traces(unselected=dict(marker=dict(opacity=0.75)), selector=dict(mode="markers"))
    if not info.trial_ids:
        empty(fig, "no trial has both values yet")
    return fig


def _points(info: ParetoFrontInfo, sel: list[int], *, name: str, extra: str, marker: dict[str, Any]) -> go.Scatter:
    return go.Scatter(
        x=[info.x[i] for i in sel], y=[info.y[i] for i in sel], mode="markers", name=name, marker=marker,
        customdata=[info.trial_ids[i] for i in sel], hovertext=[info.hover[i] for i in sel],
        hovertemplate=f"%{{hovertext}}<extra>{extra}</extra>",
    )


def _note(info: ParetoFrontInfo) -> str:
    note = f"{len(info.front)} of {len(info.trial_ids)} trials on the front"
    if info.n_excluded:
        note += f"; {info.n_excluded} without both values left out (diverged, failed, not reported yet)"
    return note + "." + ("<br>Open symbols: still training." if any(info.running) else "")


def plot_pareto_front(exp: Experiment, **kwargs: Any) -> go.Figure:
    """pareto_front_figure(pareto_front_info(exp, **kwargs))."""
    return pareto_front_figure(pareto_front_info(exp, **kwargs))
