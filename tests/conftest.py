"""Shared fixtures: configurations composed exactly as the CLI composes them."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from benchmark.config import compose as config
from benchmark.experiment.plan import Plan, prepare
from benchmark.release.api import Release
from benchmark.signals.arrays import Signals
from benchmark.signals.compute import compute_signals
from benchmark.training.engines import train
from benchmark.training.trained import Models

#: A configuration small enough to train in about a second on 2 CPU cores.
FAST = [
    "protocol.n_models=4",
    "training.epochs=3",
    "data=synthetic",
    "data.n_samples=200",
    "data.n_classes=5",
    "data.n_features=20",
]


def only_attacks(*kept: str) -> list[str]:
    """The overrides that drop every attack of the suite (conf/attacks/suite.yaml) but ``kept``:
    a test that checks bookkeeping needs two attacks, not the whole suite's time."""
    suite = OmegaConf.load(REPO / "conf" / "attacks" / "suite.yaml").suite
    return [f"~attacks.suite.{name}" for name in suite if name not in kept]


def quick(*overrides: str) -> list[str]:
    """FAST with two attacks (LOSS and LiRA online), then ``overrides``: for the end-to-end tests
    of bookkeeping (sweeps, kills, spools, resumes), where the whole suite would only add time."""
    return [*FAST, *only_attacks("loss", "lira_online"), *overrides]


def compose_config(overrides: list[str], store: Path | None = None) -> DictConfig:
    """Compose ``conf/config.yaml`` with command-line style ``overrides``.

    With ``store``, MLflow and the model store write into that folder; without it, tracking is
    disabled and so is the model store (``training.cache=false``: a test never writes into the
    checkout's ``results/``).
    """
    tracking = (
        [
            f"tracking.uri=sqlite:///{store}/mlflow.db",
            f"tracking.artifact_location={store}/mlartifacts",
            f"training.store={store}/models",
        ]
        if store is not None
        else ["tracking.enabled=false", "training.cache=false"]
    )
    return config.compose_config([*tracking, *overrides])


REPO = Path(__file__).resolve().parent.parent

# tracking.uri defaults to $MLFLOW_TRACKING_URI: tests never write into the user's own store.
os.environ.pop("MLFLOW_TRACKING_URI", None)


def pytest_configure(config: pytest.Config) -> None:
    """Temporary folders (``tmp_path``) in RAM where Linux has it (``/dev/shm``, a tmpfs).

    Every MLflow write is an SQLite commit, and on a disk each commit waits for ``fsync``: a
    recorded FAST job took 1.7 s with its store on disk and 0.65 s on tmpfs, the migration of a new
    store 1.3-2.3 s against 0.6 s. The tests write exactly what they wrote before; only the
    folder's medium differs. pytest keeps its numbered folders and their cleanup
    (``pytest-of-<user>/pytest-<n>``, the last 3 sessions) under this root, as under ``/tmp``.
    ``PYTEST_DEBUG_TEMPROOT`` set by hand wins.
    """
    shm = Path("/dev/shm")
    if "PYTEST_DEBUG_TEMPROOT" not in os.environ and shm.is_dir() and os.access(shm, os.W_OK):
        os.environ["PYTEST_DEBUG_TEMPROOT"] = str(shm)


def run_cli(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """``mia-bench ARGS`` as a user runs it, in a subprocess, from ``cwd``."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "benchmark.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def make_config(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[..., DictConfig]:
    """``make_config(overrides, track=False)``: a composed config; MLflow under ``tmp_path``
    (``tmp_path/results``, its database a copy of the migrated empty one: :func:`seed_store`)."""

    def make(overrides: list[str] | None = None, track: bool = False) -> DictConfig:
        store = tmp_path / "results" if track else None
        if store is not None:
            seed_store(store, request.getfixturevalue("empty_mlflow_db"))
        return compose_config(list(overrides or []), store)

    return make


@pytest.fixture(autouse=True, scope="session")
def single_thread():
    """Tiny models train on one thread: on two busy cores, two threads contend and train small
    MLPs ~20x slower. Subprocesses inherit OMP_NUM_THREADS=1."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


#: Few samples per class and no regularisation: models that memorise, attacks that find signal.
OVERFIT = [
    "data=synthetic",
    "data.n_samples=800",
    "data.n_classes=10",
    "data.flip_prob=0.3",
    "protocol.n_models=8",
    "training.epochs=15",
]


@dataclass
class Trained:
    """A trained configuration: what the attacks see, plus the black box they may query."""

    plan: Plan
    models: Models
    release: Release
    signals: Signals

    def query(self, k: int, x):
        return self.release.query(self.models, k, x)


def train_configuration(overrides: list[str]) -> Trained:
    plan = prepare(compose_config(overrides), show_progress=False)
    models = train(plan.recipe, plan.pool, plan.membership, progress=False)
    release = Release(plan.defenses)
    return Trained(
        plan, models, release, compute_signals(models, release, plan.pool, plan.membership)
    )


@pytest.fixture(scope="session")
def fast_trained() -> Trained:
    return train_configuration(FAST)


@pytest.fixture(scope="session")
def overfit_trained() -> Trained:
    return train_configuration(OVERFIT)


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite database, migrated once per session; copy it to get a fresh store.

    MLflow's schema migration of a new database takes seconds; copying the file takes none.
    """
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("empty_mlflow") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def seed_store(folder: Path, empty_db: Path, name: str = "mlflow.db") -> Path:
    """``folder/name``: a copy of the migrated empty database ``empty_db``, unless it exists.

    A store seeded so is the store MLflow leaves after migrating a new database (seconds per
    store); the code under test still creates its experiment, runs and lock file in it. The tests
    whose subject is a *new* store (``tests/tracking/test_store_race.py``, the parallel sweep of
    ``tests/cli/test_sweeps.py``, ``tests/cli/test_wheel.py``) leave theirs unseeded.
    """
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / name
    if not db.exists():
        shutil.copy(empty_db, db)
    return db


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_mlflow_server(folder: Path, port: int) -> subprocess.Popen:
    """A real ``mlflow server`` on 127.0.0.1:``port`` over ``folder/server.db`` (SQLite), in its own
    session (stop it with :func:`stop_mlflow_server`); returns at once, see :func:`wait_for_server`.

    The server's background job runner (a pool of consumer processes that MLflow starts by
    default) is switched off: nothing here submits jobs, and starting it costs seconds of CPU.
    """
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{folder}/server.db"]
    command += ["--default-artifact-root", (folder / "server-art").as_uri()]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(folder / "server.log", "a") as log:
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def wait_for_server(server: subprocess.Popen, uri: str, log: Path, timeout: float = 120) -> str:
    """``uri`` once the server answers on ``/health``; fails if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while True:
        assert server.poll() is None, f"mlflow server exited: {log.read_text()[-3000:]}"
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2).close()
            return uri
        except OSError:
            assert time.monotonic() < deadline, f"mlflow server did not start in {timeout:.0f} s"
            time.sleep(0.3)


def stop_mlflow_server(server: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to the server's session (the server and its workers only) and reap it."""
    os.killpg(server.pid, sig)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
