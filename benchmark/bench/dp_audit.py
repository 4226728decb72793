"""Can the DP audit catch a bug? Each canary audit's bound against the claimed epsilon.

``python -m benchmark.bench.dp_audit`` trains DP-SGD with each canary audit (``--audits``:
white-box gradient canaries, ``audit=whitebox``, and black-box input canaries,
``audit=blackbox``; digits and the default MLP) with the correct engine and with each seeded
fault of :mod:`benchmark.training.faults`, and prints every method's epsilon lower bound beside
the accountant's epsilon; a bound above it flags the run (a fault counts as flagged when some
audit's method flags it). ``--seeds N`` repeats the correct
engine over ``N`` seeds at every ``--epsilons`` value (the soundness check: no bound may exceed
the accountant's epsilon); ``--tiny`` runs a seconds-long version (synthetic data, 4 models, 3
epochs) that only checks the output's shape. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from benchmark.config.compose import compose_config
from benchmark.experiment.execute import canary_audit
from benchmark.experiment.plan import prepare
from benchmark.training.engines import train
from benchmark.training.faults import FAULTS, inject

TINY = [
    "data=synthetic",
    "data.n_samples=200",
    "data.n_classes=5",
    "data.n_features=20",
    "protocol.n_models=4",
    "training.epochs=3",
    "audit.canaries=200",
]
AUDITS = ("whitebox", "blackbox")


def run_one(
    audit: str, epsilon: float, seed: int, fault: str | None, extra: list[str]
) -> dict[str, Any]:
    """Train one configuration with ``fault`` injected; its accountant epsilon and bounds."""
    overrides = [
        "defense=dpsgd",
        f"defense.dpsgd.target_epsilon={epsilon}",
        f"audit={audit}",
        f"seed={seed}",
        "tracking.enabled=false",
        *extra,
    ]
    plan = prepare(compose_config(overrides), show_progress=False)
    start = time.perf_counter()
    with inject(fault):
        models = train(plan.recipe, plan.pool, plan.membership, progress=False)
    seconds = time.perf_counter() - start
    claimed = max(models.epsilons or [float("nan")])
    bounds = {b.method: b.eps_lb for b in canary_audit(models, plan)}
    return {
        "audit": audit,
        "target_epsilon": epsilon,
        "seed": seed,
        "fault": fault or "none",
        "accountant_epsilon": claimed,
        "bounds": bounds,
        "flagged_by": [m for m, eps in bounds.items() if eps > claimed + 1e-9],
        "train_seconds": round(seconds, 2),
    }


def _line(row: dict[str, Any]) -> str:
    bounds = "  ".join(f"{m}={v:6.3f}" for m, v in row["bounds"].items())
    flag = f"  FLAGGED by {','.join(row['flagged_by'])}" if row["flagged_by"] else ""
    return (
        f"{row['audit']:<8s} eps={row['target_epsilon']:<4g} seed={row['seed']:<3d} "
        f"{row['fault']:<26s} "
        f"accountant={row['accountant_epsilon']:6.3f}  {bounds}  ({row['train_seconds']}s){flag}"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="seconds-long run (shape only)")
    parser.add_argument("--epsilons", type=float, nargs="+", default=[8.0])
    parser.add_argument("--seeds", type=int, default=0, help="correct-engine seeds per epsilon")
    parser.add_argument("--faults", nargs="*", default=list(FAULTS), choices=FAULTS)
    parser.add_argument("--audits", nargs="+", default=list(AUDITS), choices=AUDITS)
    parser.add_argument("--override", nargs="*", default=[], help="extra config overrides")
    args = parser.parse_args(argv)
    extra = [*(TINY if args.tiny else []), *args.override]
    rows = []
    first = args.epsilons[0]
    for audit in args.audits:
        for fault in [None, *args.faults]:
            rows.append(run_one(audit, first, 0, fault, extra))
            print(_line(rows[-1]), flush=True)
        for epsilon in args.epsilons:
            for seed in range(1 if epsilon == first else 0, args.seeds):
                rows.append(run_one(audit, epsilon, seed, None, extra))
                print(_line(rows[-1]), flush=True)
    correct = [r for r in rows if r["fault"] == "none"]
    faulty = [r for r in rows if r["fault"] != "none"]
    result = {
        "runs": rows,
        "correct_runs_flagged": sum(bool(r["flagged_by"]) for r in correct),
        "faults_flagged": {
            fault: any(r["flagged_by"] for r in faulty if r["fault"] == fault)
            for fault in args.faults
        },
        "largest_ratio_to_accountant": max(
            max(r["bounds"].values()) / r["accountant_epsilon"] for r in correct
        ),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
