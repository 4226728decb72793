"""Training the ``K`` models of a configuration, each on its own row of the membership matrix.

A :class:`Recipe` is the complete description of how one model is trained; defenses change it
through their ``recipe`` hook (see :mod:`defenses.base`). :func:`train` dispatches to an engine:
``sequential`` trains the models one after another and is the reference that faster engines are
tested against; ``ensemble`` (:mod:`benchmark.ensemble`, the default) trains them all at once.

A recipe with ``dp`` set trains with DP-SGD; the sequential engine then runs Opacus's
``PrivacyEngine`` on each model, the reference for the ensemble's private path.
"""

from __future__ import annotations

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
from benchmark.data import Pool
from benchmark.errors import ConfigError
from benchmark.models import build_model
from benchmark.protocol import Membership


class TrainingDiverged(RuntimeError):
    """Raised when a model's loss stops being finite; the run is recorded as failed."""


@dataclass(frozen=True)
class Recipe:
    """How every model of a configuration is trained (before the release hook)."""

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
    #: DP-SGD's budget and clipping norm (the ``dpsgd`` defense); None trains without privacy.
    dp: DPParams | None = None

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)


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


def batch_order(
    members: np.ndarray, epochs: int, batch_size: int, seed: int
) -> Iterator[np.ndarray]:
    """The mini-batches (pool indices) of one model: a fresh shuffle of its members each epoch."""
    rng = np.random.default_rng([int(seed), 0xBA7C4])
    for _ in range(epochs):
        shuffled = rng.permutation(members)
        yield from (shuffled[i : i + batch_size] for i in range(0, len(shuffled), batch_size))


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


def train_one(
    recipe: Recipe, pool: Pool, members: np.ndarray, seed: int, device: torch.device
) -> nn.Module:
    """Train one model on ``pool.x[members]`` with plain mini-batch SGD/Adam."""
    model = init_model(recipe, pool, seed).to(device)
    optimizer = make_optimizer(recipe, model.parameters())
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    x = torch.as_tensor(pool.x, device=device)
    y = torch.as_tensor(pool.y, device=device)
    model.train()
    for batch in batch_order(members, recipe.epochs, recipe.batch_size, seed):
        index = torch.as_tensor(batch, device=device)
        loss = loss_fn(model(x[index]), y[index])
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"loss became {loss.item()} (try a smaller training.lr)")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval()


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
    if recipe.engine not in ENGINES:
        raise ConfigError(
            f"unknown training.engine={recipe.engine}: choose one of {sorted(ENGINES)}"
        )
    return ENGINES[recipe.engine](recipe, pool, membership, progress)


# The ensemble engine lives in its own module, which registers itself in ENGINES on import.
from benchmark import ensemble as _ensemble  # noqa: E402, F401
