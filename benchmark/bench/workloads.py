"""The workloads the speed benchmark times (:mod:`benchmark.bench.speed`) beside the engines.

The plain ``torch.mm`` the training throughput is compared with, the FLOPs of a training run, and
the ``torch.func.vmap`` design alternative to the stacked layers.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap
from torch.utils.flop_counter import FlopCounterMode

from benchmark.data.pool import Pool
from benchmark.protocol.membership import Membership
from benchmark.training.recipe import Recipe
from benchmark.training.stacked_steps import stacked_orders
from benchmark.training.stacking import stack
from benchmark.training.steps import init_model, make_optimizer


def first_models(membership: Membership, m: int) -> Membership:
    """The first ``m`` models of ``membership`` (to time the sequential engine on a subset)."""
    return dataclasses.replace(
        membership,
        matrix=membership.matrix[:m],
        seeds=membership.seeds[:m],
        targets=membership.targets[membership.targets < m],
    )


def matmul(device: torch.device, n: int, products: int) -> tuple[Callable[[], None], float]:
    """The machine's practical float32 limit: a workload of ``products`` ``n x n`` products and
    its FLOPs (timed in the same rounds as the training it is compared with)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b  # warm up

    def run() -> None:
        for _ in range(products):
            a @ b

    return run, 2.0 * n**3 * products


def training_flops(recipe: Recipe, pool: Pool, membership: Membership) -> float:
    """Forward and backward FLOPs of the ensemble over the whole training run (counted once)."""
    modules = [init_model(recipe, pool, int(s)) for s in membership.seeds]
    ensemble = stack(modules)
    batch = min(recipe.batch_size, int(membership.matrix[0].sum()))
    x = (
        torch.as_tensor(pool.x[:batch])
        .unsqueeze(1)
        .expand(-1, membership.n_models, *pool.input_shape)
    )
    y = torch.as_tensor(pool.y[:batch]).unsqueeze(1).expand(-1, membership.n_models)
    with FlopCounterMode(display=False) as counter:
        logits = ensemble(x)
        F.cross_entropy(logits.flatten(0, 1), y.flatten()).backward()
    per_example = counter.get_total_flops() / batch
    return per_example * int(membership.matrix[0].sum()) * recipe.epochs


def train_vmap(recipe: Recipe, pool: Pool, membership: Membership, device: torch.device) -> None:
    """The alternative design: ``torch.func.vmap`` of ``functional_call`` over stacked weights."""
    modules = [init_model(recipe, pool, int(s)).to(device) for s in membership.seeds]
    params, buffers = stack_module_state(modules)
    base = copy.deepcopy(modules[0]).to("meta")

    def one(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (p, b), (x,))

    forward = vmap(one, randomness="different")
    optimizer = make_optimizer(recipe, list(params.values()))
    x, y = torch.as_tensor(pool.x, device=device), torch.as_tensor(pool.y, device=device)
    for index in stacked_orders(membership, recipe.epochs, recipe.batch_size, device):
        logits = forward(params, buffers, x[index])
        loss = F.cross_entropy(logits.flatten(0, 1), y[index].flatten(), reduction="none")
        optimizer.zero_grad(set_to_none=True)
        loss.view(index.shape).mean(1).sum().backward()
        optimizer.step()
