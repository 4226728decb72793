"""NumPy ``.npz`` archives with arrays ``X`` and ``y``."""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig

from benchmark.data.files import existing_path, malformed
from benchmark.data.pool import RawDataset, register_loader
from benchmark.errors import ConfigError


@register_loader("npz")
def _npz(cfg: DictConfig) -> RawDataset:
    """A NumPy ``.npz`` archive with arrays ``X`` (features) and ``y`` (integer labels)."""
    path = existing_path(cfg, "an .npz file with arrays X and y")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"X", "y"} - set(archive.files)
            if missing:
                raise malformed(cfg, f"missing arrays {sorted(missing)}; found {archive.files}")
            x, y = archive["X"], archive["y"]
    except ConfigError:
        raise
    except Exception as exc:  # zip, pickle and format errors all mean the same to the user
        raise malformed(cfg, f"{type(exc).__name__}: {exc}") from None
    kind = "image" if x.ndim == 4 else "tabular"
    return RawDataset(x, y, kind)
