"""A sweep's preflight composes its distinct sets of config files in parallel, or by adding one
group's options to the rest composed once, exactly as Hydra composes each job alone."""

from __future__ import annotations

import multiprocessing as mp
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from benchmark.cli import hydra_internals as hi
from benchmark.cli import preflight
from benchmark.config.compose import CONFIG_DIR
from benchmark.errors import ConfigError
from tests.conftest import FAST

DEFENSES = "none,topk,rounding,label_only"
#: Two groups vary: every set is composed whole (in parallel where it pays).
TWO_GROUPS = ["defense=none,topk", "model=mlp,logreg"]
NEEDS_FORK = pytest.mark.skipif(
    "fork" not in mp.get_all_start_methods(), reason="no fork here: the preflight composes serially"
)


def _jobs(argv: list[str]) -> list[tuple[str, str]]:
    args, _ = hi.parse_args(argv)
    with hi.config_dir(CONFIG_DIR):
        return [(label, OmegaConf.to_yaml(cfg)) for label, cfg in preflight._compose_jobs(args)]


@NEEDS_FORK
def test_parallel_composition_gives_every_job_the_config_of_serial_composition(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    argv = ["-m", *FAST, *TWO_GROUPS, "seed=0,1", f"tracking.uri=sqlite:///{tmp_path}/db"]
    monkeypatch.setattr(preflight, "PARALLEL_FROM", 10**6)
    serial = _jobs(argv)
    monkeypatch.setattr(preflight, "PARALLEL_FROM", 2)
    calls = []
    monkeypatch.setattr(preflight, "_cores", lambda: calls.append(1) or 2)
    assert _jobs(argv) == serial
    assert calls and len(serial) == 8


@NEEDS_FORK
def test_a_bad_job_composed_in_parallel_is_refused_with_its_label(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(preflight, "PARALLEL_FROM", 2)
    monkeypatch.setattr(preflight, "_cores", lambda: 2)
    argv = ["-m", *FAST, "defense=none,topk,nonexistent", "model=mlp,logreg"]
    with pytest.raises(ConfigError, match=r"job #4 \(defense=nonexistent model=mlp\).*Available"):
        _jobs([*argv, f"tracking.uri=sqlite:///{tmp_path}/db"])
    appended = ["-m", *FAST, "defense=none,topk", "+training.bogus=1"]
    with pytest.raises(ConfigError, match="nothing reads the appended key training.bogus"):
        _jobs([*appended, f"tracking.uri=sqlite:///{tmp_path}/db"])


def _whole(argv: list[str], config_dir: str = CONFIG_DIR) -> list[str]:
    """Each job of the sweep composed alone from its files, then its values set (no sharing)."""
    args, _ = hi.parse_args(argv)
    with hi.config_dir(config_dir):
        lines = hi.read_lines(args.overrides)
        fixed = [line.text for line in lines if line.choice and not line.sweep]
        base = hi.compose("config", fixed, True)
        configs = []
        for job in preflight._sweep_jobs(base, lines):
            read = hi.read_lines(job)
            files = hi.compose("config", [line.text for line in read if line.choice])
            values = [line.text for line in read if not line.choice]
            configs.append(hi.apply_overrides(files, values))
    return [OmegaConf.to_yaml(cfg) for cfg in configs]


def _composed(argv: list[str], monkeypatch: pytest.MonkeyPatch, config_dir: str = CONFIG_DIR):
    """The preflight's job configs, and how many configs it composed whole."""
    composed = []
    compose = hi.compose
    monkeypatch.setattr(hi, "compose", lambda *a, **k: composed.append(a) or compose(*a, **k))
    args, _ = hi.parse_args(argv)
    with hi.config_dir(config_dir):
        jobs = preflight._compose_jobs(args)
    monkeypatch.undo()
    return [OmegaConf.to_yaml(cfg) for _, cfg in jobs], len(composed)


def test_sets_that_differ_in_their_defenses_get_the_configs_hydra_composes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    defenses = "none,strength/dpsgd_mid,memguard,[strength/weight_decay_low,topk],label_only"
    argv = ["-m", *FAST, f"defense={defenses}", "protocol.canaries=0,5"]
    argv.append(f"tracking.uri=sqlite:///{tmp_path}/db")
    configs, composed = _composed(argv, monkeypatch)
    assert configs == _whole(argv)
    assert len(configs) == 10 and composed == 2  # Hydra's settings, and the rest without defense


def test_a_group_that_another_file_writes_to_is_composed_whole(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(CONFIG_DIR, conf)
    (conf / "experiment" / "with_topk.yaml").write_text(
        "# @package _global_\ndefense:\n  topk:\n    k: 2\n"
    )
    argv = ["-m", *FAST, "+experiment=with_topk", "defense=none,rounding"]
    argv.append(f"tracking.uri=sqlite:///{tmp_path}/db")
    configs, composed = _composed(argv, monkeypatch, str(conf))
    assert configs == _whole(argv, str(conf))
    assert "k: 2" in configs[0] and composed == 4  # Hydra's settings, the rest, then each set
