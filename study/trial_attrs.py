"""What optuna-dashboard shows of each trial, beyond what Ray's OptunaSearch tells Optuna.

optuna-dashboard reads the journal (``optuna-dashboard <experiment>/optuna.journal``): the
objectives' names come from ``study.set_metric_names`` (study.tuner.open_study); here, each
Optuna trial gets, with its first result and again whenever it moves to another node, the user
attributes naming its Ray trial (``ray_trial_id``, ``ray_trial_dir``: the folder with its
results, checkpoints and images) and where it runs (``node_id`` and the short ``node`` label of
trainables.vocabulary.node_label); and, per epoch, its value of the study's first objective as
an intermediate value (step = epoch), which the dashboard lists per trial. A single-objective
study gets that from OptunaSearch itself (``Trial.report``); Optuna refuses ``report`` in a
multi-objective study, so the storage is written directly, as ``report`` would. A value the
epoch did not measure (a score evaluated every few epochs) or a failed trial's sentinel is not
reported.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import optuna

from study.searcher import StudySearch, trial_dirname
from trainables.vocabulary import FAILED_OUTCOMES, LOSS_TERMS, NODE_LABEL, node_label

RAY_TRIAL_ATTR = "ray_trial_id"
RAY_DIR_ATTR = "ray_trial_dir"
NODE_ID_ATTR = "node_id"  # the PLACEMENT_KEYS key, as the trial reports it
_CONFIG = "config/"  # Ray flattens the trial's config into its results as config/<key>


class TrialAttrsSearch(StudySearch):
    """StudySearch that also labels each Optuna trial for optuna-dashboard (see the module)."""

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        super().on_trial_result(trial_id, result)
        trial = self._ot_trials.get(trial_id)
        if trial is None or trial_id in self._completed_trials:
            return
        nodes = self.__dict__.setdefault("_labelled_nodes", {})  # restored searchers lack the dict
        if nodes.get(trial_id, "") != result.get(NODE_ID_ATTR):
            label(trial, trial_id, result)
            nodes[trial_id] = result.get(NODE_ID_ATTR)
        if isinstance(self.metric, list):
            report_epoch(trial, result, self.metric[0])


def label(trial: optuna.Trial, trial_id: str, result: dict[str, Any]) -> None:
    """The Ray trial's id and folder, and the node it reports from."""
    config = {k.removeprefix(_CONFIG): v for k, v in result.items() if k.startswith(_CONFIG)}
    trial.set_user_attr(RAY_TRIAL_ATTR, trial_id)
    trial.set_user_attr(RAY_DIR_ATTR, trial_dirname(SimpleNamespace(config=config, trial_id=trial_id)))
    if result.get(NODE_ID_ATTR):
        trial.set_user_attr(NODE_ID_ATTR, result[NODE_ID_ATTR])
        trial.set_user_attr(NODE_LABEL, node_label(result[NODE_ID_ATTR], result.get("hostname")))


def report_epoch(trial: optuna.Trial, result: dict[str, Any], metric: str) -> None:
    """The epoch's value of `metric` as the trial's intermediate value at step = epoch, when the
    epoch measured it."""
    value, epoch = result.get(metric), result.get("epoch")
    measured = metric in LOSS_TERMS or result.get("metrics_epoch") == epoch
    if (result.get("outcome") in FAILED_OUTCOMES or not measured or not isinstance(epoch, int)
            or not isinstance(value, (int, float)) or not math.isfinite(value)):
        return
    trial.storage.set_trial_intermediate_value(trial._trial_id, epoch, float(value))
