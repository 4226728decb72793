"""The standard sweep preset: every defense at three strengths, with and without canaries."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from benchmark.config.compose import CONFIG_DIR
from benchmark.data.pool import load_pool
from benchmark.experiment.plan import base_recipe
from benchmark.training.engines import check_recipe
from defenses.base import DEFENSES, apply_recipes, build_defenses

PRESET = "+experiment=defense_sweep"
#: Defenses of the sweep that other parts of the project provide (DP-SGD, the label-only API).
ELSEWHERE = {"dpsgd", "label_only"}


def compose_preset(overrides: list[str], hydra: bool = False):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("config", overrides=[PRESET, *overrides], return_hydra_config=hydra)


def sweep_jobs(extra: list[str]) -> list[dict[str, str]]:
    """The jobs Hydra's basic sweeper launches for the preset plus ``extra``, as key -> value."""
    params = [f"{k}={v}" for k, v in compose_preset([], hydra=True).hydra.sweeper.params.items()]
    overrides = OverridesParser.create().parse_overrides([*params, *extra])
    (batch,) = BasicSweeper.split_arguments(overrides, max_batch_size=None)
    return [dict(override.split("=", 1) for override in job) for job in batch]


def test_preset_sweeps_every_defense_at_three_strengths_with_and_without_canaries():
    jobs = sweep_jobs([])
    assert len(jobs) == 76 and all(set(job) == {"defense", "protocol.canaries"} for job in jobs)
    canaries = defaultdict(set)
    for job in jobs:
        canaries[job["defense"]].add(job["protocol.canaries"])
    assert all(values == {"0", "100"} for values in canaries.values())

    cfg = compose_preset([])
    assert cfg.data.name == "digits" and cfg.model.name == "mlp"
    assert cfg.tracking.experiment == "mia-bench-defense-sweep"
    pool = load_pool(cfg.data, cfg.seed)
    strengths: dict[str, set[str]] = defaultdict(set)
    for option in canaries:  # each (defense, strength) point: one option of the defense group
        path = Path(CONFIG_DIR) / "defense" / f"{option}.yaml"
        if not path.exists():
            assert option in ELSEWHERE and option not in DEFENSES
            strengths[option].add("")
            continue
        if option.startswith("strength/"):
            assert path.read_text().startswith("# @package defense\n")
        selection = OmegaConf.to_container(OmegaConf.load(path))
        (name,) = selection
        strengths[name].add(str(selection[name]))
        if name in ELSEWHERE and name not in DEFENSES:
            continue
        defenses = build_defenses(selection)
        for defense in defenses:
            defense.check(n_train=len(pool) // 2, num_classes=pool.num_classes)
        check_recipe(apply_recipes(defenses, base_recipe(cfg)), pool)
    assert set(DEFENSES) <= set(strengths)  # a new defense must join the sweep
    assert set(strengths) - set(DEFENSES) <= ELSEWHERE
    single = {"none", "label_only"}
    assert all(len(strengths[name]) == 3 for name in set(strengths) - single)
    assert all(len(strengths[name]) == 1 for name in single)


def test_strength_options_compose_alone_and_with_other_defenses():
    cfg = compose_preset(["defense=strength/relaxloss_high", "protocol.canaries=100"])
    assert OmegaConf.to_container(cfg.defense) == {"relaxloss": {"alpha": 1.0}}
    cfg = compose_preset(["defense=[strength/weight_decay_mid,strength/rounding_high]"])
    assert OmegaConf.to_container(cfg.defense) == {
        "weight_decay": {"weight_decay": 0.005},
        "rounding": {"decimals": 1},
    }


def test_preset_combines_with_a_command_line_sweep():
    jobs = sweep_jobs(["attacker.knows_defense=true,false"])
    assert len(jobs) == 152
    assert {job["attacker.knows_defense"].lower() for job in jobs} == {"true", "false"}
