"""Regularisation defenses that are torch's own training options: each sets a field of the
training :class:`Recipe` (the optimiser's weight decay, the cross-entropy's label smoothing, the
model's dropout), which every engine implements. Defenses that change the training loop are
training hooks, one file each (e.g. :mod:`defenses.mixup`)."""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.errors import require
from benchmark.training.recipe import Recipe
from defenses.base import Defense, register_defense


@register_defense("weight_decay")
class WeightDecay(Defense):
    """L2 penalty ``weight_decay * ||w||^2 / 2`` added to the training loss."""

    family = "regularisation"

    @dataclass
    class Params:
        weight_decay: float = 5e-3

    def check(self, n_train: int, num_classes: int) -> None:
        require(
            self.params.weight_decay > 0,
            f"defense.weight_decay.weight_decay must be > 0 (got {self.params.weight_decay})",
        )

    def recipe(self, base: Recipe) -> Recipe:
        return base.replace(weight_decay=self.params.weight_decay)


@register_defense("dropout")
class Dropout(Defense):
    """Dropout (Srivastava et al. 2014) after every hidden layer of the MLP, before the CNN's
    linear head: each activation is zeroed with probability ``p`` during training."""

    family = "regularisation"

    @dataclass
    class Params:
        p: float = 0.5

    def check(self, n_train: int, num_classes: int) -> None:
        require(0 < self.params.p < 1, f"defense.dropout.p must be in (0, 1) (got {self.params.p})")

    def recipe(self, base: Recipe) -> Recipe:
        return base.replace(model_options={**base.model_options, "dropout": self.params.p})


@register_defense("label_smoothing")
class LabelSmoothing(Defense):
    """Label smoothing (Szegedy et al. 2016, section 7): the cross-entropy target is
    ``(1 - smoothing) * onehot(y) + smoothing / C``, which caps the confidence training rewards."""

    family = "regularisation"

    @dataclass
    class Params:
        smoothing: float = 0.1

    def check(self, n_train: int, num_classes: int) -> None:
        require(
            0 < self.params.smoothing < 1,
            f"defense.label_smoothing.smoothing must be in (0, 1) (got {self.params.smoothing})",
        )

    def recipe(self, base: Recipe) -> Recipe:
        return base.replace(label_smoothing=self.params.smoothing)
