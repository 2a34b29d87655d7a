"""The study's charts, each in two steps (Optuna's visualization style).

``<chart>_info(experiment, ...)`` computes what the chart shows and returns a small named tuple
(tested without drawing anything); ``<chart>_figure(info)`` draws it as a Plotly figure;
``plot_<chart>(experiment, ...)`` does both. Every function takes an
:class:`analysis.results.Experiment` (from ``load_experiment`` or ``read_results``).

Charts: the Pareto front of a disentanglement score against the reconstruction loss; parallel
coordinates over the searched parameters; parameter importance per objective; loss and metric
curves over epochs; per-variant distributions over seeds with 95% t-intervals; the correlation
between metrics; divergence per variant; image panels of chosen trials.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple, Sequence

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from plotly.subplots import make_subplots

from analysis.results import DISENTANGLEMENT_METRICS, IMAGE_KINDS, UNSUPERVISED_METRICS, Experiment, is_detail

__all__ = [
    "VARIANT_COLORS", "VARIANT_LABELS", "variant_label",
    "ParetoFrontInfo", "pareto_front_info", "pareto_front_figure", "plot_pareto_front",
    "ParallelInfo", "parallel_coordinates_info", "parallel_coordinates_figure", "plot_parallel_coordinates",
    "ImportanceInfo", "param_importances_info", "param_importances_figure", "plot_param_importances",
    "CurvesInfo", "curves_info", "curves_figure", "plot_curves",
    "DistributionInfo", "seed_distributions_info", "seed_distributions_figure", "plot_seed_distributions",
    "comparison_table", "t_interval",
    "CorrelationInfo", "correlation_info", "correlation_figure", "plot_correlation",
    "DivergenceInfo", "divergence_info", "divergence_figure", "plot_divergence",
    "ImagePanelInfo", "image_panels_info", "image_panels_figure", "plot_image_panels",
]

VARIANT_LABELS = {
    "beta_vae": "beta-VAE",
    "beta_tcvae": "beta-TCVAE",
    "sintro": "Soft-Intro-VAE",
    "sintro_tc": "Soft-Intro-TCVAE",
}
VARIANT_COLORS = {  # colour-blind safe (Okabe-Ito)
    "beta_vae": "#0072B2",
    "beta_tcvae": "#009E73",
    "sintro": "#E69F00",
    "sintro_tc": "#D55E00",
}
_EXTRA_COLORS = ("#CC79A7", "#56B4E9", "#F0E442", "#000000")
_GREY = "#B8B8B8"
_TEMPLATE = "plotly_white"
# Outcomes whose final values are what the trial reached (``stopped``: ended by a scheduler).
_SCORED = ("completed", "stopped")


def variant_label(variant: Any) -> str:
    return VARIANT_LABELS.get(str(variant), str(variant)) if _present(variant) else "(no variant)"


def _color(variant: Any, order: Sequence[Any] = ()) -> str:
    if str(variant) in VARIANT_COLORS:
        return VARIANT_COLORS[str(variant)]
    others = [v for v in order if str(v) not in VARIANT_COLORS]
    i = others.index(variant) if variant in others else 0
    return _EXTRA_COLORS[i % len(_EXTRA_COLORS)]


def _present(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v)) and v is not pd.NA


def _variants(frame: pd.DataFrame) -> list[str]:
    """Variants in the canonical order, then any others sorted."""
    seen = [v for v in frame["variant"].dropna().unique().tolist()] if "variant" in frame else []
    known = [v for v in VARIANT_LABELS if v in seen]
    return known + sorted(v for v in seen if v not in known)


def _fmt(v: Any) -> str:
    if not _present(v):
        return "-"
    if isinstance(v, (float, np.floating)):
        return f"{v:.4g}"
    return str(v)


def _scored(exp: Experiment, columns: Sequence[str]) -> pd.DataFrame:
    t = exp.trials
    ok = t["outcome"].isin(_SCORED)
    for c in columns:
        ok &= np.isfinite(pd.to_numeric(t[c], errors="coerce").astype("float64")) if c in t else False
    return t.loc[ok]


def _default_metrics(exp: Experiment, *, scores_only: bool = False, compact: bool = False) -> list[str]:
    """Metrics a chart shows unless told: losses, then scores, then the unsupervised measures;
    per-latent KLs and throughput left out. ``compact``: the main loss terms only."""
    present = [m for m in exp.metrics if m in exp.trials and exp.trials[m].notna().any()]
    scores = [m for m in DISENTANGLEMENT_METRICS if m in present]
    if scores_only:
        return scores
    losses = [m for m in present if m not in DISENTANGLEMENT_METRICS and m not in UNSUPERVISED_METRICS
              and not is_detail(m) and (not compact or m in _MAIN_LOSSES)]
    return losses + scores + [m for m in UNSUPERVISED_METRICS if m in present]


_MAIN_LOSSES = ("rec_loss", "kl", "mi", "tc", "dwkl", "kl_fake_minus_real")


def _objective_pair(exp: Experiment, score: str | None, loss: str | None) -> tuple[str, str]:
    metrics = [m for m in exp.metrics if m in exp.trials]
    if score is None:
        score = next((o.metric for o in exp.objectives if o.direction == "maximize"), None) or next(
            (m for m in DISENTANGLEMENT_METRICS if m in metrics), None)
    if loss is None:
        loss = next((o.metric for o in exp.objectives if o.direction == "minimize"), None) or (
            "rec_loss" if "rec_loss" in metrics else None)
    if score is None or loss is None:
        raise ValueError(f"score={score!r}, loss={loss!r}: the experiment reports no disentanglement "
                         f"score or no reconstruction loss (metrics: {', '.join(metrics) or 'none'}); pass score= and loss=")
    for name, value in (("score", score), ("loss", loss)):
        if value not in exp.trials:
            raise ValueError(f"{name}={value!r} is not a column of the trials table; use one of {', '.join(metrics)}")
    return score, loss


def _hover(row: pd.Series, exp: Experiment, first: Sequence[str] = ()) -> str:
    """The trial, its outcome and values, then its full configuration (searched keys first)."""
    head = f"<b>trial {row['trial_id']}</b> &middot; {variant_label(row.get('variant'))}"
    if _present(row.get("seed")):
        head += f" &middot; seed {row['seed']}"
    lines = [head, f"outcome: {row['outcome']}"]
    lines += [f"{m}: {_fmt(row.get(m))}" for m in first]
    cfg = [c.removeprefix("config/") for c in exp.config_columns() if c != "config/objectives"]
    keys = [k for k in exp.searched if k in cfg] + [k for k in cfg if k not in exp.searched]
    lines.append("<i>configuration</i>")
    lines += [f"{k}: {_fmt(row.get('config/' + k))}" for k in keys if _present(row.get("config/" + k))]
    return "<br>".join(lines)


# ---------------------------------------------------------------------------------------------
# Pareto front: disentanglement score (up) against reconstruction loss (down).


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


def _non_dominated(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Minimise x, maximise y: a point is dominated when another is no worse in both and
    better in one. (n^2 in memory, fine for the thousands of trials a study has.)"""
    if len(x) == 0:
        return np.zeros(0, dtype=bool)
    no_worse = (x[None, :] <= x[:, None]) & (y[None, :] >= y[:, None])
    better = (x[None, :] < x[:, None]) | (y[None, :] > y[:, None])
    return ~(no_worse & better).any(axis=1)


