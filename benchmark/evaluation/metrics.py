"""Membership inference metrics: ROC, AUC, TPR at fixed low FPR, advantage, intervals.

Follows Carlini et al. 2022: the headline is TPR at a low FPR, read off the exact empirical ROC
curve; AUC and the best-threshold balanced accuracy are reported beside it. Metrics are computed
per target model and aggregated as a mean; the configuration's interval around it is the
bootstrap over pool points of :mod:`benchmark.evaluation.intervals` (:func:`mean_interval`, the
Student-t interval over targets, is kept for per-target spreads such as the strength benchmark's).

**The convention for tied scores** (every attack, one function, :func:`evaluate`): the ROC is
exact and deterministic. Each distinct score value is one threshold ("member iff score >= t");
tied points move together, and TPR at FPR ``level`` is the largest TPR among thresholds whose
FPR is at most ``level`` (no interpolation between thresholds, and no randomised
Neyman-Pearson test mixing two thresholds). A score with few distinct values (label-only) can
therefore report TPR 0 at a low FPR when its most extreme value is shared by more than ``level``
of the non-members: it is what a deterministic attacker achieves, a lower bound on what a
randomised one could (which would add ``(level - FPR_lo) / (FPR_hi - FPR_lo)`` of the next step,
exactly the chance-level interpolation that Carlini et al. 2022 warn inflates low-FPR TPRs).
AUC counts ties as half (the trapezoid over the tie groups, as scikit-learn). The curve and the
AUC are :func:`benchmark.roc.exact_roc`'s: scikit-learn's values, bit for bit, without its
per-call input validation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from benchmark.evaluation.keys import ADVANTAGE, AUC, BALANCED_ACCURACY, FPR_LEVELS, tpr_at
from benchmark.roc import exact_roc


@dataclass(frozen=True)
class RocEvaluation:
    """The ROC curve of one attack against one target, and the numbers read off it."""

    fpr: np.ndarray
    tpr: np.ndarray
    auc: float
    advantage: float
    tpr_at_fpr: dict[float, float]

    @property
    def balanced_accuracy(self) -> float:
        """Best-threshold balanced accuracy ``(TPR + 1 - FPR) / 2 = (1 + advantage) / 2``."""
        return (1.0 + self.advantage) / 2.0

    def metrics(self) -> dict[str, float]:
        """The scalar metrics under their stable key names."""
        values = {
            AUC: self.auc,
            ADVANTAGE: self.advantage,
            BALANCED_ACCURACY: self.balanced_accuracy,
        }
        values.update({tpr_at(level): tpr for level, tpr in self.tpr_at_fpr.items()})
        return values


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, level: float) -> float:
    """The largest TPR on the ROC curve whose FPR is at most ``level`` (no interpolation)."""
    return float(tpr[fpr <= level].max())


def evaluate(
    scores: np.ndarray, is_member: np.ndarray, levels: Sequence[float] = FPR_LEVELS
) -> RocEvaluation:
    """Evaluate membership ``scores`` (higher = member) against the true membership."""
    scores = np.asarray(scores, dtype=np.float64)
    is_member = np.asarray(is_member, dtype=bool)
    if not np.all(np.isfinite(scores)):
        raise ValueError("attack scores must be finite")
    if is_member.all() or not is_member.any():
        raise ValueError("evaluation needs both members and non-members")
    roc = exact_roc(scores, is_member)  # scikit-learn's roc_curve and roc_auc_score, exactly
    fpr, tpr = roc.fpr, roc.tpr
    return RocEvaluation(
        fpr=fpr,
        tpr=tpr,
        auc=roc.auc,
        advantage=float(np.max(tpr - fpr)),
        tpr_at_fpr={level: tpr_at_fpr(fpr, tpr, level) for level in levels},
    )


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float

    def __str__(self) -> str:
        if np.isnan(self.low):
            return f"{self.mean:.3g}"
        return f"{self.mean:.3g} [{self.low:.3g}, {self.high:.3g}]"


def mean_interval(
    values: Sequence[float],
    confidence: float = 0.95,
    bounds: tuple[float, float] = (-np.inf, np.inf),
) -> Interval:
    """Mean over targets with a Student-t interval over targets, which treats targets as
    independent (they are not in one configuration: see benchmark.evaluation.intervals); no
    interval (NaN) from a single target.

    The interval is clipped to ``bounds``, the metric's possible range (a TPR is never negative).
    """
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return Interval(mean, float("nan"), float("nan"))
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * stats.sem(values)
    if not np.isfinite(half):  # all values equal
        half = 0.0
    return Interval(mean, float(max(mean - half, bounds[0])), float(min(mean + half, bounds[1])))


def metric_bounds(key: str) -> tuple[float, float]:
    """The possible range of the metric stored under ``key`` (see DESIGN.md section 4)."""
    name = key.rsplit("/", 1)[-1]
    if name == "gap":
        return (-1.0, 1.0)
    if name in ("epsilon", "eps_lb", "count"):
        return (0.0, np.inf)
    return (0.0, 1.0)


def mean_roc(
    curves: Sequence[RocEvaluation], grid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Average TPR over targets on a log-spaced FPR grid (a step function, as in the table)."""
    grid = np.logspace(-5, 0, 300) if grid is None else grid
    return grid, np.mean([tprs_at_fprs(c.fpr, c.tpr, grid) for c in curves], axis=0)


def tprs_at_fprs(fpr: np.ndarray, tpr: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """:func:`tpr_at_fpr` at every level at once: a ROC curve's FPR never decreases, so the
    points with FPR at most a level are a prefix of the curve, whose largest TPR is the running
    maximum at the prefix's last point."""
    last = np.searchsorted(fpr, levels, side="right") - 1
    return np.maximum.accumulate(tpr)[last]
