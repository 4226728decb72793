"""The coverage benchmark (benchmark.bench.coverage) in its seconds-long mode: its JSON shape."""

import json

from benchmark.bench import coverage


def test_the_coverage_benchmark_prints_every_row_as_json(capsys):
    report = coverage.main(["--tiny", "--seeds", "3"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == json.loads(json.dumps(report))
    assert printed["chosen"] == "points" and printed["seeds"] == 3
    assert len(printed["rows"]) == len(coverage.ATTACKS) * len(coverage.METRICS) * 4
    for row in printed["rows"]:
        assert {"attack", "metric", "method", "coverage", "width_ratio"} <= set(row)
        assert 0.0 <= row["coverage"] <= 1.0
        assert row["median_width"] >= 0.0 and row["sd_across_seeds"] >= 0.0
    assert printed["pass"] == all(
        r["coverage"] >= 0.9 and r["width_ratio"] <= 1.5
        for r in printed["rows"]
        if r["method"] == "points"
    )
