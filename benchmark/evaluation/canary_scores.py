"""The canary audits' statistics and their bounds (``audit=whitebox``, ``audit=blackbox``).

**White-box** (``audit=whitebox``).

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

**Black-box** (``audit=blackbox``). The auditor queries every trained model on the crafted
input canaries (:mod:`benchmark.training.input_canaries`) and sees only their logits. The
statistic is LiRA's (Carlini et al. 2022, "Membership Inference Attacks From First Principles",
Section 4.2, Eq. 4), the logit-scaled confidence in the canary's label,
``phi = log p_y - log(1 - p_y) = z_y - logsumexp_{c != y} z_c``, the strongest black-box
statistic of the suite, calibrated per canary as LiRA offline is: model ``k``'s ``phi`` on
canary ``j`` minus the mean of the other models' ``phi`` on it. The calibration uses the other
models' outputs but never an inclusion bit, so every guess is a function of the release alone,
as Steinke et al.'s theorem requires (the other models are independent of model ``k``'s bits).
Three bounds: ``blackbox_one_run`` (the first model's ``m`` canaries), ``blackbox_runs`` (all
``K m`` pairs) and ``blackbox_gdp`` (the Gaussian-DP estimate over all pairs; LiRA's premise is
that ``phi`` is close to Gaussian).

Pure numpy.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from benchmark.evaluation.dp_audit import CONFIDENCE, AuditBound, gdp_bound, one_run_bound

ONE_RUN, RUNS = "whitebox_one_run", "whitebox_runs"
GDP, GDP_SUM = "whitebox_gdp", "whitebox_gdp_sum"
BLACKBOX_ONE_RUN, BLACKBOX_RUNS, BLACKBOX_GDP = "blackbox_one_run", "blackbox_runs", "blackbox_gdp"


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


def logit_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``[K, m]``: ``z_y - logsumexp_{c != y} z_c`` of every model's logits ``[K, m, C]``."""
    z = np.asarray(logits, np.float64)
    labels = np.broadcast_to(np.asarray(labels), z.shape[:2])
    own = np.take_along_axis(z, labels[..., None], axis=-1)[..., 0]
    others = np.where(np.arange(z.shape[-1]) == labels[..., None], -np.inf, z)
    return own - np.logaddexp.reduce(others, axis=-1)


def calibrated_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``[K, m]``: :func:`logit_confidence` minus the other models' mean on the same canary
    (left as it is with a single model)."""
    phi = logit_confidence(logits, labels)
    n_models = len(phi)
    if n_models < 2:
        return phi
    others_mean = (phi.sum(axis=0, keepdims=True) - phi) / (n_models - 1)
    return phi - others_mean


def blackbox_audit(
    included: np.ndarray,
    logits: np.ndarray,
    labels: np.ndarray,
    delta: float,
    confidence: float = CONFIDENCE,
) -> list[AuditBound]:
    """The three black-box bounds of the module docstring, from logits ``[K, m, C]``."""
    included = np.asarray(included, bool)
    scores = calibrated_confidence(logits, labels)
    every = tuple(range(len(included)))
    bounds = [
        (one_run_bound(BLACKBOX_ONE_RUN, scores[0], included[0], delta, confidence), (0,)),
        (one_run_bound(BLACKBOX_RUNS, scores, included, delta, confidence), every),
        (gdp_bound(BLACKBOX_GDP, scores, included, delta, confidence), every),
    ]
    return [replace(bound, models=models) for bound, models in bounds]
