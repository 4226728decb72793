"""The metric groups: which points each target is scored on, for each group of metrics."""

from __future__ import annotations

import numpy as np

from benchmark.evaluation.keys import CANARY, HELDOUT, POPULATION
from benchmark.signals.arrays import Signals


def metric_groups(signals: Signals) -> dict[str, np.ndarray]:
    """Each metric group's points per target: bool ``[T, N]``, scored by target membership.

    The headline group scores the members each target *fitted* against its non-members: a
    member a training hook held out (early stopping's validation split, adversarial
    regularisation's reference set) was never fitted, and counting it as a member would dilute
    the leakage measured on the points the model learned from. Those held-out members are scored
    against the same non-members in their own group. Canaries keep theirs.
    """
    targets = signals.targets
    members, held_out = signals.membership[targets], signals.held_out[targets]
    population = ~signals.canary[None, :] & ~held_out
    groups = {POPULATION: population}
    if held_out.any():
        groups[HELDOUT] = ~signals.canary[None, :] & (held_out | ~members)
    if signals.canary.any():
        groups[CANARY] = np.broadcast_to(signals.canary, members.shape)
    return groups
