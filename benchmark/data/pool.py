"""Datasets: the attacked *pool* and the disjoint *test* set (DESIGN.md section 1).

Every loader returns raw features ``x`` and integer labels ``y``; :func:`load_pool` then splits
them once by seed into pool and test and standardises the features with statistics fitted on the
pool alone. Local-file loaders never download: a missing or malformed file raises
:class:`~benchmark.errors.ConfigError` naming the path and the config key to set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig
from sklearn.model_selection import train_test_split

from benchmark.data.files import malformed
from benchmark.errors import ConfigError
from benchmark.registry import Registry


@dataclass(frozen=True)
class Pool:
    """The points an attacker scores (``x``, ``y``) and the held-out test set for utility."""

    x: np.ndarray  # float32 [N, *shape]
    y: np.ndarray  # int64 [N]
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    name: str
    kind: str  # "tabular" or "image"
    #: int64 [N]: the dataset row (the loader's order, before any split) of each pool point, so
    #: that a user's row numbers can be mapped to pool points (``protocol.target.members``).
    rows: np.ndarray | None = None
    #: int64: the dataset rows of the test points, in the order of ``x_test``.
    test_rows: np.ndarray | None = None
    #: How many rows the loader returned (before ``data.n_samples``).
    n_rows: int = 0

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class RawDataset:
    """What a loader read: features ``x`` (one row per point), labels ``y``, the data kind.

    ``num_classes`` is the dataset's published number of classes (Purchase-100's 100): its labels
    may then skip classes (a subset of the published file). When it is None (a user's npz or CSV),
    the labels must be exactly the integers ``0..C-1``: a gap would silently add classes the
    models predict but never see (labels {0, 1000000} would make a million-class model).
    """

    x: np.ndarray
    y: np.ndarray
    kind: str
    num_classes: int | None = None


Loader = Callable[[DictConfig], RawDataset]
#: The dataset loaders, by ``data=`` name; each reads its files and returns a RawDataset.
LOADERS: Registry[Loader] = Registry("dataset", "data")
register_loader = LOADERS.register


#: Each model trains on half the pool; fewer points than this per model (or than one per class)
#: make a model, and the per-target AUC over its members and non-members, meaningless.
MIN_TRAIN_POINTS = 10
NUMERIC = "biuf"  # NumPy dtype kinds: bool, signed, unsigned, float


def _check(raw: RawDataset, cfg: DictConfig) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(raw.x), np.asarray(raw.y)
    if x.dtype.kind not in NUMERIC:
        raise malformed(cfg, f"features must be numbers, got dtype {x.dtype}")
    if x.ndim < 2:
        raise malformed(
            cfg, f"features must have one row per point, [N, d] or [N, C, H, W]; got {x.shape}"
        )
    x = np.asarray(x, dtype=np.float32)
    if len(x) == 0:
        raise ConfigError(f"data={cfg.name} has no rows: check data.path={cfg.path}")
    if y.ndim != 1 or len(y) != len(x):
        raise malformed(cfg, f"{len(x)} feature rows but labels of shape {y.shape}")
    if x[0].size == 0:
        raise malformed(cfg, "no feature columns: every point needs at least one feature")
    if not np.all(np.isfinite(x)):
        raise malformed(cfg, "features contain NaN or infinite values")
    if y.dtype.kind not in NUMERIC:
        raise malformed(
            cfg, f"labels must be integers 0..C-1, got dtype {y.dtype}: map class names to 0..C-1"
        )
    if not np.all(np.isfinite(y)) or np.any(y != np.round(y)) or y.min() < 0:
        raise malformed(cfg, "labels must be integers 0..C-1")
    return x, _check_classes(y.astype(np.int64), raw.num_classes, cfg)


def _check_classes(y: np.ndarray, num_classes: int | None, cfg: DictConfig) -> np.ndarray:
    classes = np.unique(y)
    if len(classes) < 2:
        raise malformed(
            cfg, f"every label is {classes[0]}: membership inference needs at least two classes"
        )
    if num_classes is not None and classes[-1] >= num_classes:
        raise malformed(cfg, f"labels must be below {num_classes}, found {classes[-1]}")
    if num_classes is None and classes[-1] != len(classes) - 1:
        raise malformed(
            cfg,
            f"labels must be the contiguous integers 0..C-1, found {len(classes)} distinct "
            f"labels up to {classes[-1]}: re-index them, e.g. np.unique(y, return_inverse=True)[1]",
        )
    return y


def load_raw(cfg: DictConfig) -> tuple[np.ndarray, np.ndarray, str]:
    """Load and check the dataset named by ``cfg.name``: features, integer labels, kind."""
    raw = LOADERS.lookup(cfg.name)(cfg)
    x, y = _check(raw, cfg)
    return x, y, raw.kind


def _check_pool_size(n_rows: int, n_pool: int, num_classes: int, cfg: DictConfig) -> None:
    """Each model trains on half the pool: at least MIN_TRAIN_POINTS, and one per class."""
    need = max(MIN_TRAIN_POINTS, num_classes)
    if n_pool // 2 < need:
        raise ConfigError(
            f"data={cfg.name} has {n_rows} rows: its pool of {n_pool} gives each model "
            f"{n_pool // 2} training points, fewer than the {need} needed (at least "
            f"{MIN_TRAIN_POINTS}, and one per class of {num_classes}): use a larger dataset"
            + (" or a larger data.n_samples" if cfg.n_samples is not None else "")
        )


def load_pool(cfg: DictConfig, seed: int) -> Pool:
    """Split the dataset once by ``seed`` into pool and test; standardise on the pool.

    The pool size is made even so that every model trains on exactly half of it.
    """
    x, y, kind = load_raw(cfg)
    rng = np.random.default_rng(seed)
    n_rows, keep = len(y), np.arange(len(y))
    if cfg.n_samples is not None and cfg.n_samples < len(y) and cfg.name != "synthetic":
        keep = np.sort(rng.choice(len(y), size=cfg.n_samples, replace=False))
        x, y = x[keep], y[keep]
    num_classes = int(y.max()) + 1
    if len(y) < 4:
        raise ConfigError(f"data={cfg.name} has {len(y)} rows; at least 4 are needed")
    index = np.arange(len(y))
    pool_idx, test_idx = train_test_split(
        index, test_size=cfg.test_fraction, random_state=seed, shuffle=True
    )
    if len(pool_idx) % 2:
        pool_idx, test_idx = pool_idx[:-1], np.concatenate([test_idx, pool_idx[-1:]])
    _check_pool_size(len(y), len(pool_idx), num_classes, cfg)
    x_pool, x_test = x[pool_idx], x[test_idx]
    axes = (0, 2, 3) if kind == "image" else (0,)
    mean = x_pool.mean(axis=axes, keepdims=True)
    std = x_pool.std(axis=axes, keepdims=True)
    std[std == 0] = 1.0
    return Pool(
        x=((x_pool - mean) / std).astype(np.float32),
        y=y[pool_idx],
        x_test=((x_test - mean) / std).astype(np.float32),
        y_test=y[test_idx],
        num_classes=num_classes,
        name=cfg.name,
        kind=kind,
        rows=keep[pool_idx].astype(np.int64),
        test_rows=keep[test_idx].astype(np.int64),
        n_rows=n_rows,
    )
