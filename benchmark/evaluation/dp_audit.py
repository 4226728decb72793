"""Auditing DP-SGD with audit canaries: epsilon lower bounds from canary statistics.

Each of ``m`` audit canaries is included in a training run with probability 1/2, independently of
everything else; after training, the auditor scores every canary (higher = more likely included)
without looking at the inclusion bits. Two estimators turn the scores into a bound.

**One-run (epsilon, delta) bound** (Steinke, Nasr & Jagielski 2023, "Privacy Auditing with One (1)
Training Run", Theorem 3.1 and, for delta > 0, Theorem 5.2 / Algorithm 2). The auditor guesses
"included" for the ``k_plus`` highest scores, "excluded" for the ``k_minus`` lowest and abstains on
the rest: ``r = k_plus + k_minus`` guesses, ``v`` of them correct. If training is
(epsilon, delta)-DP with respect to each canary, then

    P[V >= v] <= P[Binomial(r, p) >= v] + 2 m delta max_{1<=i<=v} P[v > Binomial(r, p) >= v-i] / i,

with ``p = e^eps / (1 + e^eps)``, the accuracy of randomized response. The bound is the largest
``eps`` whose p-value is still below ``1 - confidence``. The canaries may be arbitrarily dependent
through the shared training run: only the independence of the inclusion bits is assumed.
Several guess counts are tried and the confidence is split among them (Bonferroni), so picking
the best one keeps the stated confidence.

**Many runs.** ``K`` models trained independently, each with its own ``m`` canaries and its own
inclusion bits, are one mechanism in which each (model, canary) pair is a separate record of the
input that only its model reads: the joint release is (epsilon, delta)-DP with respect to each
pair, so the same theorem applies to the ``K m`` pairs.

**Gaussian-DP estimate** (Nasr et al. 2023, "Tight Auditing of Differentially Private Machine
Learning", Section 5; Dong, Roth & Su 2022, "Gaussian Differential Privacy"). When a canary's
statistic is Gaussian with equal variance under inclusion and exclusion (a sum over many steps of
DP-SGD noise is), the separation ``mu = (mean_in - mean_out) / sd`` is the GDP parameter the
statistic certifies; its lower confidence limit (one-sided limits on the mean difference and on
the standard deviation, the confidence split between them) converts to ``eps(delta)`` through the
GDP curve ``delta(eps) = Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2)`` (Dong et al.,
Corollary 2.13). This is an *estimate*: it holds under the Gaussian model of the statistic, not
for any mechanism, and it is tighter than the one-run bound when ``m`` is small, because it uses
every canary, not only the confident guesses (Mahloujifar, Melis & Chaudhuri 2025, "Auditing
f-Differential Privacy in One Run", make the same point with a distribution-free f-DP analysis).

Pure numpy/scipy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

#: Default confidence of every bound (the Clopper-Pearson audit's too).
CONFIDENCE = 0.95
#: The fractions of the canaries guessed (half on each tail, then all on the high tail): the
#: candidates the Bonferroni split covers.
GUESS_FRACTIONS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
#: No epsilon above this is searched (e^50 overflows nothing, and no audit reaches it).
EPS_MAX = 50.0


@dataclass(frozen=True)
class AuditBound:
    """One method's epsilon lower bound and what it rests on."""

    method: str
    eps_lb: float
    canaries: int
    #: The one-run bound's guesses and correct guesses (0 for the GDP estimate).
    guesses: int = 0
    correct: int = 0
    #: The GDP estimate's lower limit on mu (NaN for the one-run bound).
    mu_lb: float = float("nan")
    #: The models whose canaries the bound rests on.
    models: tuple[int, ...] = ()


