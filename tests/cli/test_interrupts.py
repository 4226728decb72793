"""Ctrl-C on a sweep, and a sweep whose launcher was killed outright (issue 16, item 3).

Ctrl-C: exit status 130, the summary so far, no traceback, the parent and the interrupted
configuration KILLED. SIGKILL: the next launch into the store shows the parent KILLED, ended when
it was last seen.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from benchmark.cli.sweep import close_dead_parents
from benchmark.tracking.store import open_store
from tests.conftest import REPO, quick, seed_store


def _runs(uri: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("mia-bench")
    return client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL)


def test_ctrl_c_on_a_sweep_kills_the_runs_prints_the_summary_and_exits_130(
    tmp_path: Path, empty_mlflow_db: Path
) -> None:
    uri = f"sqlite:///{seed_store(tmp_path, empty_mlflow_db)}"
    # job #0 trains 3 epochs; job #1 trains long enough to be interrupted for sure
    argv = ["-m", *quick("training.epochs=3,3000"), f"tracking.uri={uri}"]
    argv += [f"tracking.artifact_location={tmp_path}/art", f"hydra.sweep.dir={tmp_path}/sweep"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    log_path = tmp_path / "sweep.log"
    with open(log_path, "w") as log:
        sweep = subprocess.Popen(
            [sys.executable, "-m", "benchmark.cli", *argv],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
        deadline = time.monotonic() + 300
        while "#1 : " not in log_path.read_text():  # Hydra logs each job as it launches it
            assert sweep.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(2)  # into job #1's preparation or training
        os.killpg(sweep.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        sweep.wait(timeout=120)
    output = log_path.read_text()
    assert sweep.returncode == 130, output[-3000:]
    assert "Traceback" not in output
    assert "sweep summary: 2 jobs, 1 finished, 0 skipped, 0 failed, 1 killed" in output
    assert "mia-bench: sweep interrupted at job #1" in output
    runs = _runs(uri)
    parents = [r for r in runs if "sweep_id" in r.data.tags]
    assert [p.info.status for p in parents] == ["KILLED"]
    assert "RUNNING" not in {r.info.status for r in runs}
    configurations = [r for r in runs if "config_hash" in r.data.tags]
    assert "FINISHED" in {r.info.status for r in configurations}


def test_a_parent_left_running_by_a_dead_launcher_is_marked_killed_when_last_seen(
    tmp_path: Path, empty_mlflow_db: Path
) -> None:
    tracking = OmegaConf.create(
        {
            "uri": f"sqlite:///{seed_store(tmp_path, empty_mlflow_db)}",
            "artifact_location": str(tmp_path / "art"),
            "experiment": "mia-bench",
        }
    )
    client, experiment_id = open_store(tracking)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    host = socket.gethostname()
    tags = {"sweep_id": "s", "sweep_host": host, "sweep_pid": dead.stdout.strip()}
    orphan = client.create_run(experiment_id, tags=tags).info.run_id
    child = client.create_run(experiment_id, tags={"mlflow.parentRunId": orphan}).info.run_id
    client.set_terminated(child, "FINISHED")
    live_tags = {**tags, "sweep_pid": str(os.getppid())}  # pytest's parent: alive
    alive = client.create_run(experiment_id, tags=live_tags).info.run_id
    time.sleep(0.05)

    assert close_dead_parents(client, experiment_id) == [orphan]
    closed = client.get_run(orphan)
    assert closed.info.status == "KILLED"
    assert closed.info.end_time == client.get_run(child).info.end_time  # last seen, not now
    assert "ended without closing it" in closed.data.tags["killed_reason"]
    assert client.get_run(alive).info.status == "RUNNING"
