"""A sweep's preflight composes its distinct sets of config files in parallel, exactly as alone."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from benchmark.cli import hydra_internals as hi
from benchmark.cli import preflight
from benchmark.config.compose import CONFIG_DIR
from benchmark.errors import ConfigError
from tests.conftest import FAST

DEFENSES = "none,topk,rounding,label_only"
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
    argv = ["-m", *FAST, f"defense={DEFENSES}", "seed=0,1", f"tracking.uri=sqlite:///{tmp_path}/db"]
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
    argv = ["-m", *FAST, "defense=none,topk,nonexistent", f"tracking.uri=sqlite:///{tmp_path}/db"]
    with pytest.raises(ConfigError, match=r"job #2 \(defense=nonexistent\).*Available options"):
        _jobs(argv)
    appended = ["-m", *FAST, "defense=none,topk", "+training.bogus=1"]
    with pytest.raises(ConfigError, match="nothing reads the appended key training.bogus"):
        _jobs([*appended, f"tracking.uri=sqlite:///{tmp_path}/db"])
