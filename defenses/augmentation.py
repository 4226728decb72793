"""Augmentation (training time): label-preserving random shifts and horizontal flips of images.

The standard CIFAR recipe (pad, random crop, random horizontal flip; e.g. He et al. 2016,
section 4.2) applied per example on the fly. Pixels shifted in from outside the image are 0,
which after the pool's per-channel standardisation (see :mod:`benchmark.data.pool`) is the channel
mean. Augmentation is a training-time defense only: attacks query the un-augmented points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.errors import ConfigError, require
from benchmark.training.hooks import FitContext, HookRun, Setup, TrainingHook
from benchmark.training.recipe import Recipe
from defenses.base import Defense, register_defense


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


@dataclass(frozen=True)
class AugmentationHook(TrainingHook):
    """Each training batch is replaced by a fresh random shift (and flip) of its images."""

    max_shift: int
    flip: bool

    def sequential_reason(self) -> str:
        return "data augmentation (defense.augmentation)"

    def check(self, setup: Setup) -> None:
        if setup.pool.kind != "image":
            raise ConfigError(
                f"defense=augmentation shifts and flips images, but data={setup.pool.name} is "
                f"{setup.pool.kind}: use it with image data (digits, cifar10) or remove it"
            )

    def start(self, context: FitContext) -> HookRun:
        return _AugmentationRun(self, context.rng)


class _AugmentationRun(HookRun):
    def __init__(self, hook: AugmentationHook, rng: np.random.Generator) -> None:
        self.hook, self.rng = hook, rng

    def transform(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return augment(x, self.hook.max_shift, self.hook.flip, self.rng), y


@register_defense("augmentation")
class Augmentation(Defense):
    """Image augmentation: each training image is shifted by a random offset of up to
    ``max_shift`` pixels (zero padding, then a random crop) and, with ``flip``, mirrored
    left-right with probability 1/2. Image data only; refused on tabular data.

    Flips are off by default: the default data (handwritten digits) is not mirror-symmetric.
    """

    family = "regularisation"

    @dataclass
    class Params:
        max_shift: int = 1
        flip: bool = False

    def check(self, n_train: int, num_classes: int) -> None:
        p = self.params
        require(
            p.max_shift >= 0 and (p.max_shift > 0 or p.flip),
            f"defense.augmentation needs max_shift >= 1 or flip=true (got max_shift={p.max_shift},"
            f" flip={p.flip})",
        )

    def recipe(self, base: Recipe) -> Recipe:
        return base.with_hook(AugmentationHook(self.params.max_shift, self.params.flip))
