"""analysis/: the parquet tables, the charts' computed info, and the HTML report.

Two kinds of experiment folder:
- ``smoke``: a REAL study, ``python -m study.launch --space compare --preset smoke`` run once
  per session (analysis_helpers.smoke_study): the tables must agree with what Ray, Optuna and
  the launcher wrote.
- ``gen``: analysis_helpers.make_experiment, for what a real run cannot produce on demand:
  diverged, failed, retried, scheduler-stopped, running and pending trials side by side.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from analysis_helpers import FakeTrial, default_trials, make_experiment, smoke_study

from analysis import ExperimentError, Objective, load_experiment, read_results, write_results
from analysis import charts as C
from analysis.report import build_report, write_report
from analysis.stats import pareto_ranks, t_interval
from analysis.tables import OWN_COLUMNS
from trainables import storage
from trainables.vocabulary import (
    DISENTANGLEMENT_METRICS,
    FAILED_OUTCOMES,
    JOURNAL_FILE,
    LOCK_FILE,
    RECORD_JOURNAL,
    RECORD_RUNS,
    RUN_LOCK_TOKEN,
    SCORED_OUTCOMES,
    STUDY_FILE,
    VARIANT_NAMES,
    node_label,
    variant_label,
)

REPO = Path(__file__).resolve().parents[1]
FAST = optuna.importance.PedAnovaImportanceEvaluator()  # chart logic tests; fANOVA runs in the report


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    return smoke_study(tmp_path_factory.getbasetemp() / "smoke_study")


@pytest.fixture(scope="module")
def gen_dir(tmp_path_factory) -> Path:
    return make_experiment(tmp_path_factory.mktemp("gen"))


@pytest.fixture(scope="module")
def gen(gen_dir):
    return load_experiment(gen_dir)


def _by_id(exp, tid):
    return exp.trials.loc[exp.trials["trial_id"] == tid].iloc[0]


# --------------------------------------------------------------------------------------------
# The real smoke study.


@pytest.mark.ray
def test_smoke_study_tables_match_ray_and_optuna(smoke):
    exp = load_experiment(smoke)
    t, h = exp.trials, exp.history
    study = json.loads((smoke / "study.json").read_text())
    trial_dirs = [d for d in smoke.iterdir() if (d / "params.json").exists()]
    assert len(t) == len(trial_dirs) == study["settings"]["trials"] == 4
    assert t["trial_id"].is_unique and set(t["trial_dir"]) == {d.name for d in trial_dirs}
    # Ray's own record of each trial: the result lines (history deduplicates restarted epochs).
    for d in trial_dirs:
        lines = [json.loads(x) for x in (d / "result.json").read_text().splitlines() if x.strip()]
        row = t.loc[t["trial_dir"] == d.name].iloc[0]
        assert row["trial_id"] == lines[-1]["trial_id"]
        assert row["n_reports"] == len(lines)
        assert row["epochs"] == lines[-1]["epoch"]
        assert row["outcome"] == lines[-1]["outcome"]
        assert row["node_ip"] == lines[-1]["node_ip"] and row["gpu_share"] == lines[-1]["gpu_share"]
        assert row["node_id"] == lines[-1]["node_id"]
        assert row["node"] == node_label(lines[-1]["node_id"], lines[-1]["hostname"])
        assert row["wall_time_s"] == pytest.approx(lines[-1]["time_total_s"])
        assert (h["trial_id"] == row["trial_id"]).sum() == len({x["epoch"] for x in lines})
        params = json.loads((d / "params.json").read_text())
        assert row["variant"] == params["variant"] and row["seed"] == params["seed"]
        for k, v in params.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                assert row[k if k in OWN_COLUMNS else f"config/{k}"] == pytest.approx(v)
            if v is None:  # data_root left to the default: no empty column
                assert f"config/{k}" not in t
    # The launcher's counts and the Optuna journal agree with the outcomes.
    counts = t["outcome"].value_counts().to_dict()
    for outcome, n in study["counts"].items():
        assert counts.get(outcome, 0) == n, (outcome, counts, study["counts"])
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(smoke / "optuna.journal")))
    ost = {tr.number: tr.state.name for tr in optuna.load_study(study_name="smoke", storage=storage).trials}
    ours = {int(n): s for n, s in zip(t["optuna_number"], t["optuna_state"], strict=True)}
    assert ours == {n: ost[n] for n in ours}
    assert {n for n, s in ost.items() if s in ("COMPLETE", "FAIL")} <= set(ours)  # every told trial is a row
    assert set(t.loc[t["outcome"] == "completed", "optuna_state"]) <= {"COMPLETE"}
    assert set(t.loc[t["outcome"].isin(["diverged", "error"]), "optuna_state"]) <= {"FAIL"}
    # Seeds: two configurations, two seeds each.
    assert sorted(t.groupby("config_group")["seed"].apply(sorted).tolist()) == [[0, 1], [0, 1]]
    assert exp.objectives == (("mig", "maximize"), ("rec_loss", "minimize"))
    assert "variant" in exp.searched and "lr" in exp.searched
    assert set(t.filter(like="version/").columns) >= {f"version/{k}" for k in study["versions"]}
    # Completed trials carry their final metrics and images.
    done = t.loc[t["outcome"] == "completed"]
    assert done["rec_loss"].notna().all() and done["mig"].notna().all()
    for _, r in done.iterrows():
        assert r["image/recon"].endswith("recon.png") and (smoke / r["image/recon"]).is_file()


@pytest.mark.ray
def test_smoke_study_launcher_wrote_parquet_and_report(smoke):
    # study.launch calls analysis.report.write_report at the end of a study.
    for name in ("trials.parquet", "history.parquet", "report.html"):
        assert (smoke / name).is_file(), name
    stored, fresh = read_results(smoke), load_experiment(smoke)
    pd.testing.assert_frame_equal(stored.trials, fresh.trials)
    pd.testing.assert_frame_equal(stored.history, fresh.history)
    assert stored.objectives == fresh.objectives and stored.searched == fresh.searched


@pytest.mark.ray
def test_smoke_study_charts(smoke):
    exp = load_experiment(smoke)
    done = exp.trials.loc[exp.trials["outcome"] == "completed"]
    if done.empty:
        pytest.fail("the smoke study completed no trial: " + "; ".join(exp.trials["error"].dropna().unique()))
    info = C.pareto_front_info(exp)
    assert set(info.trial_ids) == set(done["trial_id"])
    assert info.x == tuple(done.set_index("trial_id").loc[list(info.trial_ids), "rec_loss"])
    assert any(info.on_front)
    fig = C.pareto_front_figure(info)
    shown = {c for tr in fig.data if tr.customdata is not None for c in tr.customdata}
    assert shown == set(info.trial_ids)
    curves = C.curves_info(exp, metrics=["rec_loss", "mig"])
    assert {s.metric for s in curves.series} == {"rec_loss", "mig"}
    assert {s.variant for s in curves.series} == set(exp.history["variant"])
    dist = C.seed_distributions_info(exp, metrics=["mig"])
    assert sum(len(v) for v in dist.values[0]) == len(done)
    panels = C.image_panels_info(exp, trial_ids=list(done["trial_id"][:1]))
    assert panels.kinds[:2] == ("recon", "traversals") and all(s and s.startswith("data:image/png;base64,")
                                                               for s in panels.sources[0])
    for plot in (C.plot_parallel_coordinates, C.plot_correlation, C.plot_divergence, C.plot_curves,
                 C.plot_seed_distributions):
        assert len(plot(exp).data) >= 1


# --------------------------------------------------------------------------------------------
# Tables from the generated folder: every outcome at once.


def test_trials_table_outcomes(gen):
    t = gen.trials
    specs = default_trials()
    assert len(t) == len(specs)
    assert t["outcome"].value_counts().to_dict() == pd.Series([s.outcome for s in specs]).value_counts().to_dict()
    div = t.loc[t["outcome"] == "diverged"].sort_values("diverged_epoch")
    assert div["diverged"].all() and div["diverged_epoch"].tolist() == [1, 2]
    assert div["error"].str.startswith("TrialDiverged").all()
    assert div["rec_loss"].isna().all() and div["mig"].isna().all()  # no sentinel (1e9, 0) as a final value
    assert (t.loc[~t["diverged"], "diverged_epoch"].isna()).all()
    err = t.loc[t["outcome"] == "error"].iloc[0]
    assert err["error"].startswith("OutOfMemoryError") and err["ray_status"] == "ERROR"
    assert math.isnan(err["rec_loss"]) or err["rec_loss"] < 1e6
    assert err["retries"] == 0  # Ray counts the final failure too; it was not retried
    retried = t.loc[t["retries"] > 0]
    assert len(retried) == 1 and retried.iloc[0]["restarts"] == 1 and retried.iloc[0]["n_reports"] == 4
    assert retried.iloc[0]["node_ip"] == "10.0.0.3"
    assert t.loc[t["outcome"] == "stopped", "ray_status"].eq("TERMINATED").all()
    pending = t.loc[t["outcome"] == "pending"].iloc[0]
    assert pending["n_reports"] == 0 and pd.isna(pending["trial_dir"]) and pending["variant"] == "sintro"
    assert t["trial_number"].tolist() == list(range(len(t)))
    # Optuna: matched by the optuna_number the launcher puts in the config.
    assert t["optuna_number"].tolist() == list(range(len(t)))
    assert t.loc[t["outcome"].isin(["diverged", "error"]), "optuna_state"].eq("FAIL").all()
    assert t.loc[t["outcome"].isin(["running", "pending"]), "optuna_state"].eq("RUNNING").all()
    # Configuration, placement, versions, images (trial dir or last checkpoint).
    assert t["gpu_share"].fillna(-1).tolist() == [-1 if s.outcome == "pending" else s.gpu_share for s in specs]
    assert t.loc[t["variant"] == "beta_vae", "config/beta_neg"].isna().all()
    assert (t["version/ray"] == "2.60.0").all()
    done = t.loc[t["outcome"] == "completed"]
    assert done["image/traversals"].notna().all()
    in_checkpoint = done["image/recon"].str.contains("/checkpoint_")
    assert in_checkpoint.any() and (~in_checkpoint).any()
    assert t.loc[t["outcome"] != "completed", "image/recon"].isna().all()
    assert gen.searched.keys() == {"variant", "lr", "beta_kl", "latent_dim", "tc_weight", "beta_neg"}
    assert set(gen.conditional) == {"tc_weight", "beta_neg"}
    # Where each trial ran: the node's id and a short label of it.
    assert t.loc[t["outcome"] != "pending", "node_id"].str.len().eq(56).all()
    placed = t.dropna(subset=["node_id"])
    assert placed["node"].tolist() == [node_label(i, h) for i, h in zip(placed["node_id"], placed["hostname"],
                                                                        strict=True)]


def test_trials_table_has_no_empty_or_duplicated_columns(gen):
    t = gen.trials
    assert not [c for c in t.columns if t[c].isna().all() and c.startswith("config/")]  # data_root: None everywhere
    assert not {f"config/{k}" for k in OWN_COLUMNS} & set(t.columns)  # seed, variant, ... once
    assert "config/data_root" not in t and "config/lr" in t


def test_pareto_rank_over_the_objectives(gen):
    t = gen.trials
    ranked = t.loc[t["pareto_rank"].notna()]
    # only trials that trained every epoch: a running trial's values may still move, a stopped
    # one's are of a shorter training
    assert set(ranked["outcome"]) == {"completed"} and (t["outcome"] == "stopped").any()
    points = ranked[["mig", "rec_loss"]].to_numpy()
    assert ranked["pareto_rank"].tolist() == pareto_ranks(points, [True, False]).tolist()
    assert (t["on_front"] == t["pareto_rank"].eq(1).fillna(False)).all()
    assert t["on_front"].dtype == bool and str(t["pareto_rank"].dtype) == "Int64"
    # The chart's front (the same two objectives) is the table's.
    info = C.pareto_front_info(gen)
    assert set(info.front) == set(t.loc[t["on_front"], "trial_id"])


def test_schema_dtypes(gen):
    t, h = gen.trials, gen.history
    for col in ("trial_number", "seed", "epochs", "retries", "restarts", "diverged_epoch", "optuna_number"):
        assert str(t[col].dtype) == "Int64", col
    assert t["diverged"].dtype == bool
    for col in ("rec_loss", "mig", "wall_time_s", "gpu_share"):
        assert t[col].dtype == "float64", col
    assert str(t["started_at"].dtype) == "datetime64[ms, UTC]"
    assert list(h.columns[:13]) == ["trial_id", "trial_number", "variant", "seed", "config_group", "epoch",
                                    "training_iteration", "time_total_s", "timestamp", "outcome", "node_ip", "node_id",
                                    "gpu_share"]
    # history.parquet carries the searched parameters: a curve can be grouped by one without a join.
    assert [c for c in h.columns if c.startswith("config/")] == [f"config/{p}" for p in gen.searched if p != "variant"]
    joined = h.merge(t[["trial_id", "config/lr"]], on="trial_id", suffixes=("", "_t"))
    assert np.allclose(joined["config/lr"], joined["config/lr_t"])
    assert gen.metrics[:4] == ["loss", "rec_loss", "kl", "mi"] and gen.metrics[-2:] == ["epoch_time_s", "images_per_s"]


def test_history_rows(gen):
    h = gen.history
    t = gen.trials.set_index("trial_id")
    # One row per trial and epoch: the retried trial reported epoch 2 twice, the later one wins.
    assert not h.duplicated(["trial_id", "epoch"]).any()
    expected = {tid: (0 if pd.isna(r["epochs"]) else int(r["epochs"])) for tid, r in t.iterrows()}
    assert h.groupby("trial_id").size().to_dict() == {k: v for k, v in expected.items() if v}
    # A failure report's sentinels are not measurements.
    failed = h.loc[h["outcome"].isin(["diverged", "error"])]
    assert len(failed) == 3 and failed[["rec_loss", "mig", "kl"]].isna().all().all()
    assert h["rec_loss"].max() < 1e6


def test_history_shows_metrics_at_the_epochs_they_were_measured(tmp_path):
    # Evaluated at epochs 1, 2, 4 and 5 (the last); reports at epoch 3 repeat epoch 2's values.
    exp = load_experiment(make_experiment(tmp_path, trials=[FakeTrial(
        "beta_vae", 0, {"variant": "beta_vae", "lr": 3e-4, "beta_kl": 2.0, "latent_dim": 10}, epochs=5,
        metrics_every=2)]))
    h = exp.history.set_index("epoch")
    assert h["mig"].notna().to_dict() == {1: True, 2: True, 3: False, 4: True, 5: True}
    assert h["rec_loss"].notna().all()  # losses are measured every epoch
    assert exp.trials["mig"].iloc[0] == h.loc[5, "mig"]
    s = C.curves_info(exp, metrics=["mig"]).series[0]
    assert s.epochs == (1.0, 2.0, 4.0, 5.0)


def test_write_results_atomic_and_idempotent(gen_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    first = write_results(gen_dir, out)
    data = [Path(p).read_bytes() for p in first]
    second = write_results(gen_dir, out)
    assert first == second and [Path(p).read_bytes() for p in second] == data  # byte-identical
    assert sorted(p.name for p in out.iterdir()) == ["history.parquet", "trials.parquet"]
    # A crash while writing leaves the previous files and no temporary file behind.
    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(storage.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_results(gen_dir, out)
    assert sorted(p.name for p in out.iterdir()) == ["history.parquet", "trials.parquet"]
    assert [Path(p).read_bytes() for p in first] == data


def test_read_results_roundtrip(gen_dir, gen, tmp_path):
    write_results(gen_dir, tmp_path)
    back = read_results(tmp_path)
    pd.testing.assert_frame_equal(back.trials, gen.trials)
    pd.testing.assert_frame_equal(back.history, gen.history)
    assert back.objectives == gen.objectives and back.conditional == gen.conditional
    assert list(back.searched.items()) == list(gen.searched.items())  # order kept: the space's order
    assert back.image_bytes(str(gen.trials["trial_id"][0]), "recon").startswith(b"\x89PNG")
    with pytest.raises(ExperimentError, match="no readable trials.parquet"):
        read_results(tmp_path / "nothing")


def test_running_study_is_readable(tmp_path):
    base = {"lr": 3e-4, "beta_kl": 2.0, "latent_dim": 10}
    exp_dir = make_experiment(tmp_path, trials=[
        FakeTrial("beta_vae", 0, {"variant": "beta_vae", **base}),
        FakeTrial("sintro", 0, {"variant": "sintro", **base, "beta_neg": 256.0}, outcome="running", stop_at=1)])
    running = next(d for d in exp_dir.iterdir() if (d / "params.json").is_file()
                   and json.loads((d / "params.json").read_text())["variant"] == "sintro")
    with open(running / "result.json", "a") as f:  # Ray is writing the next line right now
        f.write('{"epoch": 2, "rec_loss": 71.2, "outc')
    with open(exp_dir / "optuna.journal", "a") as f:
        f.write('{"op_code": 5, "worker_id": "x", "trial_id": 1, "param_na')
    exp = load_experiment(exp_dir)
    row = exp.trials.loc[exp.trials["variant"] == "sintro"].iloc[0]
    assert row["outcome"] == "running" and row["n_reports"] == 1 and row["epochs"] == 1
    assert exp.notes == [] and row["optuna_state"] == "RUNNING"
    info = C.pareto_front_info(exp)
    assert info.running == tuple(v == "sintro" for v in info.variants)
    # Nothing was written into the experiment folder by reading it.
    assert not list(exp_dir.glob("*.parquet")) and [p.name for p in exp_dir.glob("*.lock")] == ["study.lock"]


def test_without_journal_or_state(tmp_path):
    trials = [FakeTrial(v, s, {"variant": v, "lr": lr, "beta_kl": 2.0, "latent_dim": 10})
              for v, s, lr in [("beta_vae", 0, 1e-4), ("beta_tcvae", 0, 1e-3), ("beta_vae", 1, 5e-4)]]
    exp = load_experiment(make_experiment(tmp_path, trials=trials, journal=False, state=False, study_json=False))
    assert len(exp.trials) == 3 and exp.trials["optuna_state"].isna().all()
    assert exp.trials["outcome"].eq("completed").all() and exp.trials["ray_status"].isna().all()
    # Searched parameters inferred: the config keys that vary across trials, bookkeeping
    # (seed, config_group, optuna_number) left out; lr spans 10x only: a linear axis.
    assert exp.searched == {"variant": optuna.distributions.CategoricalDistribution(["beta_tcvae", "beta_vae"]),
                            "lr": optuna.distributions.FloatDistribution(1e-4, 1e-3)}
    assert exp.objectives == (("mig", "maximize"), ("rec_loss", "minimize"))  # the usual pair


def test_corrupt_journal_is_a_note(tmp_path):
    exp_dir = make_experiment(tmp_path, trials=default_trials()[:3])
    lines = (exp_dir / "optuna.journal").read_text().splitlines(keepends=True)
    (exp_dir / "optuna.journal").write_text(lines[0] + "{garbage}\n" + "".join(lines[1:]))
    exp = load_experiment(exp_dir)
    assert len(exp.trials) == 3 and len(exp.notes) == 1 and exp.notes[0].startswith("optuna.journal: could not be read")
    assert [d.file for d in exp.damaged] == ["optuna.journal"]
    assert "variant" in exp.searched


@pytest.mark.parametrize("make", ["missing", "file", "empty", "other"])
def test_bad_input_is_one_line(tmp_path, make):
    target = tmp_path / "x"
    if make == "file":
        target.write_text("hello")
    elif make == "empty":
        target.mkdir()
    elif make == "other":
        (target / "sub").mkdir(parents=True)
        (target / "sub" / "notes.txt").write_text("x")
    with pytest.raises(ExperimentError) as err:
        load_experiment(target)
    assert "\n" not in str(err.value) and "study.launch" in str(err.value)
    for module in ("analysis.report", "analysis.results"):
        proc = subprocess.run([sys.executable, "-m", module, str(target)], cwd=REPO, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert proc.stdout == "" and proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")
        assert "Traceback" not in proc.stderr
    assert make != "empty" or list(target.iterdir()) == []  # nothing written


def test_storage_paths_as_analysis_uses_them(tmp_path):
    # A URI's query (the S3 endpoint) stays at the end: pyarrow reads it there.
    assert storage.join("s3://b/runs/exp?endpoint_override=h:1&scheme=http", "images", "recon.png") == \
        "s3://b/runs/exp/images/recon.png?endpoint_override=h:1&scheme=http"
    assert storage.join(str(tmp_path / "exp?x"), "a") == str(tmp_path / "exp?x" / "a")  # a local "?" is a name
    written = storage.write_bytes(tmp_path / "sub" / "f.txt", "text")
    assert written == str((tmp_path / "sub" / "f.txt").resolve()) and Path(written).read_text() == "text"
    storage.delete(written)
    storage.delete(written)  # gone already: nothing to do
    assert not Path(written).exists()


@pytest.fixture
def s3_server(monkeypatch):
    """A local S3 server (moto) with the credentials set: (client, "host:port")."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    boto3 = pytest.importorskip("boto3")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                     "AWS_ENDPOINT_URL": endpoint}.items():
            monkeypatch.setenv(k, v)
        yield boto3.client("s3", endpoint_url=endpoint), f"{host}:{port}"
    finally:
        server.stop()


