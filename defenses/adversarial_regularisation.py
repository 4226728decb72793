"""Adversarial regularisation (Nasr, Shokri and Houmansadr 2018, "Machine Learning with Membership
Privacy using Adversarial Regularization", Algorithm 1).

A min-max game between the classifier ``f`` and an inference model ``h(f(x), y) -> [0, 1]`` that
plays the membership attacker. With members ``D`` and a reference set ``D'`` of non-members drawn
from the same distribution, the inference model maximises its gain (equation 5)

    G(h) = mean_{D} log h(f(x), y) + mean_{D'} log(1 - h(f(x'), y')),

for ``k`` steps, then the classifier takes one step on (equation 7)

    mean_{D} CE(f(x), y) + lambda * mean_{D} log h(f(x), y),

so ``f`` is pushed to make its members look like non-members to the best attacker it can train.

The reference set is carved out of the model's *own* members (see
:func:`benchmark.training.hooks.split_members`): the evaluation's non-members of a model are the
points the attacker scores, and the test set measures utility, so neither may inform training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import ConfigError, require
from benchmark.training.hooks import Batch, FitContext, HookRun, Setup, TrainingHook
from benchmark.training.recipe import Recipe
from defenses.base import Defense, register_defense

#: Draws one batch ``(x, y)``.
Sampler = Callable[[], tuple[torch.Tensor, torch.Tensor]]


class InferenceModel(nn.Module):
    """``h``: the prediction vector and the one-hot label, each through its own branch, then
    joined (the architecture of Nasr et al. 2018, Figure 2, scaled down to the model zoo)."""

    def __init__(self, num_classes: int, width: int = 64) -> None:
        super().__init__()
        self.prediction = nn.Sequential(
            nn.Linear(num_classes, 2 * width), nn.ReLU(), nn.Linear(2 * width, width), nn.ReLU()
        )
        self.label = nn.Sequential(nn.Linear(num_classes, width), nn.ReLU())
        self.combine = nn.Sequential(nn.Linear(2 * width, width), nn.ReLU(), nn.Linear(width, 1))

    def forward(self, probabilities: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The membership *logit* of each example (``h = sigmoid`` of it)."""
        onehot = F.one_hot(y, probabilities.shape[1]).to(probabilities.dtype)
        joined = torch.cat([self.prediction(probabilities), self.label(onehot)], dim=1)
        return self.combine(joined).squeeze(1)


