"""Synthetic worlds for testing attacks without training anything.

A world is ``K`` simulated models on ``N`` pool points with the protocol's balanced membership
matrix. Model ``j``'s strength on point ``i`` is ``s[j, i] = base_i + effect * M[j, i] + noise``
(``base_i ~ N(base_mean, 1.5^2)``, noise ``N(0, 1)``);
it releases ``p_y = sigmoid(s)`` on the true label and spreads the rest evenly over the other
classes, so the logit-scaled confidence ``phi`` of LiRA is exactly ``s``. A black box answers
queries on (perturbed) pool points: point ``i`` is feature ``10 * i``, and model ``j`` answers a
query ``x`` with the correct label when a hash of ``(j, x)`` falls below ``sigmoid(s[j, i])``.

``uninformative_target``: model 0's strength is ``base_i + effect / 2`` for every point, member or
not, so its outputs say nothing about its members while its shadows stay informative. Without
noise of its own, any systematic difference in what the shadows tell about members and about
non-members shows in the scores: an attack that beats chance (either way) against this target is
reading the protocol's structure, e.g. how many of a point's shadows trained on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attacks.base import AttackerView, attacker_view
from benchmark.protocol.membership import balanced_matrix
from benchmark.signals.arrays import Signals

SPACING = 10.0  # feature distance between two pool points: noise of std 0.5 never confuses them


def _uniform_hash(x: np.ndarray, model: int) -> np.ndarray:
    """A deterministic uniform number in [0, 1) per value of ``x`` and model (splitmix64)."""
    z = np.ascontiguousarray(x, dtype=np.float64).view(np.uint64)
    z = z ^ np.uint64((int(model) * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % 2**64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / 2.0**53


@dataclass
class World:
    strength: np.ndarray  # [K, N]
    signals: Signals
    features: np.ndarray  # [N, 1]

    @property
    def num_classes(self) -> int:
        return self.signals.outputs.shape[2]

    def query(self, model: int, x: np.ndarray) -> np.ndarray:
        """One-hot answers of ``model`` on queries ``x [n, 1]`` near pool points."""
        n_points = self.strength.shape[1]
        point = np.clip(np.rint(x[:, 0] / SPACING).astype(np.int64), 0, n_points - 1)
        correct = _uniform_hash(x[:, 0], model) < 1 / (1 + np.exp(-self.strength[model, point]))
        label = self.signals.labels[point]
        answer = np.where(correct, label, (label + 1) % self.num_classes)
        return np.eye(self.num_classes, dtype=np.float32)[answer]

    def view(self, target: int = 0, **kwargs) -> AttackerView:
        return attacker_view(
            self.signals,
            target,
            features=self.features,
            query=self.query,
            pool_kind="tabular",
            **kwargs,
        )


def probabilities(strength: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``[..., N, C]`` with ``p_y = sigmoid(strength)`` and the rest spread evenly."""
    p_true = 1 / (1 + np.exp(-strength))
    rest = (1 - p_true) / (num_classes - 1)
    out = np.repeat(rest[..., None], num_classes, axis=-1)
    np.put_along_axis(
        out, np.broadcast_to(labels[:, None], out.shape[:-1] + (1,)), p_true[..., None], -1
    )
    return out


def make_world(
    n_points: int = 2000,
    n_models: int = 16,
    num_classes: int = 4,
    effect: float = 1.0,
    noise: float = 1.0,
    uninformative_target: bool = False,
    release_kind: str = "probabilities",
    base_mean: float = 1.0,
    seed: int = 0,
) -> World:
    rng = np.random.default_rng(seed)
    membership = balanced_matrix(n_models, n_points, rng)
    labels = rng.integers(0, num_classes, n_points)
    base = rng.normal(base_mean, 1.5, n_points)  # points differ in difficulty, as real data does
    strength = base + effect * membership + noise * rng.standard_normal((n_models, n_points))
    if uninformative_target:
        strength[0] = base + effect / 2
    outputs = probabilities(strength, labels, num_classes)
    if release_kind == "label":
        outputs = np.eye(num_classes)[outputs.argmax(axis=-1)]
    signals = Signals(
        outputs=outputs,
        labels=labels,
        membership=membership,
        canary=np.zeros(n_points, dtype=bool),
        targets=np.arange(n_models),
        release_kind=release_kind,
    )
    features = (SPACING * np.arange(n_points, dtype=np.float64))[:, None]
    return World(strength, signals, features)


def auc_null_sd(is_member: np.ndarray) -> float:
    """Standard deviation of the AUC (Mann-Whitney U / n1 n0) when scores are independent of
    membership: ``sqrt((n1 + n0 + 1) / (12 n1 n0))``; ties only make it smaller."""
    n1, n0 = int(is_member.sum()), int((~is_member).sum())
    return float(np.sqrt((n1 + n0 + 1) / (12 * n1 * n0)))
