"""Your own dataset: ``data=custom data._target_=my_pkg.data.load`` (issue 14).

The loader is any importable callable; the harness calls it with the keyword arguments added as
``+data.<name>=<value>`` and expects the whole dataset back, as ``(features, labels)`` or a mapping
with keys ``x`` and ``y``: numpy arrays or tensors, features ``[N, d]`` (tabular) or
``[N, C, H, W]`` (images), labels integers ``0..C-1`` of shape ``[N]``. The harness then treats it
exactly as a file dataset (:mod:`benchmark.data.pool`): the same shape, label and finiteness
checks, the same split into pool and test by seed, the same standardisation on the pool.

:func:`locate` is also how :mod:`benchmark.models.custom` and
:mod:`benchmark.training.custom_loop` import their ``_target_``: an import that fails is one
ConfigError naming the key to fix, before anything trains.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from hydra.utils import get_object
from omegaconf import DictConfig

from benchmark.config.schema import DataConfig
from benchmark.data.pool import RawDataset, _check, register_loader
from benchmark.errors import ConfigError

#: DataConfig's own fields; every other key of ``data`` is a keyword argument of the loader.
_DATA_FIELDS = frozenset(DataConfig.__dataclass_fields__)


def locate(key: str, target: str | None, what: str) -> Callable[..., Any]:
    """The callable that ``key=target`` names; ConfigError when unset or not importable."""
    if not target:
        raise ConfigError(f"set {key} to the import path of {what} (e.g. {key}=my_pkg.mod.name)")
    hydra_log = logging.getLogger("hydra.utils")
    level = hydra_log.level
    # get_object logs a multi-line error before raising; the one line below says it all.
    hydra_log.setLevel(logging.CRITICAL)
    try:
        found = get_object(target)
    except Exception as exc:  # ImportError, AttributeError, ...: Hydra wraps them all
        cause = exc.__cause__ or exc
        raise ConfigError(
            f"{key}={target} cannot be imported ({type(cause).__name__}: {cause}): "
            f"set {key} to {what} on PYTHONPATH"
        ) from None
    finally:
        hydra_log.setLevel(level)
    if not callable(found):
        raise ConfigError(f"{key}={target} is a {type(found).__name__}, not {what}")
    return found


def call_target(key: str, target: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``; an exception it raises becomes one ConfigError naming ``key``."""
    try:
        return fn(*args, **kwargs)
    except ConfigError:
        raise
    except Exception as exc:
        # hydra.utils.instantiate wraps the factory's own error: report that one.
        cause = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
        if isinstance(cause, ConfigError):
            raise cause from None
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        raise ConfigError(f"{key}={target} raised {type(cause).__name__}: {first}") from None


def _array(value: Any, name: str, target: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    raise ConfigError(
        f"data._target_={target} returned {name} as {type(value).__name__}: "
        "return numpy arrays or torch tensors"
    )


def _unpack(out: Any, target: str) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(out, Mapping) and {"x", "y"} <= set(out):
        x, y = out["x"], out["y"]
    elif isinstance(out, tuple | list) and len(out) == 2:
        x, y = out
    else:
        raise ConfigError(
            f"data._target_={target} returned {type(out).__name__}: return (features, labels) "
            "or a mapping with keys 'x' and 'y'"
        )
    return _array(x, "features", target), _array(y, "labels", target)


@register_loader("custom")
def _custom(cfg: DictConfig) -> RawDataset:
    """Call ``data._target_`` with the extra ``data`` keys; check what it returns (issue 14)."""
    target = cfg.get("_target_")
    load = locate("data._target_", target, "a function returning (features, labels)")
    options = {key: cfg[key] for key in cfg if key not in _DATA_FIELDS}
    x, y = _unpack(call_target("data._target_", target, load, **options), target)
    if x.ndim not in (2, 4):
        raise ConfigError(
            f"data._target_={target} returned features of shape {x.shape}: expected [N, d] "
            "(tabular) or [N, C, H, W] (images)"
        )
    raw = RawDataset(x, y, "image" if x.ndim == 4 else "tabular")
    try:  # the file loaders' checks (shapes, labels, finiteness), worded for a loader
        _check(raw, cfg)
    except ConfigError as exc:
        detail = str(exc).split(" file (", 1)[-1].rstrip(")")
        raise ConfigError(f"data._target_={target} returned invalid data: {detail}") from None
    return raw
