"""Empirical epsilon: the privacy loss an attack *proves* a model has, as a lower bound on epsilon.

**The bound.** An (epsilon, delta)-DP training algorithm bounds every membership test: its true
and false positive rates satisfy (Kairouz, Oh & Viswanath 2015, Theorem 2.1; Jagielski, Ullman &
Oprea 2020, "Auditing Differentially Private Machine Learning", Section 3)

    TPR <= e^eps * FPR + delta      and      TNR <= e^eps * FNR + delta,

so a test observed with rates (TPR, FPR) proves

    eps >= max( log((TPR - delta) / FPR),  log((TNR - delta) / FNR) ).

The rates are estimated from finitely many points, so, as in Jagielski et al. 2020 and Nasr et al.
2021 ("Adversary Instantiation: Lower Bounds for Differentially Private Machine Learning"), the
bound is computed from two-sided Clopper-Pearson intervals at ``confidence`` (95%): ``TPR_low``
from the true positives among members and ``FPR_high`` from the false positives among non-members;
``TNR_low = 1 - FPR_high`` and ``FNR_high = 1 - TPR_low``. Both terms therefore rest on the same
two one-sided events, ``TPR >= TPR_low`` and ``FPR <= FPR_high``, each failing with probability at
most ``(1 - confidence) / 2``: the reported bound holds with probability at least ``confidence``.
It is clipped at 0 (a test that proves nothing).

**The threshold** (member iff ``score >= threshold``) must not be chosen on the audited target's
membership, which would pick the luckiest threshold and bias the bound upwards. For target ``k``
it is chosen on the *other* targets ``j != k``, which are shadow models from ``k``'s point of view:
the threshold maximising the mean bound over them (the same sample size as ``k``'s own
evaluation), among distinct shadow score values at log-spaced ranks from both tails, where the
bound is largest. It is then evaluated once on ``k``'s scores.

The other targets' scores were computed by attacks that used model ``k`` as one of their ``K-2``
reference models, with ``k``'s membership row as its label, so the threshold is not strictly a
function of the shadows alone. This does not bias ``k``'s bound: the threshold is one scalar, a
symmetric statistic over ``(T-1) * N`` shadow scores in which any single point of ``k`` enters only
as one of ``K-2`` reference observations; and it uses no information beyond what the attacker of
``k`` already holds (every row but ``k``'s, from which the balanced design fixes ``k``'s row, see
:mod:`benchmark.protocol.membership`). Removing the dependence entirely would mean rescoring every
shadow without ``k``, ``T(T-1)`` attack runs instead of ``T``. With a single target there are no
other targets: the threshold is chosen on its even-indexed points and the bound evaluated on its
odd-indexed points (the pool order is already a seeded random permutation), halving the sample.

**What it assumes, and the balanced design.** Clopper-Pearson treats the members' hits (and
the non-members' false alarms) of one target as independent Bernoulli trials. Two things break
that here, and the bound is valid only in the sense stated below:

* *The membership is exactly balanced* (every target trains on a uniformly random half of the
  pool, :mod:`benchmark.protocol.membership`), so inclusions are a sample without replacement,
  not independent coin flips. Given the threshold, the audited statistic is a count over a
  uniformly random half; by Hoeffding (1963, "Probability inequalities for sums of bounded random
  variables", Theorem 4) tails of sums sampled without replacement are no heavier than with
  replacement, so the balanced assignment by itself makes the binomial interval conservative,
  not anti-conservative.
* *All points share one trained model*, so hits are dependent through the training run. Steinke,
  Nasr & Jagielski 2023 ("Privacy Auditing with One (1) Training Run", Theorem 3.1) prove that
  one-run audits are nevertheless valid, but for *independently* (Poisson) included audit points
  and a guessing game with abstentions; their theorem does not cover a fixed-size inclusion.

So ``eps_lb`` is the Jagielski et al. 2020 statistic computed per target, a valid 95% bound under
the independent-trials model and a strong but not formally proven one under this design. A
formally valid one-run bound needs audit canaries included independently with probability 1/2,
scored with Steinke et al.'s test: :mod:`benchmark.evaluation.dp_audit` (``audit=whitebox``,
``audit=blackbox``).

DP accountants such as Opacus's use add/remove adjacency, while a point IN versus OUT of a fixed-
size training set differs by a replacement, for which (eps, delta)-DP guarantees only (2 eps, (1 +
e^eps) delta). A bound above the accountant's epsilon (:func:`accountant_violations`) is therefore a
strong signal of a bug in training, accounting or the attack, and (under the independent-trials
model) a proof of one above twice that epsilon. Each bound holds with 95% confidence on its own;
among many attacks and targets a near-tight bound can cross epsilon by chance, which real attacks on
DP-SGD, far from tight, practically never are.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from benchmark.evaluation.keys import DP_EPSILON, EPS_LB

#: delta used when no selected defense declares one (DP-SGD's default; below 1/N for N < 1e5).
DEFAULT_DELTA = 1e-5
#: Confidence of the Clopper-Pearson intervals, hence of every bound.
CONFIDENCE = 0.95
#: How many candidate thresholds are tried on the shadow models (half from each tail).
N_CANDIDATES = 256


@dataclass(frozen=True)
class EpsilonAudit:
    """The epsilon lower bound of one attack against one target, and how it was obtained."""

    eps_lb: float
    threshold: float
    true_positives: int
    members: int
    false_positives: int
    non_members: int
    tpr_low: float
    fpr_high: float


def clopper_pearson(
    successes: np.ndarray | int, trials: np.ndarray | int, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided Clopper-Pearson interval of a binomial proportion, each tail ``(1-conf)/2``.

    ``low = Beta^-1(alpha/2; k, n-k+1)`` (0 when ``k = 0``), ``high = Beta^-1(1-alpha/2; k+1,
    n-k)`` (1 when ``k = n``); ``n = 0`` gives the uninformative ``[0, 1]``. Vectorised.
    """
    k = np.asarray(successes, dtype=np.float64)
    n = np.broadcast_to(np.asarray(trials, dtype=np.float64), k.shape)
    tail = (1.0 - confidence) / 2.0
    # Evaluate the beta quantiles only where they are defined; the edges are set exactly.
    safe_k, safe_rest = np.maximum(k, 1.0), np.maximum(n - k, 1.0)
    low = np.where(k > 0, stats.beta.ppf(tail, safe_k, n - k + 1.0), 0.0)
    high = np.where(k < n, stats.beta.ppf(1.0 - tail, k + 1.0, safe_rest), 1.0)
    return low, high


