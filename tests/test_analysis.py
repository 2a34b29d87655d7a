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
import io
import json
import math
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

from analysis import ExperimentError, load_experiment, read_results, write_results
from analysis import charts as C
from analysis.charts.style import GREY
from analysis.report import build_report, write_report
from analysis.stats import non_dominated, t_interval, wilson_interval
from trainables import storage
from trainables.vocabulary import DISENTANGLEMENT_METRICS, VARIANT_NAMES, variant_label

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
        assert row["wall_time_s"] == pytest.approx(lines[-1]["time_total_s"])
        assert (h["trial_id"] == row["trial_id"]).sum() == len({x["epoch"] for x in lines})
        params = json.loads((d / "params.json").read_text())
        assert row["variant"] == params["variant"] and row["seed"] == params["seed"]
        for k, v in params.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                assert row[f"config/{k}"] == pytest.approx(v)
    # The launcher's counts and the Optuna journal agree with the outcomes.
    counts = t["outcome"].value_counts().to_dict()
    for outcome, n in study["counts"].items():
        assert counts.get(outcome, 0) == n, (outcome, counts, study["counts"])
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(smoke / "optuna.journal")))
    ost = {tr.number: tr.state.name for tr in optuna.load_study(study_name="smoke", storage=storage).trials}
    ours = {int(n): s for n, s in zip(t["optuna_number"], t["optuna_state"])}
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


def test_smoke_study_launcher_wrote_parquet_and_report(smoke):
    # study.launch calls analysis.report.write_report at the end of a study.
    for name in ("trials.parquet", "history.parquet", "report.html"):
        assert (smoke / name).is_file(), name
    stored, fresh = read_results(smoke), load_experiment(smoke)
    pd.testing.assert_frame_equal(stored.trials, fresh.trials)
    pd.testing.assert_frame_equal(stored.history, fresh.history)
    assert stored.objectives == fresh.objectives and stored.searched == fresh.searched


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
    assert done["image/recon"].str.contains("/checkpoint_").any() and (~done["image/recon"].str.contains("/checkpoint_")).any()
    assert t.loc[t["outcome"] != "completed", "image/recon"].isna().all()
    assert gen.searched.keys() == {"variant", "lr", "beta_kl", "latent_dim", "tc_weight", "beta_neg"}
    assert set(gen.conditional) == {"tc_weight", "beta_neg"}


def test_schema_dtypes(gen):
    t, h = gen.trials, gen.history
    for col in ("trial_number", "seed", "epochs", "retries", "restarts", "diverged_epoch", "optuna_number"):
        assert str(t[col].dtype) == "Int64", col
    assert t["diverged"].dtype == bool
    for col in ("rec_loss", "mig", "wall_time_s", "gpu_share"):
        assert t[col].dtype == "float64", col
    assert str(t["started_at"].dtype) == "datetime64[ms, UTC]"
    assert list(h.columns[:10]) == ["trial_id", "variant", "seed", "epoch", "training_iteration", "time_total_s",
                                    "timestamp", "outcome", "node_ip", "gpu_share"]
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
        "beta_vae", 0, {"variant": "beta_vae", "lr": 3e-4, "beta_kl": 2.0, "latent_dim": 10}, epochs=5, metrics_every=2)]))
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
    assert back.image_uri(str(gen.trials["trial_id"][0]), "recon").startswith("data:image/png;base64,")
    with pytest.raises(ExperimentError, match="no readable trials.parquet"):
        read_results(tmp_path / "nothing")


def test_running_study_is_readable(tmp_path):
    exp_dir = make_experiment(tmp_path, trials=[FakeTrial("beta_vae", 0, {"variant": "beta_vae", "lr": 3e-4, "beta_kl": 2.0, "latent_dim": 10}),
                                                FakeTrial("sintro", 0, {"variant": "sintro", "lr": 3e-4, "beta_kl": 2.0, "latent_dim": 10, "beta_neg": 256.0},
                                                          outcome="running", stop_at=1)])
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
    assert not list(exp_dir.glob("*.parquet")) and not list(exp_dir.glob("*.lock"))


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
    assert len(exp.trials) == 3 and len(exp.notes) == 1 and "optuna.journal could not be read" in exp.notes[0]
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


