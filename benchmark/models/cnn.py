"""A small convolutional network for image data (GroupNorm: Opacus-compatible)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from benchmark.errors import ConfigError
from benchmark.models.base import check_dropout, check_widths, register_model


@register_model("cnn")
def cnn(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    channels: Sequence[int],
    dropout: float,
    **_: object,
) -> nn.Module:
    """Conv-GroupNorm-ReLU blocks with 2x2 max pooling, global average pooling, a linear head."""
    if len(input_shape) != 3:
        raise ConfigError(
            f"model=cnn needs image data of shape [C, H, W] (got {tuple(input_shape)}): "
            "use model=mlp for tabular data"
        )
    check_widths("model.channels", channels)
    check_dropout(dropout)
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
