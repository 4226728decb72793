"""End to end (FAST config): stored models give the metrics of freshly trained ones, for
release-time defenses, the naive attacker's shadows, shards trained in two processes, and a
re-attack of a finished run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from benchmark.cli import reattack
from benchmark.cli.job import run
from benchmark.experiment.execute import execute
from benchmark.experiment.plan import prepare
from benchmark.tracking.record import configuration_metrics
from tests.conftest import FAST, REPO, compose_config

pytestmark = pytest.mark.slow
#: Attacking two of the models is enough to compare metrics, at half the cost.
TWO_TARGETS = ["protocol.n_targets=2"]


def metrics(overrides: list[str], store: Path | None = None):
    """The configuration metrics and the models' source; the model store under ``store``."""
    cached = ["training.cache=true", f"training.store={store}"] if store else []
    config = compose_config([*FAST, *TWO_TARGETS, *overrides, *cached])
    result = execute(prepare(config, show_progress=False))
    return configuration_metrics(result), result


def test_release_time_defenses_and_naive_shadows_reuse_one_ensemble(tmp_path: Path):
    sources = []
    for defense in ("none", "topk", "rounding", "label_only"):
        reused, result = metrics([f"defense={defense}"], tmp_path)
        fresh, _ = metrics([f"defense={defense}"])
        assert reused == fresh, defense
        sources.append(result.models_origin.source)
    key = result.models_origin.key
    assert sources == ["trained", *[f"cache:{key}"] * 3]
    naive = ["defense=weight_decay", "attacker.knows_defense=false"]
    _, result = metrics(naive, tmp_path)
    assert result.models_origin.source == "trained"  # weight decay trains other models
    assert result.shadow_origin.source == f"cache:{key}"  # the undefended shadows are none's


def test_two_shard_processes_then_the_attack_give_the_unsharded_metrics(tmp_path: Path):
    """Shard 1/2 in a ``mia-bench`` process while this process trains shard 0/2."""
    args = [*FAST, "protocol.n_models=8", f"training.store={tmp_path}", "tracking.enabled=false"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    other = subprocess.Popen(
        [sys.executable, "-m", "benchmark.cli", *args, "training.shard=1/2"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    here = run(compose_config([*args, "training.cache=true", "training.shard=0/2"]), False)
    out, _ = other.communicate(timeout=300)
    assert other.returncode == 0, out
    assert "shard 1/2: trained into" in out and "nothing attacked" in out
    assert here.result is None and here.run_id is None and "shard 0/2: trained" in here.summary
    sharded, result = metrics(["protocol.n_models=8"], tmp_path)
    assert result.models_origin.source.startswith("cache:")
    assert sharded == metrics(["protocol.n_models=8"])[0]


def test_a_reattack_reproduces_a_finished_run_and_refuses_unstored_models(
    tmp_path: Path, empty_mlflow_db: Path, capsys
):
    shutil.copy(empty_mlflow_db, tmp_path / "mlflow.db")
    outcome = run(compose_config([*FAST, *TWO_TARGETS], store=tmp_path), show_progress=False)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert reattack.main([outcome.run_id, "--tracking-uri", uri, "--quiet"]) == 0
    client = MlflowClient(tracking_uri=uri)
    source = client.get_run(outcome.run_id)
    (again,) = client.search_runs(
        [source.info.experiment_id], f"tags.{reattack.SOURCE_TAG} = '{outcome.run_id}'"
    )
    assert again.data.metrics == source.data.metrics  # the training curve too, replayed
    assert again.data.params == source.data.params
    assert source.data.tags["models_source"] == "trained"
    assert again.data.tags["models_source"] == f"cache:{source.data.tags['models_key']}"
    assert [a.path for a in client.list_artifacts(outcome.run_id, "models")] == [
        "models/manifest.json",
        "models/models.pt",
    ]
    capsys.readouterr()
    shutil.rmtree(tmp_path / "models")
    assert reattack.main([outcome.run_id, "--tracking-uri", uri, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("mia-reattack: error: ") and "not in" in err
    assert len(client.search_runs([source.info.experiment_id], "tags.config_hash != ''")) == 2


class _Run:
    """What :func:`reattack.stored_key` reads of a run."""

    def __init__(self, tags: dict[str, str]) -> None:
        self.data = type("Data", (), {"tags": tags})()
        self.info = type("Info", (), {"run_id": "r1"})()


def test_a_run_whose_models_were_not_stored_is_refused():
    with pytest.raises(reattack.ConfigError, match="training.cache=false"):
        reattack.stored_key(
            _Run(
                {
                    "models_source": "trained",
                    "models_key": "k",
                    "models_not_stored": "training.cache=false",
                }
            )
        )
    with pytest.raises(reattack.ConfigError, match="before the model store"):
        reattack.stored_key(_Run({}))
    assert reattack.stored_key(_Run({"models_key": "k"})) == "k"
