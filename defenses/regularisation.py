"""Training-time regularisation defenses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmark.errors import ConfigError
from defenses.base import Defense, register_defense

if TYPE_CHECKING:
    from benchmark.training import Recipe


@register_defense("weight_decay")
class WeightDecay(Defense):
    """L2 penalty ``weight_decay * ||w||^2 / 2`` added to the training loss."""

    @dataclass
    class Params:
        weight_decay: float = 5e-3

    def check(self, n_train: int, num_classes: int) -> None:
        if self.params.weight_decay <= 0:
            raise ConfigError(
                f"defense.weight_decay.weight_decay must be > 0 (got {self.params.weight_decay})"
            )

    def recipe(self, base: Recipe) -> Recipe:
        return base.replace(weight_decay=self.params.weight_decay)