def test_s3_experiment(tmp_path, gen_dir, monkeypatch):
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
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="studies")
        for f in gen_dir.rglob("*"):
            if f.is_file() and f.suffix not in (".parquet", ".html"):
                s3.upload_file(str(f), "studies", f"runs/exp/{f.relative_to(gen_dir).as_posix()}")
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
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------
# Charts: the computed info (no rendering), then the figure's traces.


def test_non_dominated_known_points():
    x = np.array([1.0, 2.0, 2.0, 3.0, 1.0, 4.0])  # loss, lower is better
    y = np.array([0.1, 0.5, 0.5, 0.4, 0.05, 0.9])  # score, higher is better
    # (2, .5) twice: ties dominate neither; (3, .4) is dominated by (2, .5); (1, .05) by (1, .1).
    assert non_dominated(x, y).tolist() == [True, True, True, False, False, True]
    assert non_dominated(np.array([]), np.array([])).tolist() == []


def test_pareto_front_info(gen):
    info = C.pareto_front_info(gen)
    assert (info.score, info.loss) == ("mig", "rec_loss")
    t = gen.trials.set_index("trial_id")
    points = t.loc[t["outcome"].isin(["completed", "stopped", "running"])]
    assert set(info.trial_ids) == set(points.index)
    assert info.n_excluded == len(t) - len(points)  # diverged, error, pending
    x, y = np.array(info.x), np.array(info.y)
    for i in range(len(x)):  # brute force
        dominated = any(x[j] <= x[i] and y[j] >= y[i] and (x[j] < x[i] or y[j] > y[i]) for j in range(len(x)))
        assert info.on_front[i] == (not dominated)
    assert list(info.front) == sorted(info.front, key=lambda tid: t.loc[tid, "rec_loss"])
    assert all("lr:" in h and "<i>configuration</i>" in h for h in info.hover)
    only_done = C.pareto_front_info(gen, outcomes=("completed",))
    assert not any(only_done.running) and len(only_done.trial_ids) == int((t["outcome"] == "completed").sum())
    with pytest.raises(ValueError, match="score='nope'"):
        C.pareto_front_info(gen, score="nope")


def test_pareto_front_figure(gen):
    info = C.pareto_front_info(gen)
    fig = C.pareto_front_figure(info)
    names = [tr.name for tr in fig.data]
    assert names[:2] == ["dominated", "Pareto front"]
    assert set(names[2:]) == {variant_label(v) for v, f in zip(info.variants, info.on_front) if f}
    grey = fig.data[0]
    assert grey.marker.color == GREY and len(grey.x) == info.on_front.count(False)
    front_ids = [c for tr in fig.data[2:] for c in tr.customdata]
    assert sorted(front_ids) == sorted(info.front)
    for tr in fig.data[2:]:
        variant = next(v for v in VARIANT_NAMES if variant_label(v) == tr.name)
        assert tr.marker.color == C.VARIANT_COLORS[variant]
    assert fig.layout.clickmode == "event+select"


def test_parallel_coordinates(gen):
    info = C.parallel_coordinates_info(gen)
    labels = [d.label for d in info.dimensions]
    assert labels == ["variant", "lr (log)", "beta_kl (log)", "latent_dim", "tc_weight", "beta_neg", "mig", "rec_loss"]
    done = gen.trials.loc[gen.trials["outcome"].isin(["completed", "stopped"])]
    assert set(info.trial_ids) == set(done["trial_id"])
    assert info.objectives == ("mig", "rec_loss") and info.lower_is_better == (False, True)
    assert info.colors[1] == tuple(done.set_index("trial_id").loc[list(info.trial_ids), "rec_loss"])
    lr = info.dimensions[1]
    assert lr.values == pytest.approx(tuple(np.log10(done.set_index("trial_id").loc[list(info.trial_ids), "config/lr"])))
    beta_neg = info.dimensions[5]  # conditional: beta-VAE trials sit on "n/a"
    assert beta_neg.ticktext[0] == "n/a"
    assert sum(v == beta_neg.tickvals[0] for v in beta_neg.values) == int(
        done["config/beta_neg"].isna().sum())
    fig = C.parallel_coordinates_figure(info)
    assert len(fig.data) == 1 and fig.data[0].type == "parcoords" and len(fig.data[0].dimensions) == len(labels)
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["colour: mig", "colour: rec_loss"]
    assert buttons[1].args[0]["line.color"][0] == list(info.colors[1])


