"""The defense interface: a training-time hook and a release-time hook.

A defense changes how the models are trained (:meth:`Defense.recipe`) and/or what the deployed
API returns for a query (:meth:`Defense.release`). Several defenses compose in one configuration
(``defense=[dpsgd,topk]``): recipe hooks apply in order, then release hooks in order.
:class:`Release` is the black box the attacker queries: it returns only what the defended API
releases, never logits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchmark.errors import ConfigError

if TYPE_CHECKING:
    from benchmark.training import Models, Recipe

#: What an API releases, from most to least informative. Attacks declare what they need.
RELEASE_KINDS = ("probabilities", "truncated", "label")


@dataclass
class NoParams:
    """A defense without parameters."""


class Defense:
    """Base class: override :meth:`recipe` and/or :meth:`release`, declare ``Params``."""

    name: ClassVar[str]
    Params: ClassVar[type] = NoParams
    #: What :meth:`release` leaves of the probability vector (see ``RELEASE_KINDS``).
    release_kind: ClassVar[str] = "probabilities"

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


DEFENSES: dict[str, type[Defense]] = {}


def register_defense(name: str) -> Callable[[type[Defense]], type[Defense]]:
    def decorate(cls: type[Defense]) -> type[Defense]:
        cls.name = name
        DEFENSES[name] = cls
        return cls

    return decorate


def build_defense(name: str, params: Mapping[str, Any] | None) -> Defense:
    """Instantiate defense ``name``, its parameters checked against its ``Params`` dataclass."""
    if name not in DEFENSES:
        raise ConfigError(f"unknown defense '{name}': choose from {sorted(DEFENSES)}")
    cls = DEFENSES[name]
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls.Params), params or {})
    except OmegaConfBaseException as exc:
        detail = str(exc).splitlines()[0]
        raise ConfigError(f"defense.{name}: {detail}") from None
    return cls(OmegaConf.to_object(merged))


def build_defenses(selection: Mapping[str, Any]) -> list[Defense]:
    """The defenses of one configuration, in the order they were selected."""
    return [build_defense(name, params) for name, params in selection.items()]


def apply_recipes(defenses: Sequence[Defense], base: Recipe) -> Recipe:
    for defense in defenses:
        base = defense.recipe(base)
    return base


class Release:
    """The defended API: softmax of the model's logits, then each defense's release hook."""

    def __init__(self, defenses: Sequence[Defense] = ()) -> None:
        self.defenses = list(defenses)
        kinds = [RELEASE_KINDS.index(d.release_kind) for d in self.defenses]
        self.kind = RELEASE_KINDS[max(kinds, default=0)]

    def __call__(self, probabilities: np.ndarray) -> np.ndarray:
        for defense in self.defenses:
            probabilities = defense.release(probabilities)
        return probabilities.astype(np.float32, copy=False)

    def query(self, models: Models, k: int, x: np.ndarray) -> np.ndarray:
        """What the API serving model ``k`` returns for the inputs ``x``: float32 ``[n, C]``."""
        probabilities = torch.softmax(models.logits(k, x).double(), dim=1).numpy()
        return self(probabilities)
