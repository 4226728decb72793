"""Recording configurations in MLflow (ARCHITECTURE.md, "Tracking").

One run per configuration, opened RUNNING when the job starts (:func:`open_configuration_run`),
holds the mean of every metric over targets with ``_ci_low`` and ``_ci_high`` beside it; a child
run per target holds its own values; a sweep's jobs hang under one parent run, created before any
job starts by :class:`benchmark.cli.sweep.SweepCallback`. A run the tracker lost midway is written
to a spool (:meth:`benchmark.tracking.run.TrackedRun.spool`) instead.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow.data
import numpy as np
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from benchmark.data.pool import Pool
from benchmark.evaluation.audit import violation_tags
from benchmark.evaluation.keys import (
    STRONGEST_KEYS,
    interval_keys,
    not_applicable_tag,
    strongest_key,
)
from benchmark.experiment.extra_target import ExtraTarget
from benchmark.experiment.results import ExperimentResult
from benchmark.tracking.params import data_digest, reproducibility_tags, run_name, run_params
from benchmark.tracking.run import TrackedRun
from benchmark.tracking.store import current_parent_run, open_store

#: The headline keys compared across runs on one axis, whichever attacks apply to a release.


def _dataset(x: np.ndarray, y: np.ndarray, config: dict[str, Any], split: str) -> dict[str, Any]:
    """An MLflow dataset entity: its digest combines the arrays (MLflow's own digest) and the
    files' bytes, so different file contents never look alike."""
    data = config["data"]
    source = (
        str(Path(data["path"]).resolve())
        if data.get("path")
        else CodeDatasetSource(tags={"loader": f"benchmark.data:{data['name']}"})
    )
    dataset = mlflow.data.from_numpy(x, targets=y, source=source, name=f"{data['name']}-{split}")
    entity = dataset._to_mlflow_entity()
    return {
        "name": entity.name,
        "digest": f"{entity.digest}-{data_digest(data)}"[:36],
        "source_type": entity.source_type,
        "source": entity.source,
        "schema": entity.schema,
        "profile": entity.profile,
        "context": "training" if split == "pool" else "evaluation",
    }


def _start(
    client: MlflowClient,
    experiment_id: str,
    config: dict[str, Any],
    parent: str | None,
    link: Link | None = None,
) -> TrackedRun:
    tags = {**reproducibility_tags(config), **(link.tags if link else {})}
    if parent:
        tags["mlflow.parentRunId"] = parent
    run = TrackedRun(client, experiment_id, run_name(config), tags)
    run.log(params={**run_params(config), **(link.params if link else {})})
    return run


def _start_run(
    client: MlflowClient, experiment_id: str, config: dict[str, Any], parent: str | None
) -> str:
    """A configuration run (RUNNING) with its params and tags; its id (tests build stores so)."""
    return _start(client, experiment_id, config, parent).run_id or ""


@dataclass(frozen=True)
class Link:
    """What a run derived from another one carries beside its own params and tags (a re-attack:
    the ``reattack_of`` tag, and the source's ``defense_option`` param that only Hydra knew)."""

    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


def open_configuration_run(
    tracking: DictConfig, config: dict[str, Any], pool: Pool | None = None, link: Link | None = None
) -> TrackedRun:
    """The configuration's run, RUNNING from now on, with its params, tags and datasets."""
    client, experiment_id = open_store(tracking)
    run = _start(client, experiment_id, config, current_parent_run(), link)
    if pool is None:
        return run
    run.log_inputs(
        [
            _dataset(pool.x, pool.y, config, "pool"),
            _dataset(pool.x_test, pool.y_test, config, "test"),
        ]
    )
    return run


def strongest(summary: dict[str, float]) -> tuple[dict[str, float], dict[str, str]]:
    """``privacy/strongest/<key>``: the largest mean of each headline key over the attacks that
    applied, and the attack's name as a tag."""
    metrics, tags = {}, {}
    for key in STRONGEST_KEYS:
        values = {
            name.split("/")[1]: value
            for name, value in summary.items()
            if name.startswith("privacy/") and name.endswith(f"/{key}") and name.count("/") == 2
        }
        if values:
            attack = max(values, key=values.__getitem__)
            metrics[strongest_key(key)] = values[attack]
            tags[strongest_key(key)] = attack
    return metrics, tags


def models_tags(result: ExperimentResult) -> dict[str, str]:
    """Where the run's models came from: ``models_source`` (``trained`` or ``cache:<key>``),
    the store key, and why trained models were not stored."""
    origin = result.models_origin
    tags = {"models_source": origin.source}
    if origin.key is not None:
        tags["models_key"] = origin.key
    if origin.not_stored is not None:
        tags["models_not_stored"] = origin.not_stored
    if result.shadow_origin is not None:
        tags["shadow_models_source"] = result.shadow_origin.source
    return tags


def _write_artifacts(result: ExperimentResult, folder: Path) -> None:
    config = result.plan.config
    # The run that trained an entry keeps a copy of it: the weights of every model.
    for name, origin in (("models", result.models_origin), ("shadow_models", result.shadow_origin)):
        if origin is not None and origin.written is not None:
            shutil.copytree(origin.written, folder / name)
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
    if result.extra_target is not None:
        _write_extra_target(result.extra_target, folder)


def _record_targets(
    run: TrackedRun, result: ExperimentResult, tags: dict[str, str], curves: dict[int, list]
) -> None:
    """A child run per target of ``result``, with its own values and training curve (``curves``
    by model index, per epoch), under ``run``."""
    for position, k in enumerate(result.targets):
        child = run.child(f"target-{k}", tags)
        child.log(
            params={"target": str(k), "model_seed": str(result.plan.membership.seeds[k])},
            metrics=result.target_metrics(position),
            history=curves.get(int(k), []),
        )
        child.end("FINISHED")


def _record_extra_target(run: TrackedRun, extra: ExperimentResult, target: ExtraTarget) -> None:
    """The checkpoint's own target run (``protocol.target``): its values, each with its 95%
    bootstrap interval over pool points; never part of the configuration's means."""
    tags = {not_applicable_tag(k): v for k, v in extra.not_applicable().items()}
    child = run.child("target-checkpoint", {**tags, "target_kind": "checkpoint"})
    params = {
        "target": "checkpoint",
        "checkpoint": target.path,
        "checkpoint_sha256": target.sha256,
        "members": str(extra.plan.config["protocol"]["target"]["members"]),
        "n_members": str(int(target.members.sum())),
    }
    child.log(params=params, metrics=configuration_metrics(extra))
    child.end("FINISHED")


def _write_extra_target(extra: ExperimentResult, folder: Path) -> None:
    """``extra_target.npz``: the checkpoint's released outputs, membership and scores."""
    k = int(extra.targets[0])
    scores = {a.name: a.scores[0] for a in extra.attacks if a.scores is not None}
    np.savez_compressed(
        folder / "extra_target.npz",
        outputs=extra.signals.outputs[k],
        membership=extra.signals.membership[k],
        **scores,
    )


def configuration_metrics(result: ExperimentResult, scheme: str | None = None) -> dict[str, float]:
    """The configuration run's metrics: each mean with its interval beside it (finite only:
    MLflow stores no NaN); ``scheme`` as :meth:`ExperimentResult.summary` takes it."""
    metrics = {}
    for key, interval in result.summary(scheme).items():
        low, high = interval_keys(key)
        metrics.update({key: interval.mean, low: interval.low, high: interval.high})
    metrics.update(result.audit_metrics())  # configuration-level bounds: no interval
    return {key: value for key, value in metrics.items() if np.isfinite(value)}


#: Writes the views of a result (its summary, its figures) into a folder, as artifacts.
WriteViews = Callable[[Path], None]


def _packages(folder: Path) -> None:
    """Every installed distribution with its version: the environment, in full."""
    names = sorted({f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions()})
    (folder / "requirements-installed.txt").write_text("\n".join(names) + "\n")


def record(
    result: ExperimentResult, tracking: DictConfig, write_views: WriteViews | None = None
) -> str:
    """Open the configuration's run and record ``result`` into it (:func:`record_into`)."""
    run = open_configuration_run(tracking, result.plan.config, result.plan.pool)
    record_into(run, result, write_views)
    return run.run_id or ""


def record_failure(tracking: DictConfig, config: dict[str, Any], reason: str) -> str:
    """Record a configuration that failed before it had a run open, as FAILED."""
    run = open_configuration_run(tracking, config)
    run.end("FAILED", reason)
    return run.run_id or ""


def record_into(
    run: TrackedRun, result: ExperimentResult, write_views: WriteViews | None = None
) -> None:
    """Log one configuration's result into its open run: metrics, a child run per target, the
    artifacts, the summary as the run's note; then FINISHED.

    ``write_views`` adds the files that present the result (summary, ROC figure): presenting is
    the reporting layer's job, so the caller passes it in.
    """
    summary = configuration_metrics(result)
    best, best_tags = strongest(summary)
    not_applicable = {not_applicable_tag(k): v for k, v in result.not_applicable().items()}
    audit = violation_tags(result.accountant_violations(), result.epsilons is not None)
    tags = {**not_applicable, **audit, **best_tags, **models_tags(result), "device": result.device}
    run.log(metrics={**summary, **best}, tags=tags)
    if result.other_replicates:  # protocol.replicates=R: a child run per replicate
        for r, replicate in enumerate([result, *result.other_replicates]):
            child = run.child(f"replicate-{r}", not_applicable)
            params = {"replicate": str(r), "replicate_seed": str(replicate.plan.seed)}
            child.log(params=params, metrics=configuration_metrics(replicate, "points"))
            _record_targets(child, replicate, not_applicable, run.model_curves if r == 0 else {})
            child.end("FINISHED")
    else:
        _record_targets(run, result, not_applicable, run.model_curves)
    if result.extra_target is not None and result.plan.extra_target is not None:
        _record_extra_target(run, result.extra_target, result.plan.extra_target)
    with tempfile.TemporaryDirectory() as folder:
        _write_artifacts(result, Path(folder))
        _packages(Path(folder))
        if write_views is not None:
            write_views(Path(folder))
        note = Path(folder) / "summary.md"
        if note.exists():
            run.log(tags={"mlflow.note.content": note.read_text()})
        run.log_artifacts(Path(folder))
    run.end("FINISHED")
