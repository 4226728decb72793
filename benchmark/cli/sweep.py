"""Sweeps that survive the night: one parent run, resume, failure isolation, a closing summary.

A sweep (``mia-bench -m ...``) runs one Hydra job per configuration on any Hydra launcher: the
basic one (one job after another), ``joblib`` (parallel local processes), ``submitit_local`` or
``submitit_slurm``. This module adds what a long sweep needs on top of Hydra:

* :class:`SweepCallback` opens the MLflow store, the experiment and the sweep's parent run once, in
  the launching process, before any job starts (concurrent first use of a fresh SQLite store races
  in MLflow's schema migration). A sweep is identified by :func:`sweep_id`, a hash of what it
  trains, so relaunching the same command finds and reuses its parent run.
* :func:`run_job` skips a configuration that already FINISHED under that parent (same
  ``config_hash`` and ``suite_version`` tags), marks interrupted leftovers KILLED and redoes them,
  and turns every failure into a :class:`JobOutcome` instead of an exception, so that one failing
  job never takes the others down.
* When the sweep ends, the callback prints one line per job and exits with status 1 if any failed.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
import traceback
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from benchmark.cli.job import run
from benchmark.config.compose import to_container
from benchmark.errors import ConfigError
from benchmark.tracking.params import config_hash
from benchmark.tracking.store import PARENT_RUN_FILE, current_parent_run, open_store

#: Written by each job into its output folder; read back by the launching process at the end.
OUTCOME_FILE = "mia_bench_outcome.json"
STATUSES = ("finished", "skipped", "failed")


@dataclass
class JobOutcome:
    """What one job of a sweep did: ``finished``, ``skipped`` (finished before) or ``failed``."""

    status: str
    run_id: str | None = None
    reason: str = ""


def in_sweep() -> bool:
    """True inside a job of a Hydra multirun (whatever the launcher and the process)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _is_tracking(override: str) -> bool:
    key = override.lstrip("+~").split("=", 1)[0]
    return key.split(".", 1)[0] == "tracking"


def sweep_id(config: DictConfig) -> str:
    """A stable identity for a sweep: its base configuration and its sweep overrides.

    ``config`` is the sweep's configuration as Hydra passes it to ``on_multirun_start`` (sweep
    overrides not applied). Tracking settings and Hydra's own settings (launcher, folders) are left
    out and the overrides are sorted, so the same sweep relaunched with another launcher, another
    ``hydra.sweep.dir`` or its overrides in another order is recognised as the same sweep.
    """
    science = [key for key in config if key not in ("hydra", "tracking")]
    base = OmegaConf.to_container(OmegaConf.masked_copy(config, science), resolve=True)
    overrides = sorted(o for o in config.hydra.overrides.task if not _is_tracking(o))
    swept = config.hydra.sweeper.get("params")
    params = OmegaConf.to_container(swept, resolve=False) if swept else {}
    params = {k: v for k, v in sorted(params.items()) if not _is_tracking(k)}
    identity = json.dumps([base, overrides, params], sort_keys=True, default=str)
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def _find_parent(client: Any, experiment_id: str, sid: str) -> str | None:
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.sweep_id = '{sid}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def open_parent_run(config: DictConfig) -> tuple[str, bool]:
    """The sweep's parent run id, and whether it was reused from an earlier launch."""
    client, experiment_id = open_store(config.tracking)
    sid = sweep_id(config)
    sweep_dir = Path(config.hydra.sweep.dir)
    parent = _find_parent(client, experiment_id, sid) if config.tracking.resume else None
    if parent is not None:
        launches = int(client.get_run(parent).data.tags.get("sweep_launches", "1")) + 1
        client.update_run(parent, status="RUNNING")
        client.set_tag(parent, "sweep_launches", str(launches))
        client.set_tag(parent, "sweep_dir", str(sweep_dir))
        return parent, True
    overrides = " ".join(config.hydra.overrides.task)
    run = client.create_run(
        experiment_id,
        tags={
            "mlflow.runName": f"sweep {sweep_dir.name}",
            "sweep_id": sid,
            "sweep_dir": str(sweep_dir),
            "sweep_overrides": overrides[:5000],
            "sweep_launches": "1",
            "command": shlex.join(["mia-bench", "-m", *config.hydra.overrides.task])[:5000],
        },
    )
    return run.info.run_id, False


def finished_run(cfg: DictConfig) -> str | None:
    """The run of this job's configuration that already FINISHED under the sweep's parent.

    Matches on the ``config_hash`` and ``suite_version`` tags. Leftovers of an interrupted launch
    (runs still RUNNING: their job died while recording) never count as finished; when no finished
    run exists they are marked KILLED, because this job is about to redo the configuration.
    """
    parent = current_parent_run()
    if parent is None:
        return None
    config = to_container(cfg)
    client, experiment_id = open_store(cfg.tracking)
    runs = client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`mlflow.parentRunId` = '{parent}' "
            f"and tags.config_hash = '{config_hash(config)}' "
            f"and tags.suite_version = '{config['attacks']['version']}'"
        ),
        order_by=["attributes.start_time ASC"],
    )
    finished = [run.info.run_id for run in runs if run.info.status == "FINISHED"]
    if finished:
        return finished[0]
    for run in runs:
        if run.info.status == "RUNNING":
            client.set_tag(run.info.run_id, "killed_reason", "interrupted; redone by a relaunch")
            client.set_terminated(run.info.run_id, "KILLED")
    return None


