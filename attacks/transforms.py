"""Per-example statistics computed from released probabilities.

Convention for truncated releases: a probability the API did not release counts as 0, and every
probability is floored at ``FLOOR`` (the smallest normal float32) before a logarithm, so a top-1
or rounded output gives a finite, documented value instead of an infinity.
"""

from __future__ import annotations

import numpy as np

FLOOR = float(np.finfo(np.float32).tiny)


def true_class_probability(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``p_y``: the released probability of each point's true label; ``outputs [..., N, C]``."""
    index = np.broadcast_to(labels[:, None], outputs.shape[:-1] + (1,))
    return np.take_along_axis(outputs, index, axis=-1)[..., 0].astype(np.float64)


def log_true_class_probability(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``log p_y`` (the negative cross-entropy loss)."""
    return np.log(np.maximum(true_class_probability(outputs, labels), FLOOR))


def logit_confidence(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The logit-scaled confidence ``phi = log p_y - log(1 - p_y)`` (Carlini et al. 2022, LiRA).

    ``1 - p_y`` is computed as the sum of the other released probabilities rather than by
    subtraction, which keeps full precision when ``p_y`` rounds to 1 in float32.
    """
    p = outputs.astype(np.float64)
    p_true = true_class_probability(p, labels)
    p_rest = p.sum(axis=-1) - p_true
    return np.log(np.maximum(p_true, FLOOR)) - np.log(np.maximum(p_rest, FLOOR))
