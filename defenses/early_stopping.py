"""Early stopping (training time): stop once the loss on a validation split of the model's own
members stops improving, and keep the best epoch's weights (e.g. Prechelt 1998, "Early Stopping
- But When?"; as a membership-inference defense, e.g. Song and Mittal 2021)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from benchmark.errors import ConfigError, require
from benchmark.training.hooks import FitContext, HookRun, Setup, TrainingHook
from benchmark.training.recipe import Recipe
from benchmark.training.trained import TrainingDiverged
from defenses.base import Defense, register_defense


@dataclass(frozen=True)
class EarlyStoppingHook(TrainingHook):
    """Holds out ``validation_fraction`` of each model's members; stops after ``patience``
    epochs without a lower validation loss and restores the best weights."""

    patience: int
    validation_fraction: float

    def sequential_reason(self) -> str:
        return "early stopping (defense.early_stopping)"

    def held_out(self, n_members: int) -> int:
        return round(self.validation_fraction * n_members)

    def check(self, setup: Setup) -> None:
        if self.held_out(setup.n_members) < 1:
            raise ConfigError(
                f"defense.early_stopping.validation_fraction={self.validation_fraction} holds "
                f"out no validation point from each model's {setup.n_members} members: raise it"
            )

    def start(self, context: FitContext) -> HookRun:
        index = torch.as_tensor(context.held_out, device=context.device)
        return Stopper(self.patience, context.x[index], context.y[index])


class Stopper(HookRun):
    """Track the validation loss after each epoch; keep the best weights (lowest loss)."""

    def __init__(self, patience: int, x: torch.Tensor, y: torch.Tensor) -> None:
        self.patience = patience
        self.x, self.y = x, y
        self.best_loss = float("inf")
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None

    @torch.no_grad()
    def validation_loss(self, model: nn.Module) -> float:
        model.eval()
        loss = nn.functional.cross_entropy(model(self.x), self.y).item()
        model.train()
        return loss

    def after_epoch(self, model: nn.Module, epoch: int) -> bool:
        """Record epoch ``epoch``'s validation loss; True once ``patience`` epochs passed
        without improvement."""
        loss = self.validation_loss(model)
        if not np.isfinite(loss):
            raise TrainingDiverged(f"validation loss became {loss} (try a smaller training.lr)")
        if loss < self.best_loss:
            self.best_loss, self.best_epoch = loss, epoch
            self.best_state = copy.deepcopy(model.state_dict())
        return epoch - self.best_epoch >= self.patience

    def finish(self, model: nn.Module) -> int:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        return self.best_epoch


@register_defense("early_stopping")
class EarlyStopping(Defense):
    """Stop training once the validation loss has not improved for ``patience`` epochs, and keep
    the weights of the best epoch (at most ``max_epochs`` epochs; ``training.epochs`` when null).

    The validation split is ``validation_fraction`` of each model's *own* members, drawn by the
    model's seed; the model never trains on it. Those points stay members in the membership
    matrix (the training procedure received them); the evaluation scores them apart from the
    fitted members (``privacy_heldout/``).
    """

    family = "regularisation"

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
        epochs = base.epochs if p.max_epochs is None else p.max_epochs
        hook = EarlyStoppingHook(p.patience, p.validation_fraction)
        return base.with_hook(hook).replace(epochs=epochs)