def run_job(cfg: DictConfig) -> JobOutcome:
    """Run one job of a sweep; never raise, so that the other jobs always run.

    A configuration that already finished under this sweep's parent is skipped (unless
    ``tracking.resume=false``). A bad configuration, a diverged training or an unexpected error
    becomes a failed outcome, listed in the sweep's summary.
    """
    try:
        previous = finished_run(cfg) if cfg.tracking.enabled and cfg.tracking.resume else None
        if previous is not None:
            print(f"skipped: this configuration already finished in MLflow run {previous}")
            return JobOutcome("skipped", previous, "already finished in an earlier launch")
        outcome = run(cfg, show_progress=False)
    except ConfigError as exc:
        print(f"mia-bench: error: {exc}", file=sys.stderr)
        return JobOutcome("failed", None, f"bad configuration: {exc}")
    except Exception as exc:  # a bug or a lost store: keep the trace, let the other jobs run
        traceback.print_exc()
        return JobOutcome("failed", None, f"{type(exc).__name__}: {exc}")
    print(outcome.summary)
    if outcome.run_id is not None:
        print(f"MLflow run {outcome.run_id}")
    if outcome.failure:
        return JobOutcome("failed", outcome.run_id, outcome.failure)
    return JobOutcome("finished", outcome.run_id)


def _outcome_record(config: DictConfig, job_return: JobReturn) -> dict[str, Any]:
    value = job_return._return_value  # .return_value re-raises a failed job's exception
    if job_return.status == JobStatus.COMPLETED and isinstance(value, JobOutcome):
        outcome = value
    else:
        outcome = JobOutcome("failed", None, f"{type(value).__name__}: {value}")
    reason = " ".join(outcome.reason.split())  # one line per job in the summary
    return {
        "job": int(config.hydra.job.num),
        "overrides": list(job_return.overrides or []),
        **asdict(outcome),
        "reason": reason,
    }


def ui_hint(uri: str) -> str:
    if uri.startswith(("http://", "https://")):
        return f"Open the UI at {uri}"
    return f"Open the UI with:  mlflow ui --backend-store-uri {uri}"


def _distinguishing(outcomes: list[dict[str, Any]]) -> list[str]:
    """Each job's overrides that differ between jobs (all of them for a one-job sweep)."""
    values: dict[str, set[str]] = {}
    for o in outcomes:
        for override in o["overrides"]:
            key, _, value = override.partition("=")
            values.setdefault(key, set()).add(value)
    varying = {key for key, seen in values.items() if len(seen) > 1}
    return [
        " ".join(x for x in o["overrides"] if x.partition("=")[0] in varying or not varying)
        for o in outcomes
    ]


def format_outcomes(outcomes: list[dict[str, Any]], parent: str | None) -> str:
    """The end-of-sweep summary: a count line, then one line per job."""
    counts = Counter(o["status"] for o in outcomes)
    head = f"sweep summary: {len(outcomes)} jobs, " + ", ".join(
        f"{counts[s]} {s}" for s in STATUSES
    )
    lines = [head + (f" (MLflow parent run {parent})" if parent else "")]
    for o, overrides in zip(outcomes, _distinguishing(outcomes), strict=True):
        reason = f"  {o['reason']}" if o["reason"] else ""
        lines.append(
            f"  #{o['job']:<3} {o['status']:<8}  run {o['run_id'] or '-':<32}  {overrides}{reason}"
        )
    return "\n".join(lines)


class SweepCallback(Callback):
    """Hydra callback: the sweep's parent run before any job, its summary after the last one."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        for stale in sweep_dir.rglob(OUTCOME_FILE):  # a relaunch into the same folder
            stale.unlink()
        if not config.tracking.enabled:
            return
        try:
            parent, reused = open_parent_run(config)
        except Exception as exc:  # Hydra would only warn and let every job run without a parent
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            print(f"mia-bench: error: cannot open {config.tracking.uri}: {detail}", file=sys.stderr)
            sys.exit(2)
        (sweep_dir / PARENT_RUN_FILE).write_text(parent)
        if reused:
            print(f"resuming sweep: MLflow parent run {parent}; finished configurations skipped")

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        folder = Path(config.hydra.runtime.output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / OUTCOME_FILE).write_text(json.dumps(_outcome_record(config, job_return)))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        outcomes = sorted(
            (json.loads(path.read_text()) for path in sweep_dir.rglob(OUTCOME_FILE)),
            key=lambda o: o["job"],
        )
        failed = sum(o["status"] == "failed" for o in outcomes)
        marker = sweep_dir / PARENT_RUN_FILE
        parent = marker.read_text().strip() if config.tracking.enabled and marker.exists() else None
        if parent is not None:
            client, _ = open_store(config.tracking)
            client.set_terminated(parent, "FAILED" if failed else "FINISHED")
        print(format_outcomes(outcomes, parent))
        if parent is not None:
            print(ui_hint(config.tracking.uri))
        if failed:
            print(f"mia-bench: {failed} of {len(outcomes)} jobs failed", file=sys.stderr)
            sys.exit(1)
