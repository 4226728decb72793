"""A result is never lost because the tracker failed: a real ``mlflow server`` killed mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from benchmark.tracking.spool import main as replay_main
from tests.conftest import (
    REPO,
    free_port,
    quick,
    seed_store,
    start_mlflow_server,
    stop_mlflow_server,
    wait_for_server,
)


def _server(folder: Path, port: int) -> subprocess.Popen:
    server = start_mlflow_server(folder, port)
    try:
        wait_for_server(server, f"http://127.0.0.1:{port}", folder / "server.log")
    except BaseException:
        _stop(server)
        raise
    return server


def _stop(server: subprocess.Popen) -> None:
    stop_mlflow_server(server, signal.SIGKILL)  # killed outright, as a crashed server


def _runs(uri: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("mia-bench")
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], "tags.config_hash LIKE '%'")


def test_a_killed_server_loses_nothing_and_the_spool_replays_exactly_once(
    tmp_path, empty_mlflow_db
):
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    seed_store(tmp_path, empty_mlflow_db, "server.db")
    server = _server(tmp_path, port)
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"}
    store = [f"tracking.uri={uri}", f"tracking.artifact_location={tmp_path}/art"]
    args = [*quick("training.epochs=200"), *store]
    job = subprocess.Popen(
        [sys.executable, "-m", "benchmark.cli", *args],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not _runs(uri):
            assert job.poll() is None, job.communicate()
            time.sleep(0.3)
        assert _runs(uri)[0].info.status == "RUNNING"
        _stop(server)  # mid-run: the job is training
        out, err = job.communicate(timeout=300)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, err
    lines = out.strip().splitlines()
    assert "tracking failed" in lines[-2] and lines[-1].startswith("upload it with: mia-replay")
    [folder] = list((tmp_path / "results" / "spool").iterdir())
    record = json.loads((folder / "run.json").read_text())["run"]
    assert record["status"] == "FINISHED" and len(record["children"]) == 4
    keys = {m[0] for m in record["metrics"]}
    assert "utility/test_acc" in keys and "privacy/strongest/auc" in keys
    assert all(m[2] > 0 for m in record["metrics"])  # real timestamps
    assert (folder / "artifacts" / "signals.npz").exists()
    server = _server(tmp_path, port)
    try:
        assert replay_main([str(folder), "--tracking-uri", uri]) == 0
        assert replay_main([str(folder), "--tracking-uri", uri]) == 0
        [run] = _runs(uri)  # the cut-off original is replaced, the second replay skipped
        assert run.info.status == "FINISHED" and run.data.tags["run_uid"] == record["uid"]
        assert run.data.metrics["utility/test_acc"] == next(
            m[1] for m in record["metrics"] if m[0] == "utility/test_acc"
        )
        client = MlflowClient(tracking_uri=uri)
        children = client.search_runs(
            [run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'"
        )
        assert len(children) == 4
        assert "signals.npz" in {a.path for a in client.list_artifacts(run.info.run_id)}
    finally:
        _stop(server)
