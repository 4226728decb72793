"""The exact ROC of benchmark.roc: scikit-learn's curve and AUC, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from benchmark.roc import exact_auc, exact_roc


def scores_with_ties(rng: np.random.Generator, n: int, kind: int) -> np.ndarray:
    """Continuous scores, few distinct values (label-only counts), or float32 ones."""
    if kind == 0:
        return rng.standard_normal(n)
    if kind == 1:
        return rng.integers(0, 33, n) / 32.0
    return rng.standard_normal(n).astype(np.float32)


@pytest.mark.parametrize("kind", [0, 1, 2])
def test_the_curve_and_auc_are_scikit_learns_bit_for_bit(kind):
    rng = np.random.default_rng(kind)
    for n in (2, 3, 5, 40, 1437):
        for _ in range(20):
            scores = scores_with_ties(rng, n, kind)
            members = rng.random(n) < 0.5
            members[:2] = [True, False]  # both classes
            roc = exact_roc(scores, members)
            fpr, tpr, thresholds = roc_curve(members, scores, drop_intermediate=False)
            np.testing.assert_array_equal(roc.fpr, fpr)
            np.testing.assert_array_equal(roc.tpr, tpr)
            np.testing.assert_array_equal(roc.thresholds, thresholds)
            assert roc.auc == roc_auc_score(members, scores)
            assert exact_auc(scores, members) == roc.auc


def test_tied_points_move_together_and_ties_count_half():
    roc = exact_roc(np.array([1.0, 1.0, 0.0, 0.0]), np.array([True, False, True, False]))
    np.testing.assert_array_equal(roc.fpr, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(roc.tpr, [0.0, 0.5, 1.0])
    assert roc.auc == 0.5


@pytest.mark.parametrize(
    "scores, members, fragment",
    [
        ([0.1, np.nan], [True, False], "finite"),
        ([0.1, 0.2], [True, True], "both members and non-members"),
        ([0.1, 0.2, 0.3], [True, False], "membership labels"),
    ],
)
def test_what_has_no_curve_is_refused(scores, members, fragment):
    with pytest.raises(ValueError, match=fragment):
        exact_roc(np.array(scores), np.array(members))
