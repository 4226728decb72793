"""The sequential engine: one model after another, a plain PyTorch (or Opacus) loop each.

It is the reference that faster engines are tested against, and the one engine that calls the
training hooks of the training-time defenses (see :func:`fit`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from benchmark.data.pool import Pool
from benchmark.progress import progress as show_progress
from benchmark.protocol.membership import Membership
from benchmark.training.hooks import Batch, FitContext, HookRun, MemberSplit, split_members
from benchmark.training.recipe import Recipe
from benchmark.training.steps import epoch_batches, init_model, make_optimizer, step
from benchmark.training.trained import Models, resolve_device


@dataclass
class FitResult:
    """A trained model and what its training did (for tests and diagnostics)."""

    model: nn.Module
    split: MemberSplit
    epochs_run: int
    #: The epoch whose weights were kept (early stopping), else the last one.
    best_epoch: int


def batch_loss(batch: Batch, runs: Sequence[HookRun]) -> torch.Tensor:
    """The loss of one mini-batch: the first hook objective (else the cross-entropy), plus
    every hook's penalty."""
    objectives = (run.objective(batch) for run in runs)
    loss = next((o for o in objectives if o is not None), None)
    if loss is None:
        loss = batch.cross_entropy()
    for run in runs:
        penalty = run.penalty(batch)
        if penalty is not None:
            loss = loss + penalty
    return loss


def fit(
    recipe: Recipe, pool: Pool, members: np.ndarray, seed: int, device: torch.device
) -> FitResult:
    """Train one model on its ``members``, calling every training hook of ``recipe``
    (:mod:`benchmark.training.hooks` gives the order of the calls)."""
    model = init_model(recipe, pool, seed).to(device)
    optimizer = make_optimizer(recipe, model.parameters())
    x = torch.as_tensor(pool.x, device=device)
    y = torch.as_tensor(pool.y, device=device)
    split = split_members(recipe.hooks, members, seed)
    # The hooks' randomness, apart from the batch order, so that an undefended recipe trains
    # exactly as before any defense existed.
    rng = np.random.default_rng([int(seed), 0xDEF])
    runs = [
        hook.start(
            FitContext(x, y, pool.num_classes, split.fit, held, recipe.batch_size, rng, device)
        )
        for hook, held in zip(recipe.hooks, split.held_out, strict=True)
    ]
    model.train()
    epoch = -1
    for epoch, batches in enumerate(
        epoch_batches(split.fit, recipe.epochs, recipe.batch_size, seed)
    ):
        for indices in batches:
            for run in runs:
                run.before_step(model)
            index = torch.as_tensor(indices, device=device)
            xb, yb = x[index], y[index]
            for run in runs:
                xb, yb = run.transform(xb, yb)
            loss = batch_loss(Batch(model, xb, yb, epoch, recipe.label_smoothing), runs)
            step(loss, optimizer)
        if any([run.after_epoch(model, epoch) for run in runs]):
            break
    kept = [run.finish(model) for run in runs]
    best_epoch = next((e for e in kept if e is not None), epoch)
    return FitResult(model.eval(), split, epoch + 1, best_epoch)


def train_sequential(
    recipe: Recipe, pool: Pool, membership: Membership, progress: bool = True
) -> Models:
    """The reference engine: one model after another, a plain PyTorch (or Opacus) loop each."""
    device = resolve_device(recipe.device)
    modules, epsilons = [], []
    held_out = np.zeros(membership.matrix.shape, dtype=bool)
    for k in show_progress(range(membership.n_models), "training", "model", enabled=progress):
        members, seed = membership.members(k), int(membership.seeds[k])
        if recipe.dp is None:
            result = fit(recipe, pool, members, seed, device)
            modules.append(result.model)
            held_out[k, result.split.all_held_out] = True
        else:
            # Opacus takes seconds to import: only DP runs pay for it.
            from benchmark.training.private import train_one_private  # imports Opacus (seconds)

            module, epsilon = train_one_private(recipe, pool, members, seed, device)
            modules.append(module)
            epsilons.append(epsilon)
    return Models(modules, device, epsilons if recipe.dp else None, held_out)
