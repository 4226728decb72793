"""The evaluation protocol holds for every registered attack: the hidden row, null and signal."""

import dataclasses

import numpy as np
import pytest

from attacks import ATTACKS, attacker_view, build_suite
from benchmark.evaluation.metrics import evaluate
from benchmark.experiment.execute import attacker_views, run_attack


def all_attacks():
    return build_suite({name: {} for name in ATTACKS})


def view_for(trained, signals, k):
    return attacker_view(signals, k, features=trained.plan.pool.x, query=trained.query)


def test_attack_view_has_no_target_row(fast_trained):
    signals = fast_trained.signals
    view = view_for(fast_trained, signals, 1)
    assert view.shadow_membership.shape == (signals.membership.shape[0] - 1, len(signals.labels))
    others = np.delete(signals.membership, 1, axis=0)
    assert np.array_equal(view.shadow_membership, others)
    assert not view.shadow_outputs.flags.writeable and not view.shadow_membership.flags.writeable


@pytest.mark.parametrize("attack", all_attacks(), ids=lambda a: a.name)
def test_changing_the_hidden_row_leaves_scores_unchanged(fast_trained, attack):
    signals = fast_trained.signals
    view = view_for(fast_trained, signals, 0)
    if attack.not_applicable(view):
        pytest.fail(
            f"{attack.name} not applicable on full probabilities: {attack.not_applicable(view)}"
        )
    flipped = signals.membership.copy()
    flipped[0] = ~flipped[0]
    changed = dataclasses.replace(signals, membership=flipped)
    np.testing.assert_array_equal(
        attack.score(view), attack.score(view_for(fast_trained, changed, 0))
    )


def test_lira_on_a_membership_vector_it_was_not_trained_on_is_chance(overfit_trained):
    """Null test: against independent random membership labels, LiRA's mean AUC is 0.5.

    Given the scores, the permutations are independent across targets, so the mean AUC of T
    targets has null standard deviation sigma0/sqrt(T), with sigma0^2 = (n0+n1+1)/(12 n0 n1)
    (Mann-Whitney). We allow 4 standard deviations.
    """
    signals = overfit_trained.signals
    rng = np.random.default_rng(0)
    for name in ("lira_online", "lira_offline"):
        result = run_attack(build_suite({name: {}})[0], signals, overfit_trained.plan, None, None)
        aucs = []
        for position, k in enumerate(signals.targets):
            fake = rng.permutation(signals.membership[k])
            aucs.append(evaluate(result.scores[position], fake).auc)
        n1 = signals.membership[0].sum()
        n0 = len(signals.labels) - n1
        sigma0 = np.sqrt((n0 + n1 + 1) / (12 * n0 * n1))
        assert abs(np.mean(aucs) - 0.5) < 4 * sigma0 / np.sqrt(len(aucs)), (name, aucs)
        assert np.mean([e.auc for e in result.evaluations["privacy"]]) > 0.75  # real signal


def test_lira_finds_far_more_than_loss_at_low_fpr_on_an_overfit_model(overfit_trained):
    signals, plan = overfit_trained.signals, overfit_trained.plan
    tpr = {
        name: np.mean(
            [
                e.tpr_at_fpr[0.01]
                for e in run_attack(a, signals, plan, None, None).evaluations["privacy"]
            ]
        )
        for name, a in zip(
            ("loss", "lira_online"), build_suite({"loss": {}, "lira_online": {}}), strict=True
        )
    }
    assert tpr["lira_online"] > 0.10, tpr  # ten times the 1% a blind guess gets
    assert tpr["lira_online"] > 2 * tpr["loss"], tpr


def test_the_label_only_attacks_of_a_run_ask_every_model_once(fast_trained):
    """One query cache and one set of perturbed copies per run: ``label_only`` and
    ``label_only_calibrated`` (same perturbations) ask each model once between them, and score
    exactly as each does alone."""
    trained = fast_trained
    asked = []

    class CountingRelease:
        def query(self, models, k, x):
            asked.append((k, id(x)))
            return trained.release.query(models, k, x)

    suite = {"label_only": {}, "label_only_calibrated": {}}
    views = attacker_views(trained.signals, trained.plan, trained.models, CountingRelease())
    shared = [
        run_attack(attack, trained.signals, trained.plan, None, None, views=views).scores
        for attack in build_suite(suite)
    ]
    assert sorted(k for k, _ in asked) == list(range(trained.models.n_models))
    assert len({array for _, array in asked}) == 1  # both attacks asked the same copies
    for attack, scores in zip(build_suite(suite), shared, strict=True):
        alone = run_attack(attack, trained.signals, trained.plan, trained.models, trained.release)
        np.testing.assert_array_equal(scores, alone.scores)
