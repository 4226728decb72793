"""Sweeps end to end, as a user launches them: parallel workers, a real MLflow server, a sweep
killed and relaunched, a diverging job, and the same numbers whichever launcher ran them.

Every training run uses the FAST configuration with two attacks (:func:`tests.conftest.quick`);
each sweep is a subprocess (``python -m benchmark.cli -m ...``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.entities import Run, ViewType
from mlflow.tracking import MlflowClient

from benchmark.cli.job import run
from tests.conftest import (
    REPO,
    free_port,
    quick,
    run_cli,
    seed_store,
    start_mlflow_server,
    stop_mlflow_server,
    wait_for_server,
)

pytestmark = pytest.mark.slow

JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
#: A learning rate at which Adam's loss becomes NaN within the first steps.
DIVERGING_LR = "1e30"


def tracking(uri: str, artifacts: Path) -> list[str]:
    return [f"tracking.uri={uri}", f"tracking.artifact_location={artifacts}"]


def all_runs(uri: str, experiment: str = "mia-bench") -> list[Run]:
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs([found.experiment_id], run_view_type=ViewType.ALL, max_results=5000)


class Store:
    """The runs of one store, sorted into sweep parents, configuration runs and target runs."""

    def __init__(self, uri: str) -> None:
        self.runs = all_runs(uri)
        self.parents = [r for r in self.runs if "sweep_id" in r.data.tags]
        self.configurations = [r for r in self.runs if "config_hash" in r.data.tags]
        ids = {r.info.run_id for r in self.configurations}
        self.targets = [r for r in self.runs if r.data.tags.get("mlflow.parentRunId") in ids]

    def children(self, run_id: str) -> list[Run]:
        return [r for r in self.runs if r.data.tags.get("mlflow.parentRunId") == run_id]


def assert_linked(store: Store, n_targets: int = 4) -> Run:
    """One parent; every configuration run under it; every target run under its configuration."""
    assert len(store.parents) == 1
    parent = store.parents[0]
    assert {r.info.run_id for r in store.children(parent.info.run_id)} == {
        r.info.run_id for r in store.configurations
    }
    for configuration in store.configurations:
        targets = store.children(configuration.info.run_id)
        assert all(t.info.status == "FINISHED" for t in targets)
        status = configuration.info.status
        if status == "FINISHED":
            assert len(targets) == n_targets
        elif status == "FAILED":  # diverged: recorded before any target was evaluated
            assert targets == []
        else:  # KILLED: its job died while recording, part of its targets written
            assert status == "KILLED" and len(targets) <= n_targets
    assert len(store.runs) == 1 + len(store.configurations) + len(store.targets)
    return parent


@pytest.fixture(scope="module")
def server_process(
    tmp_path_factory: pytest.TempPathFactory, empty_mlflow_db: Path
) -> Iterator[tuple]:
    """A real ``mlflow server`` on 127.0.0.1 (SQLite behind it), started early, stopped at teardown.

    The sweeps below request it before they run, so that its start-up (seconds of imports)
    overlaps with theirs; :func:`mlflow_server` waits until it answers.
    """
    folder = tmp_path_factory.mktemp("server")
    seed_store(folder, empty_mlflow_db, "server.db")
    uri = f"http://127.0.0.1:{free_port()}"
    server = start_mlflow_server(folder, int(uri.rsplit(":", 1)[1]))
    try:
        yield server, uri, folder / "server.log"
    finally:
        stop_mlflow_server(server)


@pytest.fixture
def mlflow_server(server_process: tuple) -> str:
    """The server's URI, once it answers on ``/health``."""
    server, uri, log = server_process
    return wait_for_server(server, uri, log)


@pytest.fixture(scope="module")
def sqlite_sweep(tmp_path_factory: pytest.TempPathFactory, server_process: tuple) -> dict:
    """4 jobs on 2 joblib workers into a fresh SQLite store; one job's training diverges."""
    folder = tmp_path_factory.mktemp("sqlite_sweep")
    uri = f"sqlite:///{folder}/results/mlflow.db"
    args = ["-m", *JOBLIB, f"hydra.sweep.dir={folder}/sweep", *quick()]
    args += [*tracking(uri, folder / "results" / "mlartifacts")]
    args += [f"training.lr=0.001,0.002,0.003,{DIVERGING_LR}"]
    done = run_cli(args, folder)
    return {"done": done, "uri": uri, "store": Store(uri), "folder": folder}


def test_parallel_sweep_records_every_run_under_one_parent(sqlite_sweep: dict) -> None:
    done, store = sqlite_sweep["done"], sqlite_sweep["store"]
    assert "database is locked" not in done.stdout + done.stderr
    assert len(store.configurations) == 4
    assert sorted(r.data.params["training.lr"] for r in store.configurations) == sorted(
        ["0.001", "0.002", "0.003", DIVERGING_LR.replace("e", "e+")]
    )
    parent = assert_linked(store)
    assert parent.info.status == "FAILED"  # one job failed
    assert len(store.targets) == 3 * 4


