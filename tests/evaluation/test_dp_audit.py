"""The canary-audit estimators on synthetic statistics whose privacy is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from benchmark.evaluation.canary_scores import (
    GDP,
    GDP_SUM,
    ONE_RUN,
    RUNS,
    likelihood_scores,
    sum_scores,
    whitebox_audit,
)
from benchmark.evaluation.dp_audit import (
    count_correct,
    gdp_bound,
    gdp_delta,
    gdp_epsilon,
    gdp_mu_lower,
    one_run_bound,
    one_run_epsilon,
    one_run_p_value,
)

DELTA = 1e-5


def randomized_response(eps: float, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Inclusion bits and eps-DP randomized-response scores: the extreme eps-DP mechanism."""
    rng = np.random.default_rng(seed)
    included = rng.random(m) < 0.5
    truthful = rng.random(m) < np.exp(eps) / (1 + np.exp(eps))
    scores = np.where(truthful, included, ~included).astype(float) + 1e-3 * rng.random(m)
    return scores, included


def gaussians(mu: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores N(mu, 1) for included canaries, N(0, 1) for the others: exactly mu-GDP."""
    rng = np.random.default_rng(seed)
    included = rng.random(n) < 0.5
    return rng.normal(size=n) + mu * included, included


def test_one_run_p_value_is_the_binomial_tail_without_delta() -> None:
    p = np.exp(1.0) / (1 + np.exp(1.0))
    assert one_run_p_value(100, 50, 40, 1.0, 0.0) == pytest.approx(stats.binom.sf(39, 50, p))
    # The delta term only adds, and the p-value grows with eps.
    assert one_run_p_value(100, 50, 40, 1.0, DELTA) > one_run_p_value(100, 50, 40, 1.0, 0.0)
    values = [one_run_p_value(1000, 100, 90, eps, DELTA) for eps in (0.5, 1, 2, 4)]
    assert values == sorted(values)


def test_one_run_bound_is_below_and_near_randomized_response() -> None:
    for eps in (1.0, 2.0):
        scores, included = randomized_response(eps, 10_000, seed=1)
        bound = one_run_bound("rr", scores, included, DELTA)
        assert 0.6 * eps < bound.eps_lb <= eps
        assert bound.correct <= bound.guesses


def test_one_run_bound_of_a_null_is_zero() -> None:
    rng = np.random.default_rng(2)
    bounds = [
        one_run_bound("null", rng.normal(size=2000), rng.random(2000) < 0.5, DELTA).eps_lb
        for _ in range(10)
    ]
    assert max(bounds) < 0.3 and np.median(bounds) == 0.0


def test_count_correct_guesses_the_tails() -> None:
    scores = np.array([0.1, 0.9, 0.5, 0.8, 0.2])
    included = np.array([False, True, False, False, True])
    # Top 2 (0.9 in, 0.8 out) and bottom 1 (0.1 out): 2 of 3 correct.
    assert count_correct(scores, included, 2, 1) == (3, 2)
    assert one_run_epsilon(1000, 3, 0, DELTA, 0.05) == 0.0


def test_gdp_epsilon_inverts_the_gdp_curve() -> None:
    for mu in (0.25, 1.0, 3.0):
        eps = gdp_epsilon(mu, DELTA)
        assert gdp_delta(eps, mu) == pytest.approx(DELTA, rel=1e-4)
    assert gdp_epsilon(0.0, DELTA) == 0.0
    # Larger mu, larger epsilon; mu = 1 at delta = 1e-5 is about 4.4 (Dong et al. 2022, Fig. 2).
    assert 4.2 < gdp_epsilon(1.0, DELTA) < 4.5 < gdp_epsilon(1.5, DELTA)


def test_gdp_bound_is_below_and_near_the_truth() -> None:
    for mu in (0.5, 1.0, 2.0):
        scores, included = gaussians(mu, 20_000, seed=3)
        bound = gdp_bound("gdp", scores, included, DELTA)
        truth = gdp_epsilon(mu, DELTA)
        assert 0.9 * mu < bound.mu_lb <= mu
        assert 0.85 * truth < bound.eps_lb <= truth


def test_gdp_lower_limit_holds_at_its_confidence() -> None:
    rng = np.random.default_rng(4)
    misses = 0
    for _ in range(200):
        inside, outside = rng.normal(1.0, 1.0, 500), rng.normal(0.0, 1.0, 500)
        misses += gdp_mu_lower(inside, outside) > 1.0
    assert misses <= 0.05 * 200 + 6  # at most 5% (plus binomial slack), here far fewer
    null = [gdp_bound("gdp", *gaussians(0.0, 4000, seed)[::1], DELTA).eps_lb for seed in range(10)]
    assert np.mean(np.array(null) == 0.0) >= 0.8


def simulated_trace(
    q: float, sigma: float, steps: int, shape: tuple[int, int], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The white-box observations of the exact subsampled Gaussian mechanism (no real data)."""
    rng = np.random.default_rng(seed)
    included = rng.random(shape) < 0.5
    sampled = (rng.random((steps, *shape)) < q) & included
    return included, sampled + sigma * rng.normal(size=(steps, *shape))


def test_whitebox_bounds_of_the_exact_mechanism_stay_below_its_clt_epsilon() -> None:
    q, sigma, steps = 0.1, 1.0, 200
    included, observations = simulated_trace(q, sigma, steps, (4, 2000), seed=5)
    bounds = {b.method: b for b in whitebox_audit(included, observations, q, sigma, DELTA)}
    assert list(bounds) == [ONE_RUN, RUNS, GDP, GDP_SUM]
    mu_clt = q * np.sqrt(steps * (np.exp(1 / sigma**2) - 1))  # Dong et al. 2022, Theorem 3.5
    assert bounds[GDP].mu_lb <= mu_clt
    assert bounds[GDP_SUM].mu_lb <= q * np.sqrt(steps) / sigma
    # The optimal test separates better than the sum, and pooling runs helps the one-run bound.
    assert bounds[GDP].eps_lb > bounds[GDP_SUM].eps_lb > 0.5 * gdp_epsilon(mu_clt, DELTA)
    assert bounds[RUNS].eps_lb >= bounds[ONE_RUN].eps_lb > 0
    assert bounds[RUNS].models == (0, 1, 2, 3) and bounds[ONE_RUN].models == (0,)


def test_canary_statistics() -> None:
    observations = np.array([[[0.0, 1.0]], [[2.0, -1.0]]])  # [T=2, K=1, m=2]
    np.testing.assert_allclose(sum_scores(observations), [[2.0, 0.0]])
    q, sigma = 0.2, 1.0
    expected = np.log(1 - q + q * np.exp(observations - 0.5)).sum(axis=0)
    np.testing.assert_allclose(likelihood_scores(observations, q, sigma), expected)