def pareto_front_info(exp: Experiment, *, score: str | None = None, loss: str | None = None,
                      outcomes: Sequence[str] = ("completed", "stopped", "running")) -> ParetoFrontInfo:
    """Points are trials with finite values of both metrics among ``outcomes``; defaults: the
    study's objectives (else the first disentanglement score present, and ``rec_loss``)."""
    score, loss = _objective_pair(exp, score, loss)
    t = exp.trials
    x_all = pd.to_numeric(t[loss], errors="coerce").astype("float64").to_numpy()
    y_all = pd.to_numeric(t[score], errors="coerce").astype("float64").to_numpy()
    keep = t["outcome"].isin(list(outcomes)).to_numpy() & np.isfinite(x_all) & np.isfinite(y_all)
    pts = t.loc[keep]
    x, y = x_all[keep], y_all[keep]
    front = _non_dominated(x, y)
    ids = tuple(str(i) for i in pts["trial_id"])
    order = np.argsort(x[front], kind="stable")
    return ParetoFrontInfo(
        score=score, loss=loss, trial_ids=ids,
        variants=tuple(str(v) if _present(v) else "" for v in pts["variant"]),
        x=tuple(float(v) for v in x), y=tuple(float(v) for v in y),
        on_front=tuple(bool(f) for f in front),
        running=tuple(bool(o == "running") for o in pts["outcome"]),
        hover=tuple(_hover(r, exp, (score, loss)) for _, r in pts.iterrows()),
        front=tuple(np.asarray(ids, dtype=object)[front][order].tolist()),
        n_excluded=int(len(t) - keep.sum()),
    )


def pareto_front_figure(info: ParetoFrontInfo) -> go.Figure:
    """One coloured trace per variant for the front, one grey trace for dominated points
    (symbol by variant), a dashed line along the front. Each point's customdata is its trial id."""
    fig = go.Figure()
    variants = list(dict.fromkeys(info.variants))
    ordered = [v for v in VARIANT_LABELS if v in variants] + [v for v in variants if v not in VARIANT_LABELS]
    symbols = {v: s for v, s in zip(ordered, ("circle", "square", "diamond", "triangle-up", "star", "cross") * 3)}
    idx = np.arange(len(info.trial_ids))
    arr = lambda seq, sel: [seq[i] for i in sel]  # noqa: E731
    dominated = [i for i in idx if not info.on_front[i]]
    if dominated:
        fig.add_trace(go.Scatter(
            x=arr(info.x, dominated), y=arr(info.y, dominated), mode="markers", name="dominated",
            marker=dict(color=_GREY, size=8, opacity=0.7,
                        symbol=[symbols[info.variants[i]] + ("-open" if info.running[i] else "") for i in dominated]),
            customdata=arr(info.trial_ids, dominated), hovertext=arr(info.hover, dominated),
            hovertemplate="%{hovertext}<extra>dominated</extra>",
        ))
    if info.front:
        pos = {t: i for i, t in enumerate(info.trial_ids)}
        along = [pos[t] for t in info.front]
        fig.add_trace(go.Scatter(
            x=arr(info.x, along), y=arr(info.y, along), mode="lines", name="Pareto front",
            line=dict(color="#555555", dash="dot", width=1, shape="hv"), hoverinfo="skip",
        ))
    for v in ordered:
        sel = [i for i in idx if info.on_front[i] and info.variants[i] == v]
        if not sel:
            continue
        fig.add_trace(go.Scatter(
            x=arr(info.x, sel), y=arr(info.y, sel), mode="markers", name=variant_label(v),
            marker=dict(color=_color(v, ordered), size=13, line=dict(color="#222222", width=1),
                        symbol=[symbols[v] + ("-open" if info.running[i] else "") for i in sel]),
            customdata=arr(info.trial_ids, sel), hovertext=arr(info.hover, sel),
            hovertemplate="%{hovertext}<extra></extra>",
        ))
    note = f"{len(info.front)} of {len(info.trial_ids)} trials on the front"
    if info.n_excluded:
        note += f"; {info.n_excluded} without both values left out (diverged, failed, not reported yet)"
    note += "." + ("<br>Open symbols: still training." if any(info.running) else "")
    fig.update_layout(
        template=_TEMPLATE, height=540, hovermode="closest", clickmode="event+select", margin=dict(t=110),
        title=dict(text=f"Pareto front: {info.score} (higher is better) against {info.loss} (lower is better)"
                        f"<br><sup>{note} Click a point to see its images.</sup>"),
        xaxis_title=f"{info.loss} (lower is better)", yaxis_title=f"{info.score} (higher is better)",
        legend=dict(title="on the front"),
    )
    # Clicking selects the point; keep the others readable rather than faded out.
    fig.update_traces(unselected=dict(marker=dict(opacity=0.75)), selector=dict(mode="markers"))
    if not info.trial_ids:
        _empty(fig, "no trial has both values yet")
    return fig


