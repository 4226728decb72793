"""A tracked MLflow run whose whole record also stays in memory, so a failing tracker loses nothing.

Every param, tag, metric (with its step and real timestamp), dataset input and artifact goes to
MLflow as it happens *and* into a :class:`RunRecord`. When an MLflow call fails (a killed server),
the run stops talking to MLflow and, when it ends, writes the complete record to a spool folder
that :mod:`benchmark.tracking.spool` replays into any store, idempotently: every run carries a
``run_uid`` tag, the spool's id.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from benchmark.interrupts import deferred_interrupts
from benchmark.progress import EpochSink

log = logging.getLogger(__name__)

UID_TAG = "run_uid"
#: Set last, just before the end status: a replay skips a run that has it.
COMPLETE_TAG = "record_complete"
_BATCH = 100  # MLflow accepts at most 100 params per log_batch call
#: Seconds the per-epoch training metrics may wait to share one MLflow write: a reused
#: ensemble's replayed curve (every epoch at once) and fast epochs cost one write, not one each
#: (each write is several SQLite commits), while a slow epoch is still written as it ends.
FLUSH_S = 1.0

#: One metric as the record keeps it: key, value, timestamp (ms), step.
Entry = tuple[str, float, int, int]


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class RunRecord:
    """Everything one MLflow run holds, as plain data (JSON in a spool)."""

    uid: str
    name: str
    start_time: int
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[Entry] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)  # Dataset fields + context
    children: list[RunRecord] = field(default_factory=list)
    status: str = "RUNNING"
    end_time: int | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        children = [cls.from_json(c) for c in data.pop("children")]
        metrics = [tuple(m) for m in data.pop("metrics")]
        return cls(**data, metrics=metrics, children=children)  # type: ignore[arg-type]


def log_batch(client: MlflowClient, run_id: str, params=None, metrics=None, tags=None) -> None:
    """Params, metrics and tags in MLflow's batch limits."""
    params = [Param(k, v[:6000]) for k, v in (params or {}).items()]
    for i in range(0, len(params), _BATCH):
        client.log_batch(run_id, params=params[i : i + _BATCH])
    metrics = list(metrics or [])
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i : i + 1000])
    tags = [RunTag(k, str(v)[:8000]) for k, v in (tags or {}).items()]
    for i in range(0, len(tags), _BATCH):
        client.log_batch(run_id, tags=tags[i : i + _BATCH])


def dataset_inputs(inputs: list[dict[str, Any]]) -> list[DatasetInput]:
    return [
        DatasetInput(
            Dataset(**{k: v for k, v in d.items() if k != "context"}),
            [InputTag("mlflow.data.context", d["context"])],
        )
        for d in inputs
    ]


