"""Each training-time defense does what it says, on one small model trained in about a second."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmark.data.pool import Pool
from benchmark.errors import ConfigError
from benchmark.experiment.plan import prepare
from benchmark.training.engines import check_recipe
from benchmark.training.hooks import split_members
from benchmark.training.recipe import Recipe
from benchmark.training.sequential import FitResult, fit
from defenses.adversarial_regularisation import AdversarialHook
from defenses.augmentation import random_flip, random_shift
from defenses.base import apply_recipes, build_defenses
from defenses.early_stopping import EarlyStoppingHook
from defenses.mixup import mixup
from defenses.relaxloss import flattened_targets, relaxloss
from tests.conftest import compose_config

#: 150 members per model, 10 noisy classes, a fast learning rate: memorises in 10 epochs.
SMALL = [
    "data=synthetic",
    "data.n_samples=300",
    "data.n_classes=10",
    "data.n_features=40",
    "data.flip_prob=0.3",
    "protocol.n_models=2",
    "training.epochs=10",
    "training.lr=0.01",
    "training.batch_size=32",
]
CPU = torch.device("cpu")


@dataclass
class Setting:
    pool: Pool
    members: np.ndarray
    non_members: np.ndarray
    seed: int
    base: Recipe

    def fit(self, recipe: Recipe | None = None, pool: Pool | None = None) -> FitResult:
        return fit(recipe or self.base, pool or self.pool, self.members, self.seed, CPU)

    def defended(self, selection: dict) -> Recipe:
        return apply_recipes(build_defenses(selection), self.base)


@pytest.fixture(scope="module")
def small() -> Setting:
    plan = prepare(compose_config(SMALL), show_progress=False)
    m = plan.membership
    return Setting(
        plan.pool, m.members(0), np.flatnonzero(~m.matrix[0]), int(m.seeds[0]), plan.recipe
    )


@pytest.fixture(scope="module")
def undefended(small: Setting) -> FitResult:
    return small.fit()


def member_loss(model: torch.nn.Module, pool: Pool, index: np.ndarray) -> float:
    with torch.no_grad():
        logits = model(torch.as_tensor(pool.x[index]))
        return F.cross_entropy(logits, torch.as_tensor(pool.y[index])).item()


def max_probability(model: torch.nn.Module, x: np.ndarray) -> float:
    with torch.no_grad():
        return torch.softmax(model(torch.as_tensor(x)), 1).max(1).values.mean().item()


def weight_norm(model: torch.nn.Module) -> float:
    return sum(p.pow(2).sum() for n, p in model.named_parameters() if "weight" in n).sqrt().item()


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---- weight decay, dropout, label smoothing ---------------------------------------------------


def test_weight_decay_shrinks_the_weight_norm(small, undefended):
    decayed = small.fit(small.defended({"weight_decay": {"weight_decay": 0.05}})).model
    assert weight_norm(decayed) < 0.8 * weight_norm(undefended.model)


def test_dropout_zeroes_activations_in_training_only(small, undefended):
    recipe = small.defended({"dropout": {"p": 0.5}})
    model = small.fit(recipe).model
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert [m.p for m in layers] == [0.5] * len(small.base.model_options["hidden"])
    x = torch.as_tensor(small.pool.x[:32])
    with torch.no_grad():
        assert torch.equal(model.eval()(x), model(x))  # deterministic at release time
        assert not torch.equal(model.train()(x), model(x))  # stochastic while training
    assert not same_weights(model.eval(), undefended.model)


def test_label_smoothing_caps_member_confidence(small, undefended):
    smoothed = small.fit(small.defended({"label_smoothing": {"smoothing": 0.3}})).model
    members = small.pool.x[small.members]
    assert max_probability(undefended.model, members) > 0.95
    # The smoothed optimum puts 1 - 0.3 + 0.3/10 = 0.73 on the label.
    assert max_probability(smoothed, members) < 0.8


# ---- early stopping ---------------------------------------------------------------------------


def test_member_split_stays_inside_the_members(small):
    hooks = (EarlyStoppingHook(2, 0.2), AdversarialHook(1.0, 0.3, 1, 1e-3))
    split = split_members(hooks, small.members, small.seed)
    parts = [split.fit, *split.held_out]
    assert [len(p) for p in parts] == [60, 24, 36]  # of 120 members
    assert np.array_equal(np.sort(np.concatenate(parts)), small.members)
    assert np.array_equal(split.all_held_out, np.sort(np.concatenate(split.held_out)))
    again = split_members(hooks, small.members, small.seed)  # drawn by the model's seed
    assert all(
        np.array_equal(a, b) for a, b in zip(parts, [again.fit, *again.held_out], strict=True)
    )
    off = split_members(small.base.hooks, small.members, small.seed)
    assert np.array_equal(off.fit, small.members) and len(off.all_held_out) == 0


def poisoned(pool: Pool, members: np.ndarray) -> Pool:
    """Every non-member's features NaN and label out of range: reading one fails or shows."""
    x, y = pool.x.copy(), pool.y.copy()
    outside = np.setdiff1d(np.arange(len(y)), members)
    x[outside] = np.nan
    y[outside] = pool.num_classes + 7
    return Pool(x, y, pool.x_test, pool.y_test, pool.num_classes, pool.name, pool.kind)


