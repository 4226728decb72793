"""One entry of the model store: the weights of some models of an ensemble, checksummed.

An entry is a folder holding ``models.pt`` (every model's state dict, the rows of the
membership matrix they are, their held-out masks and DP epsilons; written by ``torch.save`` and
read back with ``weights_only=True``, so loading an entry never runs code) and ``manifest.json``
(each file's size and sha256, and the key material), written last. The folder is assembled
under a temporary name and renamed into place, so an entry is either absent or complete; a file
damaged later (a truncated copy, a full disk) fails its checksum and is reported, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.progress import Epoch

WEIGHTS = "models.pt"
MANIFEST = "manifest.json"


class CorruptEntry(Exception):
    """An entry that cannot be used: a missing manifest or file, a wrong size or checksum."""


@dataclass
class StoredModels:
    """What an entry holds, for models ``rows`` of the ensemble."""

    rows: np.ndarray  # int64 [R]: the models' rows of the membership matrix
    state_dicts: list[dict[str, torch.Tensor]]
    held_out: np.ndarray  # bool [R, N]
    epsilons: list[float] | None
    #: The training curve the engine reported, ``(epoch, means, per_model)`` (full entries;
    #: a reused ensemble replays it into its run, so its metrics are a trained run's).
    curve: list[Epoch] = field(default_factory=list)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_entry(folder: Path, stored: StoredModels, material: dict[str, Any]) -> None:
    """Write ``stored`` as the entry ``folder``, atomically (a temporary folder, then a rename).

    Call it holding the entry's lock: an existing (corrupt) entry is replaced.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = folder.with_name(f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    temporary.mkdir()
    try:
        payload = {
            "rows": torch.as_tensor(stored.rows, dtype=torch.int64),
            "state_dicts": [
                {name: t.detach().cpu() for name, t in state.items()}
                for state in stored.state_dicts
            ],
            "held_out": torch.as_tensor(stored.held_out, dtype=torch.bool),
            "epsilons": stored.epsilons,
            "curve": [[int(e), dict(means), dict(models)] for e, means, models in stored.curve],
        }
        torch.save(payload, temporary / WEIGHTS)
        manifest = {
            "files": {
                WEIGHTS: {
                    "bytes": (temporary / WEIGHTS).stat().st_size,
                    "sha256": sha256(temporary / WEIGHTS),
                }
            },
            "rows": [int(r) for r in stored.rows],
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "key_material": material,
        }
        (temporary / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(temporary, folder)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary)


def check_entry(folder: Path) -> dict[str, Any]:
    """The entry's manifest, after checking every file it lists; raise CorruptEntry."""
    if not (folder / MANIFEST).is_file():
        raise CorruptEntry(f"{MANIFEST} is missing (a partial write)")
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files = manifest["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptEntry(f"{MANIFEST} is unreadable ({type(exc).__name__})") from exc
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            raise CorruptEntry(f"{name} is missing")
        size = path.stat().st_size
        if size != expected["bytes"]:
            raise CorruptEntry(f"{name} has {size} bytes, its manifest says {expected['bytes']}")
        if sha256(path) != expected["sha256"]:
            raise CorruptEntry(f"{name} fails its sha256 checksum")
    return manifest


def read_entry(folder: Path) -> StoredModels:
    """The models of the entry ``folder``, checked first (:func:`check_entry`)."""
    check_entry(folder)
    try:
        payload = torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True)
    except Exception as exc:  # a checksummed file torch cannot read: still never used
        raise CorruptEntry(f"{WEIGHTS} cannot be loaded ({type(exc).__name__})") from exc
    return StoredModels(
        rows=payload["rows"].numpy(),
        state_dicts=payload["state_dicts"],
        held_out=payload["held_out"].numpy(),
        epsilons=payload["epsilons"],
        curve=[
            (int(e), dict(means), dict(models)) for e, means, models in payload.get("curve", [])
        ],
    )
