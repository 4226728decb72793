"""RelaxLoss (Chen, Yu and Fritz 2022, "RelaxLoss: Defending Membership Inference Attacks without
Losing Utility", Algorithm 1)."""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.errors import require
from benchmark.training.recipe import Recipe
from defenses.base import Defense, register_defense


@register_defense("relaxloss")
class RelaxLoss(Defense):
    """Hold the members' mean training loss near a target level ``alpha`` instead of driving it
    to 0: gradient descent above ``alpha``; below it, gradient ascent in even epochs and
    posterior flattening of correctly classified examples in odd ones (see
    :func:`benchmark.objectives.relaxloss`). Larger ``alpha`` is a stronger defense."""

    @dataclass
    class Params:
        alpha: float = 0.5

    def check(self, n_train: int, num_classes: int) -> None:
        require(
            self.params.alpha > 0, f"defense.relaxloss.alpha must be > 0 (got {self.params.alpha})"
        )

    def recipe(self, base: Recipe) -> Recipe:
        return base.replace(relaxloss_alpha=self.params.alpha)
