"""The LOSS attack (Yeom et al. 2018, "Privacy Risk in Machine Learning", section 3.2)."""

from __future__ import annotations

import numpy as np

from attacks.base import Attack, AttackerView, register_attack
from attacks.transforms import log_true_class_probability


@register_attack("loss")
class LossAttack(Attack):
    """Score = ``-loss(f(x), y) = log p_y``: members tend to have a lower training loss.

    A population-level attack: one threshold for all points, no shadow models needed.
    """

    def score(self, view: AttackerView) -> np.ndarray:
        return log_true_class_probability(view.target_outputs, view.labels)
