"""Computing the signals: every model's released outputs on every pool point, once."""

from __future__ import annotations

import numpy as np

from benchmark.data.pool import Pool
from benchmark.protocol.membership import Membership
from benchmark.release.api import Release
from benchmark.signals.arrays import Signals
from benchmark.training.trained import Models


def compute_signals(
    models: Models, release: Release, pool: Pool, membership: Membership
) -> Signals:
    outputs = np.stack([release.query(models, k, pool.x) for k in range(models.n_models)])
    return Signals(
        outputs=outputs,
        labels=pool.y,
        membership=membership.matrix,
        canary=membership.canary,
        targets=membership.targets,
        release_kind=release.kind,
        held_out=models.held_out,
    )
