"""RMIA, the Robust Membership Inference Attack (Zarifzadeh et al. 2024, "Low-Cost High-Power
Membership Inference Attacks", section 3).

For a point ``x`` and a population point ``z`` the pairwise likelihood ratio is

    ``LR(x, z) = [Pr(x | theta) / Pr(x)] / [Pr(z | theta) / Pr(z)]``

with ``Pr(x | theta)`` the target's released probability of ``x``'s label and ``Pr(x)`` its
average over reference (shadow) models. The score is the fraction of population points that
``x`` dominates:

    ``Score(x) = Pr_z[ LR(x, z) >= gamma ]``

* ``rmia`` (online): ``Pr(x) = (mean_IN + mean_OUT) / 2`` over the view's balanced IN and OUT
  shadows, the average over reference models half of which trained on ``x``.
* ``rmia_offline``: only OUT shadows; ``Pr(x) = ((1 + a) mean_OUT + (1 - a)) / 2``, the paper's
  linear approximation of the missing IN average (``Pr_IN ~ a Pr_OUT + 1 - a``, section 3).
  ``a`` is fitted as in the authors' code: each of ``tune_models`` shadow models in turn plays the
  target, the other shadows its references, and ``a`` is the value of ``a_grid`` with the best mean
  AUC against these pseudo-targets' (known) membership. Only shadow models are used.

Population points ``z`` are pool points (``population`` of them, all when null), drawn from a
fixed seed. Their own membership in the target is unknown to the attacker and irrelevant: ``z``
only calibrates the threshold. For a fixed set of ``z`` the score is a non-decreasing function of
``Pr(x | theta) / Pr(x)``; with ``gamma = 1`` and every pool point as ``z`` it is that ratio's rank.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from attacks.base import Attack, AttackerView, balanced_groups, register_attack
from attacks.transforms import FLOOR, true_class_probability
from benchmark.roc import exact_auc


def _group_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-point mean over the shadows in ``mask``; points without any get the mean of the rest."""
    count = mask.sum(axis=0)
    mean = np.where(mask, values, 0.0).sum(axis=0) / np.maximum(count, 1)
    return np.where(count > 0, mean, mean[count > 0].mean() if (count > 0).any() else 0.5)


def marginal_probability(
    shadow_p: np.ndarray, in_mask: np.ndarray, out_mask: np.ndarray, offline_a: float | None
) -> np.ndarray:
    """``Pr(x)`` per point: online (``offline_a`` None) or the offline approximation."""
    mean_out = _group_mean(shadow_p, out_mask)
    if offline_a is None:
        marginal = (_group_mean(shadow_p, in_mask) + mean_out) / 2
    else:
        marginal = ((1 + offline_a) * mean_out + (1 - offline_a)) / 2
    # Floored like every released probability: a top-k release may hide p_y from every shadow.
    return np.maximum(marginal, FLOOR)


def rmia_scores(ratio_x: np.ndarray, ratio_z: np.ndarray, gamma: float) -> np.ndarray:
    """``Pr_z[ratio_x / ratio_z >= gamma]`` for every ``x``: an empirical CDF, O((N + Z) log Z)."""
    return np.searchsorted(np.sort(ratio_z), ratio_x / gamma, side="right") / len(ratio_z)


@dataclass
class RmiaParams:
    #: Threshold on the pairwise likelihood ratio ``LR(x, z)``.
    gamma: float = 1.0
    #: Number of population points ``z`` drawn from the pool (null: every pool point).
    population: int | None = None
    #: Offline only: candidate values of ``a`` ...
    a_grid: list[float] = field(default_factory=lambda: [round(0.1 * i, 1) for i in range(11)])
    #: ... scored against this many shadow models playing the target.
    tune_models: int = 2
    #: Seed of the population draw.
    seed: int = 0


class _Rmia(Attack):
    Params = RmiaParams
    needs_shadow_pairs = True
    online: bool

    def population(self, n_points: int) -> np.ndarray:
        size = self.params.population
        if size is None or size >= n_points:
            return np.arange(n_points)
        return np.random.default_rng([self.params.seed, 0x2]).choice(n_points, size, replace=False)

    def scores_with(
        self,
        target_p: np.ndarray,
        shadow_p: np.ndarray,
        in_mask: np.ndarray,
        out_mask: np.ndarray,
        offline_a: float | None,
    ) -> np.ndarray:
        ratio = np.maximum(target_p, FLOOR) / marginal_probability(
            shadow_p, in_mask, out_mask, offline_a
        )
        return rmia_scores(ratio, ratio[self.population(len(ratio))], self.params.gamma)

    def fit_offline_a(self, shadow_p: np.ndarray, membership: np.ndarray) -> float:
        """The ``a`` of ``a_grid`` with the best mean AUC when shadows play the target."""
        n_tune = min(self.params.tune_models, len(shadow_p) - 1)
        aucs = np.zeros(len(self.params.a_grid))
        for pseudo in range(n_tune):
            rest = np.arange(len(shadow_p)) != pseudo
            in_mask, out_mask = balanced_groups(membership[rest])
            truth = membership[pseudo]
            if truth.all() or not truth.any():
                continue
            for i, a in enumerate(self.params.a_grid):
                scores = self.scores_with(shadow_p[pseudo], shadow_p[rest], in_mask, out_mask, a)
                aucs[i] += exact_auc(scores, truth)  # roc_auc_score's value, exactly
        return float(self.params.a_grid[int(np.argmax(aucs))])

    def score(self, view: AttackerView) -> np.ndarray:
        target_p = true_class_probability(view.target_outputs, view.labels)
        shadow_p = true_class_probability(view.shadow_outputs, view.labels)
        offline_a = None if self.online else self.fit_offline_a(shadow_p, view.shadow_membership)
        return self.scores_with(target_p, shadow_p, view.in_shadows, view.out_shadows, offline_a)


@register_attack("rmia")
class RmiaOnline(_Rmia):
    """Online RMIA: ``Pr(x)`` from IN and OUT shadow models (Zarifzadeh et al. 2024, section 3)."""

    online = True


@register_attack("rmia_offline")
class RmiaOffline(_Rmia):
    """Offline RMIA: OUT shadow models and the fitted ``a`` (Zarifzadeh et al. 2024, section 3)."""

    online = False
