"""`python -m study.launch` on a real local Ray: smoke studies end to end, the results folder,
the Optuna journal, divergence told as FAIL, resume, and one-line errors for bad input.

One Ray instance (2 CPUs, 100 MB object store) serves the whole module: the launcher reuses a
Ray the caller has already started. Trials use 0.5 CPU on a 512-image subset for one epoch.
"""

from __future__ import annotations

import json
import math
import socket
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from conftest import local_ray_instance

import search_spaces
from study import cluster, launch
from study import settings as cli
from study.presets import PRESETS
from study.progress import ProgressLine
from study.scheduler import each_best, nondominated_order
from study.searcher import StudySearch
from trainables.trainable import split_config
from trainables.vocabulary import VARIANT_NAMES, metric_keys

REPO = Path(__file__).resolve().parents[1]
OBJECTIVE_KEYS = ("mig", "rec_loss")
PER_RESULT_KEYS = ("epoch", "outcome", "node_ip", "node_id", "hostname", "gpu_share", "metrics_epoch")

optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_ray():
    """One small local Ray for the module; trial processes import the project from REPO."""
    with local_ray_instance() as ray:
        yield ray


def smoke(tmp: Path, *extra: str) -> list[str]:
    return ["--preset", "smoke", "--storage", str(tmp), "--train-images", "256", *extra]


