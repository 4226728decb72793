"""The ensemble engine: all ``K`` models of a configuration trained at once, as one network.

The models are stacked (:mod:`benchmark.training.stacking`) and trained with one optimizer on the loss
``sum_k mean_batch_k loss_k``. The gradient of that sum with respect to model ``k``'s parameters
is the gradient of model ``k``'s own mean batch loss, and SGD (with momentum and coupled weight
decay) and Adam update every parameter element-wise, so one optimizer over the stacked parameters
is exactly ``K`` independent optimizers. Each model starts from its own initialisation and sees
its own batches (:func:`benchmark.training.init_model` and :func:`benchmark.training.batch_order`,
the same calls the sequential engine makes), so model ``k`` equals the sequentially trained
model ``k`` up to floating-point rounding; ``tests/test_ensemble.py`` checks this.

DP-SGD (``recipe.dp``) trains the stacked network through Opacus, with per-model clipping
(:mod:`benchmark.training.private_ensemble`).

A recipe this engine cannot train (see :func:`unsupported`) is handed to the sequential engine
with a logged message, never trained differently.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from benchmark.data.pool import Pool
from benchmark.protocol.membership import Membership
from benchmark.training.functional_ensemble import train_functional
from benchmark.training.recipe import Recipe
from benchmark.training.sequential import train_sequential
from benchmark.training.stacking import Ensemble, NotStackable, check_stacked, stack
from benchmark.training.steps import batch_order, init_model, make_optimizer
from benchmark.training.trained import Models, TrainingDiverged, resolve_device

log = logging.getLogger(__name__)

#: The recipe fields this engine implements. A recipe that sets any other field to a value
#: other than its default (a training-time defense this engine does not know) is trained by the
#: sequential engine instead: add the field here once the ensemble implements it.
SUPPORTED_FIELDS = frozenset(
    {
        "model",
        "model_options",
        "optimizer",
        "lr",
        "momentum",
        "epochs",
        "batch_size",
        "weight_decay",
        "label_smoothing",
        "engine",
        "device",
        "dp",
    }
)


def unsupported(recipe: Recipe, membership: Membership) -> str | None:
    """Why this engine cannot train ``recipe`` on ``membership`` (None when it can)."""
    for spec in dataclasses.fields(recipe):
        if spec.name in SUPPORTED_FIELDS:
            continue
        if spec.default_factory is not dataclasses.MISSING:
            default = spec.default_factory()
        else:
            default = spec.default
        if getattr(recipe, spec.name) != default:
            return f"it does not implement recipe.{spec.name}"
    if len(set(membership.matrix.sum(axis=1).tolist())) != 1:
        return "the models have training sets of different sizes"
    return None


def per_model_loss(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Cross-entropy ``[B, K]`` of stacked logits ``[B, K, C]`` and labels ``[B, K]``."""
    # Stacked layers leave model-major memory ([K, B, C] seen as [B, K, C]): flattening in that
    # order is a view, not a copy.
    flat = F.cross_entropy(
        logits.transpose(0, 1).flatten(0, 1),
        y.T.flatten(),
        reduction="none",
        label_smoothing=label_smoothing,
    )
    return flat.view(y.shape[1], y.shape[0]).T


def stacked_batch(
    x: torch.Tensor, y: torch.Tensor, index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``[B, K, ...]`` and labels ``[B, K]`` of the per-model batches ``index [K, B]``.

    Gathered model by model, so that each model's batch is contiguous in memory, which is what
    the batched matrix products read.
    """
    return x[index].transpose(0, 1), y[index].T


def check_finite(losses: torch.Tensor) -> None:
    finite = torch.isfinite(losses)
    if not bool(finite.all()):
        k = int((~finite).nonzero()[0, 0])
        raise TrainingDiverged(
            f"model {k}'s loss became {losses[k].item()} (try a smaller training.lr)"
        )


def fit(
    ensemble: Ensemble,
    recipe: Recipe,
    x: torch.Tensor,
    y: torch.Tensor,
    membership: Membership,
    progress: bool,
) -> None:
    """Non-private training: each model's own batch order, one optimizer over the stack."""
    optimizer = make_optimizer(recipe, ensemble.parameters())
    orders = [
        batch_order(membership.members(k), recipe.epochs, recipe.batch_size, int(seed))
        for k, seed in enumerate(membership.seeds)
    ]
    n_train = int(membership.matrix[0].sum())
    steps = recipe.epochs * -(-n_train // recipe.batch_size)
    ensemble.train()
    for batches in tqdm(
        zip(*orders, strict=True), total=steps, desc="training", unit="step", disable=not progress
    ):
        inputs, labels = stacked_batch(x, y, torch.as_tensor(np.stack(batches), device=x.device))
        losses = per_model_loss(ensemble(inputs), labels, recipe.label_smoothing).mean(0)
        check_finite(losses)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        optimizer.step()


def train_ensemble(
    recipe: Recipe, pool: Pool, membership: Membership, progress: bool = True
) -> Models:
    """Train all ``K`` models at once; hand recipes it cannot train to the sequential engine."""
    reason = unsupported(recipe, membership)
    if reason is not None:
        return _fall_back(reason, recipe, pool, membership, progress)
    device = resolve_device(recipe.device)
    modules = [init_model(recipe, pool, int(seed)) for seed in membership.seeds]
    try:
        ensemble = stack(modules)
        check_stacked(ensemble, modules, torch.as_tensor(pool.x[:8]))
    except NotStackable as exc:
        return _fall_back(str(exc), recipe, pool, membership, progress)
    ensemble.to(device)
    x = torch.as_tensor(pool.x, device=device)
    y = torch.as_tensor(pool.y, device=device)
    # Dropout masks come from the global generator: seed it so that a run is reproducible.
    torch.manual_seed(int(membership.seeds[0]))
    epsilons = None
    if recipe.dp is None:
        fit(ensemble, recipe, x, y, membership, progress)
    else:
        try:
            from benchmark.training.private_ensemble import fit_private  # imports Opacus (seconds)

            epsilons = fit_private(ensemble, recipe, x, y, membership, progress)
        except NotStackable as exc:
            return _fall_back(str(exc), recipe, pool, membership, progress)
    ensemble.unstack_into(modules)
    return Models(modules=[m.to(device).eval() for m in modules], device=device, epsilons=epsilons)


def _fall_back(
    reason: str, recipe: Recipe, pool: Pool, membership: Membership, progress: bool
) -> Models:
    # A model the stacked layers cannot stack may still train at once through torch.func (the
    # generic path, benchmark.training.functional_ensemble); DP-SGD needs Opacus's hooks, and a
    # recipe this engine does not implement needs the sequential loop.
    if recipe.dp is None and unsupported(recipe, membership) is None:
        try:
            models = train_functional(recipe, pool, membership, progress)
        except NotStackable as exc:
            reason = f"{reason}; {exc}"
        else:
            log.info("training.engine=ensemble trained the models with torch.func (%s)", reason)
            return models
    log.warning(
        "training.engine=ensemble cannot train this recipe (%s): training sequentially", reason
    )
    return train_sequential(recipe, pool, membership, progress)
