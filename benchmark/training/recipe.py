"""The training recipe: how every model of a configuration is trained.

A :class:`Recipe` is built from the resolved ``training`` and ``model`` configs
(:func:`benchmark.experiment.plan.base_recipe`) and changed by the defenses' ``recipe`` hooks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from benchmark.training.accounting import DPParams


@dataclass(frozen=True)
class Recipe:
    """How every model of a configuration is trained (before the release hook).

    The fields after ``device`` are the training-time defenses' switches; each is off at its
    default, so an undefended recipe trains exactly as plain mini-batch SGD/Adam.
    """

    model: str = "mlp"
    model_options: dict[str, Any] = field(default_factory=dict)
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    epochs: int = 30
    batch_size: int = 64
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    engine: str = "ensemble"
    device: str = "cpu"
    #: Early stopping: stop after this many epochs without a lower validation loss (0: off) and
    #: restore the best weights; the validation split is this fraction of the model's members.
    early_stopping_patience: int = 0
    validation_fraction: float = 0.0
    #: Image augmentation: random shifts of up to this many pixels, and random horizontal flips.
    augment_shift: int = 0
    augment_flip: bool = False
    #: Mixup's Beta(alpha, alpha) parameter (0: off).
    mixup_alpha: float = 0.0
    #: RelaxLoss's target loss level alpha (0: off).
    relaxloss_alpha: float = 0.0
    #: Adversarial regularisation: the weight lambda of the inference model's gain (0: off), the
    #: fraction of the model's members held out as its reference set, the inference model's
    #: steps per classifier step (k) and learning rate.
    adversarial_lambda: float = 0.0
    adversarial_reference_fraction: float = 0.0
    adversarial_steps: int = 1
    adversarial_lr: float = 1e-3
    #: DP-SGD's budget and clipping norm (the ``dpsgd`` defense); None trains without privacy.
    dp: DPParams | None = None
    #: ``training=custom``: the import path of your training loop (``training._target_``).
    loop: str | None = None

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)

    @property
    def early_stopping(self) -> bool:
        return self.early_stopping_patience > 0

    @property
    def augments(self) -> bool:
        return self.augment_shift > 0 or self.augment_flip

    @property
    def adversarial(self) -> bool:
        return self.adversarial_lambda > 0


def needs_sequential(recipe: Recipe) -> str | None:
    """Why only the sequential engine can train ``recipe`` (None when any engine can).

    Other engines fall back to the sequential one, or refuse, on these recipe fields.
    """
    reasons = {
        "early stopping (early_stopping_patience)": recipe.early_stopping,
        "data augmentation (augment_shift, augment_flip)": recipe.augments,
        "mixup (mixup_alpha)": recipe.mixup_alpha > 0,
        "RelaxLoss (relaxloss_alpha)": recipe.relaxloss_alpha > 0,
        "adversarial regularisation (adversarial_lambda)": recipe.adversarial,
    }
    needed = [name for name, on in reasons.items() if on]
    return " and ".join(needed) + " need the sequential engine" if needed else None
