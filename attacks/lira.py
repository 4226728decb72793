"""The Likelihood Ratio Attack, LiRA (Carlini et al. 2022, "Membership Inference Attacks From
First Principles", Algorithm 1 and its offline variant, section IV).

For each pool point the attacker fits Gaussians to the logit-scaled confidence
``phi = log p_y - log(1 - p_y)`` (section IV, "logit scaling") of the shadow models that trained
on it (IN) and of those that did not (OUT), then tests the target's observed ``phi``:

* online:  ``score = log N(phi; mu_in, s_in^2) - log N(phi; mu_out, s_out^2)``  (Algorithm 1);
* offline: ``score = log Pr[Z < phi], Z ~ N(mu_out, s_out^2)`` (one-sided test, OUT models only).

Below ``per_example_variance_from`` shadow models the variances are *global*: one pooled
within-point variance for IN and one for OUT, as the paper recommends for few shadows
(its "fixed variance" ablation, section VI).

**Augmented queries** (section VI, "augmentations"). On image pools the attacker may also query
every model on shifted (and, optionally, flipped) copies of each point; a Gaussian is fitted per
point and per augmentation, and the score is the mean over augmentations of the per-augmentation
scores, which for the online attack is the log-likelihood ratio of a multivariate Gaussian with
diagonal covariance divided by the number of augmentations (the treatment of Carlini et al.'s
released code). Tabular pools are never augmented. Off by default: on digits, whose models train
without augmentation, shifted queries lower the TPR at low FPR (see the suite's comments).

Shadow membership is read through the view's balanced IN/OUT groups (see :mod:`attacks.base`);
a point left with no shadow of one kind (possible only with a restricted shadow set) falls back
to the mean of the per-point means, which is the same for members and non-members.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from attacks.augment import image_augmentations
from attacks.base import Attack, AttackerView, register_attack
from attacks.transforms import logit_confidence

#: Smallest standard deviation of ``phi``: guards a division when every shadow saturates alike.
MIN_STD = 1e-6


def _masked_moments(
    values: np.ndarray, mask: np.ndarray, per_example: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Per-point mean of ``values[S, ..., N]`` over the shadows in ``mask``; per-point/pooled std.

    The pooled (global) variance is the within-point variance pooled over points, one per leading
    index after the shadow axis (i.e. one per augmentation). A point without samples gets the mean
    of the other points' means; a point with fewer than 2 gets the pooled variance.
    """
    mask = np.broadcast_to(mask, values.shape)
    count = mask.sum(axis=0)
    mean = np.where(mask, values, 0.0).sum(axis=0) / np.maximum(count, 1)
    has = count > 0
    fallback = np.where(has, mean, 0.0).sum(axis=-1, keepdims=True) / np.maximum(
        has.sum(axis=-1, keepdims=True), 1
    )
    mean = np.where(has, mean, fallback)
    residual2 = np.where(mask, (values - mean) ** 2, 0.0).sum(axis=0)
    dof = np.maximum(count - 1, 0)
    pooled = np.sqrt(
        residual2.sum(axis=-1, keepdims=True) / np.maximum(dof.sum(axis=-1, keepdims=True), 1)
    )
    std = np.broadcast_to(pooled, mean.shape)
    if per_example:
        std = np.where(dof > 0, np.sqrt(residual2 / np.maximum(dof, 1)), std)
    return mean, np.maximum(std, MIN_STD)


def lira_statistics(
    shadow_phi: np.ndarray, in_mask: np.ndarray, out_mask: np.ndarray, per_example: bool
) -> dict[str, np.ndarray]:
    """``mu_in, std_in, mu_out, std_out`` per point from the shadow models' ``phi[S, ..., N]``."""
    mu_in, std_in = _masked_moments(shadow_phi, in_mask, per_example)
    mu_out, std_out = _masked_moments(shadow_phi, out_mask, per_example)
    return {"mu_in": mu_in, "std_in": std_in, "mu_out": mu_out, "std_out": std_out}


@dataclass
class LiraParams:
    #: From this many shadow models on, variances are estimated per example (else globally).
    per_example_variance_from: int = 64
    #: Image pools: also query every shift of up to this many pixels (0: no shifted queries).
    max_shift: int = 0
    #: Image pools: also query the horizontal mirror of every (shifted) copy.
    flip: bool = False


class _Lira(Attack):
    Params = LiraParams
    needs_shadow_pairs = True
    online: bool

    def augments(self, view: AttackerView) -> bool:
        p = self.params
        return (
            view.pool_kind == "image"
            and (p.max_shift > 0 or p.flip)
            and view.features is not None
            and view.query_target is not None
            and view.query_shadow is not None
        )

    def phis(self, view: AttackerView) -> tuple[np.ndarray, np.ndarray]:
        """The target's ``phi [A, N]`` and the shadows' ``phi [S, A, N]`` on ``A`` augmentations."""
        if not self.augments(view):
            return (
                logit_confidence(view.target_outputs, view.labels)[None],
                logit_confidence(view.shadow_outputs, view.labels)[:, None],
            )
        p, x = self.params, view.features
        flat = self.perturbed_pool(
            view,
            "lira_augmentations",
            lambda: image_augmentations(x, p.max_shift, p.flip).reshape(-1, *x.shape[1:]),
        )
        shape = (-1, len(x), view.num_classes)
        target = view.query_target(flat).reshape(shape)
        shadows = np.stack(
            [view.query_shadow(s, flat).reshape(shape) for s in range(view.n_shadows)]
        )
        return logit_confidence(target, view.labels), logit_confidence(shadows, view.labels)

    def fit(self, view: AttackerView) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        target_phi, shadow_phi = self.phis(view)
        per_example = view.n_shadows >= self.params.per_example_variance_from
        in_mask, out_mask = view.in_shadows[:, None], view.out_shadows[:, None]
        return target_phi, lira_statistics(shadow_phi, in_mask, out_mask, per_example)


@register_attack("lira_online")
class LiraOnline(_Lira):
    """Online LiRA: likelihood ratio of IN and OUT Gaussians (Carlini et al. 2022, Algorithm 1)."""

    online = True

    def score(self, view: AttackerView) -> np.ndarray:
        phi, s = self.fit(view)
        ratio = norm.logpdf(phi, s["mu_in"], s["std_in"]) - norm.logpdf(
            phi, s["mu_out"], s["std_out"]
        )
        return ratio.mean(axis=0)


@register_attack("lira_offline")
class LiraOffline(_Lira):
    """Offline LiRA: one-sided test against the OUT Gaussian (Carlini et al. 2022, section IV)."""

    online = False

    def score(self, view: AttackerView) -> np.ndarray:
        phi, s = self.fit(view)
        return norm.logcdf(phi, s["mu_out"], s["std_out"]).mean(axis=0)
