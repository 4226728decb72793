"""Executing a planned configuration: the data flow of ARCHITECTURE.md from left to right.

Train, release, compute the signals, attack every target (leave-one-out) and evaluate.
"""

from __future__ import annotations

import numpy as np

from attacks.base import Attack, AttackerView, PoolCopies, attacker_view, memoise_query
from benchmark.evaluation.audit import EpsilonAudit, audit_delta, audit_targets
from benchmark.evaluation.canary_scores import blackbox_audit, whitebox_audit
from benchmark.evaluation.dp_audit import AuditBound
from benchmark.evaluation.groups import metric_groups
from benchmark.evaluation.metrics import RocEvaluation, evaluate
from benchmark.evaluation.results import AttackResult
from benchmark.experiment.extra_target import with_extra_target
from benchmark.experiment.plan import Plan
from benchmark.experiment.results import ExperimentResult
from benchmark.progress import progress, reporting_epochs
from benchmark.release.api import Release
from benchmark.signals.arrays import Signals
from benchmark.signals.compute import compute_signals
from benchmark.store.ensemble_store import TRAINED, Obtained, Origin
from benchmark.training.engines import train
from benchmark.training.input_canaries import InputCanaryTrace
from benchmark.training.recipe import Recipe
from benchmark.training.trained import Models


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


def _evaluate(scores: np.ndarray, signals: Signals) -> dict[str, list[RocEvaluation]]:
    return {
        group: [
            evaluate(scores[i][mask[i]], signals.membership[k][mask[i]])
            for i, k in enumerate(signals.targets)
        ]
        for group, mask in metric_groups(signals).items()
    }


def _audit(scores: np.ndarray, signals: Signals, delta: float) -> dict[str, list[EpsilonAudit]]:
    """Empirical epsilon per target; each threshold chosen on the other targets (audit.py)."""
    membership = signals.membership[signals.targets]
    return {
        group: audit_targets(scores, membership, delta, mask)
        for group, mask in metric_groups(signals).items()
    }


def attacker_views(
    signals: Signals,
    plan: Plan,
    models: Models | None,
    release: Release | None,
    shadow_models: Models | None = None,
    shadow_signals: Signals | None = None,
    pool_copies: PoolCopies | None = None,
) -> list[AttackerView]:
    """Every target's view (leave-one-out shadows), built once and shared by every attack.

    One query cache per run: every model answers a perturbed copy once, whichever target it
    shadows and whichever attack asks (the attacks share ``pool_copies``, so two attacks with
    the same perturbations, ``label_only`` and ``label_only_calibrated``, ask the same array).
    A view also computes its balanced shadow groups once for all attacks.
    """
    query = memoise_query(lambda j, x: release.query(models, j, x))
    shadow_query = query
    if shadow_models is not None and shadow_models is not models:
        shadow_query = memoise_query(lambda j, x: release.query(shadow_models, j, x))
    pool_copies = PoolCopies() if pool_copies is None else pool_copies
    return [
        attacker_view(
            signals,
            int(k),
            shadow_signals=shadow_signals,
            features=plan.pool.x,
            query=query,
            shadow_query=shadow_query,
            pool_kind=plan.pool.kind,
            pool_copies=pool_copies,
        )
        for k in signals.targets
    ]


def run_attack(
    attack: Attack,
    signals: Signals,
    plan: Plan,
    models: Models | None,
    release: Release | None,
    shadow_models: Models | None = None,
    shadow_signals: Signals | None = None,
    views: list[AttackerView] | None = None,
) -> AttackResult:
    """Score every target with ``attack`` (leave-one-out shadows) and evaluate the scores.

    ``shadow_models``/``shadow_signals``: the attacker's own shadow models, when it does not
    know the defense; by default the other targets are the shadows. ``views``: the run's
    :func:`attacker_views` of these, shared by its attacks (built here when None).
    """
    if views is None:
        views = attacker_views(signals, plan, models, release, shadow_models, shadow_signals)
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


def canary_audit(models: Models, plan: Plan) -> list[AuditBound]:
    """The canary audit's bounds (``audit=whitebox`` or ``audit=blackbox``); none without
    canaries. The black-box auditor queries each model on the canaries, as any user could."""
    trace = models.canaries
    delta, confidence = audit_delta(plan.config), float(plan.config["audit"]["confidence"])
    if trace is None:
        return []
    if isinstance(trace, InputCanaryTrace):
        logits = np.stack([models.logits(k, trace.inputs).numpy() for k in range(models.n_models)])
        return blackbox_audit(trace.included, logits, trace.labels, delta, confidence)
    return whitebox_audit(
        trace.included,
        trace.observations,
        trace.sample_rate,
        trace.noise_multiplier,
        delta,
        confidence,
    )