def test_param_importances(gen):
    info = C.param_importances_info(gen, evaluator=FAST)
    assert info.objectives == ("mig", "rec_loss") and set(info.left_out) == {"tc_weight", "beta_neg"}
    assert set(info.params) == {"variant", "lr", "beta_kl", "latent_dim"}
    assert info.n_trials == (10, 10) and info.messages == ("", "")
    for row in info.importances:
        assert sum(row) == pytest.approx(1.0) and all(v >= 0 for v in row)
    fig = C.param_importances_figure(info)
    assert [tr.name for tr in fig.data] == ["mig (10 trials)", "rec_loss (10 trials)"]
    assert list(fig.data[0].y) == list(info.params)[::-1]
    per_variant = C.param_importances_info(gen, evaluator=FAST, variant="sintro")
    assert "beta_neg" in per_variant.params and "variant" in per_variant.left_out
    few = C.param_importances_info(gen, evaluator=FAST, variant="beta_tcvae")
    assert few.n_trials == (2, 2)
    with pytest.raises(ValueError, match="variant='x'"):
        C.param_importances_info(gen, variant="x")


def test_param_importances_default_evaluator_is_deterministic(gen):
    a = C.param_importances_info(gen, objectives=["mig"])
    b = C.param_importances_info(gen, objectives=["mig"])
    assert a.evaluator == "FanovaImportanceEvaluator" and a.importances == b.importances


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


def test_t_interval_known_values():
    mean, lo, hi = t_interval(np.array([1.0, 2.0, 3.0]))
    assert mean == 2.0 and hi - mean == pytest.approx(4.302652729911275 / math.sqrt(3))  # t(0.975, 2)
    assert math.isnan(t_interval(np.array([5.0]))[1]) and t_interval(np.array([5.0]))[0] == 5.0
    assert all(math.isnan(v) for v in t_interval(np.array([np.nan])))


def test_wilson_interval_known_values():
    assert wilson_interval(0, 4) == (0.0, pytest.approx(0.4899, abs=1e-4))
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(3, 3)[1] == 1.0 and all(math.isnan(v) for v in wilson_interval(0, 0))


def test_seed_distributions_and_comparison_table(gen):
    info = C.seed_distributions_info(gen, metrics=["mig", "rec_loss"])
    done = gen.trials.loc[gen.trials["outcome"] == "completed"]
    assert info.variants == ("beta_vae", "beta_tcvae", "sintro", "sintro_tc")
    for i, m in enumerate(info.metrics):
        for j, v in enumerate(info.variants):
            assert sorted(info.values[i][j]) == sorted(done.loc[done["variant"] == v, m])
    s = next(s for s in info.summaries if s.metric == "mig" and s.variant == "beta_vae")
    assert s.n == 3 and (s.mean, s.low, s.high) == pytest.approx(t_interval(done.loc[done["variant"] == "beta_vae", "mig"]))
    assert info.method == "Student t, 95%"
    fig = C.seed_distributions_figure(info)
    assert [tr.type for tr in fig.data].count("box") == 8
    means = [tr for tr in fig.data if tr.type == "scatter"]
    assert len(means) == 8 and means[0].error_y.array[0] == pytest.approx(s.high - s.mean)
    table = C.comparison_table(gen, metrics=["mig", "rec_loss"])
    assert table["variant"].tolist() == list(info.variants) and table["n"].tolist() == [3, 2, 2, 2]
    assert table.loc[0, "mig_mean"] == pytest.approx(s.mean)


