"""Training the ``K`` models of a configuration, each on its own row of the membership matrix.

A :class:`Recipe` is the complete description of how one model is trained; defenses change it
through their ``recipe`` hook (see :mod:`defenses.base`). :func:`train` dispatches to an engine:
``sequential`` trains the models one after another and is the reference that faster engines are
tested against; ``ensemble`` (:mod:`benchmark.ensemble`, the default) trains them all at once
and hands recipes it cannot train to ``sequential``.

The sequential engine implements every training-time defense (early stopping, augmentation,
mixup, RelaxLoss, adversarial regularisation: see :func:`fit`). A recipe with ``dp`` set
trains with DP-SGD; the sequential engine then runs Opacus's ``PrivacyEngine`` on each
model, the reference for the ensemble's private path.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from benchmark.accounting import DPParams, noise_multiplier, poisson_schedule
from benchmark.adversarial import AdversarialRegulariser, batch_sampler
from benchmark.augmentation import augment
from benchmark.data import Pool
from benchmark.errors import ConfigError
from benchmark.models import build_model
from benchmark.objectives import mixup_loss, relaxloss
from benchmark.protocol import Membership


class TrainingDiverged(RuntimeError):
    """Raised when a model's loss stops being finite; the run is recorded as failed."""


@dataclass(frozen=True)
class Recipe:
    """How every model of a configuration is trained (before the release hook).

    The fields after ``device`` are the training-time defenses' switches; each is off at its
    default, so an undefended recipe trains exactly as plain mini-batch SGD/Adam.
    """

    model: str = "mlp"
    model_options: dict[str, Any] = field(default_factory=dict)
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    epochs: int = 30
    batch_size: int = 64
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    engine: str = "ensemble"
    device: str = "cpu"
    #: Early stopping: stop after this many epochs without a lower validation loss (0: off) and
    #: restore the best weights; the validation split is this fraction of the model's members.
    early_stopping_patience: int = 0
    validation_fraction: float = 0.0
    #: Image augmentation: random shifts of up to this many pixels, and random horizontal flips.
    augment_shift: int = 0
    augment_flip: bool = False
    #: Mixup's Beta(alpha, alpha) parameter (0: off).
    mixup_alpha: float = 0.0
    #: RelaxLoss's target loss level alpha (0: off).
    relaxloss_alpha: float = 0.0
    #: Adversarial regularisation: the weight lambda of the inference model's gain (0: off), the
    #: fraction of the model's members held out as its reference set, the inference model's
    #: steps per classifier step (k) and learning rate.
    adversarial_lambda: float = 0.0
    adversarial_reference_fraction: float = 0.0
    adversarial_steps: int = 1
    adversarial_lr: float = 1e-3
    #: DP-SGD's budget and clipping norm (the ``dpsgd`` defense); None trains without privacy.
    dp: DPParams | None = None

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)

    @property
    def early_stopping(self) -> bool:
        return self.early_stopping_patience > 0

    @property
    def augments(self) -> bool:
        return self.augment_shift > 0 or self.augment_flip

    @property
    def adversarial(self) -> bool:
        return self.adversarial_lambda > 0


def needs_sequential(recipe: Recipe) -> str | None:
    """Why only the sequential engine can train ``recipe`` (None when any engine can).

    Other engines fall back to the sequential one, or refuse, on these recipe fields.
    """
    reasons = {
        "early stopping (early_stopping_patience)": recipe.early_stopping,
        "data augmentation (augment_shift, augment_flip)": recipe.augments,
        "mixup (mixup_alpha)": recipe.mixup_alpha > 0,
        "RelaxLoss (relaxloss_alpha)": recipe.relaxloss_alpha > 0,
        "adversarial regularisation (adversarial_lambda)": recipe.adversarial,
    }
    needed = [name for name, on in reasons.items() if on]
    return " and ".join(needed) + " need the sequential engine" if needed else None