class TrackedRun:
    """One MLflow run, opened RUNNING at once, mirrored into a :class:`RunRecord`."""

    def __init__(
        self,
        client: MlflowClient,
        experiment_id: str,
        name: str,
        tags: dict[str, str],
        record: RunRecord | None = None,
        lost: str | None = None,
    ) -> None:
        self.client, self.experiment_id = client, experiment_id
        self.record = record or RunRecord(uuid.uuid4().hex, name, now_ms())
        self.record.tags.update({"mlflow.runName": name, UID_TAG: self.record.uid, **tags})
        self.lost = lost  # why MLflow stopped answering, once it did
        #: Each model's training curve (model index -> entries), kept for its target run.
        self.model_curves: dict[int, list[Entry]] = {}
        self.artifact_dir: Path | None = None
        #: Training metrics reported but not yet written (:meth:`progress_sink`).
        self._pending: list[Entry] = []
        self._written = time.monotonic()
        created = self._call(
            client.create_run,
            experiment_id,
            start_time=self.record.start_time,
            tags=self.record.tags,
            run_name=name,
        )
        self.run_id: str | None = created.info.run_id if created is not None else None
        self.artifact_uri: str | None = created.info.artifact_uri if created is not None else None

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call MLflow unless it already failed; a failure is remembered, never raised."""
        if self.lost is not None or (fn != self.client.create_run and self.run_id is None):
            return None
        try:
            with deferred_interrupts():  # a write cut in half would lock the SQLite store
                return fn(*args, **kwargs)
        except Exception as exc:  # any transport or store error: the record keeps everything
            self.lost = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            log.warning("MLflow stopped answering (%s); recording locally", self.lost)
            return None

    def log(
        self, params=None, metrics=None, tags=None, step: int = 0, history: Sequence[Entry] = ()
    ) -> None:
        """One log_batch: ``metrics`` stamped now at ``step``, ``history`` as already stamped,
        after the training metrics still pending."""
        stamp = now_ms()
        entries = [(k, float(v), stamp, step) for k, v in (metrics or {}).items()]
        entries = [e for e in [*self._pending, *history, *entries] if np.isfinite(e[1])]
        self._pending, self._written = [], time.monotonic()
        self.record.params.update(params or {})
        self.record.tags.update({k: str(v) for k, v in (tags or {}).items()})
        self.record.metrics += entries
        batch = [Metric(k, v, t, s) for k, v, t, s in entries]
        self._call(log_batch, self.client, self.run_id, params, batch, tags)

    def progress_sink(self) -> EpochSink:
        """The engines' per-epoch sink: the means over the models go to this run, stamped with
        the epoch's time, in one log_batch per :data:`FLUSH_S` seconds at most (the rest with the
        run's next write); each model's values wait in :attr:`model_curves` for its target run,
        which opens when the attacks are done."""

        def sink(step: int, means: dict[str, float], per_model: dict[str, list[float]]) -> None:
            stamp = now_ms()  # one time for the epoch, in this run and in the target runs
            self._pending += [(key, value, stamp, step) for key, value in means.items()]
            if time.monotonic() - self._written >= FLUSH_S:
                self.log()
            for key, values in per_model.items():
                for k, value in enumerate(values):
                    self.model_curves.setdefault(k, []).append((key, float(value), stamp, step))

        return sink

    def log_inputs(self, inputs: list[dict[str, Any]]) -> None:
        self.record.inputs += inputs
        self._call(self.client.log_inputs, self.run_id, datasets=dataset_inputs(inputs))

    def log_artifacts(self, folder: Path) -> None:
        self._call(self.client.log_artifacts, self.run_id, str(folder))
        if self.lost is not None:  # the caller's folder is temporary: keep a copy for the spool
            self.artifact_dir = Path(tempfile.mkdtemp(prefix="mia-spool-"))
            shutil.copytree(folder, self.artifact_dir, dirs_exist_ok=True)

    def child(self, name: str, tags: dict[str, str]) -> TrackedRun:
        """A child run (a target) under this one, recorded inside this run's record."""
        tags = {**tags, "mlflow.parentRunId": self.run_id or ""}
        child = TrackedRun(self.client, self.experiment_id, name, tags, lost=self.lost)
        self.record.children.append(child.record)
        return child

    def end(self, status: str, reason: str | None = None) -> None:
        """``FINISHED``, ``FAILED`` (with ``failure_reason``) or ``KILLED`` (``killed_reason``)."""
        if reason is not None:
            key = "killed_reason" if status == "KILLED" else "failure_reason"
            self.log(tags={key: reason[:5000]})
        self.log(tags={COMPLETE_TAG: "true"})
        self.record.status, self.record.end_time = status, now_ms()
        self._call(self.client.set_terminated, self.run_id, status, self.record.end_time)
        for child in self.record.children:
            if child.status == "RUNNING":  # a child left open by a crash ends with its parent
                child.status, child.end_time = status, self.record.end_time

    def spool(self, root: Path, experiment: str) -> Path:
        """Write the complete record (and the artifacts) to ``root/<uid>/``."""
        self.record.metrics += [e for e in self._pending if np.isfinite(e[1])]
        self._pending = []
        folder = root / self.record.uid
        folder.mkdir(parents=True, exist_ok=True)
        data = {"experiment": experiment, "run": asdict(self.record)}
        (folder / "run.json").write_text(json.dumps(data, indent=1))
        if self.artifact_dir is not None and self.artifact_dir.exists():
            shutil.copytree(self.artifact_dir, folder / "artifacts", dirs_exist_ok=True)
        return folder
