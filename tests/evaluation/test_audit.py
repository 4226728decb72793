"""The empirical epsilon lower bound (benchmark/audit.py) on scores whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from benchmark.evaluation.audit import (
    DEFAULT_DELTA,
    VIOLATION_TAG,
    ThresholdTests,
    accountant_violations,
    audit_delta,
    audit_targets,
    choose_threshold,
    clopper_pearson,
    epsilon_bound,
    violation_tags,
)


def randomised_response(rng, epsilon: float, n_targets: int, n_points: int):
    """epsilon-DP randomised response of each membership bit: the tightest epsilon-DP test."""
    membership = rng.random((n_targets, n_points)) < 0.5
    keep = rng.random((n_targets, n_points)) < np.exp(epsilon) / (1 + np.exp(epsilon))
    return np.where(keep, membership, ~membership).astype(float), membership


def laplace_mechanism(rng, epsilon: float, n_targets: int, n_points: int):
    """The bit plus Laplace(1/epsilon) noise: epsilon-DP, and TPR/FPR = e^epsilon exactly for every
    threshold >= 1, so the bound is tight over a whole range of thresholds."""
    membership = rng.random((n_targets, n_points)) < 0.5
    return membership + rng.laplace(0.0, 1.0 / epsilon, membership.shape), membership


def test_clopper_pearson_matches_scipy_exact_interval():
    for n in (1, 7, 50, 333):
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            expected = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
            low, high = clopper_pearson(k, n)
            assert low == pytest.approx(expected.low, abs=1e-12)
            assert high == pytest.approx(expected.high, abs=1e-12)
    assert clopper_pearson(0, 0) == (0.0, 1.0)


def test_bound_on_known_rates_matches_the_formula():
    # 100 members of which 60 score above the threshold, 100 non-members of which 5 do.
    scores = np.r_[np.ones(60), np.zeros(40), np.ones(5), np.zeros(95)]
    is_member = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    delta = 1e-3
    tpr = stats.binomtest(60, 100).proportion_ci(method="exact")
    fpr = stats.binomtest(5, 100).proportion_ci(method="exact")
    expected = max(
        np.log((tpr.low - delta) / fpr.high), np.log((1 - fpr.high - delta) / (1 - tpr.low))
    )
    audit = ThresholdTests(scores, is_member, delta).audit(1.0)
    assert (audit.true_positives, audit.false_positives) == (60, 5)
    assert audit.eps_lb == pytest.approx(expected, rel=1e-12)
    # The same scores on several targets: the threshold chosen on the others is 1.0 again.
    audits = audit_targets(np.tile(scores, (3, 1)), np.tile(is_member, (3, 1)), delta)
    assert [a.threshold for a in audits] == [1.0, 1.0, 1.0]
    assert all(a.eps_lb == pytest.approx(expected, rel=1e-12) for a in audits)


def test_bound_is_clipped_at_zero_and_uses_both_directions():
    assert epsilon_bound(0.3, 0.5, 0.0) == 0.0  # worse than chance proves nothing
    # A test that never misses members (FNR small) proves privacy loss through TNR/FNR.
    assert epsilon_bound(0.99, 0.9, 0.0) == pytest.approx(np.log(0.1 / 0.01))


def test_bound_is_zero_on_null_scores():
    rng = np.random.default_rng(0)
    membership = rng.random((16, 1000)) < 0.5
    audits = audit_targets(rng.normal(size=membership.shape), membership)
    assert np.mean([a.eps_lb > 0 for a in audits]) <= 0.1


@pytest.mark.parametrize("mechanism", [randomised_response, laplace_mechanism])
@pytest.mark.parametrize("epsilon", [1.0, 2.0])
def test_bound_never_exceeds_the_mechanism_epsilon(mechanism, epsilon):
    """Soundness: 95% Clopper-Pearson bounds of a tight epsilon-DP mechanism exceed epsilon in at
    most ~5% of audits; point estimates, which the same check rejects, exceed it half the time."""
    rng = np.random.default_rng([7, int(epsilon)])
    exceed, exceed_point, bounds = [], [], []
    for _ in range(30):
        scores, membership = mechanism(rng, epsilon, 8, 400)
        audits = audit_targets(scores, membership, delta=0.0)
        bounds += [a.eps_lb for a in audits]
        exceed += [a.eps_lb > epsilon for a in audits]
        point = audit_targets(scores, membership, delta=0.0, confidence=1e-9)
        exceed_point += [a.eps_lb > epsilon for a in point]
    assert np.mean(exceed) <= 0.05
    assert np.mean(exceed_point) >= 0.3  # the check above can fail
    assert np.mean(bounds) >= 0.5 * epsilon  # and the audit is not vacuous


def test_choosing_the_threshold_on_the_target_itself_overshoots():
    """Why the threshold comes from the other targets: picked on the target, the bound of a tight
    mechanism exceeds its epsilon more often than 95% confidence allows."""
    rng = np.random.default_rng(3)
    honest, cheat = [], []
    for _ in range(30):
        scores, membership = laplace_mechanism(rng, 1.0, 8, 400)
        honest += [a.eps_lb > 1.0 for a in audit_targets(scores, membership, delta=0.0)]
        for s, m in zip(scores, membership, strict=True):
            own = ThresholdTests(s, m, 0.0)
            cheat.append(own.audit(choose_threshold([own])).eps_lb > 1.0)
    assert np.mean(cheat) > np.mean(honest)
    assert np.mean(honest) <= 0.05


def test_a_targets_threshold_never_reads_its_own_scores():
    rng = np.random.default_rng(1)
    scores, membership = laplace_mechanism(rng, 2.0, 5, 300)
    before = audit_targets(scores, membership)
    scores[2], membership[2] = rng.normal(size=300) * 10, ~membership[2]
    after = audit_targets(scores, membership)
    assert after[2].threshold == before[2].threshold
    assert [a.threshold for a in after] != [a.threshold for a in before]  # others did change


def test_single_target_chooses_on_even_points_and_audits_odd_points():
    rng = np.random.default_rng(2)
    scores, membership = laplace_mechanism(rng, 2.0, 1, 1001)
    (audit,) = audit_targets(scores, membership)
    odd = np.arange(1001) % 2 == 1
    assert audit.members + audit.non_members == odd.sum()
    assert audit.members == membership[0, odd].sum()
    even_scores = ThresholdTests(scores[0, ~odd], membership[0, ~odd], DEFAULT_DELTA)
    assert audit.threshold == choose_threshold([even_scores])
    assert audit.eps_lb > 0


def test_canary_mask_restricts_the_audit():
    rng = np.random.default_rng(4)
    scores, membership = randomised_response(rng, 2.0, 4, 400)
    mask = np.zeros(400, bool)
    mask[:50] = True
    audits = audit_targets(scores, membership, mask=mask)
    assert all(a.members + a.non_members == 50 for a in audits)


def test_delta_comes_from_the_dp_defense():
    assert audit_delta({"defense": {"none": {}}}) == DEFAULT_DELTA
    assert (
        audit_delta({"defense": {"dpsgd": {"target_epsilon": 8, "delta": 1e-6}, "topk": {}}})
        == 1e-6
    )


def test_accountant_violations_and_tags():
    per_target = [
        {"dp/epsilon": 1.0, "privacy/loss/eps_lb": 0.4, "privacy/lira_online/eps_lb": 1.3},
        {"dp/epsilon": 1.0, "privacy/loss/eps_lb": 0.2, "privacy_canary/loss/eps_lb": 2.0},
    ]
    violations = accountant_violations(per_target)
    assert violations == {"privacy/lira_online": [0], "privacy_canary/loss": [1]}
    tags = violation_tags(violations, has_accountant=True)
    assert tags[VIOLATION_TAG] == "true"
    assert "privacy/lira_online (targets 0)" in tags[f"{VIOLATION_TAG}_by"]
    assert violation_tags({}, has_accountant=True) == {VIOLATION_TAG: "false"}
    assert violation_tags({}, has_accountant=False) == {}
    assert accountant_violations([{"privacy/loss/eps_lb": 5.0}]) == {}  # no accountant


# The acceptance check end to end: on DP-SGD runs the empirical bound of every attack
# and target stays below the accountant's epsilon.
@pytest.mark.slow
@pytest.mark.parametrize("target_epsilon", [1.0, 8.0])
def test_dp_runs_never_exceed_the_accountant(make_config, target_epsilon: float) -> None:
    from benchmark.cli.job import run
    from tests.evaluation.test_audit_run import OVERFIT

    overrides = [*OVERFIT, "defense=dpsgd", f"defense.dpsgd.target_epsilon={target_epsilon}"]
    outcome = run(make_config(overrides), show_progress=False)
    result = outcome.result
    assert result.epsilons is not None
    assert result.accountant_violations() == {}
    for position in range(len(result.targets)):
        metrics = result.target_metrics(position)
        bounds = [v for k, v in metrics.items() if k.endswith("/eps_lb")]
        assert bounds and max(bounds) <= metrics["dp/epsilon"]
