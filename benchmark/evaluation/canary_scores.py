"""The white-box audit's canary statistics and its bounds (``audit=whitebox``).

The observations are the privatized gradient at each Dirac canary's coordinate after every step,
in units of the clipping bound ``C`` per example (:mod:`benchmark.training.audit_canaries`): a
step's observation is ``N(r, sigma^2)`` when the canary was not sampled and ``N(r + 1, sigma^2)``
when it was (``r``: the real examples' share at that coordinate). Two statistics, each computed
without the inclusion bits, from the mechanism's *claimed* ``q`` and ``sigma`` only:

- the **sum** over steps (Nasr et al. 2023, Section 4, and Steinke et al. 2023, Section 6: the
  canary's total update), Gaussian under both hypotheses, so its separation is the GDP parameter
  of :func:`benchmark.evaluation.dp_audit.gdp_bound`;
- the **likelihood ratio** of the subsampled Gaussian mechanism, summed over steps,
  ``sum_t log(1 - q + q exp((x_t - 1/2) / sigma^2))``: the Neyman-Pearson test of one step
  (Nasr et al. 2023, Section 5.1, "the optimal test for each step"), far more powerful than the sum
  when ``sigma`` is small and ``q`` is too, and the statistic of the one-run guesses.

Four bounds, logged as ``audit/<method>/eps_lb``:

- ``whitebox_one_run``: Steinke et al.'s one-run bound from the ``m`` canaries of one model (the
  first);
- ``whitebox_runs``: the same bound over all ``K m`` (model, canary) pairs;
- ``whitebox_gdp``: the Gaussian-DP estimate from the likelihood ratios over all pairs. Summed
  over ``T`` steps they are close to Gaussian (central limit theorem; Dong, Roth & Su 2022,
  Theorem 3.5: the composed subsampled Gaussian tends to ``mu``-GDP with ``mu = q sqrt(T
  (e^{1/sigma^2} - 1))``), and the optimal test's separation estimates that ``mu``;
- ``whitebox_gdp_sum``: the same estimate from the plain sums, Gaussian by construction, but
  weaker: the real examples' gradients drift along each coordinate over training and add their
  spread to the noise's.

Pure numpy.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from benchmark.evaluation.dp_audit import CONFIDENCE, AuditBound, gdp_bound, one_run_bound

ONE_RUN, RUNS = "whitebox_one_run", "whitebox_runs"
GDP, GDP_SUM = "whitebox_gdp", "whitebox_gdp_sum"


def sum_scores(observations: np.ndarray) -> np.ndarray:
    """``[K, m]``: each canary's observations summed over the ``T`` steps (``[T, K, m]``)."""
    return np.asarray(observations, np.float64).sum(axis=0)


def likelihood_scores(observations: np.ndarray, sample_rate: float, sigma: float) -> np.ndarray:
    """``[K, m]``: the subsampled Gaussian log-likelihood ratio, summed over steps."""
    x = np.asarray(observations, np.float64)
    per_step = np.logaddexp(np.log1p(-sample_rate), np.log(sample_rate) + (x - 0.5) / sigma**2)
    return per_step.sum(axis=0)


def whitebox_audit(
    included: np.ndarray,
    observations: np.ndarray,
    sample_rate: float,
    sigma: float,
    delta: float,
    confidence: float = CONFIDENCE,
) -> list[AuditBound]:
    """The four white-box bounds of the module docstring, in that order."""
    included = np.asarray(included, bool)
    ratio = likelihood_scores(observations, sample_rate, sigma)
    every = tuple(range(len(included)))
    bounds = [
        (one_run_bound(ONE_RUN, ratio[0], included[0], delta, confidence), (0,)),
        (one_run_bound(RUNS, ratio, included, delta, confidence), every),
        (gdp_bound(GDP, ratio, included, delta, confidence), every),
        (gdp_bound(GDP_SUM, sum_scores(observations), included, delta, confidence), every),
    ]
    return [replace(bound, models=models) for bound, models in bounds]
