"""The attacker's view and the attack interface.

An attack scores one target model at a time. It receives an :class:`AttackerView` built by
:func:`attacker_view`, which holds the target's released outputs and the *shadow* models' outputs
and membership, with the target's own membership row removed: the hidden row is absent from the
type, not hidden by convention. Scores are higher for points judged more likely members.

**Balanced shadow groups.** In the protocol every pool point is a member of exactly ``K/2`` models,
so the number of a point's IN shadows is ``K/2 - M[target, i]``: the count itself reveals the
target's membership. Even a per-point mean leaks it in a subtle way (a mean over fewer samples is
noisier, and a plug-in likelihood ratio rewards the better-estimated side). Attacks therefore read
shadow membership through :attr:`AttackerView.in_shadows` / :attr:`AttackerView.out_shadows`, which
keep, for every point, the same number ``c_i = min(n_in, n_out)`` of IN and of OUT shadows, chosen
at random. The shadow data an attack sees for a point then has the same distribution whether or not
the target trained on it (``c_i`` is symmetric in the two groups), so no attack can profit from
the protocol's structure; ``tests/attacks/test_attack_leakage.py`` checks this for every attack.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from hashlib import blake2b
from typing import Any, ClassVar

import numpy as np

from benchmark.registry import Registry, build_params
from benchmark.release.kinds import RELEASE_KINDS
from benchmark.signals.arrays import Signals

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
    #: ``"image"`` ([N, C, H, W] features) or ``"tabular"``; None when unknown.
    pool_kind: str | None = None
    #: The run's perturbed copies of the pool, shared by all its attacks (:class:`PoolCopies`);
    #: None: each attack keeps its own.
    pool_copies: PoolCopies | None = None

    @property
    def n_shadows(self) -> int:
        return self.shadow_outputs.shape[0]

    @property
    def num_classes(self) -> int:
        return self.target_outputs.shape[1]

    @cached_property
    def _balanced(self) -> tuple[np.ndarray, np.ndarray]:
        return balanced_groups(self.shadow_membership)

    @property
    def in_shadows(self) -> np.ndarray:
        """bool ``[S, N]``: the IN shadows an attack may use, ``c_i`` per point (see module doc)."""
        return self._balanced[0]

    @property
    def out_shadows(self) -> np.ndarray:
        """bool ``[S, N]``: the OUT shadows an attack may use, as many per point as IN ones."""
        return self._balanced[1]


def balanced_groups(membership: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """IN and OUT masks ``[S, N]`` keeping ``min(n_in, n_out)`` random shadows of each per point.

    Which shadows are kept depends only on a fixed-seed draw, never on the target, so the view of a
    point is the same for every target that shares its shadows.
    """
    membership = np.asarray(membership, dtype=bool)
    keep = np.minimum(membership.sum(axis=0), (~membership).sum(axis=0))
    keys = np.random.default_rng([seed, 0xBA1]).random(membership.shape)
    masks = []
    for group in (membership, ~membership):
        ranked = np.argsort(np.argsort(np.where(group, keys, np.inf), axis=0), axis=0)
        masks.append(_read_only(group & (ranked < keep)))
    return masks[0], masks[1]


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
    pool_kind: str | None = None,
    shadows: Sequence[int] | None = None,
    pool_copies: PoolCopies | None = None,
) -> AttackerView:
    """The view for attacking model ``target``: every other model is a shadow (leave-one-out).

    ``shadow_signals`` (same membership matrix) replaces the shadow models' outputs, for an
    attacker who trains its own shadows without the defense; ``shadow_query`` queries those.
    ``shadows`` restricts the shadow set to these model indices (e.g. to measure how an attack
    degrades with fewer shadow models); it may not contain ``target``. ``pool_copies``: the
    run's perturbed copies of the pool, shared by its attacks (with ``query``, one cache per run).
    """
    if shadows is None:
        shadows = np.array([j for j in range(signals.membership.shape[0]) if j != target])
    else:
        shadows = np.asarray(shadows, dtype=np.int64)
        if target in shadows:
            raise ValueError(f"the target model {target} cannot be one of its own shadows")
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
        pool_kind=pool_kind,
        pool_copies=pool_copies,
    )


def memoise_query(query: Query) -> Query:
    """``query`` with its answers cached by model and input array.

    Attacks that query perturbed copies of the pool ask every model the same question once per
    target it shadows; the cache answers the repeats. It recognises a question by the identity of
    the input array (the cache keeps the array alive, so the identity cannot be reused), which
    costs nothing, unlike hashing megabytes per call: an attack asks again by passing the *same*
    array (see :meth:`Attack.perturbed_pool`). Perturbations must be drawn from a fixed seed,
    never from the target, which also keeps runs reproducible. One cache serves a whole run:
    with the run's :class:`PoolCopies`, two attacks that query the same copies (``label_only``
    and ``label_only_calibrated``) ask every model once between them.
    """
    cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def cached(k: int, x: np.ndarray) -> np.ndarray:
        key = (int(k), id(x))
        if key not in cache or cache[key][0] is not x:
            cache[key] = (x, _read_only(query(k, x)))
        return cache[key][1]

    return cached


class PoolCopies:
    """Perturbed copies of the pool, each built once and handed out as the *same* array.

    Attacks that query the black box on perturbed copies (label-only, LiRA's augmentations) ask
    for them by a key that names everything the copies depend on besides the pool (the attack
    family and its parameters, :meth:`Attack.perturbed_pool`), so two attacks with the same
    perturbation parameters share one array, and with it the answers :func:`memoise_query`
    caches by array identity. The copies are drawn from a fixed seed, so sharing them changes no
    draw. A run keeps one store for all its attacks and targets; copies of another pool (other
    features) are built anew.
    """

    def __init__(self) -> None:
        self._made: dict[Hashable, tuple[bytes, np.ndarray]] = {}

    def get(
        self, features: np.ndarray, key: Hashable, make: Callable[[], np.ndarray]
    ) -> np.ndarray:
        """The copies named ``key`` of ``features``, built by ``make()`` the first time."""
        digest = blake2b(np.ascontiguousarray(features).tobytes(), digest_size=16).digest()
        digest += str(features.shape).encode()
        made = self._made.get(key)
        if made is None or made[0] != digest:
            made = self._made[key] = (digest, make())
        return made[1]


@dataclass
class NoParams:
    """An attack without hyperparameters."""


class Attack(ABC):
    """Base class. Subclasses set ``needs`` and implement :meth:`score`."""

    name: ClassVar[str]
    Params: ClassVar[type] = NoParams
    #: The least informative release this attack works on (see ``RELEASE_KINDS``).
    needs: ClassVar[str] = "truncated"
    #: The fewest models (target included) the attack needs.
    min_models: ClassVar[int] = 2
    #: Whether the attack needs IN and OUT shadows of a point (``in_shadows`` not all empty).
    needs_shadow_pairs: ClassVar[bool] = False

    def __init__(self, params: Any) -> None:
        self.params = params
        self._own_copies = PoolCopies()  # for views without the run's store

    def not_applicable(self, view: AttackerView) -> str | None:
        """Why this attack cannot run on ``view``, or None when it can."""
        if RELEASE_KINDS.index(view.release_kind) > RELEASE_KINDS.index(self.needs):
            return f"needs a '{self.needs}' release; the API releases only '{view.release_kind}'"
        if view.n_shadows + 1 < self.min_models:
            return f"needs protocol.n_models >= {self.min_models}"
        if self.needs_shadow_pairs and not view.in_shadows.any():
            return (
                "no pool point has both an IN and an OUT shadow model: use protocol.n_models >= 4"
            )
        return None

    @abstractmethod
    def score(self, view: AttackerView) -> np.ndarray:
        """Membership scores ``[N]`` for the target's pool points; higher means member."""

    def perturbed_pool(
        self, view: AttackerView, family: str, make: Callable[[], np.ndarray]
    ) -> np.ndarray:
        """The perturbed copies of ``view.features`` this attack queries, built once by ``make()``.

        Every target's view holds the same pool, so the copies, and with them the answers cached
        by :func:`memoise_query`, are shared by all targets; through the view's
        :class:`PoolCopies`, also by every attack of the run of the same ``family`` (the kind of
        copies ``make`` builds) with the same parameters. ``make`` must depend only on the
        features, the pool kind and the attack's parameters.
        """
        store = view.pool_copies if view.pool_copies is not None else self._own_copies
        key = (family, view.pool_kind, repr(self.params))  # every parameter, by value
        return store.get(view.features, key, make)


ATTACKS: Registry[type[Attack]] = Registry("attack", "attacks.suite")
register_attack = ATTACKS.register


def build_attack(name: str, params: Mapping[str, Any] | None) -> Attack:
    cls = ATTACKS.lookup(name)
    return cls(build_params(cls.Params, params, f"attacks.suite.{name}"))


def build_suite(suite: Mapping[str, Any]) -> list[Attack]:
    """The attacks named in ``attacks.suite``, in order, their parameters checked."""
    return [build_attack(name, params) for name, params in suite.items()]
