"""Per-epoch training metrics share MLflow writes: a replayed curve is one write, not 30."""

from __future__ import annotations

import shutil

from mlflow.tracking import MlflowClient

import benchmark.tracking.run as tracked_run
from benchmark.tracking.run import TrackedRun


def _counting_run(tmp_path, empty_mlflow_db, monkeypatch) -> tuple[TrackedRun, list[int]]:
    shutil.copy(empty_mlflow_db, tmp_path / "mlflow.db")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    writes: list[int] = []
    log_batch = client.log_batch

    def counted(run_id, metrics=(), params=(), tags=()):
        writes.append(len(metrics))
        return log_batch(run_id, metrics=metrics, params=params, tags=tags)

    monkeypatch.setattr(client, "log_batch", counted)
    return TrackedRun(client, client.create_experiment("epochs"), "run", {}), writes


def test_a_replayed_curve_is_written_with_the_runs_next_write(
    tmp_path, empty_mlflow_db, monkeypatch
):
    run, writes = _counting_run(tmp_path, empty_mlflow_db, monkeypatch)
    sink = run.progress_sink()
    for epoch in range(1, 31):  # a reused ensemble replays its 30 epochs at once
        sink(epoch, {"train/loss": 1.0 / epoch, "train/acc": 0.5}, {"train/loss": [1.0, 2.0]})
    assert writes == []
    run.log(metrics={"utility/test_acc": 0.9})
    assert writes == [61]  # one write: the curve, then the run's own metric
    history = run.client.get_metric_history(run.run_id, "train/loss")
    assert sorted(m.step for m in history) == list(range(1, 31))
    assert [e[3] for e in run.model_curves[1]] == list(range(1, 31))


def test_a_slow_epoch_is_written_as_it_ends(tmp_path, empty_mlflow_db, monkeypatch):
    run, writes = _counting_run(tmp_path, empty_mlflow_db, monkeypatch)
    monkeypatch.setattr(tracked_run, "FLUSH_S", 0.0)
    sink = run.progress_sink()
    sink(1, {"train/loss": 1.0}, {})
    sink(2, {"train/loss": 0.5}, {})
    assert writes == [1, 1]


def test_pending_epochs_reach_the_spool(tmp_path, empty_mlflow_db, monkeypatch):
    run, _ = _counting_run(tmp_path, empty_mlflow_db, monkeypatch)
    run.progress_sink()(1, {"train/loss": 1.0}, {})
    run.spool(tmp_path / "spool", "epochs")
    assert [e[0] for e in run.record.metrics] == ["train/loss"]
