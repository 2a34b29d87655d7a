"""The two tables of an experiment, built from each trial's files (no I/O here).

``trials.parquet``, one row per trial, and ``history.parquet``, one row per trial and epoch:
every column is described in docs/analysis.md, "The tables". A trial arrives as a
:class:`TrialRecord` (analysis.folder reads it); :func:`trial_rows` and :func:`history_rows`
turn records into plain rows, :func:`trials_frame` and :func:`history_frame` into typed frames.
A trial's outcome is the launcher's verdict in study.json when its last run wrote one, else
vocabulary.trial_outcome on its files: the rule behind every record (docs/architecture.md).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.stats import pareto_ranks
from study.ray_state import RayTrial
from trainables.vocabulary import (
    CONFIG_GROUP,
    DISENTANGLEMENT_METRICS,
    ERROR_ATTR,
    FAILED_OUTCOMES,
    IMAGE_KINDS,
    LOSS_TERMS,
    METRICS,
    NODE_LOST,
    OPTUNA_NUMBER,
    OUTCOME_ATTR,
    PLACEMENT_KEYS,
    RANKED_OUTCOMES,
    RAY_ERROR,
    REPORT_KEYS,
    RETRY_OF,
    SAMPLE_METRICS,
    UNSUPERVISED_METRICS,
    Family,
    Outcome,
    kl_dim_latent,
    metrics_of,
    node_label,
    retries,
    trial_outcome,
)

TRIAL_COLUMNS = (
    "trial_id", "trial_dir", "trial_number", "optuna_number", "optuna_state", "retry_of", "variant", "seed",
    "config_group", "outcome", "pareto_rank", "on_front", "ray_status", "diverged", "diverged_epoch", "error",
    RAY_ERROR,
    "epochs", "n_reports", "wall_time_s", "started_at", "ended_at", "node_ip", "node_id", "node", "hostname",
    "gpu_share", "retries", "restarts",
)
HISTORY_COLUMNS = (
    "trial_id", "trial_number", "variant", "seed", "config_group", "epoch", "training_iteration", "time_total_s",
    "timestamp", "outcome", "node_ip", "node_id", "gpu_share",
)
# Configuration keys with a column of their own in both tables: params.json's copy is left out.
OWN_COLUMNS = ("variant", "seed", CONFIG_GROUP, OPTUNA_NUMBER)
# Keys Ray Tune adds to every report: bookkeeping, not measurements.
RAY_KEYS = frozenset({
    "timestamp", "checkpoint_dir_name", "done", "training_iteration", "trial_id", "date",
    "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "config",
    "time_since_restore", "iterations_since_restore", "experiment_tag", "should_checkpoint",
    "warmup_time", "experiment_id", "episodes_total", "timesteps_total", "timesteps_since_restore",
})
# "seed" is a configuration key, never a measurement, whatever a report carries.
_NOT_METRICS = RAY_KEYS | set(REPORT_KEYS) | set(PLACEMENT_KEYS) | {"seed"}
_OUTCOMES = frozenset(o.value for o in Outcome)
_EVALUATED = (Family.DISENTANGLEMENT, Family.UNSUPERVISED, Family.SAMPLES)
_THROUGHPUT = metrics_of(Family.THROUGHPUT)


@dataclass
class TrialRecord:
    """One trial as read from its folder and Ray's experiment state."""

    trial_id: str
    trial_dir: str | None          # None: Ray holds the trial but has not started it
    results: list[dict[str, Any]]  # the result lines in order, nested keys flattened to "a/b"
    config: dict[str, Any]         # params.json, else Ray's config, else the last result's
    ray: RayTrial | None
    images: dict[str, str]         # kind -> path of the final PNG relative to the experiment
    error_file: str | None         # the last line of the trial's error file
    damaged: tuple[str, ...] = ()  # one line per damaged file of the trial: its outcome is `unreadable`
    verdict: dict[str, Any] | None = None  # its entry in study.json's trials, when the last run wrote them


# --- metrics --------------------------------------------------------------------------------------
def is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def finite(v: Any) -> bool:
    return is_number(v) and math.isfinite(float(v))


def is_detail(key: str) -> bool:
    """A per-latent KL or a throughput key: tabled, but not charted unless asked for."""
    return key in _THROUGHPUT or kl_dim_latent(key) is not None


