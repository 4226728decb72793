"""A synthetic Purchase-100-like task generated from a seed."""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig

from benchmark.data.pool import RawDataset, register_loader
from benchmark.errors import ConfigError


@register_loader("synthetic")
def _synthetic(cfg: DictConfig) -> RawDataset:
    """A Purchase-100-like task: binary features, each class a random prototype with bit flips."""
    n = cfg.n_samples or 2000
    if cfg.n_features < 1 or cfg.n_classes < 2 or not 0.0 <= cfg.flip_prob <= 0.5:
        raise ConfigError(
            "data=synthetic needs data.n_features >= 1, data.n_classes >= 2 and "
            f"0 <= data.flip_prob <= 0.5 (got {cfg.n_features}, {cfg.n_classes}, {cfg.flip_prob})"
        )
    rng = np.random.default_rng(cfg.get("generator_seed", 0))
    prototypes = rng.random((cfg.n_classes, cfg.n_features)) < 0.5
    y = rng.integers(0, cfg.n_classes, size=n)
    flips = rng.random((n, cfg.n_features)) < cfg.flip_prob
    x = (prototypes[y] ^ flips).astype(np.float32)
    return RawDataset(x, y, "tabular", num_classes=cfg.n_classes)
