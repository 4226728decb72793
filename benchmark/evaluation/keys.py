"""The stable metric keys: the one module that spells every name MLflow, reports and users'
scripts read (DESIGN's section 4 contract; ARCHITECTURE.md lists them).

Per target run and per configuration run (the mean, with ``_ci_low`` / ``_ci_high`` beside it):

- ``utility/test_acc``, ``utility/train_acc``, ``utility/gap``;
- ``dp/epsilon``: the accountant's epsilon (DP-SGD only);
- ``<group>/<attack>/<metric>``: every attack in every metric group, ``<metric>`` one of
  :data:`ROC_METRICS` or :data:`EPS_LB`;
- ``train/loss``, ``train/acc`` per epoch (step = epoch): the mean over the models in the
  configuration run, each model's own in its target run. Spelled in :mod:`benchmark.progress`,
  the lowest layer, because the training engines report them.

Per configuration run only: ``audit/<method>/eps_lb`` (and ``audit/<method>/mu_lb`` for a
Gaussian-DP estimate), the bounds of a canary audit (``audit=whitebox``, ``audit=blackbox``).
"""

from __future__ import annotations

from benchmark.progress import TRAIN_ACC, TRAIN_LOSS  # noqa: F401 (re-exported: curve keys)

#: Metric groups: the ordinary population (fitted members against non-members), and the
#: canaries when there are any.
POPULATION, CANARY = "privacy", "privacy_canary"
#: The members a training hook held out of fitting (validation / reference sets) against the
#: same non-members, when there are any; :data:`HELDOUT_COUNT` is their number per target.
HELDOUT = "privacy_heldout"
HELDOUT_COUNT = "heldout/count"
UTILITY = "utility"
UTILITY_METRICS = ("test_acc", "train_acc", "gap")
DP_EPSILON = "dp/epsilon"
#: The metrics of one ROC evaluation, in the order tables show them (metrics.RocEvaluation).
AUC = "auc"
ADVANTAGE = "advantage"
BALANCED_ACCURACY = "balanced_accuracy"
#: The FPR levels at which TPR is reported; 0.1% is the headline.
FPR_LEVELS = (0.001, 0.01, 0.1)
HEADLINE_FPR = 0.001
EPS_LB = "eps_lb"
#: A canary audit's metrics: ``audit/<method>/eps_lb`` and the Gaussian-DP ``mu_lb``.
AUDIT, MU_LB = "audit", "mu_lb"
#: The suffixes of a configuration's interval around a mean.
CI_LOW, CI_HIGH = "_ci_low", "_ci_high"
#: Run tags: ``not_applicable/<attack>`` holds why an attack did not apply.
NOT_APPLICABLE = "not_applicable"


def tpr_at(level: float) -> str:
    """``tpr_at_fpr_0.001`` for ``level=0.001``."""
    return f"tpr_at_fpr_{level:g}"


HEADLINE = tpr_at(HEADLINE_FPR)
ROC_METRICS = (AUC, *(tpr_at(level) for level in FPR_LEVELS), ADVANTAGE, BALANCED_ACCURACY)

#: ``privacy/strongest/<key>``: not an attack but, per key, the largest mean over the attacks
#: that applied (one axis that compares every run, whatever attacks apply to its release).
STRONGEST = "strongest"
STRONGEST_KEYS = (AUC, HEADLINE, ADVANTAGE, EPS_LB)


def utility_key(metric: str) -> str:
    return f"{UTILITY}/{metric}"


def privacy_key(group: str, attack: str, metric: str) -> str:
    return f"{group}/{attack}/{metric}"


def audit_key(method: str, metric: str = EPS_LB) -> str:
    """``audit/whitebox_gdp/eps_lb`` for ``method="whitebox_gdp"``."""
    return f"{AUDIT}/{method}/{metric}"


def strongest_key(metric: str) -> str:
    return privacy_key(POPULATION, STRONGEST, metric)


def not_applicable_tag(attack: str) -> str:
    return f"{NOT_APPLICABLE}/{attack}"


def interval_keys(key: str) -> tuple[str, str]:
    """The keys of the interval around the mean logged under ``key``."""
    return key + CI_LOW, key + CI_HIGH
