"""The report's figures: what each one shows, drawn by :mod:`benchmark.reporting.plots`.

The utility-privacy tradeoff with its Pareto front, log-log ROC curves per configuration
(Carlini et al. 2022, Fig. 1), population vs canary leakage (Aerni et al. 2024), and the
accountant's epsilon against the empirical lower bound (Jagielski et al. 2020).
"""

from __future__ import annotations

import math
import shutil
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmark.evaluation.keys import (
    CANARY,
    DP_EPSILON,
    EPS_LB,
    HEADLINE,
    HEADLINE_FPR,
    POPULATION,
    privacy_key,
    utility_key,
)
from benchmark.evaluation.metrics import Interval, evaluate
from benchmark.reporting.document import Block, Figure, Heading
from benchmark.reporting.plots import (
    TradeoffPoint,
    plot_epsilons,
    plot_population_vs_canary,
    plot_roc,
    plot_tradeoff,
)
from benchmark.reporting.runs import ConfigRun

TEST_ACC = utility_key("test_acc")


def pareto_front(leakage: Sequence[float], accuracy: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats on both axes (less leakage, more accuracy)."""
    front = []
    for i, (x, y) in enumerate(zip(leakage, accuracy, strict=True)):
        dominated = any(
            (x2 <= x and y2 >= y) and (x2 < x or y2 > y)
            for x2, y2 in zip(leakage, accuracy, strict=True)
        )
        if not dominated and not (math.isnan(x) or math.isnan(y)):
            front.append(i)
    return front


def headline(run: ConfigRun, group: str = POPULATION) -> Interval:
    """The TPR at the headline FPR of the run's strongest attack in ``group``."""
    return run.interval(privacy_key(group, run.strongest(group) or "?", HEADLINE))


def largest_eps_lb(run: ConfigRun) -> Interval | None:
    """The largest mean empirical epsilon lower bound over the run's attacks."""
    bounds = [run.interval(privacy_key(POPULATION, a, EPS_LB)) for a in run.attacks()]
    return max(bounds, key=lambda i: i.mean, default=None)


def roc_figure(run: ConfigRun, path: Path) -> Path | None:
    """Log-log ROC curves of every attack on the population, recomputed from the run's scores
    and membership; the recorded ``roc.png`` when those are missing."""
    if "scores.npz" in run.artifacts and "signals.npz" in run.artifacts:
        with np.load(run.artifacts["signals.npz"], allow_pickle=False) as signals:
            membership, canary = signals["membership"], signals["canary"]
        population = ~canary
        with np.load(run.artifacts["scores.npz"], allow_pickle=False) as archive:
            targets = archive["targets"]
            curves = {
                name: [
                    evaluate(archive[name][i][population], membership[k][population])
                    for i, k in enumerate(targets)
                ]
                for name in archive.files
                if name != "targets"
            }
        if curves:
            return plot_roc(curves, path, title=textwrap.fill(f"{run.key}: {run.label}", 60))
    if "roc.png" in run.artifacts:
        return Path(shutil.copyfile(run.artifacts["roc.png"], path))
    return None


def _tradeoff(runs: Sequence[ConfigRun], figures: Path) -> list[Block]:
    points = [
        TradeoffPoint(r.key, r.family, headline(r), r.interval(TEST_ACC))
        for r in runs
        if r.strongest()
    ]
    if not points:
        return []
    front = pareto_front([p.leakage.mean for p in points], [p.accuracy.mean for p in points])
    path = plot_tradeoff(points, front, figures / "tradeoff.png", HEADLINE_FPR)
    return [
        Heading("Utility-privacy tradeoff"),
        Figure(
            path,
            f"Test accuracy against the strongest attack's TPR at {HEADLINE_FPR:.1%} FPR (log "
            "scale; zeros drawn at 1e-4), one marker per defense family, 95% intervals over "
            "targets; the dashed line is the Pareto front; the dotted line is chance (TPR = FPR). "
            "Points are labelled with their # in the summary table.",
        ),
    ]


def _canaries(runs: Sequence[ConfigRun], figures: Path) -> list[Block]:
    canary_runs = [r for r in runs if r.strongest(CANARY)]
    if not canary_runs:
        return []
    path = plot_population_vs_canary(
        [r.key for r in canary_runs],
        [headline(r) for r in canary_runs],
        [headline(r, CANARY) for r in canary_runs],
        figures / "canaries.png",
        HEADLINE_FPR,
    )
    return [
        Heading("Population vs canary leakage"),
        Figure(
            path,
            f"The strongest attack's TPR at {HEADLINE_FPR:.1%} FPR on the ordinary population and "
            "on the mislabelled canaries (Aerni et al. 2024), each group's strongest attack, with "
            "95% intervals over targets.",
        ),
    ]


def _epsilons(runs: Sequence[ConfigRun], figures: Path) -> list[Block]:
    dp_runs = [r for r in runs if DP_EPSILON in r.metrics and r.attacks()]
    if not dp_runs:
        return []
    path = plot_epsilons(
        [r.key for r in dp_runs],
        [r.interval(DP_EPSILON) for r in dp_runs],
        [largest_eps_lb(r) for r in dp_runs],
        figures / "epsilons.png",
    )
    return [
        Heading("Accountant vs empirical epsilon"),
        Figure(
            path,
            "The DP accountant's epsilon against the largest empirical lower bound over the "
            "attack suite (symmetric log axes: linear below 1); a sound training and audit keeps "
            "every point below the diagonal.",
        ),
    ]


def figure_blocks(runs: Sequence[ConfigRun], figures: Path) -> list[Block]:
    """The report's cross-configuration figures, drawn into ``figures``."""
    return [*_tradeoff(runs, figures), *_canaries(runs, figures), *_epsilons(runs, figures)]