def plot_pareto_front(exp: Experiment, **kwargs: Any) -> go.Figure:
    return pareto_front_figure(pareto_front_info(exp, **kwargs))


def _empty(fig: go.Figure, text: str) -> None:
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                       font=dict(size=16, color="#777777"))


# ---------------------------------------------------------------------------------------------
# Parallel coordinates over the searched parameters, coloured by each objective.


class ParallelDimension(NamedTuple):
    label: str
    values: tuple[float, ...]              # plotted values (log10 for log-scaled parameters)
    tickvals: tuple[float, ...] | None     # categorical codes or powers of ten
    ticktext: tuple[str, ...] | None


class ParallelInfo(NamedTuple):
    trial_ids: tuple[str, ...]
    dimensions: tuple[ParallelDimension, ...]   # searched parameters, then the objectives
    objectives: tuple[str, ...]                 # colour choices, in menu order
    colors: tuple[tuple[float, ...], ...]       # per objective, one value per trial
    lower_is_better: tuple[bool, ...]           # per objective
    conditional: tuple[str, ...]                # parameters only some variants use


def _dimension(name: str, values: pd.Series, dist: Any) -> ParallelDimension:
    """One axis. Categorical values become codes with their labels; log-scaled parameters are
    drawn as log10 with ticks at powers of ten; a parameter a trial does not have (conditional:
    tc_weight of a beta-VAE) sits on its own "n/a" tick below the others."""
    missing = values.isna().to_numpy()
    if isinstance(dist, CategoricalDistribution) or not pd.api.types.is_numeric_dtype(values) \
            or pd.api.types.is_bool_dtype(values):
        choices = [c for c in (dist.choices if isinstance(dist, CategoricalDistribution) else [])]
        choices += [c for c in values.dropna().unique().tolist() if str(c) not in map(str, choices)]
        text = [variant_label(c) if name == "variant" else str(c) for c in choices]
        code = {str(c): i for i, c in enumerate(choices)}
        plotted = [float(code[str(v)]) if not m else -1.0 for v, m in zip(values, missing)]
        ticks = list(range(len(choices)))
        if missing.any():
            ticks, text = [-1] + ticks, ["n/a"] + text
        return ParallelDimension(name, tuple(plotted), tuple(float(i) for i in ticks), tuple(text))
    nums = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()
    present = nums[~missing]
    log = (isinstance(dist, (FloatDistribution, IntDistribution)) and dist.log and len(present) > 0
           and bool((present > 0).all()))
    label = f"{name} (log)" if log else name
    shown = np.log10(np.where(missing, 1.0, nums)) if log else nums.copy()
    tickvals: list[float] | None = None
    ticktext: list[str] | None = None
    if log and len(present):
        tickvals, ticktext = _log_ticks(float(present.min()), float(present.max()))
    if missing.any():
        top = float(np.nanmax(shown[~missing])) if (~missing).any() else 1.0
        bottom = float(np.nanmin(shown[~missing])) if (~missing).any() else 0.0
        na = bottom - 0.15 * ((top - bottom) or 1.0)
        shown[missing] = na
        if tickvals is None:  # a linear axis: a few round ticks plus n/a
            tickvals = [float(v) for v in np.linspace(bottom, top, 4)] if top > bottom else [bottom]
            ticktext = [f"{v:.3g}" for v in tickvals]
        tickvals, ticktext = [na] + tickvals, ["n/a"] + (ticktext or [])
    return ParallelDimension(label, tuple(float(v) for v in shown),
                             tuple(tickvals) if tickvals is not None else None,
                             tuple(ticktext) if ticktext is not None else None)


