"""Intervals for a configuration's mean metric: a bootstrap over pool points.

**Why not Student-t over targets.** The ``T`` per-target metrics of one configuration are not
independent draws: every target is evaluated on the *same* pool points and attacked with the
same shadow models (each pair of targets shares ``K-2`` of its ``K-1`` references), and the
balanced membership design couples them (a point IN one target is OUT of half the others, so
target-to-target differences largely cancel in the mean). Their spread is the wrong yardstick
for the mean's sampling variation: it misses what all targets share (which points were drawn and
how hard they are) and counts target-to-target variation that the design cancels. Measured over
20 seeds (``python -m benchmark.bench.coverage``), the Student-t interval covered LiRA's AUC in
80% of seeds and was 4.9x too wide for LOSS's AUC.

**The interval** (``points``, the default). The pool points are the sampling unit: each
replicate ``b`` draws point multiplicities ``w_b ~ Multinomial(N, 1/N)``, shared by every target
(the targets stay as they are, so the balanced design's cancellation is kept), recomputes every
target's metric on the reweighted points (the weighted ROC of :func:`weighted_roc_metrics`: a
point drawn twice counts twice in the TPR's and the FPR's numerator and denominator) and averages
over the targets:

    mean*_b = (1/T) sum_t metric_t(scores_t, membership_t; point weights w_b).

A point's contribution carries its scores and memberships in *all* targets, so the per-model
randomness (training seed, membership) rides along with the point: this is the bootstrap of a
mean of exchangeable per-point vectors (Efron & Tibshirani 1993, ch. 6). The interval is the
percentile interval of ``mean*_b`` (ibid., section 13.3) moved by the replicates' median bias
(:func:`percentile_interval`: it matters for TPR at 0.1% FPR), clipped to the metric's range.

Two alternatives are kept for the coverage benchmark: ``two_way``, the pigeonhole bootstrap of
crossed random effects (Owen 2007, "The pigeonhole bootstrap", Ann. Appl. Stat. 1(2)), which also
resamples targets (``c_b ~ Multinomial(T, 1/T)``) and so ignores the design's cancellation: 1.5x
to 6.4x too wide; and ``targets``, targets only (the old interval's independence assumption):
undercovers LiRA (80%).

Metrics without per-point data (utility, ``dp/epsilon``, the empirical epsilon ``eps_lb``) are
resampled over targets only; their intervals describe the spread over targets.

**What it covers**: the variation of the configuration's mean over reruns with new seeds (new
pool/test split, membership matrix and model seeds). Measured over 100 seeds on digits
(``python -m benchmark.bench.coverage``): coverage 0.92-0.99 and 0.93-1.34x the rerun spread for
AUC and TPR at 1% FPR. It treats the pool as a sample of the data distribution, so it also covers
a new draw of the data; reruns on a small fixed dataset share most points (digits: each seed's
pool is 80% of the same 1797 images), hence the rows on the wide side. It cannot see how a
different pool changes what the models learn overall (every point's loss at once): small on the
full digits pool, larger when the pool is a small sample of a larger dataset
(``data.n_samples=600``: LOSS's AUC interval 0.85x the rerun spread, covering 46 of 50 seeds);
``protocol.replicates`` measures it (:mod:`benchmark.experiment.replicates`). Replicate weights
are seeded from the configuration's seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmark.evaluation.keys import ADVANTAGE, AUC, BALANCED_ACCURACY, FPR_LEVELS, tpr_at
from benchmark.evaluation.metrics import Interval

#: Bootstrap replicates: enough for a 95% percentile interval (Efron & Tibshirani 1993, 13.3).
N_REPLICATES = 200
#: ``points``: pool points only, every target kept (the default); ``two_way``: targets and
#: points (pigeonhole); ``targets``: targets only (the old interval's independent targets).
SCHEMES = ("points", "two_way", "targets")


@dataclass(frozen=True)
class Replicates:
    """The resampling weights of ``B`` bootstrap replicates."""

    #: ``[B, T]`` weight of each target in the replicate's mean (counts / T; rows sum to 1).
    targets: np.ndarray
    #: ``[B, N]`` multiplicity of each pool point (non-negative integers, rows sum to N).
    points: np.ndarray
    #: ``[B, T]`` target weights of the metrics without per-point data (always resampled).
    targets_only: np.ndarray

    @property
    def n(self) -> int:
        return self.targets.shape[0]


def draw_replicates(
    seed: int,
    n_targets: int,
    n_points: int,
    n_replicates: int = N_REPLICATES,
    scheme: str = "points",
) -> Replicates:
    """Draw the replicate weights from ``seed`` (the configuration's seed: reproducible)."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown bootstrap scheme {scheme!r}; expected one of {SCHEMES}")
    rng = np.random.default_rng([seed, 0xB0075])
    counts = rng.multinomial(n_targets, np.full(n_targets, 1.0 / n_targets), size=n_replicates)
    targets = counts / n_targets
    points = rng.multinomial(n_points, np.full(n_points, 1.0 / n_points), size=n_replicates)
    uniform_targets = np.full((n_replicates, n_targets), 1.0 / n_targets)
    if scheme == "points":
        return Replicates(uniform_targets, points.astype(np.float64), targets)
    if scheme == "targets":
        return Replicates(targets, np.ones((n_replicates, n_points)), targets)
    return Replicates(targets, points.astype(np.float64), targets)


def weighted_roc_metrics(
    scores: np.ndarray,
    is_member: np.ndarray,
    weights: np.ndarray,
    levels: Sequence[float] = FPR_LEVELS,
) -> dict[str, np.ndarray]:
    """The ROC metrics of one target under ``B`` point weightings ``weights [B, n]``, vectorised.

    The same convention as :func:`benchmark.evaluation.metrics.evaluate` (exact ROC, ties as one
    threshold, no interpolation): with all weights 1 it returns the same values. Sorting is done
    once; each replicate's ROC is the cumulative weighted count of members (TP) and non-members
    (FP) at the end of each group of tied scores. A replicate without a member or a non-member
    gives NaN.
    """
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    s, m = scores[order], np.asarray(is_member, dtype=bool)[order]
    weights = np.asarray(weights)
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # last index of each tie group
    # Integer counts (the bootstrap's) make the running sums exact: members' and non-members'
    # weights are summed apart. Other weights: FP = all drawn points above - TP.
    if weights.dtype.kind not in "iu" and np.all(weights == np.round(weights)):
        weights = weights.astype(np.int32)
    if weights.dtype.kind in "iu":
        tp, fp = _integer_counts(weights, order, m, ends)
    else:
        w = weights[:, order]
        tp = np.cumsum(np.where(m, w, 0), axis=1)[:, ends]
        fp = np.cumsum(w, axis=1)[:, ends] - tp
        zero = np.zeros((len(w), 1))
        tp, fp = np.hstack([zero, tp]), np.hstack([zero, fp])
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = tp / tp[:, -1:]
        fpr = fp / fp[:, -1:]
    auc = np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]), axis=1) / 2.0
    advantage = np.max(tpr - fpr, axis=1)
    values = {AUC: auc, ADVANTAGE: advantage, BALANCED_ACCURACY: (1.0 + advantage) / 2.0}
    rows = np.arange(len(weights))
    for level in levels:
        # Rates rise along the curve: the largest TPR with FPR <= level is at the last such point.
        last = np.sum(fpr <= level, axis=1) - 1
        values[tpr_at(level)] = tpr[rows, np.maximum(last, 0)]
    valid = (tp[:, -1] > 0) & (fp[:, -1] > 0)
    return {key: np.where(valid, v, np.nan) for key, v in values.items()}


