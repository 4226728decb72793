"""The sweep benchmark (benchmark.bench.sweep) on two jobs: the store trains once, reuses once,
and both sides give the same metrics; its JSON last line."""

import json

import pytest

from benchmark.bench import sweep

TINY = [
    "--models=2",
    "--epochs=1",
    "--canaries=0",
    "--defenses=none,strength/topk_low",
    "--override=data=synthetic",
    "--override=data.n_samples=200",
    "--override=data.n_classes=5",
    "--override=data.n_features=20",
    "--override=attacks.suite={loss:{}}",
]


def test_a_release_time_defense_reuses_the_baseline_and_matches_it(capsys):
    summary = sweep.main(TINY)
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == json.loads(json.dumps(summary))
    assert printed["jobs"] == 2 and printed["jobs_reused"] == 1
    assert printed["metrics_identical"] is True
    assert printed["speedup_median"] > 0 and printed["target_speedup"] == 1.3


def test_an_unknown_defense_option_is_refused_with_the_options():
    with pytest.raises(SystemExit, match="topk_huge"):
        sweep.sweep_jobs(None, ["strength/topk_huge"])
