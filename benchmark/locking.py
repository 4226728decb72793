"""An exclusive lock across processes on a lock file (``fcntl.flock``).

``flock`` is released by the kernel when its holder dies, so a killed process never leaves a
lock held. The MLflow store (:mod:`benchmark.tracking.store`) and the model store
(:mod:`benchmark.store.ensemble_store`) both lock through it.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing, left in place: removing a lock
    file another process may be waiting on would race)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
