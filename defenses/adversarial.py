"""Adversarial regularisation (Nasr, Shokri and Houmansadr 2018, "Machine Learning with
Membership Privacy using Adversarial Regularization", Algorithm 1)."""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.errors import require
from benchmark.training.recipe import Recipe
from defenses.base import Defense, register_defense


@register_defense("adversarial_regularisation")
class AdversarialRegularisation(Defense):
    """Train the classifier against an inference model that tries to tell its members from a
    reference set; ``strength`` is the weight lambda of the inference model's gain in the
    classifier's loss (equation 7; see :mod:`benchmark.training.adversarial`).

    The reference set is ``reference_fraction`` of each model's *own* members, drawn by the
    model's seed, on which the classifier takes no gradient step. It cannot be the model's
    non-members (exactly the points the attacker scores as non-members: the defense would be
    trained on the evaluation) nor the test set (utility only). The reference points stay
    members in the membership matrix: the training procedure received them.
    """

    @dataclass
    class Params:
        strength: float = 1.0
        reference_fraction: float = 0.2
        #: Inference-model steps per classifier step (k in Algorithm 1) and its learning rate
        #: (5 and 1e-3, as in the re-implementation of Chen et al. 2022).
        steps: int = 5
        lr: float = 1e-3

    def check(self, n_train: int, num_classes: int) -> None:
        p, name = self.params, "defense.adversarial_regularisation"
        require(p.strength > 0, f"{name}.strength must be > 0 (got {p.strength})")
        require(
            0 < p.reference_fraction < 1,
            f"{name}.reference_fraction must be in (0, 1) (got {p.reference_fraction})",
        )
        require(p.steps >= 1, f"{name}.steps must be >= 1 (got {p.steps})")
        require(p.lr > 0, f"{name}.lr must be > 0 (got {p.lr})")

    def recipe(self, base: Recipe) -> Recipe:
        p = self.params
        return base.replace(
            adversarial_lambda=p.strength,
            adversarial_reference_fraction=p.reference_fraction,
            adversarial_steps=p.steps,
            adversarial_lr=p.lr,
        )