def is_evaluated(key: str) -> bool:
    """A key of trainables.metrics.evaluate (measured every few epochs), not a training loss."""
    known = METRICS.get(key)
    return (known is not None and known.family in _EVALUATED) or kl_dim_latent(key) is not None


def metric_keys(records: Sequence[TrialRecord]) -> list[str]:
    """Every numeric result key that is a measurement, in display order: the vocabulary's
    (losses, scores, unsupervised measures, decoded samples), others sorted, then the details."""
    keys = {k for rec in records for r in rec.results for k, v in r.items() if k not in _NOT_METRICS and is_number(v)}
    known = [k for k in (*LOSS_TERMS, *DISENTANGLEMENT_METRICS, *UNSUPERVISED_METRICS, *SAMPLE_METRICS) if k in keys]
    details = sorted(k for k in keys if kl_dim_latent(k) is not None) + [k for k in _THROUGHPUT if k in keys]
    return known + sorted(keys - set(known) - set(details)) + details


# --- trials.parquet -------------------------------------------------------------------------------
def trial_rows(records: Sequence[TrialRecord], metrics: Sequence[str], *, launch_runs: bool
               ) -> list[dict[str, Any]]:
    """One row per trial in launch order, numbered from 0; ``_config`` and ``_tag`` ride along
    for matching the Optuna trials. `launch_runs`: a launch runs the study now (else no trial is
    `running`: unfinished ones are `interrupted`)."""
    rows = sorted((_trial_row(rec, metrics, launch_runs) for rec in records), key=_launch_order)
    for i, row in enumerate(rows):
        row["trial_number"] = i
    return rows


def _launch_order(row: dict[str, Any]) -> tuple:
    """Ray's experiment tag "<n>_..." (also in the folder name), then the start time."""
    tag = row["_tag"] or ""
    m = re.match(r"(\d+)_", tag) or re.search(rf"_{re.escape(row['trial_id'])}_(\d+)", row["trial_dir"] or "")
    return (int(m.group(1)) if m else 1 << 30, row["started_at"] or math.inf, row["trial_id"])


def _trial_row(rec: TrialRecord, metrics: Sequence[str], launch_runs: bool) -> dict[str, Any]:
    results, config = rec.results, rec.config
    last = results[-1] if results else {}
    ray = rec.ray or RayTrial(rec.trial_id, None, None, None, None, None, None, None)
    outcome, error, ray_error = _outcome(rec, last, ray, launch_runs)
    verdict = rec.verdict or {}
    start = _start_time(ray, results)
    row: dict[str, Any] = {
        "trial_id": rec.trial_id, "trial_dir": rec.trial_dir, "_tag": ray.tag, "_config": config,
        "optuna_number": verdict.get(OPTUNA_NUMBER), "optuna_state": None, "retry_of": verdict.get(RETRY_OF),
        "variant": config.get("variant"), "seed": config.get("seed"), "config_group": config.get("config_group"),
        "outcome": outcome, "ray_status": ray.status, "diverged": outcome == Outcome.DIVERGED.value,
        "diverged_epoch": _diverged_epoch(results), "error": error,
        RAY_ERROR: ray_error,
        "epochs": int(last["epoch"]) if finite(last.get("epoch")) else None,
        "n_reports": len(results),
        "wall_time_s": float(last["time_total_s"]) if finite(last.get("time_total_s")) else None,
        "started_at": start, "ended_at": _end_time(start, last),
        "node_ip": last.get("node_ip"), "node_id": last.get("node_id"),
        "node": node_label(last.get("node_id"), last.get("hostname")), "hostname": last.get("hostname"),
        "gpu_share": float(last["gpu_share"]) if finite(last.get("gpu_share")) else None,
        **_retries(ray, results),
    }
    row.update(_final_values(results, metrics, diverged=row["diverged"]))
    row.update({f"image/{kind}": rel for kind, rel in rec.images.items()})
    return row


