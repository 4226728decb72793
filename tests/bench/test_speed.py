"""The speed benchmark runs and ends with one JSON line of figures (timings are not asserted)."""

import json

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
    args = ["--quick", "--epochs", "3", "--device", "cpu", "--threads", "1"]
    main([*args, *(f"--override={o}" for o in SMALL)])
    lines = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(lines[-1])
    for key in (
        "ensemble_speedup_k16",
        "ensemble_speedup_k64",
        "dp_cost_ratio",
        "matmul_fraction",
        "default_run_seconds",
        "peak_memory_mib",
    ):
        assert isinstance(figures[key], float) and figures[key] > 0, key
    assert figures["device"] == "cpu"
    assert 0 < figures["matmul_fraction"] < 1
    assert any(line.startswith("target ensemble_speedup_k64") for line in lines)
