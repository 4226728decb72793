"""Purchase-100 (Shokri et al. 2017), in its published text format."""

from __future__ import annotations

from omegaconf import DictConfig

from benchmark.data.files import comma_separated, existing_path
from benchmark.data.pool import RawDataset, register_loader


@register_loader("purchase100")
def _purchase100(cfg: DictConfig) -> RawDataset:
    """Shokri et al.'s Purchase-100 file ``dataset_purchase``: label (1..100), then 600 bits."""
    path = existing_path(cfg, "the dataset_purchase file (label,600 binary features per line)")
    table = comma_separated(path, cfg)
    return RawDataset(table[:, 1:], table[:, 0] - 1, "tabular", num_classes=100)
