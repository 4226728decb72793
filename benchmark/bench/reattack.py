"""A re-attack's time against its source run's: ``python -m benchmark.bench.reattack``

Each round, in a fresh folder: ``mia-bench`` (the default run, or ``--override``s; it trains and
stores its models), then ``mia-reattack`` on its run (the current suite on the stored models),
both as a user types them, in subprocesses, measured by wall time. Rounds alternate the two
sides (ABAB: a run, then its re-attack), so a load that changes over time weighs on both. It
prints each round, the median ratio re-attack / run with its spread (min..max), whether every
re-attack reproduced its source's metrics exactly, and, last, one JSON line. Target: ratio <= 0.2.

Each round also records the processes' CPU time (user + system; on shared cores it varies far
less with the other processes than wall time does) and the 1-minute load average before it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from mlflow.tracking import MlflowClient

TARGET = 0.2


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds of ``python -m <args>`` in ``cwd``; raises on a non-zero exit."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cpu, start = children_cpu(), time.perf_counter()
    done = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True)
    seconds, cpu = time.perf_counter() - start, children_cpu() - cpu
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr.decode()[-2000:]}")
    return seconds, cpu


def configuration_runs(uri: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("mia-bench")
    runs = client.search_runs([experiment.experiment_id], "tags.config_hash != ''")
    return sorted(runs, key=lambda r: r.info.start_time)


def one_round(overrides: list[str]) -> dict[str, float | bool]:
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        uri = f"sqlite:///{cwd}/results/mlflow.db"
        run_s, run_cpu = timed(["benchmark.cli", *overrides], cwd)
        (source,) = configuration_runs(uri)
        reattack_s, reattack_cpu = timed(
            ["benchmark.cli.reattack", source.info.run_id, "--quiet"], cwd
        )
        source, again = configuration_runs(uri)
        same = again.data.metrics == source.data.metrics
    return {
        "run_s": run_s,
        "reattack_s": reattack_s,
        "identical": same,
        "run_cpu_s": run_cpu,
        "reattack_cpu_s": reattack_cpu,
        "load": load,
    }


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--override", action="append", default=[], help="a mia-bench override")
    args = parser.parse_args(argv)
    rounds = []
    for i in range(args.rounds):
        rounds.append(one_round(args.override))
        r = rounds[-1]
        ratio = r["reattack_s"] / r["run_s"]
        print(
            f"round {i}: run {r['run_s']:.1f} s, re-attack {r['reattack_s']:.1f} s, "
            f"ratio {ratio:.3f}, metrics identical: {r['identical']} "
            f"(CPU {r['run_cpu_s']:.1f} s / {r['reattack_cpu_s']:.1f} s, load {r['load']:.2f})",
            flush=True,
        )
    ratios = [r["reattack_s"] / r["run_s"] for r in rounds]
    summary = {
        "rounds": len(rounds),
        "run_s_median": statistics.median(r["run_s"] for r in rounds),
        "reattack_s_median": statistics.median(r["reattack_s"] for r in rounds),
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "metrics_identical": all(r["identical"] for r in rounds),
        "target_ratio": TARGET,
        "run_cpu_s_median": statistics.median(r["run_cpu_s"] for r in rounds),
        "reattack_cpu_s_median": statistics.median(r["reattack_cpu_s"] for r in rounds),
        "cpu_ratio_median": statistics.median(r["reattack_cpu_s"] / r["run_cpu_s"] for r in rounds),
        "load": [r["load"] for r in rounds],
    }
    summary["target_met"] = summary["ratio_median"] <= TARGET
    print(
        f"re-attack / run: median {summary['ratio_median']:.3f} "
        f"(min {summary['ratio_min']:.3f}, max {summary['ratio_max']:.3f}); target <= {TARGET}"
    )
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
