"""The speed benchmark runs and ends with one JSON line of figures (timings are not asserted)."""

import json

import torch

from benchmark.bench.interleave import interleave
from benchmark.bench.speed import main

SMALL = [
    "data=synthetic",
    "data.n_samples=200",
    "data.n_classes=5",
    "data.n_features=20",
    "training.batch_size=16",
]


def test_the_quick_speed_benchmark_prints_every_figure_as_json(capsys):
    # Epochs and batch size of test_dpsgd's DPSGD, so that the accountant's sigma is cached.
    args = ["--tiny", "--epochs", "3", "--device", "cpu", "--threads", "1"]
    main([*args, *(f"--override={o}" for o in SMALL)])
    lines = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(lines[-1])
    for key in (
        "ensemble_speedup_k16",
        "ensemble_speedup_k64",
        "functional_speedup_k16",
        "dp_cost_ratio",
        "matmul_fraction",
        "matmul_fraction_k16",
        "default_run_seconds",
        "peak_memory_mib",
    ):
        assert isinstance(figures[key], float) and figures[key] > 0, key
    assert figures["device"] == "cpu"
    assert 0 < figures["matmul_fraction"] < 1
    # Every ratio is the median of per-round ratios, reported with its range.
    for key in ("ensemble_speedup_k16", "functional_speedup_k16", "dp_cost_ratio"):
        assert figures[f"{key}_low"] <= figures[key] <= figures[f"{key}_high"], key
    assert figures["rounds"] == 2
    assert all(len(times) == 2 for times in figures["timings"].values())
    times = figures["timings"]
    dp = [d / e for d, e in zip(times["dp_k16"], times["ensemble_k16"], strict=True)]
    assert sorted(dp)[0] == figures["dp_cost_ratio_low"]  # the ratio is formed within a round
    assert any(line.startswith("target ensemble_speedup_k64") for line in lines)


def test_the_rounds_alternate_their_order_and_time_every_workload_each_round():
    calls = []
    workloads = [(name, lambda n=name: calls.append(n)) for name in ("a", "b", "c")]
    rounds = interleave(workloads, 3, torch.device("cpu"))
    assert calls == ["a", "b", "c", "c", "b", "a", "a", "b", "c"]
    assert all(len(t) == 3 for t in rounds.times.values())
    assert rounds.per_round(lambda a, b: 1.0, "a", "b") == [1.0, 1.0, 1.0]
