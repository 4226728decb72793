"""Signals: what every model's API releases on every pool point, computed once.

All attacks read these arrays (through :class:`attacks.base.AttackerView`), so every attack is
evaluated on exactly the same models, and ``signals.npz`` lets anyone rerun or add an attack on
them later without training anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    #: bool [K, N]: members model k's training held out of fitting (a training hook's validation
    #: or reference set); None (the default) means none, stored as all False.
    held_out: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.held_out is None:
            object.__setattr__(self, "held_out", np.zeros(self.membership.shape, dtype=bool))
        if self.held_out.shape != self.membership.shape:
            raise ValueError(
                f"held_out {self.held_out.shape} must match membership {self.membership.shape}"
            )
        if (self.held_out & ~self.membership).any():
            raise ValueError("held_out marks a non-member: held-out points are members")

    @property
    def fitted(self) -> np.ndarray:
        """bool [K, N]: the members each model took gradient steps on."""
        return self.membership & ~self.held_out

    def save(self, path: str | Path) -> None:
        np.savez_compressed(
            path,
            outputs=self.outputs,
            labels=self.labels,
            membership=self.membership,
            canary=self.canary,
            targets=self.targets,
            release_kind=np.array(self.release_kind),
            held_out=self.held_out,
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
                # Files written before held-out members were recorded have none.
                held_out=archive["held_out"] if "held_out" in archive.files else None,
            )