def test_early_stopping_and_adversary_never_read_a_non_member(small):
    recipe = small.defended(
        {
            "early_stopping": {"patience": 2, "validation_fraction": 0.2, "max_epochs": 6},
            "adversarial_regularisation": {"strength": 1.0, "reference_fraction": 0.2},
        }
    )
    clean = small.fit(recipe)
    dirty = small.fit(recipe, pool=poisoned(small.pool, small.members))
    assert dirty.epochs_run == clean.epochs_run and dirty.best_epoch == clean.best_epoch
    assert same_weights(dirty.model, clean.model)
    assert all(torch.isfinite(p).all() for p in dirty.model.parameters())


def test_early_stopping_stops_and_restores_the_best_epoch(small):
    recipe = small.defended(
        {"early_stopping": {"patience": 2, "validation_fraction": 0.2, "max_epochs": 40}}
    )
    stopped = small.fit(recipe)
    assert stopped.epochs_run < 40
    assert stopped.epochs_run == stopped.best_epoch + 1 + 2  # patience epochs after the best
    # The same split trained for exactly best_epoch + 1 epochs gives the returned weights.
    patient = tuple(EarlyStoppingHook(99, h.validation_fraction) for h in recipe.hooks)
    replay = small.fit(recipe.replace(epochs=stopped.best_epoch + 1, hooks=patient))
    assert same_weights(stopped.model, replay.model)


# ---- augmentation -----------------------------------------------------------------------------


def test_random_shift_translates_within_the_range():
    rng = np.random.default_rng(0)
    images = torch.arange(1.0, 2 * 3 * 8 * 8 + 1).reshape(2, 3, 8, 8).repeat(20, 1, 1, 1)
    shifted = random_shift(images, 2, rng)
    seen = set()
    for original, out in zip(images, shifted, strict=True):
        padded = F.pad(original, (2, 2, 2, 2))
        offsets = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(padded[:, dy : dy + 8, dx : dx + 8], out)
        ]
        assert len(offsets) == 1
        seen.add(offsets[0])
    assert len(seen) > 5  # offsets vary from image to image
    flipped = random_flip(images, rng)
    mirrored = [torch.equal(f, i.flip(-1)) for f, i in zip(flipped, images, strict=True)]
    assert all(torch.equal(f, i) or m for f, i, m in zip(flipped, images, mirrored, strict=True))
    assert 0 < sum(mirrored) < len(images)


def test_augmentation_makes_models_robust_to_shifts():
    plan = prepare(
        compose_config(["data=digits", "data.n_samples=500", *SMALL[5:]]), show_progress=False
    )
    pool, members = plan.pool, plan.membership.members(0)
    x = torch.as_tensor(pool.x_test)
    shifted = [  # every test image moved by one pixel in each of the four directions
        torch.roll(F.pad(x, (1, 1, 1, 1)), step, dim)[..., 1:-1, 1:-1]
        for step in (1, -1)
        for dim in (2, 3)
    ]

    def shifted_accuracy(recipe: Recipe) -> float:
        model = fit(recipe, pool, members, 1, CPU).model
        with torch.no_grad():
            return np.mean([(model(s).argmax(1).numpy() == pool.y_test).mean() for s in shifted])

    augmented = apply_recipes(build_defenses({"augmentation": {"max_shift": 1}}), plan.recipe)
    assert shifted_accuracy(augmented) > shifted_accuracy(plan.recipe) + 0.15


def test_augmentation_is_refused_on_tabular_data(make_config):
    with pytest.raises(ConfigError, match="data=synthetic is tabular"):
        prepare(make_config(["data=synthetic", "defense=augmentation"]), show_progress=False)


# ---- mixup ------------------------------------------------------------------------------------


def test_mixup_mixes_pairs_of_examples():
    x = torch.randn(16, 5)
    y = torch.arange(16) % 4
    mixed, y_a, y_b, lam = mixup(x, y, 0.4, np.random.default_rng(3))
    replay = np.random.default_rng(3)  # the same draws: lam ~ Beta(0.4, 0.4), then the partners
    assert lam == replay.beta(0.4, 0.4) and 0 < lam < 1
    partner = replay.permutation(16)
    assert torch.equal(y_a, y)
    assert torch.equal(y_b, y[partner])
    assert torch.allclose(mixed, lam * x + (1 - lam) * x[partner])


def test_mixup_softens_predictions_between_examples(small, undefended):
    mixed = small.fit(small.defended({"mixup": {"alpha": 1.0}})).model
    rng = np.random.default_rng(0)
    i, j = rng.choice(small.members, (2, 400))
    i, j = i[small.pool.y[i] != small.pool.y[j]], j[small.pool.y[i] != small.pool.y[j]]
    midpoints = 0.5 * small.pool.x[i] + 0.5 * small.pool.x[j]
    assert max_probability(mixed, midpoints) < max_probability(undefended.model, midpoints) - 0.1


