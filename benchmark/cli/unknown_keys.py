"""Refusing overrides of keys that nothing reads, with the nearest real key.

Hydra refuses ``target_epsilon=1`` (no such key) with "To append to your config use
+target_epsilon=1"; following that advice adds a key that nothing reads, and the run goes ahead
with the default (ε=8). Here, an unknown key is refused with the nearest key of the composed
config (``did you mean defense.dpsgd.target_epsilon=1?``), and so is an appended key
(``+key=value``) where nothing would read it: under a node of the schema
(:class:`benchmark.config.schema.Config`), whose fields are fixed. Under a free node (``defense``,
``attacks.suite``) a new key selects or configures a plug-in, whose own parameter check refuses
what it does not know, and so does a node with a ``_target_`` (your own model, data loader or
training loop, whose keyword arguments are yours to choose).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from dataclasses import is_dataclass

from omegaconf import DictConfig, ListConfig, OmegaConf

from benchmark.cli.hydra_internals import Line
from benchmark.errors import ConfigError


def leaf_keys(cfg: DictConfig, prefix: str = "") -> Iterator[str]:
    """The dotted keys of every value of ``cfg`` (a list counts as one value)."""
    for key in cfg:
        node = cfg._get_node(key)
        path = f"{prefix}{key}"
        if isinstance(node, DictConfig) and not node._is_none() and not node._is_missing():
            yield from leaf_keys(node, f"{path}.")
        else:
            yield path


def nearest_key(key: str, keys: Sequence[str]) -> str | None:
    """The key of ``keys`` that ``key`` most likely means, or None.

    A key given without its section (``target_epsilon``, ``k``) means the key that ends with it;
    otherwise the closest spelling (difflib), of the whole key or of its last part.
    """
    ending = [k for k in keys if k.endswith(f".{key}")]
    if ending:
        return (difflib.get_close_matches(key, ending, n=1, cutoff=0.0) or ending)[0]
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.75)
    if close:
        return close[0]
    last = key.rsplit(".", 1)[-1]
    by_last: dict[str, str] = {}
    for k in keys:
        by_last.setdefault(k.rsplit(".", 1)[-1], k)
    close = difflib.get_close_matches(last, list(by_last), n=1, cutoff=0.8)
    return by_last[close[0]] if close else None


def unknown_key_message(cfg: DictConfig, line: Line) -> str:
    """The refusal of ``line``, whose key is not in ``cfg`` (the job's composed config files)."""
    guess = nearest_key(line.key, list(leaf_keys(cfg)))
    hint = (
        f"did you mean {guess}={line.value}?" if guess else "see every key with mia-bench --cfg job"
    )
    if line.adds:
        return f"nothing reads the appended key {line.key} ({line.text}): {hint}"
    return f"no key {line.key} in the configuration ({line.text}): {hint}"


def _owner(cfg: DictConfig, key: str) -> DictConfig | None:
    """The deepest existing node of ``cfg`` on the path to ``key`` (None when ``key`` exists)."""
    node: DictConfig = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return node if isinstance(node, DictConfig) else None
        child = node._get_node(part)
        if not isinstance(child, DictConfig | ListConfig):
            return None
        node = child  # type: ignore[assignment]
    return None


def check_appended(cfg: DictConfig, lines: Sequence[Line]) -> None:
    """Refuse each ``+key=value`` of ``lines`` that adds a key to a fixed node of the schema."""
    # Nodes given a ``_target_`` on this command line (the config files may not set one).
    targeted = {line.key.rsplit(".", 1)[0] for line in lines if line.key.endswith("._target_")}
    for line in lines:
        if not line.adds:
            continue
        owner = _owner(cfg, line.key)
        if line.key.rsplit(".", 1)[0] in targeted or (
            owner is not None and owner.get("_target_") is not None
        ):
            continue  # your own model / loader / loop: its keyword arguments are yours
        if owner is not None and is_dataclass(OmegaConf.get_type(owner)):
            raise ConfigError(unknown_key_message(cfg, line))