def one_run_p_value(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """The p-value of ``v`` correct out of ``r`` guesses on ``m`` canaries under (eps, delta)-DP.

    Steinke et al. 2023, Theorem 5.2 (their Algorithm 2): the randomized-response binomial tail
    plus the delta term.
    """
    if v <= 0:
        return 1.0
    p = 1.0 / (1.0 + np.exp(-eps))
    tail = float(stats.binom.sf(v - 1, r, p))  # P[Binomial(r, p) >= v]
    if delta <= 0:
        return min(tail, 1.0)
    below = np.cumsum(stats.binom.pmf(v - np.arange(1, v + 1), r, p))  # P[v > B >= v - i]
    alpha = float(np.max(below / np.arange(1, v + 1)))
    return min(tail + 2.0 * m * delta * alpha, 1.0)


def one_run_epsilon(m: int, r: int, v: int, delta: float, level: float) -> float:
    """The largest eps whose p-value is at most ``level`` (0 when none is): the lower bound."""
    if one_run_p_value(m, r, v, 0.0, delta) > level:
        return 0.0
    if one_run_p_value(m, r, v, EPS_MAX, delta) <= level:
        return EPS_MAX
    # The p-value grows with eps: the bound is where it crosses ``level``.
    return float(
        optimize.brentq(
            lambda eps: one_run_p_value(m, r, v, eps, delta) - level, 0.0, EPS_MAX, xtol=1e-6
        )
    )


def guess_splits(m: int) -> list[tuple[int, int]]:
    """The ``(k_plus, k_minus)`` candidates: each fraction split evenly, then all on the top."""
    splits = []
    for fraction in GUESS_FRACTIONS:
        r = max(int(round(fraction * m)), 1)
        splits += [(r - r // 2, r // 2), (r, 0)]
    return sorted(set(splits))


def count_correct(
    scores: np.ndarray, included: np.ndarray, k_plus: int, k_minus: int
) -> tuple[int, int]:
    """Guesses and correct guesses: the ``k_plus`` highest scores guessed in, the ``k_minus``
    lowest guessed out (ties broken by position, which the inclusion bits do not influence)."""
    order = np.argsort(np.asarray(scores, np.float64), kind="stable")
    included = np.asarray(included, bool)
    correct = int(included[order[len(order) - k_plus :]].sum()) if k_plus else 0
    correct += int((~included[order[:k_minus]]).sum())
    return k_plus + k_minus, correct


def one_run_bound(
    method: str,
    scores: np.ndarray,
    included: np.ndarray,
    delta: float,
    confidence: float = CONFIDENCE,
) -> AuditBound:
    """Steinke et al.'s bound at the best guess count, the confidence split over all of them."""
    scores, included = np.ravel(scores), np.ravel(included)
    m = len(scores)
    splits = guess_splits(m)
    level = (1.0 - confidence) / len(splits)
    best = AuditBound(method, 0.0, m)
    for k_plus, k_minus in splits:
        r, v = count_correct(scores, included, k_plus, k_minus)
        eps = one_run_epsilon(m, r, v, delta, level)
        if eps > best.eps_lb:
            best = AuditBound(method, eps, m, guesses=r, correct=v)
    return best


def gdp_delta(eps: float, mu: float) -> float:
    """The delta of mu-GDP at eps (Dong, Roth & Su 2022, Corollary 2.13)."""
    if mu <= 0:
        return 0.0
    return float(
        stats.norm.cdf(-eps / mu + mu / 2) - np.exp(eps) * stats.norm.cdf(-eps / mu - mu / 2)
    )


def gdp_epsilon(mu: float, delta: float) -> float:
    """The smallest eps with ``delta(eps) <= delta`` for mu-GDP (0 when mu <= 0)."""
    if mu <= 0 or gdp_delta(0.0, mu) <= delta:
        return 0.0
    high = 1.0
    while gdp_delta(high, mu) > delta:
        high *= 2.0
    return float(optimize.brentq(lambda eps: gdp_delta(eps, mu) - delta, 0.0, high, xtol=1e-9))


def gdp_mu_lower(inside: np.ndarray, outside: np.ndarray, confidence: float = CONFIDENCE) -> float:
    """A lower confidence limit on ``(mean_in - mean_out) / sd`` under the Gaussian model.

    The error probability ``1 - confidence`` is split evenly between a one-sided Welch limit on
    the mean difference and a chi-square upper limit on each group's standard deviation (the
    larger one is used, so unequal variances only make the limit more conservative).
    """
    inside, outside = np.asarray(inside, np.float64), np.asarray(outside, np.float64)
    if min(len(inside), len(outside)) < 2:
        return 0.0
    alpha = (1.0 - confidence) / 3.0
    var_in, var_out = inside.var(ddof=1), outside.var(ddof=1)
    spread = np.sqrt(var_in / len(inside) + var_out / len(outside))
    difference = inside.mean() - outside.mean() - stats.norm.ppf(1 - alpha) * spread
    sd_high = max(
        np.sqrt(var * (n - 1) / stats.chi2.ppf(alpha, n - 1))
        for var, n in ((var_in, len(inside)), (var_out, len(outside)))
    )
    if not sd_high > 0:
        return 0.0
    return float(max(difference / sd_high, 0.0))


def gdp_bound(
    method: str,
    scores: np.ndarray,
    included: np.ndarray,
    delta: float,
    confidence: float = CONFIDENCE,
) -> AuditBound:
    """The Gaussian-DP estimate of epsilon at ``delta`` from every canary's statistic."""
    scores, included = np.ravel(scores), np.ravel(included).astype(bool)
    mu = gdp_mu_lower(scores[included], scores[~included], confidence)
    return AuditBound(method, gdp_epsilon(mu, delta), len(scores), mu_lb=mu)
