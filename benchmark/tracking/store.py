"""The MLflow store: checked before training, opened once, and the sweep's parent run marker.

The store and experiment are created before a sweep's parallel jobs start
(:class:`benchmark.cli.sweep.SweepCallback`): concurrent first use of a fresh SQLite store races
in MLflow's schema migration.
"""

from __future__ import annotations

import os
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from benchmark.errors import ConfigError
from benchmark.tracking.backend import bound_retries, check_backend

PARENT_RUN_FILE = "mlflow_parent_run_id"
#: MLflow 3 opens an experiment tagged so in its model-training view (the UI reads this tag).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


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


def open_store(tracking: DictConfig) -> tuple[MlflowClient, str]:
    """The MLflow client and the experiment id, creating the store and experiment if needed."""
    db = sqlite_path(tracking.uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    bound_retries()
    client = MlflowClient(tracking_uri=tracking.uri)
    experiment = client.get_experiment_by_name(tracking.experiment)
    if experiment is not None:
        return client, experiment.experiment_id
    location = Path(tracking.artifact_location)
    location.mkdir(parents=True, exist_ok=True)
    return client, client.create_experiment(
        tracking.experiment, artifact_location=location.resolve().as_uri(), tags=EXPERIMENT_KIND
    )


def current_parent_run() -> str | None:
    """The sweep's parent run id, when this process runs one job of a Hydra sweep."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    marker = Path(HydraConfig.get().sweep.dir) / PARENT_RUN_FILE
    return marker.read_text().strip() if marker.exists() else None
