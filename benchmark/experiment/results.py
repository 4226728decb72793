"""The result of one configuration: its plan, signals, utility and every attack's result."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from benchmark.evaluation.audit import accountant_violations
from benchmark.evaluation.groups import metric_groups
from benchmark.evaluation.intervals import (
    Replicates,
    draw_replicates,
    percentile_interval,
    replicate_means,
    weighted_roc_metrics,
)
from benchmark.evaluation.keys import (
    DP_EPSILON,
    EPS_LB,
    HELDOUT_COUNT,
    privacy_key,
    utility_key,
)
from benchmark.evaluation.metrics import Interval, metric_bounds
from benchmark.evaluation.results import AttackResult
from benchmark.experiment.plan import Plan
from benchmark.signals.arrays import Signals
from benchmark.store.ensemble_store import TRAINED, Origin


@dataclass
class ExperimentResult:
    plan: Plan
    signals: Signals
    utility: dict[str, np.ndarray]  # per target: test_acc, train_acc, gap
    attacks: list[AttackResult]
    epsilons: list[float] | None = None
    #: What the attacker's undefended shadow models release (``attacker.knows_defense=false``).
    shadow_signals: Signals | None = None
    #: Where the models were trained (``training.device=auto`` resolves to cpu or cuda).
    device: str = "cpu"
    #: Where the targets came from (trained, or the model store's entry).
    models_origin: Origin = field(default_factory=lambda: Origin(TRAINED))
    #: Where the naive attacker's own shadows came from; None when the targets are the shadows.
    shadow_origin: Origin | None = None
    _summaries: dict[str, dict[str, Interval]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __setattr__(self, name: str, value: object) -> None:
        # The per-target table and the summaries are cached: setting a field (a test replacing
        # ``epsilons``, say) must not leave them stale.
        super().__setattr__(name, value)
        if not name.startswith("_"):
            self.__dict__.pop("per_target", None)
            self.__dict__.get("_summaries", {}).clear()

    @property
    def targets(self) -> np.ndarray:
        return self.signals.targets

    @cached_property
    def per_target(self) -> list[dict[str, float]]:
        """Every target's metrics under their stable keys, computed once."""
        return [self._metrics_of(position) for position in range(len(self.targets))]

    def _metrics_of(self, position: int) -> dict[str, float]:
        metrics = {
            utility_key(key): float(values[position]) for key, values in self.utility.items()
        }
        if self.epsilons is not None:
            metrics[DP_EPSILON] = float(self.epsilons[self.targets[position]])
        if self.signals.held_out.any():  # only runs whose training held members out
            metrics[HELDOUT_COUNT] = float(self.signals.held_out[self.targets[position]].sum())
        for attack in self.attacks:
            for group, evaluations in attack.evaluations.items():
                for key, value in evaluations[position].metrics().items():
                    metrics[privacy_key(group, attack.name, key)] = value
            for group, audits in attack.audits.items():
                metrics[privacy_key(group, attack.name, EPS_LB)] = audits[position].eps_lb
        return metrics

    def target_metrics(self, position: int) -> dict[str, float]:
        """Every metric of the ``position``-th target under its stable key (a copy)."""
        return dict(self.per_target[position])

    def bootstrap(self, scheme: str = "points") -> dict[str, np.ndarray]:
        """Each metric's ``[B]`` bootstrap replicate means (benchmark.evaluation.intervals)."""
        n_targets, n_points = len(self.targets), self.signals.membership.shape[1]
        draws: Replicates = draw_replicates(self.plan.seed, n_targets, n_points, scheme=scheme)
        replicates = {}
        groups = metric_groups(self.signals)
        for attack in self.attacks:
            for group in attack.evaluations:
                mask = groups[group]  # [T, N]
                per_target = [
                    weighted_roc_metrics(
                        attack.scores[i][mask[i]],
                        self.signals.membership[k][mask[i]],
                        draws.points[:, mask[i]],
                    )
                    for i, k in enumerate(self.targets)
                ]
                for key in per_target[0]:
                    values = np.stack([m[key] for m in per_target], axis=1)  # [B, T]
                    mean = replicate_means(values, draws.targets)
                    replicates[privacy_key(group, attack.name, key)] = mean
        if n_targets < 2:  # one target: nothing to resample for metrics without per-point data
            return replicates
        for key in self.per_target[0]:
            if key not in replicates:
                values = np.array([m[key] for m in self.per_target])
                replicates[key] = replicate_means(values, draws.targets_only)
        return replicates

    def summary(self, scheme: str = "points") -> dict[str, Interval]:
        """Each metric as a mean over targets with a 95% bootstrap interval over pool points
        (benchmark.evaluation.intervals: what it covers and why)."""
        if scheme in self._summaries:
            return dict(self._summaries[scheme])
        replicates = self.bootstrap(scheme)
        nan = np.full(1, np.nan)
        summary = {}
        for key in self.per_target[0]:
            mean = float(np.asarray([m[key] for m in self.per_target], dtype=np.float64).mean())
            draws = replicates.get(key, nan)
            summary[key] = percentile_interval(mean, draws, bounds=metric_bounds(key))
        self._summaries[scheme] = summary
        return dict(summary)

    def not_applicable(self) -> dict[str, str]:
        return {a.name: a.not_applicable for a in self.attacks if a.not_applicable}

    def accountant_violations(self) -> dict[str, list[int]]:
        """``<group>/<attack>`` -> targets (model indices) whose eps_lb exceeds ``dp/epsilon``."""
        return {
            name: [int(self.targets[i]) for i in positions]
            for name, positions in accountant_violations(self.per_target).items()
        }
