"""A multilayer perceptron: the default model."""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

from torch import nn

from benchmark.models.base import check_dropout, check_widths, register_model


@register_model("mlp")
def mlp(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    hidden: Sequence[int],
    dropout: float,
    **_: object,
) -> nn.Module:
    """A fully connected network with ReLU activations; inputs of any shape are flattened."""
    check_widths("model.hidden", hidden)
    check_dropout(dropout)
    layers: list[nn.Module] = [nn.Flatten()]
    width = prod(input_shape)
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)