def _log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Ticks for a log10 axis over [lo, hi] (positions, labels): both ends (parcoords draws an
    axis only between its outer ticks) and, between them, round values 1-2-5 (or 1-3, or 1)
    times a power of ten that are not crowding an end; at most about seven."""
    a, b = math.log10(lo), math.log10(hi)
    inner: list[float] = []
    for steps in ((1.0, 2.0, 5.0), (1.0, 3.0), (1.0,)):
        inner = [m * 10.0 ** d for d in range(math.floor(a), math.ceil(b) + 1) for m in steps]
        inner = [v for v in inner if a + 0.06 * (b - a) < math.log10(v) < b - 0.06 * (b - a)]
        if len(inner) <= 5:
            break
    vals = sorted({lo, hi}) if hi > lo else [lo]
    labels = [f"{v:.4g}" for v in vals]
    if hi > lo:
        vals, labels = [lo] + inner + [hi], [labels[0]] + [f"{v:g}" for v in inner] + [labels[-1]]
    return [math.log10(v) for v in vals], labels


def parallel_coordinates_info(exp: Experiment, *, params: Sequence[str] | None = None,
                              objectives: Sequence[str] | None = None) -> ParallelInfo:
    """One line per scored trial (completed or stopped) with finite objective values; axes are
    the searched parameters (their configured values) and then the objectives."""
    objs = list(objectives) if objectives is not None else [o.metric for o in exp.objectives]
    objs = [o for o in objs if o in exp.trials]
    if not objs:
        objs = _default_metrics(exp, scores_only=True)[:1] + (["rec_loss"] if "rec_loss" in exp.trials else [])
    names = list(params) if params is not None else list(exp.searched)
    names = [p for p in names if f"config/{p}" in exp.trials]
    pts = _scored(exp, objs)
    dims = [_dimension(p, pts[f"config/{p}"], exp.searched.get(p)) for p in names]
    dims += [ParallelDimension(o, tuple(float(v) for v in pts[o]), None, None) for o in objs]
    direction = {o.metric: o.direction for o in exp.objectives}
    lower = tuple(direction.get(o, "minimize" if o not in DISENTANGLEMENT_METRICS else "maximize") == "minimize"
                  for o in objs)
    return ParallelInfo(
        trial_ids=tuple(str(i) for i in pts["trial_id"]), dimensions=tuple(dims), objectives=tuple(objs),
        colors=tuple(tuple(float(v) for v in pts[o]) for o in objs), lower_is_better=lower,
        conditional=tuple(p for p in exp.conditional if p in names),
    )


def parallel_coordinates_figure(info: ParallelInfo) -> go.Figure:
    """One Parcoords trace; a menu switches the colouring between objectives (bright = better)."""
    def line(i: int) -> dict[str, Any]:
        return dict(color=list(info.colors[i]), colorscale="Viridis", reversescale=info.lower_is_better[i],
                    showscale=True, colorbar=dict(title=dict(text=info.objectives[i])))

    fig = go.Figure()
    if info.trial_ids and info.objectives:
        dims = []
        for d in info.dimensions:
            dim: dict[str, Any] = dict(label=d.label, values=list(d.values))
            if d.tickvals is not None:
                dim.update(tickvals=list(d.tickvals), ticktext=list(d.ticktext or ()))
            dims.append(dim)
        fig.add_trace(go.Parcoords(dimensions=dims, line=line(0), labelangle=-20, labelside="bottom"))
        buttons = [dict(label=f"colour: {o}", method="restyle",
                        args=[{"line.color": [list(info.colors[i])], "line.reversescale": [info.lower_is_better[i]],
                               "line.colorbar.title.text": [o]}])
                   for i, o in enumerate(info.objectives)]
        fig.update_layout(updatemenus=[dict(buttons=buttons, direction="down", x=1.0, xanchor="right",
                                            y=1.0, yanchor="bottom", pad=dict(b=40), showactive=True)])
    else:
        _empty(fig, "no completed trial yet")
    sub = f"{len(info.trial_ids)} completed trials; drag along an axis to filter"
    if info.conditional:
        sub += f"; {', '.join(info.conditional)} apply to some variants only (n/a: not used)"
    fig.update_layout(template=_TEMPLATE, height=580, margin=dict(t=170, b=80, l=120, r=60),
                      title=dict(text=f"Searched parameters and objectives<br><sup>{sub}</sup>", y=0.97, yanchor="top"))
    return fig


def plot_parallel_coordinates(exp: Experiment, **kwargs: Any) -> go.Figure:
    return parallel_coordinates_figure(parallel_coordinates_info(exp, **kwargs))


# ---------------------------------------------------------------------------------------------
# Parameter importance per objective (optuna.importance on a study rebuilt from the trials).


class ImportanceInfo(NamedTuple):
    objectives: tuple[str, ...]
    params: tuple[str, ...]                           # union over objectives, most important first
    importances: tuple[tuple[float, ...], ...]        # per objective, one value per param (NaN: n/a)
    n_trials: tuple[int, ...]                         # trials used per objective
    messages: tuple[str, ...]                         # per objective: "" or why it is missing
    evaluator: str
    left_out: tuple[str, ...]                         # conditional or constant parameters


def _contains(d: Any, v: Any) -> bool:
    if isinstance(d, CategoricalDistribution):
        return v in d.choices
    return bool(d.low <= v <= d.high)


def _study_for(exp: Experiment, objective: str, params: list[str], direction: str) -> tuple[optuna.Study, int]:
    dists = {p: exp.searched[p] for p in params}
    pts = _scored(exp, [objective])
    study = optuna.create_study(direction=direction)
    n = 0
    for _, row in pts.iterrows():
        values = {}
        for p in params:
            v = row.get(f"config/{p}")
            if not _present(v):
                break
            d = dists[p]
            if isinstance(d, IntDistribution):
                v = int(v)
            elif isinstance(d, FloatDistribution):
                v = float(v)
            else:
                v = next((c for c in d.choices if str(c) == str(v)), v)
            if not _contains(d, v):
                break
            values[p] = v
        else:
            study.add_trial(optuna.trial.create_trial(params=values, distributions=dists, value=float(row[objective])))
            n += 1
    return study, n


def param_importances_info(exp: Experiment, *, objectives: Sequence[str] | None = None,
                           evaluator: optuna.importance.BaseImportanceEvaluator | None = None,
                           variant: str | None = None) -> ImportanceInfo:
    """Importance of each searched parameter for each objective, from the completed (and
    scheduler-stopped) trials. Default evaluator: fANOVA with a fixed seed (deterministic), or
    PED-ANOVA (fast) beyond 300 trials. Conditional
    parameters (used by some variants only) and parameters that never varied are left out:
    Optuna's evaluators need every trial to have every parameter. With ``variant``, only that
    variant's trials count, and its own conditional parameters are included."""
    if variant is not None:
        if variant not in set(exp.trials["variant"].dropna()):
            raise ValueError(f"variant={variant!r} has no trials; use one of {', '.join(_variants(exp.trials))}")
        sub = exp.trials.loc[exp.trials["variant"] == variant]
        present = tuple(p for p in exp.conditional if f"config/{p}" in sub and sub[f"config/{p}"].notna().all())
        exp = dataclasses.replace(exp, trials=sub, conditional=tuple(p for p in exp.conditional if p not in present))
    if evaluator is None:  # fANOVA's forests take minutes past a few hundred trials
        fast = len(_scored(exp, [])) > 300
        evaluator = (optuna.importance.PedAnovaImportanceEvaluator() if fast
                     else optuna.importance.FanovaImportanceEvaluator(seed=0))
    objs = list(objectives) if objectives is not None else [o.metric for o in exp.objectives]
    objs = [o for o in objs if o in exp.trials]
    direction = {o.metric: o.direction for o in exp.objectives}
    scored_all = _scored(exp, [])
    params, left_out = [], []
    for p in exp.searched:
        col = f"config/{p}"
        if p in exp.conditional or col not in exp.trials or scored_all[col].nunique(dropna=True) < 2:
            left_out.append(p)
        else:
            params.append(p)
    table: dict[str, dict[str, float]] = {}
    counts, messages = [], []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for o in objs:
        d = direction.get(o, "maximize" if o in DISENTANGLEMENT_METRICS else "minimize")
        study, n = _study_for(exp, o, params, d) if params else (None, 0)
        counts.append(n)
        if not params:
            messages.append("no searched parameter varied")
            continue
        if n < 2:
            messages.append(f"{n} completed trial(s): at least 2 needed")
            continue
        try:
            table[o] = optuna.importance.get_param_importances(study, evaluator=evaluator, params=params)
            messages.append("")
        except (RuntimeError, ValueError) as exc:
            messages.append(str(exc).splitlines()[0])
    total = {p: sum(table[o].get(p, 0.0) for o in table) for p in params}
    ranked = sorted(params, key=lambda p: -total[p])
    return ImportanceInfo(
        objectives=tuple(objs), params=tuple(ranked),
        importances=tuple(tuple(float(table[o].get(p, np.nan)) if o in table else float("nan") for p in ranked)
                          for o in objs),
        n_trials=tuple(counts), messages=tuple(messages), evaluator=type(evaluator).__name__, left_out=tuple(left_out),
    )