def upload(s3, folder: Path, bucket: str, prefix: str) -> None:
    s3.create_bucket(Bucket=bucket)
    for f in folder.rglob("*"):
        if f.is_file() and f.suffix not in (".parquet", ".html", ".lock"):
            s3.upload_file(str(f), bucket, f"{prefix}/{f.relative_to(folder).as_posix()}")


@pytest.mark.ray
def test_s3_experiment(gen_dir, s3_server):
    s3, address = s3_server
    upload(s3, gen_dir, "studies", "runs/exp")
    host, port = address.split(":")
    uri = f"s3://studies/runs/exp?endpoint_override={host}:{port}&scheme=http"
    remote, local = load_experiment(uri), load_experiment(gen_dir)
    cols = [c for c in local.trials.columns if c not in ("started_at",)]
    pd.testing.assert_frame_equal(remote.trials[cols], local.trials[cols])
    pd.testing.assert_frame_equal(remote.history, local.history)
    assert remote.searched == local.searched
    tid = str(local.trials.loc[local.trials["outcome"] == "completed", "trial_id"].iloc[0])
    assert remote.image_bytes(tid, "recon") == local.image_bytes(tid, "recon")
    written = write_results(uri)
    assert all(w.startswith("s3://studies/runs/exp/") for w in written)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="studies", Prefix="runs/exp/")["Contents"]}
    assert {"runs/exp/trials.parquet", "runs/exp/history.parquet"} <= keys
    report = write_report(uri, parquet=False)
    assert report == f"s3://studies/runs/exp/report.html?endpoint_override={host}:{port}&scheme=http"
    html = s3.get_object(Bucket="studies", Key="runs/exp/report.html")["Body"].read().decode()
    assert html.count("plotly.js v") == 1 and html.count("data:image/png;base64,") >= 8


