"""DP-SGD parameters and privacy accounting, delegated to Opacus's accountants.

DP-SGD (Abadi et al. 2016, "Deep Learning with Differential Privacy", Algorithm 1) samples each
training example into a step's batch with probability ``q`` (Poisson sampling), clips every
per-example gradient to norm ``C`` and adds Gaussian noise of standard deviation ``sigma * C`` to
their sum. The accountant turns ``(sigma, q, steps)`` into the ``(epsilon, delta)`` guarantee.

Both training engines use the schedule of Opacus's ``PrivacyEngine.make_private_with_epsilon``
for a ``DataLoader`` of ``batch_size`` over the model's ``n`` training points: ``q = 1 /
ceil(n / batch_size)``, ``int(1 / q)`` steps per epoch, gradients averaged over the expected
batch size ``int(n * q)``, and ``sigma`` from :func:`opacus.accountants.utils.get_noise_multiplier`.

The default accountant is RDP (Mironov 2017, "Renyi Differential Privacy"; Mironov et al. 2019
for the sampled Gaussian mechanism): a valid upper bound on epsilon, the one most DP-SGD papers
report, and fast (finding ``sigma`` takes a fraction of a second, against seconds for PRV).
``accountant: prv`` (Gopi et al. 2021, "Numerical Composition of Differential Privacy") gives a
tighter epsilon, hence less noise for the same budget.

Opacus is imported inside the functions: it takes seconds to import, and only DP runs need it.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmark.errors import ConfigError

if TYPE_CHECKING:
    from opacus.accountants import IAccountant

ACCOUNTANTS = ("rdp", "prv")


@dataclass(frozen=True)
class DPParams:
    """The privacy budget and clipping norm of DP-SGD (the ``dpsgd`` defense)."""

    target_epsilon: float = 8.0
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    accountant: str = "rdp"


@dataclass(frozen=True)
class PoissonSchedule:
    """Opacus's Poisson-sampling schedule for one model (see the module docstring)."""

    sample_rate: float
    steps_per_epoch: int
    expected_batch_size: int
    epochs: int

    @property
    def steps(self) -> int:
        return self.steps_per_epoch * self.epochs


def poisson_schedule(n_train: int, batch_size: int, epochs: int) -> PoissonSchedule:
    """The schedule ``PrivacyEngine.make_private`` derives from a ``DataLoader``."""
    batches = math.ceil(n_train / batch_size)  # len(DataLoader(..., batch_size))
    sample_rate = 1 / batches
    return PoissonSchedule(
        sample_rate=sample_rate,
        steps_per_epoch=int(1 / sample_rate),  # UniformWithReplacementSampler's length
        expected_batch_size=int(n_train * sample_rate),
        epochs=epochs,
    )


@functools.lru_cache(maxsize=64)
def noise_multiplier(dp: DPParams, schedule: PoissonSchedule) -> float:
    """``sigma`` that spends ``dp.target_epsilon`` over the schedule (Opacus's binary search).

    Cached: the search evaluates the accountant a dozen times (about a second), and every model
    of a configuration asks for the same ``sigma``.
    """
    from opacus.accountants.utils import get_noise_multiplier

    floor = _rdp_epsilon_floor(dp.delta) if dp.accountant == "rdp" else 0.0
    if dp.target_epsilon <= floor:
        # Opacus would search up to sigma = 1e6 (a minute) before giving up.
        raise _unreachable(dp, schedule, f"RDP certifies no epsilon below {floor:.3g}")
    try:
        with warnings.catch_warnings():
            # The search tries large sigmas, for which RDP's best order is its largest: harmless.
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
            return get_noise_multiplier(
                target_epsilon=dp.target_epsilon,
                target_delta=dp.delta,
                sample_rate=schedule.sample_rate,
                epochs=schedule.epochs,
                accountant=dp.accountant,
            )
    except ValueError as exc:
        raise _unreachable(dp, schedule, str(exc)) from None


def _rdp_epsilon_floor(delta: float) -> float:
    """The epsilon of RDP's conversion to ``(epsilon, delta)``-DP with infinite noise."""
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis.rdp import get_privacy_spent

    orders = RDPAccountant.DEFAULT_ALPHAS
    return float(get_privacy_spent(orders=orders, rdp=[0.0] * len(orders), delta=delta)[0])


def _unreachable(dp: DPParams, schedule: PoissonSchedule, why: str) -> ConfigError:
    return ConfigError(
        f"defense.dpsgd.target_epsilon={dp.target_epsilon} cannot be reached with "
        f"delta={dp.delta} over {schedule.epochs} epochs at sampling rate "
        f"{schedule.sample_rate:.4g} ({why}): raise target_epsilon or delta"
    )


def make_accountant(dp: DPParams) -> IAccountant:
    from opacus.accountants import create_accountant

    return create_accountant(mechanism=dp.accountant)