def param_importances_figure(info: ImportanceInfo) -> go.Figure:
    """Horizontal bars, one trace per objective; the most important parameter on top."""
    fig = go.Figure()
    palette = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
    for i, o in enumerate(info.objectives):
        vals = info.importances[i]
        if info.messages[i] or not info.params:
            continue
        fig.add_trace(go.Bar(
            y=list(info.params)[::-1], x=list(vals)[::-1], orientation="h", name=f"{o} ({info.n_trials[i]} trials)",
            marker_color=palette[i % len(palette)], text=[f"{v:.2f}" for v in vals][::-1], textposition="outside",
            hovertemplate="%{y}: %{x:.3f}<extra>" + o + "</extra>",
        ))
    notes = [f"{o}: {m}" for o, m in zip(info.objectives, info.messages) if m]
    if info.left_out:
        notes.append("left out (conditional or constant): " + ", ".join(info.left_out))
    if not fig.data:
        _empty(fig, "not enough completed trials for importances")
    fig.update_layout(
        template=_TEMPLATE, barmode="group", height=max(320, 90 + 45 * len(info.params) * max(1, len(fig.data))),
        yaxis=dict(automargin=True),
        title=dict(text=f"Parameter importance per objective ({info.evaluator.replace('ImportanceEvaluator', '')})"
                        + (f"<br><sup>{'; '.join(notes)}</sup>" if notes else "")),
        xaxis=dict(title="importance (sums to 1 per objective)", range=[0, 1.1]), legend=dict(title="objective"),
    )
    return fig


def plot_param_importances(exp: Experiment, **kwargs: Any) -> go.Figure:
    return param_importances_figure(param_importances_info(exp, **kwargs))


# ---------------------------------------------------------------------------------------------
# Loss and metric curves over epochs, grouped by variant.


class CurveSeries(NamedTuple):
    variant: str
    metric: str
    trial_ids: tuple[str, ...]               # per point (per-trial mode) or () (aggregate mode)
    epochs: tuple[float | None, ...]          # per-trial mode: trials separated by None
    values: tuple[float | None, ...]
    lower: tuple[float, ...] = ()             # aggregate mode: 95% t-interval of the mean
    upper: tuple[float, ...] = ()


class CurvesInfo(NamedTuple):
    metrics: tuple[str, ...]
    variants: tuple[str, ...]
    series: tuple[CurveSeries, ...]
    aggregate: bool


def curves_info(exp: Experiment, *, metrics: Sequence[str] | None = None, aggregate: bool = False,
                trial_ids: Sequence[str] | None = None) -> CurvesInfo:
    """Per metric and variant, every trial's curve (``aggregate=False``) or the mean over trials
    per epoch with a 95% t-interval (``aggregate=True``, the report's figures 1, 2 and 4).
    Default metrics: every loss term and score reported in the history, throughput left out."""
    h = exp.history
    if trial_ids is not None:
        h = h.loc[h["trial_id"].isin(list(trial_ids))]
    names = list(metrics) if metrics is not None else [
        m for m in _default_metrics(exp) if m in h and h[m].notna().any()]
    variants = _variants(h)
    series = []
    for m in names:
        if m not in h:
            raise ValueError(f"metrics: {m!r} is not in the history; use some of {', '.join(exp.metrics)}")
        for v in variants:
            part = h.loc[(h["variant"] == v) & h[m].notna() & h["epoch"].notna(), ["trial_id", "epoch", m]]
            if part.empty:
                continue
            if aggregate:
                g = part.groupby("epoch")[m]
                stats = [(int(e),) + t_interval(vals.to_numpy()) for e, vals in g]
                series.append(CurveSeries(v, m, (), tuple(float(s[0]) for s in stats),
                                          tuple(s[1] for s in stats), tuple(s[2] for s in stats),
                                          tuple(s[3] for s in stats)))
                continue
            ids, xs, ys = [], [], []
            for tid, g in part.groupby("trial_id", sort=False):
                ids += [str(tid)] * len(g) + [str(tid)]
                xs += [float(e) for e in g["epoch"]] + [None]
                ys += [float(y) for y in g[m]] + [None]
            series.append(CurveSeries(v, m, tuple(ids[:-1]), tuple(xs[:-1]), tuple(ys[:-1])))
    return CurvesInfo(tuple(names), tuple(variants), tuple(series), aggregate)


def curves_figure(info: CurvesInfo, *, columns: int = 3) -> go.Figure:
    n = max(1, len(info.metrics))
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    height, spacing = _grid_layout(rows)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(info.metrics) or [""],
                        horizontal_spacing=0.07, vertical_spacing=spacing)
    shown: set[str] = set()
    for s in info.series:
        i = info.metrics.index(s.metric)
        r, c = i // cols + 1, i % cols + 1
        color = _color(s.variant, info.variants)
        label = variant_label(s.variant)
        if info.aggregate:
            fig.add_trace(go.Scatter(x=list(s.epochs) + list(s.epochs)[::-1], y=list(s.upper) + list(s.lower)[::-1], mode="lines",
                                     fill="toself", fillcolor=_rgba(color, 0.18), line=dict(width=0),
                                     legendgroup=s.variant, showlegend=False, hoverinfo="skip", name=label),
                          row=r, col=c)
        fig.add_trace(go.Scatter(
            x=list(s.epochs), y=list(s.values), mode="lines+markers" if info.aggregate else "lines",
            name=label, legendgroup=s.variant, showlegend=s.variant not in shown,
            line=dict(color=color, width=2 if info.aggregate else 1.2), opacity=1.0 if info.aggregate else 0.75,
            customdata=list(s.trial_ids) if s.trial_ids else None, connectgaps=False,
            hovertemplate=(f"{label}<br>epoch %{{x}}<br>{s.metric}: %{{y:.4g}}"
                           + ("" if info.aggregate else "<br>trial %{customdata}") + "<extra></extra>"),
        ), row=r, col=c)
        shown.add(s.variant)
    if not info.series:
        _empty(fig, "no epochs reported yet")
    what = "mean over trials with 95% t-interval" if info.aggregate else "one line per trial"
    fig.update_layout(template=_TEMPLATE, height=height, legend=dict(title="variant"),
                      title=dict(text=f"Losses and metrics over training ({what})"))
    _epoch_ticks(fig, [e for s in info.series for e in s.epochs])
    fig.update_xaxes(title_text="epoch", row=rows)
    return fig


