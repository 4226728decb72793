"""Datasets: the attacked *pool* and the disjoint *test* set (DESIGN.md section 1).

Every loader returns raw features ``x`` and integer labels ``y``; :func:`load_pool` then splits
them once by seed into pool and test and standardises the features with statistics fitted on the
pool alone. Local-file loaders never download: a missing or malformed file raises
:class:`~benchmark.errors.ConfigError` naming the path and the config key to set.
"""

from __future__ import annotations

import csv
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from benchmark.errors import ConfigError


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

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class RawDataset:
    x: np.ndarray
    y: np.ndarray
    kind: str


Loader = Callable[[DictConfig], RawDataset]
LOADERS: dict[str, Loader] = {}


def register_loader(name: str) -> Callable[[Loader], Loader]:
    def decorate(fn: Loader) -> Loader:
        LOADERS[name] = fn
        return fn

    return decorate


def _existing_path(cfg: DictConfig, what: str) -> Path:
    if not cfg.path:
        raise ConfigError(f"data={cfg.name} reads a local file: set data.path to {what}")
    path = Path(cfg.path).expanduser()
    if not path.exists():
        raise ConfigError(f"data.path={cfg.path} does not exist: set data.path to {what}")
    return path


def _malformed(cfg: DictConfig, detail: str) -> ConfigError:
    return ConfigError(f"data.path={cfg.path} is not a valid {cfg.name} file ({detail})")


@register_loader("digits")
def _digits(cfg: DictConfig) -> RawDataset:
    """scikit-learn's 8x8 handwritten digits (1797 images, 10 classes), shipped with sklearn."""
    digits = load_digits()
    return RawDataset(digits.images[:, None, :, :].astype(np.float32), digits.target, "image")


@register_loader("synthetic")
def _synthetic(cfg: DictConfig) -> RawDataset:
    """A Purchase-100-like task: binary features, each class a random prototype with bit flips."""
    n = cfg.n_samples or 2000
    if cfg.n_features < 1 or cfg.n_classes < 2 or not 0.0 <= cfg.flip_prob <= 0.5:
        raise ConfigError(
            "data=synthetic needs data.n_features >= 1, data.n_classes >= 2 and "
            f"0 <= data.flip_prob <= 0.5 (got {cfg.n_features}, {cfg.n_classes}, {cfg.flip_prob})"
        )
    rng = np.random.default_rng(cfg.get("generator_seed", 0))
    prototypes = rng.random((cfg.n_classes, cfg.n_features)) < 0.5
    y = rng.integers(0, cfg.n_classes, size=n)
    flips = rng.random((n, cfg.n_features)) < cfg.flip_prob
    x = (prototypes[y] ^ flips).astype(np.float32)
    return RawDataset(x, y, "tabular")


@register_loader("npz")
def _npz(cfg: DictConfig) -> RawDataset:
    """A NumPy ``.npz`` archive with arrays ``X`` (features) and ``y`` (integer labels)."""
    path = _existing_path(cfg, "an .npz file with arrays X and y")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"X", "y"} - set(archive.files)
            if missing:
                raise _malformed(cfg, f"missing arrays {sorted(missing)}; found {archive.files}")
            x, y = archive["X"], archive["y"]
    except ConfigError:
        raise
    except Exception as exc:  # zip, pickle and format errors all mean the same to the user
        raise _malformed(cfg, f"{type(exc).__name__}: {exc}") from None
    kind = "image" if x.ndim == 4 else "tabular"
    return RawDataset(x, y, kind)


@register_loader("csv")
def _csv(cfg: DictConfig) -> RawDataset:
    """A CSV file with a header row: the label column ``data.label_column``, features the rest."""
    path = _existing_path(cfg, "a CSV file with a header row")
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise _malformed(cfg, "the file is empty")
    header, body = rows[0], rows[1:]
    if cfg.label_column not in header:
        raise ConfigError(
            f"data.label_column={cfg.label_column} is not a column of {cfg.path}: "
            f"set data.label_column to one of {header}"
        )
    label_at = header.index(cfg.label_column)
    try:
        table = np.array(body, dtype=np.float64)
    except ValueError as exc:
        raise _malformed(cfg, f"non-numeric value: {exc}") from None
    if table.ndim != 2 or table.shape[1] != len(header):
        raise _malformed(cfg, "rows have different lengths")
    return RawDataset(np.delete(table, label_at, axis=1), table[:, label_at], "tabular")


