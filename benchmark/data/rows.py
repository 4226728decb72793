"""The dataset rows an already-trained model learned from (``protocol.target.members``).

A user knows which rows of *their* dataset a checkpoint trained on, not where the harness put
them: the rows are therefore numbered as the loader returns them (the file's row order for
``npz``/``csv``, your loader's order for ``data=custom``), before ``data.n_samples`` and before
the seeded pool/test split. :func:`target_members` maps them onto the pool
(:attr:`benchmark.data.pool.Pool.rows`). A row the split put into the test set is refused: test
points are scored as unseen data for utility, and a member among them would be reported as
both. Rows that ``data.n_samples`` left out of this run are neither scored nor tested.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.data.pool import Pool
from benchmark.errors import ConfigError

KEY = "protocol.target.members"
FORMAT = (
    "a .npy file of row numbers (or a boolean mask with one entry per dataset row), or a text "
    "file with one row number per line"
)


def _read(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    return np.loadtxt(path, dtype=np.float64, ndmin=1, comments="#", delimiter=",")


def read_rows(path: str, n_rows: int) -> np.ndarray:
    """The distinct dataset rows listed in ``path`` (sorted int64); ConfigError if malformed."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{KEY}={path}: no such file; give {FORMAT}")
    try:
        values = np.asarray(_read(file))
    except (ValueError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{KEY}={path} cannot be read as {FORMAT} ({first})") from None
    if values.ndim != 1 or values.size == 0:
        raise ConfigError(f"{KEY}={path} must be one non-empty list of rows, got {values.shape}")
    if values.dtype == bool:
        if len(values) != n_rows:
            raise ConfigError(
                f"{KEY}={path} is a boolean mask of {len(values)} entries, but the dataset has "
                f"{n_rows} rows: give one entry per row, or the member rows' numbers"
            )
        return np.flatnonzero(values).astype(np.int64)
    if values.dtype.kind not in "iuf" or not np.all(values == np.round(values)):
        raise ConfigError(f"{KEY}={path} must hold integer row numbers, got dtype {values.dtype}")
    bad = values[(values < 0) | (values >= n_rows)]
    if bad.size:
        raise ConfigError(
            f"{KEY}={path} lists row {bad[0]:.0f}, outside the dataset's rows 0..{n_rows - 1}: "
            "rows are numbered from 0 in the order the loader returns them"
        )
    return np.unique(values.astype(np.int64))


def target_members(path: str, pool: Pool, seed: int) -> np.ndarray:
    """bool ``[N]``: the pool points whose dataset row ``path`` lists; refuses test-split rows.

    The pool must keep both members and non-members, or the checkpoint has nothing to be scored
    on.
    """
    rows = read_rows(path, pool.n_rows)
    in_test = np.intersect1d(rows, pool.test_rows)
    if in_test.size:
        shown = ", ".join(map(str, in_test[:5]))
        raise ConfigError(
            f"{KEY}={path}: {in_test.size} of its rows (e.g. {shown}) fall in the test split of "
            f"seed={seed}, which must be data the checkpoint never saw: train it on this seed's "
            "pool rows only (benchmark.data.pool.load_pool(cfg.data, seed).rows lists them)"
        )
    members = np.isin(pool.rows, rows)
    if members.all() or not members.any():
        count = int(members.sum())
        raise ConfigError(
            f"{KEY}={path}: {count} of the {len(pool)} pool points are members; the checkpoint "
            "needs members and non-members in the pool to be attacked (train it on part of it)"
        )
    return members
