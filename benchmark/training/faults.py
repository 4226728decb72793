"""Seeded bugs in the private engine, for showing that the DP audit catches them (test-only).

Not a user option and not in ``conf/``: the tests and ``benchmark.bench.dp_audit`` enter
:func:`inject` around a training run. Each fault patches Opacus (the code the private ensemble
runs) for the duration of the ``with`` block only, so the engine's own code is unchanged:

- ``noise_div10``: the optimizer adds a tenth of the noise, while the accountant is told the
  full noise multiplier (Opacus's ``_adjusted_noise_multiplier``, the noise actually drawn);
- ``no_clipping``: the clipping coefficients are all 1 (Opacus's ``get_clipping_coef``), so no
  example's gradient is clipped;
- ``sample_rate_underreported``: the accountant, and the noise calibration, are told a sampling
  rate ten times smaller than the one batches are drawn with, over the same number of steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from unittest import mock

import torch
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants import utils as accountant_utils
from opacus.grad_sample import GradSampleModuleFastGradientClipping
from opacus.optimizers import DPOptimizerFastGradientClipping

from benchmark.training.accounting import noise_multiplier

FAULTS = ("noise_div10", "no_clipping", "sample_rate_underreported")
#: How far each fault is off: the noise divided by it, the sampling rate under-reported by it.
FACTOR = 10.0


def _tenth_of_the_noise(optimizer: DPOptimizerFastGradientClipping) -> float:
    return optimizer.noise_multiplier / FACTOR


def _no_clipping(module: GradSampleModuleFastGradientClipping) -> torch.Tensor:
    return torch.ones_like(module.get_norm_sample())


def _underreported_step(original):  # noqa: ANN001, ANN202  (wraps an accountant's step)
    def step(self, *, noise_multiplier: float, sample_rate: float) -> None:  # noqa: ANN001
        original(self, noise_multiplier=noise_multiplier, sample_rate=sample_rate / FACTOR)

    return step


def _underreported_search(original):  # noqa: ANN001, ANN202  (wraps get_noise_multiplier)
    def search(*, sample_rate: float, epochs: float, **options: object) -> float:
        # The same number of steps (epochs / sample_rate) at the under-reported rate.
        return original(sample_rate=sample_rate / FACTOR, epochs=epochs / FACTOR, **options)

    return search


@contextmanager
def inject(fault: str | None) -> Iterator[None]:
    """Run the block with ``fault`` (one of :data:`FAULTS`) in the private engine; None: none."""
    if fault is not None and fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}: one of {FAULTS}")
    with ExitStack() as stack:
        if fault == "noise_div10":
            noise = property(_tenth_of_the_noise)
            stack.enter_context(
                mock.patch.object(
                    DPOptimizerFastGradientClipping,
                    "_adjusted_noise_multiplier",
                    noise,
                    create=True,
                )
            )
        elif fault == "no_clipping":
            stack.enter_context(
                mock.patch.object(
                    GradSampleModuleFastGradientClipping, "get_clipping_coef", _no_clipping
                )
            )
        elif fault == "sample_rate_underreported":
            for accountant in (RDPAccountant, PRVAccountant):
                step = _underreported_step(accountant.step)
                stack.enter_context(mock.patch.object(accountant, "step", step))
            search = _underreported_search(accountant_utils.get_noise_multiplier)
            stack.enter_context(mock.patch.object(accountant_utils, "get_noise_multiplier", search))
        if fault != "sample_rate_underreported":  # sigma's search is untouched: keep its cache
            yield
            return
        # sigma is cached per (budget, schedule): a faulty search must neither reuse nor leave one.
        noise_multiplier.cache_clear()
        try:
            yield
        finally:
            noise_multiplier.cache_clear()
