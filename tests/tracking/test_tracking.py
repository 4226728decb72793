"""MLflow records: one run per configuration, a child per target, stable keys, artifacts."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from benchmark.cli.job import run
from benchmark.cli.main import main
from benchmark.signals.arrays import Signals
from tests.conftest import FAST, quick, run_cli, seed_store


def runs_of(store: Path) -> list:
    client = MlflowClient(tracking_uri=f"sqlite:///{store}/mlflow.db")
    experiment = client.get_experiment_by_name("mia-bench")
    return client, client.search_runs([experiment.experiment_id], max_results=1000)


def test_configuration_run_with_a_child_per_target(make_config, tmp_path):
    outcome = run(make_config(FAST, track=True), show_progress=False)
    client, runs = runs_of(tmp_path / "results")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == outcome.run_id]
    assert [r.info.run_id for r in parents] == [outcome.run_id] and len(children) == 4
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    for key in ("utility/test_acc", "privacy/lira_online/auc", "privacy/loss/tpr_at_fpr_0.001"):
        assert key in parent.data.metrics and f"{key}_ci_low" in parent.data.metrics
        assert all(key in c.data.metrics for c in children)
    assert "privacy/lira_offline/tpr_at_fpr_0.01" in children[0].data.metrics
    mean = np.mean([c.data.metrics["privacy/lira_online/auc"] for c in children])
    assert parent.data.metrics["privacy/lira_online/auc"] == mean
    tags = parent.data.tags
    assert tags["defense"] == "none" and tags["seed"] == "0" and len(tags["config_hash"]) == 16
    assert tags["suite_version"] and tags["git_commit"] and tags["version/torch"].startswith("2.")
    assert parent.data.params["protocol.n_models"] == "4"
    assert "defense.none" not in parent.data.params  # an empty mapping: no param (no "{}" axis)
    names = {a.path for a in client.list_artifacts(outcome.run_id)}
    assert {
        "config.yaml",
        "roc.png",
        "scores.npz",
        "metrics.csv",
        "signals.npz",
        "summary.md",
    } <= names
    signals = Signals.load(client.download_artifacts(outcome.run_id, "signals.npz", str(tmp_path)))
    assert signals.outputs.dtype == np.float32 and signals.outputs.shape[0] == 4
    assert signals.membership.dtype == bool and signals.targets.tolist() == [0, 1, 2, 3]


def test_same_configuration_gives_identical_metrics(make_config):
    first = run(make_config(FAST), show_progress=False).result.summary()
    second = run(make_config(FAST), show_progress=False).result.summary()
    assert first == second


def store_args(cwd: Path) -> list[str]:
    return [
        f"tracking.uri=sqlite:///{cwd}/store/mlflow.db",
        f"tracking.artifact_location={cwd}/art",
    ]


def cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return run_cli([*args, *store_args(cwd)], cwd)


def test_bad_input_fails_with_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    """Through the console script's ``main`` in this process: the code path of the shell, without
    a new interpreter's imports per case (``tests/cli/test_bad_input.py`` runs refusals as a
    subprocess too)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["mia-bench"])
    for args, message in [
        (["data=npz", "data.path=/nonexistent"], "data.path=/nonexistent does not exist"),
        (["protocol.n_models=3"], "protocol.n_models must be even"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            main([*args, *store_args(tmp_path)])
        _, err = capsys.readouterr()
        assert exit_.value.code != 0
        lines = err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in err
        assert not (tmp_path / "store").exists()


def test_sweep_groups_configurations_under_one_parent(tmp_path, empty_mlflow_db):
    seed_store(tmp_path / "store", empty_mlflow_db)
    result = cli(["-m", "defense=none,weight_decay,topk", *quick()], tmp_path)
    assert result.returncode == 0, result.stderr
    _, runs = runs_of(tmp_path / "store")
    sweeps = [r for r in runs if r.data.tags.get("mlflow.runName", "").startswith("sweep")]
    assert len(sweeps) == 1 and sweeps[0].info.status == "FINISHED"
    jobs = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == sweeps[0].info.run_id]
    assert sorted(r.data.tags["defense"] for r in jobs) == ["none", "topk", "weight_decay"]
    targets = [
        r for r in runs if r.data.tags.get("mlflow.parentRunId") in {j.info.run_id for j in jobs}
    ]
    assert len(targets) == 3 * 4
