"""The model store's entries: reused, checksummed, retrained when damaged, trained once under
concurrent use, assembled from shards; with a trainer that only initialises (no training)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.data.pool import Pool
from benchmark.errors import ConfigError
from benchmark.experiment.plan import Plan, prepare
from benchmark.protocol.membership import Membership
from benchmark.store.ensemble_store import (
    TRAINED,
    EnsembleStore,
    Shard,
    shard_refusal,
    unstorable,
)
from benchmark.store.entry import WEIGHTS, CorruptEntry, read_entry
from benchmark.training.custom_loop import PredictFunction
from benchmark.training.recipe import Recipe
from benchmark.training.steps import init_model
from benchmark.training.trained import Models
from tests.conftest import FAST, compose_config


@pytest.fixture(scope="module")
def plan() -> Plan:
    return prepare(compose_config(FAST), show_progress=False)


class Initialiser:
    """A trainer that returns every model at its initial weights, and counts its calls."""

    def __init__(self, pause: float = 0.0) -> None:
        self.calls: list[list[int]] = []
        self.pause = pause

    def __call__(self, recipe: Recipe, pool: Pool, membership: Membership, progress) -> Models:
        self.calls.append([int(s) for s in membership.seeds])
        time.sleep(self.pause)
        modules = [init_model(recipe, pool, int(s)).eval() for s in membership.seeds]
        held_out = np.zeros(membership.matrix.shape, dtype=bool)
        held_out[:, :2] = membership.matrix[:, :2]  # something to round-trip
        return Models(modules, torch.device("cpu"), None, held_out)


def weights(models: Models) -> list[torch.Tensor]:
    return [torch.cat([p.flatten() for p in m.parameters()]) for m in models.modules]


def same(a: Models, b: Models) -> bool:
    return all(torch.equal(x, y) for x, y in zip(weights(a), weights(b), strict=True)) and bool(
        np.array_equal(a.held_out, b.held_out)
    )


def obtain(store: EnsembleStore, plan: Plan):
    return store.obtain(plan.recipe, plan.pool, plan.membership, progress=False)


def test_a_stored_ensemble_is_reused_bit_for_bit(tmp_path: Path, plan: Plan):
    trainer = Initialiser()
    store = EnsembleStore(tmp_path, trainer)
    first, second = obtain(store, plan), obtain(store, plan)
    assert first.origin.source == TRAINED and first.origin.written == store.entry(first.origin.key)
    assert second.origin.source == f"cache:{first.origin.key}" and second.origin.written is None
    assert len(trainer.calls) == 1 and same(first.models, second.models)


@pytest.mark.parametrize("damage", ["truncate", "flip", "no manifest"])
def test_a_damaged_entry_is_reported_in_one_line_and_retrained(
    tmp_path: Path, plan: Plan, damage: str, caplog
):
    trainer = Initialiser()
    store = EnsembleStore(tmp_path, trainer)
    folder = store.entry(obtain(store, plan).origin.key)
    data = (folder / WEIGHTS).read_bytes()
    if damage == "truncate":
        (folder / WEIGHTS).write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        (folder / WEIGHTS).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    else:
        (folder / "manifest.json").unlink()
    with pytest.raises(CorruptEntry):
        read_entry(folder)
    with caplog.at_level(logging.WARNING, logger="benchmark.store.ensemble_store"):
        again = obtain(store, plan)
    lines = [r.getMessage() for r in caplog.records if r.name == "benchmark.store.ensemble_store"]
    assert len(lines) == 1 and "corrupt" in lines[0] and "retraining" in lines[0]
    assert "\n" not in lines[0]
    assert again.origin.source == TRAINED and len(trainer.calls) == 2
    read_entry(folder)  # rewritten, whole


def test_concurrent_jobs_train_an_entry_once(tmp_path: Path, plan: Plan):
    trainer = Initialiser(pause=0.5)
    results = []

    def job() -> None:
        results.append(obtain(EnsembleStore(tmp_path, trainer), plan))

    threads = [threading.Thread(target=job) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(trainer.calls) == 1
    assert sorted(r.origin.source == TRAINED for r in results) == [False, False, True]
    assert same(results[0].models, results[1].models)


def test_shards_train_their_own_models_and_assemble_into_the_ensemble(tmp_path: Path, plan):
    trainer = Initialiser()
    sharded = EnsembleStore(tmp_path / "sharded", trainer)
    seeds = [int(s) for s in plan.membership.seeds]
    for index in (1, 0):
        sharded.train_shard(plan.recipe, plan.pool, plan.membership, Shard(index, 2), False)
    assert trainer.calls == [seeds[1::2], seeds[0::2]]  # each model keeps its own seed
    assembled = obtain(sharded, plan)
    assert len(trainer.calls) == 2 and assembled.origin.source.startswith("cache:")
    whole = obtain(EnsembleStore(tmp_path / "whole", Initialiser()), plan)
    assert same(assembled.models, whole.models)


def test_a_missing_shard_is_trained_by_the_unsharded_job(tmp_path: Path, plan: Plan):
    trainer = Initialiser()
    store = EnsembleStore(tmp_path, trainer)
    store.train_shard(plan.recipe, plan.pool, plan.membership, Shard(0, 2), False)
    assembled = obtain(store, plan)
    seeds = [int(s) for s in plan.membership.seeds]
    assert trainer.calls == [seeds[0::2], seeds[1::2]] and assembled.origin.source == TRAINED


@pytest.mark.parametrize("text", ["1", "2/2", "a/b", "0/5", "-1/2"])
def test_a_bad_shard_is_refused_in_one_line(text: str):
    with pytest.raises(ConfigError, match="training.shard") as error:
        Shard.parse(text, n_models=4)
    assert "\n" not in str(error.value)


def test_shards_that_would_train_other_models_are_refused_before_training(plan, tmp_path):
    assert shard_refusal(plan.recipe) is None
    dropout = plan.recipe.replace(model_options={**plan.recipe.model_options, "dropout": 0.5})
    assert "dropout" in shard_refusal(dropout)
    assert shard_refusal(dropout.replace(engine="sequential")) is None
    with pytest.raises(ConfigError, match="training.engine=sequential"):
        prepare(compose_config([*FAST, "defense=dropout", "training.shard=0/2"], tmp_path), False)
    assert list(tmp_path.iterdir()) == []  # refused before anything is written
    with pytest.raises(ConfigError, match="training.cache=false"):
        prepare(compose_config([*FAST, "training.shard=0/2"]), False)


def test_a_custom_loop_that_returns_a_predict_function_is_not_stored(plan: Plan):
    custom = plan.recipe.replace(engine="custom")
    models = Initialiser()(plan.recipe, plan.pool, plan.membership, False)
    assert unstorable(models, custom, plan.pool) is None
    models.modules[0] = PredictFunction(lambda x: x)
    assert "predict function" in unstorable(models, custom, plan.pool)
