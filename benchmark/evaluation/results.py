"""The result of one attack over every target of a configuration."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from benchmark.evaluation.audit import EpsilonAudit
from benchmark.evaluation.metrics import RocEvaluation


@dataclass
class AttackResult:
    name: str
    #: Scores ``[T, N]`` per target, or None when the attack does not apply to this release.
    scores: np.ndarray | None
    not_applicable: str | None = None
    #: Per-target evaluations, by metric group (``privacy``, ``privacy_canary``).
    evaluations: dict[str, list[RocEvaluation]] = field(default_factory=dict)
    #: Per-target empirical epsilon lower bounds, by metric group (see benchmark.audit).
    audits: dict[str, list[EpsilonAudit]] = field(default_factory=dict)
