"""The adapter to Hydra's internals (:mod:`benchmark.cli.hydra_internals`): the behaviour of Hydra
that the preflight relies on, pinned so that a Hydra upgrade that changes it fails here."""

from __future__ import annotations

import importlib

import pytest
from hydra import compose as hydra_compose
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf

from benchmark.cli import hydra_internals as hi
from benchmark.cli.preflight import JobComposer
from benchmark.config.compose import CONFIG_DIR
from benchmark.errors import ConfigError


@pytest.fixture
def hydra():
    with hi.config_dir(CONFIG_DIR):
        yield


def test_options_are_read_as_hydra_reads_them() -> None:
    args, unknown = hi.parse_args(["-m", "seed=0,1", "defense=topk"])
    assert args.multirun and args.overrides == ["seed=0,1", "defense=topk"] and unknown == []
    _, unknown = hi.parse_args(["--bogus"])
    assert unknown == ["--bogus"]


def test_a_bad_override_is_named(hydra: None) -> None:
    with pytest.raises(ConfigError, match=r"cannot parse the override 'seed=\['"):
        hi.parse_overrides(["defense=topk", "seed=["])


def test_sweeps_expand_in_hydras_order(hydra: None) -> None:
    jobs = hi.expand_sweep(["defense=none,topk", "seed=0,1", "training.epochs=1"])
    assert jobs == [
        ["defense=none", "seed=0", "training.epochs=1"],
        ["defense=none", "seed=1", "training.epochs=1"],
        ["defense=topk", "seed=0", "training.epochs=1"],
        ["defense=topk", "seed=1", "training.epochs=1"],
    ]


def test_overrides_are_classified_as_hydras_defaults_list_does(hydra: None) -> None:
    lines = hi.read_lines(
        [
            "defense=topk",
            "defense.topk.k=3",
            "+experiment=defense_sweep",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "+k=3",
            "seed=0,1",
        ]
    )
    choice = {line.text: line.choice for line in lines}
    assert choice == {
        "defense=topk": True,
        "defense.topk.k=3": False,
        "+experiment=defense_sweep": True,
        "hydra/launcher=joblib": True,
        "hydra.launcher.n_jobs=2": True,
        "+k=3": False,
        "seed=0,1": False,
    }
    (k,) = [line for line in lines if line.text == "+k=3"]
    assert k.adds and k.key == "k" and k.value == "3" and not k.hydra
    assert [line.sweep for line in lines] == [False] * 6 + [True]


def test_errors_are_condensed_and_unknown_keys_named(hydra: None) -> None:
    with pytest.raises(hi.ComposeError) as bad_option:
        hi.compose("config", ["defense=foo"])
    assert "Available options in 'defense': adversarial_regularisation, augmentation," in str(
        bad_option.value
    )
    assert "\n" not in str(bad_option.value) and bad_option.value.key is None
    with pytest.raises(hi.ComposeError) as bad_key:
        hi.compose("config", ["defense=dpsgd", "target_epsilon=1"])
    assert bad_key.value.key == "target_epsilon"


def test_applying_values_to_composed_files_is_hydras_composition(hydra: None) -> None:
    """The preflight's shortcut (compose each set of files once, then set each job's values with
    Hydra's own code) gives every job of a sweep exactly the config Hydra composes for it."""
    sweep = ["defense=topk,dropout", "protocol.canaries=0,7", "seed=1", "++defense.dropout.p=0.3"]
    composer = JobComposer("config")
    for job in hi.expand_sweep(sweep):
        expected = hydra_compose(config_name="config", overrides=job)
        assert OmegaConf.to_container(composer.job(job)) == OmegaConf.to_container(expected), job
    assert len(composer.files) == 2  # one set of files per defense


def test_a_value_of_the_wrong_type_is_refused_when_applied(hydra: None) -> None:
    files = hi.compose("config", [])
    with pytest.raises(hi.ComposeError, match="could not be converted to Integer"):
        hi.apply_overrides(files, ["protocol.n_models=abc"])
    assert files.protocol.n_models == 16  # the composed files are not changed


def test_an_option_file_is_merged_alone_only_when_it_is_plain_content(hydra: None) -> None:
    assert OmegaConf.to_container(hi.option_config("defense", "strength/dpsgd_low")) == {
        "defense": {"dpsgd": {"target_epsilon": 32}}
    }
    assert hi.option_config("defense", "nonexistent") is None
    assert hi.option_config("defense", "strength") is None  # a folder
    assert hi.option_config("hydra/launcher", "slurm") is None  # a defaults list
    assert hi.group_choice("defense=[none,topk]") == ("defense", ["none", "topk"])
    assert hi.group_choice("+defense=topk") is None and hi.group_choice("~defense") is None


def test_within_a_preflight_checked_sweep_hydra_does_not_compose_the_batch_again():
    # The class Hydra instantiates: its plugin scan may have loaded the module anew.
    basic = importlib.import_module(BasicSweeper.__module__).BasicSweeper
    sweeper = basic(max_batch_size=None)  # no config: composing a batch would fail
    with hi.sweeps_checked_by_preflight():
        sweeper.validate_batch_is_legal([["defense=none"], ["defense=nope"]])
    assert basic.validate_batch_is_legal is Sweeper.validate_batch_is_legal
    with pytest.raises(AttributeError):  # Hydra's own check again: it composes, with a loader
        sweeper.validate_batch_is_legal([["defense=none"]])
