"""scikit-learn's handwritten digits, the embedded default dataset."""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig
from sklearn.datasets import load_digits

from benchmark.data.pool import RawDataset, register_loader


@register_loader("digits")
def _digits(cfg: DictConfig) -> RawDataset:
    """scikit-learn's 8x8 handwritten digits (1797 images, 10 classes), shipped with sklearn."""
    digits = load_digits()
    return RawDataset(
        digits.images[:, None, :, :].astype(np.float32), digits.target, "image", num_classes=10
    )
