"""Bring your own model, data and training loop (issue 14), with the example package in
``tests/fixtures/byo``: the generic stacked path against the sequential engine, end-to-end runs
tracked in MLflow, and one test per refusal."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from benchmark.cli.job import run
from benchmark.errors import ConfigError
from benchmark.experiment.plan import prepare
from benchmark.training.engines import train
from tests.conftest import REPO, compose_config, only_attacks, seed_store

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "byo"
SMALL = ["protocol.n_models=4", "training.epochs=2"]
MODEL = ["model=custom", "model._target_=byo_example.nets.ResidualNet", "+model.width=16"]
DATA = ["data=custom", "data._target_=byo_example.data.load"]
LOOP = ["training=custom", "training._target_=byo_example.train.fit"]


@pytest.fixture(autouse=True)
def example_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FIXTURES))


def config(*overrides: str, store: Path | None = None):
    return compose_config([*SMALL, *overrides], store)


def all_logits(models, x) -> torch.Tensor:
    return torch.stack([models.logits(k, x) for k in range(models.n_models)])


def test_functional_path_matches_sequential(caplog: pytest.LogCaptureFixture) -> None:
    plan = prepare(config(*MODEL, *DATA), show_progress=False)
    with caplog.at_level(logging.INFO, logger="benchmark.training.ensemble"):
        stacked = train(plan.recipe, plan.pool, plan.membership, False)
    assert "trained the models with torch.func" in caplog.text
    sequential = train(plan.recipe.replace(engine="sequential"), plan.pool, plan.membership, False)
    x = plan.pool.x_test
    expected = all_logits(sequential, x)
    torch.testing.assert_close(all_logits(stacked, x), expected, rtol=1e-4, atol=1e-5)
    # Training moved the weights: the comparison is not between two untrained copies.
    untrained = plan.recipe.replace(epochs=1, lr=1e-9, engine="sequential")
    assert not torch.allclose(
        all_logits(train(untrained, plan.pool, plan.membership, False), x), expected
    )


def test_batch_dependent_model_trains_sequentially(caplog: pytest.LogCaptureFixture) -> None:
    model = ["model=custom", "model._target_=byo_example.nets.BatchNormNet"]
    plan = prepare(config(*model, *DATA), show_progress=False)
    with caplog.at_level(logging.WARNING, logger="benchmark.training.ensemble"):
        models = train(plan.recipe, plan.pool, plan.membership, False)
    assert "training sequentially" in caplog.text and "BatchNorm1d" in caplog.text
    sequential = train(plan.recipe.replace(engine="sequential"), plan.pool, plan.membership, False)
    x = plan.pool.x_test
    assert torch.equal(all_logits(models, x), all_logits(sequential, x))


def test_dpsgd_trains_a_custom_model_through_opacus() -> None:
    plan = prepare(config(*MODEL, *DATA, "defense=dpsgd", "protocol.n_models=2"), False)
    models = train(plan.recipe, plan.pool, plan.membership, False)
    assert models.epsilons is not None and len(models.epsilons) == 2
    assert all(0 < e <= plan.recipe.dp.target_epsilon * 1.01 for e in models.epsilons)


def test_cli_runs_own_model_data_and_loop_into_mlflow(tmp_path: Path, empty_mlflow_db) -> None:
    store = tmp_path / "results"
    seed_store(store, empty_mlflow_db)
    args = [
        *SMALL,
        *MODEL,
        *DATA,
        *LOOP,
        *only_attacks("loss", "lira_online"),
        "defense=topk",
        f"tracking.uri=sqlite:///{store}/mlflow.db",
        f"tracking.artifact_location={store}/mlartifacts",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(FIXTURES)])}
    done = subprocess.run(
        [sys.executable, "-m", "benchmark.cli", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{store}/mlflow.db")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments)
    finished = [
        r for r in runs if r.info.status == "FINISHED" and "utility/test_acc" in r.data.metrics
    ]
    assert finished, [r.info.status for r in runs]
    metrics = finished[0].data.metrics
    assert any(key.endswith("/lira_online/auc") for key in metrics)
    assert 0.0 <= metrics["utility/test_acc"] <= 1.0


def test_loop_epsilon_and_predict_function_are_used() -> None:
    loop = ["training=custom", "training._target_=byo_example.train.fit_with_epsilon"]
    outcome = run(config(*MODEL, *DATA, *loop, "tracking.enabled=false"), show_progress=False)
    assert outcome.result is not None and outcome.result.epsilons == [8.0] * 4
    assert outcome.result.summary()["dp/epsilon"].mean == 8.0
    predict = ["training=custom", "training._target_=byo_example.train.fit_predict"]
    first = run(config(*DATA, *predict, "tracking.enabled=false"), show_progress=False)
    again = run(config(*DATA, *predict, "tracking.enabled=false"), show_progress=False)
    assert first.result is not None and again.result is not None
    assert first.result.summary() == again.result.summary()  # same config and seed: same metrics
    assert first.result.summary()["utility/test_acc"].mean > 0.5  # the loop really trained


def test_custom_image_loader_with_builtin_cnn() -> None:
    data = ["data=custom", "data._target_=byo_example.data.load_images", "model=cnn"]
    plan = prepare(config(*data, "model.channels=[4]"), show_progress=False)
    assert plan.pool.kind == "image" and plan.pool.input_shape == (1, 6, 6)
    assert plan.pool.num_classes == 3


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=custom", "model._target_=byo_example.nets.Missing"], "model._target_="),
        (["model=custom", "model._target_=no_such_pkg.Net"], "cannot be imported"),
        (["model=custom"], "set model._target_"),
        (["model=custom", "model._target_=byo_example.nets.broken"], "width must be positive"),
        (["model=custom", "model._target_=byo_example.nets.too_narrow"], "4 wide"),
        ([*MODEL, "+model.depth=3"], "model._target_="),
        ([*MODEL, "defense=dropout"], "add the dropout layer"),
        (["data=custom", "data._target_=byo_example.data.nope"], "data._target_="),
        (["data=custom", "data._target_=byo_example.data.load_nan"], "NaN"),
        (["data=custom", "data._target_=byo_example.data.load_list"], "(features, labels)"),
        (["training=custom", "training._target_=byo_example.train.nope"], "training._target_="),
        ([*LOOP, "defense=dpsgd"], "recipe.dp"),
        ([*LOOP, "defense=label_smoothing"], "recipe.label_smoothing"),
        (
            ["model=custom", "model._target_=byo_example.nets.BatchNormNet", "defense=dpsgd"],
            "BatchNorm",
        ),
    ],
)
def test_bad_input_is_refused_before_training(overrides: list[str], message: str) -> None:
    cfg = config(*([] if any(o.startswith("data=") for o in overrides) else DATA), *overrides)
    with pytest.raises(ConfigError, match=None) as refused:
        prepare(cfg, show_progress=False)
    text = str(refused.value)
    assert message in text and "\n" not in text, text


def test_loop_returning_wrong_type_is_refused() -> None:
    loop = ["training=custom", "training._target_=byo_example.train.fit_wrong_type"]
    with pytest.raises(ConfigError, match="training._target_=.*returned str"):
        run(config(*DATA, *loop, "tracking.enabled=false"), show_progress=False)


def test_loop_returning_a_model_of_the_wrong_width_is_refused() -> None:
    loop = ["training=custom", "training._target_=byo_example.train.fit_narrow"]
    with pytest.raises(ConfigError, match=r"training._target_=.*outputs \(2, 3\).*4 wide"):
        run(config(*DATA, *loop, "tracking.enabled=false"), show_progress=False)


def test_loop_failing_midway_marks_the_run_failed(tmp_path: Path, empty_mlflow_db) -> None:
    store = tmp_path / "results"
    seed_store(store, empty_mlflow_db)
    loop = ["training=custom", "training._target_=byo_example.train.fit_fails"]
    outcome = run(config(*DATA, *loop, store=store), show_progress=False)
    assert outcome.result is None and "CUDA out of memory (simulated)" in str(outcome.failure)
    client = MlflowClient(tracking_uri=f"sqlite:///{store}/mlflow.db")
    assert client.get_run(outcome.run_id).info.status == "FAILED"
