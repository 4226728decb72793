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
from benchmark.training.custom_loop import check_custom, train_custom
from benchmark.training.ensemble import train_ensemble
from benchmark.training.recipe import Recipe, needs_sequential
from benchmark.training.sequential import split_sizes, train_sequential
from benchmark.training.trained import Models


def check_recipe(recipe: Recipe, pool: Pool) -> None:
    """Refuse a recipe that cannot train on ``pool``, before any training; raise ConfigError."""
    build_model(recipe.model, pool.input_shape, pool.num_classes, **recipe.model_options)
    check_custom(recipe, pool)
    if recipe.model == "logreg" and recipe.model_options.get("dropout", 0) > 0:
        raise ConfigError(
            "model=logreg has no hidden layer to apply dropout to: use model=mlp or model=cnn"
        )
    if recipe.augments and pool.kind != "image":
        raise ConfigError(
            f"defense=augmentation shifts and flips images, but data={pool.name} is "
            f"{pool.kind}: use it with image data (digits, cifar10) or remove it"
        )
    if recipe.relaxloss_alpha > 0 and (recipe.mixup_alpha > 0 or recipe.label_smoothing > 0):
        raise ConfigError(
            "defense=relaxloss defines its own loss and cannot be combined with mixup or "
            "label_smoothing: select only one of them"
        )
    sequential_only = needs_sequential(recipe)
    if recipe.dp is not None and sequential_only:
        raise ConfigError(
            f"defense=dpsgd trains plain DP-SGD (Opacus): "
            f"{sequential_only.split(' need')[0]} cannot be combined with it"
        )
    n_members = len(pool) // 2
    n_validation, n_reference = split_sizes(recipe, n_members)
    if recipe.early_stopping and n_validation < 1:
        raise ConfigError(
            f"defense.early_stopping.validation_fraction={recipe.validation_fraction} holds out "
            f"no validation point from each model's {n_members} members: raise it"
        )
    if recipe.adversarial and n_reference < 1:
        raise ConfigError(
            "defense.adversarial_regularisation.reference_fraction="
            f"{recipe.adversarial_reference_fraction} holds out no reference point from each "
            f"model's {n_members} members: raise it"
        )
    if n_members - n_validation - n_reference < 1:
        raise ConfigError(
            f"the held-out fractions leave none of each model's {n_members} members to train "
            "on: lower validation_fraction / reference_fraction"
        )


Engine = Callable[[Recipe, Pool, Membership, bool], Models]


ENGINES: Registry[Engine] = Registry("engine", "training.engine")
ENGINES.add("sequential", train_sequential)
ENGINES.add("ensemble", train_ensemble)
ENGINES.add("custom", train_custom)


def train(recipe: Recipe, pool: Pool, membership: Membership, progress: bool = True) -> Models:
    """Train all ``K`` models of ``membership`` with ``recipe`` on the engine it names."""
    check_recipe(recipe, pool)
    return ENGINES.lookup(recipe.engine)(recipe, pool, membership, progress)
