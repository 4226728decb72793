"""CIFAR-10, the official python version (Krizhevsky 2009)."""

from __future__ import annotations

import pickle

import numpy as np
from omegaconf import DictConfig

from benchmark.data.files import existing_path, malformed
from benchmark.data.pool import RawDataset, register_loader


@register_loader("cifar10")
def _cifar10(cfg: DictConfig) -> RawDataset:
    """The official CIFAR-10 python version: the ``cifar-10-batches-py`` folder of pickles."""
    folder = existing_path(cfg, "the cifar-10-batches-py folder (data_batch_1..5, test_batch)")
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise malformed(cfg, f"missing {missing}")
    xs, ys = [], []
    for name in names:
        try:
            with open(folder / name, "rb") as handle:
                batch = pickle.load(handle, encoding="bytes")
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[b"labels"]))
        except Exception as exc:
            raise malformed(cfg, f"{name}: {type(exc).__name__}: {exc}") from None
    return RawDataset(np.concatenate(xs).astype(np.float32) / 255.0, np.concatenate(ys), "image")
