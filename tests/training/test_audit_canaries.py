"""White-box gradient canaries inside the private ensemble's DP-SGD, and the seeded faults."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant
from opacus.optimizers import DPOptimizerFastGradientClipping

from benchmark.errors import ConfigError
from benchmark.experiment.plan import prepare
from benchmark.training.accounting import poisson_schedule
from benchmark.training.audit_canaries import RAW_NORM, CanaryTrace
from benchmark.training.engines import train
from benchmark.training.faults import inject
from tests.conftest import FAST, compose_config

AUDITED = [*FAST, "defense=dpsgd", "audit=whitebox", "audit.canaries=200"]


def trace_of(fault: str | None = None) -> tuple[CanaryTrace, int]:
    plan = prepare(compose_config(AUDITED), show_progress=False)
    with inject(fault):
        models = train(plan.recipe, plan.pool, plan.membership, progress=False)
    assert models.canaries is not None
    steps = poisson_schedule(len(plan.pool) // 2, plan.recipe.batch_size, plan.recipe.epochs).steps
    return models.canaries, steps


def shift(trace: CanaryTrace) -> tuple[float, float]:
    """The included canaries' mean summed observation minus the others', and its std. error."""
    sums = trace.observations.sum(axis=0)
    inside, outside = sums[trace.included], sums[~trace.included]
    error = np.sqrt(inside.var() / len(inside) + outside.var() / len(outside))
    return float(inside.mean() - outside.mean()), float(error)


@pytest.mark.slow
def test_canaries_enter_each_step_clipped_to_c_and_skipped_clipping_lets_them_through() -> None:
    trace, steps = trace_of()
    assert trace.observations.shape == (steps, 4, 200)
    assert 0.35 < trace.included.mean() < 0.65
    # An included canary is sampled at rate q at each step and contributes C: its sum grows by
    # q T (units of C); an excluded one by nothing.
    difference, error = shift(trace)
    assert abs(difference - trace.sample_rate * steps) < 5 * error
    # The excluded canaries see only the noise (and the real examples): N(0, sigma^2) a step.
    outside = trace.observations[:, ~trace.included]
    assert 0.8 < outside.std() / trace.noise_multiplier < 1.5
    unclipped, _ = trace_of("no_clipping")
    difference, error = shift(unclipped)
    assert abs(difference - RAW_NORM * trace.sample_rate * steps) < 5 * error


def test_noise_and_sample_rate_faults_change_what_opacus_draws_not_what_it_accounts() -> None:
    sigma = 1.3
    parameter = torch.nn.Parameter(torch.zeros(3))
    optimizer = DPOptimizerFastGradientClipping(
        torch.optim.SGD([parameter], lr=0.1),
        noise_multiplier=sigma,
        max_grad_norm=1.0,
        expected_batch_size=64,
    )
    with inject("noise_div10"):
        assert optimizer._adjusted_noise_multiplier == pytest.approx(sigma / 10)
        assert optimizer.noise_multiplier == sigma  # what the accountant reads
    assert not hasattr(optimizer, "_adjusted_noise_multiplier")
    accountant = RDPAccountant()
    with inject("sample_rate_underreported"):
        accountant.step(noise_multiplier=sigma, sample_rate=0.1)
    accountant.step(noise_multiplier=sigma, sample_rate=0.1)
    assert accountant.history == [(sigma, pytest.approx(0.01), 1), (sigma, 0.1, 1)]
    with pytest.raises(ValueError, match="unknown fault"), inject("typo"):
        pass


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["audit=whitebox"], "add defense=dpsgd"),
        ([*AUDITED[len(FAST) :], "training.engine=sequential"], "training.engine=ensemble"),
        (["defense=dpsgd", "audit=whitebox", "audit.canaries=100000"], "exceeds the model's"),
        (["audit=whitebox", "audit.canaries=1"], "audit.canaries must be >= 2"),
        (["audit=whitebox", "audit.confidence=1.5"], "audit.confidence must be in"),
        (["audit=blackbox"], "audit=blackbox audits DP-SGD: add defense=dpsgd"),
        (["defense=dpsgd", "audit=blackbox", "training.engine=sequential"], "engine=ensemble"),
        (["audit.method=greybox"], "audit.method must be one of"),
    ],
)
def test_bad_audit_configs_are_refused_before_training(overrides, message) -> None:
    with pytest.raises(ConfigError, match=message):
        prepare(compose_config([*FAST, *overrides]), show_progress=False)


def test_no_audit_inserts_no_canaries() -> None:
    plan = prepare(compose_config([*FAST, "defense=dpsgd"]), show_progress=False)
    assert plan.recipe.audit_canaries == 0
