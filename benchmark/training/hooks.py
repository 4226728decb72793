"""Training hooks: how a training-time defense changes the training loop, in one interface.

A :class:`TrainingHook` is a frozen dataclass of a defense's parameters (so recipes holding hooks
compare by value) and declares what it needs before training starts:

- :meth:`~TrainingHook.sequential_reason`: why only the sequential engine can train it;
- :meth:`~TrainingHook.check`: refuse data or a recipe it cannot train on (ConfigError);
- :meth:`~TrainingHook.held_out`: how many of a model's members it holds out of fitting
  (a validation or reference set).

For each model the engine calls :meth:`~TrainingHook.start`, which returns a :class:`HookRun`:
the per-model state whose callbacks the loop calls, each a no-op unless the defense overrides it.
One mini-batch step calls, in this order, :meth:`HookRun.before_step` of every hook,
:meth:`HookRun.transform` of every hook, the first non-None :meth:`HookRun.objective` (else the
cross-entropy), plus every :meth:`HookRun.penalty`; after each epoch :meth:`HookRun.after_epoch`
(True stops training), and at the end :meth:`HookRun.finish` (restore weights).

The engine owns the randomness: every hook of a model draws from one generator seeded by the
model's seed (:attr:`FitContext.rng`), in the order above, so a defended model is reproducible
and an undefended one trains exactly as plain mini-batch SGD/Adam.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.data.pool import Pool


@dataclass(frozen=True)
class Setup:
    """What a hook's :meth:`~TrainingHook.check` sees of the recipe and the data."""

    pool: Pool
    #: Members per model (the protocol's ``N / 2``).
    n_members: int
    #: Every hook of the recipe, this one included, in order.
    hooks: tuple[TrainingHook, ...]
    label_smoothing: float


@dataclass(frozen=True)
class FitContext:
    """What a hook sees of one model's training: the pool on the device, its split, the rng."""

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    #: Pool indices of the members the model takes gradient steps on.
    fit: np.ndarray
    #: Pool indices of the members this hook holds out (its validation or reference set).
    held_out: np.ndarray
    batch_size: int
    rng: np.random.Generator
    device: torch.device


@dataclass
class Batch:
    """One mini-batch of one model; ``logits`` are computed at most once, when first asked."""

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    epoch: int
    label_smoothing: float
    _logits: torch.Tensor | None = field(default=None, repr=False)

    @property
    def logits(self) -> torch.Tensor:
        if self._logits is None:
            self._logits = self.model(self.x)
        return self._logits

    def cross_entropy(self) -> torch.Tensor:
        return F.cross_entropy(self.logits, self.y, label_smoothing=self.label_smoothing)


class HookRun:
    """A hook's state during one model's training; every callback is a no-op by default."""

    def before_step(self, model: nn.Module) -> None:
        """Before each mini-batch step (e.g. the adversary's inner loop)."""

    def transform(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch the step trains on (e.g. augmented images)."""
        return x, y

    def objective(self, batch: Batch) -> torch.Tensor | None:
        """The batch loss replacing the cross-entropy; None keeps it."""
        return None

    def penalty(self, batch: Batch) -> torch.Tensor | None:
        """A term added to the batch loss; None adds nothing."""
        return None

    def after_epoch(self, model: nn.Module, epoch: int) -> bool:
        """After each epoch; True stops training."""
        return False

    def finish(self, model: nn.Module) -> int | None:
        """After the last epoch: restore weights if the hook keeps others; the kept epoch."""
        return None


@dataclass(frozen=True)
class TrainingHook:
    """Base class of a defense's training hook: override only what the defense needs."""

    #: Whether its runs' :meth:`HookRun.objective` replaces the cross-entropy (two such hooks
    #: cannot both apply; a hook refuses the combination in its :meth:`check`).
    replaces_loss: ClassVar[bool] = False

    def sequential_reason(self) -> str | None:
        """Why only the sequential engine can train this hook (None: any engine can).

        The faster engines call no callback, so a hook is sequential-only unless it says not.
        """
        return f"{type(self).__name__} (a training hook)"

    def check(self, setup: Setup) -> None:
        """Refuse data, or a combination with other hooks, this hook cannot train on; raise
        ConfigError."""

    def held_out(self, n_members: int) -> int:
        """How many of a model's ``n_members`` members this hook holds out of fitting."""
        return 0

    def start(self, context: FitContext) -> HookRun:
        """The hook's state for one model's training."""
        return HookRun()


def needs_sequential(hooks: Sequence[TrainingHook]) -> str | None:
    """Why only the sequential engine can train these hooks (None when any engine can)."""
    reasons = [r for r in (hook.sequential_reason() for hook in hooks) if r is not None]
    return " and ".join(reasons) + " need the sequential engine" if reasons else None


@dataclass(frozen=True)
class MemberSplit:
    """How one model uses its members: gradient steps (``fit``) and each hook's held-out part.

    All parts are subsets of the model's own row of the membership matrix, so training never
    reads a point the attacker scores as a non-member of this model. The held-out members stay
    members in the membership matrix (the training procedure received them), and the
    evaluation reports them apart from the fitted members (``privacy_heldout/``).
    """

    fit: np.ndarray
    #: One array per hook of the recipe, in its order (empty for a hook holding nothing out).
    held_out: tuple[np.ndarray, ...]

    @property
    def all_held_out(self) -> np.ndarray:
        return np.sort(np.concatenate([self.fit[:0], *self.held_out]))


def split_members(hooks: Sequence[TrainingHook], members: np.ndarray, seed: int) -> MemberSplit:
    """Split a model's members by its seed; ``fit`` is all of them when nothing is held out.

    One permutation of the members by the model's seed; the hooks take consecutive slices of it
    in their order and the rest is fitted.
    """
    sizes = [hook.held_out(len(members)) for hook in hooks]
    if sum(sizes) == 0:
        return MemberSplit(members, tuple(members[:0] for _ in hooks))
    shuffled = np.random.default_rng([int(seed), 0x5B117]).permutation(members)
    ends = np.cumsum(sizes)
    parts = tuple(
        np.sort(shuffled[end - size : end]) for size, end in zip(sizes, ends, strict=True)
    )
    return MemberSplit(fit=np.sort(shuffled[int(ends[-1]) :]), held_out=parts)
