"""Figures shared by run artifacts and reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: runs on clusters and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from benchmark.metrics import RocEvaluation, mean_roc  # noqa: E402


def plot_roc(
    curves: Mapping[str, Sequence[RocEvaluation]], path: str | Path, title: str = ""
) -> Path:
    """Log-log ROC curves (Carlini et al. 2022, Fig. 1 style): mean TPR over targets per attack."""
    fig, ax = plt.subplots(figsize=(5, 5))
    grid = np.logspace(-5, 0, 300)
    for name, evaluations in curves.items():
        fpr, tpr = mean_roc(evaluations, grid)
        auc = np.mean([e.auc for e in evaluations])
        ax.step(fpr, np.maximum(tpr, 1e-5), where="post", label=f"{name} (AUC {auc:.3f})")
    ax.plot([1e-5, 1], [1e-5, 1], ls="--", color="grey", lw=1, label="chance")
    ax.set(xscale="log", yscale="log", xlim=(1e-5, 1), ylim=(1e-5, 1.05))
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
