"""Plug-in parameters: checked against their dataclass, each plug-in owning its own copy."""

from dataclasses import dataclass, field

import pytest
from omegaconf import OmegaConf

from benchmark.errors import ConfigError
from benchmark.registry import build_params


@dataclass
class Params:
    k: int = 3
    levels: list[float] = field(default_factory=lambda: [0.1, 0.2])


def test_the_same_values_give_equal_parameters_that_each_caller_owns():
    values = OmegaConf.create({"k": 5})
    first = build_params(Params, values, "defense.x")
    first.levels.append(9.0)  # a plug-in changing its own parameters
    second = build_params(Params, values, "defense.x")
    assert second == Params(k=5) and second is not first
    assert build_params(Params, {"k": 6}, "defense.x") == Params(k=6)
    assert build_params(Params, None, "defense.x") == Params()


def test_a_bad_value_is_refused_every_time_it_is_given():
    for _ in range(2):
        with pytest.raises(ConfigError, match="defense.x"):
            build_params(Params, {"k": "many"}, "defense.x")
