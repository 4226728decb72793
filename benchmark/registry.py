"""One registry for every pluggable kind: attacks, defenses, models, datasets and engines.

A :class:`Registry` maps a config name to the object that implements it. Registering a name twice
is refused (two plug-ins silently replacing each other is a bug that only shows as wrong numbers),
and looking up an unknown name raises :class:`~benchmark.errors.ConfigError` with the config key
to fix and the names that exist.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import is_dataclass
from typing import Any, Generic, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchmark.errors import ConfigError

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Config name -> implementation, for one kind of plug-in.

    ``kind`` names what is registered (``"defense"``) and ``key`` the config key that selects one
    (``"defense"``, ``"attacks.suite"``), for error messages.
    """

    def __init__(self, kind: str, key: str) -> None:
        self.kind, self.key = kind, key
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name``; refuse a name that is already taken."""
        if name in self._entries and self._entries[name] is not entry:
            raise ValueError(
                f"two {self.kind}s are registered as '{name}' "
                f"({_where(self._entries[name])} and {_where(entry)}): rename one of them"
            )
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`; a class gets ``name`` as its ``name`` attribute."""

        def decorate(entry: T) -> T:
            if isinstance(entry, type):
                entry.name = name  # type: ignore[attr-defined]
            return self.add(name, entry)

        return decorate

    def lookup(self, name: str) -> T:
        """The entry registered as ``name``; ConfigError naming the config key when unknown."""
        if name not in self._entries:
            raise ConfigError(
                f"unknown {self.kind} {self.key}={name}: choose one of {sorted(self)}"
            )
        return self._entries[name]

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @contextmanager
    def temporarily(self, name: str, entry: T) -> Iterator[T]:
        """Register ``entry`` as ``name`` for the ``with`` block (a test's own plug-in)."""
        self.add(name, entry)
        try:
            yield entry
        finally:
            del self._entries[name]


def _where(entry: object) -> str:
    return f"{getattr(entry, '__module__', '?')}.{getattr(entry, '__qualname__', entry)}"


#: Checked parameters by (dataclass, values as JSON): a sweep's preflight checks the same attack
#: suite for every job, and OmegaConf's structured merge costs milliseconds a plug-in.
_CHECKED: dict[tuple[type, str], Any] = {}


def _cache_key(params_type: type, values: Mapping[str, Any] | None) -> tuple[type, str] | None:
    """The cache key of plain ``values`` (None when they hold interpolations or odd types)."""
    try:
        plain = OmegaConf.to_container(values) if OmegaConf.is_config(values) else values
        text = json.dumps(plain or {}, sort_keys=True)
    except (TypeError, ValueError, OmegaConfBaseException):
        return None
    return None if "${" in text else (params_type, text)


def build_params(params_type: type, values: Mapping[str, Any] | None, key: str) -> Any:
    """``values`` checked against the dataclass ``params_type``; ConfigError names ``key``."""
    assert is_dataclass(params_type), params_type
    cache_key = _cache_key(params_type, values)
    if cache_key in _CHECKED:
        return copy.deepcopy(_CHECKED[cache_key])  # each plug-in owns its parameters
    try:
        merged = OmegaConf.merge(OmegaConf.structured(params_type), values or {})
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{key}: {str(exc).splitlines()[0]}") from None
    params = OmegaConf.to_object(merged)
    if cache_key is not None:
        _CHECKED[cache_key] = copy.deepcopy(params)
    return params