@dataclass
class Models:
    """The ``K`` trained models; ``logits(k, x)`` is the only way to run one."""

    modules: list[nn.Module]
    device: torch.device
    #: Per-model privacy spent (DP-SGD only), from the accountant.
    epsilons: list[float] | None = None

    @property
    def n_models(self) -> int:
        return len(self.modules)

    @torch.no_grad()
    def logits(self, k: int, x: np.ndarray | torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """Logits of model ``k`` on ``x`` (numpy or tensor), on the CPU, in float32."""
        module = self.modules[k].eval()
        x = torch.as_tensor(x, dtype=torch.float32)
        parts = [
            module(x[i : i + batch_size].to(self.device)).cpu()
            for i in range(0, len(x), batch_size)
        ]
        return torch.cat(parts) if parts else torch.empty(0)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("training.device=cuda but no GPU is visible: use training.device=auto")
    return torch.device(name)


def init_model(recipe: Recipe, pool: Pool, seed: int) -> nn.Module:
    """Model ``seed``'s initial weights; every engine starts from exactly these."""
    torch.manual_seed(int(seed))
    return build_model(recipe.model, pool.input_shape, pool.num_classes, **recipe.model_options)


def epoch_batches(
    members: np.ndarray, epochs: int, batch_size: int, seed: int
) -> Iterator[list[np.ndarray]]:
    """The mini-batches (pool indices) of each epoch: a fresh shuffle of ``members`` per epoch."""
    rng = np.random.default_rng([int(seed), 0xBA7C4])
    for _ in range(epochs):
        shuffled = rng.permutation(members)
        yield [shuffled[i : i + batch_size] for i in range(0, len(shuffled), batch_size)]


def batch_order(
    members: np.ndarray, epochs: int, batch_size: int, seed: int
) -> Iterator[np.ndarray]:
    """The mini-batches (pool indices) of one model: a fresh shuffle of its members each epoch."""
    for batches in epoch_batches(members, epochs, batch_size, seed):
        yield from batches


def make_optimizer(recipe: Recipe, params: Any) -> torch.optim.Optimizer:
    # The fused kernels apply the same update rule in one pass over the parameters: several
    # times faster than one kernel per operation on the ensemble's stacked parameters.
    fused = {"fused": True} if _fused_kernels() else {}
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=recipe.lr,
            momentum=recipe.momentum,
            weight_decay=recipe.weight_decay,
            **fused,
        )
    # Coupled L2 (torch.optim.Adam), so that weight decay means the same penalty for both.
    return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay, **fused)


@functools.cache
def _fused_kernels() -> bool:
    """Whether this torch has fused SGD and Adam kernels for CPU tensors (torch >= 2.4)."""
    probe = [torch.zeros(1, requires_grad=True)]
    try:
        torch.optim.SGD(probe, lr=0.1, fused=True)
        torch.optim.Adam(probe, lr=0.1, fused=True)
    except (RuntimeError, TypeError):
        return False
    return True


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


