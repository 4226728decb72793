"""RelaxLoss (Chen, Yu and Fritz 2022, "RelaxLoss: Defending Membership Inference Attacks without
Losing Utility", Algorithm 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from benchmark.errors import ConfigError, require
from benchmark.training.hooks import Batch, FitContext, HookRun, Setup, TrainingHook
from benchmark.training.recipe import Recipe
from defenses.base import Defense, register_defense


def flattened_targets(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """RelaxLoss's soft labels (Chen et al. 2022, Algorithm 1, posterior flattening).

    For a correctly classified example the target keeps the model's own probability ``p_y`` on
    the true class and spreads ``1 - p_y`` evenly over the ``C - 1`` other classes, so training
    flattens the non-true posteriors without raising the confidence; a misclassified example keeps
    its one-hot label. Targets are constants (no gradient flows through them).
    """
    probabilities = torch.softmax(logits.detach(), dim=1)
    num_classes = logits.shape[1]
    p_true = probabilities.gather(1, y[:, None])
    onehot = F.one_hot(y, num_classes).to(probabilities.dtype)
    soft = onehot * p_true + (1.0 - onehot) * (1.0 - p_true) / (num_classes - 1)
    correct = (probabilities.argmax(dim=1) == y)[:, None]
    return torch.where(correct, soft, onehot)


def relaxloss(logits: torch.Tensor, y: torch.Tensor, alpha: float, epoch: int) -> torch.Tensor:
    """The RelaxLoss objective of one batch (Chen et al. 2022, Algorithm 1).

    With the batch's mean cross-entropy ``L`` and the target loss level ``alpha``:
    ``L >= alpha``: gradient descent on ``L``; ``L < alpha``: gradient *ascent* on ``L`` in even
    epochs and, in odd epochs, descent on the cross-entropy against :func:`flattened_targets`.
    Even epochs use ``|L - alpha|``, which is descent above ``alpha`` and ascent below it, as in
    the authors' code. Training therefore holds the members' loss near ``alpha`` instead of 0,
    which narrows the member/non-member loss gap that attacks exploit.
    """
    loss = F.cross_entropy(logits, y)
    if epoch % 2 == 0:
        return (loss - alpha).abs()
    if loss.item() >= alpha:
        return loss
    return F.cross_entropy(logits, flattened_targets(logits, y))


@dataclass(frozen=True)
class RelaxLossHook(TrainingHook):
    """Replaces each batch's cross-entropy by :func:`relaxloss` at level ``alpha``."""

    alpha: float
    replaces_loss: ClassVar[bool] = True

    def sequential_reason(self) -> str:
        return "RelaxLoss (defense.relaxloss)"

    def check(self, setup: Setup) -> None:
        # RelaxLoss's targets are its own: another objective or smoothed labels would silently
        # replace them or be ignored.
        other_loss = any(h.replaces_loss for h in setup.hooks if h is not self)
        if other_loss or setup.label_smoothing > 0:
            raise ConfigError(
                "defense=relaxloss defines its own loss and cannot be combined with mixup or "
                "label_smoothing: select only one of them"
            )

    def start(self, context: FitContext) -> HookRun:
        return _RelaxLossRun(self.alpha)


class _RelaxLossRun(HookRun):
    def __init__(self, alpha: float) -> None:
        self.alpha = alpha

    def objective(self, batch: Batch) -> torch.Tensor:
        return relaxloss(batch.logits, batch.y, self.alpha, batch.epoch)


@register_defense("relaxloss")
class RelaxLoss(Defense):
    """Hold the members' mean training loss near a target level ``alpha`` instead of driving it
    to 0: gradient descent above ``alpha``; below it, gradient ascent in even epochs and
    posterior flattening of correctly classified examples in odd ones (see :func:`relaxloss`).
    Larger ``alpha`` is a stronger defense."""

    family = "regularisation"

    @dataclass
    class Params:
        alpha: float = 0.5

    def check(self, n_train: int, num_classes: int) -> None:
        require(
            self.params.alpha > 0, f"defense.relaxloss.alpha must be > 0 (got {self.params.alpha})"
        )

    def recipe(self, base: Recipe) -> Recipe:
        return base.with_hook(RelaxLossHook(self.params.alpha))
