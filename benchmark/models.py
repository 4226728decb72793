"""The model zoo: small networks that a CPU trains by the dozen.

Normalisation layers are GroupNorm, never BatchNorm: BatchNorm mixes examples within a batch,
which breaks the per-sample gradients that DP-SGD (Opacus) needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import prod

from torch import nn

from benchmark.errors import ConfigError

ModelBuilder = Callable[..., nn.Module]
MODELS: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    def decorate(fn: ModelBuilder) -> ModelBuilder:
        MODELS[name] = fn
        return fn

    return decorate


@register_model("mlp")
def mlp(
    input_shape: Sequence[int],
    num_classes: int,
    hidden: Sequence[int] = (128,),
    dropout: float = 0.0,
    **_: object,
) -> nn.Module:
    """A fully connected network with ReLU activations; images are flattened."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = prod(input_shape)
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


@register_model("logreg")
def logreg(input_shape: Sequence[int], num_classes: int, **_: object) -> nn.Module:
    """Multinomial logistic regression."""
    return nn.Sequential(nn.Flatten(), nn.Linear(prod(input_shape), num_classes))


@register_model("cnn")
def cnn(
    input_shape: Sequence[int],
    num_classes: int,
    channels: Sequence[int] = (16, 32),
    dropout: float = 0.0,
    **_: object,
) -> nn.Module:
    """Conv-GroupNorm-ReLU blocks with 2x2 max pooling, global average pooling, a linear head."""
    if len(input_shape) != 3:
        raise ConfigError(
            f"model=cnn needs image data of shape [C, H, W] (got {tuple(input_shape)}): "
            "use model=mlp for tabular data"
        )
    layers: list[nn.Module] = []
    width = input_shape[0]
    for out in channels:
        groups = 4 if out % 4 == 0 else 1
        layers += [nn.Conv2d(width, out, 3, padding=1), nn.GroupNorm(groups, out), nn.ReLU()]
        layers.append(nn.MaxPool2d(2, ceil_mode=True))
        width = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def build_model(
    name: str, input_shape: Sequence[int], num_classes: int, **options: object
) -> nn.Module:
    if name not in MODELS:
        raise ConfigError(f"unknown model model.name={name}: choose one of {sorted(MODELS)}")
    return MODELS[name](input_shape, num_classes, **options)
