"""Replicate experiments within one configuration (``protocol.replicates=R``, issue 11).

Replicate ``r`` is the whole experiment again with its own seed (a new pool/test split,
membership matrix and model seeds), derived deterministically from the configuration's seed;
replicate 0 *is* the configuration's seed, so ``R = 1`` is exactly the run without replicates.
With ``R > 1`` the configuration's headline is the mean over replicates of each replicate's mean
over targets, with a Student-t interval over the ``R`` replicate means: the replicates are
independent by construction, so this interval covers what rerunning the configuration with new
seeds on the *same* dataset would give, including how a new pool changes the models overall,
which the bootstrap over pool points (used when ``R = 1``) cannot see in one run
(:mod:`benchmark.evaluation.intervals`). :meth:`ExperimentResult.summary` is where one of the two
is chosen.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf

from benchmark.config.checks import MAX_SEED
from benchmark.evaluation.metrics import Interval, mean_interval, metric_bounds

#: Mixed into the seed of every replicate r >= 1, so that they differ from plain seeds 0, 1, ...
REPLICATE_STREAM = 0x5E9_11C


def replicate_seeds(seed: int, n_replicates: int) -> list[int]:
    """The seed of each replicate: ``seed`` itself, then one drawn from ``(seed, r)`` per r."""
    derived = [
        int(np.random.SeedSequence([seed, REPLICATE_STREAM, r]).generate_state(1)[0]) % MAX_SEED
        for r in range(1, n_replicates)
    ]
    return [seed, *derived]


def replicate_config(cfg: DictConfig, seed: int) -> DictConfig:
    """``cfg`` as one replicate: its own ``seed``, and one replicate (no recursion)."""
    replicate = cfg.copy()
    OmegaConf.update(replicate, "seed", seed)
    OmegaConf.update(replicate, "protocol.replicates", 1)
    return replicate


def replicate_interval(means: Sequence[float], key: str) -> Interval:
    """The mean of the ``R`` replicate means with its 95% Student-t interval over them."""
    return mean_interval(means, bounds=metric_bounds(key))
