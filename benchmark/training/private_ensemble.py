"""DP-SGD for a stacked ensemble, through Opacus, with every model clipped and noised on its own.

Opacus's ghost clipping (Li et al. 2022, "Large Language Models Can Be Strong Differentially
Private Learners"; Opacus's ``GradSampleModuleFastGradientClipping``) runs unchanged on the
stacked network: the norm samplers of :mod:`benchmark.training.stacked_samplers` report each
example's gradient norm per model (``[B, K]``), so each model's examples are clipped to ``C`` by
that model's own norm; Opacus's ``DPOptimizerFastGradientClipping`` then adds Gaussian noise of
standard deviation ``sigma * C`` to every element of the stacked gradient (independent noise for
every model) and divides by the expected batch size. This is DP-SGD (Abadi et al. 2016,
Algorithm 1) for each of the ``K`` models, as ``PrivacyEngine`` runs it for one;
``tests/training/test_dpsgd.py`` checks the clipping, the noise and the epsilon against Opacus's
reference path.

Each model draws its own Poisson batches from its own members; the ``K`` batches are padded to the
largest one and the padding is masked out of the loss, so it contributes no gradient.
"""

from __future__ import annotations

import numpy as np
import torch
from opacus.grad_sample import GradSampleModuleFastGradientClipping
from opacus.optimizers import DPOptimizerFastGradientClipping

import benchmark.training.stacked_samplers  # noqa: F401  (registers the samplers of the stacked layers)
from benchmark.progress import TRAIN_ACC, TRAIN_LOSS, report_epoch
from benchmark.progress import progress as show_progress
from benchmark.protocol.membership import Membership
from benchmark.training.accounting import (
    DPParams,
    make_accountant,
    noise_multiplier,
    poisson_schedule,
)
from benchmark.training.audit_canaries import CanaryTrace, GradientCanaries
from benchmark.training.input_canaries import InputCanaries, InputCanaryTrace
from benchmark.training.recipe import Recipe
from benchmark.training.stacked_samplers import clipped_linear_gradients, per_model_norm_samplers
from benchmark.training.stacked_steps import check_finite, per_model_loss, stacked_batch
from benchmark.training.stacking import (
    Ensemble,
    NotStackable,
    StackedLinear,
    without_weight_gradients,
)
from benchmark.training.steps import make_optimizer


