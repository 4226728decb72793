"""The model store: trained ensembles on disk, reused by every configuration that trains them.

:meth:`EnsembleStore.obtain` returns the ``K`` models of a recipe, membership and pool: loaded
from the entry of their key (:mod:`benchmark.store.key`) when it exists and passes its checksums,
else trained and written. A corrupt entry is reported in one log line, removed and retrained.
"Check, else train and write" runs under a file lock on the entry, so concurrent jobs of a
parallel sweep that need the same models train them once: the others wait, then load.

Shards (``training.shard=i/n``, :meth:`EnsembleStore.train_shard`) train models ``i, i+n, ...``
into an entry of their own beside the full one (``<key>/shard-i-of-n``), each under its own lock,
so the shards of an array job train in parallel. :meth:`obtain` assembles a complete set of
shards into the ensemble (training any missing shard first). Every model's seed is its row's
seed of the membership matrix, whichever shard trains it, and the engines train each model from
its own seed alone (except where :func:`shard_refusal` says), so the assembled ensemble is the
unsharded one bit for bit.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmark.data.pool import Pool
from benchmark.errors import ConfigError
from benchmark.locking import exclusive_lock
from benchmark.models.base import build_model
from benchmark.progress import Epoch, recording_epochs, report_epoch
from benchmark.protocol.membership import Membership
from benchmark.store.entry import (
    MANIFEST,
    CorruptEntry,
    StoredModels,
    read_entry,
    write_entry,
)
from benchmark.store.key import ensemble_key, key_material
from benchmark.training.custom_loop import PredictFunction
from benchmark.training.engines import train
from benchmark.training.recipe import Recipe
from benchmark.training.trained import Models, resolve_device

log = logging.getLogger(__name__)

TRAINED = "trained"
FULL = "full"
SHARD_NAME = re.compile(r"shard-(\d+)-of-(\d+)")

#: ``(recipe, pool, membership, progress) -> Models``: how the store trains what it lacks.
Train = Callable[[Recipe, Pool, Membership, bool], Models]


def cache_source(key: str) -> str:
    """The ``models_source`` tag of a run whose models came from entry ``key``."""
    return f"cache:{key}"


@dataclass(frozen=True)
class Shard:
    """``training.shard=i/n``: models ``i, i+n, i+2n, ...`` of the ensemble."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str, n_models: int) -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if match is None:
            raise ConfigError(
                f"training.shard must be i/n, shard i of n counted from 0 (got '{text}'): "
                "e.g. training.shard=0/2 and training.shard=1/2"
            )
        index, count = int(match[1]), int(match[2])
        if not 0 <= index < count <= n_models:
            raise ConfigError(
                f"training.shard={text} needs 0 <= i < n <= protocol.n_models={n_models}: "
                f"shards are numbered 0..n-1, and each trains at least one model"
            )
        return cls(index, count)

    @property
    def name(self) -> str:
        return f"shard-{self.index}-of-{self.count}"

    def rows(self, n_models: int) -> np.ndarray:
        return np.arange(self.index, n_models, self.count, dtype=np.int64)


def shard_refusal(recipe: Recipe) -> str | None:
    """Why shards of ``recipe`` would not train the unsharded models (None when they would).

    The stacked engine draws dropout masks and DP-SGD's Poisson batches and noise for all models
    at once from the first model's seed, so a shard of it would train other models.
    """
    if recipe.engine != "ensemble":
        return None
    if recipe.dp is not None:
        return "DP-SGD on training.engine=ensemble draws its noise for all models at once"
    if recipe.model_options.get("dropout", 0) > 0:
        return "dropout on training.engine=ensemble draws its masks for all models at once"
    return None


def sub_membership(membership: Membership, rows: np.ndarray) -> Membership:
    """The membership of models ``rows`` only, with their own seeds."""
    return Membership(
        matrix=membership.matrix[rows],
        canary=membership.canary,
        seeds=membership.seeds[rows],
        targets=np.arange(len(rows), dtype=np.int64),
    )


def _build(recipe: Recipe, pool: Pool) -> nn.Module:
    """An untrained model of the recipe, without touching torch's global generator."""
    with torch.random.fork_rng(devices=[]):
        return build_model(recipe.model, pool.input_shape, pool.num_classes, **recipe.model_options)


