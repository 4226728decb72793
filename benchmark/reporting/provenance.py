"""The ``mia-bench`` command that reproduces a recorded configuration run.

A run's params are its flattened resolved configuration (:func:`benchmark.tracking.flatten`). The
command is rebuilt from them against the current ``conf/``: the config groups first (``data`` and
``model`` options are named by their ``name`` field, the defenses by the run's ``defense`` tag, in
order), then one ``key=value`` override for every field that differs from what those groups
compose to. The command is *verified* by composing it exactly as the CLI would and comparing the
result with the params; an unverified command is reported as such, never passed off as exact.
``tracking.*`` is left out: a reader reruns into their own store.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchmark.config.compose import CONFIG_DIR, compose_config
from benchmark.config.schema import STORE_SETTINGS
from benchmark.tracking.params import COMPARISON_PARAMS, empty_defense, flat_params, leaves

#: Config groups whose option is named by the option's ``name`` field (``audit`` by ``method``).
NAMED_GROUPS = ("data", "model")
AUDIT_GROUP = "audit"
#: Strings Hydra reads back as the same string without quotes (not a number, bool or null).
_BARE = re.compile(r"[A-Za-z_/][A-Za-z0-9_./-]*$")
_KEYWORDS = {"null", "true", "false", "nan", "inf", "none"}


@dataclass(frozen=True)
class Command:
    """A ``mia-bench`` command line; ``verified`` when it composes to exactly the run's params."""

    overrides: tuple[str, ...]
    verified: bool

    def __str__(self) -> str:
        return shlex.join(["mia-bench", *self.overrides])


STORE_KEYS = frozenset(f"training.{name}" for name in STORE_SETTINGS)


def _science(params: Mapping[str, str]) -> dict[str, str]:
    # The comparison params repeat what the configuration says; they are no override, nor is a
    # defense without parameters (its name is in the defense tag; older runs logged it as {}).
    # Without a canary audit the audit.* keys say nothing (runs before audits existed lack them).
    # The model store's settings never change a result: tags, not params (like tracking.*).
    no_audit = str(params.get("audit.method", "none")) == "none"
    return {
        k: v
        for k, v in params.items()
        if not k.startswith(("tracking.", "hydra."))
        and k not in COMPARISON_PARAMS
        and k not in STORE_KEYS
        and not (no_audit and k.startswith("audit."))
        and not empty_defense(k, v)
    }


def _compose(overrides: list[str]) -> dict[str, Any] | None:
    """The resolved config a CLI run with ``overrides`` would use; None if it does not compose."""
    return _compose_cached(tuple(overrides))


@functools.lru_cache(maxsize=256)
def _compose_cached(overrides: tuple[str, ...]) -> dict[str, Any] | None:
    try:
        cfg = compose_config(overrides)
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except (HydraException, OmegaConfBaseException, ValueError):
        return None


def hydra_literal(value: Any) -> str:
    """``value`` in Hydra's override grammar (strings quoted, dict keys bare)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(hydra_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_literal(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if _BARE.match(text) and text.lower() not in _KEYWORDS:
        return text
    if '"' not in text:
        return f'"{text}"'
    return "'" + text.replace("'", "\\'") + "'"


def _value(param: str, default: Any) -> str:
    """The override value for a recorded ``param``, typed like the field's ``default``."""
    if isinstance(default, str):
        return hydra_literal(param)
    try:
        return hydra_literal(json.loads(param))
    except json.JSONDecodeError:
        return hydra_literal(param)


def _group_overrides(params: Mapping[str, str], defenses: list[str]) -> list[str]:
    overrides = []
    for group in NAMED_GROUPS:
        name = params.get(f"{group}.name")
        if name and (Path(CONFIG_DIR) / group / f"{name}.yaml").exists():
            overrides.append(f"{group}={name}")
    audit = params.get(f"{AUDIT_GROUP}.method")
    if audit and audit != "none" and (Path(CONFIG_DIR) / AUDIT_GROUP / f"{audit}.yaml").exists():
        overrides.append(f"{AUDIT_GROUP}={audit}")
    if defenses:
        names = ",".join(defenses)
        overrides.append(f"defense={names}" if len(defenses) == 1 else f"defense=[{names}]")
    return overrides


def _deleted(composed: Mapping[str, str], wanted: Mapping[str, str]) -> list[str]:
    """The nodes to delete: for each composed key the run lacks, its shortest prefix that holds
    nothing the run has (``~attacks.suite.rmia``, not each of its options, which would
    leave the attack in the suite with its defaults)."""

    def only_missing(prefix: str) -> bool:
        inside = prefix + "."
        return not any(key == prefix or key.startswith(inside) for key in wanted)

    deleted: list[str] = []
    for key in (k for k in composed if k not in wanted):
        parts = key.split(".")
        prefixes = (".".join(parts[:n]) for n in range(1, len(parts) + 1))
        # None: an empty node (``{}``) the run filled in, which its ``+`` fields restore
        prefix = next((p for p in prefixes if only_missing(p)), None)
        if prefix is not None and prefix not in deleted:
            deleted.append(prefix)
    return deleted


def reproduce_command(params: Mapping[str, str], tags: Mapping[str, str]) -> Command:
    """The ``mia-bench`` command that reproduces the run with these params and tags."""
    wanted = _science(params)
    defenses = [d for d in tags.get("defense", "").split("+") if d]
    groups = _group_overrides(wanted, defenses)
    base = _compose(groups)
    if base is None:
        return Command(tuple(groups), verified=False)
    typed = leaves(base)
    composed = _science(flat_params(base))
    fields = []
    for key, param in wanted.items():
        if key not in composed:
            fields.append(f"+{key}={_value(param, None)}")
        elif composed[key] != param:
            fields.append(f"{key}={_value(param, typed.get(key))}")
    fields += [f"~{key}" for key in _deleted(composed, wanted)]
    if "seed" in wanted and not any(f.startswith("seed=") for f in fields):
        fields.append(f"seed={wanted['seed']}")  # always explicit: it is what reruns vary
    overrides = [*groups, *sorted(fields, key=lambda f: f.lstrip("+~"))]
    rebuilt = _compose(overrides)
    verified = rebuilt is not None and _science(flat_params(rebuilt)) == wanted
    return Command(tuple(overrides), verified=verified)
