"""The sequential engine: one model after another, a plain PyTorch (or Opacus) loop each.

It is the reference that faster engines are tested against, and it implements every training-time
defense (see :func:`fit`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from benchmark.data.pool import Pool
from benchmark.protocol.membership import Membership
from benchmark.training.adversarial import AdversarialRegulariser, batch_sampler
from benchmark.training.augmentation import augment
from benchmark.training.objectives import mixup_loss, relaxloss
from benchmark.training.recipe import Recipe
from benchmark.training.steps import epoch_batches, init_model, make_optimizer
from benchmark.training.trained import Models, TrainingDiverged, resolve_device


@dataclass(frozen=True)
class MemberSplit:
    """How one model uses its members: gradient steps, early-stopping validation, reference set.

    All three are subsets of the model's own row of the membership matrix, so training never
    reads a point the attacker scores as a non-member of this model. Held-out members stay
    members in the membership matrix: the training procedure received them (the definition of
    membership that DP and the attacks use), and a defense that spends part of its training set
    on validation or as a reference pays for it in utility, which the evaluation records.
    """

    fit: np.ndarray
    validation: np.ndarray
    reference: np.ndarray


def split_sizes(recipe: Recipe, n_members: int) -> tuple[int, int]:
    """Sizes of the validation and reference splits of ``n_members`` members."""
    n_validation = round(recipe.validation_fraction * n_members) if recipe.early_stopping else 0
    n_reference = (
        round(recipe.adversarial_reference_fraction * n_members) if recipe.adversarial else 0
    )
    return n_validation, n_reference


def split_members(recipe: Recipe, members: np.ndarray, seed: int) -> MemberSplit:
    """Split a model's members by its seed; ``fit`` is all of them when nothing is held out."""
    n_validation, n_reference = split_sizes(recipe, len(members))
    if n_validation + n_reference == 0:
        return MemberSplit(members, members[:0], members[:0])
    shuffled = np.random.default_rng([int(seed), 0x5B117]).permutation(members)
    held = n_validation + n_reference
    return MemberSplit(
        fit=np.sort(shuffled[held:]),
        validation=np.sort(shuffled[:n_validation]),
        reference=np.sort(shuffled[n_validation:held]),
    )


class EarlyStopping:
    """Track the validation loss after each epoch; keep the best weights (lowest loss)."""

    def __init__(self, patience: int, x: torch.Tensor, y: torch.Tensor) -> None:
        self.patience = patience
        self.x, self.y = x, y
        self.best_loss = float("inf")
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None

    @torch.no_grad()
    def validation_loss(self, model: nn.Module) -> float:
        model.eval()
        loss = nn.functional.cross_entropy(model(self.x), self.y).item()
        model.train()
        return loss

    def should_stop(self, model: nn.Module, epoch: int) -> bool:
        """Record epoch ``epoch``'s validation loss; True once ``patience`` epochs passed
        without improvement."""
        loss = self.validation_loss(model)
        if not np.isfinite(loss):
            raise TrainingDiverged(f"validation loss became {loss} (try a smaller training.lr)")
        if loss < self.best_loss:
            self.best_loss, self.best_epoch = loss, epoch
            self.best_state = copy.deepcopy(model.state_dict())
        return epoch - self.best_epoch >= self.patience

    def restore(self, model: nn.Module) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)


@dataclass
class FitResult:
    """A trained model and what its training did (for tests and diagnostics)."""

    model: nn.Module
    split: MemberSplit
    epochs_run: int
    #: The epoch whose weights were kept (early stopping), else the last one.
    best_epoch: int


