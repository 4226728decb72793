"""Metrics checked against scikit-learn and against brute-force definitions."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import roc_auc_score

from benchmark.evaluation.metrics import (
    evaluate,
    mean_interval,
    mean_roc,
    metric_bounds,
    tpr_at_fpr,
)

labelled_scores = st.integers(4, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(-5, 5).map(float), min_size=n, max_size=n),
        st.lists(st.booleans(), min_size=n, max_size=n).filter(lambda m: 0 < sum(m) < len(m)),
    )
)


def brute_force_rates(scores: np.ndarray, members: np.ndarray) -> list[tuple[float, float]]:
    """(FPR, TPR) of every threshold rule "score >= t", t over all scores and +inf."""
    rates = []
    for t in [np.inf, *np.unique(scores)]:
        predicted = scores >= t
        rates.append((predicted[~members].mean(), predicted[members].mean()))
    return rates


@settings(max_examples=60, deadline=None)
@given(labelled_scores)
def test_auc_matches_sklearn(data):
    scores, members = np.array(data[0]), np.array(data[1])
    assert evaluate(scores, members).auc == pytest.approx(roc_auc_score(members, scores))


@settings(max_examples=60, deadline=None)
@given(labelled_scores, st.sampled_from([0.001, 0.01, 0.1, 0.25, 0.5]))
def test_tpr_at_fpr_is_largest_tpr_with_fpr_at_most_level(data, level):
    scores, members = np.array(data[0]), np.array(data[1])
    expected = max(tpr for fpr, tpr in brute_force_rates(scores, members) if fpr <= level)
    result = evaluate(scores, members, levels=(level,))
    assert result.tpr_at_fpr[level] == pytest.approx(expected)


@settings(max_examples=60, deadline=None)
@given(labelled_scores)
def test_advantage_and_balanced_accuracy_match_brute_force(data):
    scores, members = np.array(data[0]), np.array(data[1])
    advantage = max(tpr - fpr for fpr, tpr in brute_force_rates(scores, members))
    result = evaluate(scores, members)
    assert result.advantage == pytest.approx(advantage)
    best = max(
        ((s >= t)[members].mean() + (s < t)[~members].mean()) / 2
        for s in [scores]
        for t in [np.inf, *np.unique(scores)]
    )
    assert result.balanced_accuracy == pytest.approx(best)


def test_tpr_at_fpr_does_not_interpolate():
    # Two non-members; the first non-member is the top score: FPR jumps 0 -> 0.5.
    scores = np.array([10.0, 9.0, 8.0, 1.0])
    members = np.array([False, True, True, False])
    result = evaluate(scores, members, levels=(0.25, 0.5))
    assert result.tpr_at_fpr == {0.25: 0.0, 0.5: 1.0}
    assert tpr_at_fpr(np.array([0.0, 0.5, 1.0]), np.array([0.2, 0.9, 1.0]), 0.49) == 0.2


def test_perfect_and_inverted_attacks():
    members = np.array([True] * 50 + [False] * 50)
    perfect = evaluate(np.arange(100.0)[::-1], members)
    assert perfect.auc == 1.0 and perfect.tpr_at_fpr[0.001] == 1.0 and perfect.advantage == 1.0
    inverted = evaluate(np.arange(100.0), members)
    assert inverted.auc == 0.0 and inverted.tpr_at_fpr[0.1] == 0.0


def test_evaluation_refuses_nonfinite_scores_and_one_sided_membership():
    with pytest.raises(ValueError, match="finite"):
        evaluate(np.array([0.0, np.nan]), np.array([True, False]))
    with pytest.raises(ValueError, match="both"):
        evaluate(np.array([0.0, 1.0]), np.array([True, True]))


def test_mean_interval_is_student_t_and_clipped_to_bounds():
    values = np.array([0.1, 0.2, 0.4, 0.3])
    low, high = stats.t.interval(0.95, 3, loc=values.mean(), scale=stats.sem(values))
    interval = mean_interval(values)
    assert (interval.mean, interval.low, interval.high) == pytest.approx((0.25, low, high))
    clipped = mean_interval([0.0, 0.0, 0.01], bounds=metric_bounds("privacy/loss/tpr_at_fpr_0.001"))
    assert clipped.low == 0.0
    assert np.isnan(mean_interval([0.5]).low)
    assert metric_bounds("utility/gap") == (-1.0, 1.0)


def test_the_mean_roc_reads_each_curve_as_tpr_at_fpr_does():
    rng = np.random.default_rng(0)
    members = rng.random(500) < 0.5
    curves = [evaluate(rng.integers(0, 6, 500) + members * rng.random(), members) for _ in range(3)]
    grid, mean = mean_roc(curves)
    expected = [np.mean([tpr_at_fpr(c.fpr, c.tpr, g) for c in curves]) for g in grid]
    np.testing.assert_array_equal(mean, expected)
