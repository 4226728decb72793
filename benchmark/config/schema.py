"""Structured configuration: typed dataclasses registered in Hydra's ConfigStore.

Hydra merges the YAML files under ``conf/`` into :class:`Config`, so a value of the wrong type or
an unknown key is refused before anything runs. Values whose bounds depend on each other (an odd
``protocol.n_models``, a delta above ``1/N``) are checked by :func:`validate`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class DataConfig:
    """Where the pool and test points come from (see :mod:`benchmark.data.pool`)."""

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
    #: `data=custom` only: import path of your loader (see :mod:`benchmark.data.custom`); its
    #: keyword arguments are added as `+data.<name>=<value>`.
    _target_: str | None = None


@dataclass
class ModelConfig:
    """Architecture of every model in the ensemble (see :mod:`benchmark.models.base`)."""

    name: str = MISSING
    hidden: list[int] = field(default_factory=lambda: [256])
    channels: list[int] = field(default_factory=lambda: [16, 32])
    dropout: float = 0.0
    #: `model=custom` only: import path of your nn.Module class or factory (see
    #: :mod:`benchmark.models.custom`); its keyword arguments are added as `+model.<name>=<value>`.
    _target_: str | None = None


@dataclass
class TrainingConfig:
    """The base training recipe, before defenses change it (:mod:`benchmark.training.recipe`)."""

    engine: str = "ensemble"
    device: str = "auto"
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    epochs: int = 30
    batch_size: int = 64
    weight_decay: float = 0.0
    #: `training=custom` only: import path of your training loop (see
    #: :mod:`benchmark.training.custom_loop`).
    _target_: str | None = None
    #: Reuse trained models from the model store, and store the ones trained (issue 13); false
    #: trains every model afresh and stores nothing. Never changes a result (a tag, not a param).
    cache: bool = True
    #: The model store's folder (:mod:`benchmark.store`); a path every node sees for shards.
    store: str = "results/models"
    #: ``i/n``: train only models ``i, i+n, ...`` into the store and exit without attacking; the
    #: unsharded job attacks once every shard is stored. null trains (or reuses) all of them.
    shard: str | None = None


#: The ``training`` keys that say where models come from, not how they are trained: they are not
#: recipe fields, not params and not in the config hash (they never change a result).
STORE_SETTINGS = ("cache", "store", "shard")


@dataclass
class TargetConfig:
    """An already-trained model attacked as an extra target; both keys or neither.

    See :mod:`benchmark.experiment.extra_target`.
    """

    #: A ``torch.save(model.state_dict(), path)`` file for the configured ``model``, loaded with
    #: ``torch.load(weights_only=True)``: a file never runs code. null: no extra target.
    checkpoint: str | None = None
    #: The dataset rows the checkpoint trained on (``.npy`` of row numbers or a boolean mask
    #: over the rows, or a text file of row numbers), numbered as the loader returns the rows
    #: (:mod:`benchmark.data.rows`).
    members: str | None = None


@dataclass
class ProtocolConfig:
    """The evaluation protocol of DESIGN.md section 1 (see :mod:`benchmark.protocol.membership`)."""

    n_models: int = 16
    n_targets: int | None = None
    canaries: int = 0
    #: Independent replicates of the whole experiment (new split, membership and model seeds,
    #: derived from ``seed``; replicate 0 is ``seed`` itself): R > 1 takes the interval over
    #: replicates instead of the bootstrap (:mod:`benchmark.experiment.replicates`).
    replicates: int = 1
    target: TargetConfig = field(default_factory=TargetConfig)


@dataclass
class AttackerConfig:
    #: Kerckhoffs: shadow models are trained with the target's defense (default) or without it.
    knows_defense: bool = True


@dataclass
class AttacksConfig:
    """The fixed attack suite: a version tagged on every run and each attack's parameters."""

    version: str = MISSING
    suite: dict[str, Any] = field(default_factory=dict)


#: The store runs go to when neither ``tracking.uri`` nor ``MLFLOW_TRACKING_URI`` says otherwise.
LOCAL_TRACKING_URI = "sqlite:///results/mlflow.db"


def default_tracking_uri() -> str:
    """``tracking.uri``'s default resolved now: ``MLFLOW_TRACKING_URI``, else the local store."""
    return os.environ.get("MLFLOW_TRACKING_URI", LOCAL_TRACKING_URI)


@dataclass
class AuditConfig:
    """An empirical privacy audit of DP-SGD with canaries (:mod:`benchmark.evaluation.dp_audit`).

    ``method`` is set by the ``audit`` group: ``none`` (no canaries, the default), ``whitebox``
    (gradient canaries inside DP-SGD, :mod:`benchmark.training.audit_canaries`) or ``blackbox``
    (crafted input canaries, :mod:`benchmark.training.input_canaries`).
    """

    method: str = MISSING
    #: Canaries per model; each is included with probability 1/2. More canaries give a tighter
    #: bound; white-box: at most the number of parameters of one model.
    canaries: int = 1000
    #: Confidence of every audit bound.
    confidence: float = 0.95


@dataclass
class TrackingConfig:
    """Where and how results are recorded; none of it changes a result (tags, not params)."""

    enabled: bool = True
    #: ``MLFLOW_TRACKING_URI`` when it is set, else the local SQLite store (see
    #: :func:`default_tracking_uri`, the same rule outside Hydra).
    uri: str = "${oc.env:MLFLOW_TRACKING_URI," + LOCAL_TRACKING_URI + "}"
    artifact_location: str = "results/mlartifacts"
    experiment: str = "mia-bench"
    #: Sweeps only: a relaunched sweep skips configurations that already finished under its parent.
    resume: bool = True
    #: Sample CPU, memory (and GPU) into the run with MLflow's own system-metrics monitor.
    system_metrics: bool = False
    #: Where a run goes when the tracker fails midway; ``mia-replay`` uploads it later.
    spool_dir: str = "results/spool"


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
    audit: AuditConfig = field(default_factory=AuditConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    seed: int = 0


def register_configs() -> None:
    """Register the schema so that ``conf/config.yaml`` can name it in its defaults list."""
    ConfigStore.instance().store(name="schema", node=Config)


# Importing this module is enough to compose ``conf/`` (the CLI, reports, tests all do).
register_configs()
