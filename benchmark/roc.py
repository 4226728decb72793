"""The exact empirical ROC curve of membership scores and its AUC, without scikit-learn's overhead.

The attacks that tune on their shadow models (RMIA's offline ``a``, the class thresholds of
Song & Mittal's attacks) and the evaluation of every attack read hundreds of ROC curves of a few
thousand points per run; scikit-learn's ``roc_curve`` and ``roc_auc_score`` spend most of their
time validating their inputs, not computing. :func:`exact_roc` computes the same curve with the
same floating-point operations, so its values are those of scikit-learn bit for bit
(``tests/test_roc.py`` checks it on tied and untied scores):

* the curve has one point per distinct score value (tied points move together: "member iff
  score >= t"), preceded by ``(0, 0)`` at threshold ``+inf``, with ``TPR = TP / P`` and
  ``FPR = FP / N`` from exact integer counts (``roc_curve(..., drop_intermediate=False)``);
* the AUC is the trapezoid over that curve after the points collinear with their neighbours
  are dropped, as ``roc_auc_score`` computes it (ties count as half).

Numpy only: the attacks layer, which must not load torch or the evaluation layer, uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Roc:
    """One exact ROC curve: ``fpr``, ``tpr`` and ``thresholds`` (``+inf`` first), and its AUC."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auc: float


def exact_roc(scores: np.ndarray, is_member: np.ndarray) -> Roc:
    """The ROC curve of ``scores`` (higher = member) against ``is_member``, and its AUC.

    Raises ValueError on a non-finite score, on mismatched lengths, or without both a member
    and a non-member (where scikit-learn refuses too).
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    is_member = np.asarray(is_member, dtype=bool).ravel()
    if scores.shape != is_member.shape:
        raise ValueError(f"{len(scores)} scores for {len(is_member)} membership labels")
    if not np.all(np.isfinite(scores)):
        raise ValueError("ROC scores must be finite")
    order = np.argsort(scores, kind="mergesort")[::-1]  # descending; ties stay in one group
    ranked = scores[order]
    ends = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # last index of each tie group
    tps = np.cumsum(is_member[order], dtype=np.float64)[ends]
    fps = 1 + ends.astype(np.float64) - tps
    if tps[-1] <= 0 or fps[-1] <= 0:
        raise ValueError("a ROC curve needs both members and non-members")
    # The AUC's curve keeps only the corners (scikit-learn's drop_intermediate=True).
    corners = np.arange(len(fps))
    if len(fps) > 2:
        bends = np.logical_or(np.diff(fps, 2), np.diff(tps, 2))
        corners = np.flatnonzero(np.r_[True, bends, True])
    fpr, tpr = _rates(fps, tps)
    corner_fpr, corner_tpr = _rates(fps[corners], tps[corners])
    area = np.sum((corner_fpr[1:] - corner_fpr[:-1]) * (corner_tpr[1:] + corner_tpr[:-1]) / 2.0)
    return Roc(fpr=fpr, tpr=tpr, thresholds=np.r_[np.inf, ranked[ends]], auc=float(area))


def _rates(fps: np.ndarray, tps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(FPR, TPR)`` with the curve's start ``(0, 0)`` prepended."""
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    return fps / fps[-1], tps / tps[-1]


def exact_auc(scores: np.ndarray, is_member: np.ndarray) -> float:
    """The AUC of :func:`exact_roc` (``roc_auc_score``'s value)."""
    return exact_roc(scores, is_member).auc
