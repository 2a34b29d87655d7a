"""study.result_logs: a trial that starts again keeps every result it reported, on real Ray Tune
trials and storage folders (the loggers run in the driver: a local Ray gives them its session's
staging folder, no trial runs)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import local_ray_instance
from ray.train import Checkpoint
from ray.train._internal.session import _TrainingResult
from ray.train._internal.storage import StorageContext
from ray.tune.experiment import Trial
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from study.result_logs import CsvResults, JsonResults

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    with local_ray_instance() as ray:
        yield ray


def json_epochs(path: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in path.read_text().splitlines()]


def csv_epochs(path: Path) -> list[int]:
    with path.open() as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


LOGGERS = {  # file, how to read its epochs, the project's logger, Ray's own
    "json": ("result.json", json_epochs, JsonResults, JsonLoggerCallback),
    "csv": ("progress.csv", csv_epochs, CsvResults, CSVLoggerCallback),
}


def a_trial(tmp_path: Path) -> Trial:
    trial = Trial("train_vae", config={}, stub=True,
                  storage=StorageContext(storage_path=str(tmp_path / "storage"),
                                         experiment_dir_name=f"{tmp_path.parent.name}-{tmp_path.name}"))
    # as Tune restores a trial's folder; the experiment's name is the test's own, since the local
    # staging folder is per Ray session and experiment name
    trial.relative_logdir = trial.storage.trial_dir_name = "trial_0000"
    trial.init_local_path()  # Tune makes the folder when it adds the trial
    return trial


def checkpoint(trial: Trial, tmp_path: Path, epoch: int) -> None:
    """What Tune records when the trainable reports a checkpoint with its result."""
    folder = tmp_path / f"checkpoint_{epoch}"
    folder.mkdir()
    trial.run_metadata.checkpoint_manager.register_checkpoint(
        _TrainingResult(checkpoint=Checkpoint.from_directory(str(folder)), metrics={"epoch": epoch}))


def sync(trial: Trial, name: str) -> None:
    """What the driver's background sync does: the storage path gets the local file as it is now."""
    remote = Path(trial.storage.trial_fs_path, name)
    remote.parent.mkdir(parents=True, exist_ok=True)
    remote.write_bytes(Path(trial.local_path, name).read_bytes())


def started_again(logger, trial: Trial, tmp_path: Path, name: str, way: str) -> None:
    """Through the hooks Tune calls, in one driver: epoch 1, a sync, epoch 2 with its checkpoint,
    then before the next sync the trial stops -- paused at a rung, or failed (a lost node) -- and
    starts again from that checkpoint for epoch 3."""
    logger.on_trial_start(0, [trial], trial)
    logger.on_trial_result(1, [trial], trial, {"epoch": 1})
    sync(trial, name)
    logger.on_trial_result(2, [trial], trial, {"epoch": 2})
    checkpoint(trial, tmp_path, 2)
    if way == "failed":
        logger.on_trial_error(3, [trial], trial)
    logger.on_trial_start(3, [trial], trial)
    logger.on_trial_result(4, [trial], trial, {"epoch": 3})
    logger.on_trial_complete(5, [trial], trial)


@pytest.mark.parametrize("way", ["paused", "failed"])
@pytest.mark.parametrize("kind", LOGGERS)
def test_a_trial_started_again_keeps_the_results_it_reported_after_the_last_sync(tmp_path, kind, way):
    name, epochs, ours, rays = LOGGERS[kind]
    trial = a_trial(tmp_path / "ours")
    started_again(ours(), trial, tmp_path / "ours", name, way)
    assert epochs(Path(trial.local_path, name)) == [1, 2, 3]
    # Ray's own loggers copy the stale storage copy over theirs when they open the file again: the
    # JSON logger at every start, the CSV logger after a failure. Epoch 2 is gone.
    trial = a_trial(tmp_path / "rays")
    started_again(rays(), trial, tmp_path / "rays", name, way)
    lost = kind == "json" or way == "failed"
    assert epochs(Path(trial.local_path, name)) == ([1, 3] if lost else [1, 2, 3])


@pytest.mark.parametrize("kind", LOGGERS)
def test_a_resumed_study_continues_the_stored_file(tmp_path, kind):
    """A new driver has no local copy: it takes the storage copy and appends to it."""
    name, epochs, ours, _ = LOGGERS[kind]
    first = a_trial(tmp_path)
    logger = ours()
    logger.on_trial_start(0, [first], first)
    for epoch in (1, 2):
        logger.on_trial_result(epoch, [first], first, {"epoch": epoch})
    logger.on_trial_complete(3, [first], first)
    sync(first, name)  # the first driver's last sync
    Path(first.local_path, name).unlink()  # the new driver's staging folder is empty
    resumed = a_trial(tmp_path)
    checkpoint(resumed, tmp_path, 2)
    logger = ours()
    logger.on_trial_start(0, [resumed], resumed)
    logger.on_trial_result(1, [resumed], resumed, {"epoch": 3})
    logger.on_trial_complete(2, [resumed], resumed)
    assert epochs(Path(resumed.local_path, name)) == [1, 2, 3]