def _outcome(rec: TrialRecord, last: dict[str, Any], ray: RayTrial, launch_runs: bool
             ) -> tuple[str, str | None, str | None]:
    """(outcome, error, Ray's own error): `unreadable` for a damaged file, else the launcher's
    verdict, else the one rule on the trial's files -- a failed trial's error is its own words,
    or NODE_LOST when Ray ended it with an error it never reported."""
    if rec.damaged:
        return Outcome.UNREADABLE.value, None, None
    verdict = rec.verdict or {}
    if verdict.get(OUTCOME_ATTR) in _OUTCOMES:
        return verdict[OUTCOME_ATTR], verdict.get(ERROR_ATTR), verdict.get(RAY_ERROR)
    reported = last.get("outcome") if isinstance(last.get("outcome"), str) else None
    # Ray's error file, with Ray not saying the trial still runs: Ray ended it with an error.
    errored = ray.status == "ERROR" or (rec.error_file is not None and ray.status not in ("RUNNING", "PENDING"))
    outcome = trial_outcome(reported, ray.status, errored=errored, driver_running=launch_runs).value
    if outcome not in FAILED_OUTCOMES:
        return outcome, None, None
    said = last.get("error") if reported in FAILED_OUTCOMES and isinstance(last.get("error"), str) else None
    return outcome, said or NODE_LOST, rec.error_file


def _diverged_epoch(results: list[dict[str, Any]]) -> int | None:
    div = next((r for r in results if r.get("outcome") == Outcome.DIVERGED.value), None)
    if div is None:
        return None
    epoch = div.get("diverged_epoch") if finite(div.get("diverged_epoch")) else div.get("epoch")
    return int(epoch) if finite(epoch) else None


def _retries(ray: RayTrial, results: list[dict[str, Any]]) -> dict[str, int]:
    """``restarts``: times the process started again (a new run reports iterations_since_restore
    1); ``retries``: vocabulary.retries, else the restarts."""
    restarts = max(0, sum(1 for r in results if r.get("iterations_since_restore") == 1) - 1)
    counted = retries(ray.num_failures, ray.status)
    return {"retries": restarts if counted is None else counted, "restarts": restarts}


def _start_time(ray: RayTrial, results: list[dict[str, Any]]) -> float | None:
    """Ray's start time, else the first report's timestamp less its iteration time."""
    if finite(ray.start_time):
        return ray.start_time
    first_ts = next((r["timestamp"] for r in results if finite(r.get("timestamp"))), None)
    if first_ts is None:
        return None
    first_dt = results[0].get("time_this_iter_s")
    return first_ts - (first_dt if finite(first_dt) else 0)


def _end_time(start: float | None, last: dict[str, Any]) -> float | None:
    """Ray's timestamp has whole seconds: take the later of it and start + wall time."""
    ends = [v for v in (last.get("timestamp"),) if finite(v)]
    if start is not None and finite(last.get("time_since_restore")):
        ends.append(start + float(last["time_since_restore"]))
    return max(ends) if ends else None


def _final_values(results: list[dict[str, Any]], metrics: Sequence[str], *, diverged: bool) -> dict[str, Any]:
    """The last finite value of each key (metrics may be measured every k epochs), never from a
    failure report (its objectives are sentinels: score 0, loss 1e9). A diverged trial has none:
    they would describe a model that no longer exists (the history keeps them)."""
    measured = [r for r in results if r.get("outcome") not in FAILED_OUTCOMES]
    return {m: None if diverged else next((float(r[m]) for r in reversed(measured) if finite(r.get(m))), None)
            for m in metrics}


def trials_frame(rows: list[dict[str, Any]], metrics: Sequence[str], study: dict[str, Any],
                 objectives: Sequence[tuple[str, bool]] = ()) -> pd.DataFrame:
    """trials.parquet: the fixed columns, then config/<key>, the metrics, image/<kind> and
    version/<package>, each with one plain type. `objectives`: (metric, maximize) pairs, for
    ``pareto_rank`` and ``on_front``. A configuration key with a column of its own (variant,
    seed, ...) or with no value in any trial (data_root left to the default) has no config/ column."""
    _pareto(rows, objectives)
    frame = pd.DataFrame(_fixed_trial_columns(rows), index=pd.RangeIndex(len(rows)))
    extra: dict[str, pd.Series] = {}
    for k in sorted({k for r in rows for k, v in r["_config"].items() if v is not None} - set(OWN_COLUMNS)):
        extra[f"config/{k}"] = _column([r["_config"].get(k) for r in rows])
    for m in metrics:
        extra[m] = pd.Series([np.nan if r.get(m) is None else r[m] for r in rows], dtype="float64")
    order = list(IMAGE_KINDS)
    kinds = sorted({k for r in rows for k in r if k.startswith("image/")},
                   key=lambda c: (order.index(c[6:]) if c[6:] in order else len(order), c))
    for k in kinds:
        extra[k] = pd.Series([r.get(k) for r in rows], dtype="str")
    versions = study.get("versions") if isinstance(study.get("versions"), dict) else {}
    for pkg in sorted(versions):
        extra[f"version/{pkg}"] = pd.Series([str(versions[pkg])] * len(rows), dtype="str")
    if extra:
        frame = pd.concat([frame, pd.DataFrame(extra, index=frame.index)], axis=1)
    return frame