@pytest.mark.ray
def test_on_s3_the_lock_next_to_the_journal_tells_a_killed_driver(gen_dir, s3_server, tmp_path):
    """gen_dir's study.json says `running`. On object storage the lock stays next to the journal
    on the launch's machine: read there, and only when it is the last launch's (its token), it
    tells a live launch from a killed one; anywhere else study.json's word stands."""
    s3, address = s3_server
    journal = tmp_path / "journal" / JOURNAL_FILE
    journal.parent.mkdir()
    record = json.loads((gen_dir / STUDY_FILE).read_text())
    folder = shutil.copytree(gen_dir, tmp_path / "exp")
    (folder / STUDY_FILE).write_text(json.dumps({**record, RECORD_JOURNAL: str(journal),
                                                 RECORD_RUNS: [{RUN_LOCK_TOKEN: "this-launch"}]}))
    upload(s3, folder, "studies", "exp")
    uri = f"s3://studies/exp?endpoint_override={address}&scheme=http"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)

    def lock(pid: int, token: str) -> None:
        (journal.parent / LOCK_FILE).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "token": token,
                                                            "started_at": "2026-12-02T17:00:00+00:00"}))

    assert load_experiment(uri).launch_runs  # no lock here: study.json's word
    lock(os.getpid(), "this-launch")
    assert load_experiment(uri).launch_runs  # the launch's lock, its process alive
    lock(dead_pid, "another-launch")
    assert load_experiment(uri).launch_runs  # a stale lock of an earlier launch says nothing of this one
    lock(dead_pid, "this-launch")
    killed = load_experiment(uri)  # the launch's lock, its process gone: a killed driver
    assert not killed.launch_runs
    assert sorted(killed.trials["outcome"].loc[lambda o: ~o.isin(SCORED_OUTCOMES + FAILED_OUTCOMES)]) == [
        "interrupted", "pending"]


