"""An already-trained model attacked as an extra target (issue 14, ``protocol.target``).

The checkpoint is not one of the harness's ``K`` models, so every one of them is its shadow (no
leave-one-out): it is appended as model ``K`` to the trained models and to the signals, with its
own membership row (the pool points whose dataset rows ``protocol.target.members`` lists), and
attacked as the only target of that extended set. Each pool point is a member of exactly ``K/2``
shadows whatever the checkpoint trained on, so the balanced shadow groups keep all ``K``
shadows and reveal nothing of its row (:mod:`attacks.base`). It is queried through the same
:class:`~benchmark.release.api.Release` as the targets, so release-time defenses apply to it;
training-time defenses are the checkpoint author's business (it was trained elsewhere).

Contract: the checkpoint must have been trained on the features as the harness gives them to its
own models (standardised with the statistics of this seed's pool, :func:`load_pool`), since it
is queried on exactly those.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from benchmark.data.pool import Pool
from benchmark.data.rows import target_members
from benchmark.errors import require
from benchmark.models.base import build_model
from benchmark.models.checkpoint import load_checkpoint
from benchmark.release.api import Release
from benchmark.signals.arrays import Signals
from benchmark.training.recipe import Recipe
from benchmark.training.trained import Models


@dataclass(frozen=True)
class ExtraTarget:
    """The checkpoint's module (its weights loaded), its members in the pool, its file."""

    module: nn.Module
    members: np.ndarray  # bool [N]
    path: str
    sha256: str


def plan_extra_target(cfg: DictConfig, pool: Pool, recipe: Recipe) -> ExtraTarget | None:
    """The checkpoint of ``protocol.target``, checked before anything trains; None if unset.

    ``recipe`` names the architecture (the configured ``model``, before any defense).
    """
    target = cfg.protocol.target
    if target.checkpoint is None and target.members is None:
        return None
    require(
        target.checkpoint is not None and target.members is not None,
        "protocol.target.checkpoint and protocol.target.members go together: the checkpoint "
        "(a state_dict file) and the dataset rows it trained on (a .npy or text file)",
    )
    require(
        cfg.protocol.canaries == 0,
        "protocol.target.checkpoint cannot be combined with protocol.canaries: the checkpoint "
        "never trained on the harness's mislabelled canaries; set protocol.canaries=0",
    )
    require(
        cfg.protocol.replicates == 1,
        "protocol.target.checkpoint cannot be combined with protocol.replicates > 1: every "
        "replicate draws its own pool/test split, which would put the checkpoint's rows in a "
        "test split; set protocol.replicates=1",
    )
    members = target_members(target.members, pool, cfg.seed)
    with torch.random.fork_rng(devices=[]):  # building draws initial weights we overwrite
        model = build_model(
            recipe.model, pool.input_shape, pool.num_classes, **recipe.model_options
        )
    module = load_checkpoint(target.checkpoint, model, f"model={recipe.model}")
    digest = hashlib.sha256(Path(target.checkpoint).read_bytes()).hexdigest()
    return ExtraTarget(module, members, str(target.checkpoint), digest)


def with_extra_target(
    extra: ExtraTarget, models: Models, signals: Signals, release: Release, pool: Pool
) -> tuple[Models, Signals]:
    """The ``K`` models and the checkpoint as model ``K``; signals with it as the only target."""
    k = models.n_models
    module = extra.module.to(models.device).eval()
    nothing_held_out = np.zeros((1, len(pool)), dtype=bool)  # all its members count as fitted
    held_out = np.concatenate([models.held_out, nothing_held_out])
    extended = Models([*models.modules, module], models.device, None, held_out)
    outputs = release.query(extended, k, pool.x)
    extended_signals = Signals(
        outputs=np.concatenate([signals.outputs, outputs[None]]),
        labels=signals.labels,
        membership=np.concatenate([signals.membership, extra.members[None]]),
        canary=signals.canary,
        targets=np.array([k], dtype=np.int64),
        release_kind=signals.release_kind,
        held_out=np.concatenate([signals.held_out, nothing_held_out]),
    )
    return extended, extended_signals
