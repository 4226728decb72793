"""The Likelihood Ratio Attack, LiRA (Carlini et al. 2022, "Membership Inference Attacks From
First Principles", Algorithm 1 and its offline variant).

For each pool point the attacker fits Gaussians to the logit-scaled confidence
``phi = log p_y - log(1 - p_y)`` of the shadow models that trained on it (IN) and of those that
did not (OUT), then tests the target's observed ``phi``:

* online:  ``score = log N(phi; mu_in, s_in^2) - log N(phi; mu_out, s_out^2)``  (likelihood ratio);
* offline: ``score = log Pr[Z < phi], Z ~ N(mu_out, s_out^2)`` (one-sided test, OUT models only).

Below ``per_example_variance_from`` shadow models the variances are *global*: one pooled
within-point variance for IN and one for OUT, as the paper recommends for few shadows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from attacks.base import Attack, AttackerView, register_attack
from attacks.transforms import logit_confidence


def _masked_moments(
    values: np.ndarray, mask: np.ndarray, per_example: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Per-point mean of ``values[S, N]`` over rows where ``mask``; per-point or pooled std."""
    count = mask.sum(axis=0)
    mean = np.where(mask, values, 0.0).sum(axis=0) / np.maximum(count, 1)
    residual2 = np.where(mask, (values - mean) ** 2, 0.0)
    if per_example:
        std = np.sqrt(residual2.sum(axis=0) / np.maximum(count - 1, 1))
    else:
        dof = max(int(count.sum() - np.count_nonzero(count)), 1)
        std = np.full(values.shape[1], np.sqrt(residual2.sum() / dof))
    return mean, np.maximum(std, 1e-8)


def lira_statistics(
    shadow_phi: np.ndarray, shadow_membership: np.ndarray, per_example: bool
) -> dict[str, np.ndarray]:
    """``mu_in, std_in, mu_out, std_out`` per point from the shadow models' ``phi[S, N]``."""
    mu_in, std_in = _masked_moments(shadow_phi, shadow_membership, per_example)
    mu_out, std_out = _masked_moments(shadow_phi, ~shadow_membership, per_example)
    return {"mu_in": mu_in, "std_in": std_in, "mu_out": mu_out, "std_out": std_out}


@dataclass
class LiraParams:
    #: From this many shadow models on, variances are estimated per example.
    per_example_variance_from: int = 64


class _Lira(Attack):
    Params = LiraParams
    online: bool

    def _fit(self, view: AttackerView) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        target_phi = logit_confidence(view.target_outputs, view.labels)
        shadow_phi = logit_confidence(view.shadow_outputs, view.labels)
        per_example = view.n_shadows >= self.params.per_example_variance_from
        return target_phi, lira_statistics(shadow_phi, view.shadow_membership, per_example)

    def not_applicable(self, view: AttackerView) -> str | None:
        reason = super().not_applicable(view)
        if reason is None:
            needs_in = view.shadow_membership.any(axis=0) if self.online else True
            if not np.all(needs_in & (~view.shadow_membership).any(axis=0)):
                reason = (
                    "some pool points have no IN or OUT shadow model: use protocol.n_models >= 4"
                )
        return reason


@register_attack("lira_online")
class LiraOnline(_Lira):
    """Online LiRA: likelihood ratio of IN and OUT Gaussians (Carlini et al. 2022, Alg. 1)."""

    online = True

    def score(self, view: AttackerView) -> np.ndarray:
        phi, s = self._fit(view)
        return norm.logpdf(phi, s["mu_in"], s["std_in"]) - norm.logpdf(
            phi, s["mu_out"], s["std_out"]
        )


@register_attack("lira_offline")
class LiraOffline(_Lira):
    """Offline LiRA: a one-sided test against the OUT Gaussian only (Carlini et al. 2022)."""

    online = False

    def score(self, view: AttackerView) -> np.ndarray:
        phi, s = self._fit(view)
        return norm.logcdf(phi, s["mu_out"], s["std_out"])