# --------------------------------------------------------------------------------------------
# Charts: the computed info (no rendering), then the figure's traces.


def test_pareto_front_info(gen):
    info = C.pareto_front_info(gen)
    assert (info.y_metric, info.x_metric, info.y_maximize, info.x_maximize) == ("mig", "rec_loss", True, False)
    t = gen.trials.set_index("trial_id")
    points = t.loc[t["outcome"].isin(["completed", "stopped", "running"])]
    assert set(info.trial_ids) == set(points.index)
    # left out by outcome, each named (an interrupted trial with values is not "without values")
    assert dict(info.left_out) == t.loc[~t.index.isin(points.index), "outcome"].value_counts().to_dict()
    x, y = np.array(info.x), np.array(info.y)
    done = [i for i, r in enumerate(info.running) if not r]
    for i in range(len(x)):  # brute force over the finished points; a running one is never on the front
        dominated = any(x[j] <= x[i] and y[j] >= y[i] and (x[j] < x[i] or y[j] > y[i]) for j in done)
        assert info.on_front[i] == (not dominated and not info.running[i])
    assert list(info.front) == sorted(info.front, key=lambda tid: t.loc[tid, "rec_loss"])
    # The trial shown first: on the front, the best MIG there.
    assert info.best == max(info.front, key=lambda tid: t.loc[tid, "mig"])
    for h in info.hover:  # short, no bookkeeping, no HTML entity left unrendered
        lines = h.split("<br>")
        assert len(lines) <= 8 and "&middot;" not in h and "config_group" not in h and "optuna_number" not in h
        assert "lr " in h and "nats/image" in h
    only_done = C.pareto_front_info(gen, outcomes=("completed",))
    assert not any(only_done.running) and len(only_done.trial_ids) == int((t["outcome"] == "completed").sum())
    with pytest.raises(ValueError, match="y='nope'"):
        C.pareto_front_info(gen, y="nope")


def test_pareto_front_figure(gen):
    info = C.pareto_front_info(gen)
    fig = C.pareto_front_figure(info)
    markers = [tr for tr in fig.data if tr.meta in ("front", "dominated")]
    # One colour and one symbol per variant, each variant once in the legend: its key, at full strength.
    keys = [tr for tr in fig.data if tr.meta == "key"]
    assert sorted(tr.name for tr in keys) == sorted({variant_label(v) for v in info.variants})
    assert not any(tr.showlegend for tr in markers)
    for key in keys:
        variant = next(v for v in VARIANT_NAMES if variant_label(v) == key.name)
        assert key.marker.color == C.VARIANT_COLORS[variant] and key.legendgroup == variant
    for tr in markers:
        variant = next(v for v in VARIANT_NAMES if variant_label(v) == tr.name)
        hue = C.VARIANT_COLORS[variant]
        assert tr.marker.color == hue if tr.meta == "front" else tr.marker.color.startswith("rgba(")
        assert len({s.removesuffix("-open") for s in tr.marker.symbol}) == 1
    assert sorted(c for tr in markers if tr.meta == "front" for c in tr.customdata) == sorted(info.front)
    assert sorted(c for tr in markers for c in tr.customdata) == sorted(info.trial_ids)
    ring = next(tr for tr in fig.data if tr.meta == "selected")
    assert list(ring.customdata) == [info.best]
    assert "nats/image" in fig.layout.xaxis.title.text and "lower is better" in fig.layout.xaxis.title.text
    assert [b.label for m in fig.layout.updatemenus for b in m.buttons] == ["x: linear", "x: log", "y: linear",
                                                                           "y: log"]
    assert fig.layout.xaxis.type == "linear"  # rec_loss spans less than two decades here


def test_pareto_front_log_axis_and_pairs(gen):
    wide = gen.trials.copy()
    wide["rec_loss"] = wide["rec_loss"] * np.where(wide["variant"] == "sintro", 1000.0, 1.0)
    exp = dataclasses.replace(gen, trials=wide)
    assert C.pareto_front_info(exp).x_log and C.pareto_front_figure(C.pareto_front_info(exp)).layout.xaxis.type == "log"
    three = dataclasses.replace(gen, objectives=(*gen.objectives, Objective("kl", "minimize")))
    assert C.data.objective_pairs(three) == [("mig", "rec_loss"), ("mig", "kl"), ("rec_loss", "kl")]
    html = build_report(three)
    assert html.count('<option value="') == 3 and '"pareto-pairs"' in html


def test_parallel_coordinates(gen):
    info = C.parallel_coordinates_info(gen)
    labels = [d.label for d in info.dimensions]
    assert labels == ["variant", "lr (log)", "beta_kl (log)", "latent_dim", "tc_weight", "beta_neg", "mig",
                      "rec_loss [nats/image]"]
    done = gen.trials.loc[gen.trials["outcome"].isin(["completed", "stopped"])]
    assert set(info.trial_ids) == set(done["trial_id"])
    assert info.objectives == ("mig", "rec_loss") and info.lower_is_better == (False, True)
    assert info.colors[1] == tuple(done.set_index("trial_id").loc[list(info.trial_ids), "rec_loss"])
    lr = info.dimensions[1]
    lrs = done.set_index("trial_id").loc[list(info.trial_ids), "config/lr"]
    assert lr.values == pytest.approx(tuple(np.log10(lrs)))
    beta_neg = info.dimensions[5]  # conditional: beta-VAE trials sit on "n/a"
    assert beta_neg.ticktext[0] == "n/a"
    assert sum(v == beta_neg.tickvals[0] for v in beta_neg.values) == int(
        done["config/beta_neg"].isna().sum())
    for d in info.dimensions:  # every axis has a fixed range holding its values and its ticks
        assert d.range[0] <= min(d.values) and max(d.values) <= d.range[1]
        assert min(d.tickvals) >= d.range[0] and max(d.tickvals) <= d.range[1]
        assert len(d.tickvals) == len(d.ticktext) and d.range[0] < d.range[1]
    fig = C.parallel_coordinates_figure(info)
    assert len(fig.data) == 1 and fig.data[0].type == "parcoords" and len(fig.data[0].dimensions) == len(labels)
    assert all(list(dim.range) == list(d.range) for dim, d in zip(fig.data[0].dimensions, info.dimensions, strict=True))
    assert list(fig.layout.meta["trial_ids"]) == list(info.trial_ids)  # the report filters by these
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["colour: mig", "colour: rec_loss"]
    assert buttons[1].args[0]["line.color"][0] == list(info.colors[1])


