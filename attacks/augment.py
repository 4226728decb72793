"""Perturbed copies of the pool that attacks query the black box on.

Image augmentations (shifts, horizontal flips) serve LiRA's augmented queries (Carlini et al.
2022, section VI-C) and the label-only attack's robustness test (Choquette-Choo et al. 2021,
section 4); Gaussian noise and bit flips serve the label-only attack on tabular data. Every
function draws from a fixed seed, never from the target, so that every model is asked exactly the
same questions (which :func:`attacks.base.memoise_query` relies on) and runs are reproducible.
"""

from __future__ import annotations

import itertools

import numpy as np


def shift(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate ``[N, C, H, W]`` images by ``(dy, dx)`` pixels, replicating the edge pixels.

    Edge replication rather than zero padding: features are standardised, so a zero is not the
    background colour, while the border of a digit or a photo is.
    """
    n, c, h, w = images.shape
    pad = max(abs(dy), abs(dx))
    if pad == 0:
        return images.copy()
    padded = np.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="edge")
    return padded[:, :, pad - dy : pad - dy + h, pad - dx : pad - dx + w]


def image_augmentations(images: np.ndarray, max_shift: int, flip: bool) -> np.ndarray:
    """Every shift in ``[-max_shift, max_shift]^2``, also mirrored when ``flip``: ``[A, N, ...]``.

    The identity comes first. This is the deterministic set of Carlini et al.'s augmented queries.
    """
    offsets = range(-max_shift, max_shift + 1)
    pairs = sorted(itertools.product(offsets, offsets), key=lambda p: (p != (0, 0), p))
    copies = [shift(images, dy, dx) for dy, dx in pairs]
    if flip:
        copies += [c[..., ::-1] for c in copies]
    return np.stack(copies).astype(images.dtype, copy=False)


def random_image_perturbations(
    images: np.ndarray, n: int, max_shift: int, flip: bool, noise: float, rng: np.random.Generator
) -> np.ndarray:
    """``n`` random copies ``[n, N, C, H, W]``: a random shift, flip and Gaussian noise each."""
    copies = []
    for _ in range(n):
        dy, dx = rng.integers(-max_shift, max_shift + 1, size=2)
        copy = shift(images, int(dy), int(dx))
        if flip and rng.random() < 0.5:
            copy = copy[..., ::-1]
        copies.append(copy + noise * rng.standard_normal(images.shape))
    return np.stack(copies).astype(images.dtype)


def binary_columns(x: np.ndarray) -> np.ndarray:
    """bool ``[d]``: the columns of ``x [N, d]`` that take at most two distinct values."""
    low, high = x.min(axis=0), x.max(axis=0)
    return np.all((x == low) | (x == high), axis=0)


def random_tabular_perturbations(
    x: np.ndarray, n: int, flip_prob: float, noise: float, rng: np.random.Generator
) -> np.ndarray:
    """``n`` noisy copies ``[n, N, d]`` of tabular points.

    Binary columns (e.g. Purchase-100's purchase bits) have each bit flipped with probability
    ``flip_prob`` (to the column's other value); other columns get Gaussian noise of standard
    deviation ``noise`` (features are standardised, so ``noise`` is in units of the column's std).
    """
    binary = binary_columns(x)
    low, high = x.min(axis=0), x.max(axis=0)
    copies = np.repeat(x[None], n, axis=0).astype(np.float64)
    flips = (rng.random(copies.shape) < flip_prob) & binary
    copies = np.where(flips, low + high - copies, copies)
    copies += np.where(binary, 0.0, noise * rng.standard_normal(copies.shape))
    return copies.astype(x.dtype)