def _pareto(rows: list[dict[str, Any]], objectives: Sequence[tuple[str, bool]]) -> None:
    """``pareto_rank`` (1: the front) over the study's objectives among the trials that trained
    every epoch (vocabulary.RANKED_OUTCOMES) with values of all of them; a running trial's values
    may still move, a stopped one's are of a shorter training."""
    ranked = [r for r in rows if r["outcome"] in RANKED_OUTCOMES and objectives
              and all(finite(r.get(m)) for m, _ in objectives)]
    ranks = pareto_ranks(np.array([[r[m] for m, _ in objectives] for r in ranked]), [up for _, up in objectives]
                         ) if ranked else []
    for r in rows:
        r["pareto_rank"], r["on_front"] = None, False
    for r, rank in zip(ranked, ranks, strict=True):
        r["pareto_rank"], r["on_front"] = int(rank), bool(rank == 1)


def _fixed_trial_columns(rows: list[dict[str, Any]]) -> dict[str, pd.Series]:
    def get(k: str) -> list[Any]:
        return [r.get(k) for r in rows]

    cols: dict[str, pd.Series] = {}
    for k in ("trial_id", "trial_dir", "variant", "outcome", "ray_status", "error", RAY_ERROR, "node_ip", "node_id",
              "node", "hostname", "optuna_state"):
        cols[k] = _text(get(k))
    for k in ("trial_number", "optuna_number", "retry_of", "seed", "config_group", "pareto_rank", "diverged_epoch",
              "epochs", "n_reports", "retries", "restarts"):
        cols[k] = _integers(get(k))
    for k in ("diverged", "on_front"):
        cols[k] = pd.Series(get(k), dtype="bool")
    for k in ("wall_time_s", "gpu_share"):
        cols[k] = _floats(get(k))
    for k in ("started_at", "ended_at"):
        cols[k] = _times(get(k))
    return {k: cols[k] for k in TRIAL_COLUMNS}


