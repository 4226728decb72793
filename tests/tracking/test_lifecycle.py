"""The configuration run's lifecycle in MLflow: RUNNING from the start, real timestamps,
MLflow's conventions, dataset lineage, comparison params; KILLED on SIGTERM, then relaunched."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient

from benchmark.cli.job import run
from benchmark.tracking.params import COMPARISON_PARAMS, config_hash, data_digest
from benchmark.tracking.ui_view import AXES_METRICS, AXES_PARAMS, COMPARE_VIEW, SHARE_TAG
from tests.conftest import FAST, compose_config, quick, seed_store

RESERVED = ("mlflow.source.git.commit", "mlflow.source.name", "mlflow.user", "mlflow.runName")


def _configuration_runs(store: Path) -> tuple[MlflowClient, list]:
    client = MlflowClient(tracking_uri=f"sqlite:///{store}/mlflow.db")
    experiment = client.get_experiment_by_name("mia-bench")
    if experiment is None:
        return client, []
    runs = client.search_runs([experiment.experiment_id], "tags.config_hash LIKE '%'")
    return client, runs


def _curve(client: MlflowClient, run_id: str, key: str) -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def test_a_finished_run_spans_the_job_and_carries_lineage_and_comparison_params(
    make_config, tmp_path
):
    before = time.time() * 1000
    outcome = run(make_config(FAST, track=True), show_progress=False)
    after = time.time() * 1000
    client, runs = _configuration_runs(tmp_path / "results")
    [parent] = runs
    info = parent.info
    assert parent.info.run_id == outcome.run_id and info.status == "FINISHED"
    assert before <= info.start_time < info.end_time <= after
    history = client.get_metric_history(info.run_id, "utility/test_acc")
    assert history and all(info.start_time <= m.timestamp <= info.end_time for m in history)
    epochs = client.get_metric_history(info.run_id, "train/loss")
    assert sorted(m.step for m in epochs) == [1, 2, 3]  # FAST trains 3 epochs
    assert all(info.start_time <= m.timestamp <= info.end_time for m in epochs)
    accuracy = client.get_metric_history(info.run_id, "train/acc")
    assert len(accuracy) == 3 and all(0 <= m.value <= 1 for m in accuracy)
    targets = client.search_runs(
        [info.experiment_id], f"tags.`mlflow.parentRunId` = '{info.run_id}'"
    )
    curves = np.array([_curve(client, t.info.run_id, "train/loss") for t in targets])
    assert curves.shape == (4, 3)  # each target run: its own model's loss, epochs 1-3
    assert len(set(curves[:, 0])) == 4  # one curve per model, not the mean copied
    np.testing.assert_allclose(curves.mean(0), _curve(client, info.run_id, "train/loss"), rtol=1e-5)
    assert all(0 <= v <= 1 for t in targets for v in _curve(client, t.info.run_id, "train/acc"))
    page = f"127.0.0.1:5000/#/experiments/{info.experiment_id}/runs/{info.run_id}"
    assert "**Next:**" in outcome.summary and page in outcome.summary
    assert info.artifact_uri in outcome.summary  # where the artifacts are
    assert f"`mia-report {info.run_id} --tracking-uri sqlite:///" in outcome.summary
    tags, params = parent.data.tags, parent.data.params
    assert all(tags.get(key) for key in RESERVED)
    assert tags["mlflow.source.git.commit"] == tags["git_commit"]
    assert "seed 0" in tags["mlflow.runName"] and "4 models" in tags["mlflow.runName"]
    assert tags["mlflow.note.content"].strip()
    inputs = {d.dataset.name: d for d in parent.inputs.dataset_inputs}
    assert set(inputs) == {"synthetic-pool", "synthetic-test"}
    contexts = {d.dataset.name: d.tags[0].value for d in inputs.values()}
    assert contexts == {"synthetic-pool": "training", "synthetic-test": "evaluation"}
    assert all(d.dataset.digest for d in inputs.values())
    for key in (*COMPARISON_PARAMS, "seed", "attacker.knows_defense"):
        assert key in params, key
    assert params["defense"] == "none" and params["n_models"] == "4"
    assert not [key for key in params if key.startswith("tracking.")]
    assert tags["tracking.experiment"] == "mia-bench"
    strongest = parent.data.metrics["privacy/strongest/auc"]
    aucs = [v for k, v in parent.data.metrics.items() if k.endswith("/auc") and k.count("/") == 2]
    assert strongest == max(aucs) and tags["privacy/strongest/auc"]
    experiment = client.get_experiment(info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert json.loads(experiment.tags[SHARE_TAG]) == COMPARE_VIEW  # the UI's compare view
    assert all(key in params for key in AXES_PARAMS)
    assert all(key in parent.data.metrics for key in AXES_METRICS)
    names = {a.path for a in client.list_artifacts(info.run_id)}
    assert "requirements-installed.txt" in names


def test_one_changed_byte_of_a_dataset_file_changes_its_digest_and_the_config_hash(tmp_path):
    path = tmp_path / "data.npz"
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 4)).astype(np.float32), rng.integers(0, 2, 50)
    np.savez(path, x=x, y=y)  # uncompressed: a changed byte is a changed value, still loadable
    config = {"data": {"name": "npz", "path": str(path)}, "seed": 0}
    digest, hashed = data_digest(config["data"]), config_hash(config)
    raw = bytearray(path.read_bytes())
    raw[raw.find(x.tobytes())] ^= 1  # the first byte of x's values
    path.write_bytes(bytes(raw))
    assert data_digest(config["data"]) != digest and config_hash(config) != hashed


def _cli(args: list[str], cwd: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "benchmark.cli", *args]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_a_job_killed_in_training_is_killed_in_mlflow_and_a_relaunch_finishes_it(
    tmp_path, empty_mlflow_db
):
    """The job is killed as a user's is (SIGTERM to ``mia-bench``); the relaunch runs the same
    configuration (fewer epochs) through the same job code, in this process."""
    store = tmp_path / "results"
    seed_store(store, empty_mlflow_db)
    args = [
        *quick("training.epochs=400"),
        f"tracking.uri=sqlite:///{store}/mlflow.db",  # as compose_config(..., store) sets them
        f"tracking.artifact_location={store}/mlartifacts",
        f"training.store={store}/models",
    ]
    job = _cli(args, tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline and not _configuration_runs(store)[1]:
        assert job.poll() is None, job.stdout.read()
        time.sleep(0.5)
    [opened] = _configuration_runs(store)[1]
    assert opened.info.status == "RUNNING"
    client = _configuration_runs(store)[0]
    while time.time() < deadline and not client.get_metric_history(
        opened.info.run_id, "train/loss"
    ):
        assert job.poll() is None, job.stdout.read()
        time.sleep(0.2)
    job.send_signal(signal.SIGTERM)
    assert job.wait(timeout=60) == 130
    assert "Traceback" not in job.stderr.read()
    _, [killed] = _configuration_runs(store)
    assert killed.info.status == "KILLED" and "interrupted" in killed.data.tags["killed_reason"]
    trained = client.get_metric_history(killed.info.run_id, "train/loss")
    assert 1 <= len(trained) < 400  # per-epoch metrics up to the kill
    relaunch = run(compose_config(quick(), store), show_progress=False)  # fewer epochs
    assert relaunch.failure is None and relaunch.run_id not in (None, killed.info.run_id)
    _, runs = _configuration_runs(store)
    assert sorted(r.info.status for r in runs) == ["FINISHED", "KILLED"]


def test_a_backend_that_cannot_work_is_refused_before_training():
    import pytest

    from benchmark.errors import ConfigError
    from benchmark.tracking.backend import check_backend

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cases = [
        ("sqlite:///x.db", "x" * 1000, "tracking.experiment must have"),
        (f"http://127.0.0.1:{port}", "mia-bench", "cannot reach the MLflow server"),
        ("postgresql+nodriver://u@h/db", "mia-bench", "needs the Python package 'nodriver'"),
    ]
    for uri, experiment, message in cases:
        with pytest.raises(ConfigError, match=message):
            check_backend(uri, experiment)
