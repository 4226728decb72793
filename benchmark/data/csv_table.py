"""CSV files with a header row and a label column."""

from __future__ import annotations

import csv

import numpy as np
from omegaconf import DictConfig

from benchmark.data.files import existing_path, malformed
from benchmark.data.pool import RawDataset, register_loader
from benchmark.errors import ConfigError


@register_loader("csv")
def _csv(cfg: DictConfig) -> RawDataset:
    """A CSV file with a header row: the label column ``data.label_column``, features the rest."""
    path = existing_path(cfg, "a CSV file with a header row")
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise malformed(cfg, "the file is empty")
    header, body = rows[0], rows[1:]
    if cfg.label_column not in header:
        raise ConfigError(
            f"data.label_column={cfg.label_column} is not a column of {cfg.path}: "
            f"set data.label_column to one of {header}"
        )
    label_at = header.index(cfg.label_column)
    if not body:  # header only: no rows (not "rows of different lengths")
        return RawDataset(np.zeros((0, len(header) - 1)), np.zeros(0), "tabular")
    try:
        table = np.array(body, dtype=np.float64)
    except ValueError as exc:
        raise malformed(cfg, f"non-numeric value: {exc}") from None
    if table.ndim != 2 or table.shape[1] != len(header):
        raise malformed(cfg, "rows have different lengths")
    return RawDataset(np.delete(table, label_at, axis=1), table[:, label_at], "tabular")
