"""The standard sweep with and without the model store: ``python -m benchmark.bench.sweep``

Runs every job of ``conf/experiment/defense_sweep.yaml`` (all 38 defense options, each with the
sweep's canary settings), reduced by ``--models`` and ``--epochs`` (``--canaries 0`` keeps one
canary setting), in process, tracking off, each job composed as the CLI composes it. Each job
runs twice: once through a model store shared by the sweep's jobs (release-time defenses and
the undefended baseline share one ensemble) and once with ``training.cache=false``; the two
sides alternate which goes first from job to job (ABAB), so a load that changes over time weighs
on both. Every pair's metrics must be identical. It prints the totals, the ratio without / with
the store and its spread over ``--repeats`` sweeps, and, last, one JSON line. Target: >= 1.3x.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from benchmark.config.compose import CONFIG_DIR, compose_config
from benchmark.experiment.execute import execute
from benchmark.experiment.plan import prepare
from benchmark.tracking.record import configuration_metrics

TARGET = 1.3
SWEEP = Path(CONFIG_DIR) / "experiment" / "defense_sweep.yaml"


def sweep_jobs(canaries: list[str] | None, only: list[str] | None = None) -> list[list[str]]:
    """The standard sweep's jobs as override lists (its defense x canaries product), restricted
    to the defense options ``only`` when given."""
    params = OmegaConf.load(SWEEP).hydra.sweeper.params
    defenses = [d.strip() for d in str(params.defense).split(",")]
    if only:
        unknown = sorted(set(only) - set(defenses))
        if unknown:
            raise SystemExit(f"--defenses: {unknown} are not in the sweep's options {defenses}")
        defenses = [d for d in defenses if d in only]
    counts = canaries or [c.strip() for c in str(params["protocol.canaries"]).split(",")]
    return [[f"defense={d}", f"protocol.canaries={c}"] for c in counts for d in defenses]


def timed_job(overrides: list[str]) -> tuple[float, dict[str, float], str]:
    start = time.perf_counter()
    result = execute(prepare(compose_config(overrides), show_progress=False))
    seconds = time.perf_counter() - start
    return seconds, configuration_metrics(result), result.models_origin.source


def one_sweep(jobs: list[list[str]], reduced: list[str], order: int) -> dict:
    with_s = without_s = 0.0
    reused = identical = 0
    with tempfile.TemporaryDirectory() as store:
        cached = ["tracking.enabled=false", "training.cache=true", f"training.store={store}"]
        fresh = ["tracking.enabled=false", "training.cache=false"]
        for i, job in enumerate(jobs):
            sides = [cached, fresh] if (i + order) % 2 == 0 else [fresh, cached]
            out = {id(side): timed_job([*reduced, *job, *side]) for side in sides}
            (a_s, a_metrics, source), (b_s, b_metrics, _) = out[id(cached)], out[id(fresh)]
            with_s, without_s = with_s + a_s, without_s + b_s
            reused += source.startswith("cache:")
            identical += a_metrics == b_metrics
            print(
                f"  {' '.join(job):<60} store {a_s:6.1f} s ({source[:12]}), no store {b_s:6.1f} s",
                flush=True,
            )
    return {"with_s": with_s, "without_s": without_s, "reused": reused, "identical": identical}


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=4, help="protocol.n_models (sweep: 16)")
    parser.add_argument("--epochs", type=int, default=5, help="training.epochs (sweep: 30)")
    parser.add_argument("--canaries", action="append", help="keep these canary settings only")
    parser.add_argument(
        "--defenses",
        help="comma-separated defense options of the sweep to run (default: all), e.g. "
        "none,strength/topk_low",
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--override", action="append", default=[], help="any other override")
    args = parser.parse_args(argv)
    reduced = [f"protocol.n_models={args.models}", f"training.epochs={args.epochs}", *args.override]
    jobs = sweep_jobs(args.canaries, args.defenses.split(",") if args.defenses else None)
    sweeps = []
    for repeat in range(args.repeats):
        print(f"sweep {repeat}: {len(jobs)} jobs, {' '.join(reduced)}", flush=True)
        sweeps.append(one_sweep(jobs, reduced, repeat))
    ratios = [s["without_s"] / s["with_s"] for s in sweeps]
    summary = {
        "jobs": len(jobs),
        "reduced": reduced,
        "with_store_s": statistics.median(s["with_s"] for s in sweeps),
        "without_store_s": statistics.median(s["without_s"] for s in sweeps),
        "speedup_median": statistics.median(ratios),
        "speedup_min": min(ratios),
        "speedup_max": max(ratios),
        "jobs_reused": sweeps[0]["reused"],
        "metrics_identical": all(s["identical"] == len(jobs) for s in sweeps),
        "target_speedup": TARGET,
    }
    summary["target_met"] = summary["speedup_median"] >= TARGET
    print(
        f"sweep without / with the store: {summary['speedup_median']:.2f}x "
        f"(min {summary['speedup_min']:.2f}, max {summary['speedup_max']:.2f}); "
        f"{summary['jobs_reused']} of {len(jobs)} jobs reused stored models; "
        f"target >= {TARGET}x"
    )
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
