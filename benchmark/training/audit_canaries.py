"""White-box gradient canaries for auditing the private ensemble's DP-SGD (``audit=whitebox``).

Nasr et al. 2023 ("Tight Auditing of Differentially Private Machine Learning", Section 4, Dirac
canaries) and Steinke, Nasr & Jagielski 2023 ("Privacy Auditing with One (1) Training Run",
Section 6): each of ``m`` canaries is a gradient along one coordinate of the model's parameters,
the same ``m`` distinct coordinates in every model, of norm ``10 C`` before clipping and ``C``
(the clipping bound) after Opacus's clipping rule (:func:`clipping_coefficient`). Each
canary is included in each model with probability 1/2, independently (seeded); an included
canary is Poisson-sampled into every step with the real points' rate ``q``, and when sampled its
gradient is added to the clipped gradient sum *before* the noise: to DP-SGD it is one more
training example whose clipped gradient is ``C e_j`` at every step.

The auditor's observation is the privatized gradient at each canary's coordinate after every
step (what the optimizer receives; any update rule is a post-processing of it), in units of
``C`` per example: ``x_t = g_t[j] * expected_batch_size / C``, which is ``N(r_t, sigma^2)``
when the canary is out and ``N(r_t + b_t, sigma^2)``, ``b_t ~ Bernoulli(q)``, when it is in
(``r_t``: the real examples' clipped gradients at ``j``). The statistics and the bounds are
computed from these traces in :mod:`benchmark.evaluation.canary_scores` and
:mod:`benchmark.evaluation.dp_audit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
import torch

from benchmark.training.accounting import PoissonSchedule

if TYPE_CHECKING:  # Opacus takes seconds to import; only DP runs load it
    from opacus.grad_sample import GradSampleModuleFastGradientClipping

#: A canary's gradient before clipping, in units of ``C``: larger than ``C``, so that clipping
#: is what brings it to norm ``C`` (an engine that skips clipping lets it through 10x larger).
RAW_NORM = 10.0


@dataclass(frozen=True)
class CanaryTrace:
    """What the white-box auditor saw: the inclusion bits and the per-step observations."""

    #: bool ``[K, m]``: which canaries each model included.
    included: np.ndarray
    #: float32 ``[T, K, m]``: each step's privatized gradient at each canary's coordinate, in
    #: units of ``C`` per example.
    observations: np.ndarray
    sample_rate: float
    noise_multiplier: float


class GradientCanaries:
    """Dirac gradient canaries inserted into every DP-SGD step of a stacked ensemble."""

    def __init__(
        self,
        params: list[torch.Tensor],
        n_canaries: int,
        sample_rate: float,
        max_grad_norm: float,
        expected_batch_size: int,
        noise_multiplier: float,
        seed: int,
        module: GradSampleModuleFastGradientClipping,
    ) -> None:
        self.params = params
        self.n_models = params[0].shape[0]
        sizes = [p[0].numel() for p in params]
        if n_canaries > sum(sizes):
            raise ValueError(f"{n_canaries} canaries for {sum(sizes)} parameters per model")
        self.generator = torch.Generator(params[0].device).manual_seed(seed)
        coordinates = torch.randperm(sum(sizes), generator=self.generator, device=params[0].device)
        coordinates = coordinates[:n_canaries]
        # Each parameter's canaries: (offsets within one model's slice, canary indices).
        starts = np.cumsum([0, *sizes])
        self.slots = []
        for p, start, stop in zip(params, starts[:-1], starts[1:], strict=True):
            inside = ((coordinates >= int(start)) & (coordinates < int(stop))).nonzero().ravel()
            self.slots.append((p, coordinates[inside] - int(start), inside))
        shape = (self.n_models, n_canaries)
        self.included = torch.rand(shape, generator=self.generator, device=params[0].device) < 0.5
        self.sample_rate, self.max_grad_norm = sample_rate, max_grad_norm
        self.norm = max_grad_norm * RAW_NORM * clipping_coefficient(module, RAW_NORM)
        self.scale = expected_batch_size / max_grad_norm
        self.noise_multiplier = noise_multiplier
        self.observed: list[torch.Tensor] = []

    @classmethod
    def attach(
        cls,
        module: GradSampleModuleFastGradientClipping,
        n_canaries: int,
        schedule: PoissonSchedule,
        noise_multiplier: float,
        seed: int,
    ) -> GradientCanaries:
        """Canaries for the stacked module's trainable parameters, at the schedule's rate."""
        return cls(
            [p for p in module.parameters() if p.requires_grad],
            n_canaries,
            schedule.sample_rate,
            module.max_grad_norm,
            schedule.expected_batch_size,
            noise_multiplier,
            seed,
            module,
        )

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Add the sampled canaries' gradients to the clipped sum, run the optimizer's step
        (noise, scaling, update) and record the privatized gradient at every canary."""
        shape = self.included.shape
        drawn = torch.rand(shape, generator=self.generator, device=self.included.device)
        sampled = (drawn < self.sample_rate) & self.included
        for p, offsets, index in self.slots:
            if len(index) and p.grad is not None:
                flat = p.grad.view(self.n_models, -1)
                flat[:, offsets] += self.norm * sampled[:, index].to(flat.dtype)
        optimizer.step()
        observed = torch.empty(shape, device=self.included.device)
        for p, offsets, index in self.slots:
            grad = p.grad.view(self.n_models, -1) if p.grad is not None else None
            observed[:, index] = 0.0 if grad is None else grad[:, offsets].float() * self.scale
        self.observed.append(observed)

    def trace(self) -> CanaryTrace:
        """The inclusion bits and every step's observations, on the CPU."""
        observations = torch.stack(self.observed) if self.observed else torch.empty(0)
        return CanaryTrace(
            included=self.included.cpu().numpy(),
            observations=observations.cpu().numpy().astype(np.float32),
            sample_rate=self.sample_rate,
            noise_multiplier=self.noise_multiplier,
        )


def clipping_coefficient(module: GradSampleModuleFastGradientClipping, raw_norm: float) -> float:
    """The factor the module's own clipping rule (Opacus's ``get_clipping_coef``) applies to an
    example whose gradient has norm ``raw_norm * C``: the canary is clipped by the same code as
    the real examples' coefficients, so a rule that stops clipping stops clipping it too."""
    norms = torch.tensor([[raw_norm * module.max_grad_norm]])
    probe = SimpleNamespace(max_grad_norm=module.max_grad_norm, get_norm_sample=lambda: norms)
    return float(type(module).get_clipping_coef(probe).max())
