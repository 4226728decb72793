"""Mixup (Zhang, Cisse, Dauphin and Lopez-Paz 2018, "mixup: Beyond Empirical Risk Minimization",
equation 1): train on convex combinations of pairs of examples and of their labels.

Label smoothing (Szegedy et al. 2016, section 7) combines with it: both cross-entropies of the
mixed batch use the recipe's ``label_smoothing``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import require
from benchmark.training.hooks import Batch, FitContext, HookRun, TrainingHook
from benchmark.training.recipe import Recipe
from defenses.base import Defense, register_defense


def mixup(
    x: torch.Tensor, y: torch.Tensor, alpha: float, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Mix the batch with a permutation of itself (Zhang et al. 2018, equation 1).

    ``lam ~ Beta(alpha, alpha)``, ``x~ = lam * x_i + (1 - lam) * x_j``; returns ``x~``, both
    label vectors and ``lam``. The loss is ``lam * CE(f(x~), y_i) + (1 - lam) * CE(f(x~), y_j)``,
    which equals the cross-entropy against the mixed one-hot label ``lam y_i + (1 - lam) y_j``.
    """
    lam = float(rng.beta(alpha, alpha))
    partner = torch.as_tensor(rng.permutation(len(x)), device=x.device)
    return lam * x + (1.0 - lam) * x[partner], y, y[partner], lam


def mixup_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float,
    rng: np.random.Generator,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    mixed, y_a, y_b, lam = mixup(x, y, alpha, rng)
    logits = model(mixed)
    return lam * F.cross_entropy(logits, y_a, label_smoothing=label_smoothing) + (
        1.0 - lam
    ) * F.cross_entropy(logits, y_b, label_smoothing=label_smoothing)


@dataclass(frozen=True)
class MixupHook(TrainingHook):
    """Replaces each batch's cross-entropy by the mixup loss (Beta(alpha, alpha) weights)."""

    alpha: float
    replaces_loss: ClassVar[bool] = True

    def sequential_reason(self) -> str:
        return "mixup (defense.mixup)"

    def start(self, context: FitContext) -> HookRun:
        return _MixupRun(self.alpha, context.rng)


class _MixupRun(HookRun):
    def __init__(self, alpha: float, rng: np.random.Generator) -> None:
        self.alpha, self.rng = alpha, rng

    def objective(self, batch: Batch) -> torch.Tensor:
        return mixup_loss(
            batch.model, batch.x, batch.y, self.alpha, self.rng, batch.label_smoothing
        )


@register_defense("mixup")
class Mixup(Defense):
    """Mixup (Zhang et al. 2018, equation 1): train on convex combinations of pairs of examples
    and of their one-hot labels, with weights ``lam ~ Beta(alpha, alpha)``."""

    family = "regularisation"

    @dataclass
    class Params:
        alpha: float = 1.0

    def check(self, n_train: int, num_classes: int) -> None:
        require(self.params.alpha > 0, f"defense.mixup.alpha must be > 0 (got {self.params.alpha})")

    def recipe(self, base: Recipe) -> Recipe:
        return base.with_hook(MixupHook(self.params.alpha))
