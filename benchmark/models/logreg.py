"""Multinomial logistic regression."""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

from torch import nn

from benchmark.models.base import register_model


@register_model("logreg")
def logreg(input_shape: Sequence[int], num_classes: int, **_: object) -> nn.Module:
    """Multinomial logistic regression."""
    return nn.Sequential(nn.Flatten(), nn.Linear(prod(input_shape), num_classes))
