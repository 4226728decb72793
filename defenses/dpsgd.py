"""DP-SGD (Abadi et al. 2016, "Deep Learning with Differential Privacy", Algorithm 1).

Every per-example gradient is clipped to norm ``max_grad_norm`` (C), Gaussian noise of standard
deviation ``sigma * C`` is added to their sum, and batches are Poisson-sampled. ``sigma`` is the
smallest noise multiplier for which the accountant certifies ``(target_epsilon, delta)``-DP after
``training.epochs`` epochs; the epsilon actually spent, from the same accountant, is logged per
model as ``dp/epsilon``. Training runs through Opacus (see :mod:`benchmark.training.accounting`).
"""

from __future__ import annotations

from benchmark.errors import ConfigError
from benchmark.training.accounting import ACCOUNTANTS, DPParams
from benchmark.training.recipe import Recipe
from defenses.base import Defense, register_defense


@register_defense("dpsgd")
class DPSGD(Defense):
    """Differentially private training: per-example clipping, Gaussian noise, Poisson batches."""

    family = "dpsgd"

    #: The parameters are the recipe's DP-SGD settings, unchanged.
    Params = DPParams

    def check(self, n_train: int, num_classes: int) -> None:
        p = self.params
        if not p.target_epsilon > 0:
            raise ConfigError(
                f"defense.dpsgd.target_epsilon must be > 0 (got {p.target_epsilon}), e.g. 8"
            )
        if not 0 < p.delta < 1 / n_train:
            raise ConfigError(
                f"defense.dpsgd.delta={p.delta} must be in (0, 1/N) where N={n_train} is each "
                f"model's training-set size: set defense.dpsgd.delta below {1 / n_train:.3g}"
            )
        if not p.max_grad_norm > 0:
            raise ConfigError(
                f"defense.dpsgd.max_grad_norm must be > 0 (got {p.max_grad_norm}), e.g. 1.0"
            )
        if p.accountant not in ACCOUNTANTS:
            raise ConfigError(
                f"defense.dpsgd.accountant must be one of {list(ACCOUNTANTS)} "
                f"(got '{p.accountant}')"
            )

    def recipe(self, base: Recipe) -> Recipe:
        return base.replace(dp=self.params)
