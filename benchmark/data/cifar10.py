"""CIFAR-10, the official python version (Krizhevsky 2009)."""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig

from benchmark.data.files import existing_path, malformed
from benchmark.data.pool import RawDataset, register_loader
from benchmark.data.safe_pickle import load_pickle
from benchmark.errors import ConfigError


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
            batch = load_pickle(folder / name)  # never pickle.load: a batch could run code
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[b"labels"]))
        except ConfigError:
            raise
        except Exception as exc:
            raise malformed(cfg, f"{name}: {type(exc).__name__}: {exc}") from None
    return RawDataset(
        np.concatenate(xs).astype(np.float32) / 255.0, np.concatenate(ys), "image", num_classes=10
    )
