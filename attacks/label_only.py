"""Label-only attacks (Choquette-Choo et al. 2021, "Label-Only Membership Inference Attacks",
section 4): the attacker sees only the predicted label, so it measures how *robust* the correct
label is around each point, by querying the black box on ``n_queries`` perturbed copies.

Perturbations (drawn once from ``seed``, the same for every model): on image pools random shifts
of up to ``max_shift`` pixels, optional horizontal flips, and Gaussian noise (the paper's data
augmentation and noise-robustness attacks); on tabular pools each bit of a binary column is
flipped with probability ``flip_prob`` (random bit flips, the paper's perturbation for binary
features) and continuous columns get Gaussian noise. The unperturbed point counts as one more
query.

* ``label_only``: score = the fraction of the ``n_queries + 1`` queries answered with the true
  label (the paper's attack thresholds this count; the ROC sweeps that threshold). The score
  takes only ``n_queries + 2`` values, so its low-FPR TPRs follow the exact-ROC tie convention of
  :mod:`benchmark.evaluation.metrics` (a tied top value shared by more than 0.1% of non-members
  gives TPR 0 at 0.1% FPR). With exchangeable i.i.d. copies the count is a sufficient statistic of
  the target's answers, so the only finer statistic the paper allows is more queries
  (``n_queries``) or its boundary-distance attack (HopSkipJump, thousands of queries per point),
  not implemented; ``label_only_calibrated`` is the finer, per-point calibrated score.
* ``label_only_calibrated``: the same queries on the shadow models calibrate each point and each
  perturbation: with ``b_q`` whether the target answers copy ``q`` correctly and ``t_in``, ``t_out``
  the (Krichevsky-Trofimov smoothed) frequencies of correct answers among the point's balanced IN
  and OUT shadows, the score is the log-likelihood ratio
  ``sum_q b_q log(t_in / t_out) + (1 - b_q) log((1 - t_in) / (1 - t_out))``, a per-example
  likelihood-ratio test in the spirit of LiRA (Carlini et al. 2022) on the label-only signal, which
  treats the copies as independent given membership.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attacks.augment import random_image_perturbations, random_tabular_perturbations
from attacks.base import Attack, AttackerView, register_attack


@dataclass
class LabelOnlyParams:
    #: Perturbed copies queried per point (the unperturbed point is always queried as well).
    n_queries: int = 32
    #: Images: largest shift in pixels of a copy (0: noise only, best on 8x8 digits).
    max_shift: int = 0
    #: Images: flip half of the copies horizontally.
    flip: bool = False
    #: Std of the Gaussian noise added to images and to continuous tabular columns.
    noise: float = 0.5
    #: Tabular: probability of flipping each bit of a binary column.
    flip_prob: float = 0.05
    #: Seed of the perturbations.
    seed: int = 0


def _answers_correctly(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """bool: whether the released output's top label is the true label (broadcast over copies)."""
    return outputs.argmax(axis=-1) == labels


class _LabelOnly(Attack):
    Params = LabelOnlyParams
    needs = "label"
    calibrated: bool

    def not_applicable(self, view: AttackerView) -> str | None:
        reason = super().not_applicable(view)
        if reason is None and (view.features is None or view.query_target is None):
            reason = "needs black-box query access to the target (features and a query function)"
        if reason is None and self.calibrated and view.query_shadow is None:
            reason = "needs black-box query access to the shadow models"
        return reason

    def perturbations(self, view: AttackerView) -> np.ndarray:
        """The perturbed copies ``[Q * N, ...]`` (copy-major) every model is queried on."""
        p, x = self.params, view.features
        image = view.pool_kind == "image" or (view.pool_kind is None and x.ndim == 4)

        def make() -> np.ndarray:
            rng = np.random.default_rng([p.seed, 0x1AB])
            if image:
                copies = random_image_perturbations(
                    x, p.n_queries, p.max_shift, p.flip, p.noise, rng
                )
            else:
                copies = random_tabular_perturbations(x, p.n_queries, p.flip_prob, p.noise, rng)
            return copies.reshape(-1, *x.shape[1:])

        return self.perturbed_pool(view, "label_only", make)

    def correctness(self, view: AttackerView) -> tuple[np.ndarray, np.ndarray | None]:
        """Correct answers ``[Q + 1, N]`` of the target and ``[S, Q + 1, N]`` of the shadows."""
        flat = self.perturbations(view)
        n = len(view.labels)

        def ask(outputs: np.ndarray, released: np.ndarray) -> np.ndarray:
            copies = outputs.reshape(-1, n, outputs.shape[-1])
            return _answers_correctly(np.concatenate([released[None], copies]), view.labels)

        target = ask(view.query_target(flat), view.target_outputs)
        if not self.calibrated:
            return target, None
        shadows = np.stack(
            [ask(view.query_shadow(s, flat), view.shadow_outputs[s]) for s in range(view.n_shadows)]
        )
        return target, shadows


@register_attack("label_only")
class LabelOnly(_LabelOnly):
    """Robustness of the correct label to perturbations (Choquette-Choo et al. 2021, section 4)."""

    calibrated = False

    def score(self, view: AttackerView) -> np.ndarray:
        target, _ = self.correctness(view)
        return target.mean(axis=0)


def calibrated_log_ratio(
    target: np.ndarray, shadows: np.ndarray, in_mask: np.ndarray, out_mask: np.ndarray
) -> np.ndarray:
    """Per-point Bernoulli log-likelihood ratio of the target's answers ``[Q, N]`` (module doc)."""

    def frequency(mask: np.ndarray) -> np.ndarray:
        hits = (shadows & mask[:, None, :]).sum(axis=0)
        return (hits + 0.5) / (mask.sum(axis=0) + 1.0)  # Krichevsky-Trofimov: never 0 or 1

    t_in, t_out = frequency(in_mask), frequency(out_mask)
    ratio = np.where(target, np.log(t_in / t_out), np.log((1 - t_in) / (1 - t_out)))
    return ratio.sum(axis=0)


@register_attack("label_only_calibrated")
class LabelOnlyCalibrated(_LabelOnly):
    """Label robustness calibrated per point on the shadow models' answers (see module doc)."""

    calibrated = True
    needs_shadow_pairs = True

    def score(self, view: AttackerView) -> np.ndarray:
        target, shadows = self.correctness(view)
        return calibrated_log_ratio(target, shadows, view.in_shadows, view.out_shadows)
