"""The ensemble engine: all ``K`` models of a configuration trained at once, as one network.

The models are stacked (:mod:`benchmark.training.stacking`) and trained with one optimizer on
the loss ``sum_k mean_batch_k loss_k``. The gradient of that sum with respect to model ``k``'s
parameters is the gradient of model ``k``'s own mean batch loss, and SGD (with momentum and
coupled weight decay) and Adam update every parameter element-wise, so one optimizer over the
stacked parameters is exactly ``K`` independent optimizers. Each model starts from its own
initialisation and sees its own batches (:func:`benchmark.training.steps.init_model` and
:func:`benchmark.training.steps.epoch_orders`, the calls the sequential engine makes), so model
``k`` equals the sequentially trained model ``k`` up to floating-point error;
``tests/training/test_ensemble.py`` checks this.

DP-SGD (``recipe.dp``) trains the stacked network through Opacus, with per-model clipping
(:mod:`benchmark.training.private_ensemble`).

A recipe this engine cannot train (see :func:`unsupported`) is handed to the sequential engine
with a logged message, never trained differently.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from benchmark.data.pool import Pool
from benchmark.errors import ConfigError
from benchmark.progress import TRAIN_ACC, TRAIN_LOSS, report_epoch
from benchmark.progress import progress as show_progress
from benchmark.protocol.membership import Membership
from benchmark.training.functional_ensemble import train_functional
from benchmark.training.recipe import Recipe
from benchmark.training.sequential import train_sequential
from benchmark.training.stacked_steps import (
    check_finite,
    per_model_loss,
    stacked_batch,
    stacked_orders,
)
from benchmark.training.stacking import Ensemble, NotStackable, check_stacked, stack
from benchmark.training.steps import init_model, make_optimizer
from benchmark.training.trained import Models, resolve_device

log = logging.getLogger(__name__)


def unsupported(recipe: Recipe, membership: Membership) -> str | None:
    """Why this engine cannot train ``recipe`` on ``membership`` (None when it can).

    It calls no training hook, so a recipe with a hook that needs the sequential engine is
    handed to it (:meth:`Recipe.sequential_reason`).
    """
    reason = recipe.sequential_reason()
    if reason is not None:
        return reason
    if len(set(membership.matrix.sum(axis=1).tolist())) != 1:
        return "the models have training sets of different sizes"
    n_members = int(membership.matrix[0].sum())
    if any(hook.held_out(n_members) for hook in recipe.hooks):
        return "a training hook holds members out of fitting"
    return None


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
    n_train = int(membership.matrix[0].sum())
    steps_per_epoch = -(-n_train // recipe.batch_size)
    steps = recipe.epochs * steps_per_epoch
    # Per-model sums [2, K] (loss, accuracy) and their means over the models [2] stay on the
    # device: one transfer per epoch.
    model_sums = torch.zeros(2, membership.n_models, dtype=torch.float64, device=x.device)
    epoch_sums = torch.zeros(2, dtype=torch.float64, device=x.device)
    ensemble.train()
    for step, index in enumerate(
        show_progress(
            stacked_orders(membership, recipe.epochs, recipe.batch_size, x.device),
            "training",
            unit="step",
            enabled=progress,
            total=steps,
        )
    ):
        inputs, labels = stacked_batch(x, y, index)
        logits = ensemble(inputs)
        losses = per_model_loss(logits, labels, recipe.label_smoothing).mean(0)
        check_finite(losses)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        optimizer.step()
        # Each model's hits [K, B], from the logits' model-major memory (see per_model_loss).
        hits = (logits.detach().transpose(0, 1).argmax(-1) == labels.T).float()
        losses = losses.detach()
        epoch_sums += torch.stack((losses.mean(), hits.mean()))
        model_sums[0] += losses
        model_sums[1] += hits.mean(1)
        if (step + 1) % steps_per_epoch == 0:
            epoch = (step + 1) // steps_per_epoch
            loss, acc = (epoch_sums / steps_per_epoch).tolist()
            per_model = (model_sums / steps_per_epoch).tolist()
            report_epoch(
                epoch,
                {TRAIN_LOSS: loss, TRAIN_ACC: acc},
                {TRAIN_LOSS: per_model[0], TRAIN_ACC: per_model[1]},
            )
            epoch_sums.zero_()
            model_sums.zero_()


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
    epsilons, canaries = None, None
    if recipe.dp is None:
        fit(ensemble, recipe, x, y, membership, progress)
    else:
        try:
            from benchmark.training.private_ensemble import fit_private  # imports Opacus (seconds)

            epsilons, canaries = fit_private(
                ensemble, recipe, x, y, membership, progress, pool.num_classes
            )
        except NotStackable as exc:
            return _fall_back(str(exc), recipe, pool, membership, progress)
    ensemble.unstack_into(modules)
    # No hook runs here (see unsupported), so every model fits all of its members.
    held_out = np.zeros(membership.matrix.shape, dtype=bool)
    trained = [m.to(device).eval() for m in modules]
    return Models(trained, device, epsilons, held_out, canaries=canaries)


def _fall_back(
    reason: str, recipe: Recipe, pool: Pool, membership: Membership, progress: bool
) -> Models:
    if recipe.audit_canaries:  # the canaries live in the stacked private loop only
        raise ConfigError(
            f"audit={recipe.audit} needs the stacked DP-SGD of training.engine=ensemble, which "
            f"cannot train this recipe ({reason}): use audit=none"
        )
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
