"""One job: check, execute and record one configuration, and say what happened.

The configuration's MLflow run opens RUNNING before training and always ends: FINISHED, FAILED
with the reason (a crash, a diverged loss) or KILLED (Ctrl-C, SIGTERM). A tracker that fails
midway loses nothing: the complete run goes to a spool, and two lines say where and how to
upload it (:mod:`benchmark.tracking.spool`).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from benchmark.evaluation.audit import violation_message
from benchmark.evaluation.keys import POPULATION
from benchmark.experiment.execute import execute, train_shard
from benchmark.experiment.plan import Plan, prepare
from benchmark.experiment.results import ExperimentResult
from benchmark.interrupts import terminate_as_interrupt
from benchmark.progress import reporting_epochs
from benchmark.reporting.plots import plot_roc
from benchmark.reporting.summary import format_summary
from benchmark.store.ensemble_store import TRAINED
from benchmark.tracking.params import run_name
from benchmark.tracking.record import Link, open_configuration_run, record_into
from benchmark.tracking.run import TrackedRun
from benchmark.tracking.spool import spool_message
from benchmark.tracking.store import check_store
from benchmark.tracking.system import system_metrics
from benchmark.training.trained import TrainingDiverged

log = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    """What :func:`run` did: the result (None on failure), the MLflow run, the summary."""

    result: ExperimentResult | None
    run_id: str | None
    summary: str
    failure: str | None = None
    #: Set when the tracker failed: where the spooled run is and how to upload it (two lines).
    spooled: str | None = None
    #: Where the models came from: ``trained``, ``cache:<key>`` (the ``models_source`` tag).
    models_source: str | None = None


def _close(tracked: TrackedRun | None, cfg: DictConfig) -> str | None:
    """The spool message when the tracker was lost; None when everything reached MLflow."""
    if tracked is None or tracked.lost is None:
        return None
    folder = tracked.spool(Path(cfg.tracking.spool_dir), cfg.tracking.experiment)
    message = spool_message(folder, tracked.lost, cfg.tracking.uri)
    log.warning(message)
    return message


def run(
    cfg: DictConfig,
    show_progress: bool = True,
    link: Link | None = None,
    plan: Plan | None = None,
) -> RunOutcome:
    """Check, execute and record one configuration. Bad input raises ConfigError first.

    ``link``: tags and params of a run derived from another; ``plan``: ``cfg`` already prepared
    (both from ``mia-reattack``)."""
    logging.captureWarnings(True)  # Opacus' warnings go to the job log, not into the bars
    plan = prepare(cfg, show_progress) if plan is None else plan
    if plan.shard is not None:
        return _train_shard(plan)
    tracked = None
    if cfg.tracking.enabled:
        check_store(cfg.tracking)
        tracked = open_configuration_run(cfg.tracking, plan.config, plan.pool, link)
    with terminate_as_interrupt(), system_metrics(tracked, cfg.tracking):
        try:
            outcome = _execute_and_record(cfg, plan, tracked)
        except KeyboardInterrupt as exc:
            if tracked is not None:
                tracked.end("KILLED", f"interrupted: {type(exc).__name__} {exc}".strip())
                _close(tracked, cfg)
            raise
        except Exception as exc:
            if tracked is not None:
                tracked.end("FAILED", f"{type(exc).__name__}: {exc}")
                _close(tracked, cfg)
            raise
    outcome.spooled = _close(tracked, cfg)
    return outcome


def _train_shard(plan: Plan) -> RunOutcome:
    """``training.shard=i/n``: train this shard into the store; no run, no attack (the
    unsharded job attacks once every shard is stored)."""
    with terminate_as_interrupt():
        done = train_shard(plan)
    shard = f"shard {plan.shard.index}/{plan.shard.count}"
    lines = [
        f"{shard}: {'trained' if source == TRAINED else 'already stored'} into {entry}"
        for entry, source in done
    ]
    lines.append(
        "nothing attacked: run the same command without training.shard, once every shard is "
        "stored, to attack"
    )
    source = TRAINED if any(s == TRAINED for _, s in done) else done[0][1]
    return RunOutcome(None, None, "\n".join(lines), models_source=source)


def _execute_and_record(cfg: DictConfig, plan: Plan, tracked: TrackedRun | None) -> RunOutcome:
    run_id = tracked.run_id if tracked is not None else None
    log.info("training and attacking: %s", plan.config["data"]["name"])
    sink = tracked.progress_sink() if tracked is not None else None
    try:
        with reporting_epochs(sink):
            result = execute(plan)
    except TrainingDiverged as exc:
        reason = f"training diverged: {exc}"
        if tracked is not None:
            tracked.end("FAILED", reason)
        return RunOutcome(None, run_id, reason, failure=reason)
    text = (
        format_summary(result, run_id, tracked.experiment_id, tracked.artifact_uri)
        if tracked is not None and run_id is not None
        else format_summary(result)
    )
    violations = result.accountant_violations()
    if violations:
        message = violation_message(violations)
        warnings.warn(message, stacklevel=2)
        text += f"\n\nWARNING: {message}"
    if tracked is not None:
        record_into(tracked, result, lambda folder: write_views(result, text, folder))
    return RunOutcome(result, run_id, text, models_source=result.models_origin.source)


def write_views(result: ExperimentResult, summary: str, folder: Path) -> None:
    """The files that present a result beside its data: the summary and the log-log ROC plot."""
    (folder / "summary.md").write_text(summary)
    curves = {a.name: a.evaluations[POPULATION] for a in result.attacks if a.evaluations}
    if curves:
        plot_roc(curves, folder / "roc.png", title=run_name(result.plan.config))
