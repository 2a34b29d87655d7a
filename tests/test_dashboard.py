"""optuna-dashboard as a second view of a study: the objectives' names, per-epoch values and,
per Optuna trial, its Ray trial folder and node (study/trial_attrs.py, study/tuner.py).

The unit tests drive TrialAttrsSearch's labelling on an in-memory study; the smoke test loads
the journal of a real study (the session's smoke study) with Optuna and, when it is installed
(the dev extra), with optuna-dashboard's own server code, called in-process (no socket)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import optuna
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from analysis_helpers import smoke_study

from study.trial_attrs import RAY_DIR_ATTR, RAY_TRIAL_ATTR, label, report_epoch
from trainables.vocabulary import node_label

NODE = "5853a2" + "0" * 50


def _result(epoch: int, mig: float, **extra) -> dict:
    return {"epoch": epoch, "metrics_epoch": epoch, "mig": mig, "rec_loss": 90.0 - epoch, "outcome": "running",
            "node_id": NODE, "hostname": "vm", "config/variant": "sintro", "config/seed": 1,
            "config/optuna_number": 7, **extra}


def test_labels_and_per_epoch_values_on_a_multi_objective_study():
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    label(trial, "abc123", _result(1, 0.1))
    for epoch, mig in ((1, 0.1), (2, 0.2)):
        report_epoch(trial, _result(epoch, mig), "mig")
    report_epoch(trial, _result(3, 0.2, metrics_epoch=2), "mig")  # repeated, not measured at epoch 3
    report_epoch(trial, _result(4, 0.0, outcome="diverged"), "mig")  # a sentinel
    report_epoch(trial, _result(4, 0.5), "rec_loss")  # a loss term: measured every epoch (90 - 4)
    frozen = study.trials[0]
    assert frozen.intermediate_values == {1: 0.1, 2: 0.2, 4: 86.0}
    assert frozen.user_attrs == {RAY_TRIAL_ATTR: "abc123", RAY_DIR_ATTR: "trial_0007_sintro_s1_abc123",
                                 "node_id": NODE, "node": node_label(NODE, "vm")}


@pytest.mark.ray
def test_the_journal_as_optuna_dashboard_reads_it(tmp_path_factory):
    smoke = smoke_study(tmp_path_factory.getbasetemp() / "smoke_study")
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(smoke / "optuna.journal")))
    study = optuna.load_study(study_name="smoke", storage=storage)
    assert study.metric_names == ["mig", "rec_loss"]
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert done
    for t in done:
        folder = smoke / t.user_attrs[RAY_DIR_ATTR]
        params = json.loads((folder / "params.json").read_text())
        assert params["optuna_number"] == t.number and t.user_attrs[RAY_TRIAL_ATTR] in folder.name
        last = json.loads((folder / "result.json").read_text().splitlines()[-1])
        assert t.user_attrs["node_id"] == last["node_id"] and t.user_attrs["node"] == node_label(
            last["node_id"], last["hostname"])
        assert t.intermediate_values == {last["epoch"]: pytest.approx(last["mig"])}  # smoke: one epoch
    dashboard = pytest.importorskip("optuna_dashboard", reason="optuna-dashboard is not installed (the dev extra)")
    detail = _get(dashboard.wsgi(storage), f"/api/studies/{study._study_id}")
    assert detail["objective_names"] == ["mig", "rec_loss"]
    shown = {t["number"]: t for t in detail["trials"]}
    for t in done:
        attrs = {a["key"]: a["value"] for a in shown[t.number]["user_attrs"]}
        assert attrs[RAY_DIR_ATTR] == t.user_attrs[RAY_DIR_ATTR] and attrs["node"] == t.user_attrs["node"]
        assert [v["step"] for v in shown[t.number]["intermediate_values"]] == list(t.intermediate_values)


def _get(app, path: str) -> dict:
    """One GET through a WSGI app, in-process."""
    status: list[str] = []
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "localhost",
               "SERVER_PORT": "80", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr,
               "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": True}
    body = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
    assert status[0].startswith("200"), (status, body[:300])
    return json.loads(body)