def asked(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that were asked; a WAITING one is a fixed point queued for after the budget."""
    return [t for t in study.trials if t.state != optuna.trial.TrialState.WAITING]


def journal_study(experiment: Path, name: str) -> optuna.Study:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(experiment / "optuna.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def trial_folders(experiment: Path) -> list[Path]:
    return sorted(p for p in experiment.iterdir() if p.is_dir() and (p / "params.json").exists())


def results_of(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "result.json").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def compare_study(local_ray, tmp_path_factory):
    """The `compare` space, four trials (its fixed points: one per variant), one epoch each:
    run once, inspected by several tests."""
    tmp = tmp_path_factory.mktemp("compare")
    start = time.monotonic()
    rc = launch.main(smoke(tmp, "--space", "compare", "--name", "cmp", "--trials", "4"))
    return {"rc": rc, "experiment": tmp / "cmp", "storage": tmp, "wall": time.monotonic() - start}


# --- end to end ----------------------------------------------------------------------------------
@pytest.mark.ray
@pytest.mark.timeout(600)
def test_compare_smoke_study_completes_with_every_trial_and_key(compare_study):
    assert compare_study["rc"] == 0
    experiment = compare_study["experiment"]
    record = json.loads((experiment / "study.json").read_text())
    assert record["status"] == "completed" and record["space"] == "compare" and record["preset"] == "smoke"
    assert record["objectives"] == [{"metric": "mig", "mode": "max"}, {"metric": "rec_loss", "mode": "min"}]
    assert {"python", "torch", "ray", "optuna", "numpy", "scikit-learn"} <= set(record["versions"])
    assert record["counts"]["completed"] == 4 and record["settings"]["train_images"] == 256

    folders = trial_folders(experiment)
    assert len(folders) == 4
    for folder in folders:
        config = json.loads((folder / "params.json").read_text())
        assert {"variant", "seed", "config_group", "optuna_number", "dataset", "epochs"} <= set(config)
        rows = results_of(folder)
        expected = (set(OBJECTIVE_KEYS) | set(PER_RESULT_KEYS)
                    | set(metric_keys(has_factors=True, latent_dim=config["latent_dim"])))
        for row in rows:
            assert expected <= set(row), f"{folder.name} misses {expected - set(row)}"
            assert all(math.isfinite(row[k]) for k in OBJECTIVE_KEYS)
            assert row["gpu_share"] == 0.0
        assert rows[-1]["outcome"] == "completed" and rows[-1]["epoch"] == 1
        images = {"recon.png", "samples_std1.png", "samples_std3.png", "traversals.png"}
        assert images <= {p.name for p in (folder / "images").iterdir()}
        last_checkpoint = sorted(folder.glob("checkpoint_*"))[-1]
        assert images <= {p.name for p in (last_checkpoint / "images").iterdir()}
        assert (last_checkpoint / "trainer.pt").exists()


@pytest.mark.ray
def test_optuna_journal_holds_the_same_trials_complete(compare_study):
    experiment = compare_study["experiment"]
    study = journal_study(experiment, "cmp")
    assert [t.state for t in asked(study)] == [optuna.trial.TrialState.COMPLETE] * 4
    by_number = {t.number: t for t in study.trials}
    for folder in trial_folders(experiment):
        config = json.loads((folder / "params.json").read_text())
        trial = by_number[config["optuna_number"]]
        final = results_of(folder)[-1]
        assert trial.values == pytest.approx([final["mig"], final["rec_loss"]])
        assert all(config[k] == v for k, v in trial.params.items())
        assert trial.user_attrs["seed"] == config["seed"]


@pytest.mark.ray
def test_compare_trains_every_variant(compare_study):
    configs = [json.loads((f / "params.json").read_text()) for f in trial_folders(compare_study["experiment"])]
    assert sorted(c["variant"] for c in configs) == sorted(VARIANT_NAMES)


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_seeds_repeat_each_configuration(local_ray, tmp_path):
    assert launch.main(smoke(tmp_path, "--space", "compare", "--name", "seeds", "--trials", "4", "--seeds", "2")) == 0
    configs = [json.loads((f / "params.json").read_text()) for f in trial_folders(tmp_path / "seeds")]
    groups: dict[int, list[dict]] = {}
    for c in configs:
        groups.setdefault(c["config_group"], []).append(c)
    # compare's first two fixed points (one variant each), each with seeds 0 and 1, one after the other
    assert sorted(m[0]["variant"] for m in groups.values()) == ["beta_tcvae", "beta_vae"]
    for members in groups.values():
        assert sorted(c["seed"] for c in members) == [0, 1]
        strip = lambda c: {k: v for k, v in c.items() if k not in ("seed", "optuna_number")}  # noqa: E731
        assert strip(members[0]) == strip(members[1])


@pytest.mark.ray
def test_resume_with_another_space_or_a_missing_study_is_refused(compare_study, capsys):
    storage = str(compare_study["storage"])
    for argv, needle in [
        (["--resume", "--name", "cmp", "--storage", storage, "--space", "beta"], "was started with --space compare"),
        (["--resume", "--name", "nothing", "--storage", storage], "no study 'nothing'"),
        (["--space", "compare", "--name", "cmp", "--storage", storage], "already exists: pass --resume"),
    ]:
        before = sorted(p.name for p in compare_study["experiment"].iterdir())
        assert launch.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and "\n" not in err and "Traceback" not in err
        assert sorted(p.name for p in compare_study["experiment"].iterdir()) == before


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_resuming_a_finished_study_changes_nothing(compare_study, capsys):
    """Issue 14: a finished study resumed again stays byte for byte as it is (no Ray is started)
    and says so; --retry-failed with nothing failed says that too."""
    experiment = compare_study["experiment"]
    before = {p: p.read_bytes() for p in experiment.rglob("*") if p.is_file()}
    for extra in ([], ["--retry-failed"]):
        assert launch.main(["--resume", "--name", "cmp", "--storage", str(compare_study["storage"]), *extra]) == 0
        out = capsys.readouterr().out
        assert "study cmp is finished (4 completed): nothing to do" in out
    assert {p: p.read_bytes() for p in experiment.rglob("*") if p.is_file()} == before
    assert [t.state.name for t in asked(journal_study(experiment, "cmp"))] == ["COMPLETE"] * 4


@pytest.mark.ray
def test_every_record_of_a_finished_study_agrees_and_files_are_readable(compare_study):
    """study.json's per-trial record, Optuna's states and attributes and Ray's state say the same;
    the launcher's files are 0644 whatever the umask (issue 14: study.json was 0600)."""
    from study.ray_state import read_ray_trials

    experiment = compare_study["experiment"]
    record = json.loads((experiment / "study.json").read_text())
    ray_trials = read_ray_trials(experiment)
    optuna_trials = {t.number: t for t in journal_study(experiment, "cmp").trials}
    assert len(record["trials"]) == 4 and record["counts"]["completed"] == 4
    for entry in record["trials"]:
        trial = optuna_trials[entry["optuna_number"]]
        assert entry["outcome"] == "completed" and entry["ray_status"] == "TERMINATED"
        assert ray_trials[entry["trial_id"]].status == "TERMINATED"
        assert trial.state.name == "COMPLETE" and trial.user_attrs["outcome"] == "completed"
        assert entry["node_id"] == trial.user_attrs["node_id"] and entry["node"].endswith(entry["node_id"][:6])
    for name in ("study.json", "ray.log"):
        assert (experiment / name).stat().st_mode & 0o777 == 0o644, name
    assert not (experiment / "study.lock").exists()  # released at the end


@pytest.mark.ray
@pytest.mark.timeout(600)
def test_a_diverged_trial_is_recorded_and_told_to_optuna_as_failed(local_ray, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(search_spaces.SPACES, "diverging", diverging_space)
    rc = launch.main(smoke(tmp_path, "--space", "diverging", "--name", "div", "--trials", "2",
                           "--max-concurrent", "1", "--max-failures", "1"))
    out = capsys.readouterr().out
    assert rc == 0
    assert "failed: Diverged" in out and "1 diverged" in out
    experiment = tmp_path / "div"
    states = {t.number: t.state for t in asked(journal_study(experiment, "div"))}
    assert states == {0: optuna.trial.TrialState.FAIL, 1: optuna.trial.TrialState.COMPLETE}
    record = json.loads((experiment / "study.json").read_text())
    assert record["counts"]["diverged"] == 1 and record["counts"]["completed"] == 1
    for folder in trial_folders(experiment):
        config = json.loads((folder / "params.json").read_text())
        rows = results_of(folder)
        if config["optuna_number"] == 0:
            last = rows[-1]
            assert last["outcome"] == "diverged" and last["diverged_epoch"] == 1
            assert "non-finite loss" in last["error"]
            assert last["mig"] == 0.0 and last["rec_loss"] == 1e9  # finite sentinels
            keys = set(OBJECTIVE_KEYS) | set(PER_RESULT_KEYS) | set(metric_keys(has_factors=True, latent_dim=6))
            assert keys <= set(last)
            # the retry (max_failures=1) saw the diverged marker, repeated that result and trained no more
            assert [r["outcome"] for r in rows].count("running") == 0
            assert {r["diverged_epoch"] for r in rows if r["outcome"] == "diverged"} == {1}
        else:
            assert rows[-1]["outcome"] == "completed"


def diverging_space(trial: optuna.Trial) -> dict:
    """Trial 0 really diverges (Soft-Intro, huge learning rate, tiny beta_neg: as in
    tests/test_trainer.py); trial 1 is a plain beta-VAE that completes."""
    if trial.number == 0:
        return {"variant": "sintro", "lr": 5.0, "beta_neg": 1e-3, "alpha": 8.0, "check_every": 1, "latent_dim": 6}
    trial.suggest_float("lr", 1e-4, 1e-3, log=True)
    return {"variant": "beta_vae", "latent_dim": 6}


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("space", ["beta", "beta_tc", "sintro", "sintro_tc"])
def test_smoke_study_of_each_space(local_ray, tmp_path, space):
    assert launch.main(smoke(tmp_path, "--space", space, "--name", space, "--trials", "2")) == 0
    experiment = tmp_path / space
    assert len(trial_folders(experiment)) == 2
    assert [t.state.name for t in asked(journal_study(experiment, space))] == ["COMPLETE"] * 2
    for folder in trial_folders(experiment):
        assert results_of(folder)[-1]["outcome"] == "completed"


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(900)
def test_single_objective_with_asha(local_ray, tmp_path):
    rc = launch.main(smoke(tmp_path, "--space", "beta", "--name", "asha", "--trials", "4", "--epochs", "2",
                           "--objective", "single", "--sampler", "random", "--scheduler", "asha"))
    assert rc == 0
    study = journal_study(tmp_path / "asha", "asha")
    assert len(study.directions) == 1
    assert {t.state.name for t in asked(study)} <= {"COMPLETE", "PRUNED"}  # a stopped trial is PRUNED
    record = json.loads((tmp_path / "asha" / "study.json").read_text())
    assert record["objectives"] == [{"metric": "mig", "mode": "max"}] and record["scheduler"] == "asha"


def asha_probe_space(trial: optuna.Trial) -> dict:
    """Trial 0 learns (lr 1e-3); the others barely move (lr 1e-6)."""
    return {"variant": "beta_vae", "latent_dim": 6, "lr": 1e-3 if trial.number == 0 else 1e-6}


@pytest.mark.ray
@pytest.mark.timeout(600)
def test_mo_asha_stops_trials_at_a_rung_and_every_record_says_so(local_ray, tmp_path, monkeypatch):
    monkeypatch.setitem(search_spaces.SPACES, "asha_probe", asha_probe_space)
    rc = launch.main(smoke(tmp_path, "--space", "asha_probe", "--name", "mo", "--trials", "3", "--epochs", "2",
                           "--max-concurrent", "1", "--train-images", "128"))
    assert rc == 0
    experiment = tmp_path / "mo"
    record = json.loads((experiment / "study.json").read_text())
    assert record["scheduler"] == "asha"  # 3 trials, 1 at a time: the default for a multi-objective study
    rows = {json.loads((f / "params.json").read_text())["optuna_number"]: results_of(f)
            for f in trial_folders(experiment)}
    assert all(r["metrics_epoch"] == r["epoch"] for runs in rows.values() for r in runs)  # fresh at the rung
    # The rung's decision, from what the trials reported there: the top 3 // 3 = 1 by non-dominated
    # order, and each objective's best (keep_extremes). The top one is an end of the front, so at
    # most two go on and at least one stops.
    costs = np.array([[-rows[n][0]["mig"], rows[n][0]["rec_loss"]] for n in range(3)])
    order = nondominated_order(costs)
    promoted = {order[0], *each_best(costs, order)}
    assert 0 in promoted and len(promoted) <= 2  # trial 0 has the best reconstruction by far
    assert record["counts"]["completed"] == len(promoted) and record["counts"]["stopped"] == 3 - len(promoted)
    for number, runs in rows.items():
        assert [r["epoch"] for r in runs] == ([1, 2] if number in promoted else [1])
    study = journal_study(experiment, "mo")
    assert [(t.state.name, t.user_attrs.get("stopped_at_epoch")) for t in asked(study)] == [
        ("COMPLETE", None) if n in promoted else ("PRUNED", 1) for n in range(3)]
    trials = pd.read_parquet(experiment / "trials.parquet")
    assert sorted(zip(trials["outcome"], trials["epochs"])) == sorted(
        ("completed", 2) if n in promoted else ("stopped", 1) for n in range(3))


STATE_KEYS = {"pid", "time_this_iter_s", "time_total_s", "time_since_restore", "timestamp", "date", "trial_id",
              "epoch_time_s", "images_per_s", "checkpoint_dir_name", "iterations_since_restore", "hostname",
              "node_ip", "node_id", "experiment_tag"}


@pytest.mark.ray
@pytest.mark.timeout(900)
def test_a_reused_actor_gives_each_trial_the_results_of_a_fresh_process(local_ray, tmp_path):
    """Two different trials one after the other, in one reused process and in fresh ones: the same
    numbers to the last bit (everything but times and process ids)."""
    runs = {}
    for flag in ("--reuse-actors", "--no-reuse-actors"):
        name = flag.removeprefix("--")
        assert launch.main(smoke(tmp_path, "--space", "beta_tc", "--name", name, "--trials", "2",
                                 "--max-concurrent", "1", "--train-images", "128", "--sampler", "random",
                                 flag)) == 0
        params = [json.loads((f / "params.json").read_text()) for f in trial_folders(tmp_path / name)]
        assert params[0]["lr"] != params[1]["lr"]  # two different trials
        runs[name] = {p["optuna_number"]: results_of(f) for p, f in zip(params, trial_folders(tmp_path / name))}
    reused, fresh = runs["reuse-actors"], runs["no-reuse-actors"]
    assert len({rows[-1]["pid"] for rows in reused.values()}) == 1  # both trials in one process
    assert len({rows[-1]["pid"] for rows in fresh.values()}) == 2
    for number in (0, 1):
        for a, b in zip(reused[number], fresh[number], strict=True):
            a, b = ({k: v for k, v in r.items() if k not in STATE_KEYS} for r in (a, b))
            assert a == b


# --- the mechanism that makes Optuna record FAIL ---------------------------------------------------
def test_searcher_tells_fail_for_a_raise_and_for_a_diverged_result_a_scheduler_stopped():
    def space(trial):
        trial.suggest_float("x", 0, 1)

    search = StudySearch(space=space, metric=["mig", "rec_loss"], mode=["max", "min"])
    for tid in ("raised", "stopped", "fine"):
        search.suggest(tid)
    # Ray, after the trainable raised: error=True and no result -> stock OptunaSearch tells FAIL
    search.on_trial_complete("raised", result=None, error=True)
    # ASHA stopped the trial on its diverged result: without the override this were COMPLETE
    search.on_trial_complete("stopped", result={"mig": 0.0, "rec_loss": 1e9, "outcome": "diverged"})
    search.on_trial_complete("fine", result={"mig": 0.3, "rec_loss": 50.0, "outcome": "completed"})
    states = [t.state.name for t in search._ot_study.trials]
    assert states == ["FAIL", "FAIL", "COMPLETE"]


def test_a_nan_objective_would_leave_the_trial_running():
    """Why the sentinels are finite: the stock searcher swallows Optuna's refusal of NaN."""
    from ray.tune.search.optuna import OptunaSearch

    def space(trial):
        trial.suggest_float("x", 0, 1)

    search = OptunaSearch(space=space, metric=["mig", "rec_loss"], mode=["max", "min"])
    search.suggest("t")
    search.on_trial_complete("t", result={"mig": math.nan, "rec_loss": 1.0})
    assert search._ot_study.trials[0].state.name == "RUNNING"


def test_orphans_of_a_killed_driver_are_failed_and_their_seed_slots_queued_again():
    from study.searcher import SeededSpace, fail_orphans

    study = optuna.create_study(directions=["maximize", "minimize"])
    space = SeededSpace("beta", seeds=2, base_seed=0)
    asked = []
    for _ in range(3):  # trials 0, 1 (a configuration's two seeds) and 2, then the driver dies
        trial = study.ask()
        space(trial)
        asked.append(trial)
    study.tell(asked[0], [0.1, 10.0])
    # Ray's state still knows trial 1 (it resumes); trial 2 was asked but never recorded by Ray
    assert fail_orphans(study, known={1}, requeue=True) == [2]
    assert study.trials[2].state.name == "FAIL" and study.trials[1].state.name == "RUNNING"
    again = [study.ask() for _ in range(2)]  # its waiting seed-1 copy, then its own slot again
    configs = [space(t) for t in again]
    assert all(t.params == asked[2].params for t in again)
    assert sorted(c["seed"] for c in configs) == [0, 1] and {c["config_group"] for c in configs} == {2}
    # at the end of a finished run every RUNNING trial is an orphan
    assert sorted(fail_orphans(study)) == [1, *(t.number for t in again)]


# --- configuration, presets, progress ------------------------------------------------------------
def test_launcher_lists_the_data_packages_data_sets():
    from trainables.data import DATASETS

    assert cli.DATASETS == DATASETS


def test_trial_config_rejects_unknown_keys():
    train, trial = split_config({"variant": "sintro", "lr": 1e-3, "metrics_every": 2, "seed": 3})
    assert train.variant == "sintro" and train.seed == 3 and trial["metrics_every"] == 2
    with pytest.raises(ValueError, match=r"unknown trial config key\(s\) \['lr_rate'\]"):
        split_config({"lr_rate": 1e-3})


def args_of(*argv):
    return cli.parse_args(["--space", "beta", *argv])


def test_preset_is_chosen_by_gpu_visibility_and_flags_override_it():
    settings, notes = cli.resolve(args_of(), gpu_visible=False)
    assert settings.preset == "cpu" and any("preset: cpu" in n for n in notes)
    assert settings.trials == PRESETS["cpu"].trials and settings.gpus_per_trial == 0
    settings, notes = cli.resolve(args_of("--address", "auto"), gpu_visible=True)
    assert settings.preset == "full" and settings.gpus_per_trial == PRESETS["full"].gpus_per_trial
    settings, _ = cli.resolve(args_of("--preset", "full", "--epochs", "3", "--seeds", "1", "--trials", "5"),
                              gpu_visible=False)
    assert (settings.epochs, settings.seeds, settings.trials) == (3, 1, 5)
    assert settings.gpus_per_trial == 0  # no GPU visible on an embedded Ray: CPU fallback
    seeds = next(s for s in range(3, 10) if PRESETS["cpu"].trials % s)  # one that does not divide the preset's
    settings, notes = cli.resolve(args_of("--seeds", str(seeds)), gpu_visible=False)
    assert settings.trials % seeds == 0 and any("rounded up" in n for n in notes)


def test_objectives_are_declared_once():
    multi, _ = cli.resolve(args_of(), gpu_visible=False)
    assert multi.objectives == [("mig", "max"), ("rec_loss", "min")]
    single, _ = cli.resolve(args_of("--objective", "single", "--score", "beta_vae"), gpu_visible=False)
    assert single.objectives == [("beta_vae", "max")]
    faces, _ = cli.resolve(args_of("--dataset", "ukiyoe"), gpu_visible=False)
    assert faces.objectives == [("gaussian_tc", "min"), ("rec_loss", "min")]


class FakeTrial:
    def __init__(self, number, status, result=None):
        self.config, self.status, self.last_result = {"optuna_number": number}, status, result
        self.trial_id, self.path = str(number), f"/x/trial_{number}"


def test_progress_line_prints_only_changes(capsys):
    line = ProgressLine([("mig", "max"), ("rec_loss", "min")], total=3)
    trials = [FakeTrial(0, "RUNNING"), FakeTrial(1, "PENDING")]
    line.on_step_end(0, trials)
    line.on_step_end(1, trials)
    trials = [FakeTrial(0, "TERMINATED", {"mig": 0.2, "rec_loss": 40.0, "outcome": "completed"}),
              FakeTrial(1, "ERROR", {"mig": 0.0, "rec_loss": 1e9, "outcome": "diverged", "diverged_epoch": 2}),
              FakeTrial(2, "RUNNING")]
    line.on_step_end(2, trials)
    line.on_trial_error(2, trials, trials[1])
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3
    assert "0/3 finished (0 diverged, 0 errors), 1 running" in out[0]
    assert "2/3 finished (1 diverged, 0 errors), 1 running, 0 to go | best mig 0.2 (#0), rec_loss 40 (#0)" in out[1]
    assert "trial #1 failed: diverged at epoch 2" in out[2]


# --- bad input: one line, exit code 2, nothing written --------------------------------------------
# Every refusal of the launcher (and the other tools) is in tests/bad_inputs.py, run by
# tests/test_reliability.py; here: the address check's timing and `auto` without a cluster.
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(60)
def test_an_address_that_does_not_answer_fails_fast(tmp_path, capsys, monkeypatch):
    from study import nodes

    monkeypatch.chdir(tmp_path)
    start = time.monotonic()
    assert launch.main(["--space", "beta", "--address", f"127.0.0.1:{closed_port()}"]) == 2
    assert time.monotonic() - start < cluster.ADDRESS_TIMEOUT_S + 5
    err = capsys.readouterr().err.strip()
    assert "nothing answers at 127.0.0.1" in err and "\n" not in err
    # `auto` without any cluster (no RAY_ADDRESS, no ray_current_cluster, no raylet here): says so at once
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(nodes.tempfile, "gettempdir", lambda: str(tmp_path / "no-ray"))
    monkeypatch.setattr(nodes, "local_gcs_addresses", lambda: set())
    assert launch.main(["--space", "beta", "--address", "auto"]) == 2
    assert "found no running Ray cluster" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_auto_skips_a_stale_cluster_file_and_refuses_two_clusters(tmp_path, monkeypatch):
    """`auto` as Ray looks: a ray_current_cluster naming a stopped cluster is skipped with a note;
    two running clusters are refused (which one was meant?)."""
    from study import nodes

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{closed_port()}")
    monkeypatch.setattr(nodes.tempfile, "gettempdir", lambda: str(tmp_path))
    with socket.socket() as a, socket.socket() as b:
        for s in (a, b):
            s.bind(("127.0.0.1", 0))
            s.listen()
        one, two = (f"127.0.0.1:{s.getsockname()[1]}" for s in (a, b))
        monkeypatch.setattr(nodes, "local_gcs_addresses", lambda: {one})
        address, notes = nodes.resolve_address("auto")
        assert address == one and "nothing answers" in notes[0] and "ignored" in notes[0]
        monkeypatch.setattr(nodes, "local_gcs_addresses", lambda: {one, two})
        with pytest.raises(nodes.ClusterError, match="found 2 Ray clusters on this machine"):
            nodes.resolve_address("auto")
