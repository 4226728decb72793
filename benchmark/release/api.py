"""The defended API: what an attacker can query, and nothing more."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch

from benchmark.release.kinds import RELEASE_KINDS
from benchmark.training.trained import Models


class ReleaseHook(Protocol):
    """What a defense contributes to the release (see :class:`defenses.base.Defense`)."""

    release_kind: str

    def release(self, probabilities: np.ndarray) -> np.ndarray: ...


class Release:
    """The defended API: softmax of the model's logits, then each defense's release hook."""

    def __init__(self, defenses: Sequence[ReleaseHook] = ()) -> None:
        self.defenses = list(defenses)
        kinds = [RELEASE_KINDS.index(d.release_kind) for d in self.defenses]
        self.kind = RELEASE_KINDS[max(kinds, default=0)]

    def __call__(self, probabilities: np.ndarray) -> np.ndarray:
        for defense in self.defenses:
            probabilities = defense.release(probabilities)
        return probabilities.astype(np.float32, copy=False)

    def query(self, models: Models, k: int, x: np.ndarray) -> np.ndarray:
        """What the API serving model ``k`` returns for the inputs ``x``: float32 ``[n, C]``."""
        probabilities = torch.softmax(models.logits(k, x).double(), dim=1).numpy()
        return self(probabilities)