def poisson_batch(
    members: torch.Tensor, sample_rate: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Poisson-sampled batch per model: pool indices ``[K, B]`` and a mask ``[K, B]``.

    Each of model ``k``'s members (row ``k`` of ``members``) is drawn independently with
    probability ``sample_rate``, as Opacus's ``UniformWithReplacementSampler`` draws them. The
    ``K`` batches are padded to the largest one (at least 1); ``mask`` is False on padding.
    """
    drawn = torch.rand(members.shape, generator=generator, device=members.device) < sample_rate
    size = max(int(drawn.sum(dim=1).max()), 1)
    # A stable sort puts each model's drawn members first, in pool order, then the padding.
    order = torch.argsort((~drawn).to(torch.uint8), dim=1, stable=True)[:, :size]
    return members.gather(1, order), drawn.gather(1, order)


class PrivateEnsemble:
    """A stacked ensemble wrapped for DP-SGD: Opacus's ghost-clipping module and optimizer."""

    #: White-box audit canaries inserted into every step (``audit=whitebox``), or None.
    canaries: GradientCanaries | None = None

    def __init__(
        self,
        ensemble: Ensemble,
        optimizer: torch.optim.Optimizer,
        dp: DPParams,
        sigma: float,
        expected_batch_size: int,
        generator: torch.Generator | None = None,
    ) -> None:
        for layer in ensemble.modules():
            trainable = any(p.requires_grad for p in layer.parameters(recurse=False))
            if trainable and type(layer) not in per_model_norm_samplers():
                raise NotStackable(f"no per-model norm sampler for {type(layer).__name__}")
        self.module = GradSampleModuleFastGradientClipping(
            ensemble, batch_first=True, loss_reduction="sum", max_grad_norm=dp.max_grad_norm
        )
        self.optimizer = DPOptimizerFastGradientClipping(
            optimizer,
            noise_multiplier=sigma,
            max_grad_norm=dp.max_grad_norm,
            expected_batch_size=expected_batch_size,
            loss_reduction="mean",  # divide the noisy sum by the expected batch size, as Opacus
            generator=generator,
        )
        # The first backward pass only needs the hooks to fire: asking for the first layer's
        # gradients alone makes autograd reach every layer's output, and stacked linear layers
        # skip their weight gradients (built-in layers skip what is not asked for).
        self._first = next(list(m.parameters()) for m in ensemble.layers if list(m.parameters()))
        # An all-linear stack needs no second backward pass (book-keeping, see
        # clipped_linear_gradients); convolutions and GroupNorm take ghost clipping's second pass.
        trainable = [
            m for m in ensemble.modules() if any(p.requires_grad for p in m.parameters(False))
        ]
        self._linear = [m for m in trainable if isinstance(m, StackedLinear)]
        self._bookkeeping = len(self._linear) == len(trainable)

    def step(
        self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, label_smoothing: float = 0.0
    ) -> torch.Tensor:
        """One DP-SGD step on the batches ``x [B, K, ...]``, ``y``/``mask [B, K]``.

        Returns each model's summed loss over its examples (``[K]``). Opacus's ghost clipping
        (``DPTensorFastGradientClipping.backward``) with clipping coefficients ``[B, K]``: a
        first backward pass gives every example's gradient norm per model, a second one the sum
        of the clipped gradients, to which the optimizer adds the noise. An all-linear stack
        skips the second pass: the clipped sum is one product of the first pass's tensors.
        """
        self.module.train()
        logits = self.module(x)
        losses = per_model_loss(logits, y, label_smoothing)
        losses = torch.where(mask, losses, 0.0)
        # Each model's correct answers on its examples, for the training curve (no gradient).
        self.last_hits = ((logits.detach().argmax(-1) == y) & mask).sum(dim=0)
        self.optimizer.zero_grad(set_to_none=True)
        with without_weight_gradients():
            torch.autograd.grad(
                losses.sum(), self._first, retain_graph=not self._bookkeeping, allow_unused=True
            )
        coefficients = self.module.get_clipping_coef()
        if self._bookkeeping:
            clipped_linear_gradients(self._linear, coefficients)
        else:
            self.module.disable_hooks()
            (coefficients * losses).sum().backward()
            self.module.enable_hooks()
            for layer in self._linear:
                layer.bookkeeping = None
        if self.canaries is None:
            self.optimizer.step()
        else:
            self.canaries.step(self.optimizer)
        return losses.detach().sum(dim=0)

    def close(self) -> None:
        self.module.remove_hooks()


def report_curve(epoch: int, sums: torch.Tensor) -> None:
    """One epoch's training curve from per-model sums ``[3, K]`` (loss, correct, examples): the
    mean per example of each model, and their mean over the models."""
    loss, acc = (sums[:2] / sums[2].clamp(min=1)).tolist()
    per_model = {TRAIN_LOSS: loss, TRAIN_ACC: acc}
    report_epoch(epoch, {k: sum(v) / len(v) for k, v in per_model.items()}, per_model)


def fit_private(
    ensemble: Ensemble,
    recipe: Recipe,
    x: torch.Tensor,
    y: torch.Tensor,
    membership: Membership,
    progress: bool,
    num_classes: int,
) -> tuple[list[float], CanaryTrace | InputCanaryTrace | None]:
    """Train ``ensemble`` with DP-SGD; return the epsilon each model spent, from the accountant,
    and the audit canaries' trace (``recipe.audit``'s ``recipe.audit_canaries``; None without)."""
    dp = recipe.dp
    assert dp is not None
    members = torch.as_tensor(
        np.stack([membership.members(k) for k in range(membership.n_models)]), device=x.device
    )
    schedule = poisson_schedule(members.shape[1], recipe.batch_size, recipe.epochs)
    seed = int(membership.seeds[0])
    sigma = noise_multiplier(dp, schedule)
    private = PrivateEnsemble(
        ensemble,
        make_optimizer(recipe, ensemble.parameters()),
        dp,
        sigma,
        schedule.expected_batch_size,
        generator=torch.Generator(x.device).manual_seed(seed + 1),
    )
    if recipe.audit == "whitebox":
        private.canaries = GradientCanaries.attach(
            private.module, recipe.audit_canaries, schedule, sigma, seed=seed + 2
        )
    input_canaries = None
    if recipe.audit == "blackbox":
        input_canaries = InputCanaries(
            x, recipe.audit_canaries, num_classes, membership.n_models, schedule.sample_rate, seed
        )
        x, y = input_canaries.extend(x, y)
    # Every model runs the same mechanism (same sigma, sampling rate and number of steps), so one
    # accountant accounts for each of them.
    accountant = make_accountant(dp)
    private.optimizer.attach_step_hook(
        accountant.get_optimizer_hook_fn(sample_rate=schedule.sample_rate)
    )
    sampler = torch.Generator(x.device).manual_seed(seed)
    # Per-model sums [3, K] (loss, correct, examples) over the epoch's Poisson batches.
    sums = torch.zeros(3, membership.n_models, dtype=torch.float64, device=x.device)
    for step in show_progress(
        range(schedule.steps), "training (DP-SGD)", unit="step", enabled=progress
    ):
        index, mask = poisson_batch(members, schedule.sample_rate, sampler)
        if input_canaries is not None:
            index, mask = input_canaries.add_to_batch(index, mask)
        inputs, labels = stacked_batch(x, y, index)
        losses = private.step(inputs, labels, mask.T, recipe.label_smoothing)
        check_finite(losses)
        counts = (losses, private.last_hits, mask.T.sum(dim=0))
        sums += torch.stack([c.to(torch.float64) for c in counts])
        if (step + 1) % schedule.steps_per_epoch == 0:
            report_curve((step + 1) // schedule.steps_per_epoch, sums)
            sums.zero_()
    private.close()
    trace = input_canaries.trace() if input_canaries is not None else None
    if private.canaries is not None:
        trace = private.canaries.trace()
    return [float(accountant.get_epsilon(dp.delta))] * membership.n_models, trace
