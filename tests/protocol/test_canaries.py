"""Canaries (Aerni et al. 2024): mislabelled worst-case points, evaluated apart."""

from __future__ import annotations

import numpy as np

from benchmark.data.pool import load_pool
from benchmark.evaluation.metrics import evaluate
from benchmark.experiment.execute import execute
from benchmark.experiment.plan import prepare

#: The default data (digits) and model, undefended, scaled down to seconds: 6 models, 10 epochs.
CANARY_RUN = ["protocol.n_models=6", "training.epochs=10", "protocol.canaries=100"]


def test_canaries_are_mislabelled_half_members(make_config):
    cfg = make_config(CANARY_RUN)
    plan = prepare(cfg, show_progress=False)
    canary = plan.membership.canary
    assert canary.sum() == 100
    original = load_pool(cfg.data, cfg.seed).y
    assert np.all(plan.pool.y[canary] != original[canary])
    assert np.array_equal(plan.pool.y[~canary], original[~canary])
    assert np.all(plan.membership.matrix[:, canary].sum(axis=0) == 3)


def test_canaries_leak_more_than_the_population_on_the_default_data(make_config):
    result = execute(prepare(make_config(CANARY_RUN), show_progress=False))
    summary = result.summary()
    for attack in ("loss", "lira_online", "lira_offline"):
        population = summary[f"privacy/{attack}/tpr_at_fpr_0.001"]
        canaries = summary[f"privacy_canary/{attack}/tpr_at_fpr_0.001"]
        assert canaries.mean > population.mean, attack
    for attack in ("lira_online", "lira_offline"):  # the strong attacks: intervals apart
        population = summary[f"privacy/{attack}/tpr_at_fpr_0.001"]
        canaries = summary[f"privacy_canary/{attack}/tpr_at_fpr_0.001"]
        assert canaries.low > population.high, attack
    # Each group is evaluated on its own points only.
    lira = next(a for a in result.attacks if a.name == "lira_online")
    k, canary = int(result.targets[0]), result.signals.canary
    for group, mask in (("privacy", ~canary), ("privacy_canary", canary)):
        alone = evaluate(lira.scores[0][mask], result.signals.membership[k][mask])
        assert lira.evaluations[group][0].auc == alone.auc
