"""Clusters: the shipped cluster configs pass Ray's own validation, a study writes to S3 (moto's
server on loopback), and on a simulated multi-node cluster (ray.cluster_utils.Cluster, fake GPUs)
trials spread over nodes, GPU trials land only on GPU nodes and fractional GPU trials are packed.
"""

from __future__ import annotations

import copy
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import simulated_cluster

from study import launch
from trainables.trainable import Resources

REPO = Path(__file__).resolve().parents[1]
MB = 1024**2


# --- cluster.yaml ---------------------------------------------------------------------------------
def validated(config: dict) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def load(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


def test_cluster_yaml_passes_rays_validation():
    prepared = validated(load("cluster.yaml"))
    assert prepared["provider"]["type"] == "aws"
    types = prepared["available_node_types"]
    head, workers = types[prepared["head_node_type"]], [t for n, t in types.items() if n != prepared["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["resources"]["CPU"] == 0  # the head runs no trials
    assert any(w["resources"].get("GPU", 0) >= 1 and w["min_workers"] == 0 and w["max_workers"] > 0 for w in workers)
    setup = " ".join(prepared["worker_setup_commands"])
    assert "pip install" in setup and "vae-study" in setup  # the project is installed on every worker


def test_onprem_yaml_passes_rays_validation():
    prepared = validated(load("cluster-onprem.yaml"))
    assert prepared["provider"]["type"] == "local"
    assert prepared["provider"]["head_ip"] and prepared["provider"]["worker_ips"]


@pytest.mark.parametrize("breakage, message", [
    (lambda c: c.update(max_worker=3), "Additional properties are not allowed ('max_worker' was unexpected)"),
    (lambda c: c["available_node_types"]["gpu_worker"]["resources"].update(GPU=0.5), "0.5 is not of type 'integer'"),
    (lambda c: c["available_node_types"]["gpu_worker"].update(min_worker=1), "'min_worker' was unexpected"),
])
def test_broken_cluster_yaml_is_rejected_with_the_validators_message(breakage, message):
    import jsonschema

    config = load("cluster.yaml")
    breakage(config)
    with pytest.raises(jsonschema.ValidationError) as info:
        validated(config)
    assert message in str(info.value)


def test_onprem_yaml_with_node_types_is_rejected():
    import click

    config = load("cluster-onprem.yaml")
    config["available_node_types"] = {"gpu": {"resources": {"GPU": 1}, "node_config": {}}}
    with pytest.raises(click.ClickException, match="available_node_types is not supported for on-premise"):
        validated(config)


# --- S3 storage against moto's server on 127.0.0.1 ------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3(monkeypatch):
    """moto's S3 server on loopback, with fake credentials and the endpoint in the environment
    (pyarrow, hence Ray Tune's storage, reads AWS_ENDPOINT_URL; trial processes inherit it)."""
    pytest.importorskip("moto")
    boto3 = pytest.importorskip("boto3")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint,
                       "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=endpoint)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.create_bucket(Bucket="studies")
            break
        except Exception:
            if time.monotonic() > deadline:
                server.kill()
                raise
            time.sleep(0.3)
    yield client
    server.terminate()
    server.wait(timeout=10)


@pytest.mark.ray
@pytest.mark.timeout(600)
def test_a_study_writes_its_results_to_s3(s3, tmp_path, monkeypatch, capsys):
    import ray

    if ray.is_initialized():  # the trials must inherit the S3 endpoint: an embedded Ray of its own
        pytest.skip("needs to start its own Ray; run it before the cluster tests")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    rc = launch.main(["--space", "beta", "--preset", "smoke", "--trials", "1", "--train-images", "256",
                      "--storage", "s3://studies/vae", "--name", "s3study", "--journal-dir", str(tmp_path)])
    assert rc == 0, capsys.readouterr()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="studies", Prefix="vae/s3study/")["Contents"]]
    names = {k.split("/")[-1] for k in keys}
    assert {"study.json", "optuna.journal", "params.json", "result.json", "trainer.pt", "recon.png"} <= names
    assert any("/checkpoint_000000/" in k for k in keys)
    record = json.loads(s3.get_object(Bucket="studies", Key="vae/s3study/study.json")["Body"].read())
    assert record["status"] == "completed" and record["journal"] == str(tmp_path / "s3study" / "optuna.journal")
    # the copy of the journal on S3 is the study
    copy_path = tmp_path / "copy.journal"
    copy_path.write_bytes(s3.get_object(Bucket="studies", Key="vae/s3study/optuna.journal")["Body"].read())
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="s3study", storage=JournalStorage(JournalFileBackend(str(copy_path))))
    assert [t.state.name for t in study.trials] == ["COMPLETE"]