def test_parallel_coordinates_one_value_sits_inside_its_axis(tmp_path):
    trials = [FakeTrial("beta_vae", s, {"variant": "beta_vae", "lr": lr, "beta_kl": 2.0, "latent_dim": 10,
                                         "batch_size": 64}) for s, lr in enumerate((1e-4, 3e-4, 1e-3))]
    exp = load_experiment(make_experiment(tmp_path, trials=trials, journal=False))
    exp.searched["batch_size"] = optuna.distributions.CategoricalDistribution([64])
    dim = next(d for d in C.parallel_coordinates_info(exp).dimensions if d.label == "batch_size")
    assert dim.values == (0.0, 0.0, 0.0) and dim.range == (-0.5, 0.5)


def test_optimization_history(gen):
    info = C.optimization_history_info(gen)
    assert info.objectives == ("mig", "rec_loss") and info.maximize == (True, False)
    done = gen.trials.loc[gen.trials["outcome"].isin(["completed", "stopped"])].sort_values("trial_number")
    assert info.numbers[0] == tuple(done["trial_number"])
    assert info.best[0] == tuple(np.maximum.accumulate(done["mig"].to_numpy()))
    assert info.best[1] == tuple(np.minimum.accumulate(done["rec_loss"].to_numpy()))
    best_at = done["trial_number"].iloc[int(np.argmax(done["mig"].to_numpy()))]
    assert info.last_improved[0] == best_at and info.n_failed == 3
    fig = C.optimization_history_figure(info)
    steps = [tr for tr in fig.data if tr.name == "best so far"]
    assert len(steps) == 2 and steps[0].line.shape == "hv"
    assert {c for tr in fig.data if tr.customdata is not None for c in tr.customdata} == set(done["trial_id"])


def test_slices(gen):
    info = C.slice_info(gen)
    assert info.params == tuple(gen.searched) and info.objectives == ("mig", "rec_loss")
    done = gen.trials.loc[gen.trials["outcome"].isin(["completed", "stopped"])].sort_values("trial_number")
    assert info.trial_ids == tuple(done["trial_id"]) and info.y[1] == tuple(done["rec_loss"])
    lr = info.params.index("lr")
    assert info.x[lr] == tuple(done["config/lr"]) and info.log[lr]
    neg = info.params.index("beta_neg")
    assert [v is None for v in info.x[neg]] == done["config/beta_neg"].isna().tolist()
    assert set(info.x[info.params.index("variant")]) == {variant_label(v) for v in done["variant"]}
    fig = C.slice_figure(info)
    assert len(fig.data) == len(info.params) * len(info.objectives)
    panel = fig.data[info.params.index("beta_neg")]
    assert len(panel.x) == done["config/beta_neg"].notna().sum()


def test_param_importances(gen):
    info = C.param_importances_info(gen, evaluator=FAST)
    assert info.objectives == ("mig", "rec_loss") and set(info.left_out) == {"tc_weight", "beta_neg"}
    assert set(info.params) == {"variant", "lr", "beta_kl", "latent_dim"}
    assert info.n_trials == (10, 10) and info.messages == ("", "") and info.runs == 1
    assert info.sample == C.Sample(10, 10, "completed configurations (seeds of one count once)")
    assert info.sample.enough
    for row in info.importances:
        assert sum(row) == pytest.approx(1.0) and all(v >= 0 for v in row)
    fig = C.param_importances_figure(info)
    assert [tr.name for tr in fig.data] == ["mig (10 trials)", "rec_loss (10 trials)"]
    assert list(fig.data[0].y) == list(info.params)[::-1]
    per_variant = C.param_importances_info(gen, evaluator=FAST, variant="sintro")
    assert "beta_neg" in per_variant.params and "variant" in per_variant.left_out
    few = C.param_importances_info(gen, evaluator=FAST, variant="beta_tcvae")
    assert few.n_trials == (2, 2) and not few.sample.enough  # 2 trials for 4 parameters: greyed, with a note
    few_fig = C.param_importances_figure(few)
    assert all(tr.marker.color == "#B8B8B8" for tr in few_fig.data) and "Too few" in few_fig.layout.title.text
    with pytest.raises(ValueError, match="variant='x'"):
        C.param_importances_info(gen, variant="x")


def test_param_importances_default_evaluator_is_deterministic_and_shows_its_spread(gen):
    a = C.param_importances_info(gen, objectives=["mig"])
    b = C.param_importances_info(gen, objectives=["mig"])
    assert a.evaluator == "FanovaImportanceEvaluator" and a.importances == b.importances and a.runs == 3
    for mean, lo, hi in zip(a.importances[0], a.low[0], a.high[0], strict=True):
        assert lo <= mean <= hi
    assert sum(a.importances[0]) == pytest.approx(1.0)


def test_curves(gen):
    info = C.curves_info(gen, metrics=["rec_loss", "mig"])
    h = gen.history
    assert info.metrics == ("rec_loss", "mig")
    assert info.variants == ("beta_vae", "beta_tcvae", "sintro", "sintro_tc")
    s = next(s for s in info.series if s.metric == "rec_loss" and s.variant == "beta_vae")
    part = h.loc[(h["variant"] == "beta_vae") & h["rec_loss"].notna()]
    assert [v for v in s.values if v is not None] == part["rec_loss"].tolist()
    assert s.epochs.count(None) == part["trial_id"].nunique() - 1  # trials separated by gaps
    fig = C.curves_figure(info)
    assert len(fig.data) == len(info.series) and all(tr.connectgaps is False for tr in fig.data)
    assert sum(bool(tr.showlegend) for tr in fig.data) == 4  # one legend entry per variant
    agg = C.curves_info(gen, metrics=["rec_loss"], aggregate=True)
    s = next(s for s in agg.series if s.variant == "beta_vae")
    at1 = part.loc[part["epoch"] == 1, "rec_loss"]
    mean, lo, hi = t_interval(at1.to_numpy())
    assert s.values[0] == pytest.approx(mean) and (s.lower[0], s.upper[0]) == pytest.approx((lo, hi))
    assert len(C.curves_figure(agg).data) == 2 * len(agg.series)  # band + mean
    default = C.curves_info(gen)
    assert "epoch_time_s" not in default.metrics and {"rec_loss", "kl", "mig", "sap"} <= set(default.metrics)


def test_curves_coloured_per_trial_when_the_variant_does_not_vary(tmp_path):
    trials = [FakeTrial("sintro_tc", 0, {"variant": "sintro_tc", "lr": 1e-4 * (k + 1), "beta_kl": 1.0 + k,
                                          "latent_dim": 10, "tc_weight": 2.0, "beta_neg": 256.0}) for k in range(5)]
    exp = load_experiment(make_experiment(tmp_path, trials=trials))
    info = C.curves_info(exp, metrics=["mig"], highlight=3)
    assert info.color_by == "trial" and len(info.keys) == 4 and info.keys[-1] == "other trials"
    front = exp.trials.sort_values(["pareto_rank", "mig"], ascending=[True, False])["trial_id"].tolist()
    assert list(info.keys[:3]) == front[:3]  # the best trials get the colours
    fig = C.curves_figure(info)
    colours = [tr.line.color for tr in fig.data]
    assert len(set(colours[:3])) == 3 and colours[3] == "#B8B8B8" and fig.data[3].name == "other trials"
    assert fig.data[0].mode == "lines+markers"  # three epochs: the points are marked
    assert C.curves_info(exp, metrics=["mig"], aggregate=True).color_by == "variant"


