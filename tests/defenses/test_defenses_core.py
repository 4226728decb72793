import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from benchmark.config.compose import to_container
from benchmark.errors import ConfigError
from benchmark.release.api import Release
from benchmark.training.recipe import Recipe
from defenses.base import apply_recipes, build_defenses
from tests.conftest import compose_config

probability_rows = arrays(np.float64, (7, 5), elements=st.floats(0.01, 1.0)).map(
    lambda a: a / a.sum(axis=1, keepdims=True)
)


@settings(max_examples=50, deadline=None)
@given(probability_rows, st.integers(1, 5))
def test_topk_releases_exactly_the_k_largest(probabilities, k):
    released = Release(build_defenses({"topk": {"k": k}}))(probabilities)
    assert np.all((released > 0).sum(axis=1) == k)
    kept = released > 0
    assert np.allclose(released[kept], probabilities[kept].astype(np.float32))
    assert np.all(released.max(axis=1) == probabilities.max(axis=1).astype(np.float32))
    assert np.array_equal(released.argmax(axis=1), probabilities.argmax(axis=1))


def test_defense_hooks_compose_in_order():
    defenses = build_defenses({"weight_decay": {"weight_decay": 0.01}, "topk": {"k": 2}})
    base = Recipe.from_config(to_container(compose_config([]).training), {"name": "mlp"})
    assert apply_recipes(defenses, base).weight_decay == 0.01
    assert Release(defenses).kind == "truncated" and Release([]).kind == "probabilities"


def test_defense_parameters_are_checked():
    with pytest.raises(ConfigError, match="unknown defense defense=dp"):
        build_defenses({"dp": {}})
    with pytest.raises(ConfigError, match="defense.topk"):
        build_defenses({"topk": {"k": "three"}})
    with pytest.raises(ConfigError, match="defense.topk"):
        build_defenses({"topk": {"kk": 1}})
    (topk,) = build_defenses({"topk": {"k": 11}})
    with pytest.raises(ConfigError, match="between 1 and the number of classes 10"):
        topk.check(n_train=100, num_classes=10)