# ---- RelaxLoss --------------------------------------------------------------------------------


def test_relaxloss_branches_follow_algorithm_1():
    torch.manual_seed(0)
    logits = torch.randn(8, 4) * 3
    y = logits.argmax(1)  # all correctly classified, so the loss is small
    y[0] = (y[0] + 1) % 4  # ... except one
    ce = F.cross_entropy(logits, y).item()

    def gradient(loss_fn):
        leaf = logits.clone().requires_grad_(True)
        loss_fn(leaf).backward()
        return leaf.grad

    descent = gradient(lambda z: F.cross_entropy(z, y))
    assert torch.allclose(gradient(lambda z: relaxloss(z, y, ce / 2, 0)), descent)  # above alpha
    assert torch.allclose(gradient(lambda z: relaxloss(z, y, ce * 2, 0)), -descent)  # ascent
    assert torch.allclose(gradient(lambda z: relaxloss(z, y, ce / 2, 1)), descent)
    soft = flattened_targets(logits, y)
    flat = gradient(lambda z: relaxloss(z, y, ce * 2, 1))
    assert torch.allclose(flat, gradient(lambda z: F.cross_entropy(z, soft)))
    probabilities = torch.softmax(logits, 1)
    assert torch.allclose(soft.sum(1), torch.ones(8))
    assert torch.equal(soft[0], F.one_hot(y[0], 4).float())  # misclassified: one-hot
    rows = torch.arange(1, 8)
    assert torch.allclose(soft[rows, y[rows]], probabilities[rows, y[rows]])
    others = soft[rows][~F.one_hot(y[rows], 4).bool()].view(7, 3)  # spread evenly
    assert torch.allclose(others, ((1 - probabilities[rows, y[rows]]) / 3)[:, None].expand(7, 3))


def test_relaxloss_holds_the_member_loss_near_alpha(small, undefended):
    relaxed = small.fit(small.defended({"relaxloss": {"alpha": 1.0}})).model
    assert member_loss(undefended.model, small.pool, small.members) < 0.05
    assert 0.5 < member_loss(relaxed, small.pool, small.members) < 1.5


def test_relaxloss_refuses_to_combine_with_mixup(small):
    recipe = small.defended({"relaxloss": {}, "mixup": {}})
    with pytest.raises(ConfigError, match="relaxloss defines its own loss"):
        check_recipe(recipe, small.pool)


# ---- adversarial regularisation ---------------------------------------------------------------


def test_adversarial_regularisation_raises_the_member_loss(small, undefended):
    recipe = small.defended({"adversarial_regularisation": {"strength": 3.0}})
    regularised = small.fit(recipe)
    (reference,) = regularised.split.held_out
    assert set(reference) <= set(small.members) and len(reference) == 24
    assert member_loss(undefended.model, small.pool, small.members) < 0.05
    # Even the points it takes gradient steps on keep a loss well above the undefended one.
    assert member_loss(regularised.model, small.pool, regularised.split.fit) > 0.15


def test_inference_model_learns_to_separate_members_from_reference(small, undefended):
    from defenses.adversarial_regularisation import AdversarialRegulariser, batch_sampler

    x, y = torch.as_tensor(small.pool.x), torch.as_tensor(small.pool.y)
    rng = np.random.default_rng(0)
    members, reference = small.members[:60], small.non_members[:60]
    adversary = AdversarialRegulariser(
        num_classes=10,
        strength=1.0,
        steps=60,
        lr=3e-2,
        sample_members=batch_sampler(x, y, members, 60, rng),
        sample_reference=batch_sampler(x, y, reference, 60, rng),
        device=CPU,
    )
    batches = (x[members], y[members]), (x[reference], y[reference])
    before = adversary.gain(undefended.model, *batches)
    adversary.update(undefended.model)
    after = adversary.gain(undefended.model, *batches)
    assert after > before + 0.3  # the gain rises toward 0 (log 1 + log 1) as h separates them


# ---- engines ----------------------------------------------------------------------------------


def test_the_hooks_that_need_the_sequential_engine_say_why(small):
    assert small.base.sequential_reason() is None
    torch_options = small.defended({"weight_decay": {}, "label_smoothing": {}, "dropout": {}})
    assert torch_options.hooks == () and torch_options.sequential_reason() is None
    for name, word in [
        ("early_stopping", "early stopping"),
        ("augmentation", "augmentation"),
        ("mixup", "mixup"),
        ("relaxloss", "RelaxLoss"),
        ("adversarial_regularisation", "adversarial"),
    ]:
        reason = small.defended({name: {}}).sequential_reason()
        assert reason is not None and word in reason and name in reason


def test_defended_training_is_reproducible_from_the_seed(small):
    recipe = small.defended(
        {"dropout": {"p": 0.3}, "mixup": {"alpha": 1.0}, "adversarial_regularisation": {}}
    )
    first, second = small.fit(recipe.replace(epochs=3)), small.fit(recipe.replace(epochs=3))
    assert same_weights(first.model, second.model)
