"""The attacker's view and the attack interface.

An attack scores one target model at a time. It receives an :class:`AttackerView` built by
:func:`attacker_view`, which holds the target's released outputs and the *shadow* models' outputs
and membership, with the target's own membership row removed: the hidden row is absent from the
type, not hidden by convention. Scores are higher for points judged more likely members.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchmark.errors import ConfigError
from benchmark.signals import Signals
from defenses.base import RELEASE_KINDS

#: ``query(k, x)``: what model ``k``'s API releases for inputs ``x``.
Query = Callable[[int, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class AttackerView:
    """Everything an attacker may use against one target model."""

    target_outputs: np.ndarray  # [N, C] released by the target on the pool
    shadow_outputs: np.ndarray  # [S, N, C] released by the shadow models
    shadow_membership: np.ndarray  # bool [S, N]
    labels: np.ndarray  # int [N]
    release_kind: str
    #: Pool features, for attacks that query perturbed inputs (label-only).
    features: np.ndarray | None = None
    query_target: Callable[[np.ndarray], np.ndarray] | None = None
    query_shadow: Query | None = None  # indexed by shadow position 0..S-1

    @property
    def n_shadows(self) -> int:
        return self.shadow_outputs.shape[0]

    @property
    def num_classes(self) -> int:
        return self.target_outputs.shape[1]


def _read_only(array: np.ndarray) -> np.ndarray:
    view = np.asarray(array).view()
    view.setflags(write=False)
    return view


def attacker_view(
    signals: Signals,
    target: int,
    shadow_signals: Signals | None = None,
    features: np.ndarray | None = None,
    query: Query | None = None,
    shadow_query: Query | None = None,
) -> AttackerView:
    """The view for attacking model ``target``: every other model is a shadow (leave-one-out).

    ``shadow_signals`` (same membership matrix) replaces the shadow models' outputs, for an
    attacker who trains its own shadows without the defense; ``shadow_query`` queries those.
    """
    shadows = np.array([j for j in range(signals.membership.shape[0]) if j != target])
    source = shadow_signals if shadow_signals is not None else signals
    shadow_query = shadow_query or query
    return AttackerView(
        target_outputs=_read_only(signals.outputs[target]),
        shadow_outputs=_read_only(source.outputs[shadows]),
        shadow_membership=_read_only(source.membership[shadows]),
        labels=_read_only(signals.labels),
        release_kind=signals.release_kind,
        features=None if features is None else _read_only(features),
        query_target=None if query is None else (lambda x: query(target, x)),
        query_shadow=None if shadow_query is None else (lambda s, x: shadow_query(shadows[s], x)),
    )


@dataclass
class NoParams:
    """An attack without hyperparameters."""


class Attack:
    """Base class. Subclasses set ``needs`` and implement :meth:`score`."""

    name: ClassVar[str]
    Params: ClassVar[type] = NoParams
    #: The least informative release this attack works on (see ``RELEASE_KINDS``).
    needs: ClassVar[str] = "truncated"
    #: The fewest models (target included) the attack needs.
    min_models: ClassVar[int] = 2

    def __init__(self, params: Any) -> None:
        self.params = params

    def not_applicable(self, view: AttackerView) -> str | None:
        """Why this attack cannot run on ``view``, or None when it can."""
        if RELEASE_KINDS.index(view.release_kind) > RELEASE_KINDS.index(self.needs):
            return f"needs a '{self.needs}' release; the API releases only '{view.release_kind}'"
        if view.n_shadows + 1 < self.min_models:
            return f"needs protocol.n_models >= {self.min_models}"
        return None

    def score(self, view: AttackerView) -> np.ndarray:
        """Membership scores ``[N]`` for the target's pool points; higher means member."""
        raise NotImplementedError


ATTACKS: dict[str, type[Attack]] = {}


def register_attack(name: str) -> Callable[[type[Attack]], type[Attack]]:
    def decorate(cls: type[Attack]) -> type[Attack]:
        cls.name = name
        ATTACKS[name] = cls
        return cls

    return decorate


def build_attack(name: str, params: Mapping[str, Any] | None) -> Attack:
    if name not in ATTACKS:
        raise ConfigError(
            f"unknown attack '{name}' in attacks.suite: choose from {sorted(ATTACKS)}"
        )
    cls = ATTACKS[name]
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls.Params), params or {})
    except OmegaConfBaseException as exc:
        raise ConfigError(f"attacks.suite.{name}: {str(exc).splitlines()[0]}") from None
    return cls(OmegaConf.to_object(merged))


def build_suite(suite: Mapping[str, Any]) -> list[Attack]:
    """The attacks named in ``attacks.suite``, in order, their parameters checked."""
    return [build_attack(name, params) for name, params in suite.items()]
