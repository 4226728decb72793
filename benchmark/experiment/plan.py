"""Planning one configuration: everything checked and built before any training starts.

:func:`prepare` loads the data and checks every part of the configuration, so that bad input fails
with one line and nothing is recorded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

import attacks  # noqa: F401  (registers the attacks)
import defenses  # noqa: F401  (registers the defenses)
from attacks.base import Attack, build_suite
from benchmark.config.checks import check_batch_size, validate
from benchmark.config.compose import to_container
from benchmark.data.pool import Pool, load_pool
from benchmark.errors import ConfigError
from benchmark.experiment.extra_target import ExtraTarget, plan_extra_target
from benchmark.experiment.replicates import replicate_config, replicate_seeds
from benchmark.protocol.membership import Membership, make_membership
from benchmark.store.ensemble_store import EnsembleStore, Shard, shard_refusal
from benchmark.training.engines import check_recipe
from benchmark.training.recipe import Recipe
from defenses.base import Defense, apply_recipes, build_defenses


@dataclass
class Plan:
    """Everything a configuration needs, checked, before any training starts."""

    config: dict[str, Any]
    pool: Pool
    membership: Membership
    defenses: list[Defense]
    recipe: Recipe
    attacks: list[Attack]
    seed: int
    show_progress: bool = True
    #: The recipe of the attacker's own shadow models when it does not know the defense
    #: (``attacker.knows_defense=false``): the base recipe, without any training-time defense.
    #: None: the attacker knows the recipe, and the other targets serve as shadows.
    shadow_recipe: Recipe | None = None
    #: ``protocol.target.checkpoint``: an already-trained model attacked as an extra target.
    extra_target: ExtraTarget | None = None
    #: ``protocol.replicates=R``: the plans of replicates 1..R-1 (this plan is replicate 0).
    replicates: list[Plan] = field(default_factory=list)
    #: The model store (``training.cache=true``); None trains every model afresh.
    store: EnsembleStore | None = None
    #: ``training.shard=i/n``: this job trains and stores one shard, and attacks nothing.
    shard: Shard | None = None


def base_recipe(cfg: DictConfig) -> Recipe:
    """The recipe of the resolved ``training`` and ``model`` configs, before any defense."""
    return Recipe.from_config(to_container(cfg.training), to_container(cfg.model))


def mislabel_canaries(pool: Pool, membership: Membership, seed: int) -> Pool:
    """Give every canary a wrong label (Aerni et al. 2024): the hardest points to not memorise."""
    if not membership.canary.any():
        return pool
    rng = np.random.default_rng([seed, 0xCA7A])
    y = pool.y.copy()
    shift = rng.integers(1, pool.num_classes, size=int(membership.canary.sum()))
    y[membership.canary] = (y[membership.canary] + shift) % pool.num_classes
    return dataclasses.replace(pool, y=y)


def prepare(cfg: DictConfig, show_progress: bool = True, pool: Pool | None = None) -> Plan:
    """Load the data and check every part of ``cfg``; raise ConfigError on the first problem.

    ``pool``, when given, is ``load_pool(cfg.data, cfg.seed)`` already loaded (a sweep's preflight
    checks every job but loads each dataset once).
    """
    validate(cfg)
    config = to_container(cfg)
    defense_list = build_defenses(cfg.defense)
    attack_list = build_suite(cfg.attacks.suite)
    pool = load_pool(cfg.data, cfg.seed) if pool is None else pool
    p = cfg.protocol
    membership = make_membership(len(pool), p.n_models, cfg.seed, p.n_targets, p.canaries)
    pool = mislabel_canaries(pool, membership, cfg.seed)
    check_batch_size(cfg.training, n_train=len(pool) // 2)
    for defense in defense_list:
        defense.check(n_train=len(pool) // 2, num_classes=pool.num_classes)
    recipe = apply_recipes(defense_list, base_recipe(cfg))
    if cfg.audit.method != "none":
        recipe = recipe.replace(audit=cfg.audit.method, audit_canaries=int(cfg.audit.canaries))
    check_recipe(recipe, pool)
    plan = Plan(
        config, pool, membership, defense_list, recipe, attack_list, cfg.seed, show_progress
    )
    plan.shadow_recipe = None if cfg.attacker.knows_defense else base_recipe(cfg)
    plan.store, plan.shard = storage(cfg, recipe)
    plan.extra_target = plan_extra_target(cfg, pool, base_recipe(cfg))
    seeds = replicate_seeds(cfg.seed, p.replicates)[1:]
    plan.replicates = [prepare(replicate_config(cfg, seed), show_progress) for seed in seeds]
    return plan


def storage(cfg: DictConfig, recipe: Recipe) -> tuple[EnsembleStore | None, Shard | None]:
    """The model store and the shard of ``cfg.training``, checked; raise ConfigError."""
    training = cfg.training
    store = EnsembleStore(Path(training.store)) if training.cache else None
    if store is not None:
        store.check()
    if training.shard is None:
        return store, None
    shard = Shard.parse(training.shard, cfg.protocol.n_models)
    if store is None:
        raise ConfigError(
            "training.shard trains models into the model store, but training.cache=false: "
            "remove training.cache=false (and set training.store to a folder every job sees)"
        )
    if cfg.protocol.replicates > 1:
        raise ConfigError(
            f"training.shard trains one ensemble, but protocol.replicates={cfg.protocol.replicates}"
            " needs one per replicate: shard each replicate's seed as its own job (seed=...)"
        )
    reason = shard_refusal(recipe)
    if reason is not None:
        raise ConfigError(
            f"training.shard={training.shard} cannot train this recipe in shards: {reason}; "
            "use training.engine=sequential, which trains each model from its own seed"
        )
    return store, shard