def test_diverging_job_fails_alone_with_a_summary_and_status_1(sqlite_sweep: dict) -> None:
    done, store = sqlite_sweep["done"], sqlite_sweep["store"]
    assert done.returncode == 1, done.stderr[-3000:]
    statuses = {r.data.params["training.lr"]: r.info.status for r in store.configurations}
    assert statuses == {
        "0.001": "FINISHED",
        "0.002": "FINISHED",
        "0.003": "FINISHED",
        "1e+30": "FAILED",
    }
    failed = next(r for r in store.configurations if r.info.status == "FAILED")
    reason = failed.data.tags["failure_reason"]
    assert reason.startswith("training diverged: ") and "loss became nan" in reason
    summary = done.stdout[done.stdout.index("sweep summary:") :].splitlines()
    assert summary[0].startswith("sweep summary: 4 jobs, 3 finished, 0 skipped, 1 failed")
    for run_ in store.configurations:
        line = next(line for line in summary if run_.info.run_id in line)
        assert run_.info.status.lower() in line
    assert "training.lr=1e+30  training diverged: model 0's loss became nan" in "\n".join(summary)
    assert done.stderr.rstrip().endswith("mia-bench: 1 of 4 jobs failed")


def _metrics(uri: str, run_id: str) -> dict[str, float]:
    return MlflowClient(tracking_uri=uri).get_run(run_id).data.metrics


def test_same_metrics_alone_in_joblib_and_in_submitit_local(
    sqlite_sweep: dict, make_config, tmp_path: Path, empty_mlflow_db: Path
) -> None:
    in_joblib = next(
        r for r in sqlite_sweep["store"].configurations if r.data.params["training.lr"] == "0.001"
    )
    joblib_metrics = _metrics(sqlite_sweep["uri"], in_joblib.info.run_id)
    assert len(joblib_metrics) > 20  # utility and both attacks' metrics, with intervals

    alone = run(make_config(quick(), track=True), show_progress=False)  # FAST's lr: 0.001
    alone_uri = f"sqlite:///{tmp_path}/results/mlflow.db"
    assert _metrics(alone_uri, alone.run_id) == joblib_metrics

    seed_store(tmp_path / "submitit", empty_mlflow_db)
    uri = f"sqlite:///{tmp_path}/submitit/mlflow.db"
    args = ["-m", "hydra/launcher=submitit_local", f"hydra.sweep.dir={tmp_path}/sweep", *quick()]
    done = run_cli([*args, *tracking(uri, tmp_path / "submitit" / "art")], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_linked(Store(uri))  # the parent run reaches submitit's job processes too
    (via_submitit,) = Store(uri).configurations
    assert via_submitit.data.tags["config_hash"] == in_joblib.data.tags["config_hash"]
    assert _metrics(uri, via_submitit.info.run_id) == joblib_metrics


def test_sweep_killed_mid_way_and_relaunched_against_an_mlflow_server(
    mlflow_server: str, tmp_path: Path
) -> None:
    """4 jobs logging over HTTP, killed after the first finished configuration, then relaunched
    on 2 joblib workers (into another sweep folder): exactly one finished run per configuration.

    The first launch runs its jobs one after another (Hydra's basic launcher), so that it is
    killed mid-way for sure; the relaunch is the 4-job sweep on 2 parallel workers.
    """
    uri = mlflow_server
    sweep = ["-m", *quick(), "seed=0,1,2,3", *tracking(uri, tmp_path / "art")]
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    log_path = tmp_path / "first.log"
    with open(log_path, "w") as log:
        first = subprocess.Popen(
            [sys.executable, "-m", "benchmark.cli", *sweep, f"hydra.sweep.dir={tmp_path}/a"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the launcher and its workers
        )
        # a job prints its run id once the run is FINISHED (reading the log spares the server)
        deadline = time.monotonic() + 240
        while "MLflow run " not in log_path.read_text():
            assert first.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.2)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    before = Store(uri)
    finished_before = {r.info.run_id for r in before.configurations if r.info.status == "FINISHED"}
    assert 1 <= len(finished_before) < 4  # killed mid-way
    assert [p.info.status for p in before.parents] == ["RUNNING"]

    done = run_cli([*sweep, *JOBLIB, f"hydra.sweep.dir={tmp_path}/b"], tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "database is locked" not in output + log_path.read_text()
    assert f"resuming sweep: MLflow parent run {before.parents[0].info.run_id}" in done.stdout
    for run_id in finished_before:
        assert f"skipped: this configuration already finished in MLflow run {run_id}" in done.stdout
    n_skipped = len(finished_before)
    assert f"4 jobs, {4 - n_skipped} finished, {n_skipped} skipped, 0 failed" in done.stdout

    after = Store(uri)
    parent = assert_linked(after)
    assert parent.info.run_id == before.parents[0].info.run_id
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["sweep_launches"] == "2"
    finished = [r for r in after.configurations if r.info.status == "FINISHED"]
    assert sorted(r.data.tags["seed"] for r in finished) == ["0", "1", "2", "3"]
    assert finished_before <= {r.info.run_id for r in finished}
    # a job killed while recording leaves a RUNNING run: the relaunch marks it KILLED
    assert {r.info.status for r in after.configurations} <= {"FINISHED", "KILLED"}
