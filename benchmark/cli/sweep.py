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
* Ctrl-C (SIGINT) on a sweep run by Hydra's basic launcher (jobs in the launching process) is
  caught by :func:`run_job`, which calls :func:`interrupt_sweep`: the running configuration runs
  and the parent are marked KILLED, the summary so far is printed, and the process exits with
  status 130 (128 + SIGINT, what shells report), without a traceback.
* A parent run left RUNNING by a launcher that was killed outright (SIGKILL, a lost machine) is
  marked KILLED, at the time it was last seen, by the next sweep launched into the same store
  on the same host (:func:`close_dead_parents`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import socket
import sys
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from benchmark.cli.job import run
from benchmark.cli.sweep_summary import format_outcomes
from benchmark.config.compose import to_container
from benchmark.config.schema import STORE_SETTINGS
from benchmark.errors import ConfigError
from benchmark.reporting.summary import ui_hint
from benchmark.tracking.params import config_hash, sweep_name
from benchmark.tracking.store import PARENT_RUN_FILE, current_parent_run, open_store

#: Written by each job into its output folder; read back by the launching process at the end.
OUTCOME_FILE = "mia_bench_outcome.json"
#: The exit status of a sweep stopped by Ctrl-C: 128 + SIGINT, as a shell reports it.
INTERRUPTED_STATUS = 128 + signal.SIGINT
#: The launcher that runs every job in the launching process, one after another.
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


@dataclass
class JobOutcome:
    """What one job of a sweep did: ``finished``, ``skipped`` (finished before) or ``failed``."""

    status: str
    run_id: str | None = None
    reason: str = ""
    #: Where the job's models came from: ``trained``, ``cache:<key>``; None when none were used.
    models_source: str | None = None


def in_sweep() -> bool:
    """True inside a job of a Hydra multirun (whatever the launcher and the process)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _is_tracking(override: str) -> bool:
    """A setting that never changes a result: ``tracking.*``, the model store's settings."""
    key = override.lstrip("+~").split("=", 1)[0]
    group, _, name = key.partition(".")
    return group == "tracking" or (group == "training" and name in STORE_SETTINGS)


def sweep_id(config: DictConfig) -> str:
    """A stable identity for a sweep: its base configuration and its sweep overrides.

    ``config`` is the sweep's configuration as Hydra passes it to ``on_multirun_start`` (sweep
    overrides not applied). Tracking settings and Hydra's own settings (launcher, folders) are left
    out and the overrides are sorted, so the same sweep relaunched with another launcher, another
    ``hydra.sweep.dir`` or its overrides in another order is recognised as the same sweep.
    """
    science = [key for key in config if key not in ("hydra", "tracking")]
    base = OmegaConf.to_container(OmegaConf.masked_copy(config, science), resolve=True)
    for name in STORE_SETTINGS:
        base.get("training", {}).pop(name, None)
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
    close_dead_parents(client, experiment_id)
    sid = sweep_id(config)
    sweep_dir = Path(config.hydra.sweep.dir)
    parent = _find_parent(client, experiment_id, sid) if config.tracking.resume else None
    if parent is not None:
        launches = int(client.get_run(parent).data.tags.get("sweep_launches", "1")) + 1
        client.update_run(parent, status="RUNNING")
        client.set_tag(parent, "sweep_launches", str(launches))
        client.set_tag(parent, "sweep_dir", str(sweep_dir))
        for key, value in _launcher_tags().items():
            client.set_tag(parent, key, value)
        return parent, True
    overrides = " ".join(config.hydra.overrides.task)
    run = client.create_run(
        experiment_id,
        tags={
            "mlflow.runName": sweep_name(config),
            "sweep_id": sid,
            "sweep_dir": str(sweep_dir),
            "sweep_overrides": overrides[:5000],
            "sweep_launches": "1",
            **_launcher_tags(),
            "command": shlex.join(["mia-bench", "-m", *config.hydra.overrides.task])[:5000],
        },
    )
    return run.info.run_id, False


def _launcher_tags() -> dict[str, str]:
    """Which process launched the sweep: a later launch tells whether it is still alive."""
    return {"sweep_host": socket.gethostname(), "sweep_pid": str(os.getpid())}


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # this very process: alive, whatever an earlier launch left behind
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def close_dead_parents(client: Any, experiment_id: str) -> list[str]:
    """Mark KILLED the sweep parents left RUNNING by a launching process that no longer exists.

    A launcher killed outright (SIGKILL) cannot close its parent run. Only parents launched on
    this host can be checked (by process id); each is ended at the time it was last seen (its
    latest child's start or end, or its own start), the real end rather than now.
    """
    running = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'")
    closed = []
    for parent in running:
        tags = parent.data.tags
        if "sweep_id" not in tags or tags.get("sweep_host") != socket.gethostname():
            continue
        if not tags.get("sweep_pid", "").isdigit() or _alive(int(tags["sweep_pid"])):
            continue
        pid = parent.info.run_id
        children = client.search_runs(
            [experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{pid}'"
        )
        times = [parent.info.start_time] + [
            t for c in children for t in (c.info.start_time, c.info.end_time) if t
        ]
        last_seen = max(t for t in times if t is not None)
        reason = f"its launcher (pid {tags['sweep_pid']}) ended without closing it"
        client.set_tag(pid, "killed_reason", reason)
        client.set_terminated(pid, "KILLED", end_time=last_seen)
        closed.append(pid)
    return closed


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
    finished = [r.info.run_id for r in runs if r.info.status == "FINISHED"]
    if finished:
        return finished[0]
    for leftover in runs:
        if leftover.info.status == "RUNNING":
            reason = "interrupted; redone by a relaunch"
            client.set_tag(leftover.info.run_id, "killed_reason", reason)
            client.set_terminated(leftover.info.run_id, "KILLED")
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
    except KeyboardInterrupt:
        if not _jobs_in_this_process():
            raise  # another launcher's worker: its launching process owns the sweep
        interrupt_sweep(cfg)
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
        return JobOutcome("failed", outcome.run_id, outcome.failure, outcome.models_source)
    return JobOutcome("finished", outcome.run_id, models_source=outcome.models_source)


def _jobs_in_this_process() -> bool:
    """True when the sweep's jobs run in the launching process (Hydra's basic launcher)."""
    return HydraConfig.get().launcher.get("_target_") == BASIC_LAUNCHER


def kill_running_children(client: Any, experiment_id: str, parent: str, reason: str) -> list[str]:
    """Mark KILLED every run under ``parent`` still RUNNING, and their RUNNING children."""
    killed, queue = [], [parent]
    while queue:
        runs = client.search_runs(
            [experiment_id],
            filter_string=(
                f"tags.`mlflow.parentRunId` = '{queue.pop()}' and attributes.status = 'RUNNING'"
            ),
        )
        for child in runs:
            client.set_tag(child.info.run_id, "killed_reason", reason)
            client.set_terminated(child.info.run_id, "KILLED")
            killed.append(child.info.run_id)
            queue.append(child.info.run_id)
    return killed


def _sweep_outcomes(sweep_dir: Path) -> list[dict[str, Any]]:
    return sorted(
        (json.loads(path.read_text()) for path in sweep_dir.rglob(OUTCOME_FILE)),
        key=lambda o: o["job"],
    )


def interrupt_sweep(cfg: DictConfig) -> NoReturn:
    """Stop the sweep after Ctrl-C: runs KILLED, the summary so far, exit status 130.

    Called from the job that was running (in the launching process). A second Ctrl-C is ignored
    meanwhile, so that the bookkeeping is not cut short. Relaunching the same command resumes:
    finished configurations are skipped, the interrupted one is redone.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    hydra = HydraConfig.get()
    reason = "interrupted (Ctrl-C); relaunch the same command to resume"
    record = {"job": int(hydra.job.num), "overrides": list(hydra.overrides.task)}
    record.update(status="killed", run_id=None, reason=reason)
    folder = Path(hydra.runtime.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / OUTCOME_FILE).write_text(json.dumps(record))
    parent = current_parent_run() if cfg.tracking.enabled else None
    if parent is not None:
        client, experiment_id = open_store(cfg.tracking)
        kill_running_children(client, experiment_id, parent, reason)
        client.set_tag(parent, "killed_reason", reason)
        client.set_terminated(parent, "KILLED")
    print(format_outcomes(_sweep_outcomes(Path(hydra.sweep.dir)), parent), flush=True)
    print(f"mia-bench: sweep interrupted at job #{record['job']}: {reason}", file=sys.stderr)
    sys.exit(INTERRUPTED_STATUS)


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
        outcomes = _sweep_outcomes(sweep_dir)
        failed = sum(o["status"] == "failed" for o in outcomes)
        marker = sweep_dir / PARENT_RUN_FILE
        parent = marker.read_text().strip() if config.tracking.enabled and marker.exists() else None
        if parent is not None:
            client, experiment_id = open_store(config.tracking)
            client.set_terminated(parent, "FAILED" if failed else "FINISHED")
        print(format_outcomes(outcomes, parent))
        if parent is not None:
            print(ui_hint(config.tracking.uri, experiment_id))
        if failed:
            print(f"mia-bench: {failed} of {len(outcomes)} jobs failed", file=sys.stderr)
            sys.exit(1)
