"""Helpers of the local-file loaders: a path that must exist, a format error that names it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from benchmark.errors import ConfigError


def existing_path(cfg: DictConfig, what: str) -> Path:
    if not cfg.path:
        raise ConfigError(f"data={cfg.name} reads a local file: set data.path to {what}")
    path = Path(cfg.path).expanduser()
    if not path.exists():
        raise ConfigError(f"data.path={cfg.path} does not exist: set data.path to {what}")
    return path


def malformed(cfg: DictConfig, detail: str) -> ConfigError:
    return ConfigError(f"data.path={cfg.path} is not a valid {cfg.name} file ({detail})")


def comma_separated(path: Path, cfg: DictConfig) -> np.ndarray:
    try:
        return np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
    except ValueError as exc:
        raise malformed(cfg, f"{path.name}: {exc}") from None
