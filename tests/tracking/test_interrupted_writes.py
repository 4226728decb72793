"""A SIGTERM landing in the middle of a write to the SQLite store never locks the store.

Without :func:`benchmark.interrupts.deferred_interrupts` around every MLflow call, about half
of these interrupts leave a connection inside its transaction, and every later write (the very
one that marks the run KILLED) fails with "database is locked" (measured: 9 of 20 runs lost).
"""

from __future__ import annotations

import os
import random
import signal
import threading

from mlflow.tracking import MlflowClient

from benchmark.interrupts import Terminated, terminate_as_interrupt
from benchmark.tracking.run import TrackedRun
from tests.conftest import seed_store


def test_runs_interrupted_at_random_moments_of_their_writes_all_end_killed(
    tmp_path, empty_mlflow_db
):
    client = MlflowClient(tracking_uri=f"sqlite:///{seed_store(tmp_path, empty_mlflow_db)}")
    experiment = client.create_experiment("interrupts")
    rng = random.Random(0)
    for i in range(8):
        run = TrackedRun(client, experiment, f"run-{i}", {})
        kill = threading.Timer(rng.uniform(0.02, 0.2), os.kill, (os.getpid(), signal.SIGTERM))
        try:
            with terminate_as_interrupt():
                kill.start()
                for step in range(10**6):  # per-epoch metrics, as fast as the store takes them
                    run.log(history=[("train/loss", 1.0, 1, step)])
        except Terminated:
            run.end("KILLED", "interrupted")
        kill.join()
        assert run.lost is None
        assert client.get_run(run.run_id).info.status == "KILLED"
