"""One configuration, end to end: the data flow of DESIGN.md section 2 from left to right.

:func:`prepare` checks everything that can be checked before training (so that bad input fails
with one line and nothing is recorded); :func:`execute` trains, releases, attacks and evaluates.
:func:`run` does both and records the result in MLflow.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from omegaconf import DictConfig
from tqdm.auto import tqdm

import attacks  # noqa: F401  (registers the attacks)
import defenses  # noqa: F401  (registers the defenses)
from attacks.base import Attack, attacker_view, build_suite, memoise_query
from benchmark.audit import EpsilonAudit, accountant_violations, audit_delta, audit_targets
from benchmark.config import to_container, validate
from benchmark.data import Pool, load_pool
from benchmark.metrics import Interval, RocEvaluation, evaluate, mean_interval, metric_bounds
from benchmark.protocol import Membership, make_membership
from benchmark.signals import Signals, compute_signals
from benchmark.training import Models, Recipe, TrainingDiverged, check_recipe, train
from defenses.base import Defense, Release, apply_recipes, build_defenses

#: Metric groups: the ordinary population, and the canaries when there are any.
POPULATION, CANARY = "privacy", "privacy_canary"


@dataclass
class Plan:
    """Everything a configuration needs, checked, before any training starts."""

    config: dict[str, Any]
    pool: Pool
    membership: Membership
    defenses: list[Defense]
    recipe: Recipe
    attacks: list[Attack]
    seed: int
    show_progress: bool = True
    #: The recipe of the attacker's own shadow models when it does not know the defense
    #: (``attacker.knows_defense=false``): the base recipe, without any training-time defense.
    #: None: the attacker knows the recipe, and the other targets serve as shadows.
    shadow_recipe: Recipe | None = None


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


def base_recipe(cfg: DictConfig) -> Recipe:
    t, m = cfg.training, cfg.model
    options = {key: m[key] for key in m if key != "name"}
    return Recipe(
        model=m.name,
        model_options=options,
        optimizer=t.optimizer,
        lr=t.lr,
        momentum=t.momentum,
        epochs=t.epochs,
        batch_size=t.batch_size,
        weight_decay=t.weight_decay,
        engine=t.engine,
        device=t.device,
    )


def mislabel_canaries(pool: Pool, membership: Membership, seed: int) -> Pool:
    """Give every canary a wrong label (Aerni et al. 2024): the hardest points to not memorise."""
    if not membership.canary.any():
        return pool
    rng = np.random.default_rng([seed, 0xCA7A])
    y = pool.y.copy()
    shift = rng.integers(1, pool.num_classes, size=int(membership.canary.sum()))
    y[membership.canary] = (y[membership.canary] + shift) % pool.num_classes
    return Pool(pool.x, y, pool.x_test, pool.y_test, pool.num_classes, pool.name, pool.kind)


def prepare(cfg: DictConfig, show_progress: bool = True, pool: Pool | None = None) -> Plan:
    """Load the data and check every part of ``cfg``; raise ConfigError on the first problem.

    ``pool``, when given, is ``load_pool(cfg.data, cfg.seed)`` already loaded (a sweep's preflight
    checks every job but loads each dataset once).
    """
    validate(cfg)
    config = to_container(cfg)
    defense_list = build_defenses(cfg.defense)
    attack_list = build_suite(cfg.attacks.suite)
    pool = load_pool(cfg.data, cfg.seed) if pool is None else pool
    p = cfg.protocol
    membership = make_membership(len(pool), p.n_models, cfg.seed, p.n_targets, p.canaries)
    pool = mislabel_canaries(pool, membership, cfg.seed)
    for defense in defense_list:
        defense.check(n_train=len(pool) // 2, num_classes=pool.num_classes)
    recipe = apply_recipes(defense_list, base_recipe(cfg))
    check_recipe(recipe, pool)
    plan = Plan(
        config, pool, membership, defense_list, recipe, attack_list, cfg.seed, show_progress
    )
    plan.shadow_recipe = None if cfg.attacker.knows_defense else base_recipe(cfg)
    return plan


def _utility(
    models: Models, release: Release, plan: Plan, signals: Signals
) -> dict[str, np.ndarray]:
    test_acc, train_acc = [], []
    for k in signals.targets:
        test_outputs = release.query(models, int(k), plan.pool.x_test)
        test_acc.append(np.mean(test_outputs.argmax(axis=1) == plan.pool.y_test))
        members = signals.membership[k]
        train_acc.append(
            np.mean(signals.outputs[k, members].argmax(axis=1) == signals.labels[members])
        )
    test, train_ = np.array(test_acc), np.array(train_acc)
    return {"test_acc": test, "train_acc": train_, "gap": train_ - test}


def _groups(signals: Signals) -> dict[str, np.ndarray]:
    groups = {POPULATION: ~signals.canary}
    if signals.canary.any():
        groups[CANARY] = signals.canary
    return groups


def _evaluate(scores: np.ndarray, signals: Signals) -> dict[str, list[RocEvaluation]]:
    return {
        group: [
            evaluate(scores[i][mask], signals.membership[k][mask])
            for i, k in enumerate(signals.targets)
        ]
        for group, mask in _groups(signals).items()
    }


def _audit(scores: np.ndarray, signals: Signals, delta: float) -> dict[str, list[EpsilonAudit]]:
    """Empirical epsilon per target; each threshold chosen on the other targets (audit.py)."""
    membership = signals.membership[signals.targets]
    return {
        group: audit_targets(scores, membership, delta, mask)
        for group, mask in _groups(signals).items()
    }


def run_attack(
    attack: Attack,
    signals: Signals,
    plan: Plan,
    models: Models,
    release: Release,
    shadow_models: Models | None = None,
    shadow_signals: Signals | None = None,
) -> AttackResult:
    """Score every target with ``attack`` (leave-one-out shadows) and evaluate the scores.

    ``shadow_models``/``shadow_signals``: the attacker's own shadow models, when it does not
    know the defense; by default the other targets are the shadows.
    """
    # One cache per attack: every model answers a perturbed copy once, whichever target it shadows.
    query = memoise_query(lambda j, x: release.query(models, j, x))
    shadow_query = query
    if shadow_models is not None and shadow_models is not models:
        shadow_query = memoise_query(lambda j, x: release.query(shadow_models, j, x))
    views = [
        attacker_view(
            signals,
            int(k),
            shadow_signals=shadow_signals,
            features=plan.pool.x,
            query=query,
            shadow_query=shadow_query,
            pool_kind=plan.pool.kind,
        )
        for k in signals.targets
    ]
    reason = attack.not_applicable(views[0])
    if reason is not None:
        return AttackResult(attack.name, None, not_applicable=reason)
    scores = np.stack([attack.score(view) for view in views])
    return AttackResult(
        attack.name,
        scores,
        evaluations=_evaluate(scores, signals),
        audits=_audit(scores, signals, audit_delta(plan.config)),
    )


def train_shadows(plan: Plan, models: Models) -> Models:
    """The attacker's shadow models: the targets themselves (leave-one-out) when it knows the
    defense, else models trained without the training-time defenses on the same membership
    matrix with the same seeds. A defense without training-time changes leaves the recipe as it
    is, and then the undefended shadows *are* the targets (same recipe, same seeds)."""
    if plan.shadow_recipe is None or plan.shadow_recipe == plan.recipe:
        return models
    return train(plan.shadow_recipe, plan.pool, plan.membership, progress=plan.show_progress)


def execute(plan: Plan) -> ExperimentResult:
    """Train, release, attack and evaluate the planned configuration.

    Release-time defenses are observable in the API's outputs, so the attacker's shadow models
    are always queried through the same :class:`Release` as the targets; only the training-time
    defenses are what an attacker with ``knows_defense=false`` leaves out.
    """
    models = train(plan.recipe, plan.pool, plan.membership, progress=plan.show_progress)
    release = Release(plan.defenses)
    signals = compute_signals(models, release, plan.pool, plan.membership)
    shadow_models = train_shadows(plan, models)
    shadow_signals = (
        None
        if shadow_models is models
        else compute_signals(shadow_models, release, plan.pool, plan.membership)
    )
    results = [
        run_attack(attack, signals, plan, models, release, shadow_models, shadow_signals)
        for attack in tqdm(
            plan.attacks, desc="attacks", unit="attack", disable=not plan.show_progress
        )
    ]
    utility = _utility(models, release, plan, signals)
    return ExperimentResult(
        plan, signals, utility, results, models.epsilons, shadow_signals, str(models.device)
    )


@dataclass
class RunOutcome:
    """What :func:`run` did: the result (None on failure), the MLflow run, the summary."""

    result: ExperimentResult | None
    run_id: str | None
    summary: str
    failure: str | None = None


def run(cfg: DictConfig, show_progress: bool = True) -> RunOutcome:
    """Check, execute and record one configuration. Bad input raises ConfigError first."""
    from benchmark.audit import violation_message
    from benchmark.summary import format_summary
    from benchmark.tracking import check_store, record, record_failure

    plan = prepare(cfg, show_progress)
    if cfg.tracking.enabled:
        check_store(cfg.tracking)
    try:
        result = execute(plan)
    except TrainingDiverged as exc:
        reason = f"training diverged: {exc}"
        run_id = record_failure(cfg.tracking, plan.config, reason) if cfg.tracking.enabled else None
        return RunOutcome(None, run_id, reason, failure=reason)
    text = format_summary(result)
    violations = result.accountant_violations()
    if violations:
        message = violation_message(violations)
        warnings.warn(message, stacklevel=2)
        text += f"\n\nWARNING: {message}"
    run_id = record(result, cfg.tracking, text) if cfg.tracking.enabled else None
    return RunOutcome(result, run_id, text)
