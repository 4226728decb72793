"""The content key of a trained ensemble: a hash of everything that determines its weights.

Two configurations that train the same models get the same key, and anything that changes a
weight gives another one:

- the data the models train on: the pool's features and labels, bit for bit (this covers the
  dataset's files, the split seed, ``n_samples`` and the mislabelled canaries at once; the test
  set is never trained on and is left out);
- the membership matrix and every model's seed;
- the training recipe (:class:`~benchmark.training.recipe.Recipe`): model and options,
  optimiser, schedule, and the training-time defenses (their recipe fields and hooks, with their
  parameters). Release-time defenses and attacks never reach the recipe, so ``defense=topk``
  shares the key of ``defense=none``;
- the engine and the device type. The engines train the same models up to floating-point error
  (1e-4, ``tests/training/test_ensemble.py``), not bit for bit, and a run must give identical
  metrics whether its models were trained or reused; CPU and GPU kernels differ likewise;
- torch's version (its kernels and initialisers) and :data:`FORMAT`, bumped when the harness
  changes how it trains.

The key is canonical: dicts are sorted, numbers compare by value (``0`` and ``0.0`` are the same
weight decay), and SGD's momentum is left out when the optimiser is Adam, which ignores it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import numbers
from typing import Any

import numpy as np
import torch

from benchmark.data.pool import Pool
from benchmark.protocol.membership import Membership
from benchmark.training.recipe import Recipe

#: Bumped when the harness's training changes so that stored models would differ.
FORMAT = 1


def array_digest(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def canonical(value: Any) -> Any:
    """``value`` as plain JSON data that compares equal exactly when the values train alike."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__type__": f"{type(value).__module__}.{type(value).__qualname__}", **fields}
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if isinstance(value, np.ndarray):
        return {"__array__": array_digest(value)}
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Real):
        return repr(float(value))
    # An object the key cannot see into: its repr, which at worst misses a reuse.
    return {"__repr__": repr(value)}


def recipe_material(recipe: Recipe, device: torch.device) -> dict[str, Any]:
    """The recipe as key material: every field, the device by its type."""
    material = canonical(recipe)
    material["device"] = device.type
    # An audited recipe is never stored (ensemble_store.unstorable): the audit's kind tells no
    # two entries apart, and leaving it out keeps the keys of the entries stored before it.
    material.pop("audit")
    if recipe.optimizer != "sgd":
        material.pop("momentum")  # Adam has no momentum parameter (steps.make_optimizer)
    return material


def key_material(
    recipe: Recipe, pool: Pool, membership: Membership, device: torch.device
) -> dict[str, Any]:
    """Everything the key hashes, readable (each entry's ``manifest.json`` keeps it)."""
    return {
        "format": FORMAT,
        "torch": torch.__version__,
        "recipe": recipe_material(recipe, device),
        "pool": {
            "x": array_digest(pool.x),
            "y": array_digest(pool.y),
            "num_classes": pool.num_classes,
        },
        "membership": {
            "matrix": array_digest(membership.matrix),
            "seeds": array_digest(membership.seeds),
        },
    }


def ensemble_key(recipe: Recipe, pool: Pool, membership: Membership, device: torch.device) -> str:
    """The store key of the ensemble ``recipe`` trains on ``pool`` with ``membership``."""
    material = key_material(recipe, pool, membership, device)
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:24]
