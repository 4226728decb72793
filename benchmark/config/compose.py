"""Composing ``conf/`` as the command line does: the config search path and the compose call."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

import benchmark.config.schema  # noqa: F401  (registers the schema that conf/config.yaml names)

#: The project's Hydra configs (the layout is a source checkout, installed editable).
CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """``conf/config.yaml`` composed with command-line style ``overrides``, as the CLI does."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """The resolved configuration as plain Python containers."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]
