"""Training hooks: a defense is one file, the recipe comes from the config, and the evaluation
scores the members a model fitted apart from those its training held out."""

from __future__ import annotations

import dataclasses
import io
import re
import tokenize
from dataclasses import dataclass

import numpy as np
import pytest

import defenses  # noqa: F401  (registers the defenses)
from benchmark.config.schema import STORE_SETTINGS, TrainingConfig
from benchmark.evaluation.keys import HELDOUT, HELDOUT_COUNT, POPULATION
from benchmark.experiment.execute import _evaluate, execute
from benchmark.experiment.plan import prepare
from benchmark.signals.arrays import Signals
from benchmark.training.hooks import TrainingHook
from benchmark.training.recipe import Recipe
from defenses.base import DEFENSES, Defense
from tests.attack_worlds import auc_null_sd, probabilities
from tests.conftest import FAST, REPO

# ---- no defense in the training loop --------------------------------------------------------

#: Registered names that are torch's own training options, or words of plain English, and so
#: may appear in the training code: the optimiser's ``weight_decay``, the cross-entropy's
#: ``label_smoothing``, the models' ``dropout`` option; DP-SGD is a training *engine* path
#: (Opacus, ``recipe.dp``), not a hook; ``none`` is English (and ``reduction="none"``).
ALLOWED = {"weight_decay", "label_smoothing", "dropout", "dpsgd", "none"}


def names_in_source(package: str) -> dict[str, list[str]]:
    """Registered defense names used as identifiers (or inside strings and comments) in the
    package's source: ``{name: [file:line, ...]}``."""
    pattern = re.compile(
        r"(?<![A-Za-z0-9_])(" + "|".join(map(re.escape, DEFENSES)) + r")(?![A-Za-z0-9_])"
    )
    found: dict[str, list[str]] = {}
    for path in sorted((REPO / package).rglob("*.py")):
        source = path.read_text()
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            for match in pattern.finditer(token.string):
                if match.group(1) not in ALLOWED:
                    line = token.start[0] + token.string.count("\n", 0, match.start())
                    where = f"{path.relative_to(REPO)}:{line}"
                    found.setdefault(match.group(1), []).append(where)
    return found


def test_the_scan_finds_a_defense_name_where_there_is_one():
    found = names_in_source("defenses")
    assert {"mixup", "relaxloss", "early_stopping", "topk"} <= set(found)


def test_no_defense_is_named_in_the_training_package():
    assert names_in_source("benchmark/training") == {}


def test_no_defense_is_named_in_the_reporting_package():
    assert names_in_source("benchmark/reporting") == {}


#: The families reports used before each defense declared its own (``Defense.family``).
FAMILIES = {
    "none": "none",
    **dict.fromkeys(
        [
            "weight_decay",
            "dropout",
            "label_smoothing",
            "early_stopping",
            "augmentation",
            "mixup",
            "adversarial_regularisation",
            "relaxloss",
        ],
        "regularisation",
    ),
    **dict.fromkeys(["topk", "rounding", "label_only", "memguard"], "truncation"),
    "dpsgd": "dpsgd",
}


def test_every_defense_declares_its_family():
    assert {name: DEFENSES.lookup(name).family for name in DEFENSES} == FAMILIES
    assert Defense.family == "other"


# ---- the recipe from the config -------------------------------------------------------------


def test_the_recipe_restates_no_training_default():
    fields = {f.name: f for f in dataclasses.fields(Recipe)}
    for spec in dataclasses.fields(TrainingConfig):
        if spec.name in STORE_SETTINGS:  # where models are kept, not how they train
            assert spec.name not in fields
            continue
        name = {"_target_": "loop"}.get(spec.name, spec.name)  # from_config maps the one key
        assert name in fields, f"Recipe has no field for training.{spec.name}"
        assert fields[name].default is dataclasses.MISSING, spec.name
    for name in ("model", "model_options"):
        assert fields[name].default is dataclasses.MISSING


def test_the_recipe_is_the_resolved_config(make_config):
    cfg = make_config([*FAST, "training.lr=0.02", "model.hidden=[7]"])
    recipe = prepare(cfg, False).recipe
    assert recipe.lr == 0.02 and recipe.model_options["hidden"] == [7]
    assert recipe.epochs == cfg.training.epochs and recipe.engine == cfg.training.engine
    assert recipe.hooks == () and recipe.dp is None


def test_recipes_with_hooks_compare_by_value(make_config):
    def recipe(*overrides: str) -> Recipe:
        return prepare(make_config([*FAST, "defense=mixup", *overrides]), False).recipe

    assert recipe() == recipe()
    assert recipe() != recipe("defense.mixup.alpha=0.5")


# ---- a defense added from outside the package -----------------------------------------------