def test_correlation(gen):
    info = C.correlation_info(gen, metrics=["rec_loss", "mig", "kl", "modularity", "tc"])
    m = np.array(info.matrix)
    assert np.allclose(np.diag(m), 1.0) and np.allclose(m, m.T, equal_nan=True)
    done = gen.trials.loc[gen.trials["outcome"].isin(["completed", "stopped"])]
    expected = done[list(info.metrics)].corr(method="spearman")
    assert np.allclose(m, expected.to_numpy(), equal_nan=True)
    assert info.counts[0][0] == done["rec_loss"].notna().sum()
    assert "tc" in info.metrics and info.counts[info.metrics.index("tc")][0] == done["tc"].notna().sum()
    fig = C.correlation_figure(info)
    assert fig.data[0].type == "heatmap" and list(fig.data[0].x) == list(info.metrics)


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
    none = C.divergence_info(load_experiment(make_experiment(tmp_path, trials=default_trials()[:2])))
    assert sum(none.n_diverged) == 0
    assert any("no trial diverged" in a.text for a in C.divergence_figure(none).layout.annotations)


def test_image_panels(gen):
    info = C.image_panels_info(gen)
    front = C.pareto_front_info(gen, outcomes=("completed", "stopped"))
    best = {}
    for tid, v, y, f in zip(front.trial_ids, front.variants, front.y, front.on_front):
        if f and (v not in best or y > best[v][0]):
            best[v] = (y, tid)
    assert set(info.trial_ids) == {tid for _, tid in best.values()}
    assert info.kinds == ("recon", "traversals", "samples_std1", "samples_std3")
    for row in info.sources:
        for src in row:
            img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
            assert img.format == "PNG" and img.width > 64
    fig = C.image_panels_figure(info)
    assert [tr.type for tr in fig.data] == ["image"] * (len(info.trial_ids) * 4)
    with pytest.raises(ValueError, match="not trials"):
        C.image_panels_info(gen, trial_ids=["nope"])


def test_charts_on_an_empty_experiment(tmp_path):
    exp = load_experiment(make_experiment(tmp_path, trials=[]))
    assert len(exp.trials) == 0 and len(exp.history) == 0
    html = build_report(exp)
    assert "no trials yet" in html
    for name in ("pareto_front", "parallel_coordinates", "param_importances", "curves", "seed_distributions",
                 "correlation", "divergence", "image_panels"):
        try:
            fig = getattr(C, f"plot_{name}")(exp)
        except ValueError as exc:  # no metric at all: say so
            assert "pass score= and loss=" in str(exc) or "no" in str(exc)
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
    for chart in ("pareto", "importance", "parallel", "curves", "seeds", "correlation", "divergence", "panels"):
        assert f'id="chart-{chart}"' in html
    trials = json.loads(html.split('id="trial-data">', 1)[1].split("</script>", 1)[0].replace("<\\/", "</"))
    exp = load_experiment(gen_dir)
    assert set(trials) == set(exp.trials["trial_id"])
    for tid, t in trials.items():
        done = _by_id(exp, tid)["outcome"] == "completed"
        assert len(t["images"]) == (4 if done else 0)
        assert all(im[2].startswith("data:image/png;base64,") for im in t["images"])
    assert html.count("<tr data-trial=") == len(exp.trials)
    assert (gen_dir / "trials.parquet").is_file() and (gen_dir / "history.parquet").is_file()
    assert "mean [95% Student-t interval]" in html


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


def test_report_banner_while_running_and_after_an_interruption(gen):
    assert "The study is still running (2 trials running or pending)" in build_report(gen)
    import dataclasses

    stopped = dataclasses.replace(gen, study={**gen.study, "status": "interrupted"})
    assert "The study is interrupted with 2 trials unfinished" in build_report(stopped)