@register_loader("cifar10")
def _cifar10(cfg: DictConfig) -> RawDataset:
    """The official CIFAR-10 python version: the ``cifar-10-batches-py`` folder of pickles."""
    folder = _existing_path(cfg, "the cifar-10-batches-py folder (data_batch_1..5, test_batch)")
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise _malformed(cfg, f"missing {missing}")
    xs, ys = [], []
    for name in names:
        try:
            with open(folder / name, "rb") as handle:
                batch = pickle.load(handle, encoding="bytes")
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[b"labels"]))
        except Exception as exc:
            raise _malformed(cfg, f"{name}: {type(exc).__name__}: {exc}") from None
    return RawDataset(np.concatenate(xs).astype(np.float32) / 255.0, np.concatenate(ys), "image")


def _comma_separated(path: Path, cfg: DictConfig) -> np.ndarray:
    try:
        return np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
    except ValueError as exc:
        raise _malformed(cfg, f"{path.name}: {exc}") from None


@register_loader("purchase100")
def _purchase100(cfg: DictConfig) -> RawDataset:
    """Shokri et al.'s Purchase-100 file ``dataset_purchase``: label (1..100), then 600 bits."""
    path = _existing_path(cfg, "the dataset_purchase file (label,600 binary features per line)")
    table = _comma_separated(path, cfg)
    return RawDataset(table[:, 1:], table[:, 0] - 1, "tabular")


@register_loader("texas100")
def _texas100(cfg: DictConfig) -> RawDataset:
    """Shokri et al.'s Texas-100 folder ``texas/100``: files ``feats`` and ``labels`` (1..100)."""
    folder = _existing_path(cfg, "the texas/100 folder holding the files feats and labels")
    for name in ("feats", "labels"):
        if not (folder / name).is_file():
            raise _malformed(cfg, f"missing {folder / name}")
    x = _comma_separated(folder / "feats", cfg)
    y = _comma_separated(folder / "labels", cfg).ravel()
    if len(x) != len(y):
        raise _malformed(cfg, f"{len(x)} feature rows but {len(y)} labels")
    return RawDataset(x, y - 1, "tabular")


def _check(raw: RawDataset, cfg: DictConfig) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(raw.x, dtype=np.float32)
    y = np.asarray(raw.y)
    if len(x) == 0:
        raise ConfigError(f"data={cfg.name} has no rows: check data.path={cfg.path}")
    if y.ndim != 1 or len(y) != len(x):
        raise _malformed(cfg, f"{len(x)} feature rows but labels of shape {y.shape}")
    if not np.all(np.isfinite(x)):
        raise _malformed(cfg, "features contain NaN or infinite values")
    if not np.all(np.isfinite(y)) or np.any(y != np.round(y)) or y.min() < 0:
        raise _malformed(cfg, "labels must be integers 0..C-1")
    return x, y.astype(np.int64)


def load_raw(cfg: DictConfig) -> tuple[np.ndarray, np.ndarray, str]:
    """Load and check the dataset named by ``cfg.name``: features, integer labels, kind."""
    if cfg.name not in LOADERS:
        raise ConfigError(f"unknown dataset data={cfg.name}: choose one of {sorted(LOADERS)}")
    raw = LOADERS[cfg.name](cfg)
    x, y = _check(raw, cfg)
    return x, y, raw.kind


def load_pool(cfg: DictConfig, seed: int) -> Pool:
    """Split the dataset once by ``seed`` into pool and test; standardise on the pool.

    The pool size is made even so that every model trains on exactly half of it.
    """
    x, y, kind = load_raw(cfg)
    rng = np.random.default_rng(seed)
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
    )
