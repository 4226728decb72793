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
        assert row["coverage_ci"][0] <= row["coverage"] <= row["coverage_ci"][1]
        assert row["width_ratio_ci"][0] <= row["width_ratio"] <= row["width_ratio_ci"][1]
        assert row["median_width"] >= 0.0 and row["sd_across_seeds"] >= 0.0
    assert printed["pass"] == all(
        r["coverage"] >= 0.9 and r["width_ratio"] <= 1.5
        for r in printed["rows"]
        if r["method"] == "points" and r["metric"] in ("auc", "tpr_at_fpr_0.01")
    )


def test_with_replicates_each_seed_is_judged_by_its_replicate_interval():
    """``--replicates R``: a seed's ``replicates`` interval is over its R replicate means."""
    intervals = coverage.run_seed(0, coverage.TINY_OVERRIDES, replicates=2)
    assert coverage.methods(2)[0] == "replicates" and "replicates" not in coverage.methods(1)
    assert set(intervals) == set(coverage.methods(2))
    replicated, single = intervals["replicates"], intervals["points"]
    assert all(i.low <= i.mean <= i.high for i in replicated.values())
    # The bootstrap rows describe replicate 0 alone; the mean over replicates moved with
    # replicate 1, an experiment with other seeds.
    assert any(replicated[key].mean != single[key].mean for key in single)