def check_recipe(recipe: Recipe, pool: Pool) -> None:
    """Refuse a recipe that cannot train on ``pool``, before any training; raise ConfigError."""
    build_model(recipe.model, pool.input_shape, pool.num_classes, **recipe.model_options)
    if recipe.model == "logreg" and recipe.model_options.get("dropout", 0) > 0:
        raise ConfigError(
            "model=logreg has no hidden layer to apply dropout to: use model=mlp or model=cnn"
        )
    if recipe.augments and pool.kind != "image":
        raise ConfigError(
            f"defense=augmentation shifts and flips images, but data={pool.name} is "
            f"{pool.kind}: use it with image data (digits, cifar10) or remove it"
        )
    if recipe.relaxloss_alpha > 0 and (recipe.mixup_alpha > 0 or recipe.label_smoothing > 0):
        raise ConfigError(
            "defense=relaxloss defines its own loss and cannot be combined with mixup or "
            "label_smoothing: select only one of them"
        )
    sequential_only = needs_sequential(recipe)
    if recipe.dp is not None and sequential_only:
        raise ConfigError(
            f"defense=dpsgd trains plain DP-SGD (Opacus): "
            f"{sequential_only.split(' need')[0]} cannot be combined with it"
        )
    n_members = len(pool) // 2
    n_validation, n_reference = split_sizes(recipe, n_members)
    if recipe.early_stopping and n_validation < 1:
        raise ConfigError(
            f"defense.early_stopping.validation_fraction={recipe.validation_fraction} holds out "
            f"no validation point from each model's {n_members} members: raise it"
        )
    if recipe.adversarial and n_reference < 1:
        raise ConfigError(
            "defense.adversarial_regularisation.reference_fraction="
            f"{recipe.adversarial_reference_fraction} holds out no reference point from each "
            f"model's {n_members} members: raise it"
        )
    if n_members - n_validation - n_reference < 1:
        raise ConfigError(
            f"the held-out fractions leave none of each model's {n_members} members to train "
            "on: lower validation_fraction / reference_fraction"
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


def train_one_private(
    recipe: Recipe, pool: Pool, members: np.ndarray, seed: int, device: torch.device
) -> tuple[nn.Module, float]:
    """Train one model with DP-SGD through Opacus's ``PrivacyEngine``; return it and its epsilon.

    The reference DP-SGD path: Poisson sampling from a ``DataLoader`` of ``recipe.batch_size``,
    the noise multiplier that spends ``recipe.dp.target_epsilon`` over ``recipe.epochs`` (what
    ``make_private_with_epsilon`` computes, cached across models), and the epsilon spent as the
    engine's accountant reports it.
    """
    from opacus import PrivacyEngine  # seconds to import: only DP runs pay for it

    dp = recipe.dp
    assert dp is not None
    model = init_model(recipe, pool, seed).to(device)
    data = torch.utils.data.TensorDataset(
        torch.as_tensor(pool.x[members], device=device),
        torch.as_tensor(pool.y[members], device=device),
    )
    loader = torch.utils.data.DataLoader(
        data, batch_size=recipe.batch_size, generator=torch.Generator().manual_seed(int(seed))
    )
    schedule = poisson_schedule(len(members), recipe.batch_size, recipe.epochs)
    engine = PrivacyEngine(accountant=dp.accountant)
    private, optimizer, loader = engine.make_private(
        module=model,
        optimizer=make_optimizer(recipe, model.parameters()),
        data_loader=loader,
        noise_multiplier=noise_multiplier(dp, schedule),
        max_grad_norm=dp.max_grad_norm,
        poisson_sampling=True,
        noise_generator=torch.Generator(device).manual_seed(int(seed) + 1),
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    private.train()
    for _ in range(recipe.epochs):
        for x, y in loader:
            loss = loss_fn(private(x), y)
            # An empty Poisson batch has a NaN mean loss but no gradient: Opacus adds noise only.
            if len(y) and not torch.isfinite(loss):
                raise TrainingDiverged(f"loss became {loss.item()} (try a smaller training.lr)")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    private.remove_hooks()
    return private._module.eval(), float(engine.get_epsilon(dp.delta))


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
            module, epsilon = train_one_private(recipe, pool, members, seed, device)
            modules.append(module)
            epsilons.append(epsilon)
    return Models(modules=modules, device=device, epsilons=epsilons if recipe.dp else None)


Engine = Callable[[Recipe, Pool, Membership, bool], Models]
ENGINES: dict[str, Engine] = {"sequential": train_sequential}


def train(recipe: Recipe, pool: Pool, membership: Membership, progress: bool = True) -> Models:
    """Train all ``K`` models of ``membership`` with ``recipe`` on the engine it names."""
    check_recipe(recipe, pool)
    if recipe.engine not in ENGINES:
        raise ConfigError(
            f"unknown training.engine={recipe.engine}: choose one of {sorted(ENGINES)}"
        )
    return ENGINES[recipe.engine](recipe, pool, membership, progress)


# The ensemble engine lives in its own module, which registers itself in ENGINES on import.
from benchmark import ensemble as _ensemble  # noqa: E402, F401