def unstorable(models: Models, recipe: Recipe, pool: Pool) -> str | None:
    """Why ``models`` cannot be stored (None when they can): the store rebuilds every model as
    ``model=...`` builds it and loads its weights, which a custom loop may not return; and a
    canary audit reads its canaries' trace of the training, which only training produces."""
    if recipe.audit_canaries:
        return f"audit={recipe.audit} needs the canary trace of training, which is not stored"
    if recipe.engine != "custom":
        return None
    if any(isinstance(m, PredictFunction) for m in models.modules):
        return "training=custom returned a predict function, whose weights the store cannot see"
    built = type(_build(recipe, pool))
    if any(type(m) is not built for m in models.modules):
        return f"training=custom returned modules other than the {built.__name__} model= builds"
    return None


def to_stored(models: Models, rows: np.ndarray, curve: list[Epoch]) -> StoredModels:
    epsilons = None if models.epsilons is None else [float(e) for e in models.epsilons]
    states = [m.state_dict() for m in models.modules]
    return StoredModels(rows, states, models.held_out, epsilons, curve)


def to_models(parts: list[StoredModels], recipe: Recipe, pool: Pool, n_models: int) -> Models:
    """The ensemble of ``n_models`` models assembled from entries covering every row once."""
    device = resolve_device(recipe.device)
    modules: list[nn.Module | None] = [None] * n_models
    held_out = np.zeros((n_models, len(pool)), dtype=bool)
    epsilons: list[float | None] = [None] * n_models
    for part in parts:
        for position, row in enumerate(part.rows):
            module = _build(recipe, pool)
            module.load_state_dict(part.state_dicts[position], strict=True)
            modules[int(row)] = module.to(device).eval()
            held_out[int(row)] = part.held_out[position]
            if part.epsilons is not None:
                epsilons[int(row)] = part.epsilons[position]
    assert all(m is not None for m in modules), "the entries do not cover every model"
    spent = [float(e) for e in epsilons] if all(e is not None for e in epsilons) else None
    return Models(modules, device, spent, held_out)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Origin:
    """Where an ensemble came from: what a run tags and logs about its models."""

    #: The ``models_source`` tag: ``trained``, or ``cache:<key>`` when loaded from the store.
    source: str
    key: str | None = None
    #: The entry this job wrote (the run logs it as an artifact); None when nothing was written.
    written: Path | None = None
    #: Why the trained models were not stored; None when they were (or were loaded).
    not_stored: str | None = None


@dataclass
class Obtained:
    """An ensemble and its :class:`Origin`."""

    models: Models
    origin: Origin


