"""Structured configuration: typed dataclasses registered in Hydra's ConfigStore.

Hydra merges the YAML files under ``conf/`` into :class:`Config`, so a value of the wrong type or
an unknown key is refused before anything runs. Values whose bounds depend on each other (an odd
``protocol.n_models``, a delta above ``1/N``) are checked by :func:`validate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from benchmark.errors import ConfigError

#: The project's Hydra configs (the layout is a source checkout, installed editable).
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@dataclass
class DataConfig:
    """Where the pool and test points come from (see :mod:`benchmark.data`)."""

    name: str = MISSING
    #: File or folder for the local-file loaders (npz, csv, cifar10, purchase100, texas100).
    path: str | None = None
    #: Name of the label column (csv loader only).
    label_column: str = "label"
    #: Fraction of the dataset held out as the test set (utility only, never attacked).
    test_fraction: float = 0.2
    #: Use at most this many points of the dataset (all when null); the size of `synthetic`.
    n_samples: int | None = None
    #: `synthetic` only: number of binary features, classes, and the bit-flip noise.
    n_features: int = 100
    n_classes: int = 20
    flip_prob: float = 0.1


@dataclass
class ModelConfig:
    """Architecture of every model in the ensemble (see :mod:`benchmark.models`)."""

    name: str = MISSING
    hidden: list[int] = field(default_factory=lambda: [128])
    channels: list[int] = field(default_factory=lambda: [16, 32])
    dropout: float = 0.0


@dataclass
class TrainingConfig:
    """The base training recipe, before any defense changes it (see :mod:`benchmark.training`)."""

    engine: str = "ensemble"
    device: str = "auto"
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    epochs: int = 30
    batch_size: int = 64
    weight_decay: float = 0.0


@dataclass
class ProtocolConfig:
    """The evaluation protocol of DESIGN.md section 1 (see :mod:`benchmark.protocol`)."""

    n_models: int = 16
    n_targets: int | None = None
    canaries: int = 0


@dataclass
class AttackerConfig:
    #: Kerckhoffs: shadow models are trained with the target's defense (default) or without it.
    knows_defense: bool = True


@dataclass
class AttacksConfig:
    """The fixed attack suite: a version tagged on every run and each attack's parameters."""

    version: str = MISSING
    suite: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: str = "sqlite:///results/mlflow.db"
    artifact_location: str = "results/mlartifacts"
    experiment: str = "mia-bench"
    #: Sweeps only: a relaunched sweep skips configurations that already finished under its parent.
    resume: bool = True


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    attacker: AttackerConfig = field(default_factory=AttackerConfig)
    #: The defenses of this configuration, by name, each with its parameters.
    defense: dict[str, Any] = field(default_factory=dict)
    attacks: AttacksConfig = field(default_factory=AttacksConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    seed: int = 0


def register_configs() -> None:
    """Register the schema so that ``conf/config.yaml`` can name it in its defaults list."""
    ConfigStore.instance().store(name="schema", node=Config)


# Importing this module is enough to compose ``conf/`` (the CLI, reports, tests all do).
register_configs()


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """``conf/config.yaml`` composed with command-line style ``overrides``, as the CLI does."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def validate(cfg: DictConfig) -> None:
    """Check the bounds that types alone cannot express; raise :class:`ConfigError` on the first."""
    p, t, d = cfg.protocol, cfg.training, cfg.data
    _require(
        p.n_models >= 2 and p.n_models % 2 == 0,
        f"protocol.n_models must be even and at least 2 (got {p.n_models}): every pool point is a "
        f"member of exactly half the models; try protocol.n_models={max(2, p.n_models + 1)}",
    )
    _require(
        p.n_targets is None or 1 <= p.n_targets <= p.n_models,
        f"protocol.n_targets must be between 1 and protocol.n_models={p.n_models} "
        f"(got {p.n_targets}); set protocol.n_targets=null to attack every model",
    )
    _require(p.canaries >= 0, f"protocol.canaries must be >= 0 (got {p.canaries})")
    _require(
        0.0 < d.test_fraction < 1.0, f"data.test_fraction must be in (0, 1), got {d.test_fraction}"
    )
    _require(
        d.n_samples is None or d.n_samples >= 4, f"data.n_samples must be >= 4, got {d.n_samples}"
    )
    _require(t.lr > 0, f"training.lr must be positive (got {t.lr})")
    _require(t.epochs >= 1, f"training.epochs must be >= 1 (got {t.epochs})")
    _require(t.batch_size >= 1, f"training.batch_size must be >= 1 (got {t.batch_size})")
    _require(t.weight_decay >= 0, f"training.weight_decay must be >= 0 (got {t.weight_decay})")
    _require(
        t.optimizer in ("sgd", "adam"),
        f"training.optimizer must be 'sgd' or 'adam' (got '{t.optimizer}')",
    )
    _require(
        t.device in ("auto", "cpu", "cuda"),
        f"training.device must be auto, cpu or cuda (got '{t.device}')",
    )
    _require(cfg.seed >= 0, f"seed must be a non-negative integer (got {cfg.seed})")
    _require(len(cfg.defense) > 0, "no defense selected: use defense=none for an undefended model")


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """The resolved configuration as plain Python containers."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]
