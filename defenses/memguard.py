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

Speed: the search is the defense's cost (100 Adam steps on every released row; the label-only
attacks release 32 perturbed copies of the pool per model). It runs on class-major arrays, in
blocks of rows that stay in the cache (:class:`PhaseOne`, :data:`BLOCK`), with the same
floating-point operations, in the same order, as the straightforward row-major version, which
``tests/defenses/test_defenses_release.py`` keeps as the reference the releases must equal bit
for bit. Half the release time of the standard job, with the same metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

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
    q, score, hinge, grad = PhaseOne(z, probabilities, boundary).terms(np.ascontiguousarray(e.T))
    distance = np.abs(q.T - probabilities).sum(axis=1)
    return np.abs(score) + LABEL_WEIGHT * hinge + DISTANCE_WEIGHT * distance, grad.T


def class_sums(a: np.ndarray) -> np.ndarray:
    """``a.T.sum(axis=1)`` of a class-major array ``a [C, N]``, bit for bit: the order in which
    numpy sums each row of a row-major ``[N, C]`` array (its pairwise summation: up to 7 terms
    one after another, up to 128 in 8 running partial sums, more in halves; the result added to
    0.0), run on ``C`` rows of ``N`` values at once: 11 us for ``[10, 1436]``, where numpy's
    reduction along each of 1436 rows of 10 took 31 us (an element-wise pass: 3-5 us).
    ``tests/defenses`` checks the two agree. Above 8192 classes numpy sums a row in buffered
    pieces; there it sums the row-major copy itself.
    """
    if a.shape[0] > 8192:
        return np.ascontiguousarray(a.T).sum(axis=1)
    return _pairwise(a, 0, a.shape[0]) + 0.0


def _pairwise(a: np.ndarray, lo: int, n: int) -> np.ndarray:
    if n < 8:
        total = a[lo] + 0.0
        for i in range(lo + 1, lo + n):
            total += a[i]
        return total
    if n <= 128:
        partial = a[lo : lo + 8].copy()
        i = 8
        while i < n - n % 8:
            partial += a[lo + i : lo + i + 8]
            i += 8
        r = partial
        total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        for j in range(lo + i, lo + n):
            total += a[j]
        return total
    half = n // 2
    half -= half % 8
    return _pairwise(a, lo, half) + _pairwise(a, lo + half, n - half)


class PhaseOne:
    """The terms of ``L(e)`` for fixed ``z`` and ``s``, on class-major arrays ``[C, N]``.

    Class-major, every reduction over the classes is ``C - 1`` operations on contiguous rows of
    ``N`` values (:func:`class_sums`, ``max`` and ``argmax`` along axis 0) instead of a reduction
    along each of ``N`` rows of ``C`` values. Every value is computed by the same operations,
    in the same order, as the row-major loss was first written, so the releases are the same,
    bit for bit (``tests/defenses`` keeps that reference). What does not change with ``e``
    (the label, ``log C``) is computed once, ``scipy.special.softmax`` is inlined (its
    ``max``, ``exp``, ``sum`` and division), the entropy reuses ``log q``, and the search skips
    the loss, which only the tests read.
    """

    def __init__(self, z: np.ndarray, probabilities: np.ndarray, boundary: float) -> None:
        #: ``z`` and ``s``, class-major.
        self.z, self.probabilities = (
            np.ascontiguousarray(z.T),
            np.ascontiguousarray(probabilities.T),
        )
        self.boundary = boundary
        self.columns = np.arange(len(z))
        self.label = probabilities.argmax(axis=1)
        #: Class-major mask of the classes other than the label.
        self.others = np.arange(z.shape[1])[:, None] != self.label
        self.log_classes = math.log(z.shape[1])

    def softmax(self, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``z + e`` and ``softmax(z + e)`` (class-major), as ``scipy.special.softmax``."""
        logits = self.z + e
        q = np.exp(logits - logits.max(axis=0))
        q /= class_sums(q)
        return logits, q

    def terms(self, e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``softmax(z + e)``, the classifier's logit, the label hinge and ``dL/de``."""
        columns, label = self.columns, self.label
        logits, q = self.softmax(e)
        log_q = np.log(np.maximum(q, TINY))
        # The classifier's logit: 0 on its decision boundary, where g = 1/2.
        entropy = -class_sums(q * log_q)
        score = KAPPA * ((1.0 - entropy / self.log_classes) - self.boundary)
        # The runner-up's logit is the largest of the others (exactly); its class is needed only
        # where the hinge is active, a few rows.
        runner_up_logit = logits.max(axis=0, where=self.others, initial=-np.inf)
        hinge = np.maximum(runner_up_logit - logits[label, columns], 0.0)
        # dL/dq, then back through the softmax: dL/de = q * (g - <q, g>).
        slope = np.sign(score) * KAPPA / self.log_classes
        grad_q = slope * (log_q + 1.0) + DISTANCE_WEIGHT * np.sign(q - self.probabilities)
        grad = q * (grad_q - class_sums(q * grad_q))
        active = np.flatnonzero(hinge > 0)
        runner_up = np.where(self.others[:, active], logits[:, active], -np.inf).argmax(axis=0)
        grad[runner_up, active] += LABEL_WEIGHT
        grad[label[active], active] -= LABEL_WEIGHT
        return q, score, hinge, grad


#: Rows searched at once: a block's arrays (160 KiB each at 10 classes) stay in the cache over
#: its steps. The label-only attacks query 32 copies of the pool at once (46k rows on digits).
BLOCK = 2048


def search_noise(probabilities: np.ndarray, boundary: float, steps: int) -> np.ndarray:
    """Phase I: the noise ``n`` found by Adam descent on ``L(e)``; rows are independent, so they
    are searched in blocks of :data:`BLOCK`."""
    if len(probabilities) <= BLOCK:
        return _search_block(probabilities, boundary, steps)
    return np.concatenate(
        [
            _search_block(probabilities[i : i + BLOCK], boundary, steps)
            for i in range(0, len(probabilities), BLOCK)
        ]
    )


def _search_block(probabilities: np.ndarray, boundary: float, steps: int) -> np.ndarray:
    phase = PhaseOne(np.log(np.maximum(probabilities, TINY)), probabilities, boundary)
    e = np.zeros_like(phase.z)
    first, second = np.zeros_like(e), np.zeros_like(e)
    beta1, beta2 = 0.9, 0.999
    for t in range(1, steps + 1):
        # Adam, in place: the same products and sums as the expressions it replaced.
        grad = phase.terms(e)[3]
        first *= beta1
        first += (1 - beta1) * grad
        second *= beta2
        grad *= grad
        grad *= 1 - beta2
        second += grad
        step = first / (1 - beta1**t)
        scale = second / (1 - beta2**t)
        np.sqrt(scale, out=scale)
        scale += 1e-8
        step /= scale
        step *= STEP
        e -= step
    return np.ascontiguousarray(phase.softmax(e)[1].T) - probabilities


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