class EnsembleStore:
    """The model store under ``root`` (``training.store``)."""

    def __init__(self, root: Path, trainer: Train = train) -> None:
        self.root = Path(root)
        self.trainer = trainer

    def check(self) -> None:
        """Refuse a store folder that cannot be written, before anything trains."""
        existing = next(p for p in [self.root, *self.root.parents] if p.exists())
        if not (existing.is_dir() and os.access(existing, os.W_OK)):
            raise ConfigError(
                f"cannot write the model store {self.root}: {existing} is not a writable "
                "folder; set training.store=<writable folder> or training.cache=false"
            )

    def entry(self, key: str, part: str = FULL) -> Path:
        return self.root / key / part

    @contextmanager
    def _lock(self, key: str, part: str) -> Iterator[None]:
        with exclusive_lock(self.root / key / f"{part}.lock"):
            yield

    def _read(self, folder: Path) -> StoredModels | None:
        """The entry's models; None when absent, or corrupt (one log line, then removed)."""
        if not folder.exists():
            return None
        try:
            return read_entry(folder)
        except CorruptEntry as exc:
            log.warning("model store: %s is corrupt (%s): retraining it", folder, exc)
            shutil.rmtree(folder, ignore_errors=True)
            return None

    def _train(
        self, recipe: Recipe, pool: Pool, membership: Membership, rows: np.ndarray, progress: bool
    ) -> tuple[Models, list[tuple[int, dict[str, float]]]]:
        """Models ``rows`` trained, and the training curve the engine reported."""
        whole = len(rows) == membership.n_models
        subset = membership if whole else sub_membership(membership, rows)
        with recording_epochs() as curve:
            return self.trainer(recipe, pool, subset, progress), curve

    def obtain(
        self, recipe: Recipe, pool: Pool, membership: Membership, progress: bool = True
    ) -> Obtained:
        """The ensemble: loaded (the full entry, or a complete set of shards), else trained."""
        device = resolve_device(recipe.device)
        key = ensemble_key(recipe, pool, membership, device)
        with self._lock(key, FULL):
            stored = self._read(self.entry(key))
            if stored is not None:
                models = to_models([stored], recipe, pool, membership.n_models)
                for epoch, metrics, per_model in stored.curve:  # the curve that trained them
                    report_epoch(epoch, metrics, per_model)
                return Obtained(models, Origin(cache_source(key), key))
            count = self._shard_count(key)
            if count is not None:
                return self._assemble(recipe, pool, membership, key, count, progress)
            rows = np.arange(membership.n_models, dtype=np.int64)
            models, curve = self._train(recipe, pool, membership, rows, progress)
            reason = unstorable(models, recipe, pool)
            if reason is not None:
                log.info("model store: the models are not stored: %s", reason)
                return Obtained(models, Origin(TRAINED, key, not_stored=reason))
            material = key_material(recipe, pool, membership, device)
            write_entry(self.entry(key), to_stored(models, rows, curve), material)
            return Obtained(models, Origin(TRAINED, key, written=self.entry(key)))

    def _shard_count(self, key: str) -> int | None:
        """The ``n`` of the shard set with the most entries on disk (None: no shard stored)."""
        found: dict[int, int] = {}
        folder = self.root / key
        for path in folder.iterdir() if folder.is_dir() else ():
            match = SHARD_NAME.fullmatch(path.name)
            if match is not None and path.is_dir():
                found[int(match[2])] = found.get(int(match[2]), 0) + 1
        return max(found, key=lambda n: (found[n], -n)) if found else None

    def _assemble(
        self,
        recipe: Recipe,
        pool: Pool,
        membership: Membership,
        key: str,
        count: int,
        progress: bool,
    ) -> Obtained:
        """The ensemble from its ``count`` shards, training the missing ones first."""
        parts, trained = [], False
        for index in range(count):
            shard = Shard(index, count)
            stored, source = self._shard(recipe, pool, membership, key, shard, progress)
            parts.append(stored)
            trained |= source == TRAINED
        models = to_models(parts, recipe, pool, membership.n_models)
        return Obtained(models, Origin(TRAINED if trained else cache_source(key), key))

    def _shard(
        self,
        recipe: Recipe,
        pool: Pool,
        membership: Membership,
        key: str,
        shard: Shard,
        progress: bool,
    ) -> tuple[StoredModels, str]:
        with self._lock(key, shard.name):
            stored = self._read(self.entry(key, shard.name))
            if stored is not None:
                return stored, cache_source(key)
            rows = shard.rows(membership.n_models)
            # A shard's curve is its own models' mean, not the ensemble's: not replayed.
            models, _ = self._train(recipe, pool, membership, rows, progress)
            reason = unstorable(models, recipe, pool)
            if reason is not None:
                raise ConfigError(f"training.shard stores what it trains, but {reason}")
            stored = to_stored(models, rows, [])
            material = key_material(recipe, pool, membership, resolve_device(recipe.device))
            write_entry(self.entry(key, shard.name), stored, material)
            return stored, TRAINED

    def train_shard(
        self, recipe: Recipe, pool: Pool, membership: Membership, shard: Shard, progress: bool
    ) -> tuple[Path, str]:
        """Train and store shard ``shard`` (unless it, or the full entry, is stored already);
        its entry and where its models came from."""
        key = ensemble_key(recipe, pool, membership, resolve_device(recipe.device))
        if (self.entry(key) / MANIFEST).is_file():  # the whole ensemble is stored already
            return self.entry(key), cache_source(key)
        _, source = self._shard(recipe, pool, membership, key, shard, progress)
        return self.entry(key, shard.name), source

    def locate(self, recipe: Recipe, pool: Pool, membership: Membership) -> str | None:
        """The key of the stored ensemble (full or a complete shard set); None when it is not
        stored (``mia-reattack`` refuses then, rather than train)."""
        key = ensemble_key(recipe, pool, membership, resolve_device(recipe.device))
        if (self.entry(key) / MANIFEST).is_file():
            return key
        count = self._shard_count(key)
        if count is None:
            return None
        shards = [self.entry(key, Shard(i, count).name) for i in range(count)]
        return key if all((s / MANIFEST).is_file() for s in shards) else None
