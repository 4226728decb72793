"""One job: check, execute and record one configuration, and say what happened."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from benchmark.evaluation.audit import violation_message
from benchmark.evaluation.keys import POPULATION
from benchmark.experiment.execute import execute
from benchmark.experiment.plan import prepare
from benchmark.experiment.results import ExperimentResult
from benchmark.reporting.plots import plot_roc
from benchmark.reporting.summary import format_summary
from benchmark.tracking.params import run_name
from benchmark.tracking.record import record, record_failure
from benchmark.tracking.store import check_store
from benchmark.training.trained import TrainingDiverged


@dataclass
class RunOutcome:
    """What :func:`run` did: the result (None on failure), the MLflow run, the summary."""

    result: ExperimentResult | None
    run_id: str | None
    summary: str
    failure: str | None = None


def run(cfg: DictConfig, show_progress: bool = True) -> RunOutcome:
    """Check, execute and record one configuration. Bad input raises ConfigError first."""
    plan = prepare(cfg, show_progress)
    if cfg.tracking.enabled:
        check_store(cfg.tracking)
    try:
        result = execute(plan)
    except TrainingDiverged as exc:
        reason = f"training diverged: {exc}"
        run_id = record_failure(cfg.tracking, plan.config, reason) if cfg.tracking.enabled else None
        return RunOutcome(None, run_id, reason, failure=reason)
    text = format_summary(result)
    violations = result.accountant_violations()
    if violations:
        message = violation_message(violations)
        warnings.warn(message, stacklevel=2)
        text += f"\n\nWARNING: {message}"
    run_id = None
    if cfg.tracking.enabled:
        run_id = record(result, cfg.tracking, lambda folder: write_views(result, text, folder))
    return RunOutcome(result, run_id, text)


def write_views(result: ExperimentResult, summary: str, folder: Path) -> None:
    """The files that present a result beside its data: the summary and the log-log ROC plot."""
    (folder / "summary.md").write_text(summary)
    curves = {a.name: a.evaluations[POPULATION] for a in result.attacks if a.evaluations}
    if curves:
        plot_roc(curves, folder / "roc.png", title=run_name(result.plan.config))
