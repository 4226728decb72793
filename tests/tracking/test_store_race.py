"""Processes that open a fresh SQLite store at the same moment all succeed (issue 16, item 4).

Without the lock of :func:`benchmark.tracking.store.open_store`, one of them fails in MLflow's
schema migration (or in creating the experiment the others are creating).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from benchmark.tracking.store import lock_path
from tests.conftest import REPO

#: Each process imports everything first, waits for the start file, then opens the store and
#: records a run: the imports' seconds do not spread the processes apart.
SCRIPT = """
import sys, time
from pathlib import Path
from omegaconf import OmegaConf
from benchmark.tracking.store import open_store
start, folder = Path(sys.argv[1]), Path(sys.argv[2])
(folder / f"ready-{sys.argv[3]}").touch()
while not start.exists():
    time.sleep(0.01)
tracking = OmegaConf.create({"uri": f"sqlite:///{folder}/mlflow.db",
    "artifact_location": str(folder / "mlartifacts"), "experiment": "race"})
client, experiment_id = open_store(tracking)
client.set_terminated(client.create_run(experiment_id).info.run_id)
print(experiment_id)
"""


def test_four_processes_open_a_fresh_store_at_once(tmp_path: Path) -> None:
    start, n = tmp_path / "start", 4
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(start), str(tmp_path), str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    deadline = time.monotonic() + 240
    while len(list(tmp_path.glob("ready-*"))) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    start.touch()
    results = [p.communicate(timeout=240) for p in procs]
    failures = [err for p, (_, err) in zip(procs, results, strict=True) if p.returncode != 0]
    assert not failures, failures[0][-2000:]
    assert len({out.strip() for out, _ in results}) == 1  # one experiment, found by all
    assert lock_path(tmp_path / "mlflow.db").exists()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("race")
    assert len(client.search_runs([experiment.experiment_id])) == n
