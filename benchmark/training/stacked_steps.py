"""What both stacked-ensemble loops (:mod:`.ensemble`, :mod:`.private_ensemble`) share: the
per-model batch layout, the per-model loss and the divergence check."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmark.training.trained import TrainingDiverged


def per_model_loss(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Cross-entropy ``[B, K]`` of stacked logits ``[B, K, C]`` and labels ``[B, K]``."""
    # Stacked layers leave model-major memory ([K, B, C] seen as [B, K, C]): flattening in that
    # order is a view, not a copy.
    flat = F.cross_entropy(
        logits.transpose(0, 1).flatten(0, 1),
        y.T.flatten(),
        reduction="none",
        label_smoothing=label_smoothing,
    )
    return flat.view(y.shape[1], y.shape[0]).T


def stacked_batch(
    x: torch.Tensor, y: torch.Tensor, index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``[B, K, ...]`` and labels ``[B, K]`` of the per-model batches ``index [K, B]``.

    Gathered model by model, so that each model's batch is contiguous in memory, which is what
    the batched matrix products read.
    """
    return x[index].transpose(0, 1), y[index].T


def check_finite(losses: torch.Tensor) -> None:
    finite = torch.isfinite(losses)
    if not bool(finite.all()):
        k = int((~finite).nonzero()[0, 0])
        raise TrainingDiverged(
            f"model {k}'s loss became {losses[k].item()} (try a smaller training.lr)"
        )
