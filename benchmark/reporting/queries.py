"""The MLflow side of a report: which runs it covers, the sweeps behind them, their artifacts.

Only configuration runs are reported (those with a ``config_hash`` tag); per-target child runs
and sweep parent runs are followed, never listed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities import Run
from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from benchmark.errors import ConfigError
from benchmark.progress import progress as show_progress
from benchmark.reporting.runs import CONFIG_HASH_TAG, ConfigRun
from benchmark.tracking.store import sqlite_path

PARENT_TAG = "mlflow.parentRunId"
#: The artifacts the report reads: per-example scores, signals, resolved config, ROC figure.
ARTIFACTS = ("scores.npz", "signals.npz", "config.yaml", "roc.png")


def open_client(tracking_uri: str) -> MlflowClient:
    """A client on an *existing* store (MLflow would silently create an empty SQLite file)."""
    db = sqlite_path(tracking_uri)
    if db is not None and not db.exists():
        raise ConfigError(
            f"no MLflow store at {db}: run mia-bench first, or pass --tracking-uri "
            "with the store the runs were recorded in"
        )
    return MlflowClient(tracking_uri=tracking_uri)


def config_run(run: Run) -> ConfigRun:
    """The report's model of one MLflow configuration run."""
    return ConfigRun(
        run_id=run.info.run_id,
        status=run.info.status,
        start_time=run.info.start_time or 0,
        params=dict(run.data.params),
        tags=dict(run.data.tags),
        metrics=dict(run.data.metrics),
    )


def _search(client: MlflowClient, experiment_ids: list[str], filter_string: str = "") -> list[Run]:
    runs, token = [], None
    while True:
        page = client.search_runs(
            experiment_ids, filter_string=filter_string, max_results=1000, page_token=token
        )
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _is_config(run: Run) -> bool:
    return CONFIG_HASH_TAG in run.data.tags


def _get_run(client: MlflowClient, run_id: str) -> Run:
    try:
        return client.get_run(run_id)
    except MlflowException:
        raise ConfigError(
            f"no run '{run_id}' in this MLflow store: check the id and --tracking-uri"
        ) from None


def _children(client: MlflowClient, parent: Run) -> list[Run]:
    query = f"tags.{PARENT_TAG} = '{parent.info.run_id}'"
    return [r for r in _search(client, [parent.info.experiment_id], query) if _is_config(r)]


def _from_experiment(client: MlflowClient, experiment: str) -> list[Run]:
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ConfigError(f"no MLflow experiment '{experiment}': the store has {names}")
    runs = [r for r in _search(client, [found.experiment_id]) if _is_config(r)]
    if not runs:
        raise ConfigError(f"experiment '{experiment}' has no mia-bench configuration runs yet")
    return runs


def _from_sweep(client: MlflowClient, sweep: str) -> list[Run]:
    runs = _children(client, _get_run(client, sweep))
    if not runs:
        raise ConfigError(
            f"run '{sweep}' has no configuration runs under it: is it a sweep's parent run?"
        )
    return runs


def _from_ids(client: MlflowClient, run_ids: Sequence[str]) -> list[Run]:
    runs = []
    for run_id in run_ids:
        run = _get_run(client, run_id)
        if _is_config(run):
            runs.append(run)
        elif "target" in run.data.params:
            parent = run.data.tags.get(PARENT_TAG, "?")
            raise ConfigError(
                f"run '{run_id}' is a per-target run: pass its configuration run '{parent}'"
            )
        else:
            children = _children(client, run)
            if not children:
                raise ConfigError(
                    f"run '{run_id}' is neither a configuration run nor a sweep parent run"
                )
            runs += children
    return runs


def select_runs(
    client: MlflowClient,
    experiment: str | None = None,
    sweep: str | None = None,
    run_ids: Sequence[str] = (),
) -> list[ConfigRun]:
    """The configuration runs of an experiment, of a sweep (its parent run id), or given by id
    (a sweep parent's id stands for its runs), oldest first."""
    if sum(bool(x) for x in (experiment, sweep, run_ids)) != 1:
        raise ConfigError("give exactly one source: --experiment NAME, --sweep RUN_ID, or run ids")
    if experiment:
        runs = _from_experiment(client, experiment)
    elif sweep:
        runs = _from_sweep(client, sweep)
    else:
        runs = _from_ids(client, run_ids)
    unique = {r.info.run_id: r for r in runs}
    return sorted((config_run(r) for r in unique.values()), key=lambda r: r.start_time)


@dataclass(frozen=True)
class Sweep:
    """A ``mia-bench -m`` sweep some reported runs came from, and how many of them."""

    command: str
    runs: int


def sweeps_of(client: MlflowClient, runs: Iterable[ConfigRun]) -> list[Sweep]:
    """The sweeps (their parents' ``command`` tags) the runs belong to, with their run counts;
    runs without a parent (single runs) belong to none."""
    counts: dict[str, int] = {}
    for run in runs:
        parent = run.tags.get(PARENT_TAG)
        if parent:
            counts[parent] = counts.get(parent, 0) + 1
    sweeps = []
    for parent_id, count in counts.items():
        command = _get_run(client, parent_id).data.tags.get("command")
        if command:
            sweeps.append(Sweep(command, count))
    return sweeps


def fetch_artifacts(
    client: MlflowClient, runs: Sequence[ConfigRun], folder: Path, progress: bool
) -> None:
    """Download the artifacts the report uses (:data:`ARTIFACTS`) into ``folder``."""
    # One bar over runs, not MLflow's own bar per file.
    os.environ.setdefault(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name, "false")
    for run in show_progress(runs, "artifacts", unit="run", enabled=progress):
        try:
            available = {a.path for a in client.list_artifacts(run.run_id)}
        except (MlflowException, OSError):
            continue
        for name in ARTIFACTS:
            if name in available:
                dst = folder / run.run_id
                dst.mkdir(parents=True, exist_ok=True)
                run.artifacts[name] = Path(client.download_artifacts(run.run_id, name, str(dst)))
