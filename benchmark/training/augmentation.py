"""Label-preserving image augmentation for training: random shifts and horizontal flips.

The standard CIFAR recipe (pad, random crop, random horizontal flip; e.g. He et al. 2016,
section 4.2) applied per example on the fly. Pixels shifted in from outside the image are 0,
which after the pool's per-channel standardisation (see :mod:`benchmark.data.pool`) is the channel
mean. Augmentation is a training-time defense only: attacks query the un-augmented points.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def random_shift(images: torch.Tensor, max_shift: int, rng: np.random.Generator) -> torch.Tensor:
    """Translate each image ``[B, C, H, W]`` by its own random offset in ``[-s, s]^2``.

    Implemented as zero padding by ``s`` followed by a random ``H x W`` crop.
    """
    if max_shift <= 0:
        return images
    b, c, h, w = images.shape
    padded = F.pad(images, (max_shift, max_shift, max_shift, max_shift))
    size = 2 * max_shift + 1
    dy, dx = torch.as_tensor(rng.integers(size, size=(2, b)), device=images.device)
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, None, :]
    batch = torch.arange(b, device=images.device)[:, None, None, None]
    channel = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_flip(images: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Mirror each image ``[B, C, H, W]`` left-right with probability 1/2."""
    flip = torch.as_tensor(rng.random(len(images)) < 0.5, device=images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def augment(
    images: torch.Tensor, max_shift: int, flip: bool, rng: np.random.Generator
) -> torch.Tensor:
    """A fresh random shift (and flip, when ``flip``) of every image in the batch."""
    images = random_shift(images, max_shift, rng)
    return random_flip(images, rng) if flip else images