@pytest.mark.ray
def test_a_missing_bucket_is_one_line_exit_2(s3, tmp_path, capsys):
    rc = launch.main(["--space", "beta", "--storage", "s3://no-such-bucket/x", "--journal-dir", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert "bucket 'no-such-bucket' does not exist" in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []


# --- a simulated multi-node cluster ---------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A CPU-less head (as in cluster.yaml), one CPU node and two nodes with one fake GPU each."""
    import ray

    names = ("cpu", "gpu_a", "gpu_b")
    workers = ({"num_cpus": 2}, {"num_cpus": 1, "num_gpus": 1}, {"num_cpus": 1, "num_gpus": 1})
    with simulated_cluster(*workers) as (c, nodes):
        ray.init(address=c.address, log_to_driver=False)
        ids = {name: node.node_id for name, node in zip(names, nodes, strict=True)}
        yield {"cluster": c, "ids": ids, "gpu_ids": {ids["gpu_a"], ids["gpu_b"]}, "tmp": tmp_path_factory.mktemp("cl")}


def light_trainable():
    """Sleeps and reports where it ran; a closure, so Ray ships it by value to the workers."""

    def light(config):
        import os as _os
        import time as _time

        import ray as _ray
        from ray import tune as _tune

        start = _time.time()
        _time.sleep(config["sleep"])
        _tune.report({"node_id": _ray.get_runtime_context().get_node_id(), "start": start, "end": _time.time(),
                      "cuda": _os.environ.get("CUDA_VISIBLE_DEVICES", "")})

    return light


def run_light(tmp: Path, name: str, *, n: int, cpus: float, gpus: float, sleep: float) -> list[dict]:
    from ray import tune

    tuner = tune.Tuner(
        tune.with_resources(light_trainable(), Resources(cpus, gpus)),
        param_space={"sleep": sleep, "i": tune.grid_search(list(range(n)))},
        run_config=tune.RunConfig(name=name, storage_path=str(tmp), verbose=0),
    )
    results = tuner.fit()
    assert not results.errors
    return [r.metrics for r in results]


@pytest.mark.ray
@pytest.mark.timeout(600)
def test_fractional_gpu_trials_are_packed_on_gpu_nodes(cluster):
    rows = run_light(cluster["tmp"], "packed", n=8, cpus=0.1, gpus=0.25, sleep=20)
    assert {r["node_id"] for r in rows} == cluster["gpu_ids"]  # never on the CPU node or the head
    for node in cluster["gpu_ids"]:
        here = [r for r in rows if r["node_id"] == node]
        assert len(here) == 4  # four quarter-GPU trials per one-GPU node
        assert max(r["start"] for r in here) < min(r["end"] for r in here)  # all four at once
        assert {r["cuda"] for r in here} == {"0"}  # they share the node's one GPU


@pytest.mark.ray
@pytest.mark.timeout(600)
def test_whole_gpu_trials_run_one_per_gpu_node(cluster):
    rows = run_light(cluster["tmp"], "whole", n=3, cpus=0.5, gpus=1, sleep=3)
    assert {r["node_id"] for r in rows} <= cluster["gpu_ids"]
    first_two = sorted(rows, key=lambda r: r["start"])[:2]
    assert {r["node_id"] for r in first_two} == cluster["gpu_ids"]


@pytest.mark.ray
@pytest.mark.timeout(900)
def test_a_real_study_runs_across_the_cluster(cluster, capsys):
    """The real trainable via the launcher: two one-GPU trials must use both GPU nodes."""
    address = cluster["cluster"].address
    rc = launch.main(["--address", address, "--space", "beta", "--preset", "smoke", "--trials", "2",
                      "--train-images", "256", "--cpus-per-trial", "1", "--gpus-per-trial", "1",
                      "--storage", str(cluster["tmp"]), "--name", "real"])
    assert rc == 0, capsys.readouterr()
    experiment = cluster["tmp"] / "real"
    finals = []
    for folder in experiment.iterdir():
        if (folder / "result.json").exists():
            finals.append(json.loads((folder / "result.json").read_text().splitlines()[-1]))
    assert len(finals) == 2 and all(r["outcome"] == "completed" for r in finals)
    assert {r["node_id"] for r in finals} == cluster["gpu_ids"]  # two nodes, both with a GPU
    assert all(r["gpu_share"] == 1.0 for r in finals)
    record = json.loads((experiment / "study.json").read_text())
    assert record["address"] and record["status"] == "completed"
