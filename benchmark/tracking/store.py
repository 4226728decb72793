"""The MLflow store: checked before training, opened once, and the sweep's parent run marker.

Concurrent first use of a fresh SQLite store races in MLflow's schema migration (two processes
both see no tables and both create them; one fails), and two processes may both find no
experiment and both create it. :func:`open_store` therefore holds an exclusive ``fcntl.flock`` on
a lock file beside the database while it opens the store and finds or creates the experiment, so
that whatever launches at the same moment (two shells, a sweep's parallel jobs) one process
migrates and the others wait, then find the migrated store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from benchmark.errors import ConfigError
from benchmark.locking import exclusive_lock
from benchmark.tracking.backend import bound_retries, check_backend
from benchmark.tracking.ui_view import VIEW_TAGS

PARENT_RUN_FILE = "mlflow_parent_run_id"
#: MLflow 3 opens an experiment tagged so in its model-training view (the UI reads this tag).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
#: Every experiment's tags: its kind and the compare view (:mod:`benchmark.tracking.ui_view`).
EXPERIMENT_TAGS = {**EXPERIMENT_KIND, **VIEW_TAGS}


def sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def check_store(tracking: DictConfig) -> None:
    """Refuse a store location that cannot be written, before anything trains."""
    check_backend(tracking.uri, tracking.experiment)
    db = sqlite_path(tracking.uri)
    if db is not None and db.exists() and not (db.is_file() and os.access(db, os.W_OK)):
        raise ConfigError(
            f"cannot write the MLflow database {db}: it is a folder or read-only; "
            "set tracking.uri=sqlite:///<writable folder>/mlflow.db"
        )
    folders = ([db.parent] if db is not None else []) + [Path(tracking.artifact_location)]
    for folder in folders:
        existing = next(p for p in [folder, *folder.parents] if p.exists())
        writable = (
            existing.is_dir()
            and os.access(existing, os.W_OK)
            and not os.statvfs(existing).f_flag & os.ST_RDONLY
        )
        if not writable:
            what = "not a folder" if not existing.is_dir() else "not writable"
            raise ConfigError(
                f"cannot write results to {folder}: {existing} is {what}; "
                "set tracking.uri and tracking.artifact_location to a writable folder"
            )


def lock_path(db: Path) -> Path:
    """The lock file beside SQLite database ``db`` (left in place: removing it would race)."""
    return db.with_name(db.name + ".lock")


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock across processes on the SQLite store ``uri`` (no-op otherwise).

    ``flock`` is released by the kernel when the holder dies, so a killed process never leaves
    the store locked.
    """
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    with exclusive_lock(lock_path(db)):
        yield


def open_store(tracking: DictConfig) -> tuple[MlflowClient, str]:
    """The MLflow client and the experiment id, creating the store and experiment if needed.

    Runs under :func:`store_lock`: a fresh store is migrated, and the experiment created, by
    exactly one of the processes that open it at the same moment.
    """
    bound_retries()
    with store_lock(tracking.uri):
        return _open_store(tracking)


def _open_store(tracking: DictConfig) -> tuple[MlflowClient, str]:
    client = MlflowClient(tracking_uri=tracking.uri)
    experiment = client.get_experiment_by_name(tracking.experiment)
    if experiment is not None:
        for key, value in EXPERIMENT_TAGS.items():  # an experiment an older version created
            if experiment.tags.get(key) != value:
                client.set_experiment_tag(experiment.experiment_id, key, value)
        return client, experiment.experiment_id
    location = Path(tracking.artifact_location)
    location.mkdir(parents=True, exist_ok=True)
    return client, client.create_experiment(
        tracking.experiment, artifact_location=location.resolve().as_uri(), tags=EXPERIMENT_TAGS
    )


def current_parent_run() -> str | None:
    """The sweep's parent run id, when this process runs one job of a Hydra sweep."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    marker = Path(HydraConfig.get().sweep.dir) / PARENT_RUN_FILE
    return marker.read_text().strip() if marker.exists() else None