def test_curve_bands_stay_within_the_range(tmp_path):
    from analysis.charts.curves import headline_metrics

    trials = [FakeTrial("beta_vae", s, {"variant": "beta_vae", "lr": 3e-4, "beta_kl": 1.0, "latent_dim": 10})
              for s in range(3)]
    exp = load_experiment(make_experiment(tmp_path, trials=trials))
    exp.history["mig"] = exp.history["mig"].where(exp.history["seed"] != 0, 0.0)  # one seed at the floor
    band = C.curves_info(exp, metrics=["mig", "kl"], aggregate=True).series
    for s in band:
        lo, hi = C.data.bounds(s.metric)
        assert all(lo <= v for v in s.lower if v == v) and (hi is None or all(v <= hi for v in s.upper if v == v))
    assert headline_metrics(exp)[:3] == ["mig", "rec_loss", "kl"] and len(headline_metrics(exp)) == 6


def _seeded(tmp_path, name="seeded"):
    """Two configurations with three seeds each, one trained once: a study whose seeds say something."""
    def params(beta_kl):
        return {"variant": "beta_tcvae", "lr": 3e-4, "beta_kl": beta_kl, "latent_dim": 6, "tc_weight": 2.0}
    trials = [FakeTrial("beta_tcvae", s, params(b)) for b in (1.5, 8.0) for s in range(3)]
    trials.append(FakeTrial("beta_tcvae", 0, params(4.0)))
    return load_experiment(make_experiment(tmp_path, name=name, trials=trials))


def test_seed_distributions_group_by_configuration(tmp_path):
    exp = _seeded(tmp_path)
    t = exp.trials
    info = C.seed_distributions_info(exp, metrics=["mig", "rec_loss", "modularity"])
    assert len(info.groups) == 3 and info.sample == C.Sample(3, 2, "seeds of one configuration") and info.sample.enough
    # The configurations with seeds first, the better MIG first; then the one trained once.
    means = {g: t.loc[t["config_group"] == int(g), "mig"].mean() for g in info.groups[:2]}
    assert means[info.groups[0]] > means[info.groups[1]] and info.groups[2] == str(t["config_group"].iloc[-1])
    assert info.labels[0].startswith(f"#{info.groups[0]} ") and info.labels[0].endswith("beta-TCVAE")
    for s in info.summaries:
        values = t.loc[(t["config_group"] == int(s.group)) & (t["outcome"] == "completed"), s.metric]
        lo, hi = C.data.bounds(s.metric)
        expected = t_interval(values, lower=lo, upper=hi)
        assert s.n == len(values) and (s.mean, s.low, s.high) == pytest.approx(expected, nan_ok=True)
        if s.n > 1:  # within the metric's range: modularity sits near 1 in this fake study
            assert (lo is None or s.low >= lo) and (hi is None or s.high <= hi)
    assert any(s.metric == "modularity" and s.high == 1.0 for s in info.summaries)
    assert "cut to the metric's range" in info.method
    fig = C.seed_distributions_figure(info)
    boxes = [tr for tr in fig.data if tr.type == "box"]  # one per variant and panel
    assert len(boxes) == 3 and len(boxes[0].y) == 7 and len(set(boxes[0].x)) == 3
    means = [tr for tr in fig.data if tr.type == "scatter"]  # an interval only from two seeds on
    assert len(means) == 3 and all(len(tr.x) == 2 for tr in means)
    table = C.comparison_table(exp, metrics=["mig", "rec_loss"])
    assert table["configuration"].tolist() == list(info.groups) and table["n"].tolist() == [3, 3, 1]
    # Seven trials, but three configurations: what parameter importance counts.
    assert C.param_importances_info(exp, evaluator=FAST).sample.have == 3


def test_seed_distributions_of_a_searching_study_say_they_cannot(gen):
    # Every configuration trained once (the case): no interval, a note, a grey chart.
    info = C.seed_distributions_info(gen, metrics=["mig"])
    assert not info.sample.enough and info.sample.have == 1 and info.n_configurations == 9  # the completed ones
    assert all(math.isnan(s.low) for s in info.summaries)
    fig = C.seed_distributions_figure(info)
    assert "Too few seeds of one configuration" in fig.layout.title.text
    assert not [tr for tr in fig.data if tr.type == "scatter"]
    assert len(C.seed_distributions_info(gen, metrics=["mig"], limit=4).groups) == 4
    html = build_report(gen)
    assert '<section id="seeds" class="insufficient">' in html and "it needs at least 2, the study has 1" in html


def test_correlation(gen):
    info = C.correlation_info(gen, metrics=["rec_loss", "mig", "kl", "modularity", "tc"])
    m = np.array(info.matrix)
    assert np.allclose(np.diag(m), 1.0) and np.allclose(m, m.T, equal_nan=True)
    done = gen.trials.loc[gen.trials["outcome"].isin(["completed", "stopped"])]
    expected = done[list(info.metrics)].corr(method="spearman")
    assert np.allclose(m, expected.to_numpy(), equal_nan=True)
    assert info.counts[0][0] == done["rec_loss"].notna().sum()
    assert "tc" in info.metrics and info.counts[info.metrics.index("tc")][0] == done["tc"].notna().sum()
    assert info.sample.have == 10 and info.sample.enough
    lo, hi = info.low[0][1], info.high[0][1]
    assert lo <= info.matrix[0][1] <= hi
    fig = C.correlation_figure(info)
    assert fig.data[0].type == "heatmap" and list(fig.data[0].x) == list(info.metrics)
    assert fig.data[0].colorscale[0][1] != "rgb(255,255,255)" and "interval" in fig.data[0].customdata[0][1]
    assert C.correlation_info(gen).metrics[:2] == ("mig", "rec_loss")  # the objectives first, compact


def test_correlation_on_few_trials_is_greyed(tmp_path):
    exp = _seeded(tmp_path, "few")
    few = C.correlation_info(dataclasses.replace(exp, trials=exp.trials.iloc[:4]))
    assert few.sample == C.Sample(4, 10, "completed trials") and not few.sample.enough
    fig = C.correlation_figure(few)
    assert "Too few completed trials" in fig.layout.title.text and fig.data[0].colorscale[-1][1] == "rgb(0,0,0)"


def test_divergence(gen, tmp_path):
    info = C.divergence_info(gen)
    assert info.variants == ("beta_vae", "beta_tcvae", "sintro", "sintro_tc")
    assert info.n_finished == (4, 3, 3, 3) and info.n_diverged == (0, 0, 1, 1)
    assert info.rate[2] == pytest.approx(1 / 3) and info.epochs == ((), (), (1,), (2,))
    assert info.planned == ((), (), (3,), (3,))
    assert info.low[0] == 0.0 and info.high[0] == pytest.approx(0.4899, abs=1e-4)  # Wilson, 0 of 4
    fig = C.divergence_figure(info)
    assert fig.data[0].type == "bar" and list(fig.data[0].y) == pytest.approx([0, 0, 1 / 3, 1 / 3])
    assert [len(tr.x) for tr in fig.data[1:]] == [1, 1]
    assert C.divergence_summary(info) == "2 of 13 finished trials diverged."
    none = C.divergence_info(load_experiment(make_experiment(tmp_path, trials=default_trials()[:2])))
    assert sum(none.n_diverged) == 0
    assert any("no trial diverged" in a.text for a in C.divergence_figure(none).layout.annotations)
    # The report says it in a line: 0 of 2, and how high the rate could still be (Wilson).
    assert C.divergence_summary(none) == "No trial diverged: 0 of 2 finished trials (95% Wilson interval of the " \
                                        "rate: 0 to 66%)."


