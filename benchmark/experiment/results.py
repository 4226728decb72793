"""The result of one configuration: its plan, signals, utility and every attack's result."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from benchmark.evaluation.audit import accountant_violations
from benchmark.evaluation.dp_audit import AuditBound
from benchmark.evaluation.groups import metric_groups
from benchmark.evaluation.intervals import (
    Replicates,
    draw_replicates,
    percentile_interval,
    replicate_means,
    weighted_roc_metrics,
)
from benchmark.evaluation.keys import (
    AUDIT,
    DP_EPSILON,
    EPS_LB,
    HELDOUT_COUNT,
    MU_LB,
    audit_key,
    privacy_key,
    utility_key,
)
from benchmark.evaluation.metrics import Interval, metric_bounds
from benchmark.evaluation.results import AttackResult
from benchmark.experiment.plan import Plan
from benchmark.experiment.replicates import replicate_interval
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
    #: The canary audit's bounds (``audit=whitebox``/``blackbox``), one per method; empty
    #: without an audit.
    dp_audit: list[AuditBound] = field(default_factory=list)
    #: ``protocol.target.checkpoint``: the extra target's own result (its one target is the
    #: checkpoint, its shadows all ``K`` models); never part of this result's means.
    extra_target: ExperimentResult | None = None
    #: ``protocol.replicates=R``: replicates 1..R-1, each a whole result (this is replicate 0).
    other_replicates: list[ExperimentResult] = field(default_factory=list)
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

    @property
    def n_replicates(self) -> int:
        return 1 + len(self.other_replicates)

    def summary(self, scheme: str | None = None) -> dict[str, Interval]:
        """Each metric's mean with its 95% interval: the one place an interval is chosen.

        By default (``scheme=None``), with one replicate, the mean over targets with a bootstrap
        interval over pool points (benchmark.evaluation.intervals: what it covers and why); with
        ``protocol.replicates=R > 1``, the mean over replicates of their means over targets with
        a Student-t interval over the ``R`` replicate means (``"replicates"``,
        benchmark.experiment.replicates). A named bootstrap ``scheme`` describes this replicate
        (replicate 0) alone.
        """
        if scheme is None:
            scheme = "replicates" if self.other_replicates else "points"
        if scheme not in self._summaries:
            self._summaries[scheme] = (
                self._over_replicates() if scheme == "replicates" else self._bootstrap(scheme)
            )
        return dict(self._summaries[scheme])

    def target_means(self) -> dict[str, float]:
        """Each metric's mean over this replicate's targets."""
        return {
            key: float(np.asarray([m[key] for m in self.per_target], dtype=np.float64).mean())
            for key in self.per_target[0]
        }

    def _over_replicates(self) -> dict[str, Interval]:
        means = [self.target_means(), *(r.target_means() for r in self.other_replicates)]
        keys = [key for key in means[0] if all(key in m for m in means[1:])]
        return {key: replicate_interval([m[key] for m in means], key) for key in keys}

    def _bootstrap(self, scheme: str) -> dict[str, Interval]:
        replicates = self.bootstrap(scheme)
        nan = np.full(1, np.nan)
        return {
            key: percentile_interval(mean, replicates.get(key, nan), bounds=metric_bounds(key))
            for key, mean in self.target_means().items()
        }

    def not_applicable(self) -> dict[str, str]:
        return {a.name: a.not_applicable for a in self.attacks if a.not_applicable}

    def audit_metrics(self) -> dict[str, float]:
        """The configuration's canary-audit metrics: ``audit/<method>/eps_lb`` (and ``mu_lb``)."""
        metrics = {}
        for bound in self.dp_audit:
            metrics[audit_key(bound.method)] = bound.eps_lb
            if np.isfinite(bound.mu_lb):
                metrics[audit_key(bound.method, MU_LB)] = bound.mu_lb
        return metrics

    def accountant_violations(self) -> dict[str, list[int]]:
        """``<group>/<attack>`` -> targets (model indices) whose eps_lb exceeds ``dp/epsilon``;
        ``audit/<method>`` -> the models of a canary audit bound above the largest epsilon."""
        violations = {
            name: [int(self.targets[i]) for i in positions]
            for name, positions in accountant_violations(self.per_target).items()
        }
        if self.epsilons:
            claimed = max(self.epsilons)
            for bound in self.dp_audit:
                if bound.eps_lb > claimed + 1e-9:
                    violations[f"{AUDIT}/{bound.method}"] = list(bound.models)
        return violations
