"""Speed benchmark: ``python -m benchmark.bench.speed [--tiny] [--scaling] [--device ...]``.

Measures, on the default model and data (``conf/``), the ratios the engines are judged by: the
ensemble engine against the sequential one at ``K=16`` and ``K=64``; the generic ``torch.func``
path that trains a custom module (``model=custom``) against the sequential engine at ``K=16``;
DP-SGD against non-private training (ensemble engine, ``K=16``); the training's achieved GFLOP/s
against a plain ``torch.mm`` (``K=16``, the default, and ``K=64``); and, for the record of the
design choice, ``torch.func.vmap`` over ``functional_call`` against the stacked layers (``K=64``).
Then the process's peak memory and the wall time of a default ``mia-bench`` run. The last line
printed is one JSON object with every figure. Targets are printed, never asserted.

Every ratio is measured interleaved (:mod:`benchmark.bench.interleave`): each workload is timed
once per round, in an order reversed every other round, each ratio is formed within a round, and
the median over ``--rounds`` rounds is reported with its range ``[min-max]``. One-time costs
(imports, the first optimizer step, the accountant's search for sigma) are paid before the rounds
and reported apart where they matter. The sequential engine trains models independently, so its
time is linear in ``K``; ``--sequential-models m`` times it on ``m`` models and scales to ``K``.

``--scaling`` prints instead the table of wall time and peak memory versus ``K`` and versus the
pool size (:mod:`benchmark.bench.scaling`).
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from omegaconf import DictConfig

from benchmark.bench import scaling
from benchmark.bench.interleave import interleave, put, seconds, shown
from benchmark.bench.scaling import peak_mib
from benchmark.bench.workloads import first_models, matmul, train_vmap, training_flops
from benchmark.cli.job import run
from benchmark.config.compose import compose_config
from benchmark.experiment.plan import prepare
from benchmark.protocol.membership import make_membership
from benchmark.training.accounting import DPParams, noise_multiplier, poisson_schedule
from benchmark.training.engines import train
from benchmark.training.functional_ensemble import train_functional
from benchmark.training.trained import resolve_device

TARGETS = {
    "ensemble_speedup_k64": (">=", 4.0),
    "dp_cost_ratio": ("<=", 3.0),
    "matmul_fraction": (">=", 0.30),
    "default_run_seconds": ("<", 60.0),
    "functional_speedup_k16": (">", 1.0),
}


def default_config(overrides: list[str]) -> DictConfig:
    return compose_config(["tracking.enabled=false", *overrides])


def measure(args: argparse.Namespace) -> dict[str, object]:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    overrides = [*args.override, f"training.device={device.type}"]
    if args.epochs is not None:
        overrides.append(f"training.epochs={args.epochs}")
    plan = prepare(default_config(overrides), show_progress=False)
    pool, recipe = plan.pool, plan.recipe
    figures: dict[str, object] = {"device": str(device), "epochs": recipe.epochs}
    if device.type == "cuda":
        figures["device_name"] = torch.cuda.get_device_name(device)
    figures["torch_threads"] = torch.get_num_threads()
    dp = recipe.replace(dp=DPParams())
    sequential = recipe.replace(engine="sequential")

    # Warm up: imports, the first optimizer step, Opacus and the allocator, paid once, untimed.
    warm = make_membership(len(pool), 2, plan.seed)
    for warm_recipe in (sequential, recipe, dp):
        train(warm_recipe.replace(epochs=1), pool, warm, False)
    train_functional(recipe.replace(epochs=1), pool, warm, False)

    m16, m64 = (make_membership(len(pool), k, plan.seed) for k in (16, 64))
    n_seq = {
        k: k if args.sequential_models <= 0 else min(k, args.sequential_models) for k in (16, 64)
    }
    schedule = poisson_schedule(int(m16.matrix[0].sum()), recipe.batch_size, recipe.epochs)
    assert dp.dp is not None
    figures["dp_sigma_search_seconds"] = seconds(lambda: noise_multiplier(dp.dp, schedule), device)
    mm, mm_flops = matmul(device, args.matmul_size, args.matmul_products)
    flops = {16: training_flops(recipe, pool, m16), 64: training_flops(recipe, pool, m64)}
    sub16, sub64 = first_models(m16, n_seq[16]), first_models(m64, n_seq[64])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    # Each ratio's two sides sit next to each other where the order allows.
    rounds = interleave(
        [
            ("sequential_k16", lambda: train(sequential, pool, sub16, False)),
            ("functional_k16", lambda: train_functional(recipe, pool, m16, False)),
            ("ensemble_k16", lambda: train(recipe, pool, m16, False)),
            ("dp_k16", lambda: train(dp, pool, m16, False)),
            ("matmul", mm),
            ("ensemble_k64", lambda: train(recipe, pool, m64, False)),
            ("vmap_k64", lambda: train_vmap(recipe, pool, m64, device)),
            ("sequential_k64", lambda: train(sequential, pool, sub64, False)),
        ],
        args.rounds,
        device,
    )
    for k in (16, 64):
        scale = k / n_seq[k]
        figures[f"ensemble_seconds_k{k}"] = rounds.median(f"ensemble_k{k}")
        figures[f"sequential_seconds_k{k}"] = rounds.median(f"sequential_k{k}") * scale
        put(
            figures,
            f"ensemble_speedup_k{k}",
            rounds.per_round(lambda s, e, c=scale: s * c / e, f"sequential_k{k}", f"ensemble_k{k}"),
        )
        put(
            figures,
            f"matmul_fraction_k{k}",
            rounds.per_round(
                lambda t, m, f=flops[k]: (f / t) / (mm_flops / m), f"ensemble_k{k}", "matmul"
            ),
        )
        figures[f"train_gflops_per_s_k{k}"] = flops[k] / rounds.median(f"ensemble_k{k}") / 1e9
    # The engine issue's figure: K=64, as it was first measured.
    for suffix in ("", "_low", "_high"):
        figures[f"matmul_fraction{suffix}"] = figures[f"matmul_fraction_k64{suffix}"]
    figures["matmul_gflops_per_s"] = mm_flops / rounds.median("matmul") / 1e9
    figures["sequential_models_measured"] = n_seq
    figures["functional_seconds_k16"] = rounds.median("functional_k16")
    put(
        figures,
        "functional_speedup_k16",
        rounds.per_round(lambda s, f: s * 16 / n_seq[16] / f, "sequential_k16", "functional_k16"),
    )
    figures["vmap_seconds_k64"] = rounds.median("vmap_k64")
    put(
        figures,
        "stacked_speedup_over_vmap_k64",
        rounds.per_round(lambda v, e: v / e, "vmap_k64", "ensemble_k64"),
    )
    figures["dp_seconds_k16"] = rounds.median("dp_k16")
    put(figures, "dp_cost_ratio", rounds.per_round(lambda d, e: d / e, "dp_k16", "ensemble_k16"))
    figures["rounds"] = args.rounds
    figures["timings"] = rounds.times

    run_overrides = [*args.override, f"training.device={device.type}"]
    if args.tiny:
        run_overrides.append(f"training.epochs={recipe.epochs}")
    figures["default_run_overrides"] = " ".join(run_overrides)
    figures["default_run_seconds"] = seconds(
        lambda: run(default_config(run_overrides), show_progress=False), device
    )
    figures["peak_memory_mib"] = peak_mib(device)
    figures["tiny"] = bool(args.tiny)
    figures["overrides"] = " ".join(args.override)
    return figures


def report(figures: dict[str, object]) -> str:
    f = figures
    lines = [
        f"device: {f['device']} {f.get('device_name', '')}(torch threads: {f['torch_threads']}), "
        f"default model and data, {f['epochs']} epochs; each ratio: median [min-max] of "
        f"{f['rounds']} interleaved rounds",
    ]
    for k in (16, 64):
        lines.append(
            f"K={k}: sequential {f[f'sequential_seconds_k{k}']:.2f} s, ensemble "
            f"{f[f'ensemble_seconds_k{k}']:.2f} s, speedup {shown(f, f'ensemble_speedup_k{k}')}"
        )
    lines += [
        f"  (sequential timed on {f['sequential_models_measured']} models per K, scaled to K)",
        f"K=16 generic torch.func path (model=custom): {f['functional_seconds_k16']:.2f} s, "
        f"{shown(f, 'functional_speedup_k16')} the sequential engine",
        f"K=64 torch.func vmap: {f['vmap_seconds_k64']:.2f} s; the stacked layers are "
        f"{shown(f, 'stacked_speedup_over_vmap_k64')} faster",
        f"DP-SGD K=16 (ensemble): {f['dp_seconds_k16']:.2f} s, {shown(f, 'dp_cost_ratio')} "
        f"non-private (plus {f['dp_sigma_search_seconds']:.2f} s once for the accountant's sigma)",
    ]
    for k in (16, 64):
        lines.append(
            f"training K={k}: {f[f'train_gflops_per_s_k{k}']:.1f} GFLOP/s = "
            f"{shown(f, f'matmul_fraction_k{k}', '.1%', '')} of torch.mm's "
            f"{f['matmul_gflops_per_s']:.1f} GFLOP/s"
        )
    lines += [
        f"peak memory: {f['peak_memory_mib']:.0f} MiB",
        f"default mia-bench run ({f['default_run_overrides']}): {f['default_run_seconds']:.1f} s",
    ]
    for key, (op, bound) in TARGETS.items():
        value = float(f[key])  # type: ignore[arg-type]
        met = {">=": value >= bound, ">": value > bound, "<=": value <= bound, "<": value < bound}
        lines.append(f"target {key} {op} {bound}: {value:.3g} ({'met' if met[op] else 'NOT met'})")
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmark.bench.speed", description=__doc__)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--tiny", action="store_true", help="1 epoch, 2 rounds, 1 sequential model: a smoke test"
    )
    parser.add_argument(
        "--scaling", action="store_true", help="print the scaling table (time, memory vs K, pool)"
    )
    parser.add_argument(
        "--scaling-epochs", type=int, default=2, help="epochs of each scaling point"
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="a Hydra override of the measured configuration (repeatable), e.g. data=synthetic",
    )
    parser.add_argument("--epochs", type=int, default=None, help="override training.epochs")
    parser.add_argument(
        "--sequential-models",
        type=int,
        default=0,
        help="time the sequential engine on this many models and scale to K (0: all K)",
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per ratio")
    parser.add_argument("--matmul-size", type=int, default=2048, help="n of the n x n torch.mm")
    parser.add_argument(
        "--matmul-products", type=int, default=3, help="torch.mm products per round"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0: torch's default); 1 is steadier on a machine others share",
    )
    args = parser.parse_args(argv)
    if args.tiny:
        args.epochs = args.epochs or 1
        args.sequential_models = 1
        args.rounds = 2
        args.matmul_size = 256
    return args


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = parse(argv)
    if args.scaling:
        if args.threads > 0:
            torch.set_num_threads(args.threads)
        device = resolve_device(args.device).type
        rows = scaling.table(device, args.scaling_epochs, args.threads)
        figures: dict[str, object] = {"device": device, "scaling": rows}
        print(scaling.report(rows))
    else:
        figures = measure(args)
        print(report(figures))
    print(json.dumps(figures, sort_keys=True))
    sys.stdout.flush()
    return figures


if __name__ == "__main__":
    main()