def test_image_panels(gen):
    info = C.image_panels_info(gen)
    front = C.pareto_front_info(gen, outcomes=("completed", "stopped"))
    best = {}
    for tid, v, y, f in zip(front.trial_ids, front.variants, front.y, front.on_front, strict=True):
        if f and (v not in best or y > best[v][0]):
            best[v] = (y, tid)
    assert set(info.trial_ids) == {tid for _, tid in best.values()}
    assert info.kinds == ("recon", "traversals", "samples_std1", "samples_std3")
    for row, sizes in zip(info.sources, info.sizes, strict=True):
        for src, size in zip(row, sizes, strict=True):
            img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
            assert img.format == "PNG" and img.width > 64 and img.size == size
    fig = C.image_panels_figure(info)
    assert [tr.type for tr in fig.data] == ["image"] * (len(info.trial_ids) * 4)
    # Traversal rows labelled with latent and KL, columns with z (traversals.json), text readable.
    trav = info.traversals[0]
    axis = fig.layout.yaxis2
    assert list(axis.ticktext) == trav.row_labels() and axis.ticktext[0].startswith(f"z{trav.latents[0]} · KL ")
    assert list(fig.layout.xaxis2.ticktext) == trav.column_labels() == ["-2.5", "-1.88", "-1.25", "-0.625", "0",
                                                                         "0.625", "1.25", "1.88", "2.5"]
    assert all(a.font.size >= 13 for a in fig.layout.annotations)
    with pytest.raises(ValueError, match="not trials"):
        C.image_panels_info(gen, trial_ids=["nope"])


def test_charts_on_an_empty_experiment(tmp_path):
    exp = load_experiment(make_experiment(tmp_path, trials=[]))
    assert len(exp.trials) == 0 and len(exp.history) == 0
    html = build_report(exp)
    assert "no trials yet" in html
    for name in ("pareto_front", "optimization_history", "slices", "parallel_coordinates", "param_importances",
                 "curves", "seed_distributions", "correlation", "divergence", "image_panels"):
        try:
            fig = getattr(C, f"plot_{name}")(exp)
        except ValueError as exc:  # no metric at all: say so
            assert "pass y= and x=" in str(exc) or "no" in str(exc)
            continue
        assert fig.layout.annotations or fig.data


# --------------------------------------------------------------------------------------------
# The HTML report.


def test_report_is_self_contained(gen_dir, tmp_path):
    out = write_report(gen_dir, tmp_path / "r.html")
    assert out == tmp_path / "r.html" and sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]
    html = out.read_text()
    assert html.count("plotly.js v") == 1  # the library, once
    assert "<script src" not in html and "<link" not in html and 'src="http' not in html  # nothing fetched
    for chart in ("pareto", "history", "parallel", "slices", "importance", "curves", "seeds", "correlation",
                  "divergence"):
        assert f'id="chart-{chart}"' in html
    trials, meta = _script_json(html, "trial-data"), _script_json(html, "report-data")
    exp = load_experiment(gen_dir)
    assert set(trials) == set(exp.trials["trial_id"])
    for tid, t in trials.items():
        done = _by_id(exp, tid)["outcome"] == "completed"
        assert len(t["images"]) == (4 if done else 0)
        # A small study: every image embedded, once, by key.
        assert all(meta["images"][key].startswith("data:image/png;base64,") and link is None
                   for _, _, key, link in t["images"])
    assert len(meta["images"]) == 4 * (exp.trials["outcome"] == "completed").sum()
    assert all(html.count(uri) == 1 for uri in meta["images"].values())  # each image once, not per chart
    assert meta["best"] == C.pareto_front_info(exp).best  # shown first
    assert html.count("<tr data-trial=") == len(exp.trials) and html.count('class="o-completed front"') >= 1
    assert (gen_dir / "trials.parquet").is_file() and (gen_dir / "history.parquet").is_file()
    assert "mean [95% interval] over the seeds of each configuration" in html
    assert '<section id="panels">' in html and html.count('class="panel-row"') == 4


def _script_json(html: str, name: str):
    return json.loads(html.split(f'id="{name}">', 1)[1].split("</script>", 1)[0].replace("<\\/", "</"))


def test_report_embeds_the_best_images_and_links_the_rest(gen_dir, tmp_path):
    exp = load_experiment(gen_dir)
    per_trial = sum(len(exp.image_bytes(str(exp.trials["trial_id"][0]), k) or b"") for k in exp.image_kinds())
    html = build_report(exp, report_dir=str(tmp_path / "elsewhere"), image_budget=int(2.5 * per_trial))
    trials, meta = _script_json(html, "trial-data"), _script_json(html, "report-data")
    embedded = {tid for tid, t in trials.items() if t["images"] and t["images"][0][2]}
    linked = {tid for tid, t in trials.items() if t["images"] and t["images"][0][3]}
    assert len(embedded) == 2 and meta["best"] in embedded and not embedded & linked
    assert embedded | linked == {tid for tid, t in trials.items() if t["images"]}
    for tid in linked:  # relative to the report's folder, pointing at the experiment's file
        for kind, _, key, link in trials[tid]["images"]:
            target = gen_dir / _by_id(exp, tid)[f"image/{kind}"]
            assert key is None and (tmp_path / "elsewhere" / link).resolve() == target
    small = build_report(exp, report_dir=None, image_budget=0)
    unshown = [im for t in _script_json(small, "trial-data").values() for im in t["images"]]
    assert all(im[2] is None and im[3] is None for im in unshown)
    assert len(small) < len(html) < len(build_report(exp))


def test_report_notes_what_a_small_sample_cannot_say(tmp_path):
    trials = [FakeTrial("sintro_tc", 0, {"variant": "sintro_tc", "lr": 1e-4 * (k + 1), "beta_kl": 1.0 + k,
                                          "latent_dim": 10, "tc_weight": 2.0, "beta_neg": 256.0}) for k in range(4)]
    html = build_report(load_experiment(make_experiment(tmp_path, trials=trials)))
    for section in ("importance", "seeds", "correlation"):
        assert f'<section id="{section}" class="insufficient">' in html
    assert html.count('<p class="sample-note">') == 3
    assert "No trial diverged: 0 of 4 finished trials" in html and 'id="chart-divergence"' not in html


