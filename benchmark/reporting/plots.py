"""Figures shared by run artifacts and reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: runs on clusters and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from attacks.base import ATTACKS  # noqa: E402
from benchmark.evaluation.metrics import Interval, RocEvaluation, mean_roc  # noqa: E402

#: One colour per attack of the suite (11 today), none of them the grey of the chance line.
ATTACK_COLOURS = (
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:olive",
    "tab:cyan",
    "black",
    "gold",
    "navy",
)
LINE_STYLES = ("-", "--", "-.", ":")


def attack_styles(names: Sequence[str]) -> dict[str, tuple[str, str]]:
    """(colour, line style) per attack: each suite attack keeps its own across every figure (by
    its place in the registry's sorted names); attacks outside the suite follow them."""
    order = sorted(ATTACKS) + sorted(set(names) - set(ATTACKS))
    n = len(ATTACK_COLOURS)
    return {
        name: (ATTACK_COLOURS[i % n], LINE_STYLES[(i + i // n) % len(LINE_STYLES)])
        for i, name in enumerate(order)
        if name in names
    }


def plot_roc(
    curves: Mapping[str, Sequence[RocEvaluation]], path: str | Path, title: str = ""
) -> Path:
    """Log-log ROC curves (Carlini et al. 2022, Fig. 1 style): mean TPR over targets per attack."""
    fig, ax = plt.subplots(figsize=(7.5, 5))
    grid = np.logspace(-5, 0, 300)
    styles = attack_styles(list(curves))
    for name, evaluations in curves.items():
        fpr, tpr = mean_roc(evaluations, grid)
        auc = np.mean([e.auc for e in evaluations])
        colour, line = styles[name]
        ax.step(
            fpr,
            np.maximum(tpr, 1e-5),
            where="post",
            color=colour,
            ls=line,
            label=f"{name} (AUC {auc:.3f})",
        )
    ax.plot([1e-5, 1], [1e-5, 1], ls="--", color="grey", lw=1, label="chance")
    ax.set(xscale="log", yscale="log", xlim=(1e-5, 1), ylim=(1e-5, 1.05))
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.grid(True, which="major", alpha=0.3)
    # Outside the axes: the low-FPR corner is what the figure is for (Carlini et al. 2022).
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, borderaxespad=0)
    fig.tight_layout()
    return _save(fig, path)


#: Marker and colour of each defense family in every report figure.
FAMILY_STYLE: dict[str, tuple[str, str]] = {
    "none": ("o", "black"),
    "regularisation": ("s", "tab:blue"),
    "truncation": ("^", "tab:orange"),
    "dpsgd": ("D", "tab:green"),
    "composed": ("P", "tab:purple"),
    "other": ("X", "tab:gray"),
}
_SPARE_STYLES = (("v", "tab:brown"), ("*", "tab:pink"), ("h", "tab:olive"), ("<", "tab:cyan"))


def family_styles(families: Sequence[str]) -> dict[str, tuple[str, str]]:
    """(marker, colour) per family, in :data:`FAMILY_STYLE` order; families it does not know
    (a defense class's new ``family``) get spare styles, alphabetically."""
    known = [f for f in FAMILY_STYLE if f in families]
    new = sorted(set(families) - set(FAMILY_STYLE))
    styles = {f: FAMILY_STYLE[f] for f in known}
    for i, family in enumerate(new):
        styles[family] = _SPARE_STYLES[i % len(_SPARE_STYLES)]
    return styles


#: Smallest rate shown on a log axis; exact zeros are drawn there.
LOG_FLOOR = 1e-4
#: The epsilon plot is linear below this value and logarithmic above.
EPS_LINEAR_BELOW = 1.0
#: Where a label may go around its marker (points): nearest first, eight directions per ring.
_LABEL_OFFSETS = tuple(
    (r * np.cos(a), r * np.sin(a))
    for r in (12, 20, 30, 42, 56)
    for a in np.deg2rad((45, -45, 135, -135, 0, 180, 90, -90))
)
_LABEL_FONTSIZE = 8


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
        plt.Line2D([], [], ls="", marker=marker, color=colour, label=family)
        for family, (marker, colour) in family_styles(families).items()
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
    for family, (marker, colour) in family_styles([p.family for p in points]).items():
        group = [p for p in points if p.family == family]
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
    xy = [(max(p.leakage.mean, LOG_FLOOR), p.accuracy.mean) for p in points]
    _annotate(ax, xy, [p.label for p in points])
    return _save(fig, path)


def place_labels(
    anchors: np.ndarray, sizes: np.ndarray, offsets: Sequence[tuple[float, float]], marker: float
) -> list[tuple[float, float]]:
    """Greedy label placement: for each anchor (display units), the first offset whose label box
    (``sizes``, centred on anchor + offset) overlaps no placed label and no marker (a square of
    side ``marker`` on each anchor); the least-overlapping offset when none is free."""
    half = marker / 2
    obstacles = [(x - half, y - half, x + half, y + half) for x, y in anchors]
    chosen = []
    for anchor, size in zip(anchors, sizes, strict=True):
        best = min(
            offsets, key=lambda o: sum(_overlap(_box(anchor, size, o), b) for b in obstacles)
        )
        chosen.append(best)
        obstacles.append(_box(anchor, size, best))
    return chosen


def _box(anchor: Sequence[float], size: Sequence[float], offset: Sequence[float]) -> tuple:
    """(x0, y0, x1, y1) of a box of ``size`` centred on ``anchor + offset``."""
    cx, cy = anchor[0] + offset[0], anchor[1] + offset[1]
    return (cx - size[0] / 2, cy - size[1] / 2, cx + size[0] / 2, cy + size[1] / 2)


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return max(width, 0.0) * max(height, 0.0)


def _annotate(ax: plt.Axes, xy: Sequence[tuple[float, float]], labels: Sequence[str]) -> None:
    """Label each point (its # in the summary table) where it collides with nothing; call after
    the limits and the layout are final (placement is in display units)."""
    if not labels:
        return
    points_to_px = ax.figure.dpi / 72
    anchors = ax.transData.transform(np.array(xy, dtype=float))
    # A label's box, estimated from its length: measuring needs a renderer pass per label.
    sizes = np.array(
        [(0.65 * _LABEL_FONTSIZE * len(label), 1.3 * _LABEL_FONTSIZE) for label in labels]
    )
    offsets = [(dx * points_to_px, dy * points_to_px) for dx, dy in _LABEL_OFFSETS]
    placed = place_labels(anchors, sizes * points_to_px, offsets, 14 * points_to_px)
    for (x, y), label, (dx, dy) in zip(xy, labels, placed, strict=True):
        ax.annotate(
            label,
            (x, y),
            textcoords="offset pixels",
            xytext=(dx, dy),
            ha="center",
            va="center",
            fontsize=_LABEL_FONTSIZE,
            arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "grey"},  # which point is whose
        ).set_in_layout(False)


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
    top = max(
        [a.high if not np.isnan(a.high) else a.mean for a in accountant]
        + [e.high if not np.isnan(e.high) else e.mean for e in empirical]
    )
    top = 2 * top if top > 0 else 1.0  # a factor of 2 is a margin on the log part
    bottom = -0.1 * EPS_LINEAR_BELOW  # zeros sit inside the axes, not on their edge
    ax.plot(
        [bottom, top], [bottom, top], ls="--", color="grey", lw=1, label="empirical = accountant"
    )
    # Symmetric log: accountant epsilons span 0.1 to 100 while empirical bounds sit near 0-3, so
    # a linear axis squeezes them together; linear below 1 keeps exact zeros on the axis.
    ax.set_xscale("symlog", linthresh=EPS_LINEAR_BELOW)
    ax.set_yscale("symlog", linthresh=EPS_LINEAR_BELOW)
    ax.set(xlim=(bottom, top), ylim=(bottom, top))
    ax.set(
        xlabel="accountant epsilon (DP-SGD, upper bound)",
        ylabel="empirical epsilon lower bound (largest over attacks)",
        title="Accountant vs empirical epsilon",
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    xy = [(a.mean, e.mean) for a, e in zip(accountant, empirical, strict=True)]
    _annotate(ax, xy, labels)
    return _save(fig, path)


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
