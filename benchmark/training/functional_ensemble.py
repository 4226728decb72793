"""The generic stacked path: ``K`` copies of any architecture trained at once with ``torch.func``.

For models that :func:`benchmark.training.stacking.stack` cannot stack (a custom ``nn.Module``
with its own ``forward``, layers without a hand-stacked version), the ``K`` models' parameters are
stacked with ``torch.func.stack_module_state`` and the one architecture is run on all of them with
``vmap`` over ``functional_call``. The loss is ``sum_k mean_batch_k loss_k``, as in
:mod:`benchmark.training.ensemble`: its gradient with respect to model ``k``'s parameters is that
of model ``k``'s own mean batch loss, and Adam and SGD update element-wise, so one optimizer over
the stacked parameters is ``K`` independent optimizers. Each model starts from its own
initialisation and reads its own batch order (the calls the sequential engine makes), so model
``k`` equals the sequentially trained model ``k`` up to floating-point error
(``tests/training/test_byo.py`` checks this).

Only modules without batch-dependent state qualify (:func:`why_not_functional`): a buffer
(BatchNorm's running statistics) is updated in place during training, which ``functional_call``
under ``vmap`` cannot do per model. Those train sequentially.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from benchmark.data.pool import Pool
from benchmark.progress import progress as show_progress
from benchmark.protocol.membership import Membership
from benchmark.training.recipe import Recipe
from benchmark.training.stacked_steps import check_finite, stacked_orders
from benchmark.training.stacking import NotStackable
from benchmark.training.steps import init_model, make_optimizer
from benchmark.training.trained import Models, resolve_device


def why_not_functional(module: nn.Module) -> str | None:
    """Why ``module`` cannot be trained under ``vmap`` (None when it can)."""
    if any(True for _ in module.buffers()):
        names = sorted({type(m).__name__ for m in module.modules() if list(m.buffers(False))})
        return f"its layers {names} keep buffers (e.g. running statistics) updated in training"
    if not any(p.requires_grad for p in module.parameters()):
        return "it has no trainable parameters"
    return None


class FunctionalEnsemble:
    """``K`` modules of one architecture as stacked parameters and one vmapped forward."""

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        reasons = {why_not_functional(m) for m in modules} - {None}
        if reasons:
            raise NotStackable(f"torch.func cannot train it: {reasons.pop()}")
        if len({tuple((n, p.shape) for n, p in m.named_parameters()) for m in modules}) != 1:
            raise NotStackable("the models do not share one architecture")
        self.params, self.buffers = stack_module_state(list(modules))
        base = copy.deepcopy(modules[0]).to("meta")

        def one(params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
            return functional_call(base, (params, buffers), (x,))

        self.base = base
        # Dropout masks differ per model, drawn from the global generator (seeded by the caller).
        self.forward = vmap(one, randomness="different")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[K, B, C]`` of the per-model batches ``x [K, B, ...]``."""
        return self.forward(self.params, self.buffers, x)

    def train(self, mode: bool = True) -> None:
        self.base.train(mode)

    @torch.no_grad()
    def unstack_into(self, modules: Sequence[nn.Module]) -> None:
        for k, module in enumerate(modules):
            for name, param in module.named_parameters():
                param.copy_(self.params[name][k])


@torch.no_grad()
def check_functional(
    ensemble: FunctionalEnsemble, modules: Sequence[nn.Module], x: torch.Tensor
) -> None:
    """Raise NotStackable unless the vmapped forward computes what each module computes on ``x``.

    Catches a ``forward`` that ``vmap`` runs but computes differently (batch-dependent code).
    """
    ensemble.train(False)
    try:
        stacked = ensemble(x.unsqueeze(0).expand(len(modules), *x.shape))
    except Exception as exc:  # vmap refuses data-dependent control flow, .item(), in-place ops
        raise NotStackable(f"torch.func cannot run it: {type(exc).__name__}: {exc}") from None
    for k, module in enumerate(modules):
        expected = module.eval()(x)
        if stacked[k].shape != expected.shape or not torch.allclose(
            stacked[k], expected, rtol=1e-4, atol=1e-5
        ):
            raise NotStackable(f"vmapped model {k} does not compute what model {k} computes")
        module.train()


def train_functional(
    recipe: Recipe, pool: Pool, membership: Membership, progress: bool = True
) -> Models:
    """Train all ``K`` models at once with ``torch.func``; NotStackable when it cannot."""
    device = resolve_device(recipe.device)
    modules = [init_model(recipe, pool, int(seed)).to(device) for seed in membership.seeds]
    ensemble = FunctionalEnsemble(modules)
    x = torch.as_tensor(pool.x, device=device)
    y = torch.as_tensor(pool.y, device=device)
    check_functional(ensemble, modules, x[:8])
    torch.manual_seed(int(membership.seeds[0]))
    optimizer = make_optimizer(recipe, list(ensemble.params.values()))
    steps = recipe.epochs * -(-int(membership.matrix[0].sum()) // recipe.batch_size)
    ensemble.train()
    for index in show_progress(
        stacked_orders(membership, recipe.epochs, recipe.batch_size, device),
        "training",
        unit="step",
        enabled=progress,
        total=steps,
    ):
        logits = ensemble(x[index])
        losses = F.cross_entropy(
            logits.flatten(0, 1),
            y[index].flatten(),
            reduction="none",
            label_smoothing=recipe.label_smoothing,
        )
        losses = losses.view(index.shape).mean(1)
        check_finite(losses)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        optimizer.step()
    ensemble.unstack_into(modules)
    # This path trains only recipes without held-out members (ensemble.unsupported).
    nothing_held_out = np.zeros_like(membership.matrix)
    return Models([m.eval() for m in modules], device, None, nothing_held_out)
