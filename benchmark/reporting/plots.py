"""Figures shared by run artifacts and reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: runs on clusters and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from benchmark.evaluation.metrics import Interval, RocEvaluation, mean_roc  # noqa: E402


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


#: Marker and colour of each defense family in every report figure.
FAMILY_STYLE: dict[str, tuple[str, str]] = {
    "none": ("o", "black"),
    "regularisation": ("s", "tab:blue"),
    "truncation": ("^", "tab:orange"),
    "dpsgd": ("D", "tab:green"),
    "composed": ("P", "tab:purple"),
    "other": ("X", "tab:gray"),
}
#: Smallest rate shown on a log axis; exact zeros are drawn there.
LOG_FLOOR = 1e-4
_LABEL_OFFSETS = ((12, 10), (12, -16), (-28, 14), (-28, -18))


@dataclass(frozen=True)
class TradeoffPoint:
    """One configuration on the utility-privacy plane."""

    label: str  # short: drawn next to the marker
    family: str
    leakage: Interval  # the strongest attack's TPR at the FPR level
    accuracy: Interval  # test accuracy of the released output


def _xerr(values: Sequence[Interval], floor: float) -> np.ndarray:
    """Asymmetric error bars ``[2, n]`` on a log axis (missing intervals: no bar)."""
    bars = []
    for v in values:
        mean = max(v.mean, floor)
        if np.isnan(v.low):
            bars.append((0.0, 0.0))
        else:
            bars.append((mean - max(v.low, floor), max(v.high, floor) - mean))
    return np.maximum(np.array(bars, dtype=float).T, 0.0)


def _yerr(values: Sequence[Interval]) -> np.ndarray:
    bars = [(0.0, 0.0) if np.isnan(v.low) else (v.mean - v.low, v.high - v.mean) for v in values]
    return np.maximum(np.array(bars, dtype=float).T, 0.0)


def _family_legend(ax: plt.Axes, families: Sequence[str]) -> None:
    handles = [
        plt.Line2D([], [], ls="", marker=FAMILY_STYLE[f][0], color=FAMILY_STYLE[f][1], label=f)
        for f in FAMILY_STYLE
        if f in families
    ]
    ax.legend(handles=handles, title="defense family", fontsize=8, loc="best")


def plot_tradeoff(
    points: Sequence[TradeoffPoint],
    front: Sequence[int],
    path: str | Path,
    fpr_level: float = 0.001,
) -> Path:
    """Test accuracy against the strongest attack's TPR at ``fpr_level`` (log scale), one marker
    per defense family, 95% intervals over targets, and the Pareto front (dashed)."""
    fig, ax = plt.subplots(figsize=(7, 5))
    for family in FAMILY_STYLE:
        group = [p for p in points if p.family == family]
        if not group:
            continue
        marker, colour = FAMILY_STYLE[family]
        ax.errorbar(
            [max(p.leakage.mean, LOG_FLOOR) for p in group],
            [p.accuracy.mean for p in group],
            xerr=_xerr([p.leakage for p in group], LOG_FLOOR),
            yerr=_yerr([p.accuracy for p in group]),
            fmt=marker,
            color=colour,
            ms=7,
            capsize=2,
            elinewidth=0.8,
        )
    for i, p in enumerate(points):
        ax.annotate(
            p.label,
            (max(p.leakage.mean, LOG_FLOOR), p.accuracy.mean),
            textcoords="offset points",
            xytext=_LABEL_OFFSETS[i % len(_LABEL_OFFSETS)],  # neighbours rarely collide
            fontsize=8,
            arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "grey"},  # which point is whose
        ).set_in_layout(False)
    if front:
        ordered = sorted(front, key=lambda i: points[i].leakage.mean)
        xs = [max(points[i].leakage.mean, LOG_FLOOR) for i in ordered]
        ys = [points[i].accuracy.mean for i in ordered]
        ax.step(xs, ys, where="post", ls="--", color="grey", lw=1, label="Pareto front")
    ax.axvline(fpr_level, color="red", ls=":", lw=1)
    ax.text(fpr_level, 0.02, " chance", color="red", fontsize=7, transform=ax.get_xaxis_transform())
    ax.set(xscale="log", xlim=(LOG_FLOOR / 1.5, 1.5))
    ax.set(
        xlabel=f"strongest attack's TPR at {fpr_level:.1%} FPR (less is more private)",
        ylabel="test accuracy of the released model",
        title="Utility-privacy tradeoff",
    )
    ax.grid(True, which="major", alpha=0.3)
    _family_legend(ax, [p.family for p in points])
    fig.tight_layout()
    return _save(fig, path)


def plot_population_vs_canary(
    labels: Sequence[str],
    population: Sequence[Interval],
    canary: Sequence[Interval],
    path: str | Path,
    fpr_level: float = 0.001,
) -> Path:
    """Strongest attack's TPR at ``fpr_level`` on the population and on the canaries (Aerni et
    al. 2024: heuristic defenses that look private on the population leak on worst-case points)."""
    fig, ax = plt.subplots(figsize=(min(max(6, 0.6 * len(labels) + 2), 16), 4.5))
    x = np.arange(len(labels))
    for offset, values, name, colour in (
        (-0.2, population, "population", "tab:blue"),
        (0.2, canary, "canaries", "tab:red"),
    ):
        heights = [max(v.mean, LOG_FLOOR) if not np.isnan(v.mean) else np.nan for v in values]
        ax.bar(x + offset, heights, width=0.4, color=colour, label=name, alpha=0.8)
        ax.errorbar(
            x + offset, heights, yerr=_xerr(values, LOG_FLOOR), fmt="none", color="k", lw=0.8
        )
    ax.axhline(fpr_level, color="grey", ls=":", lw=1, label="chance")
    ax.set(yscale="log", ylim=(LOG_FLOOR / 1.5, 1.5), xticks=x)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set(ylabel=f"strongest attack's TPR at {fpr_level:.1%} FPR", title="Population vs canaries")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return _save(fig, path)


def plot_epsilons(
    labels: Sequence[str],
    accountant: Sequence[Interval],
    empirical: Sequence[Interval],
    path: str | Path,
) -> Path:
    """Empirical epsilon lower bound against the accountant's epsilon; sound audits lie below
    the diagonal."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.errorbar(
        [a.mean for a in accountant],
        [e.mean for e in empirical],
        xerr=_yerr(accountant),
        yerr=_yerr(empirical),
        fmt="D",
        color="tab:green",
        capsize=2,
    )
    for label, a, e in zip(labels, accountant, empirical, strict=True):
        ax.annotate(
            label, (a.mean, e.mean), textcoords="offset points", xytext=(5, 4), fontsize=8
        ).set_in_layout(False)
    top = max(
        [a.mean for a in accountant]
        + [e.high if not np.isnan(e.high) else e.mean for e in empirical]
    )
    top = 1.1 * top if top > 0 else 1.0
    ax.plot([0, top], [0, top], ls="--", color="grey", lw=1, label="empirical = accountant")
    ax.set(xlim=(0, top), ylim=(0, top))
    ax.set(
        xlabel="accountant epsilon (DP-SGD, upper bound)",
        ylabel="empirical epsilon lower bound (largest over attacks)",
        title="Accountant vs empirical epsilon",
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
