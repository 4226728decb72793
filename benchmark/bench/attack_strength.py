"""How strong is the attack suite? ``python -m benchmark.attack_strength``

For each dataset (the undefended default, digits, and ``synthetic``) this prints

1. every attack of the suite on the default configuration (``protocol.n_models=16``): AUC and
   TPR at 0.1% and 1% FPR, means over targets with 95% intervals, and the ratio of the strongest
   attack's TPR at 0.1% FPR to the LOSS attack's (target: at least 5);
2. LiRA and RMIA with 8 shadow models against the same attacks with 64, on one ensemble of
   ``66`` models trained once (each target attacked with 8, then 64, of the other 65 as shadows;
   the same 8 are among the 64), and the ratio of their TPRs (target: at least 1/2).

Tracking is disabled. Models are tiny, so the script runs single-threaded (``--threads``):
on shared cores extra threads only contend.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from attacks.base import attacker_view, build_attack, memoise_query
from benchmark.config.compose import compose_config
from benchmark.evaluation.keys import AUC, HEADLINE, POPULATION, privacy_key, tpr_at
from benchmark.evaluation.metrics import Interval, evaluate, mean_interval
from benchmark.experiment.execute import execute
from benchmark.experiment.plan import prepare
from benchmark.experiment.results import ExperimentResult
from benchmark.release.api import Release
from benchmark.signals.compute import compute_signals
from benchmark.training.engines import train

METRICS = (("AUC", AUC), ("TPR@0.1%FPR", HEADLINE), ("TPR@1%FPR", tpr_at(0.01)))
SHADOW_ATTACKS = ("lira_online", "lira_offline", "rmia", "rmia_offline")


def compose(overrides: Sequence[str]):
    return compose_config(["tracking.enabled=false", *overrides])


def suite_table(result: ExperimentResult) -> tuple[list[str], dict[str, Interval]]:
    summary = result.summary()
    lines = ["| attack | " + " | ".join(m for m, _ in METRICS) + " |", "|---" * 4 + "|"]
    for attack in result.attacks:
        if attack.not_applicable:
            lines.append(f"| {attack.name} | not applicable: {attack.not_applicable} | | |")
            continue
        cells = [str(summary[privacy_key(POPULATION, attack.name, key)]) for _, key in METRICS]
        lines.append(f"| {attack.name} | " + " | ".join(cells) + " |")
    return lines, summary


def loss_ratio(result: ExperimentResult, summary: dict[str, Interval]) -> str:
    tprs = {
        a.name: summary[privacy_key(POPULATION, a.name, HEADLINE)].mean
        for a in result.attacks
        if a.evaluations
    }
    strongest = max(tprs, key=tprs.get)
    ratio = tprs[strongest] / tprs["loss"] if tprs["loss"] > 0 else float("inf")
    return (
        f"strongest at 0.1% FPR: {strongest} {tprs[strongest]:.4f} vs loss {tprs['loss']:.4f}: "
        f"ratio {ratio:.1f}x (target >= 5x: {'met' if ratio >= 5 else 'NOT met'})"
    )


def shadow_count_table(
    overrides: Sequence[str], n_models: int, n_targets: int, counts: Sequence[int]
) -> list[str]:
    """LiRA and RMIA against the same targets with ``counts`` shadow models each."""
    cfg = compose([*overrides, f"protocol.n_models={n_models}", f"protocol.n_targets={n_targets}"])
    plan = prepare(cfg, show_progress=False)
    models = train(plan.recipe, plan.pool, plan.membership, progress=False)
    release = Release(plan.defenses)
    signals = compute_signals(models, release, plan.pool, plan.membership)
    query = memoise_query(lambda j, x: release.query(models, j, x))
    suite = cfg.attacks.suite
    lines = [
        "| attack | shadows | " + " | ".join(m for m, _ in METRICS) + " |",
        "|---" * 5 + "|",
    ]
    ratios = []
    for name in SHADOW_ATTACKS:
        attack = build_attack(name, suite[name])
        means = {}
        for count in counts:
            evaluations = []
            for k in signals.targets:
                # A fixed order of the other models: the 8 shadows are among the 64.
                others = np.random.default_rng([cfg.seed, int(k)]).permutation(
                    [j for j in range(n_models) if j != k]
                )
                view = attacker_view(
                    signals,
                    int(k),
                    features=plan.pool.x,
                    query=query,
                    pool_kind=plan.pool.kind,
                    shadows=others[:count],
                )
                evaluations.append(evaluate(attack.score(view), signals.membership[k]))
            values = {
                key: mean_interval([e.metrics()[key] for e in evaluations]) for _, key in METRICS
            }
            means[count] = values
            cells = " | ".join(str(values[key]) for _, key in METRICS)
            lines.append(f"| {name} | {count} | {cells} |")
        few, many = min(counts), max(counts)
        for label, key in METRICS[1:]:
            top = means[many][key].mean
            ratio = means[few][key].mean / top if top > 0 else float("nan")
            verdict = "met" if ratio >= 0.5 else "NOT met"
            ratios.append(
                f"- {name} {label}: {few} / {many} shadows = {ratio:.2f} (target >= 0.5: {verdict})"
            )
    return [*lines, "", *ratios]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["digits", "synthetic"])
    parser.add_argument("--n-models", type=int, default=66, help="ensemble for the shadow counts")
    parser.add_argument("--n-targets", type=int, default=16, help="targets for the shadow counts")
    parser.add_argument("--shadows", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.time()
    with threadpool_limits(limits=args.threads):
        for dataset in args.datasets:
            overrides = [f"data={dataset}"]
            result = execute(prepare(compose(overrides), show_progress=False))
            lines, summary = suite_table(result)
            print(
                f"\n## {dataset}: the suite on the default configuration (16 models, all targets)\n"
            )
            print("\n".join(lines))
            print(f"\n{loss_ratio(result, summary)}")
            print(
                f"\n## {dataset}: {args.n_models} models, {args.n_targets} targets, "
                f"shadow models {' vs '.join(map(str, args.shadows))}\n"
            )
            print(
                "\n".join(
                    shadow_count_table(overrides, args.n_models, args.n_targets, args.shadows)
                )
            )
    elapsed = time.time() - started
    print(f"\nValues are means over targets with 95% Student-t intervals. {elapsed:.0f} s.")


if __name__ == "__main__":
    main()