def test_report_cli(gen_dir):
    proc = subprocess.run([sys.executable, "-m", "analysis.report", str(gen_dir), "--no-parquet"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(gen_dir / "report.html") and (gen_dir / "report.html").stat().st_size > 4_000_000


def test_report_without_a_score(tmp_path):
    # A Ukiyo-e study has no disentanglement score: the page still renders, the Pareto says why.
    trials = [FakeTrial("beta_vae", s, {"variant": "beta_vae", "lr": 1e-4 * (s + 1), "beta_kl": 2.0, "latent_dim": 10})
              for s in range(3)]
    exp = load_experiment(make_experiment(tmp_path, trials=trials, objectives=(("rec_loss", "min"),)))
    exp.trials = exp.trials.drop(columns=[c for c in DISENTANGLEMENT_METRICS if c in exp.trials])
    exp.history = exp.history.drop(columns=[c for c in DISENTANGLEMENT_METRICS if c in exp.history])
    html = build_report(exp)
    assert "Not available" in html and 'id="chart-curves"' in html


def test_report_banner_while_running_and_after_an_interruption(gen, gen_dir, tmp_path):
    assert "The study is still running (2 trials running or pending)" in build_report(gen)
    killed = shutil.copytree(gen_dir, tmp_path / "exp")
    (killed / "study.lock").unlink()  # its driver was killed: study.json still says running
    stopped = load_experiment(killed)
    assert sorted(stopped.trials["outcome"].loc[lambda o: ~o.isin(SCORED_OUTCOMES + FAILED_OUTCOMES)]) == [
        "interrupted", "pending"]
    html = build_report(stopped)
    assert "No launch runs the study now (2 trials interrupted or pending)" in html
    assert "1 interrupted, 1 pending" in html


# --------------------------------------------------------------------------------------------
# One truth per trial (issue 14): the launcher's verdicts in study.json, and a retry in Optuna.


def _ended_by_the_launcher(tmp_path: Path, *, last_run_ended: bool = True) -> Path:
    """Trial 0 failed and was trained to the end by --retry-failed (Optuna: FAIL #0 and COMPLETE
    #3 with retry_of 0); trial 2 was lost with its node (its files and Ray's file say running)."""
    base = {"variant": "beta_vae", "lr": 3e-4, "beta_kl": 2.0, "latent_dim": 10}
    exp_dir = make_experiment(tmp_path, trials=[FakeTrial("beta_vae", 0, base, outcome="error", stop_at=1),
                                                FakeTrial("beta_vae", 1, base),
                                                FakeTrial("beta_vae", 2, base, outcome="running", stop_at=1)])
    (exp_dir / "study.lock").unlink()
    study = optuna.load_study(study_name="exp", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(exp_dir / "optuna.journal"))))
    study.tell(2, state=optuna.trial.TrialState.FAIL)
    failed = study.trials[0]
    study.add_trial(optuna.trial.create_trial(params=failed.params, distributions=failed.distributions,
                                              values=[0.5, 60.0], user_attrs={"retry_of": 0}))
    exp = load_experiment(exp_dir)
    ids = dict(zip(exp.trials["seed"], exp.trials["trial_id"], strict=True))
    entry = dict.fromkeys(("trial_dir", "ray_status", "ray_error", "node_id", "node"))
    trials = [{**entry, "trial_id": ids[0], "optuna_number": 3, "optuna_state": "COMPLETE", "retry_of": 0,
               "outcome": "completed", "error": None},
              {**entry, "trial_id": ids[1], "optuna_number": 1, "optuna_state": "COMPLETE", "retry_of": None,
               "outcome": "completed", "error": None},
              {**entry, "trial_id": ids[2], "optuna_number": 2, "optuna_state": "FAIL", "retry_of": None,
               "outcome": "error", "error": "node lost"}]
    record = json.loads((exp_dir / "study.json").read_text())
    record.update(status="completed" if last_run_ended else "running", trials=trials,
                  runs=[{"status": "completed"}] + ([] if last_run_ended else [{"argv": ["--resume"]}]))
    (exp_dir / "study.json").write_text(json.dumps(record))
    return exp_dir


def test_once_the_study_ended_the_launchers_verdicts_decide_and_a_retry_supersedes_its_fail(tmp_path):
    t = load_experiment(_ended_by_the_launcher(tmp_path)).trials.set_index("seed")
    assert (t.loc[0, "outcome"], t.loc[0, "optuna_number"], t.loc[0, "retry_of"], t.loc[0, "optuna_state"]) == (
        "completed", 3, 0, "COMPLETE")
    assert (t.loc[2, "outcome"], t.loc[2, "error"], t.loc[2, "optuna_state"]) == ("error", "node lost", "FAIL")
    assert t["optuna_number"].tolist() == [3, 1, 2]


def test_verdicts_of_an_earlier_run_are_not_taken_and_nothing_runs_without_its_launch(tmp_path):
    """A resumed run killed before it ended: study.json says running and holds the first run's
    verdicts; the files decide, by the one rule, with no launch running the study."""
    t = load_experiment(_ended_by_the_launcher(tmp_path, last_run_ended=False)).trials.set_index("seed")
    assert (t.loc[0, "outcome"], t.loc[0, "error"]) == ("error", "OutOfMemoryError: CUDA out of memory. Tried "
                                                                  "to allocate 2.00 GiB")
    assert (t.loc[0, "optuna_number"], t.loc[0, "retry_of"]) == (3, 0)  # Optuna's retry_of, without study.json
    assert t.loc[2, "outcome"] == "interrupted" and pd.isna(t.loc[2, "error"])


# --------------------------------------------------------------------------------------------
# Damaged files (issue 14): one line each on stderr, the trial `unreadable`, exit 1 unless allowed.


def _damage(exp_dir: Path) -> dict[str, Path]:
    """Cut a completed trial's result.json mid-line, put garbage in the middle of another's,
    make a third's params.json not JSON; the running trial's half-written line is not damage."""
    done = sorted(d for d in exp_dir.iterdir() if (d / "images").is_dir())
    cut, garbled, params = done[0], done[1], done[2]
    text = (cut / "result.json").read_text()
    (cut / "result.json").write_text(text[: len(text) - 40])
    lines = (garbled / "result.json").read_text().splitlines(keepends=True)
    (garbled / "result.json").write_text(lines[0] + "\x00\x01 not json\n" + "".join(lines[1:]))
    (params / "params.json").write_text('{"variant": "beta')
    return {"cut": cut, "garbled": garbled, "params": params}


def test_damaged_files_make_their_trials_unreadable(tmp_path):
    exp_dir = make_experiment(tmp_path)
    running = next(d for d in exp_dir.iterdir() if (d / "params.json").is_file()
                   and json.loads((d / "params.json").read_text())["variant"] == "beta_tcvae"
                   and json.loads((d / "params.json").read_text())["seed"] == 3)  # default_trials' running one
    damaged = _damage(exp_dir)
    with open(running / "result.json", "a") as f:
        f.write('{"epoch": 3, "rec_lo')  # Ray writing right now: not damage
    exp = load_experiment(exp_dir)
    assert sorted(d.file for d in exp.damaged) == sorted([f"{damaged['cut'].name}/result.json",
                                                          f"{damaged['garbled'].name}/result.json",
                                                          f"{damaged['params'].name}/params.json"])
    by_dir = exp.trials.set_index("trial_dir")
    for d in damaged.values():
        assert by_dir.loc[d.name, "outcome"] == "unreadable" and pd.isna(by_dir.loc[d.name, "pareto_rank"])
    problem = next(d.problem for d in exp.damaged if damaged["garbled"].name in d.file)
    assert re.match(r"line 2 of \d+ not a whole JSON object \(cut off or corrupt\)", problem)
    assert by_dir.loc[damaged["params"].name, "variant"] == json.loads(
        (damaged["params"] / "result.json").read_text().splitlines()[0])["config"]["variant"]  # from the results
    assert len(exp.notes) == 3 and "unreadable" in build_report(exp)
    assert by_dir.loc[running.name, "outcome"] == "running"
    # The same half line in a study that no longer runs was cut off, not being written.
    record = json.loads((exp_dir / "study.json").read_text())
    (exp_dir / "study.json").write_text(json.dumps({**record, "status": "interrupted"}))
    stopped = load_experiment(exp_dir)
    assert stopped.trials.set_index("trial_dir").loc[running.name, "outcome"] == "unreadable"
    assert len(stopped.damaged) == 4


@pytest.mark.parametrize("module", ["analysis.report", "analysis.results", "analysis.paper"])
def test_damaged_files_on_the_command_line(tmp_path, module):
    exp_dir = make_experiment(tmp_path, space="paper" if module == "analysis.paper" else "compare")
    _damage(exp_dir)
    extra = ["--no-png"] if module == "analysis.paper" else []
    run = [sys.executable, "-m", module, str(exp_dir), *extra]
    strict = subprocess.run(run, cwd=REPO, capture_output=True, text=True, timeout=300)
    lines = strict.stderr.splitlines()
    assert strict.returncode == 1, strict.stderr
    assert len(lines) == 3 and all(ln.startswith(f"damaged: {exp_dir}/") for ln in lines)
    assert "Traceback" not in strict.stderr
    if module == "analysis.report":  # the three commands share the ending (analysis/command.py): once is enough
        allowed = subprocess.run([*run, "--allow-damaged"], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert allowed.returncode == 0 and allowed.stderr == strict.stderr and allowed.stdout == strict.stdout
    if module == "analysis.results":
        assert set(read_results(exp_dir).trials["outcome"]) >= {"unreadable"}


def test_a_bad_command_line_is_one_line():
    proc = subprocess.run([sys.executable, "-m", "analysis.report", "--no-such-flag"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == "" and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("error: ") and "--help" in proc.stderr