# --- history.parquet ------------------------------------------------------------------------------
def history_rows(rec: TrialRecord, metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One row per epoch; a restarted trial's later report of an epoch wins."""
    per_epoch: dict[Any, dict[str, Any]] = {}
    for r in rec.results:
        per_epoch[r.get("epoch") if finite(r.get("epoch")) else r.get("training_iteration")] = r
    out = []
    for r in per_epoch.values():
        h = {
            "trial_id": rec.trial_id, "variant": rec.config.get("variant"), "seed": rec.config.get("seed"),
            CONFIG_GROUP: rec.config.get(CONFIG_GROUP),
            "epoch": r.get("epoch") if finite(r.get("epoch")) else None,
            "training_iteration": r.get("training_iteration") if finite(r.get("training_iteration")) else None,
            "time_total_s": float(r["time_total_s"]) if finite(r.get("time_total_s")) else None,
            "timestamp": r.get("timestamp") if finite(r.get("timestamp")) else None,
            "outcome": r.get("outcome") if isinstance(r.get("outcome"), str) else None,
            "node_ip": r.get("node_ip"), "node_id": r.get("node_id"),
            "gpu_share": float(r["gpu_share"]) if finite(r.get("gpu_share")) else None,
        }
        # A failure report carries sentinels so that Optuna never sees a missing key: not data.
        failed = h["outcome"] in FAILED_OUTCOMES
        # Between evaluations a report repeats the last metrics (metrics_epoch < epoch): a curve
        # must show them at the epoch they were measured, not as a flat line.
        stale = finite(r.get("metrics_epoch")) and finite(h["epoch"]) and r["metrics_epoch"] != h["epoch"]
        for m in metrics:
            v = r.get(m)
            h[m] = float(v) if is_number(v) and not failed and not (stale and is_evaluated(m)) else None
        out.append(h)
    return out


def history_frame(hist: list[dict[str, Any]], metrics: Sequence[str], order: Sequence[str]) -> pd.DataFrame:
    """history.parquet, sorted by the trials' order (``order``: trial ids), epoch, iteration."""
    rank = {t: i for i, t in enumerate(order)}
    hist = sorted(hist, key=lambda h: (rank.get(h["trial_id"], 1 << 30),
                                       h["epoch"] if h["epoch"] is not None else math.inf,
                                       h["training_iteration"] or 0))

    def get(k: str) -> list[Any]:
        return [h.get(k) for h in hist]

    cols: dict[str, pd.Series] = {
        "trial_id": pd.Series(get("trial_id"), dtype="str"),
        "trial_number": _integers([rank.get(h["trial_id"]) for h in hist]), "variant": _text(get("variant")),
        "seed": _integers(get("seed")), CONFIG_GROUP: _integers(get(CONFIG_GROUP)), "epoch": _integers(get("epoch")),
        "training_iteration": _integers(get("training_iteration")), "time_total_s": _floats(get("time_total_s")),
        "timestamp": _times(get("timestamp")), "outcome": pd.Series(get("outcome"), dtype="str"),
        "node_ip": _text(get("node_ip")), "node_id": _text(get("node_id")), "gpu_share": _floats(get("gpu_share")),
    }
    for m in metrics:
        cols[m] = _floats(get(m))
    return pd.DataFrame(cols, index=pd.RangeIndex(len(hist)))


def with_params(history: pd.DataFrame, trials: pd.DataFrame, params: Sequence[str]) -> pd.DataFrame:
    """The history with each trial's value of the searched `params` (their config/<key>
    columns, after the fixed ones), so that a curve can be grouped by a parameter without a join."""
    cols = [c for c in (config_column(p) for p in params) if c.startswith("config/") and c in trials]
    if not cols or history.empty:
        return history
    values = trials.set_index("trial_id")[cols]
    joined = values.reindex(history["trial_id"]).reset_index(drop=True).set_axis(history.index)
    fixed = [c for c in history.columns if c in HISTORY_COLUMNS]
    return pd.concat([history[fixed], joined, history.drop(columns=fixed)], axis=1)


def config_column(key: str) -> str:
    """The trials-table column of a configuration key: its own column or config/<key>."""
    return key if key in OWN_COLUMNS else f"config/{key}"


# --- typed columns --------------------------------------------------------------------------------
def _text(values: list[Any]) -> pd.Series:
    return pd.Series([None if v is None else str(v) for v in values], dtype="str")


def _integers(values: list[Any]) -> pd.Series:
    return pd.Series([int(v) if finite(v) else None for v in values], dtype="Int64")


def _floats(values: list[Any]) -> pd.Series:
    return pd.Series([float(v) if finite(v) else np.nan for v in values], dtype="float64")


def _times(values: list[Any]) -> pd.Series:
    """Seconds since the epoch -> UTC timestamps in milliseconds."""
    return pd.to_datetime(_floats(values), unit="s", utc=True).astype("datetime64[ms, UTC]")


def _column(values: list[Any]) -> pd.Series:
    """A config column with one plain type: numbers as float (int when all integral), text as
    str, lists and dicts as JSON text, all-missing as null."""
    present = [v for v in values if v is not None]
    if not present:
        return pd.Series([None] * len(values), dtype=object)
    if all(isinstance(v, (bool, np.bool_)) for v in present):
        return pd.Series([None if v is None else bool(v) for v in values], dtype="boolean")
    if all(is_number(v) for v in present):
        if all(isinstance(v, (int, np.integer)) for v in present):
            return pd.Series(values, dtype="Int64")
        return pd.Series([np.nan if v is None else float(v) for v in values], dtype="float64")
    return pd.Series([None if v is None else (v if isinstance(v, str) else json.dumps(v, sort_keys=True))
                      for v in values], dtype="str")