def batch_loss(
    model: nn.Module,
    recipe: Recipe,
    x: torch.Tensor,
    y: torch.Tensor,
    epoch: int,
    rng: np.random.Generator,
    adversary: AdversarialRegulariser | None,
) -> torch.Tensor:
    """The loss of one mini-batch under the recipe's objective and regularisers."""
    if recipe.augments:
        x = augment(x, recipe.augment_shift, recipe.augment_flip, rng)
    if recipe.mixup_alpha > 0:
        loss = mixup_loss(model, x, y, recipe.mixup_alpha, rng, recipe.label_smoothing)
        logits = None
    else:
        logits = model(x)
        if recipe.relaxloss_alpha > 0:
            loss = relaxloss(logits, y, recipe.relaxloss_alpha, epoch)
        else:
            loss = nn.functional.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
    if adversary is not None:
        loss = loss + adversary.penalty(model(x) if logits is None else logits, y)
    return loss


def make_adversary(
    recipe: Recipe,
    num_classes: int,
    split: MemberSplit,
    data: tuple[torch.Tensor, torch.Tensor],
    rng: np.random.Generator,
) -> AdversarialRegulariser | None:
    """The inference model of adversarial regularisation, when the recipe asks for it."""
    if not recipe.adversarial:
        return None
    return AdversarialRegulariser(
        num_classes,
        strength=recipe.adversarial_lambda,
        steps=recipe.adversarial_steps,
        lr=recipe.adversarial_lr,
        sample_members=batch_sampler(*data, split.fit, recipe.batch_size, rng),
        sample_reference=batch_sampler(*data, split.reference, recipe.batch_size, rng),
        device=data[0].device,
    )


def fit(
    recipe: Recipe, pool: Pool, members: np.ndarray, seed: int, device: torch.device
) -> FitResult:
    """Train one model on its ``members`` with every training-time defense of ``recipe``."""
    model = init_model(recipe, pool, seed).to(device)
    optimizer = make_optimizer(recipe, model.parameters())
    x = torch.as_tensor(pool.x, device=device)
    y = torch.as_tensor(pool.y, device=device)
    split = split_members(recipe, members, seed)
    # Randomness of the defenses (augmentation, mixup, adversary batches), apart from the batch
    # order, so that an undefended recipe trains exactly as before any defense existed.
    rng = np.random.default_rng([int(seed), 0xDEF])
    adversary = make_adversary(recipe, pool.num_classes, split, (x, y), rng)
    stopper = None
    if recipe.early_stopping:
        index = torch.as_tensor(split.validation, device=device)
        stopper = EarlyStopping(recipe.early_stopping_patience, x[index], y[index])
    model.train()
    epoch = -1
    for epoch, batches in enumerate(
        epoch_batches(split.fit, recipe.epochs, recipe.batch_size, seed)
    ):
        for batch in batches:
            if adversary is not None:
                adversary.update(model)
            index = torch.as_tensor(batch, device=device)
            loss = batch_loss(model, recipe, x[index], y[index], epoch, rng, adversary)
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"loss became {loss.item()} (try a smaller training.lr)")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if stopper is not None and stopper.should_stop(model, epoch):
            break
    best_epoch = epoch
    if stopper is not None:
        stopper.restore(model)
        best_epoch = stopper.best_epoch
    return FitResult(model.eval(), split, epoch + 1, best_epoch)


def train_one(
    recipe: Recipe, pool: Pool, members: np.ndarray, seed: int, device: torch.device
) -> nn.Module:
    """Train one model on ``pool.x[members]`` (see :func:`fit`)."""
    return fit(recipe, pool, members, seed, device).model


def train_sequential(
    recipe: Recipe, pool: Pool, membership: Membership, progress: bool = True
) -> Models:
    """The reference engine: one model after another, a plain PyTorch (or Opacus) loop each."""
    device = resolve_device(recipe.device)
    modules, epsilons = [], []
    for k in tqdm(range(membership.n_models), desc="training", unit="model", disable=not progress):
        members, seed = membership.members(k), int(membership.seeds[k])
        if recipe.dp is None:
            modules.append(train_one(recipe, pool, members, seed, device))
        else:
            # Opacus takes seconds to import: only DP runs pay for it.
            from benchmark.training.private import train_one_private

            module, epsilon = train_one_private(recipe, pool, members, seed, device)
            modules.append(module)
            epsilons.append(epsilon)
    return Models(modules=modules, device=device, epsilons=epsilons if recipe.dp else None)
