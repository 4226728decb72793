"""Texas-100 (Shokri et al. 2017), in its published text format."""

from __future__ import annotations

from omegaconf import DictConfig

from benchmark.data.files import comma_separated, existing_path, malformed
from benchmark.data.pool import RawDataset, register_loader


@register_loader("texas100")
def _texas100(cfg: DictConfig) -> RawDataset:
    """Shokri et al.'s Texas-100 folder ``texas/100``: files ``feats`` and ``labels`` (1..100)."""
    folder = existing_path(cfg, "the texas/100 folder holding the files feats and labels")
    for name in ("feats", "labels"):
        if not (folder / name).is_file():
            raise malformed(cfg, f"missing {folder / name}")
    x = comma_separated(folder / "feats", cfg)
    y = comma_separated(folder / "labels", cfg).ravel()
    if len(x) != len(y):
        raise malformed(cfg, f"{len(x)} feature rows but {len(y)} labels")
    return RawDataset(x, y - 1, "tabular", num_classes=100)
