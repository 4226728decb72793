"""The training engines behind one call: :func:`train` checks a recipe and dispatches to the
engine it names (``training.engine``).

``sequential`` (:mod:`.sequential`) trains the models one after another and is the reference;
``ensemble`` (:mod:`.ensemble`, the default) trains them all at once and hands recipes it cannot
train to ``sequential``.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmark.data.pool import Pool
from benchmark.errors import ConfigError
from benchmark.models.base import build_model
from benchmark.protocol.membership import Membership
from benchmark.registry import Registry
from benchmark.training.allocator import retain_freed_memory
from benchmark.training.custom_loop import check_custom, train_custom
from benchmark.training.ensemble import train_ensemble
from benchmark.training.hooks import Setup
from benchmark.training.recipe import Recipe
from benchmark.training.sequential import train_sequential
from benchmark.training.trained import Models, resolve_device


def check_recipe(recipe: Recipe, pool: Pool) -> None:
    """Refuse a recipe that cannot train on ``pool``, before any training; raise ConfigError."""
    ENGINES.lookup(recipe.engine)  # here, not only in train(): the CLI checks before Hydra starts
    resolve_device(recipe.device)
    model = build_model(recipe.model, pool.input_shape, pool.num_classes, **recipe.model_options)
    check_audit(recipe, sum(p.numel() for p in model.parameters() if p.requires_grad))
    check_custom(recipe, pool)
    if recipe.model == "logreg" and recipe.model_options.get("dropout", 0) > 0:
        raise ConfigError(
            "model=logreg has no hidden layer to apply dropout to: use model=mlp or model=cnn"
        )
    n_members = len(pool) // 2
    setup = Setup(pool, n_members, recipe.hooks, recipe.label_smoothing)
    for hook in recipe.hooks:
        hook.check(setup)
    sequential_only = recipe.sequential_reason()
    if recipe.dp is not None and sequential_only:
        raise ConfigError(
            f"defense=dpsgd trains plain DP-SGD (Opacus): "
            f"{sequential_only.split(' need')[0]} cannot be combined with it"
        )
    if n_members - sum(hook.held_out(n_members) for hook in recipe.hooks) < 1:
        raise ConfigError(
            f"the held-out fractions leave none of each model's {n_members} members to train "
            "on: lower validation_fraction / reference_fraction"
        )


def check_audit(recipe: Recipe, n_parameters: int) -> None:
    """Refuse audit canaries the private ensemble cannot insert; raise ConfigError."""
    if not recipe.audit_canaries:
        return
    if recipe.dp is None:
        raise ConfigError(
            f"audit={recipe.audit} audits DP-SGD: add defense=dpsgd (or use audit=none)"
        )
    if recipe.engine != "ensemble":
        raise ConfigError(
            f"audit={recipe.audit} inserts its canaries in the ensemble engine's DP-SGD: set "
            f"training.engine=ensemble (got {recipe.engine})"
        )
    if recipe.audit == "whitebox" and recipe.audit_canaries > n_parameters:
        raise ConfigError(
            f"audit.canaries={recipe.audit_canaries} exceeds the model's {n_parameters} "
            f"parameters (one coordinate per canary): set audit.canaries <= {n_parameters}"
        )


Engine = Callable[[Recipe, Pool, Membership, bool], Models]


ENGINES: Registry[Engine] = Registry("engine", "training.engine")
ENGINES.add("sequential", train_sequential)
ENGINES.add("ensemble", train_ensemble)
ENGINES.add("custom", train_custom)


def train(recipe: Recipe, pool: Pool, membership: Membership, progress: bool = True) -> Models:
    """Train all ``K`` models of ``membership`` with ``recipe`` on the engine it names.

    The first call sets the process's allocator to keep freed memory
    (:func:`benchmark.training.allocator.retain_freed_memory`).
    """
    check_recipe(recipe, pool)
    retain_freed_memory()
    return ENGINES.lookup(recipe.engine)(recipe, pool, membership, progress)
