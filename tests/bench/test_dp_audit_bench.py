"""``python -m benchmark.bench.dp_audit --tiny``: its table and its JSON last line."""

from __future__ import annotations

import json

import pytest

from benchmark.bench import dp_audit
from benchmark.evaluation.canary_scores import (
    BLACKBOX_GDP,
    BLACKBOX_ONE_RUN,
    BLACKBOX_RUNS,
    GDP,
    GDP_SUM,
    ONE_RUN,
    RUNS,
)


@pytest.mark.slow
def test_tiny_dp_audit_prints_every_method_against_the_accountant(capsys) -> None:
    dp_audit.main(["--tiny", "--faults"])
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    assert "accountant=" in lines[0] and "whitebox_gdp=" in lines[0]
    assert "blackbox_gdp=" in lines[1]
    whitebox, blackbox = result["runs"]
    assert set(whitebox["bounds"]) == {ONE_RUN, RUNS, GDP, GDP_SUM}
    assert set(blackbox["bounds"]) == {BLACKBOX_ONE_RUN, BLACKBOX_RUNS, BLACKBOX_GDP}
    for run in (whitebox, blackbox):
        assert run["fault"] == "none" and 7.5 < run["accountant_epsilon"] <= 8.0
        # The correct engine: every bound is a number between 0 and the accountant's epsilon.
        assert all(0.0 <= bound < run["accountant_epsilon"] for bound in run["bounds"].values())
        assert run["flagged_by"] == []
    assert result["correct_runs_flagged"] == 0
    assert result["faults_flagged"] == {}