def _integer_counts(
    weights: np.ndarray, order: np.ndarray, members: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """TP and FP ``[B, G + 1]`` at the curve's start and at each tie group's end, from integer
    ``weights``: the running weight of the members, and of the non-members, in score order (two
    cumulative sums over half the points each), read where each group ends."""
    members_above = np.r_[0, np.cumsum(members)[ends]]
    others_above = np.r_[0, ends + 1] - members_above
    counts = []
    for group, above in ((order[members], members_above), (order[~members], others_above)):
        running = np.zeros((len(weights), len(group) + 1), dtype=np.int64)
        np.cumsum(weights[:, group], axis=1, out=running[:, 1:])
        counts.append(running[:, above])
    return counts[0], counts[1]


def replicate_means(per_target: np.ndarray, target_weights: np.ndarray) -> np.ndarray:
    """``[B]`` replicate means from per-target values ``[T]`` or ``[B, T]`` (NaN-aware)."""
    values = np.broadcast_to(per_target, target_weights.shape)
    finite = np.isfinite(values)
    total = np.sum(np.where(finite, values, 0.0) * target_weights, axis=1)
    weight = np.sum(np.where(finite, target_weights, 0.0), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / weight


def percentile_interval(
    mean: float,
    replicates: np.ndarray,
    confidence: float = 0.95,
    bounds: tuple[float, float] = (-np.inf, np.inf),
) -> Interval:
    """``mean`` with the percentile interval of its bootstrap ``replicates`` moved by their
    median bias, clipped to ``bounds``; no interval (NaN) when fewer than half the replicates
    are defined.

    The interval is ``[mean + q_a - q_.5, mean + q_(1-a) - q_.5]`` (``q`` the replicates'
    quantiles, ``a = (1 - confidence) / 2``): the percentile interval (Efron & Tibshirani 1993,
    section 13.3) translated so that its median sits on the estimate, i.e. corrected by the
    bootstrap's estimate ``q_.5 - mean`` of the median bias (ibid., ch. 10). For a smooth metric
    (AUC, TPR at 1% FPR) the bias is negligible and the two coincide. At 0.1% FPR with a few
    hundred non-members per target the TPR is "members above every non-member", a maximum-type
    statistic whose resamples (which can only drop the highest non-member) sit above the
    estimate: the plain percentile interval then excluded its own mean in 2-4 of 10 seeds and
    covered 60-70% (``python -m benchmark.bench.coverage``); moved, it always contains the mean.
    """
    finite = replicates[np.isfinite(replicates)]
    if len(finite) < max(2, len(replicates) // 2):
        return Interval(mean, float("nan"), float("nan"))
    alpha = (1.0 - confidence) / 2.0
    low, median, high = np.quantile(finite, [alpha, 0.5, 1.0 - alpha])
    shift = mean - median
    return Interval(mean, float(max(low + shift, bounds[0])), float(min(high + shift, bounds[1])))