def obtain_models(plan: Plan, recipe: Recipe) -> Obtained:
    """The models ``recipe`` trains on the plan's pool and membership: from the model store
    (reused, or trained and stored), or trained afresh with ``training.cache=false``."""
    if plan.store is None:
        models = train(recipe, plan.pool, plan.membership, progress=plan.show_progress)
        return Obtained(models, Origin(TRAINED, not_stored="training.cache=false"))
    return plan.store.obtain(recipe, plan.pool, plan.membership, progress=plan.show_progress)


def train_shadows(plan: Plan, targets: Obtained) -> Obtained:
    """The attacker's shadow models: the targets themselves (leave-one-out) when it knows the
    defense, else models trained without the training-time defenses on the same membership
    matrix with the same seeds (through the store: they are ``defense=none``'s models). A
    defense without training-time changes leaves the recipe as it is, and then the undefended
    shadows *are* the targets (same recipe, same seeds)."""
    if plan.shadow_recipe is None or plan.shadow_recipe == plan.recipe:
        return targets
    with reporting_epochs(None):  # the run's training metrics are the targets' alone
        return obtain_models(plan, plan.shadow_recipe)


def train_shard(plan: Plan) -> list[tuple[str, str]]:
    """``training.shard=i/n``: train and store the plan's shard of the targets (and of the
    naive attacker's shadows); each entry with where its models came from."""
    assert plan.store is not None and plan.shard is not None
    recipes = [plan.recipe]
    if plan.shadow_recipe is not None and plan.shadow_recipe != plan.recipe:
        recipes.append(plan.shadow_recipe)
    done = []
    for recipe in recipes:
        entry, source = plan.store.train_shard(
            recipe, plan.pool, plan.membership, plan.shard, plan.show_progress
        )
        done.append((str(entry), source))
    return done


def attack_extra_target(
    plan: Plan,
    models: Models,
    release: Release,
    signals: Signals,
    shadow_models: Models,
    shadow_signals: Signals | None,
    pool_copies: PoolCopies | None = None,
) -> ExperimentResult | None:
    """The checkpoint of ``protocol.target``, attacked with all ``K`` models as its shadows."""
    if plan.extra_target is None:
        return None
    extended, extended_signals = with_extra_target(
        plan.extra_target, models, signals, release, plan.pool
    )
    shadows = extended if shadow_models is models else shadow_models
    views = attacker_views(
        extended_signals, plan, extended, release, shadows, shadow_signals, pool_copies
    )
    attacks = progress(plan.attacks, "checkpoint", unit="attack", enabled=plan.show_progress)
    results = [
        run_attack(attack, extended_signals, plan, extended, release, views=views)
        for attack in attacks
    ]
    utility = _utility(extended, release, plan, extended_signals)
    return ExperimentResult(
        plan, extended_signals, utility, results, None, shadow_signals, str(models.device)
    )


def execute(plan: Plan) -> ExperimentResult:
    """Train, release, attack and evaluate the planned configuration.

    Release-time defenses are observable in the API's outputs, so the attacker's shadow models
    are always queried through the same :class:`Release` as the targets; only the training-time
    defenses are what an attacker with ``knows_defense=false`` leaves out.
    """
    targets = obtain_models(plan, plan.recipe)
    models = targets.models
    release = Release(plan.defenses)
    signals = compute_signals(models, release, plan.pool, plan.membership)
    shadows = train_shadows(plan, targets)
    shadow_models = shadows.models
    shadow_signals = (
        None
        if shadow_models is models
        else compute_signals(shadow_models, release, plan.pool, plan.membership)
    )
    pool_copies = PoolCopies()
    views = attacker_views(
        signals, plan, models, release, shadow_models, shadow_signals, pool_copies
    )
    results = [
        run_attack(attack, signals, plan, models, release, shadow_models, shadow_signals, views)
        for attack in progress(plan.attacks, "attacks", unit="attack", enabled=plan.show_progress)
    ]
    del views  # the cached answers to perturbed queries: not needed past the attacks
    utility = _utility(models, release, plan, signals)
    result = ExperimentResult(
        plan,
        signals,
        utility,
        results,
        models.epsilons,
        shadow_signals,
        str(models.device),
        dp_audit=canary_audit(models, plan),
        models_origin=targets.origin,
        shadow_origin=None if shadows is targets else shadows.origin,
    )
    result.extra_target = attack_extra_target(
        plan, models, release, signals, shadow_models, shadow_signals, pool_copies
    )
    with reporting_epochs(None):  # the run's training metrics are replicate 0's alone
        result.other_replicates = [execute(replicate) for replicate in plan.replicates]
    return result