@dataclass(frozen=True)
class HoldOutHook(TrainingHook):
    """Holds out a fraction of each model's members and does nothing else: by construction the
    models never fit them."""

    fraction: float

    def sequential_reason(self) -> str:
        return "a test's hold-out hook"

    def held_out(self, n_members: int) -> int:
        return round(self.fraction * n_members)


class HoldOut(Defense):
    family = "regularisation"

    @dataclass
    class Params:
        fraction: float = 0.25

    def recipe(self, base: Recipe) -> Recipe:
        return base.with_hook(HoldOutHook(self.params.fraction))


def test_a_defense_defined_in_a_test_file_trains_and_is_evaluated(make_config):
    overrides = [*FAST, "~defense", "+defense={holdout:{fraction:0.25}}"]
    with DEFENSES.temporarily("holdout", HoldOut):
        result = execute(prepare(make_config(overrides), False))
    signals, n_members = result.signals, len(result.plan.pool) // 2
    assert np.array_equal(signals.held_out.sum(axis=1), [round(0.25 * n_members)] * 4)
    assert not (signals.held_out & ~signals.membership).any()
    metrics = result.target_metrics(0)
    assert metrics[HELDOUT_COUNT] == round(0.25 * n_members)
    assert f"{HELDOUT}/loss/auc" in metrics and f"{POPULATION}/loss/auc" in metrics
    # The held-out members were never fitted: the model is about as accurate on them as on
    # non-members (4 models, so a loose margin), and less than on the members it fitted.
    k = int(result.targets[0])
    correct = signals.outputs[k].argmax(1) == signals.labels
    fitted, held = signals.fitted[k], signals.held_out[k]
    assert correct[fitted].mean() > correct[held].mean() + 0.1


# ---- held-out members are scored apart ------------------------------------------------------


def held_out_world(fraction: float, seed: int = 0) -> tuple[Signals, np.ndarray]:
    """A synthetic world (tests/attack_worlds.py) whose models leak only on fitted members:
    a held-out member's strength is a non-member's. Returns its signals and the oracle scores."""
    rng = np.random.default_rng(seed)
    n_models, n_points = 16, 4000
    membership = np.zeros((n_models, n_points), dtype=bool)
    for j in range(n_models):
        membership[j, rng.permutation(n_points)[: n_points // 2]] = True
    held_out = membership & (rng.random(membership.shape) < fraction)
    base = rng.normal(1.0, 1.5, n_points)
    strength = base + 1.0 * (membership & ~held_out) + rng.standard_normal(membership.shape)
    labels = rng.integers(0, 4, n_points)
    signals = Signals(
        outputs=probabilities(strength, labels, 4),
        labels=labels,
        membership=membership,
        canary=np.zeros(n_points, dtype=bool),
        targets=np.arange(4),
        release_kind="probabilities",
        held_out=held_out,
    )
    return signals, strength[:4]


def mean_auc(evaluations) -> float:
    return float(np.mean([e.auc for e in evaluations]))


def test_the_headline_scores_fitted_members_whatever_the_held_out_split():
    aucs = {}
    for fraction in (0.0, 0.2, 0.5):
        signals, scores = held_out_world(fraction)
        groups = _evaluate(scores, signals)
        aucs[fraction] = mean_auc(groups[POPULATION])
        if fraction == 0:
            assert HELDOUT not in groups
            continue
        held = signals.held_out[0] | ~signals.membership[0]
        sd = auc_null_sd(signals.membership[0][held])
        # Held-out members look like non-members: chance, within 4 null standard deviations of
        # each target's AUC (the mean of 4 has half that spread).
        assert abs(mean_auc(groups[HELDOUT]) - 0.5) < 4 * sd / 2
        # What the headline used to be, all members against non-members, is diluted by about
        # the held-out fraction of the leakage above chance (0.03 at 0.2, 0.08 at 0.5).
        diluted = _evaluate(scores, dataclasses.replace(signals, held_out=None))
        assert mean_auc(diluted[POPULATION]) < aucs[fraction] - fraction * (aucs[0] - 0.5) / 2
    # Same fitted-member leakage each time: the AUCs agree within sampling noise (each mean of
    # 4 targets' AUCs on ~2000+ points has a standard deviation below 0.01).
    assert max(aucs.values()) - min(aucs.values()) < 0.03


def test_signals_save_the_held_out_mask_and_old_files_load_without_one(tmp_path):
    signals, _ = held_out_world(0.3)
    signals.save(tmp_path / "signals.npz")
    loaded = Signals.load(tmp_path / "signals.npz")
    assert np.array_equal(loaded.held_out, signals.held_out) and loaded.held_out.any()
    old = {k: v for k, v in np.load(tmp_path / "signals.npz").items() if k != "held_out"}
    np.savez_compressed(tmp_path / "old.npz", **old)
    assert not Signals.load(tmp_path / "old.npz").held_out.any()
    with pytest.raises(ValueError, match="non-member"):
        dataclasses.replace(signals, held_out=~signals.membership)
