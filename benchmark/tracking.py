"""Recording configurations in MLflow (DESIGN.md section 4).

One run per configuration holds the mean of every metric over targets with ``_ci_low`` and
``_ci_high`` beside it; a child run per target holds its own values; a sweep's jobs hang under one
parent run, created before any job starts by :class:`benchmark.sweep.SweepCallback` (which also
creates the store, avoiding the race in MLflow's schema migration when parallel workers open a
fresh SQLite store).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from benchmark.audit import violation_tags
from benchmark.errors import ConfigError
from benchmark.plots import plot_roc

if TYPE_CHECKING:
    from benchmark.experiment import ExperimentResult

PARENT_RUN_FILE = "mlflow_parent_run_id"
PACKAGES = ("mia-bench", "torch", "opacus", "scikit-learn", "numpy", "mlflow", "hydra-core")
_BATCH = 100  # MLflow accepts at most 100 params per log_batch call


def sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def check_store(tracking: DictConfig) -> None:
    """Refuse a store location that cannot be written, before anything trains."""
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
    client = MlflowClient(tracking_uri=tracking.uri)
    experiment = client.get_experiment_by_name(tracking.experiment)
    if experiment is not None:
        return client, experiment.experiment_id
    location = Path(tracking.artifact_location)
    location.mkdir(parents=True, exist_ok=True)
    return client, client.create_experiment(
        tracking.experiment, artifact_location=location.resolve().as_uri()
    )


def config_hash(config: dict[str, Any]) -> str:
    """A stable hash of the scientific content of a configuration (tracking excluded)."""
    science = {key: value for key, value in config.items() if key != "tracking"}
    return hashlib.sha256(json.dumps(science, sort_keys=True).encode()).hexdigest()[:16]


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def launched_overrides() -> list[str] | None:
    """This Hydra job's command-line overrides (a sweep job's own values); None outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return list(HydraConfig.get().overrides.task)


def reproducibility_tags(config: dict[str, Any]) -> dict[str, str]:
    tags = {
        "git_commit": _git("rev-parse", "HEAD") or "unknown",
        "git_dirty": str(bool(_git("status", "--porcelain", "--untracked-files=no"))).lower(),
        "config_hash": config_hash(config),
        "seed": str(config["seed"]),
        "defense": "+".join(config["defense"]),
        "suite_version": str(config["attacks"]["version"]),
        "dataset": config["data"]["name"],
        "model": config["model"]["name"],
        "attacker_knows_defense": str(config["attacker"]["knows_defense"]).lower(),
    }
    overrides = launched_overrides()
    if overrides is not None:  # what was typed; reports also rebuild a command from the params
        tags["overrides"] = json.dumps(overrides)
    for package in PACKAGES:
        try:
            tags[f"version/{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            tags[f"version/{package}"] = "not installed"
    return tags


def leaves(config: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: the config's leaves under dotted keys."""
    if isinstance(config, dict) and config:
        found: dict[str, Any] = {}
        for key, value in config.items():
            found.update(leaves(value, f"{prefix}{key}."))
        return found
    return {prefix.rstrip("."): config}


def flatten(config: Any) -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}``: MLflow params are flat strings (JSON but for
    strings)."""
    return {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in leaves(config).items()
    }


def _log(client: MlflowClient, run_id: str, params=None, metrics=None, tags=None) -> None:
    params = [Param(k, v[:6000]) for k, v in (params or {}).items()]
    for i in range(0, len(params), _BATCH):
        client.log_batch(run_id, params=params[i : i + _BATCH])
    metrics = [Metric(k, float(v), 0, 0) for k, v in (metrics or {}).items() if np.isfinite(v)]
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i : i + 1000])
    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()])


def run_name(config: dict[str, Any]) -> str:
    return f"{config['data']['name']}-{config['model']['name']}-{'+'.join(config['defense'])}"


def current_parent_run() -> str | None:
    """The sweep's parent run id, when this process runs one job of a Hydra sweep."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    marker = Path(HydraConfig.get().sweep.dir) / PARENT_RUN_FILE
    return marker.read_text().strip() if marker.exists() else None


def _start_run(
    client: MlflowClient, experiment_id: str, config: dict[str, Any], parent: str | None
) -> str:
    tags = {"mlflow.runName": run_name(config), **reproducibility_tags(config)}
    if parent:
        tags["mlflow.parentRunId"] = parent
    run = client.create_run(experiment_id, tags=tags)
    _log(client, run.info.run_id, params=flatten(config))
    return run.info.run_id


def record_failure(tracking: DictConfig, config: dict[str, Any], reason: str) -> str:
    """Record a configuration that failed while training (e.g. a diverged loss) as FAILED."""
    client, experiment_id = open_store(tracking)
    run_id = _start_run(client, experiment_id, config, current_parent_run())
    _log(client, run_id, tags={"failure_reason": reason[:5000]})
    client.set_terminated(run_id, "FAILED")
    return run_id


def _write_artifacts(result: ExperimentResult, folder: Path, summary_text: str) -> None:
    config = result.plan.config
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(config)))
    (folder / "summary.md").write_text(summary_text)
    result.signals.save(folder / "signals.npz")
    if result.shadow_signals is not None:  # the attacker's undefended shadows (knows_defense=false)
        result.shadow_signals.save(folder / "shadow_signals.npz")
    scores = {a.name: a.scores for a in result.attacks if a.scores is not None}
    np.savez_compressed(folder / "scores.npz", targets=result.targets, **scores)
    rows = [result.target_metrics(i) for i in range(len(result.targets))]
    header = ["target", *rows[0]]
    lines = [",".join(header)]
    lines += [
        ",".join([str(k), *(repr(r[h]) for h in header[1:])])
        for k, r in zip(result.targets, rows, strict=True)
    ]
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    curves = {a.name: a.evaluations["privacy"] for a in result.attacks if a.evaluations}
    if curves:
        plot_roc(curves, folder / "roc.png", title=run_name(config))


def record(result: ExperimentResult, tracking: DictConfig, summary_text: str = "") -> str:
    """Log one configuration: its run, a child run per target, and the artifacts."""
    config = result.plan.config
    client, experiment_id = open_store(tracking)
    run_id = _start_run(client, experiment_id, config, current_parent_run())
    summary = {}
    for key, interval in result.summary().items():
        summary[key] = interval.mean
        summary[f"{key}_ci_low"] = interval.low
        summary[f"{key}_ci_high"] = interval.high
    not_applicable = {f"not_applicable/{k}": v for k, v in result.not_applicable().items()}
    audit = violation_tags(result.accountant_violations(), result.epsilons is not None)
    _log(client, run_id, metrics=summary, tags={**not_applicable, **audit, "device": result.device})
    for position, k in enumerate(result.targets):
        child = client.create_run(
            experiment_id,
            tags={"mlflow.parentRunId": run_id, "mlflow.runName": f"target-{k}", **not_applicable},
        )
        _log(
            client,
            child.info.run_id,
            params={"target": str(k), "model_seed": str(result.plan.membership.seeds[k])},
            metrics=result.target_metrics(position),
        )
        client.set_terminated(child.info.run_id, "FINISHED")
    with tempfile.TemporaryDirectory() as folder:
        _write_artifacts(result, Path(folder), summary_text)
        client.log_artifacts(run_id, folder)
    client.set_terminated(run_id, "FINISHED")
    return run_id
