"""Training-time regularisation defenses: each sets fields of the training :class:`Recipe`.

What the fields do is implemented in :func:`benchmark.training.fit`. Every defense here changes
only how a model is trained on its own members; none reads a point outside that model's row of
the membership matrix (early stopping's validation split is carved out of the members).
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.errors import require
from benchmark.training.recipe import Recipe
from defenses.base import Defense, register_defense


@register_defense("weight_decay")
class WeightDecay(Defense):
    """L2 penalty ``weight_decay * ||w||^2 / 2`` added to the training loss."""

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


@register_defense("early_stopping")
class EarlyStopping(Defense):
    """Stop training once the validation loss has not improved for ``patience`` epochs, and keep
    the weights of the best epoch (at most ``max_epochs`` epochs; ``training.epochs`` when null).

    The validation split is ``validation_fraction`` of each model's *own* members, drawn by the
    model's seed; the model never trains on it. Those points stay members in the membership
    matrix (the training procedure received them), so the evaluation counts them as members.
    """

    @dataclass
    class Params:
        patience: int = 3
        validation_fraction: float = 0.2
        max_epochs: int | None = None

    def check(self, n_train: int, num_classes: int) -> None:
        p = self.params
        require(p.patience >= 1, f"defense.early_stopping.patience must be >= 1 (got {p.patience})")
        require(
            0 < p.validation_fraction < 1,
            "defense.early_stopping.validation_fraction must be in (0, 1) "
            f"(got {p.validation_fraction})",
        )
        require(
            p.max_epochs is None or p.max_epochs >= 1,
            f"defense.early_stopping.max_epochs must be >= 1 or null (got {p.max_epochs})",
        )

    def recipe(self, base: Recipe) -> Recipe:
        p = self.params
        return base.replace(
            early_stopping_patience=p.patience,
            validation_fraction=p.validation_fraction,
            epochs=base.epochs if p.max_epochs is None else p.max_epochs,
        )


@register_defense("augmentation")
class Augmentation(Defense):
    """Image augmentation: each training image is shifted by a random offset of up to
    ``max_shift`` pixels (zero padding, then a random crop) and, with ``flip``, mirrored
    left-right with probability 1/2. Image data only; refused on tabular data.

    Flips are off by default: the default data (handwritten digits) is not mirror-symmetric.
    """

    @dataclass
    class Params:
        max_shift: int = 1
        flip: bool = False

    def check(self, n_train: int, num_classes: int) -> None:
        p = self.params
        require(
            p.max_shift >= 0 and (p.max_shift > 0 or p.flip),
            f"defense.augmentation needs max_shift >= 1 or flip=true (got max_shift={p.max_shift},"
            f" flip={p.flip})",
        )

    def recipe(self, base: Recipe) -> Recipe:
        return base.replace(augment_shift=self.params.max_shift, augment_flip=self.params.flip)


@register_defense("mixup")
class Mixup(Defense):
    """Mixup (Zhang et al. 2018, equation 1): train on convex combinations of pairs of examples
    and of their one-hot labels, with weights ``lam ~ Beta(alpha, alpha)``."""

    @dataclass
    class Params:
        alpha: float = 1.0

    def check(self, n_train: int, num_classes: int) -> None:
        require(self.params.alpha > 0, f"defense.mixup.alpha must be > 0 (got {self.params.alpha})")

    def recipe(self, base: Recipe) -> Recipe:
        return base.replace(mixup_alpha=self.params.alpha)
