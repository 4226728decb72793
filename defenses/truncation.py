"""Release-time defenses: the API returns less than the full probability vector.

Convention for attacks: a probability the API does not release is 0. Released probabilities are
not renormalised, so an attacker sees exactly the values the API returns (a rounded or truncated
vector need not sum to 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark.errors import ConfigError
from defenses.base import Defense, register_defense


@register_defense("topk")
class TopK(Defense):
    """Release only the ``k`` largest probabilities; the others are returned as 0."""

    family = "truncation"

    release_kind = "truncated"

    @dataclass
    class Params:
        k: int = 1

    def check(self, n_train: int, num_classes: int) -> None:
        if not 1 <= self.params.k <= num_classes:
            raise ConfigError(
                f"defense.topk.k must be between 1 and the number of classes {num_classes} "
                f"(got {self.params.k})"
            )

    def release(self, probabilities: np.ndarray) -> np.ndarray:
        k = self.params.k
        # A stable sort breaks ties by class index, so exactly k entries survive.
        order = np.argsort(-probabilities, axis=1, kind="stable")
        released = np.zeros_like(probabilities)
        rows = np.arange(len(probabilities))[:, None]
        released[rows, order[:, :k]] = probabilities[rows, order[:, :k]]
        return released


@register_defense("label_only")
class LabelOnly(Defense):
    """Release only the predicted label, as a one-hot vector (ties go to the lowest class index).

    Attacks that need probabilities report "not applicable"; label-only attacks query the API on
    perturbed inputs instead.
    """

    family = "truncation"

    release_kind = "label"

    def release(self, probabilities: np.ndarray) -> np.ndarray:
        released = np.zeros_like(probabilities)
        released[np.arange(len(probabilities)), probabilities.argmax(axis=1)] = 1.0
        return released


@register_defense("rounding")
class Rounding(Defense):
    """Release every probability rounded to ``decimals`` decimal places.

    Rounding is to the nearest multiple of ``10^-decimals``, halves to even (``numpy.round``);
    probabilities below half a unit are released as 0. The vector is not renormalised. Rounding
    can tie the two largest probabilities; the released argmax is then the lower class index,
    which is the utility a client reading the rounded output gets.
    """

    family = "truncation"

    release_kind = "truncated"

    @dataclass
    class Params:
        decimals: int = 2

    def check(self, n_train: int, num_classes: int) -> None:
        if self.params.decimals < 1:
            raise ConfigError(
                f"defense.rounding.decimals must be >= 1 (got {self.params.decimals}); "
                "use defense=label_only to release labels only"
            )

    def release(self, probabilities: np.ndarray) -> np.ndarray:
        return np.round(probabilities.astype(np.float64), self.params.decimals)
