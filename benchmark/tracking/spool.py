"""``mia-replay``: upload spooled runs (written when the tracker failed midway) into any store.

    mia-replay results/spool/<id> --tracking-uri http://127.0.0.1:5000
    mia-replay results/spool/*     # into MLFLOW_TRACKING_URI or sqlite:///results/mlflow.db

Idempotent: every run carries its spool id as the ``run_uid`` tag, and a run already complete
under that id (``record_complete`` tag) is skipped, so a run appears once however often it is
replayed. A partial copy (the original run, cut off when the server died) is deleted first.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mlflow.entities import Metric, ViewType
from mlflow.tracking import MlflowClient

from benchmark.config.schema import default_tracking_uri
from benchmark.tracking.run import (
    COMPLETE_TAG,
    UID_TAG,
    RunRecord,
    dataset_inputs,
    log_batch,
)


def spool_message(folder: Path, reason: str, uri: str) -> str:
    """Two lines: what happened and where the run is, and the command that uploads it."""
    return (
        f"tracking failed ({reason}); the complete run is in {folder}\n"
        f"upload it with: mia-replay {folder} --tracking-uri {uri}"
    )


def _existing(client: MlflowClient, experiment_id: str, uid: str) -> list:
    return client.search_runs(
        [experiment_id], filter_string=f"tags.{UID_TAG} = '{uid}'", run_view_type=ViewType.ALL
    )


def _write(client: MlflowClient, experiment_id: str, record: RunRecord, parent: str | None) -> str:
    tags = dict(record.tags)
    tags.pop("mlflow.parentRunId", None)
    if parent:
        tags["mlflow.parentRunId"] = parent
    complete = tags.pop(COMPLETE_TAG, None)
    run = client.create_run(
        experiment_id, start_time=record.start_time, tags=tags, run_name=record.name
    )
    run_id = run.info.run_id
    metrics = [Metric(k, v, t, s) for k, v, t, s in record.metrics]
    log_batch(client, run_id, params=record.params, metrics=metrics)
    if record.inputs:
        client.log_inputs(run_id, datasets=dataset_inputs(record.inputs))
    for child in record.children:
        _write(client, experiment_id, child, run_id)
    if complete:
        client.set_tag(run_id, COMPLETE_TAG, complete)
    client.set_terminated(run_id, record.status, record.end_time)
    return run_id


def _parent(client: MlflowClient, record: RunRecord) -> str | None:
    """The sweep's parent run, when the target store has it."""
    parent = record.tags.get("mlflow.parentRunId")
    if not parent:
        return None
    try:
        return client.get_run(parent).info.run_id
    except Exception:  # another store: the run stands alone
        return None


def replay(folder: Path, uri: str) -> tuple[str, bool]:
    """Upload one spooled run; ``(run_id, created)``: created is False when it was already there."""
    data = json.loads((folder / "run.json").read_text())
    record = RunRecord.from_json(data["run"])
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(data["experiment"])
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(data["experiment"])
    )
    found = _existing(client, experiment_id, record.uid)
    for run in found:
        if run.data.tags.get(COMPLETE_TAG) == "true" and run.info.lifecycle_stage == "active":
            return run.info.run_id, False
    for run in found:  # a partial copy: the original, cut off midway, or a replay cut off
        if run.info.lifecycle_stage == "active":
            client.delete_run(run.info.run_id)
    run_id = _write(client, experiment_id, record, _parent(client, record))
    artifacts = folder / "artifacts"
    if artifacts.exists():
        client.log_artifacts(run_id, str(artifacts))
    return run_id, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mia-replay", description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="spool folders (results/spool/<id>)")
    parser.add_argument(
        "--tracking-uri",
        default=default_tracking_uri(),
        help="the store to upload into (default: MLFLOW_TRACKING_URI, else the local SQLite)",
    )
    args = parser.parse_args(argv)
    for folder in args.folders:
        if not (folder / "run.json").exists():
            print(f"mia-replay: error: {folder} is no spool folder (no run.json)", file=sys.stderr)
            return 2
        run_id, created = replay(folder, args.tracking_uri)
        state = "uploaded as" if created else "already recorded as"
        print(f"{folder}: {state} MLflow run {run_id} in {args.tracking_uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