class AdversarialRegulariser:
    """The inference model, its optimiser, and the two halves of each training step.

    ``sample_members`` and ``sample_reference`` draw fresh batches of the model's members (those
    it trains on) and of its reference set.
    """

    def __init__(
        self,
        num_classes: int,
        strength: float,
        steps: int,
        lr: float,
        sample_members: Sampler,
        sample_reference: Sampler,
        device: torch.device,
    ) -> None:
        self.strength = strength
        self.steps = steps
        self.sample_members = sample_members
        self.sample_reference = sample_reference
        self.model = InferenceModel(num_classes).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)

    @staticmethod
    @torch.no_grad()
    def predictions(classifier: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The classifier's probabilities in eval mode, without gradient (``h``'s input)."""
        was_training = classifier.training
        probabilities = torch.softmax(classifier.eval()(x), dim=1)
        classifier.train(was_training)
        return probabilities

    def gain_of(
        self, p_in: torch.Tensor, y_in: torch.Tensor, p_out: torch.Tensor, y_out: torch.Tensor
    ) -> torch.Tensor:
        """``G(h)`` (equation 5) from member and reference predictions and labels."""
        return (
            F.logsigmoid(self.model(p_in, y_in)).mean()
            + F.logsigmoid(-self.model(p_out, y_out)).mean()
        )

    def gain(
        self,
        classifier: nn.Module,
        members: tuple[torch.Tensor, torch.Tensor],
        reference: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        """The inference model's gain on one member and one reference batch."""
        return self.gain_of(
            self.predictions(classifier, members[0]),
            members[1],
            self.predictions(classifier, reference[0]),
            reference[1],
        )

    def update(self, classifier: nn.Module) -> float:
        """``k`` ascent steps of ``h`` on its gain, each on fresh member and reference batches
        (Algorithm 1, inner loop). Returns the last gain, for monitoring and tests.

        The classifier does not change during the inner loop, so its predictions for all ``k``
        batches are computed in one forward pass.
        """
        members = [self.sample_members() for _ in range(self.steps)]
        reference = [self.sample_reference() for _ in range(self.steps)]
        p_in = self.predictions(classifier, torch.cat([x for x, _ in members]))
        p_out = self.predictions(classifier, torch.cat([x for x, _ in reference]))
        p_in = p_in.split([len(y) for _, y in members])
        p_out = p_out.split([len(y) for _, y in reference])
        gain = torch.zeros(())
        for step in range(self.steps):
            gain = self.gain_of(p_in[step], members[step][1], p_out[step], reference[step][1])
            self.optimizer.zero_grad(set_to_none=True)
            (-gain).backward()
            self.optimizer.step()
        return float(gain.detach())

    def penalty(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``lambda * mean log h(f(x), y)`` over a member batch: the classifier's regulariser.

        Gradients reach the classifier through ``logits``; the inference model's own gradients
        from this term are discarded at its next update (its optimiser zeroes them first).
        """
        return self.strength * F.logsigmoid(self.model(torch.softmax(logits, dim=1), y)).mean()


def batch_sampler(
    x: torch.Tensor, y: torch.Tensor, indices: np.ndarray, size: int, rng: np.random.Generator
) -> Sampler:
    """A function drawing a fresh random batch (without replacement) from ``indices``."""

    def sample() -> tuple[torch.Tensor, torch.Tensor]:
        chosen = rng.choice(indices, size=min(size, len(indices)), replace=False)
        index = torch.as_tensor(chosen, device=x.device)
        return x[index], y[index]

    return sample


@dataclass(frozen=True)
class AdversarialHook(TrainingHook):
    """Holds out ``reference_fraction`` of each model's members as the reference set; before
    each classifier step the inference model takes ``steps`` steps, and its gain weighted by
    ``strength`` is added to the classifier's loss."""

    strength: float
    reference_fraction: float
    steps: int
    lr: float

    def sequential_reason(self) -> str:
        return "adversarial regularisation (defense.adversarial_regularisation)"

    def held_out(self, n_members: int) -> int:
        return round(self.reference_fraction * n_members)

    def check(self, setup: Setup) -> None:
        if self.held_out(setup.n_members) < 1:
            raise ConfigError(
                "defense.adversarial_regularisation.reference_fraction="
                f"{self.reference_fraction} holds out no reference point from each "
                f"model's {setup.n_members} members: raise it"
            )

    def start(self, context: FitContext) -> HookRun:
        data, size, rng = (context.x, context.y), context.batch_size, context.rng
        return _AdversaryRun(
            AdversarialRegulariser(
                context.num_classes,
                strength=self.strength,
                steps=self.steps,
                lr=self.lr,
                sample_members=batch_sampler(*data, context.fit, size, rng),
                sample_reference=batch_sampler(*data, context.held_out, size, rng),
                device=context.device,
            )
        )


class _AdversaryRun(HookRun):
    def __init__(self, adversary: AdversarialRegulariser) -> None:
        self.adversary = adversary

    def before_step(self, model: nn.Module) -> None:
        self.adversary.update(model)

    def penalty(self, batch: Batch) -> torch.Tensor:
        return self.adversary.penalty(batch.logits, batch.y)


@register_defense("adversarial_regularisation")
class AdversarialRegularisation(Defense):
    """Train the classifier against an inference model that tries to tell its members from a
    reference set; ``strength`` is the weight lambda of the inference model's gain in the
    classifier's loss (equation 7).

    The reference set is ``reference_fraction`` of each model's *own* members, drawn by the
    model's seed, on which the classifier takes no gradient step. It cannot be the model's
    non-members (exactly the points the attacker scores as non-members: the defense would be
    trained on the evaluation) nor the test set (utility only). The reference points stay
    members in the membership matrix (the training procedure received them); the evaluation
    scores them apart from the fitted members (``privacy_heldout/``).
    """

    family = "regularisation"

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
        return base.with_hook(AdversarialHook(p.strength, p.reference_fraction, p.steps, p.lr))
