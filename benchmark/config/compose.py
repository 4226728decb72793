"""Composing ``conf/`` as the command line does: the config search path and the compose call."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

import benchmark.config.schema  # noqa: F401  (registers the schema that conf/config.yaml names)


def config_dir() -> str:
    """The folder of the project's Hydra configs.

    In a source checkout (tests, an editable install) it is the checkout's own ``conf/`` beside
    the imported package, even where an editable install of another checkout would also resolve
    ``benchmark.conf``; in an installed wheel it is the package ``benchmark.conf`` (``conf/``
    shipped as package data, see ``setup.py``).
    """
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "conf" / "config.yaml").is_file():
        return str(root / "conf")
    return str(files("benchmark.conf"))


#: The project's Hydra configs (a folder, wherever the package is installed).
CONFIG_DIR = config_dir()


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """``conf/config.yaml`` composed with command-line style ``overrides``, as the CLI does."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """The resolved configuration as plain Python containers."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]
