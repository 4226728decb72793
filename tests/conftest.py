"""Shared fixtures: configurations composed exactly as the CLI composes them."""

from __future__ import annotations

import os
import subprocess
import sys
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
def make_config(tmp_path: Path) -> Callable[..., DictConfig]:
    """``make_config(overrides, track=False)``: a composed config; MLflow under ``tmp_path``."""

    def make(overrides: list[str] | None = None, track: bool = False) -> DictConfig:
        return compose_config(list(overrides or []), tmp_path / "results" if track else None)

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
