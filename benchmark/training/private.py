"""DP-SGD for one model through Opacus's ``PrivacyEngine``: the reference private path."""

from __future__ import annotations

import numpy as np
import torch
from opacus import PrivacyEngine
from torch import nn

from benchmark.data.pool import Pool
from benchmark.training.accounting import noise_multiplier, poisson_schedule
from benchmark.training.recipe import Recipe
from benchmark.training.steps import init_model, make_optimizer, step


def train_one_private(
    recipe: Recipe, pool: Pool, members: np.ndarray, seed: int, device: torch.device
) -> tuple[nn.Module, float]:
    """Train one model with DP-SGD through Opacus's ``PrivacyEngine``; return it and its epsilon.

    The reference DP-SGD path: Poisson sampling from a ``DataLoader`` of ``recipe.batch_size``,
    the noise multiplier that spends ``recipe.dp.target_epsilon`` over ``recipe.epochs`` (what
    ``make_private_with_epsilon`` computes, cached across models), and the epsilon spent as the
    engine's accountant reports it.
    """
    dp = recipe.dp
    assert dp is not None
    model = init_model(recipe, pool, seed).to(device)
    data = torch.utils.data.TensorDataset(
        torch.as_tensor(pool.x[members], device=device),
        torch.as_tensor(pool.y[members], device=device),
    )
    loader = torch.utils.data.DataLoader(
        data, batch_size=recipe.batch_size, generator=torch.Generator().manual_seed(int(seed))
    )
    schedule = poisson_schedule(len(members), recipe.batch_size, recipe.epochs)
    engine = PrivacyEngine(accountant=dp.accountant)
    private, optimizer, loader = engine.make_private(
        module=model,
        optimizer=make_optimizer(recipe, model.parameters()),
        data_loader=loader,
        noise_multiplier=noise_multiplier(dp, schedule),
        max_grad_norm=dp.max_grad_norm,
        poisson_sampling=True,
        noise_generator=torch.Generator(device).manual_seed(int(seed) + 1),
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    private.train()
    for _ in range(recipe.epochs):
        for x, y in loader:
            step(loss_fn(private(x), y), optimizer, check=len(y) > 0)
    private.remove_hooks()
    return private._module.eval(), float(engine.get_epsilon(dp.delta))
