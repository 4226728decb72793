"""The re-attack benchmark (benchmark.bench.reattack) on a seconds-long configuration: one round,
its JSON last line, and a re-attack that reproduces its source's metrics exactly. Two processes
that import torch and MLflow and a fresh MLflow store: about 20 s of CPU."""

import json

import pytest

from benchmark.bench import reattack
from tests.conftest import FAST


@pytest.mark.slow
def test_one_round_prints_the_ratio_and_identical_metrics_as_json(capsys):
    # FAST keeps the whole suite: a re-attack runs this checkout's suite, so a source run with
    # attacks dropped (tests.conftest.quick) would not be reproduced.
    overrides = [arg for override in FAST for arg in ("--override", override)]
    report = reattack.main(["--rounds", "1", *overrides])
    lines = capsys.readouterr().out.strip().splitlines()
    printed = json.loads(lines[-1])
    assert printed == json.loads(json.dumps(report))
    assert lines[0].startswith("round 0: run ")
    assert printed["rounds"] == 1 and printed["metrics_identical"] is True
    assert printed["ratio_median"] == printed["reattack_s_median"] / printed["run_s_median"]
    assert printed["ratio_min"] == printed["ratio_median"] == printed["ratio_max"]
    assert printed["target_ratio"] == reattack.TARGET
    assert printed["target_met"] == (printed["ratio_median"] <= reattack.TARGET)
    assert printed["run_cpu_s_median"] > 0 and printed["reattack_cpu_s_median"] > 0
    assert len(printed["load"]) == 1
