"""Each attack on synthetic signals whose right answer is known (no training)."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from attacks.augment import image_augmentations, random_tabular_perturbations, shift
from attacks.base import ATTACKS, AttackerView, attacker_view, build_attack, memoise_query
from attacks.label_only import calibrated_log_ratio
from attacks.lira import lira_statistics
from attacks.rmia import marginal_probability
from attacks.thresholds import (
    best_threshold,
    negative_entropy,
    negative_modified_entropy,
)
from attacks.transforms import true_class_probability
from benchmark.config.compose import CONFIG_DIR
from benchmark.errors import ConfigError
from benchmark.signals.arrays import Signals
from tests.attack_worlds import auc_null_sd, make_world, probabilities


def _gaussian_logpdf(x, mean, std):
    return -((x - mean) ** 2) / (2 * std**2) - np.log(std) - 0.5 * np.log(2 * np.pi)


def _direct_lira(view: AttackerView, per_example: bool) -> tuple[np.ndarray, np.ndarray]:
    """Carlini et al. 2022, Algorithm 1, written out point by point (online and offline scores)."""
    phi_shadow = np.log(
        true_class_probability(view.shadow_outputs, view.labels)
        / (1 - true_class_probability(view.shadow_outputs, view.labels))
    )
    p = true_class_probability(view.target_outputs, view.labels)
    phi = np.log(p / (1 - p))
    groups = {"in": view.in_shadows, "out": view.out_shadows}
    means = {
        g: np.array([phi_shadow[m[:, i], i].mean() for i in range(len(phi))])
        for g, m in groups.items()
    }
    stds = {}
    for g, m in groups.items():
        if per_example:
            stds[g] = np.array([phi_shadow[m[:, i], i].std(ddof=1) for i in range(len(phi))])
        else:
            residual = sum(
                ((phi_shadow[m[:, i], i] - means[g][i]) ** 2).sum() for i in range(len(phi))
            )
            dof = sum(m[:, i].sum() - 1 for i in range(len(phi)))
            stds[g] = np.full(len(phi), np.sqrt(residual / dof))
    online = _gaussian_logpdf(phi, means["in"], stds["in"]) - _gaussian_logpdf(
        phi, means["out"], stds["out"]
    )
    offline = norm.logcdf((phi - means["out"]) / stds["out"])
    return online, offline


@pytest.mark.parametrize("n_models", [8, 66])
def test_lira_matches_a_direct_implementation_of_the_paper(n_models):
    world = make_world(n_points=150, n_models=n_models, effect=1.0, seed=3)
    view = world.view()
    per_example = view.n_shadows >= 64
    online, offline = _direct_lira(view, per_example)
    np.testing.assert_allclose(build_attack("lira_online", {}).score(view), online, rtol=1e-6)
    np.testing.assert_allclose(build_attack("lira_offline", {}).score(view), offline, rtol=1e-6)


def test_lira_online_approaches_the_neyman_pearson_test():
    """With many shadows, LiRA's score is the true log-likelihood ratio of the two Gaussians."""
    effect, n_models = 1.0, 400
    world = make_world(n_points=400, n_models=n_models, effect=effect, seed=4)
    view = world.view()
    phi, base = world.strength[0], world.strength[1:].mean(axis=0) - effect / 2
    # phi ~ N(base + effect, 1) for members, N(base, 1) for non-members.
    optimal = norm.logpdf(phi, base + effect, 1.0) - norm.logpdf(phi, base, 1.0)
    score = build_attack("lira_online", {}).score(view)
    assert np.corrcoef(score, optimal)[0, 1] > 0.98
    truth = world.signals.membership[0]
    assert abs(roc_auc_score(truth, score) - roc_auc_score(truth, optimal)) < 0.02


