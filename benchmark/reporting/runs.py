"""The run model of a report: one :class:`ConfigRun` per configuration, its family and label.

A configuration is what its ``config_hash`` tag names (the hash of its resolved config,
:func:`benchmark.tracking.params.config_hash`): identical reruns are one configuration, reported
once (:func:`merge_reruns`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import defenses  # noqa: F401  (registers every defense, so each one's family can be read)
from benchmark.errors import ConfigError
from benchmark.evaluation.keys import (
    AUC,
    HEADLINE,
    POPULATION,
    STRONGEST,
    interval_keys,
    privacy_key,
)
from benchmark.evaluation.metrics import Interval
from benchmark.tracking.params import COMPARISON_PARAMS
from defenses.base import DEFENSES

CONFIG_HASH_TAG = "config_hash"
NOT_APPLICABLE_PREFIX = "not_applicable/"


def defense_family(defense: str) -> str:
    """The family of a configuration's ``defense`` tag, from each defense class's ``family``
    attribute (``a+b``: ``composed`` unless both share a family; ``none`` composed with a
    defense is that defense). Defenses this checkout no longer has are ``other``."""
    families = {_family(name) for name in defense.split("+") if name}
    families -= {"none"}
    if not families:
        return "none"
    return families.pop() if len(families) == 1 else "composed"


def _family(name: str) -> str:
    try:
        return DEFENSES.lookup(name).family
    except ConfigError:  # a run recorded by a checkout with a defense this one lacks
        return "other"


@dataclass
class ConfigRun:
    """One configuration run as MLflow stores it, with the label the report gives it."""

    run_id: str
    status: str
    start_time: int
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, float]
    label: str = ""
    #: Short id (C1, C2, ... in table order; F1, ... for failed runs) that figures use.
    key: str = ""
    artifacts: dict[str, Path] = field(default_factory=dict)
    #: Earlier runs of the same configuration (same config hash) this run stands for.
    reruns: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.tags.get("mlflow.runName", self.run_id)

    @property
    def defense(self) -> str:
        return self.tags.get("defense", "?")

    @property
    def family(self) -> str:
        return defense_family(self.defense)

    @property
    def config_hash(self) -> str:
        return self.tags.get(CONFIG_HASH_TAG, "")

    @property
    def finished(self) -> bool:
        return self.status == "FINISHED" and "failure_reason" not in self.tags

    def interval(self, key: str) -> Interval:
        nan = float("nan")
        low, high = (self.metrics.get(k, nan) for k in interval_keys(key))
        return Interval(self.metrics.get(key, nan), low, high)

    def attacks(self, group: str = POPULATION) -> list[str]:
        """The attacks with metrics in ``group``, alphabetically (not the strongest-of axis)."""
        prefix = f"{group}/"
        names = {k.split("/")[1] for k in self.metrics if k.startswith(prefix)}
        return sorted(names - {STRONGEST})

    def strongest(self, group: str = POPULATION, metric: str = HEADLINE) -> str | None:
        """The attack with the largest mean ``metric`` (ties: larger AUC)."""
        attacks = self.attacks(group)
        if not attacks:
            return None

        def rank(a: str) -> tuple[float, float]:
            return (
                self.metrics.get(privacy_key(group, a, metric), -math.inf),
                self.metrics.get(privacy_key(group, a, AUC), -math.inf),
            )

        return max(attacks, key=rank)

    def not_applicable(self) -> dict[str, str]:
        prefix = NOT_APPLICABLE_PREFIX
        return {k[len(prefix) :]: v for k, v in self.tags.items() if k.startswith(prefix)}


def merge_reruns(runs: Sequence[ConfigRun]) -> list[ConfigRun]:
    """One run per configuration hash, the latest; it lists the earlier ones in ``reruns``.

    Finished and failed runs are merged separately: a failure stays visible beside the rerun
    that succeeded. Runs without a hash are kept as they are."""
    kept: dict[tuple[str, bool], ConfigRun] = {}
    out: list[ConfigRun] = []
    for run in sorted(runs, key=lambda r: r.start_time, reverse=True):
        group = (run.config_hash, run.finished)
        if run.config_hash and group in kept:
            kept[group].reruns.append(run.run_id)
            continue
        kept[group] = run
        out.append(run)
    return sorted(out, key=lambda r: r.start_time)


def varying_params(runs: Sequence[ConfigRun]) -> list[str]:
    """The configuration params whose values differ between the runs (not the comparison
    params: each restates the defense or a configuration key)."""
    keys = sorted({k for r in runs for k in r.params if k not in COMPARISON_PARAMS})
    return [k for k in keys if len({r.params.get(k) for r in runs}) > 1]


def label_runs(runs: Sequence[ConfigRun]) -> None:
    """Short unique labels: the defense, then the params that vary between the runs."""
    varying = varying_params(runs)
    for run in runs:
        parts = []
        for key in varying:
            value = run.params.get(key)
            if value is None or value == "{}":
                continue
            short = key
            for name in run.defense.split("+"):
                short = short.removeprefix(f"defense.{name}.")
            parts.append(f"{short}={value}")
        run.label = run.defense + (f" ({', '.join(parts)})" if parts else "")
    seen: dict[str, int] = {}
    for run in runs:
        seen[run.label] = seen.get(run.label, 0) + 1
    for run in runs:
        if seen[run.label] > 1:
            run.label += f" #{run.run_id[:6]}"
