"""The result of one configuration: its plan, signals, utility and every attack's result."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark.evaluation.audit import accountant_violations
from benchmark.evaluation.keys import HELDOUT_COUNT
from benchmark.evaluation.metrics import Interval, mean_interval, metric_bounds
from benchmark.evaluation.results import AttackResult
from benchmark.experiment.plan import Plan
from benchmark.signals.arrays import Signals


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

    @property
    def targets(self) -> np.ndarray:
        return self.signals.targets

    def target_metrics(self, position: int) -> dict[str, float]:
        """Every metric of the ``position``-th target under its stable key."""
        metrics = {
            f"utility/{key}": float(values[position]) for key, values in self.utility.items()
        }
        if self.epsilons is not None:
            metrics["dp/epsilon"] = float(self.epsilons[self.targets[position]])
        if self.signals.held_out.any():  # only runs whose training held members out
            metrics[HELDOUT_COUNT] = float(self.signals.held_out[self.targets[position]].sum())
        for attack in self.attacks:
            for group, evaluations in attack.evaluations.items():
                for key, value in evaluations[position].metrics().items():
                    metrics[f"{group}/{attack.name}/{key}"] = value
            for group, audits in attack.audits.items():
                metrics[f"{group}/{attack.name}/eps_lb"] = audits[position].eps_lb
        return metrics

    def summary(self) -> dict[str, Interval]:
        """Each metric as a mean over targets with a 95% interval."""
        per_target = [self.target_metrics(i) for i in range(len(self.targets))]
        return {
            key: mean_interval([m[key] for m in per_target], bounds=metric_bounds(key))
            for key in per_target[0]
        }

    def not_applicable(self) -> dict[str, str]:
        return {a.name: a.not_applicable for a in self.attacks if a.not_applicable}

    def accountant_violations(self) -> dict[str, list[int]]:
        """``<group>/<attack>`` -> targets (model indices) whose eps_lb exceeds ``dp/epsilon``."""
        per_target = [self.target_metrics(i) for i in range(len(self.targets))]
        return {
            name: [int(self.targets[i]) for i in positions]
            for name, positions in accountant_violations(per_target).items()
        }
