"""The defense interface: a training-time hook and a release-time hook.

A defense changes how the models are trained (:meth:`Defense.recipe`) and/or what the deployed
API returns for a query (:meth:`Defense.release`). Several defenses compose in one configuration
(``defense=[dpsgd,topk]``): recipe hooks apply in order, then release hooks in order
(:class:`benchmark.release.api.Release`, the black box the attacker queries).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from benchmark.errors import ConfigError
from benchmark.registry import Registry, build_params
from benchmark.training.recipe import Recipe


@dataclass
class NoParams:
    """A defense without parameters."""


class Defense:
    """Base class: override :meth:`recipe` and/or :meth:`release`, declare ``Params``."""

    name: ClassVar[str]
    Params: ClassVar[type] = NoParams
    #: What :meth:`release` leaves of the probability vector (see ``RELEASE_KINDS``).
    release_kind: ClassVar[str] = "probabilities"
    #: The family reports group this defense under (``none``, ``regularisation``,
    #: ``truncation``, ``dpsgd``, ``other``).
    family: ClassVar[str] = "other"

    def __init__(self, params: Any) -> None:
        self.params = params

    def check(self, n_train: int, num_classes: int) -> None:
        """Refuse parameters that cannot apply to this data; raise ConfigError."""

    def recipe(self, base: Recipe) -> Recipe:
        """The training recipe with this defense's training-time changes."""
        return base

    def release(self, probabilities: np.ndarray) -> np.ndarray:
        """What the API returns, given the model's softmax probabilities ``[n, C]``."""
        return probabilities


DEFENSES: Registry[type[Defense]] = Registry("defense", "defense")
register_defense = DEFENSES.register


def build_defense(name: str, params: Mapping[str, Any] | None) -> Defense:
    """Instantiate defense ``name``, its parameters checked against its ``Params`` dataclass."""
    cls = DEFENSES.lookup(name)
    return cls(build_params(cls.Params, params, f"defense.{name}"))


def build_defenses(selection: Mapping[str, Any]) -> list[Defense]:
    """The defenses of one configuration, in the order they were selected.

    Hydra composes each option of a group once: ``defense=[topk,topk]`` is ``defense=topk``.
    """
    defenses = [build_defense(name, params) for name, params in selection.items()]
    _check_release_order(defenses)
    return defenses


def _check_release_order(defenses: Sequence[Defense]) -> None:
    """Refuse a release hook after a label-only release: it would act on a one-hot vector."""
    for i, first in enumerate(defenses):
        later = [d.name for d in defenses[i + 1 :] if type(d).release is not Defense.release]
        if first.release_kind == "label" and later:
            raise ConfigError(
                f"defense={first.name} releases only the label, so {later[0]} after it would "
                f"transform a one-hot vector: put {first.name} last or drop {later[0]}"
            )


def apply_recipes(defenses: Sequence[Defense], base: Recipe) -> Recipe:
    for defense in defenses:
        base = defense.recipe(base)
    return base
