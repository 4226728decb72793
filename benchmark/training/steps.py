"""What every engine shares: a model's initial weights, its batch order, its optimiser.

Engines that call these get the same models from the same seeds (``tests/training`` checks the
ensemble against the sequential engine).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmark.data.pool import Pool
from benchmark.models.base import build_model
from benchmark.training.recipe import Recipe
from benchmark.training.trained import TrainingDiverged


def init_model(recipe: Recipe, pool: Pool, seed: int) -> nn.Module:
    """Model ``seed``'s initial weights; every engine starts from exactly these."""
    torch.manual_seed(int(seed))
    return build_model(recipe.model, pool.input_shape, pool.num_classes, **recipe.model_options)


def epoch_orders(members: np.ndarray, epochs: int, seed: int) -> Iterator[np.ndarray]:
    """Each epoch's shuffle of ``members`` (pool indices): a fresh permutation per epoch."""
    rng = np.random.default_rng([int(seed), 0xBA7C4])
    for _ in range(epochs):
        yield rng.permutation(members)


def epoch_batches(
    members: np.ndarray, epochs: int, batch_size: int, seed: int
) -> Iterator[list[np.ndarray]]:
    """The mini-batches (pool indices) of each epoch: consecutive slices of its shuffle."""
    for shuffled in epoch_orders(members, epochs, seed):
        yield [shuffled[i : i + batch_size] for i in range(0, len(shuffled), batch_size)]


def batch_order(
    members: np.ndarray, epochs: int, batch_size: int, seed: int
) -> Iterator[np.ndarray]:
    """The mini-batches (pool indices) of one model: a fresh shuffle of its members each epoch."""
    for batches in epoch_batches(members, epochs, batch_size, seed):
        yield from batches


def make_optimizer(recipe: Recipe, params: Any) -> torch.optim.Optimizer:
    # The fused kernels apply the same update rule in one pass over the parameters: several
    # times faster than one kernel per operation on the ensemble's stacked parameters.
    fused = {"fused": True} if _fused_kernels() else {}
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=recipe.lr,
            momentum=recipe.momentum,
            weight_decay=recipe.weight_decay,
            **fused,
        )
    # Coupled L2 (torch.optim.Adam), so that weight decay means the same penalty for both.
    return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay, **fused)


@functools.cache
def _fused_kernels() -> bool:
    """Whether this torch has fused SGD and Adam kernels for CPU tensors (torch >= 2.4)."""
    probe = [torch.zeros(1, requires_grad=True)]
    try:
        torch.optim.SGD(probe, lr=0.1, fused=True)
        torch.optim.Adam(probe, lr=0.1, fused=True)
    except (RuntimeError, TypeError):
        return False
    return True


def step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, check: bool = True) -> None:
    """One optimiser step on ``loss`` (a scalar), after refusing a non-finite one (``check``).

    The private paths pass ``check=False`` for an empty Poisson batch: its mean loss is NaN but
    it has no gradient, and Opacus adds the noise only.
    """
    if check and not torch.isfinite(loss):
        raise TrainingDiverged(f"loss became {loss.item()} (try a smaller training.lr)")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
