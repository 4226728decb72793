"""Training objectives of the sequential trainer: cross-entropy, mixup and RelaxLoss.

Each objective maps a model, a batch and the epoch to the scalar loss whose gradient the
optimiser follows. Label smoothing (Szegedy et al. 2016, section 7) is the ``label_smoothing``
argument of :func:`torch.nn.functional.cross_entropy` and combines with mixup.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def mixup(
    x: torch.Tensor, y: torch.Tensor, alpha: float, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Mix the batch with a permutation of itself (Zhang et al. 2018, "mixup", equation 1).

    ``lam ~ Beta(alpha, alpha)``, ``x~ = lam * x_i + (1 - lam) * x_j``; returns ``x~``, both
    label vectors and ``lam``. The loss is ``lam * CE(f(x~), y_i) + (1 - lam) * CE(f(x~), y_j)``,
    which equals the cross-entropy against the mixed one-hot label ``lam y_i + (1 - lam) y_j``.
    """
    lam = float(rng.beta(alpha, alpha))
    partner = torch.as_tensor(rng.permutation(len(x)), device=x.device)
    return lam * x + (1.0 - lam) * x[partner], y, y[partner], lam


def mixup_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float,
    rng: np.random.Generator,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    mixed, y_a, y_b, lam = mixup(x, y, alpha, rng)
    logits = model(mixed)
    return lam * F.cross_entropy(logits, y_a, label_smoothing=label_smoothing) + (
        1.0 - lam
    ) * F.cross_entropy(logits, y_b, label_smoothing=label_smoothing)


def flattened_targets(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """RelaxLoss's soft labels (Chen et al. 2022, Algorithm 1, posterior flattening).

    For a correctly classified example the target keeps the model's own probability ``p_y`` on
    the true class and spreads ``1 - p_y`` evenly over the ``C - 1`` other classes, so training
    flattens the non-true posteriors without raising the confidence; a misclassified example keeps
    its one-hot label. Targets are constants (no gradient flows through them).
    """
    probabilities = torch.softmax(logits.detach(), dim=1)
    num_classes = logits.shape[1]
    p_true = probabilities.gather(1, y[:, None])
    onehot = F.one_hot(y, num_classes).to(probabilities.dtype)
    soft = onehot * p_true + (1.0 - onehot) * (1.0 - p_true) / (num_classes - 1)
    correct = (probabilities.argmax(dim=1) == y)[:, None]
    return torch.where(correct, soft, onehot)


def relaxloss(logits: torch.Tensor, y: torch.Tensor, alpha: float, epoch: int) -> torch.Tensor:
    """The RelaxLoss objective of one batch (Chen et al. 2022, "RelaxLoss", Algorithm 1).

    With the batch's mean cross-entropy ``L`` and the target loss level ``alpha``:
    ``L >= alpha``: gradient descent on ``L``; ``L < alpha``: gradient *ascent* on ``L`` in even
    epochs and, in odd epochs, descent on the cross-entropy against :func:`flattened_targets`.
    Even epochs use ``|L - alpha|``, which is descent above ``alpha`` and ascent below it, as in
    the authors' code. Training therefore holds the members' loss near ``alpha`` instead of 0,
    which narrows the member/non-member loss gap that attacks exploit.
    """
    loss = F.cross_entropy(logits, y)
    if epoch % 2 == 0:
        return (loss - alpha).abs()
    if loss.item() >= alpha:
        return loss
    return F.cross_entropy(logits, flattened_targets(logits, y))
