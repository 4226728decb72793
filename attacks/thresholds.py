"""Metric-based attacks with class-dependent thresholds (Song & Mittal 2021, "Systematic
Evaluation of Privacy Risks of Machine Learning Models", section 3): confidence, entropy and
modified entropy.

Each attack computes one statistic ``m(x, y)`` of the released probability vector, larger for
members, and a threshold ``tau_y`` per class, fitted on the *shadow* models only: the threshold
that best separates the shadows' members of class ``y`` from their non-members (largest
``TPR - FPR``, i.e. the best balanced accuracy, the paper's criterion on balanced shadow sets).
Song & Mittal's attack predicts "member" when ``m(x, y) >= tau_y``; a ROC curve needs a score, so
the score is ``m(x, y) - tau_y``: positive exactly when the attack says member, and sweeping a
threshold on it shifts every class's threshold by the same amount.

Statistics (higher = member), with ``p`` the released vector and missing probabilities 0:

* ``confidence``: ``p_y`` (section 3.1, "prediction confidence");
* ``entropy``: ``-H(p) = sum_i p_i log p_i`` (section 3.1, "prediction entropy");
* ``mentropy``: ``-Mentr(p, y)`` with ``Mentr = -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)``
  (section 3.2, "modified prediction entropy").
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from attacks.base import Attack, AttackerView, register_attack
from attacks.transforms import FLOOR, true_class_probability
from benchmark.roc import exact_roc


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(p, FLOOR))


def confidence(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return true_class_probability(outputs, labels)


def negative_entropy(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    p = outputs.astype(np.float64)
    return (p * _log(p)).sum(axis=-1)


def negative_modified_entropy(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    p = outputs.astype(np.float64)
    p_true = true_class_probability(p, labels)
    is_true = np.arange(p.shape[-1]) == labels[:, None]
    others = np.where(is_true, 0.0, p * _log(1.0 - p)).sum(axis=-1)
    return (1.0 - p_true) * _log(p_true) + others


def best_threshold(values: np.ndarray, is_member: np.ndarray) -> float:
    """The threshold ``t`` maximising ``TPR - FPR`` of the rule ``value > t`` on these samples.

    It lies halfway between the two sample values it separates, so ``value - t`` is never 0.
    """
    if is_member.all() or not is_member.any():
        return float(np.median(values))
    roc = exact_roc(values, is_member)  # scikit-learn's roc_curve(drop_intermediate=False)
    fpr, tpr, cuts = roc.fpr, roc.tpr, roc.thresholds
    best = int(np.argmax(tpr - fpr))
    if best == 0:  # no cut beats "nobody is a member"
        return float(cuts[1])
    lower = cuts[best + 1] if best + 1 < len(cuts) else cuts[best] - 1.0
    return float((cuts[best] + lower) / 2)


def class_thresholds(
    shadow_values: np.ndarray,
    in_mask: np.ndarray,
    out_mask: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
) -> np.ndarray:
    """``tau [C]`` from the shadows' statistic ``[S, N]``; a class without shadow samples gets
    the threshold fitted on all classes together."""
    used = in_mask | out_mask
    overall = best_threshold(shadow_values[used], in_mask[used])
    taus = np.full(num_classes, overall)
    for y in range(num_classes):
        selected = used & (labels == y)[None, :]
        if in_mask[selected].any() and out_mask[selected].any():
            taus[y] = best_threshold(shadow_values[selected], in_mask[selected])
    return taus


class _ClassThresholdAttack(Attack):
    needs_shadow_pairs = True
    statistic: ClassVar = staticmethod(confidence)

    def score(self, view: AttackerView) -> np.ndarray:
        target = self.statistic(view.target_outputs, view.labels)
        shadows = self.statistic(view.shadow_outputs, view.labels)
        taus = class_thresholds(
            shadows, view.in_shadows, view.out_shadows, view.labels, view.num_classes
        )
        return target - taus[view.labels]


@register_attack("confidence")
class ConfidenceAttack(_ClassThresholdAttack):
    """Confidence ``p_y`` against a per-class threshold (Song & Mittal 2021, section 3.1)."""

    statistic = staticmethod(confidence)


@register_attack("entropy")
class EntropyAttack(_ClassThresholdAttack):
    """Negative prediction entropy against a per-class threshold (Song & Mittal 2021, 3.1)."""

    statistic = staticmethod(negative_entropy)


@register_attack("mentropy")
class ModifiedEntropyAttack(_ClassThresholdAttack):
    """Negative modified entropy against a per-class threshold (Song & Mittal 2021, 3.2)."""

    statistic = staticmethod(negative_modified_entropy)
