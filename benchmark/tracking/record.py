"""Recording configurations in MLflow (ARCHITECTURE.md, "Tracking").

One run per configuration holds the mean of every metric over targets with ``_ci_low`` and
``_ci_high`` beside it; a child run per target holds its own values; a sweep's jobs hang under one
parent run, created before any job starts by :class:`benchmark.cli.sweep.SweepCallback`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from benchmark.evaluation.audit import violation_tags
from benchmark.evaluation.keys import interval_keys, not_applicable_tag
from benchmark.experiment.results import ExperimentResult
from benchmark.tracking.params import flatten, reproducibility_tags, run_name
from benchmark.tracking.store import current_parent_run, open_store

_BATCH = 100  # MLflow accepts at most 100 params per log_batch call


def _log(client: MlflowClient, run_id: str, params=None, metrics=None, tags=None) -> None:
    params = [Param(k, v[:6000]) for k, v in (params or {}).items()]
    for i in range(0, len(params), _BATCH):
        client.log_batch(run_id, params=params[i : i + _BATCH])
    metrics = [Metric(k, float(v), 0, 0) for k, v in (metrics or {}).items() if np.isfinite(v)]
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i : i + 1000])
    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()])


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


def _write_artifacts(result: ExperimentResult, folder: Path) -> None:
    config = result.plan.config
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(config)))
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


def configuration_metrics(result: ExperimentResult) -> dict[str, float]:
    """The configuration run's metrics: each mean with its interval beside it (finite only:
    MLflow stores no NaN)."""
    metrics = {}
    for key, interval in result.summary().items():
        low, high = interval_keys(key)
        metrics.update({key: interval.mean, low: interval.low, high: interval.high})
    return {key: value for key, value in metrics.items() if np.isfinite(value)}


#: Writes the views of a result (its summary, its figures) into a folder, as artifacts.
WriteViews = Callable[[Path], None]


def record(
    result: ExperimentResult, tracking: DictConfig, write_views: WriteViews | None = None
) -> str:
    """Log one configuration: its run, a child run per target, and the artifacts.

    ``write_views`` adds the files that present the result (summary, ROC figure): presenting is
    the reporting layer's job, so the caller passes it in.
    """
    config = result.plan.config
    client, experiment_id = open_store(tracking)
    run_id = _start_run(client, experiment_id, config, current_parent_run())
    summary = configuration_metrics(result)
    not_applicable = {not_applicable_tag(k): v for k, v in result.not_applicable().items()}
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
        _write_artifacts(result, Path(folder))
        if write_views is not None:
            write_views(Path(folder))
        client.log_artifacts(run_id, folder)
    client.set_terminated(run_id, "FINISHED")
    return run_id
