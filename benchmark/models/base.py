"""The model registry: small networks that a CPU trains by the dozen.

A model is a function ``(input_shape, num_classes, **options) -> nn.Module`` registered by name;
its options are the fields of :class:`benchmark.config.schema.ModelConfig` (the one place their
defaults are written). Normalisation layers are GroupNorm, never BatchNorm: BatchNorm mixes
examples within a batch, which breaks the per-sample gradients that DP-SGD (Opacus) needs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from torch import nn

from benchmark.config.schema import ModelConfig
from benchmark.errors import require
from benchmark.registry import Registry

ModelBuilder = Callable[..., nn.Module]
MODELS: Registry[ModelBuilder] = Registry("model", "model")
register_model = MODELS.register


def build_model(
    name: str, input_shape: Sequence[int], num_classes: int, **options: object
) -> nn.Module:
    """Model ``name`` for inputs ``input_shape``; options not given take ModelConfig's defaults."""
    return MODELS.lookup(name)(input_shape, num_classes, **{**MODEL_DEFAULTS, **options})


#: The architecture options' defaults, read from the config schema (their one source of truth).
MODEL_DEFAULTS = {
    spec.name: getattr(ModelConfig(), spec.name)
    for spec in dataclasses.fields(ModelConfig)
    if spec.name != "name"
}


def check_widths(key: str, widths: Sequence[int]) -> None:
    """Refuse a layer of width < 1: a zero-width layer passes nothing on (the model is constant)."""
    require(
        all(w >= 1 for w in widths),
        f"{key} must list layer widths >= 1 (got {list(widths)}); e.g. {key}=[256]",
    )


def check_dropout(dropout: float) -> None:
    """Dropout is a probability of dropping a unit; 1 would drop every unit."""
    require(0 <= dropout < 1, f"model.dropout must be in [0, 1) (got {dropout})")
