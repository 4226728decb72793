"""The configuration interval (benchmark.evaluation.intervals): its weighted ROC agrees with the
plain one, it is reproducible, and it covers on a simulated design with a known sampling
distribution."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.evaluation.intervals import (
    draw_replicates,
    percentile_interval,
    replicate_means,
    weighted_roc_metrics,
)
from benchmark.evaluation.metrics import evaluate
from benchmark.protocol.membership import balanced_matrix

labelled_scores = st.integers(4, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(-5, 5).map(float), min_size=n, max_size=n),
        st.lists(st.booleans(), min_size=n, max_size=n).filter(lambda m: 0 < sum(m) < len(m)),
        st.lists(st.integers(1, 3), min_size=n, max_size=n),
    )
)


@settings(max_examples=60, deadline=None)
@given(labelled_scores)
def test_weighted_roc_equals_the_plain_roc_of_the_duplicated_points(case):
    scores, members, counts = (np.array(v) for v in case)
    members = members.astype(bool)
    weights = np.stack([np.ones(len(scores)), counts.astype(float)])
    weighted = weighted_roc_metrics(scores, members, weights)
    plain = evaluate(scores, members).metrics()
    duplicated = evaluate(np.repeat(scores, counts), np.repeat(members, counts)).metrics()
    for key in plain:
        assert weighted[key][0] == pytest.approx(plain[key], abs=1e-12), key
        assert weighted[key][1] == pytest.approx(duplicated[key], abs=1e-12), key


def test_a_replicate_without_non_members_is_undefined_not_a_number():
    weights = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    auc = weighted_roc_metrics(np.array([3.0, 2.0, 1.0]), np.array([1, 1, 0], bool), weights)["auc"]
    assert np.isnan(auc[0]) and auc[1] == 1.0


def test_replicates_are_seeded_by_the_configuration_seed():
    first, again = draw_replicates(3, 4, 50), draw_replicates(3, 4, 50)
    other = draw_replicates(4, 4, 50)
    assert np.array_equal(first.points, again.points)
    assert not np.array_equal(first.points, other.points)
    assert np.all(first.points.sum(axis=1) == 50)
    assert np.allclose(first.targets, 0.25)  # points scheme: every target kept
    assert np.allclose(draw_replicates(3, 4, 50, scheme="two_way").targets.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="scheme"):
        draw_replicates(3, 4, 50, scheme="nope")


def simulated_experiment(rng: np.random.Generator, n_points: int = 200, n_models: int = 8):
    """Scores of a crossed design: point difficulty + membership signal + model-point noise, on
    a balanced membership matrix (as benchmark.protocol.membership draws it)."""
    membership = balanced_matrix(n_models, n_points, rng)
    difficulty = rng.normal(size=n_points)
    noise = rng.normal(size=(n_models, n_points))
    return difficulty + 0.6 * membership + noise, membership


#: The metrics whose interval coverage is simulated (one test each).
COVERED = ("auc", "tpr_at_fpr_0.001")


def means_and_intervals(scores, membership, seed: int) -> dict:
    """Each metric of :data:`COVERED`: the configuration's mean and interval (one simulation and
    one bootstrap give every metric, so both metrics' tests share them)."""
    draws = draw_replicates(seed, len(scores), scores.shape[1], n_replicates=200)
    pairs = list(zip(scores, membership, strict=True))
    per_target = [weighted_roc_metrics(s, m, draws.points) for s, m in pairs]
    plain = [evaluate(s, m).metrics() for s, m in pairs]
    return {
        key: percentile_interval(
            float(np.mean([p[key] for p in plain])),
            replicate_means(np.stack([t[key] for t in per_target], axis=1), draws.targets),
            bounds=(0.0, 1.0),
        )
        for key in COVERED
    }


@pytest.fixture(scope="module")
def simulated_intervals() -> dict:
    """300 independent simulated experiments and each one's interval, per metric."""
    rng = np.random.default_rng(11)
    experiments = [means_and_intervals(*simulated_experiment(rng), seed=s) for s in range(300)]
    return {key: [e[key] for e in experiments] for key in COVERED}


@pytest.mark.parametrize("key", COVERED)
def test_the_interval_covers_the_expected_mean_of_simulated_experiments(key, simulated_intervals):
    # The sampling distribution is known by simulation: 300 independent experiments; their
    # grand mean is the expected mean up to sd / sqrt(300), a tenth of an interval's half-width.
    # At 0.1% FPR with 100 non-members the TPR is "members above every non-member": its
    # resamples sit above the estimate, and the plain percentile interval covered 77%.
    intervals = simulated_intervals[key]
    means = np.array([i.mean for i in intervals])
    truth = means.mean()
    coverage = np.mean([i.low <= truth <= i.high for i in intervals])
    width = np.median([i.high - i.low for i in intervals])
    assert 0.90 <= coverage <= 0.99, coverage
    assert all(i.low <= i.mean <= i.high for i in intervals)
    # Not merely wide: the width is within 30% of the one the true spread implies.
    assert width / (2 * 1.96 * means.std(ddof=1)) == pytest.approx(1.0, abs=0.3)
