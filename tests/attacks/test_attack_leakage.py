"""Every attack of the suite: no information where there is none, and none taken from the protocol.

The null bound: when an attack's scores are independent of the target's membership (which is a
uniformly random balanced vector), its AUC is a Mann-Whitney statistic of a random labelling, with
mean 1/2 and standard deviation ``auc_null_sd`` (ties only shrink it). We require
``|AUC - 1/2| < 4 sd``: a correct attack fails this with probability below 1e-4.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from omegaconf import OmegaConf
from sklearn.metrics import roc_auc_score

from attacks.base import ATTACKS, attacker_view, build_attack
from attacks.rmia import RmiaOnline, rmia_scores
from attacks.transforms import (
    FLOOR,
    log_true_class_probability,
    logit_confidence,
    true_class_probability,
)
from benchmark.config.compose import CONFIG_DIR
from defenses.truncation import LabelOnly, TopK
from tests.attack_worlds import auc_null_sd, make_world

SUITE = OmegaConf.to_container(OmegaConf.load(f"{CONFIG_DIR}/attacks/suite.yaml").suite)


def _attacks():
    return [build_attack(name, params) for name, params in SUITE.items()]


def _deviation(scores: np.ndarray, truth: np.ndarray) -> float:
    """How many null standard deviations the AUC lies from 1/2."""
    return (roc_auc_score(truth, scores) - 0.5) / auc_null_sd(truth)


@pytest.mark.parametrize("n_models", [16, 8])
@pytest.mark.parametrize("setting", ["null", "uninformative_target"])
def test_no_attack_beats_chance_without_information(setting, n_models):
    """``null``: no model's outputs depend on membership. ``uninformative_target``: the shadows'
    outputs do, the target's do not, and the membership matrix has the protocol's balanced
    structure, so a point's IN-shadow count reveals the target's membership: any attack using
    that count (directly, or through unequal IN/OUT sample sizes) fails here."""
    world = make_world(
        n_points=4000,
        n_models=n_models,
        effect=0.0 if setting == "null" else 2.0,
        uninformative_target=setting == "uninformative_target",
        seed=11,
    )
    truth = world.signals.membership[0]
    view = world.view()
    for attack in _attacks():
        assert abs(_deviation(attack.score(view), truth)) < 4, attack.name


def test_the_leakage_check_catches_an_attack_that_counts_in_shadows():
    """RMIA with ``Pr(x)`` the plain mean over all shadows weighs IN and OUT shadows by their
    counts, i.e. by the target's membership: the check must flag it."""

    class PlainMeanRmia(RmiaOnline):
        def score(self, view):
            target = true_class_probability(view.target_outputs, view.labels)
            marginal = true_class_probability(view.shadow_outputs, view.labels).mean(axis=0)
            ratio = target / marginal
            return rmia_scores(ratio, ratio, 1.0)

    world = make_world(n_points=4000, n_models=16, effect=2.0, uninformative_target=True, seed=11)
    leaky = PlainMeanRmia(build_attack("rmia", {}).params)
    assert _deviation(leaky.score(world.view()), world.signals.membership[0]) > 6


def test_scores_do_not_depend_on_the_hidden_target_row():
    world = make_world(n_points=300, n_models=8, effect=1.0, seed=12)
    membership = world.signals.membership.copy()
    membership[0] = ~membership[0]  # a different (still valid) row for the target
    other = dataclasses.replace(world.signals, membership=membership)
    for attack in _attacks():
        views = [
            attacker_view(s, 0, features=world.features, query=world.query, pool_kind="tabular")
            for s in (world.signals, other)
        ]
        np.testing.assert_array_equal(attack.score(views[0]), attack.score(views[1]), attack.name)


def test_scores_are_reproducible():
    world = make_world(n_points=300, n_models=8, effect=1.0, seed=13)
    for name, params in SUITE.items():
        first = build_attack(name, params).score(world.view())
        np.testing.assert_array_equal(first, build_attack(name, params).score(world.view()), name)


@pytest.mark.parametrize(
    "release",
    [TopK(TopK.Params(k=1)).release, TopK(TopK.Params(k=2)).release, lambda p: np.round(p, 1)],
    ids=["top1", "top2", "rounded"],
)
def test_truncated_and_rounded_releases_give_finite_scores(release):
    """Convention: a probability the API does not release (or rounds to 0) is 0, floored at
    ``FLOOR`` before any logarithm, so every attack still returns finite scores."""
    world = make_world(n_points=300, n_models=8, effect=2.0, seed=14)
    outputs = np.stack([release(o) for o in world.signals.outputs])
    signals = dataclasses.replace(world.signals, outputs=outputs, release_kind="truncated")
    view = attacker_view(
        signals, 0, features=world.features, query=world.query, pool_kind="tabular"
    )
    for attack in _attacks():
        assert attack.not_applicable(view) is None, attack.name
        assert np.all(np.isfinite(attack.score(view))), attack.name


def test_the_floor_convention_for_missing_probabilities():
    released = np.array([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0]], dtype=np.float32)  # top-k / rounded
    labels = np.array([0, 2])
    np.testing.assert_array_equal(
        log_true_class_probability(released, labels), np.log([FLOOR, FLOOR])
    )
    # p_y missing: phi = log FLOOR - log(rest released); p_y = 1 and nothing else: -log FLOOR.
    np.testing.assert_allclose(logit_confidence(released, labels), [np.log(FLOOR), np.log(FLOOR)])
    full = np.array([[1.0, 0.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(logit_confidence(full, np.array([0])), [-np.log(FLOOR)])


def test_a_label_release_leaves_only_the_label_only_attacks():
    world = make_world(n_points=200, n_models=8, effect=2.0, seed=15)
    onehot = np.stack([LabelOnly(None).release(o) for o in world.signals.outputs])
    assert set(np.unique(onehot)) == {0.0, 1.0} and np.all(onehot.sum(axis=-1) == 1)
    signals = dataclasses.replace(world.signals, outputs=onehot, release_kind="label")
    view = attacker_view(signals, 0, features=world.features, query=world.query)
    for attack in _attacks():
        reason = attack.not_applicable(view)
        if attack.needs == "label":
            assert reason is None and np.all(np.isfinite(attack.score(view))), attack.name
        else:
            assert "releases only 'label'" in reason, attack.name
    assert {name for name, cls in ATTACKS.items() if cls.needs == "label"} == {
        "label_only",
        "label_only_calibrated",
    }


def test_attacks_without_shadow_pairs_or_queries_say_why():
    world = make_world(n_points=50, n_models=2, effect=1.0)
    view = world.view()
    for attack in _attacks():
        reason = attack.not_applicable(view)
        assert (reason is None) == (attack.name in ("loss", "label_only")), attack.name
    no_queries = attacker_view(make_world(n_points=50, n_models=8).signals, 0)
    assert "query access" in build_attack("label_only", {}).not_applicable(no_queries)
