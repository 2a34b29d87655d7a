"""What the report's selection panel shows of each trial, and which trials' images it embeds.

Every image of a small study is embedded (the report works anywhere). A large study's images
would not fit (about 250 KB per trial: 500 trials would be over 100 MB), so the images are
embedded in order of interest -- the trial shown first, the best of each variant, the Pareto
front, then by Pareto rank and the first objective -- until ``image_budget`` bytes are spent;
the others are linked from the experiment folder (relative to the report, so the folder and
its report can move together), and a remote experiment's are named, not linked.
"""

from __future__ import annotations

import math
import os
import posixpath
from typing import Any

import pandas as pd

from analysis.charts.data import fmt, present
from analysis.experiment import Experiment, png_uri
from trainables import storage
from trainables.vocabulary import IMAGE_KINDS, METRICS, Outcome, variant_label

IMAGE_BUDGET = 8_000_000  # bytes of PNG embedded (x 4/3 as base64): with plotly.js and 500 trials, about 20 MB
_FACTS = ("epochs", "wall_time_s", "node", "node_id", "node_ip", "hostname", "gpu_share", "retries",
          "diverged_epoch", "error")


def clean(v: Any) -> Any:
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


def outcome_text(row: Any) -> str:
    """The outcome as shown: a trial the scheduler stopped says at which epoch."""
    outcome, epochs = clean(row.get("outcome")), clean(row.get("epochs"))
    if outcome == Outcome.STOPPED.value and epochs is not None:
        return f"stopped at epoch {int(epochs)}"
    return "" if outcome is None else str(outcome)


def image_order(exp: Experiment, first: list[str]) -> list[str]:
    """Trial ids with images, most interesting first: `first` (the trial shown first, the best
    of each variant), the front, then by Pareto rank and the study's first objective."""
    t = exp.trials.loc[exp.trials.filter(like="image/").notna().any(axis=1)] if len(exp.trials) else exp.trials
    obj = next((o for o in exp.objectives if o.metric in t), None)
    sign = -1.0 if obj is not None and obj.direction == "maximize" else 1.0
    ranked = t.assign(_rank=t["pareto_rank"].astype("float64") if "pareto_rank" in t else 0.0,
                      _value=sign * t[obj.metric].astype("float64") if obj is not None else 0.0,
                      ).sort_values(["_rank", "_value", "trial_number"], na_position="last", kind="stable")
    ids = [str(i) for i in ranked["trial_id"]]
    return list(dict.fromkeys([i for i in first if i in ids] + ids))


class ImageStore:
    """The images of the report: embedded ones once each (by key), the others as links."""

    def __init__(self, exp: Experiment, report_dir: str | None, budget: int) -> None:
        self.exp, self.report_dir, self.budget = exp, report_dir, budget
        self.embedded: dict[str, str] = {}  # key -> data: URI
        self.spent = 0

    def add_trials(self, order: list[str]) -> dict[str, list[list[Any]]]:
        """trial id -> [kind, caption, key of the embedded image or None, link or None] per image."""
        kinds = self.exp.image_kinds()
        out = {}
        for tid in order:
            row = self.exp.trials.loc[self.exp.trials["trial_id"] == tid].iloc[0]
            have = [k for k in kinds if isinstance(clean(row[f"image/{k}"]), str)]
            data = {k: self.exp.image_bytes(tid, k) for k in have} if self.spent < self.budget else {}
            size = sum(len(b) for b in data.values() if b)
            embed = bool(data) and self.spent + size <= self.budget
            self.spent += size if embed else 0
            out[tid] = [[k, IMAGE_KINDS.get(k, k), self._embed(tid, k, data[k]) if embed and data[k] else None,
                         None if embed else self._link(row[f"image/{k}"])] for k in have]
        return out

    def _embed(self, tid: str, kind: str, data: bytes) -> str:
        key = f"{tid}/{kind}"
        self.embedded[key] = png_uri(data)
        return key

    def _link(self, rel: str) -> str | None:
        """The image's path relative to the report's folder; None when either is not local."""
        if self.report_dir is None or storage.is_remote(self.exp.path):
            return None
        target = os.path.join(os.path.abspath(self.exp.path), *rel.split("/"))
        return posixpath.join(*os.path.relpath(target, self.report_dir).split(os.sep))


def trial_data(exp: Experiment, images: dict[str, list[list[Any]]]) -> dict[str, dict[str, Any]]:
    """Per trial: label, outcome, Pareto rank, objectives, facts (where it ran), final values,
    configuration (searched first), images and the labels of its traversal rows and columns."""
    t = exp.trials
    objectives = [o.metric for o in exp.objectives if o.metric in t]
    metrics = objectives + [m for m in exp.metrics if m in t and m not in objectives]
    searched = list(exp.searched_columns())
    keys = searched + [c.removeprefix("config/") for c in exp.config_columns() if c.removeprefix("config/")
                       not in searched]
    out = {}
    for _, r in t.iterrows():
        tid = str(r["trial_id"])
        trav = exp.traversals(tid) if tid in images else None
        out[tid] = {
            "label": f"trial {tid} · {variant_label(clean(r['variant']))}"
                     + (f" · seed {clean(r['seed'])}" if clean(r["seed"]) is not None else ""),
            "outcome": outcome_text(r), "rank": clean(r.get("pareto_rank")), "front": bool(r.get("on_front")),
            "objectives": [[m, fmt(r[m]), METRICS[m].unit if m in METRICS else ""] for m in objectives
                           if present(r[m])],
            "facts": {k: fmt(clean(r[k])) for k in _FACTS if k in t and clean(r[k]) is not None},
            "metrics": [[m, fmt(r[m])] for m in metrics if present(r[m])],
            "config": [[k, fmt(clean(r[c])), k in exp.searched] for k in keys
                       if (c := exp.param_column(k)) is not None and clean(r[c]) is not None],
            "images": images.get(tid, []),
            "traversals": None if trav is None else {"rows": trav.row_labels(), "columns": trav.column_labels()},
        }
    return out
