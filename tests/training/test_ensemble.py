"""The ensemble engine trains exactly the models the sequential engine trains, all at once."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.cli.job import run
from benchmark.errors import ConfigError
from benchmark.experiment.plan import prepare
from benchmark.models.base import MODELS, build_model
from benchmark.protocol.membership import Membership, make_membership
from benchmark.training.engines import train
from benchmark.training.ensemble import unsupported
from benchmark.training.hooks import TrainingHook
from benchmark.training.stacked_steps import stacked_orders
from benchmark.training.stacking import (
    NotStackable,
    StackedAffine,
    StackedLinear,
    check_stacked,
    stack,
)
from benchmark.training.steps import batch_order, init_model
from benchmark.training.trained import Models, TrainingDiverged
from tests.conftest import FAST, compose_config

#: Image data for the CNN, as small as FAST.
IMAGES = [
    "protocol.n_models=4",
    "training.epochs=2",
    "data=digits",
    "data.n_samples=160",
    "model=cnn",
    "model.channels=[4,8]",
]


def parameters(models: Models, k: int) -> list[torch.Tensor]:
    return [p.detach().cpu() for p in models.modules[k].parameters()]


def largest_difference(a: Models, b: Models) -> float:
    return max(
        float((pa - pb).abs().max())
        for k in range(a.n_models)
        for pa, pb in zip(parameters(a, k), parameters(b, k), strict=True)
    )


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_ensemble_model_k_equals_sequential_model_k(make_config, model, optimizer):
    overrides = IMAGES if model == "cnn" else FAST
    plan = prepare(make_config([*overrides, f"training.optimizer={optimizer}"]), False)
    lr = 0.05 if optimizer == "sgd" else 0.01
    recipe = plan.recipe.replace(lr=lr, weight_decay=1e-3, label_smoothing=0.1)
    sequential = train(recipe.replace(engine="sequential"), plan.pool, plan.membership, False)
    ensemble = train(recipe.replace(engine="ensemble"), plan.pool, plan.membership, False)
    # Float tolerance: bmm and mm round differently, and Adam amplifies that near zero gradients.
    assert largest_difference(sequential, ensemble) < 1e-4
    # The comparison means something only if training moved the weights.
    start = init_model(recipe, plan.pool, int(plan.membership.seeds[0]))
    moved = [
        float((p - q.detach()).abs().max())
        for p, q in zip(parameters(ensemble, 0), start.parameters(), strict=True)
    ]
    assert max(moved) > 1e-2


@pytest.mark.parametrize(
    "name", sorted(set(MODELS) - {"custom"})
)  # custom: tests/training/test_byo.py
def test_every_zoo_model_stacks_and_computes_what_each_model_computes(name):
    shape = (1, 8, 8)
    modules = [build_model(name, shape, 5, channels=[4, 8], hidden=[16, 8]) for _ in range(3)]
    ensemble = stack(modules)
    probe = torch.randn(6, *shape)
    check_stacked(ensemble, modules, probe)  # raises if any model's output differs
    stacked = ensemble(torch.stack([probe] * 3, dim=1))
    assert torch.allclose(stacked[:, 2], modules[2](probe), atol=1e-5)
    # Unstacking round-trips every parameter.
    copies = [build_model(name, shape, 5, channels=[4, 8], hidden=[16, 8]) for _ in range(3)]
    ensemble.unstack_into(copies)
    for original, copy in zip(modules, copies, strict=True):
        for p, q in zip(original.parameters(), copy.parameters(), strict=True):
            assert torch.equal(p, q)


@pytest.mark.parametrize("bias", [True, False])
def test_the_stacked_linear_backward_is_the_gradient(bias):
    layers = [nn.Linear(5, 3, bias=bias).double() for _ in range(4)]
    stacked = StackedLinear(layers)
    x = torch.randn(6, 4, 5, dtype=torch.float64, requires_grad=True)
    inputs = (x, stacked.weight) if not bias else (x, stacked.weight, stacked.bias)

    def affine(x, weight, bias=None):
        return StackedAffine.apply(x, weight, bias)

    assert torch.autograd.gradcheck(affine, inputs)


def test_the_stacking_check_catches_a_wrong_stack():
    modules = [build_model("mlp", (10,), 3) for _ in range(2)]
    ensemble = stack(modules)
    with torch.no_grad():
        ensemble.layers[-1].bias[1] += 1.0  # model 1's stacked copy no longer matches model 1
    with pytest.raises(NotStackable, match="model 1"):
        check_stacked(ensemble, modules, torch.randn(4, 10))


def _batchnorm_mlp(input_shape, num_classes, **_):
    width = int(np.prod(input_shape))
    return nn.Sequential(
        nn.Flatten(), nn.Linear(width, 8), nn.BatchNorm1d(8), nn.Linear(8, num_classes)
    )


def test_an_unstackable_model_falls_back_to_sequential_with_a_message(
    make_config, monkeypatch, caplog
):
    plan = prepare(make_config(FAST), False)
    recipe = plan.recipe.replace(model="bn_mlp", epochs=1)
    with MODELS.temporarily("bn_mlp", _batchnorm_mlp):
        with caplog.at_level(logging.WARNING, logger="benchmark.training.ensemble"):
            ensemble = train(recipe, plan.pool, plan.membership, False)
        sequential = train(recipe.replace(engine="sequential"), plan.pool, plan.membership, False)
    assert "BatchNorm1d" in caplog.text and "training sequentially" in caplog.text
    assert largest_difference(sequential, ensemble) == 0.0


@dataclasses.dataclass(frozen=True)
class LoopHook(TrainingHook):
    """A hook with a per-step callback, which only the sequential engine calls."""

    def sequential_reason(self) -> str:
        return "a test's loop hook"


@dataclasses.dataclass(frozen=True)
class CheckOnlyHook(TrainingHook):
    """A hook that only checks the data: any engine can train its recipe."""

    def sequential_reason(self) -> None:
        return None


def test_a_recipe_with_a_hook_the_ensemble_does_not_call_is_refused(make_config):
    plan = prepare(make_config(FAST), False)
    membership = plan.membership
    assert unsupported(plan.recipe, membership) is None
    assert unsupported(plan.recipe.with_hook(CheckOnlyHook()), membership) is None
    reason = unsupported(plan.recipe.with_hook(LoopHook()), membership)
    assert reason == "a test's loop hook need the sequential engine"


def test_a_recipe_with_a_hook_falls_back_to_sequential_with_its_reason(make_config, caplog):
    plan = prepare(make_config(FAST), False)
    recipe = plan.recipe.replace(epochs=1).with_hook(LoopHook())
    with caplog.at_level(logging.WARNING, logger="benchmark.training.ensemble"):
        ensemble = train(recipe, plan.pool, plan.membership, False)
    sequential = train(recipe.replace(engine="sequential"), plan.pool, plan.membership, False)
    assert "a test's loop hook" in caplog.text and "training sequentially" in caplog.text
    assert largest_difference(sequential, ensemble) == 0.0


def test_training_sets_of_different_sizes_are_refused():
    matrix = np.array([[1, 1, 1, 0], [0, 0, 1, 1]], dtype=bool)
    membership = Membership(matrix, np.zeros(4, bool), np.array([1, 2]), np.array([0, 1]))
    recipe = prepare(compose_config(FAST), False).recipe
    assert "different sizes" in unsupported(recipe, membership)


def test_divergence_is_reported_per_model(make_config):
    plan = prepare(make_config([*FAST, "training.optimizer=sgd", "training.lr=1e12"]), False)
    with pytest.raises(TrainingDiverged, match="model"):
        train(plan.recipe, plan.pool, plan.membership, False)
    outcome = run(make_config([*FAST, "training.optimizer=sgd", "training.lr=1e12"]), False)
    assert outcome.failure is not None and "diverged" in outcome.failure


def test_dropout_training_is_reproducible_and_drops(make_config):
    plan = prepare(make_config([*FAST, "model.dropout=0.5"]), False)
    first = train(plan.recipe, plan.pool, plan.membership, False)
    second = train(plan.recipe, plan.pool, plan.membership, False)
    assert largest_difference(first, second) == 0.0
    without = train(
        plan.recipe.replace(model_options={"hidden": [256]}), plan.pool, plan.membership, False
    )
    assert largest_difference(first, without) > 1e-4


def test_the_ensemble_honours_training_device(make_config):
    plan = prepare(make_config([*FAST, "training.device=auto"]), False)
    models = train(plan.recipe, plan.pool, plan.membership, False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert models.device.type == expected
    assert all(p.device.type == expected for p in models.modules[0].parameters())
    assert models.logits(0, plan.pool.x_test).device.type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no GPU"):
            train(plan.recipe.replace(device="cuda"), plan.pool, plan.membership, False)


def test_the_stacked_orders_are_each_models_batch_order():
    membership = make_membership(50, 4, seed=3)
    stacked = list(stacked_orders(membership, 3, 8, torch.device("cpu")))
    for k, seed in enumerate(membership.seeds):
        expected = list(batch_order(membership.members(k), 3, 8, int(seed)))
        assert len(stacked) == len(expected)
        for index, batch in zip(stacked, expected, strict=True):
            assert index[k].tolist() == batch.tolist()
