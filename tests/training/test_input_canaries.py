"""Black-box input canaries (``audit=blackbox``): how they are crafted, sampled and scored."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import log_softmax

from benchmark.evaluation.canary_scores import (
    BLACKBOX_GDP,
    BLACKBOX_ONE_RUN,
    BLACKBOX_RUNS,
    blackbox_audit,
    calibrated_confidence,
    logit_confidence,
)
from benchmark.experiment.execute import canary_audit
from benchmark.experiment.plan import prepare
from benchmark.training.engines import train
from benchmark.training.input_canaries import InputCanaries, InputCanaryTrace, craft_inputs
from tests.conftest import FAST, compose_config


def test_canaries_lie_where_the_data_does_not_vary_and_carry_random_labels() -> None:
    rng = np.random.default_rng(0)
    # Data spread over the first 12 of 16 coordinates only.
    x = np.zeros((500, 16), np.float32)
    x[:, :12] = rng.standard_normal((500, 12))
    inputs, labels = craft_inputs(x, 300, num_classes=7, rng=rng)
    assert inputs.shape == (300, 16) and labels.shape == (300,)
    assert np.abs(inputs[:, :12]).max() < 1e-5  # all of a canary is off the data's span
    norms = np.linalg.norm(inputs, axis=1)
    assert np.allclose(norms, np.median(np.linalg.norm(x - x.mean(0), axis=1)), rtol=1e-4)
    assert set(labels) == set(range(7))


def test_only_included_canaries_are_sampled_at_the_real_points_rate() -> None:
    x = torch.randn(100, 8)
    canaries = InputCanaries(x, 50, num_classes=3, n_models=4, sample_rate=0.2, seed=1)
    index = torch.zeros(4, 5, dtype=torch.long)
    mask = torch.ones(4, 5, dtype=torch.bool)
    counts = np.zeros((4, 50))
    for _ in range(400):
        joined, drawn = canaries.add_to_batch(index, mask)
        assert torch.equal(joined[:, :5], index) and torch.equal(drawn[:, :5], mask)
        for k in range(4):
            rows = joined[k, 5:][drawn[k, 5:]].numpy() - 100
            assert len(set(rows)) == len(rows)
            counts[k, rows] += 1
    included = canaries.included
    assert counts[~included].sum() == 0
    assert abs(counts[included].mean() / 400 - 0.2) < 0.01
    assert 0.35 < included.mean() < 0.65
    extended, labels = canaries.extend(x, torch.zeros(100, dtype=torch.long))
    assert extended.shape == (150, 8) and torch.equal(extended[:100], x)
    assert torch.equal(labels[100:], torch.as_tensor(canaries.labels))


def test_logit_confidence_is_lira_s_statistic_and_calibration_ignores_the_bits() -> None:
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((5, 40, 4))
    labels = rng.integers(0, 4, 40)
    p = np.exp(log_softmax(logits, axis=-1))[..., :][np.arange(5)[:, None], np.arange(40), labels]
    assert np.allclose(logit_confidence(logits, labels), np.log(p) - np.log1p(-p))
    phi = logit_confidence(logits, labels)
    expected = phi[2] - np.delete(phi, 2, axis=0).mean(axis=0)
    assert np.allclose(calibrated_confidence(logits, labels)[2], expected)


def synthetic_release(shift: float, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits of 8 models on 500 canaries, the included ones' label logit raised by ``shift``."""
    rng = np.random.default_rng(seed)
    included = rng.random((8, 500)) < 0.5
    labels = rng.integers(0, 10, 500)
    logits = rng.standard_normal((8, 500, 10))
    logits[np.arange(8)[:, None], np.arange(500), labels] += shift * included
    return included, logits, labels


def test_blackbox_bounds_grow_with_the_leak_and_vanish_without_one() -> None:
    bounds = {shift: blackbox_audit(*synthetic_release(shift), delta=1e-5) for shift in (0, 4)}
    assert [b.method for b in bounds[0]] == [BLACKBOX_ONE_RUN, BLACKBOX_RUNS, BLACKBOX_GDP]
    assert all(b.eps_lb < 0.3 for b in bounds[0])  # independent of the bits: nothing to find
    assert all(b.eps_lb > 1.0 for b in bounds[4])
    assert bounds[4][1].eps_lb > bounds[4][0].eps_lb  # K m pairs prove more than m


@pytest.mark.slow
def test_blackbox_audit_trains_with_its_canaries_and_reports_three_bounds() -> None:
    overrides = [*FAST, "defense=dpsgd", "audit=blackbox", "audit.canaries=64"]
    plan = prepare(compose_config(overrides), show_progress=False)
    assert (plan.recipe.audit, plan.recipe.audit_canaries) == ("blackbox", 64)
    models = train(plan.recipe, plan.pool, plan.membership, progress=False)
    assert isinstance(models.canaries, InputCanaryTrace)
    assert models.canaries.included.shape == (4, 64)
    bounds = canary_audit(models, plan)
    assert [b.method for b in bounds] == [BLACKBOX_ONE_RUN, BLACKBOX_RUNS, BLACKBOX_GDP]
    assert all(0.0 <= b.eps_lb <= max(models.epsilons) for b in bounds)
