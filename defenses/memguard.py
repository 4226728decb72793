"""A MemGuard-style release (Jia et al. 2019, "MemGuard: Defending against Black-Box Membership
Inference Attacks via Adversarial Examples").

MemGuard adds to each released confidence vector ``s`` a noise vector ``n`` that turns it into an
adversarial example for the defender's own membership classifier ``g``, under three constraints:
the predicted label is unchanged, ``s + n`` is a probability vector, and the distortion is at most
a budget ``epsilon``. Phase I (section 4.2) searches ``n`` by gradient descent in logit space,
``s + n = softmax(z + e)`` with ``z = log s``, on

    L(e) = L1 + c2 * L2 + c3 * L3,
    L1 = |logit g(softmax(z + e))|              (to the classifier's decision boundary),
    L2 = ReLU(max_{j != l}(z + e)_j - (z + e)_l)  (keep the label l),
    L3 = ||softmax(z + e) - s||_1              (small noise).

What this self-contained version simplifies, and why:

* ``g`` is fixed, not trained: ``g(s) = sigmoid(kappa * (c(s) - boundary))`` with the normalised
  confidence ``c(s) = 1 - H(s) / log C`` of the (sorted) confidence vector, the feature that
  confidence- and entropy-based attacks threshold. The paper's ``g`` is a network the defender
  trains on its members and a reference set; a release hook sees probability vectors only, and
  the protocol leaves no non-member data a defender could use without touching the evaluation.
  Driving ``g`` to 1/2 therefore moves every output's confidence toward ``boundary``.
* The paper tunes ``c3`` per query by a search; here ``c2``, ``c3`` and the number of Adam steps
  are fixed, and the budget is met by the scaling below instead.
* Phase II's randomisation (add ``n`` with probability ``min(epsilon / ||n||_1, 1)``) is replaced
  by scaling ``n`` to the budget: ``s + t n`` with ``t = min(1, epsilon / ||n||_1)``, a convex
  combination of two probability vectors with the same argmax, so the simplex and the label are
  kept, the L1 distortion is at most ``epsilon`` for *every* query (the paper bounds it in
  expectation), and the same query always gets the same answer (no averaging attack over
  repeated queries).
* The constraints are then enforced exactly: ``t`` is further capped so the top class keeps at
  least half its margin over every other class, and a row whose float32 argmax would still change
  is released unperturbed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import softmax

from benchmark.errors import require
from defenses.base import Defense, register_defense

#: Weights of the label and distortion terms (c2, c3), the classifier's slope and the step size.
LABEL_WEIGHT, DISTANCE_WEIGHT, KAPPA, STEP = 10.0, 0.1, 10.0, 0.1
TINY = 1e-300


def normalised_confidence(probabilities: np.ndarray) -> np.ndarray:
    """``c(s) = 1 - H(s) / log C``: 1 for a one-hot vector, 0 for the uniform one."""
    entropy = -(probabilities * np.log(np.maximum(probabilities, TINY))).sum(axis=1)
    return 1.0 - entropy / math.log(probabilities.shape[1])


def memguard_loss(
    e: np.ndarray, z: np.ndarray, probabilities: np.ndarray, boundary: float
) -> tuple[np.ndarray, np.ndarray]:
    """Phase I's loss ``L(e)`` per row and its gradient with respect to ``e``.

    Written out by hand (numpy) because the arrays are small and many: an autograd framework's
    per-step overhead would dominate. A test checks the gradient against ``torch.autograd``.
    """
    rows = np.arange(len(z))
    label = probabilities.argmax(axis=1)
    logits = z + e
    q = softmax(logits, axis=1)
    log_q = np.log(np.maximum(q, TINY))
    # The classifier's logit: 0 on its decision boundary, where g = 1/2.
    score = KAPPA * (normalised_confidence(q) - boundary)
    others = logits.copy()
    others[rows, label] = -np.inf
    runner_up = others.argmax(axis=1)
    hinge = np.maximum(logits[rows, runner_up] - logits[rows, label], 0.0)
    loss = (
        np.abs(score)
        + LABEL_WEIGHT * hinge
        + DISTANCE_WEIGHT * np.abs(q - probabilities).sum(axis=1)
    )
    # dL/dq, then back through the softmax: dL/de = q * (g - <q, g>).
    slope = np.sign(score) * KAPPA / math.log(q.shape[1])
    grad_q = slope[:, None] * (log_q + 1.0) + DISTANCE_WEIGHT * np.sign(q - probabilities)
    grad = q * (grad_q - (q * grad_q).sum(axis=1, keepdims=True))
    active = hinge > 0
    grad[rows[active], runner_up[active]] += LABEL_WEIGHT
    grad[rows[active], label[active]] -= LABEL_WEIGHT
    return loss, grad


def search_noise(probabilities: np.ndarray, boundary: float, steps: int) -> np.ndarray:
    """Phase I: the noise ``n`` found by Adam descent on ``L(e)``; rows are independent."""
    z = np.log(np.maximum(probabilities, TINY))
    e = np.zeros_like(z)
    first, second = np.zeros_like(z), np.zeros_like(z)
    beta1, beta2 = 0.9, 0.999
    for t in range(1, steps + 1):
        _, grad = memguard_loss(e, z, probabilities, boundary)
        first = beta1 * first + (1 - beta1) * grad
        second = beta2 * second + (1 - beta2) * grad**2
        step = (first / (1 - beta1**t)) / (np.sqrt(second / (1 - beta2**t)) + 1e-8)
        e -= STEP * step
    return softmax(z + e, axis=1) - probabilities


def admissible_step(probabilities: np.ndarray, noise: np.ndarray, epsilon: float) -> np.ndarray:
    """The largest ``t <= 1`` per row such that ``s + t n`` is within the L1 budget and its top
    class keeps at least half its margin over every other class."""
    norm = np.abs(noise).sum(axis=1)
    t = np.minimum(1.0, epsilon / np.maximum(norm, 1e-300))
    label = probabilities.argmax(axis=1)[:, None]
    margin = np.take_along_axis(probabilities, label, 1) - probabilities  # >= 0
    closing = noise - np.take_along_axis(noise, label, 1)  # how fast each margin shrinks
    with np.errstate(divide="ignore", invalid="ignore"):
        limit = np.where(closing > 0, margin / (2 * closing), np.inf)
    return np.minimum(t, limit.min(axis=1))


@register_defense("memguard")
class MemGuard(Defense):
    """Perturb each released probability vector toward the decision boundary of a membership
    classifier, within an L1 budget ``epsilon``, never changing the predicted label."""

    family = "truncation"

    release_kind = "truncated"

    @dataclass
    class Params:
        #: L1 distortion budget per query (at most 2, the L1 diameter of the simplex).
        epsilon: float = 0.5
        #: Normalised confidence ``1 - H/log C`` at which the defender's classifier says 1/2.
        boundary: float = 0.5
        #: Gradient steps of the noise search (Phase I).
        steps: int = 100

    def check(self, n_train: int, num_classes: int) -> None:
        p = self.params
        require(0 < p.epsilon <= 2, f"defense.memguard.epsilon must be in (0, 2] (got {p.epsilon})")
        require(
            0 <= p.boundary <= 1, f"defense.memguard.boundary must be in [0, 1] (got {p.boundary})"
        )
        require(p.steps >= 1, f"defense.memguard.steps must be >= 1 (got {p.steps})")
        require(num_classes >= 2, "defense.memguard needs at least 2 classes")

    def release(self, probabilities: np.ndarray) -> np.ndarray:
        s = probabilities.astype(np.float64)
        if len(s) == 0:
            return s
        noise = search_noise(s, self.params.boundary, self.params.steps)
        released = s + admissible_step(s, noise, self.params.epsilon)[:, None] * noise
        released = np.clip(released, 0.0, 1.0)
        # The float32 the API returns must keep the float32 label of the undefended release.
        changed = released.astype(np.float32).argmax(1) != s.astype(np.float32).argmax(1)
        released[changed] = s[changed]
        return released
