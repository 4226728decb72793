"""Signals: what every model's API releases on every pool point, computed once.

All attacks read these arrays (through :class:`attacks.base.AttackerView`), so every attack is
evaluated on exactly the same models, and ``signals.npz`` lets anyone rerun or add an attack on
them later without training anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Signals:
    outputs: np.ndarray  # float32 [K, N, C], what model k's API returns for pool point i
    labels: np.ndarray  # int64 [N]
    membership: np.ndarray  # bool [K, N]
    canary: np.ndarray  # bool [N]
    targets: np.ndarray  # int64 [T]
    release_kind: str

    def save(self, path: str | Path) -> None:
        np.savez_compressed(
            path,
            outputs=self.outputs,
            labels=self.labels,
            membership=self.membership,
            canary=self.canary,
            targets=self.targets,
            release_kind=np.array(self.release_kind),
        )

    @classmethod
    def load(cls, path: str | Path) -> Signals:
        with np.load(path, allow_pickle=False) as archive:
            return cls(
                outputs=archive["outputs"],
                labels=archive["labels"],
                membership=archive["membership"],
                canary=archive["canary"],
                targets=archive["targets"],
                release_kind=str(archive["release_kind"]),
            )
