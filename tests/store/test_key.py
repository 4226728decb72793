"""The model store's key: the same for configurations that train the same models, different
for anything that changes a weight; and the store settings are no part of a configuration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.config.compose import to_container
from benchmark.experiment.plan import Plan, base_recipe, mislabel_canaries, prepare
from benchmark.protocol.membership import make_membership
from benchmark.store.key import ensemble_key
from benchmark.tracking.params import config_hash, reproducibility_tags, run_params
from benchmark.training.recipe import Recipe
from defenses.base import apply_recipes, build_defenses
from tests.conftest import FAST, compose_config

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def plan() -> Plan:
    return prepare(compose_config(FAST), show_progress=False)


@pytest.fixture(scope="module")
def base(plan: Plan) -> Recipe:
    return base_recipe(compose_config(FAST))


def key(plan: Plan, recipe: Recipe | None = None, **membership_changes: object) -> str:
    membership = plan.membership
    if membership_changes:
        options = {"n_points": len(plan.pool), "n_models": 4, "seed": 0, **membership_changes}
        membership = make_membership(**options)  # type: ignore[arg-type]
    return ensemble_key(recipe or plan.recipe, plan.pool, membership, CPU)


def defended(base: Recipe, selection: dict) -> Recipe:
    return apply_recipes(build_defenses(selection), base)


@pytest.mark.parametrize("release_only", ["topk", "rounding", "label_only", "memguard"])
def test_release_time_defenses_share_the_undefended_models(plan, base, release_only):
    assert key(plan, defended(base, {release_only: {}})) == key(plan)


@pytest.mark.parametrize(
    "selection",
    [
        {"weight_decay": {}},
        {"label_smoothing": {}},
        {"dropout": {}},
        {"early_stopping": {}},
        {"relaxloss": {"alpha": 0.5}},
        {"relaxloss": {"alpha": 1.0}},
        {"dpsgd": {}},
    ],
)
def test_training_time_defenses_and_their_parameters_change_the_key(plan, base, selection):
    keys = {key(plan), key(plan, defended(base, {"relaxloss": {"alpha": 2.0}}))}
    assert key(plan, defended(base, selection)) not in keys


@pytest.mark.parametrize(
    "change",
    [
        {"lr": 0.01},
        {"epochs": 4},
        {"batch_size": 32},
        {"weight_decay": 1e-4},
        {"optimizer": "sgd"},
        {"engine": "sequential"},  # the engines agree to 1e-4, not bit for bit
        {"model_options": {"hidden": [128], "channels": [16, 32], "dropout": 0.0}},
    ],
)
def test_every_recipe_field_that_changes_a_weight_changes_the_key(plan, change):
    assert key(plan, plan.recipe.replace(**change)) != key(plan)


def test_the_key_is_canonical(plan):
    # Adam has no momentum; 0 and 0.0 are the same weight decay; the device is its type.
    assert key(plan, plan.recipe.replace(momentum=0.5)) == key(plan)
    assert key(plan, plan.recipe.replace(weight_decay=0)) == key(plan)
    assert key(plan, plan.recipe.replace(device="cpu")) == key(plan)
    sgd = plan.recipe.replace(optimizer="sgd")
    assert key(plan, sgd.replace(momentum=0.5)) != key(plan, sgd)


def test_the_membership_seeds_and_data_change_the_key(plan):
    assert key(plan, seed=0) == key(plan)
    assert key(plan, seed=1) != key(plan)
    canaries = make_membership(len(plan.pool), 4, 0, n_canaries=5)
    mislabelled = mislabel_canaries(plan.pool, canaries, 0)
    assert ensemble_key(plan.recipe, mislabelled, plan.membership, CPU) != key(plan)
    assert not np.array_equal(mislabelled.y, plan.pool.y)


def test_store_settings_are_tags_not_params_and_not_in_the_config_hash():
    default = to_container(compose_config(FAST))
    other = to_container(
        compose_config([*FAST, "training.cache=true", "training.store=/x", "training.shard=0/2"])
    )
    assert config_hash(default) == config_hash(other)
    assert run_params(default) == run_params(other)
    assert not any(k.startswith("training.cache") for k in run_params(other))
    tags = reproducibility_tags(other)
    assert tags["training.store"] == "/x" and tags["training.shard"] == "0/2"
