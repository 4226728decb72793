"""Release-time defenses do what they say, and change utility only as they should."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from benchmark.errors import ConfigError
from benchmark.experiment.execute import execute
from benchmark.experiment.plan import prepare
from benchmark.release.api import Release
from defenses import memguard
from defenses.base import build_defenses
from defenses.memguard import (
    DISTANCE_WEIGHT,
    KAPPA,
    LABEL_WEIGHT,
    class_sums,
    memguard_loss,
    normalised_confidence,
)
from tests.conftest import FAST

#: Probability rows with many near-ties and tiny entries (the hard cases for argmax and rounding).
probability_rows = arrays(
    np.float64, (6, 5), elements=st.sampled_from([1e-9, 0.01, 0.2, 0.2000001, 0.3, 0.5, 1.0])
).map(lambda a: a / a.sum(axis=1, keepdims=True))


def release(selection: dict, probabilities: np.ndarray) -> np.ndarray:
    return Release(build_defenses(selection))(probabilities)


@settings(max_examples=60, deadline=None)
@given(probability_rows, st.integers(1, 4))
def test_rounding_releases_only_multiples_of_ten_to_minus_d(probabilities, decimals):
    released = release({"rounding": {"decimals": decimals}}, probabilities).astype(np.float64)
    units = released * 10**decimals
    assert np.allclose(units, np.round(units), rtol=0, atol=1e-6 * 10**decimals)
    assert np.all(np.abs(released - probabilities) <= 0.5 * 10**-decimals + 1e-7)


def test_rounding_refuses_zero_decimals():
    (rounding,) = build_defenses({"rounding": {"decimals": 0}})
    with pytest.raises(ConfigError, match="decimals must be >= 1.*label_only"):
        rounding.check(n_train=100, num_classes=10)


@settings(max_examples=60, deadline=None)
@given(probability_rows, st.sampled_from([0.05, 0.5, 2.0]), st.sampled_from([0.0, 0.5, 0.9]))
def test_memguard_keeps_the_label_the_simplex_and_the_budget(probabilities, epsilon, boundary):
    selection = {"memguard": {"epsilon": epsilon, "boundary": boundary, "steps": 30}}
    released = release(selection, probabilities)
    undefended = Release([])(probabilities)
    assert np.array_equal(released.argmax(axis=1), undefended.argmax(axis=1))
    assert np.all(released >= 0) and np.allclose(released.sum(axis=1), 1, atol=1e-6)
    assert np.all(np.abs(released - probabilities).sum(axis=1) <= epsilon + 1e-6)
    assert np.array_equal(released, release(selection, probabilities))  # same query, same answer


def test_memguard_moves_confidence_toward_the_boundary():
    rng = np.random.default_rng(0)
    probabilities = np.concatenate(
        [rng.dirichlet(np.full(10, 0.05), 200), rng.dirichlet(np.full(10, 5.0), 200)]
    )
    released = release({"memguard": {"epsilon": 1.0, "boundary": 0.5}}, probabilities)
    before = normalised_confidence(probabilities)
    after = normalised_confidence(released.astype(np.float64))
    assert np.mean(np.abs(after - 0.5)) < 0.5 * np.mean(np.abs(before - 0.5))
    assert np.abs(released - probabilities).sum(axis=1).max() > 0.9  # the budget is used


def test_memguard_gradient_matches_autograd():
    rng = np.random.default_rng(1)
    probabilities = rng.dirichlet(np.full(6, 0.5), 20)
    z = np.log(probabilities)
    e = rng.normal(0, 1, z.shape)
    _, grad = memguard_loss(e, z, probabilities, 0.4)
    leaf = torch.tensor(e, requires_grad=True)
    logits = torch.as_tensor(z) + leaf
    q = torch.softmax(logits, 1)
    confidence = 1 + (q * q.log()).sum(1) / math.log(6)
    score = KAPPA * (confidence - 0.4)
    label = torch.as_tensor(probabilities.argmax(1))[:, None]
    runner_up = logits.scatter(1, label, -math.inf).max(1).values
    hinge = torch.relu(runner_up - logits.gather(1, label)[:, 0])
    distance = (q - torch.as_tensor(probabilities)).abs().sum(1)
    (score.abs() + LABEL_WEIGHT * hinge + DISTANCE_WEIGHT * distance).sum().backward()
    assert hinge.gt(0).any()  # the label term is exercised
    assert np.allclose(grad, leaf.grad.numpy(), atol=1e-8)


def test_memguard_parameters_are_checked():
    (memguard,) = build_defenses({"memguard": {"epsilon": 3.0}})
    with pytest.raises(ConfigError, match="epsilon must be in"):
        memguard.check(n_train=100, num_classes=10)


def test_topk_and_memguard_keep_test_accuracy_of_the_same_models(fast_trained):
    """Same trained models, three APIs: top-1 and MemGuard release the same labels as `none`."""
    x_test, y_test = fast_trained.plan.pool.x_test, fast_trained.plan.pool.y_test
    models = fast_trained.models
    apis = {name: Release(build_defenses({name: {}})) for name in ("none", "topk", "memguard")}
    for k in range(models.n_models):
        predicted = {name: api.query(models, k, x_test).argmax(1) for name, api in apis.items()}
        accuracy = {name: np.mean(p == y_test) for name, p in predicted.items()}
        assert np.array_equal(predicted["topk"], predicted["none"])
        assert np.array_equal(predicted["memguard"], predicted["none"])
        assert accuracy["topk"] == accuracy["memguard"] == accuracy["none"]
        released = apis["memguard"].query(models, k, x_test)
        assert not np.allclose(released, apis["none"].query(models, k, x_test))  # it does act


def test_training_and_release_defenses_compose(make_config):
    plan = prepare(make_config([*FAST, "defense=[weight_decay,rounding]"]), show_progress=False)
    assert plan.recipe.weight_decay == 0.005
    result = execute(plan)
    assert result.signals.release_kind == "truncated"
    units = result.signals.outputs.astype(np.float64) * 100
    assert np.allclose(units, np.round(units), atol=1e-4)
    outputs = result.signals.outputs
    k = int(result.targets[0])
    members = result.signals.membership[k]
    train_acc = np.mean(outputs[k, members].argmax(1) == result.signals.labels[members])
    assert result.utility["train_acc"][0] == pytest.approx(train_acc)


@pytest.mark.parametrize("classes", [1, 2, 3, 7, 8, 9, 10, 17, 100, 129, 300])
def test_class_sums_are_numpys_row_sums_bit_for_bit(classes):
    rng = np.random.default_rng(classes)
    rows = rng.normal(size=(500, classes)) * rng.lognormal(0, 3, size=(500, classes))
    rows[0] = -0.0  # numpy's sum of negative zeros is +0.0
    assert np.array_equal(class_sums(np.ascontiguousarray(rows.T)), rows.sum(axis=1))
    assert np.signbit(rows.sum(axis=1)[0]) == np.signbit(class_sums(rows[:1].T.copy())[0])


def reference_search_noise(probabilities: np.ndarray, boundary: float, steps: int) -> np.ndarray:
    """Phase I as first written (row-major, scipy's softmax, the whole array at once): the
    reference the vectorised search must equal bit for bit."""
    from scipy.special import softmax

    rows, label = np.arange(len(probabilities)), probabilities.argmax(axis=1)
    z = np.log(np.maximum(probabilities, 1e-300))
    e, first, second = np.zeros_like(z), np.zeros_like(z), np.zeros_like(z)
    for t in range(1, steps + 1):
        logits = z + e
        q = softmax(logits, axis=1)
        log_q = np.log(np.maximum(q, 1e-300))
        score = KAPPA * (normalised_confidence(q) - boundary)
        others = logits.copy()
        others[rows, label] = -np.inf
        runner_up = others.argmax(axis=1)
        hinge = np.maximum(logits[rows, runner_up] - logits[rows, label], 0.0)
        slope = np.sign(score) * KAPPA / math.log(q.shape[1])
        grad_q = slope[:, None] * (log_q + 1.0) + DISTANCE_WEIGHT * np.sign(q - probabilities)
        grad = q * (grad_q - (q * grad_q).sum(axis=1, keepdims=True))
        active = hinge > 0
        grad[rows[active], runner_up[active]] += LABEL_WEIGHT
        grad[rows[active], label[active]] -= LABEL_WEIGHT
        first = 0.9 * first + (1 - 0.9) * grad
        second = 0.999 * second + (1 - 0.999) * grad**2
        step = (first / (1 - 0.9**t)) / (np.sqrt(second / (1 - 0.999**t)) + 1e-8)
        e -= 0.1 * step
    return softmax(z + e, axis=1) - probabilities


@pytest.mark.parametrize("classes", [2, 3, 10, 100])
def test_memguard_search_equals_the_row_major_reference_bit_for_bit(classes, monkeypatch):
    rng = np.random.default_rng(classes)
    probabilities = (
        np.concatenate(
            [
                rng.dirichlet(np.full(classes, 0.05), 40),
                rng.dirichlet(np.full(classes, 5.0), 40),
                np.eye(classes)[rng.integers(0, classes, 5)],  # one-hot rows
            ]
        )
        .astype(np.float32)
        .astype(np.float64)
    )
    monkeypatch.setattr(memguard, "BLOCK", 16)  # several blocks and a ragged last one
    for boundary, steps in ((0.5, 30), (0.0, 7), (0.9, 12)):
        expected = reference_search_noise(probabilities, boundary, steps)
        assert np.array_equal(memguard.search_noise(probabilities, boundary, steps), expected)