def plot_curves(exp: Experiment, **kwargs: Any) -> go.Figure:
    return curves_figure(curves_info(exp, **kwargs))


def _grid_layout(rows: int, panel: int = 210, gap: int = 75, margins: int = 150) -> tuple[int, float]:
    """(figure height, vertical_spacing) giving each row ``panel`` px and ``gap`` px between."""
    height = rows * panel + (rows - 1) * gap + margins
    return height, (gap / (height - margins) if rows > 1 else 0.0)


def _epoch_ticks(fig: go.Figure, epochs: Sequence[Any], **where: Any) -> None:
    """Whole epochs on the (epoch) x axes: no tick at 1.5."""
    finite = [e for e in epochs if e is not None]
    top = max(finite) if finite else 1
    fig.update_xaxes(tick0=0, dtick=max(1, math.ceil(top / 8)), **where)


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r}, {g}, {b}, {alpha})"


# ---------------------------------------------------------------------------------------------
# Per-variant distributions across seeds, with 95% t-intervals.


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval for the mean, mean +- t(n-1) * s / sqrt(n).
    With the handful of seeds a study affords, the t-interval is the honest choice: a bootstrap
    percentile interval is too narrow at n = 3 to 5. NaN bounds when n < 2."""
    from scipy import stats

    x = np.asarray(values, dtype="float64")
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return (float("nan"),) * 3
    mean = float(x.mean())
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


class DistributionSummary(NamedTuple):
    metric: str
    variant: str
    n: int
    mean: float
    low: float          # 95% t-interval of the mean (NaN when n < 2)
    high: float


class DistributionInfo(NamedTuple):
    metrics: tuple[str, ...]
    variants: tuple[str, ...]
    values: tuple[tuple[tuple[float, ...], ...], ...]     # [metric][variant] -> final values
    trial_ids: tuple[tuple[tuple[str, ...], ...], ...]    # same shape
    seeds: tuple[tuple[tuple[int | None, ...], ...], ...]
    summaries: tuple[DistributionSummary, ...]
    method: str


def seed_distributions_info(exp: Experiment, *, metrics: Sequence[str] | None = None,
                            outcomes: Sequence[str] = ("completed",)) -> DistributionInfo:
    """Final values of each metric per variant over its completed trials (seeds, and in a
    searching study also configurations), with the mean and its 95% t-interval. Diverged trials
    have no final metrics: the divergence chart counts them."""
    names = list(metrics) if metrics is not None else _default_metrics(exp, scores_only=True) + [
        m for m in ("rec_loss", "kl") if m in exp.trials and exp.trials[m].notna().any()]
    t = exp.trials.loc[exp.trials["outcome"].isin(list(outcomes))]
    variants = _variants(t)
    values, ids, seeds, summaries = [], [], [], []
    for m in names:
        if m not in t:
            raise ValueError(f"metrics: {m!r} is not a column of the trials table; use some of {', '.join(exp.metrics)}")
        vr, ir, sr = [], [], []
        for v in variants:
            part = t.loc[(t["variant"] == v) & np.isfinite(t[m].astype("float64"))]
            vals = tuple(float(x) for x in part[m])
            vr.append(vals)
            ir.append(tuple(str(x) for x in part["trial_id"]))
            sr.append(tuple(int(s) if _present(s) else None for s in part["seed"]))
            mean, lo, hi = t_interval(np.array(vals))
            summaries.append(DistributionSummary(m, v, len(vals), mean, lo, hi))
        values.append(tuple(vr)); ids.append(tuple(ir)); seeds.append(tuple(sr))
    return DistributionInfo(tuple(names), tuple(variants), tuple(values), tuple(ids), tuple(seeds),
                            tuple(summaries), "Student t, 95%")


def seed_distributions_figure(info: DistributionInfo, *, columns: int = 3) -> go.Figure:
    n = max(1, len(info.metrics))
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    height, spacing = _grid_layout(rows, panel=230, gap=110)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(info.metrics) or [""],
                        horizontal_spacing=0.07, vertical_spacing=spacing)
    summary = {(s.metric, s.variant): s for s in info.summaries}
    for i, m in enumerate(info.metrics):
        r, c = i // cols + 1, i % cols + 1
        for j, v in enumerate(info.variants):
            vals = info.values[i][j]
            if not vals:
                continue
            label = variant_label(v)
            fig.add_trace(go.Box(
                y=list(vals), name=label, boxpoints="all", jitter=0.45, pointpos=0, legendgroup=v,
                showlegend=False, marker=dict(color=_color(v, info.variants), size=7, opacity=0.8),
                line=dict(width=1, color=_rgba(_color(v, info.variants), 0.5)), fillcolor="rgba(0,0,0,0)",
                customdata=[f"trial {t}, seed {s}" for t, s in zip(info.trial_ids[i][j], info.seeds[i][j])],
                hovertemplate="%{customdata}<br>" + m + ": %{y:.4g}<extra>" + label + "</extra>",
            ), row=r, col=c)
            s = summary[(m, v)]
            has_ci = math.isfinite(s.low)
            fig.add_trace(go.Scatter(
                x=[label], y=[s.mean], mode="markers", name="mean, 95% t-interval", legendgroup="mean",
                showlegend=(i == 0 and j == 0), marker=dict(color="#111111", size=11, symbol="diamond-wide"),
                error_y=dict(type="data", symmetric=False, array=[s.high - s.mean if has_ci else 0],
                             arrayminus=[s.mean - s.low if has_ci else 0], color="#111111", thickness=2, width=8),
                hovertemplate=(f"{label}: mean %{{y:.4g}}" + (f" [{s.low:.4g}, {s.high:.4g}]" if has_ci else " (n=1, no interval)")
                               + f"<br>n = {s.n}<extra></extra>"),
            ), row=r, col=c)
    if not any(any(vs) for vs in info.values):
        _empty(fig, "no completed trial yet")
    fig.update_layout(template=_TEMPLATE, height=height,
                      title=dict(text="Final values per variant over seeds: points are trials, "
                                      "diamonds the mean with its 95% Student-t interval"))
    return fig


def plot_seed_distributions(exp: Experiment, **kwargs: Any) -> go.Figure:
    return seed_distributions_figure(seed_distributions_info(exp, **kwargs))


def comparison_table(exp: Experiment, *, metrics: Sequence[str] | None = None,
                     outcomes: Sequence[str] = ("completed",)) -> pd.DataFrame:
    """One row per variant: n and, per metric, mean and 95% t-interval over its trials."""
    info = seed_distributions_info(exp, metrics=metrics, outcomes=outcomes)
    rows = []
    for v in info.variants:
        row: dict[str, Any] = {"variant": v, "label": variant_label(v)}
        for s in info.summaries:
            if s.variant == v:
                row["n"] = max(row.get("n", 0), s.n)
                row[f"{s.metric}_mean"], row[f"{s.metric}_low"], row[f"{s.metric}_high"] = s.mean, s.low, s.high
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Correlation between metrics across trials.


class CorrelationInfo(NamedTuple):
    metrics: tuple[str, ...]
    matrix: tuple[tuple[float, ...], ...]    # Spearman rank correlation, pairwise complete
    counts: tuple[tuple[int, ...], ...]      # trials behind each entry
    method: str


def correlation_info(exp: Experiment, *, metrics: Sequence[str] | None = None, min_trials: int = 3) -> CorrelationInfo:
    """Spearman (rank) correlation of final values over completed trials: robust to the very
    different scales of losses and scores. Default metrics: the main loss terms, the scores and
    the unsupervised measures. Metrics with fewer than ``min_trials`` values or no variation are
    left out."""
    t = exp.trials.loc[exp.trials["outcome"].isin(_SCORED)]
    names = list(metrics) if metrics is not None else _default_metrics(exp, compact=True)
    keep = [m for m in names if m in t and t[m].notna().sum() >= min_trials and t[m].nunique() > 1]
    data = t[keep].astype("float64")
    corr = data.corr(method="spearman", min_periods=min_trials) if keep else pd.DataFrame()
    mask = data.notna().astype("int64")
    counts = mask.T @ mask if keep else pd.DataFrame()
    return CorrelationInfo(
        tuple(keep), tuple(tuple(float(corr.loc[a, b]) for b in keep) for a in keep),
        tuple(tuple(int(counts.loc[a, b]) for b in keep) for a in keep), "spearman")


def correlation_figure(info: CorrelationInfo) -> go.Figure:
    fig = go.Figure()
    if info.metrics:
        z = [[None if math.isnan(v) else v for v in row] for row in info.matrix]
        fig.add_trace(go.Heatmap(
            z=z, x=list(info.metrics), y=list(info.metrics), zmin=-1, zmax=1, colorscale="RdBu", reversescale=True,
            texttemplate="%{z:.2f}", customdata=[list(r) for r in info.counts],
            hovertemplate="%{y} vs %{x}<br>rho = %{z:.3f}<br>%{customdata} trials<extra></extra>",
            colorbar=dict(title=dict(text="rho")),
        ))
        fig.update_yaxes(autorange="reversed")
    else:
        _empty(fig, "fewer than 3 completed trials")
    size = 120 + 42 * len(info.metrics)
    fig.update_layout(template=_TEMPLATE, height=max(380, size), width=None,
                      title=dict(text="Rank (Spearman) correlation between final metrics across completed trials"))
    return fig


def plot_correlation(exp: Experiment, **kwargs: Any) -> go.Figure:
    return correlation_figure(correlation_info(exp, **kwargs))


# ---------------------------------------------------------------------------------------------
# Divergence per variant and where in training it happened.


class DivergenceInfo(NamedTuple):
    variants: tuple[str, ...]
    n_finished: tuple[int, ...]       # completed + diverged + error + stopped
    n_diverged: tuple[int, ...]
    rate: tuple[float, ...]
    low: tuple[float, ...]            # 95% Wilson score interval of the rate
    high: tuple[float, ...]
    epochs: tuple[tuple[int, ...], ...]        # epoch of each divergence
    planned: tuple[tuple[int | None, ...], ...]  # the trial's planned epochs (config/epochs)
    trial_ids: tuple[tuple[str, ...], ...]


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))


def divergence_info(exp: Experiment) -> DivergenceInfo:
    """Rate = diverged / finished trials per variant (running ones may still diverge), with a
    95% Wilson interval (exact enough at small n, unlike the normal approximation)."""
    t = exp.trials
    fin = t.loc[t["outcome"].isin(["completed", "diverged", "error", "stopped"])]
    variants = _variants(t)
    n, k, rate, lo, hi, ep, planned, ids = [], [], [], [], [], [], [], []
    for v in variants:
        part = fin.loc[fin["variant"] == v]
        div = part.loc[part["diverged"]]
        n.append(len(part)); k.append(len(div))
        rate.append(len(div) / len(part) if len(part) else float("nan"))
        a, b = _wilson(len(div), len(part)); lo.append(a); hi.append(b)
        ep.append(tuple(int(e) for e in div["diverged_epoch"] if _present(e)))
        planned.append(tuple(int(e) if _present(e) else None for e in
                             (div["config/epochs"] if "config/epochs" in div else [None] * len(div))
                             )[:len(ep[-1])])
        ids.append(tuple(str(i) for i, e in zip(div["trial_id"], div["diverged_epoch"]) if _present(e)))
    return DivergenceInfo(tuple(variants), tuple(n), tuple(k), tuple(rate), tuple(lo), tuple(hi),
                          tuple(ep), tuple(planned), tuple(ids))


def divergence_figure(info: DivergenceInfo) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55], horizontal_spacing=0.12,
                        subplot_titles=["share of finished trials that diverged", "epoch of divergence"])
    labels = [variant_label(v) for v in info.variants]
    ticks = [f"{lab}<br>{k}/{n}" for lab, k, n in zip(labels, info.n_diverged, info.n_finished)]
    colors = [_color(v, info.variants) for v in info.variants]
    rates = [0.0 if math.isnan(r) else r for r in info.rate]
    fig.add_trace(go.Bar(
        x=ticks, y=rates, marker_color=colors, showlegend=False, name="divergence rate",
        text=[f"{k}/{n}" for k, n in zip(info.n_diverged, info.n_finished)], textposition="none",
        error_y=dict(type="data", symmetric=False, array=[max(0.0, h - r) if not math.isnan(h) else 0 for h, r in zip(info.high, rates)],
                     arrayminus=[max(0.0, r - lo) if not math.isnan(lo) else 0 for lo, r in zip(info.low, rates)]),
        hovertemplate="%{y:.0%} of finished trials (%{text})<extra>95% Wilson interval</extra>",
    ), row=1, col=1)
    any_div = False
    for v, label, color, eps, plan, ids in zip(info.variants, labels, colors, info.epochs, info.planned, info.trial_ids):
        if not eps:
            continue
        any_div = True
        fig.add_trace(go.Scatter(
            x=list(eps), y=[label] * len(eps), mode="markers", showlegend=False, name=label,
            marker=dict(color=color, size=12, symbol="x", line=dict(width=1)),
            customdata=[f"trial {i}, planned {p if p is not None else '?'} epochs" for i, p in zip(ids, plan)],
            hovertemplate="%{customdata}<br>diverged in epoch %{x}<extra>" + label + "</extra>",
        ), row=1, col=2)
    if not any_div:
        fig.add_annotation(text="no trial diverged", showarrow=False, xref="x2 domain", yref="y2 domain",
                           x=0.5, y=0.5, font=dict(size=15, color="#777777"))
    fig.update_yaxes(range=[0, 1.15], tickformat=".0%", row=1, col=1)
    fig.update_xaxes(title_text="epoch", rangemode="tozero", row=1, col=2)
    _epoch_ticks(fig, [e for eps in info.epochs for e in eps] + [p for ps in info.planned for p in ps], row=1, col=2)
    fig.update_layout(template=_TEMPLATE, height=380,
                      title=dict(text="Divergence (non-finite loss) per variant, with 95% Wilson intervals"))
    return fig


def plot_divergence(exp: Experiment) -> go.Figure:
    return divergence_figure(divergence_info(exp))


# ---------------------------------------------------------------------------------------------
# Image panels: reconstructions, traversals and samples of chosen trials (report figure 3c).


class ImagePanelInfo(NamedTuple):
    trial_ids: tuple[str, ...]
    labels: tuple[str, ...]                     # row titles
    kinds: tuple[str, ...]                      # columns
    captions: tuple[str, ...]
    sources: tuple[tuple[str | None, ...], ...]  # [trial][kind] -> data: URI of the PNG, or None


def _default_panel_trials(exp: Experiment, limit: int = 4) -> list[str]:
    """The best point of the Pareto front for each variant (highest score), up to ``limit``."""
    try:
        info = pareto_front_info(exp, outcomes=("completed", "stopped"))
    except ValueError:
        done = exp.trials.loc[exp.trials["outcome"] == "completed"]
        return [str(g["trial_id"].iloc[0]) for _, g in done.groupby("variant", sort=False)][:limit]
    best: dict[str, tuple[float, str]] = {}
    for tid, v, y, front in zip(info.trial_ids, info.variants, info.y, info.on_front):
        if front and (v not in best or y > best[v][0]):
            best[v] = (y, tid)
    order = [v for v in VARIANT_LABELS if v in best] + sorted(v for v in best if v not in VARIANT_LABELS)
    return [best[v][1] for v in order][:limit]


def image_panels_info(exp: Experiment, *, trial_ids: Sequence[str] | None = None,
                      kinds: Sequence[str] | None = None) -> ImagePanelInfo:
    """Images of the chosen trials (default: the best Pareto-front trial of each variant)."""
    ids = list(trial_ids) if trial_ids is not None else _default_panel_trials(exp)
    known = set(exp.trials["trial_id"])
    missing = [i for i in ids if i not in known]
    if missing:
        raise ValueError(f"trial_ids: {missing} are not trials of this experiment")
    available = exp.image_kinds()
    ks = list(kinds) if kinds is not None else [k for k in IMAGE_KINDS if k in available] + [
        k for k in available if k not in IMAGE_KINDS]
    rows = exp.trials.set_index("trial_id")
    labels = []
    for i in ids:
        r = rows.loc[i]
        labels.append(f"trial {i} · {variant_label(r['variant'])}" + (f" · seed {r['seed']}" if _present(r["seed"]) else ""))
    return ImagePanelInfo(tuple(ids), tuple(labels), tuple(ks), tuple(IMAGE_KINDS.get(k, k) for k in ks),
                          tuple(tuple(exp.image_uri(i, k) for k in ks) for i in ids))


def image_panels_figure(info: ImagePanelInfo) -> go.Figure:
    rows, cols = max(1, len(info.trial_ids)), max(1, len(info.kinds))
    titles = [f"{label}<br><sup>{cap}</sup>" for label in info.labels for cap in info.captions] or [""]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.02,
                        vertical_spacing=min(0.08, 0.5 / rows))
    for r, srcs in enumerate(info.sources):
        for c, src in enumerate(srcs):
            if src is not None:
                fig.add_trace(go.Image(source=src, name=f"{info.trial_ids[r]} {info.kinds[c]}",
                                       hoverinfo="skip"), row=r + 1, col=c + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    if not fig.data:
        _empty(fig, "no images")
    fig.update_annotations(font_size=12)
    fig.update_layout(template=_TEMPLATE, height=80 + 300 * rows, margin=dict(l=10, r=10, t=90, b=10),
                      title=dict(text="Images of chosen trials"))
    return fig


def plot_image_panels(exp: Experiment, **kwargs: Any) -> go.Figure:
    return image_panels_figure(image_panels_info(exp, **kwargs))
