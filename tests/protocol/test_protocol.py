import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.errors import ConfigError
from benchmark.protocol.membership import make_membership


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 10).map(lambda h: 2 * h), st.integers(2, 300), st.integers(0, 10**6))
def test_every_point_in_half_the_models_and_every_model_on_half_the_points(k, n, seed):
    membership = make_membership(n, k, seed)
    assert membership.matrix.shape == (k, n)
    assert np.all(membership.matrix.sum(axis=0) == k // 2)
    assert np.all(np.abs(membership.matrix.sum(axis=1) - n / 2) <= 0.5)


def test_membership_is_determined_by_seed_and_differs_across_seeds():
    a, b, c = make_membership(100, 8, 1), make_membership(100, 8, 1), make_membership(100, 8, 2)
    assert np.array_equal(a.matrix, b.matrix) and np.array_equal(a.seeds, b.seeds)
    assert not np.array_equal(a.matrix, c.matrix)
    assert len(set(a.seeds.tolist())) == 8


def test_targets_canaries_and_read_only_arrays():
    membership = make_membership(50, 6, 0, n_targets=2, n_canaries=5)
    assert membership.targets.tolist() == [0, 1]
    assert membership.canary.sum() == 5
    with pytest.raises(ValueError):
        membership.matrix[0, 0] = not membership.matrix[0, 0]


@pytest.mark.parametrize("k", [0, 1, 3, 7])
def test_odd_or_too_few_models_are_refused(k):
    with pytest.raises(ConfigError, match="even"):
        make_membership(10, k, 0)
