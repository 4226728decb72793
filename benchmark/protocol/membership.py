"""The membership matrix of the evaluation protocol (DESIGN.md section 1).

Follows Carlini et al. 2022 ("Membership Inference Attacks From First Principles", section VI):
``K`` models, each pool point a member of exactly ``K/2`` of them. We additionally balance the
rows, so every model trains on exactly ``N/2`` points; the ensemble engine relies on this.

Because every column sums to ``K/2``, the target's row *could* be derived from the shadow rows
(the number of in-shadows of a point is ``K/2 - M[k, i]``). Attacks must therefore never use the
count of a point's in-shadows as a signal; each attack in the suite uses per-point means and
variances (or classifiers fitted across points), which do not carry it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark.errors import ConfigError


@dataclass(frozen=True)
class Membership:
    """``matrix[k, i]`` is True when model ``k`` trained on pool point ``i``."""

    matrix: np.ndarray  # bool [K, N]
    canary: np.ndarray  # bool [N]
    seeds: np.ndarray  # int64 [K], one training seed per model
    targets: np.ndarray  # int64 [T], the models that are attacked

    @property
    def n_models(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_points(self) -> int:
        return self.matrix.shape[1]

    def members(self, k: int) -> np.ndarray:
        """Indices of the pool points model ``k`` trains on, in increasing order."""
        return np.flatnonzero(self.matrix[k])


def balanced_matrix(n_models: int, n_points: int, rng: np.random.Generator) -> np.ndarray:
    """A random boolean ``[K, N]`` matrix with column sums ``K/2`` and row sums ``N/2`` (+-1).

    Columns are drawn as random halves of the models, then row sums are balanced by swapping a
    surplus row's 1 with a deficit row's 0 within one column, which keeps column sums fixed.
    """
    order = np.argsort(rng.random((n_models, n_points)), axis=0)
    matrix = order < n_models // 2
    target = n_points / 2
    sums = matrix.sum(axis=1)  # kept up to date by each swap: O(K + N) a step, not O(K N)
    while True:
        hi, lo = int(np.argmax(sums)), int(np.argmin(sums))
        if sums[hi] - target <= 0.5 and target - sums[lo] <= 0.5:
            return matrix
        columns = np.flatnonzero(matrix[hi] & ~matrix[lo])
        n_swap = int(min((sums[hi] - sums[lo]) // 2, len(columns)))
        chosen = rng.choice(columns, size=n_swap, replace=False)
        matrix[hi, chosen], matrix[lo, chosen] = False, True
        sums[hi] -= n_swap
        sums[lo] += n_swap


#: The most entries ``K * N`` the membership matrix may have. Drawing it takes 16 bytes an entry
#: (a float64 draw and its int64 rank, :func:`balanced_matrix`): 2**26 entries are 1 GiB.
MAX_MATRIX_ENTRIES = 2**26


def check_size(n_models: int, n_points: int) -> None:
    """Refuse a ``[K, N]`` matrix too large to draw, arithmetically, before allocating it."""
    if n_models * n_points <= MAX_MATRIX_ENTRIES:
        return
    most = MAX_MATRIX_ENTRIES // n_points // 2 * 2
    raise ConfigError(
        f"protocol.n_models={n_models} with a pool of {n_points} points needs a membership "
        f"matrix of {n_models * n_points:,} entries (K x N); at most {MAX_MATRIX_ENTRIES:,} are "
        f"supported (drawing it takes 16 bytes an entry, 1 GiB at the limit): set "
        f"protocol.n_models to at most {most}"
    )


def make_membership(
    n_points: int,
    n_models: int,
    seed: int,
    n_targets: int | None = None,
    n_canaries: int = 0,
) -> Membership:
    """Draw the membership matrix, per-model seeds, targets and canary flags from ``seed``."""
    if n_models < 2 or n_models % 2:
        raise ConfigError(f"protocol.n_models must be even and at least 2 (got {n_models})")
    check_size(n_models, n_points)
    if n_canaries > n_points:
        raise ConfigError(f"protocol.canaries={n_canaries} exceeds the pool size {n_points}")
    rng = np.random.default_rng([seed, 0x6D656D])
    matrix = balanced_matrix(n_models, n_points, rng)
    seeds = rng.integers(0, 2**31 - 1, size=n_models, dtype=np.int64)
    canary = np.zeros(n_points, dtype=bool)
    canary[rng.choice(n_points, size=n_canaries, replace=False)] = True
    targets = np.arange(n_models if n_targets is None else n_targets, dtype=np.int64)
    for array in (matrix, seeds, canary, targets):
        array.setflags(write=False)
    return Membership(matrix=matrix, canary=canary, seeds=seeds, targets=targets)