def _image_view(n_points=60, n_models=8, seed=0) -> tuple[AttackerView, callable]:
    """Two-class image world: model j answers p_1 = sigmoid(<w_j, x>), every label is 1."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_points, 1, 4, 4)).astype(np.float32)
    weights = rng.normal(size=(n_models, 16))
    labels = np.ones(n_points, dtype=np.int64)

    def query(j, batch):
        return probabilities(
            batch.reshape(len(batch), -1) @ weights[j], np.ones(len(batch), int), 2
        )

    signals = Signals(
        outputs=np.stack([query(j, x) for j in range(n_models)]),
        labels=labels,
        membership=np.random.default_rng(1).random((n_models, n_points)) < 0.5,
        canary=np.zeros(n_points, bool),
        targets=np.arange(n_models),
        release_kind="probabilities",
    )
    view = attacker_view(signals, 0, features=x, query=query, pool_kind="image")
    return view, query


def test_lira_augmented_queries_average_the_per_augmentation_ratios():
    view, query = _image_view()
    copies = image_augmentations(view.features, max_shift=1, flip=True)
    assert copies.shape == (18, *view.features.shape)
    np.testing.assert_array_equal(copies[0], view.features)  # the identity comes first
    expected = []
    for copy in copies:
        target_phi = np.log(query(0, copy)[:, 1] / query(0, copy)[:, 0])
        shadow_phi = np.stack(
            [np.log(query(j, copy)[:, 1] / query(j, copy)[:, 0]) for j in range(1, 8)]
        )
        s = lira_statistics(shadow_phi, view.in_shadows, view.out_shadows, per_example=False)
        expected.append(
            norm.logpdf(target_phi, s["mu_in"], s["std_in"])
            - norm.logpdf(target_phi, s["mu_out"], s["std_out"])
        )
    attack = build_attack("lira_online", {"max_shift": 1, "flip": True})
    np.testing.assert_allclose(attack.score(view), np.mean(expected, axis=0), rtol=1e-6)
    # Tabular pools are never augmented: the same parameters give plain LiRA.
    tabular = make_world(n_points=50, n_models=8).view()
    plain = build_attack("lira_online", {}).score(tabular)
    np.testing.assert_array_equal(attack.score(tabular), plain)


def test_shift_moves_pixels_and_replicates_edges():
    image = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    moved = shift(image, 1, 0)[0, 0]
    np.testing.assert_array_equal(moved[1:], image[0, 0, :-1])  # down by one row
    np.testing.assert_array_equal(moved[0], image[0, 0, 0])  # the edge row is replicated


def test_song_mittal_statistics_follow_their_definitions():
    p = np.array([[0.7, 0.2, 0.1, 0.0]])
    y = np.array([0])
    entropy = -(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1))
    mentropy = -(0.3 * np.log(0.7)) - (0.2 * np.log(0.8) + 0.1 * np.log(0.9))
    np.testing.assert_allclose(negative_entropy(p, y), [-entropy])
    np.testing.assert_allclose(negative_modified_entropy(p, y), [-mentropy])


def test_best_threshold_separates_and_never_ties():
    values = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    members = np.array([False, False, False, True, True, True])
    tau = best_threshold(values, members)
    assert 0.3 < tau < 0.6


def test_class_dependent_thresholds_beat_one_global_threshold():
    """Class 0 is easy (members ~0.95, others ~0.8), class 1 hard (0.6 vs 0.3): a global
    threshold cannot separate both, per-class thresholds (Song & Mittal) can."""
    rng = np.random.default_rng(0)
    n_models, n_points = 16, 400
    labels = np.repeat([0, 1], n_points // 2)
    membership = rng.random((n_models, n_points)) < 0.5
    centre = np.where(labels == 0, 0.8, 0.3) + np.where(
        membership, np.where(labels == 0, 0.15, 0.3), 0
    )
    p_true = np.clip(centre + 0.02 * rng.standard_normal(centre.shape), 0.01, 0.99)
    outputs = np.stack(
        [np.where(labels == 0, p_true, 1 - p_true), np.where(labels == 0, 1 - p_true, p_true)],
        axis=-1,
    )
    view = AttackerView(
        target_outputs=outputs[0],
        shadow_outputs=outputs[1:],
        shadow_membership=membership[1:],
        labels=labels,
        release_kind="probabilities",
    )
    score = build_attack("confidence", {}).score(view)
    accuracy = np.mean((score > 0) == membership[0])
    assert accuracy > 0.97
    global_best = max(np.mean((p_true[0] > t) == membership[0]) for t in np.linspace(0, 1, 201))
    assert global_best < 0.8


def _population_optimal_auc(effect: float) -> float:
    """The best AUC without per-point knowledge in a world with ``base ~ N(1, 1.5^2)``, noise 1."""
    return float(norm.cdf(effect / np.sqrt(2 * (1.5**2 + 1))))


@pytest.mark.parametrize("name", ["loss", "confidence", "entropy", "mentropy", "shadow"])
def test_population_attacks_reach_the_population_optimum(name):
    """Without per-point calibration the optimal test thresholds ``s`` itself; every monotone
    statistic of ``s`` (and a well-fitted attack model) reaches its AUC. The entropy ignores the
    label, so it is monotone in ``s`` only where ``p_y > 1/2``: the world keeps it there."""
    world = make_world(n_points=4000, n_models=8, num_classes=2, effect=1.0, base_mean=6.0, seed=5)
    truth = world.signals.membership[0]
    auc = roc_auc_score(truth, build_attack(name, {}).score(world.view()))
    assert abs(auc - _population_optimal_auc(1.0)) < 3 * auc_null_sd(truth)


def test_per_example_attacks_beat_the_population_optimum():
    world = make_world(n_points=2000, n_models=32, effect=1.0, seed=6)
    truth = world.signals.membership[0]
    per_point_optimum = norm.cdf(1.0 / np.sqrt(2))  # phi ~ N(base_i + effect*m, 1)
    for name in ("lira_online", "lira_offline", "rmia", "rmia_offline", "label_only_calibrated"):
        auc = roc_auc_score(truth, build_attack(name, {}).score(world.view()))
        assert _population_optimal_auc(1.0) + 0.03 < auc <= per_point_optimum + 0.03, name


def test_rmia_matches_the_pairwise_definition():
    world = make_world(n_points=300, n_models=10, effect=1.0, seed=7)
    view = world.view()
    params = {"gamma": 2.0, "population": 100, "a_grid": [0.3], "seed": 1}
    for name, a in (("rmia", None), ("rmia_offline", 0.3)):
        attack = build_attack(name, params)
        target = true_class_probability(view.target_outputs, view.labels)
        shadows = true_class_probability(view.shadow_outputs, view.labels)
        ratio = target / marginal_probability(shadows, view.in_shadows, view.out_shadows, a)
        z = attack.population(len(ratio))
        assert len(np.unique(z)) == 100
        pairwise = ratio[:, None] / ratio[None, z]  # LR(x, z) [N, Z]
        np.testing.assert_allclose(attack.score(view), (pairwise >= 2.0).mean(axis=1))


def test_rmia_offline_fits_a_on_shadow_models_only():
    world = make_world(n_points=400, n_models=8, effect=1.5, seed=8)
    view = world.view()
    attack = build_attack("rmia_offline", {"tune_models": 2})
    shadows = true_class_probability(view.shadow_outputs, view.labels)
    a = attack.fit_offline_a(shadows, view.shadow_membership)
    assert a in attack.params.a_grid
    # Brute force: the grid value whose pseudo-target AUC is best.
    from attacks.base import balanced_groups

    def auc_for(value):
        total = 0.0
        for pseudo in range(2):
            rest = np.arange(len(shadows)) != pseudo
            in_mask, out_mask = balanced_groups(view.shadow_membership[rest])
            scores = attack.scores_with(shadows[pseudo], shadows[rest], in_mask, out_mask, value)
            total += roc_auc_score(view.shadow_membership[pseudo], scores)
        return total

    assert auc_for(a) == max(auc_for(v) for v in attack.params.a_grid)


def test_label_only_counts_correct_answers():
    world = make_world(n_points=200, n_models=6, effect=2.0, seed=9)
    view = world.view()
    attack = build_attack("label_only", {"n_queries": 8})
    copies = attack.perturbations(view).reshape(8, 200, 1)
    answers = [view.target_outputs] + [world.query(0, c) for c in copies]
    expected = np.mean([a.argmax(axis=1) == view.labels for a in answers], axis=0)
    np.testing.assert_allclose(attack.score(view), expected)


def test_label_only_calibrated_is_the_bernoulli_log_ratio():
    target = np.array([[True], [False]])  # two queries of one point
    shadows = np.array([[[True], [True]], [[True], [False]], [[False], [False]]])  # [S, Q, N]
    in_mask = np.array([[True], [False], [False]])
    out_mask = np.array([[False], [False], [True]])
    t_in = np.array([1.5, 1.5]) / 2  # (hits + 1/2) / (1 + 1)
    t_out = np.array([0.5, 0.5]) / 2
    expected = np.log(t_in[0] / t_out[0]) + np.log((1 - t_in[1]) / (1 - t_out[1]))
    np.testing.assert_allclose(calibrated_log_ratio(target, shadows, in_mask, out_mask), [expected])


def test_bit_flips_only_touch_binary_columns():
    x = np.column_stack([np.tile([-1.0, 2.0], 50), np.linspace(0, 1, 100)]).astype(np.float32)
    copies = random_tabular_perturbations(
        x, 20, flip_prob=0.5, noise=0.0, rng=np.random.default_rng(0)
    )
    assert set(np.unique(copies[..., 0])) == {-1.0, 2.0}
    assert (copies[..., 0] != x[:, 0]).mean() > 0.3
    np.testing.assert_array_equal(copies[..., 1], np.broadcast_to(x[:, 1], copies[..., 1].shape))


def test_the_suite_names_every_registered_attack_and_builds():
    suite = OmegaConf.load(f"{CONFIG_DIR}/attacks/suite.yaml")
    assert set(suite.suite) == set(ATTACKS)
    for name, params in suite.suite.items():
        attack = build_attack(name, params)
        assert ATTACKS[name].__doc__ and attack.needs in ("probabilities", "truncated", "label")


@pytest.mark.parametrize(
    "name, params, fragment",
    [
        ("shadow", {"classifier": "svm"}, "choose one of"),
        ("shadow", {"options": {"n_trees": 3}}, "keyword arguments"),
        ("lira_online", {"max_shfit": 1}, "attacks.suite.lira_online"),
        ("rmia", {"gamma": "high"}, "attacks.suite.rmia"),
    ],
)
def test_bad_attack_parameters_are_one_clear_config_error(name, params, fragment):
    with pytest.raises(ConfigError, match=fragment):
        build_attack(name, params)


def test_memoised_query_answers_repeats_from_the_cache():
    calls = []

    def query(k, x):
        calls.append(k)
        return x * k

    cached = memoise_query(query)
    x = np.ones((3, 2))
    np.testing.assert_array_equal(cached(2, x), 2 * x)
    cached(2, x)
    cached(3, x)
    cached(2, x.copy())  # another array: asked again
    assert calls == [2, 3, 2]


def test_a_restricted_shadow_set_never_contains_the_target():
    world = make_world(n_points=20, n_models=10)
    view = world.view(target=3, shadows=[0, 1, 2, 4])
    assert view.n_shadows == 4
    np.testing.assert_array_equal(view.shadow_membership, world.signals.membership[[0, 1, 2, 4]])
    with pytest.raises(ValueError, match="cannot be one of its own shadows"):
        world.view(target=3, shadows=[1, 3])