@functools.lru_cache(maxsize=64)
def clopper_pearson_table(trials: int, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`clopper_pearson` of every count ``0..trials``, computed once per ``trials``: every
    target of every attack has (about) ``N/2`` members and non-members, and the beta quantiles
    are most of the audit's time. Read-only."""
    low, high = clopper_pearson(np.arange(trials + 1), trials, confidence)
    low.setflags(write=False)
    high.setflags(write=False)
    return low, high


def epsilon_bound(tpr_low: np.ndarray, fpr_high: np.ndarray, delta: float) -> np.ndarray:
    """``max(log((TPR_low - delta)/FPR_high), log((TNR_low - delta)/FNR_high))``, clipped at 0."""
    tpr_low, fpr_high = np.asarray(tpr_low, np.float64), np.asarray(fpr_high, np.float64)
    tnr_low, fnr_high = 1.0 - fpr_high, 1.0 - tpr_low
    with np.errstate(divide="ignore", invalid="ignore"):
        positive = np.log((tpr_low - delta) / fpr_high)
        negative = np.log((tnr_low - delta) / fnr_high)
    bound = np.fmax(positive, negative)  # a term whose numerator is <= 0 proves nothing (NaN)
    return np.where(np.isnan(bound), 0.0, np.maximum(bound, 0.0))


class ThresholdTests:
    """The tests ``score >= t`` on one model's points, for any threshold ``t``.

    Scores are sorted and the Clopper-Pearson ends tabulated for every possible count once, so
    that scanning many thresholds on many shadow models costs a few array lookups.
    """

    def __init__(
        self,
        scores: np.ndarray,
        is_member: np.ndarray,
        delta: float,
        confidence: float = CONFIDENCE,
    ) -> None:
        scores, is_member = np.asarray(scores, np.float64), np.asarray(is_member, bool)
        self.scores = np.sort(scores)
        self.members = np.sort(scores[is_member])
        self.non_members = np.sort(scores[~is_member])
        self.delta = delta
        n_in, n_out = len(self.members), len(self.non_members)
        self._tpr_low = clopper_pearson_table(n_in, confidence)[0]
        self._fpr_high = clopper_pearson_table(n_out, confidence)[1]

    def counts(self, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """True and false positives of ``score >= t`` for every threshold ``t``."""
        tp = len(self.members) - np.searchsorted(self.members, thresholds, side="left")
        fp = len(self.non_members) - np.searchsorted(self.non_members, thresholds, side="left")
        return tp, fp

    def bounds(self, thresholds: np.ndarray) -> np.ndarray:
        """The epsilon lower bound at each threshold."""
        tp, fp = self.counts(np.asarray(thresholds, np.float64))
        return epsilon_bound(self._tpr_low[tp], self._fpr_high[fp], self.delta)

    def audit(self, threshold: float) -> EpsilonAudit:
        """The bound of ``score >= threshold``, a threshold fixed without these points."""
        tp, fp = (int(c[0]) for c in self.counts(np.array([threshold], np.float64)))
        tpr_low, fpr_high = float(self._tpr_low[tp]), float(self._fpr_high[fp])
        return EpsilonAudit(
            eps_lb=float(epsilon_bound(tpr_low, fpr_high, self.delta)),
            threshold=float(threshold),
            true_positives=tp,
            members=len(self.members),
            false_positives=fp,
            non_members=len(self.non_members),
            tpr_low=tpr_low,
            fpr_high=fpr_high,
        )


def candidate_thresholds(scores: np.ndarray, n: int = N_CANDIDATES) -> np.ndarray:
    """Distinct ``scores`` at log-spaced ranks from both ends (where the bound is largest)."""
    values = np.unique(scores)
    ranks = np.unique(np.geomspace(1, len(values), max(n // 2, 1)).astype(np.int64)) - 1
    return np.unique(np.concatenate([values[ranks], values[len(values) - 1 - ranks]]))


def choose_threshold(shadows: Sequence[ThresholdTests]) -> float:
    """The threshold with the largest mean bound over the shadow models' points."""
    candidates = candidate_thresholds(np.concatenate([s.scores for s in shadows]))
    mean_bound = np.mean([s.bounds(candidates) for s in shadows], axis=0)
    return float(candidates[int(np.argmax(mean_bound))])


def audit_targets(
    scores: np.ndarray,
    membership: np.ndarray,
    delta: float = DEFAULT_DELTA,
    mask: np.ndarray | None = None,
    confidence: float = CONFIDENCE,
) -> list[EpsilonAudit]:
    """One :class:`EpsilonAudit` per target; ``scores`` and ``membership`` are ``[T, N]``.

    ``mask`` (bool ``[N]``, or ``[T, N]`` for points that differ per target, e.g. each target's
    fitted members and its non-members) restricts the audit to some points (e.g. the canaries).
    Target ``k``'s threshold is chosen on the targets ``j != k`` (the module docstring says why);
    with one target, on its even-indexed points, and its bound is evaluated on its odd-indexed
    points.
    """
    scores = np.asarray(scores, dtype=np.float64)
    membership = np.asarray(membership, dtype=bool)
    mask = np.ones(scores.shape[1], dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    mask = np.broadcast_to(mask, scores.shape)
    if len(scores) == 1:
        even = np.arange(scores.shape[1]) % 2 == 0
        choose, audit = mask[0] & even, mask[0] & ~even
        shadow = ThresholdTests(scores[0, choose], membership[0, choose], delta, confidence)
        target = ThresholdTests(scores[0, audit], membership[0, audit], delta, confidence)
        return [target.audit(choose_threshold([shadow]))]
    tests = [
        ThresholdTests(s[keep], m[keep], delta, confidence)
        for s, m, keep in zip(scores, membership, mask, strict=True)
    ]
    return [
        test.audit(choose_threshold(tests[:k] + tests[k + 1 :])) for k, test in enumerate(tests)
    ]


def audit_delta(config: Mapping[str, Any]) -> float:
    """The delta to audit at: that of the first selected defense declaring one (DP-SGD), else
    :data:`DEFAULT_DELTA`."""
    for params in (config.get("defense") or {}).values():
        if isinstance(params, Mapping) and params.get("delta") is not None:
            return float(params["delta"])
    return DEFAULT_DELTA


def accountant_violations(
    per_target: Sequence[Mapping[str, float]], tolerance: float = 1e-9
) -> dict[str, list[int]]:
    """Metric prefixes (``privacy/<attack>``) whose ``eps_lb`` exceeds the target's ``dp/epsilon``,
    with the positions of the targets where it does. Empty without an accountant epsilon."""
    violations: dict[str, list[int]] = {}
    for position, metrics in enumerate(per_target):
        epsilon = metrics.get(DP_EPSILON)
        if epsilon is None or not np.isfinite(epsilon):
            continue
        for key, value in metrics.items():
            if key.endswith(f"/{EPS_LB}") and value > epsilon + tolerance:
                violations.setdefault(key[: -len(f"/{EPS_LB}")], []).append(position)
    return violations


#: Run tag set whenever an accountant epsilon exists: "true" when some bound exceeds it.
VIOLATION_TAG = f"audit/{EPS_LB}_exceeds_accountant"


def violation_tags(violations: Mapping[str, Sequence[int]], has_accountant: bool) -> dict[str, str]:
    """MLflow tags: :data:`VIOLATION_TAG` and, when true, which attacks and targets."""
    if not has_accountant:
        return {}
    tags = {VIOLATION_TAG: str(bool(violations)).lower()}
    if violations:
        tags[f"{VIOLATION_TAG}_by"] = "; ".join(
            f"{name} (targets {','.join(map(str, positions))})"
            for name, positions in violations.items()
        )
    return tags


def violation_message(violations: Mapping[str, Sequence[int]]) -> str:
    """The warning printed when an empirical bound exceeds the accountant's epsilon."""
    where = "; ".join(
        f"{name} on targets {list(positions)}" for name, positions in violations.items()
    )
    return (
        "empirical epsilon lower bound exceeds the DP accountant's epsilon "
        f"({where}): suspect a bug in training, privacy accounting or the attack"
    )
