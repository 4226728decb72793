"""Speed benchmark: ``python -m benchmark.speed [--quick] [--device auto|cpu|cuda]``.

Measures, in one run on one machine, on the default model and data (``conf/``): seconds to train
``K=16`` and ``K=64`` models with the sequential and the ensemble engine and their ratio; DP-SGD
against non-private training on the ensemble engine; the ensemble's achieved GFLOP/s against a
plain ``torch.mm`` measured in the same run; the process's peak memory; the wall time of a default
``mia-bench`` run; and, for the record of the design choice, ``torch.func.vmap`` over
``functional_call`` against the hand-stacked layers. The last line printed is one JSON object with
every figure. Targets are printed, never asserted.

Each training is timed ``--repeats`` times and the best time kept (others' load only ever adds
time). The sequential engine trains models independently, so its time is linear in ``K``;
``--sequential-models m`` times it on ``m`` models and scales to ``K`` (by default all ``K`` are
timed). One-time costs (imports, the first optimizer step, the accountant's search for sigma)
are paid before timing and reported apart where they matter.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import platform
import resource
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch.func import functional_call, stack_module_state, vmap
from torch.utils.flop_counter import FlopCounterMode

from benchmark.cli.job import run
from benchmark.config.compose import compose_config
from benchmark.data.pool import Pool
from benchmark.experiment.plan import prepare
from benchmark.protocol.membership import Membership, make_membership
from benchmark.training.accounting import DPParams, noise_multiplier, poisson_schedule
from benchmark.training.engines import train
from benchmark.training.functional_ensemble import train_functional
from benchmark.training.recipe import Recipe
from benchmark.training.stacking import stack
from benchmark.training.steps import batch_order, init_model, make_optimizer
from benchmark.training.trained import resolve_device

TARGETS = {
    "ensemble_speedup_k64": (">=", 4.0),
    "dp_cost_ratio": ("<=", 3.0),
    "matmul_fraction": (">=", 0.30),
    "default_run_seconds": ("<", 60.0),
    "functional_speedup_k16": (">=", 1.0),
}


def default_config(overrides: list[str]) -> DictConfig:
    return compose_config(["tracking.enabled=false", *overrides])


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeats: int = 1) -> float:
    """Wall seconds of ``fn()``: the best of ``repeats`` runs (the least disturbed by others)."""
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def first_models(membership: Membership, m: int) -> Membership:
    """The first ``m`` models of ``membership`` (to time the sequential engine on a subset)."""
    return dataclasses.replace(
        membership,
        matrix=membership.matrix[:m],
        seeds=membership.seeds[:m],
        targets=membership.targets[membership.targets < m],
    )


def matmul_gflops(device: torch.device, n: int, repeats: int) -> float:
    """The machine's practical float32 limit: the best of ``repeats`` ``n x n`` products."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b  # warm up
    best = min(timed(lambda: a @ b, device) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def training_flops(recipe: Recipe, pool: Pool, membership: Membership) -> float:
    """Forward and backward FLOPs of the ensemble over the whole training run (counted once)."""
    modules = [init_model(recipe, pool, int(s)) for s in membership.seeds]
    ensemble = stack(modules)
    batch = min(recipe.batch_size, int(membership.matrix[0].sum()))
    x = (
        torch.as_tensor(pool.x[:batch])
        .unsqueeze(1)
        .expand(-1, membership.n_models, *pool.input_shape)
    )
    y = torch.as_tensor(pool.y[:batch]).unsqueeze(1).expand(-1, membership.n_models)
    with FlopCounterMode(display=False) as counter:
        logits = ensemble(x)
        F.cross_entropy(logits.flatten(0, 1), y.flatten()).backward()
    per_example = counter.get_total_flops() / batch
    return per_example * int(membership.matrix[0].sum()) * recipe.epochs


def train_vmap(recipe: Recipe, pool: Pool, membership: Membership, device: torch.device) -> None:
    """The alternative design: ``torch.func.vmap`` of ``functional_call`` over stacked weights."""
    modules = [init_model(recipe, pool, int(s)).to(device) for s in membership.seeds]
    params, buffers = stack_module_state(modules)
    base = copy.deepcopy(modules[0]).to("meta")

    def one(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (p, b), (x,))

    forward = vmap(one, randomness="different")
    optimizer = make_optimizer(recipe, list(params.values()))
    x, y = torch.as_tensor(pool.x, device=device), torch.as_tensor(pool.y, device=device)
    orders = [
        batch_order(membership.members(k), recipe.epochs, recipe.batch_size, int(s))
        for k, s in enumerate(membership.seeds)
    ]
    for batches in zip(*orders, strict=True):
        index = torch.as_tensor(np.stack(batches), device=device)  # [K, B]
        logits = forward(params, buffers, x[index])
        loss = F.cross_entropy(logits.flatten(0, 1), y[index].flatten(), reduction="none")
        optimizer.zero_grad(set_to_none=True)
        loss.view(index.shape).mean(1).sum().backward()
        optimizer.step()


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    scale = 1 if platform.system() == "Darwin" else 1024  # ru_maxrss: bytes on macOS, else KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


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

    # Warm up: imports, the first optimizer step and the allocator are paid once, untimed.
    warm = make_membership(len(pool), 2, plan.seed)
    train(recipe.replace(epochs=1, engine="sequential"), pool, warm, False)
    train(recipe.replace(epochs=1), pool, warm, False)

    for k in (16, 64):
        membership = make_membership(len(pool), k, plan.seed)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        ensemble = timed(lambda m=membership: train(recipe, pool, m, False), device, args.repeats)
        m = k if args.sequential_models <= 0 else min(k, args.sequential_models)
        subset = first_models(membership, m)
        sequential = timed(
            lambda s=subset: train(recipe.replace(engine="sequential"), pool, s, False),
            device,
            args.repeats,
        ) * (k / m)
        figures[f"ensemble_seconds_k{k}"] = ensemble
        figures[f"sequential_seconds_k{k}"] = sequential
        figures[f"ensemble_speedup_k{k}"] = sequential / ensemble
        if k == 64:
            figures["peak_memory_mib"] = peak_memory_mib(device)
            figures["train_gflops_per_s"] = (
                training_flops(recipe, pool, membership) / ensemble / 1e9
            )
            figures["vmap_seconds_k64"] = timed(
                lambda m=membership: train_vmap(recipe, pool, m, device), device, args.repeats
            )
            figures["stacked_speedup_over_vmap_k64"] = figures["vmap_seconds_k64"] / ensemble
        if k == 16:
            # The generic torch.func path that trains custom modules (model=custom), timed on the
            # same models as the engines above.
            figures["functional_seconds_k16"] = timed(
                lambda m=membership: train_functional(recipe, pool, m, False), device, args.repeats
            )
            figures["functional_speedup_k16"] = sequential / figures["functional_seconds_k16"]
    figures["sequential_models_measured"] = (
        "all" if args.sequential_models <= 0 else args.sequential_models
    )

    figures["matmul_gflops_per_s"] = matmul_gflops(device, 512 if args.quick else 2048, 5)
    figures["matmul_fraction"] = figures["train_gflops_per_s"] / figures["matmul_gflops_per_s"]

    dp = DPParams()
    membership = make_membership(len(pool), 16, plan.seed)
    schedule = poisson_schedule(int(membership.matrix[0].sum()), recipe.batch_size, recipe.epochs)
    figures["dp_sigma_search_seconds"] = timed(lambda: noise_multiplier(dp, schedule), device)
    figures["dp_seconds_k16"] = timed(
        lambda: train(recipe.replace(dp=dp), pool, membership, False), device, args.repeats
    )
    figures["dp_cost_ratio"] = figures["dp_seconds_k16"] / figures["ensemble_seconds_k16"]

    run_overrides = [*args.override, f"training.device={device.type}"]
    if args.quick:
        run_overrides.append(f"training.epochs={recipe.epochs}")
    figures["default_run_overrides"] = " ".join(run_overrides)
    figures["default_run_seconds"] = timed(
        lambda: run(default_config(run_overrides), show_progress=False), device
    )
    figures["peak_memory_mib"] = max(figures["peak_memory_mib"], peak_memory_mib(device))
    figures["quick"] = bool(args.quick)
    figures["repeats"] = args.repeats
    figures["overrides"] = " ".join(args.override)
    return figures


def report(figures: dict[str, object]) -> str:
    f = figures
    lines = [
        f"device: {f['device']} {f.get('device_name', '')}(torch threads: {f['torch_threads']}), "
        f"default model and data, {f['epochs']} epochs",
    ]
    for k in (16, 64):
        lines.append(
            f"K={k}: sequential {f[f'sequential_seconds_k{k}']:.2f} s, ensemble "
            f"{f[f'ensemble_seconds_k{k}']:.2f} s, speedup {f[f'ensemble_speedup_k{k}']:.1f}x"
        )
    lines += [
        f"  (sequential measured on {f['sequential_models_measured']} models per K, scaled to K;"
        f" each figure the best of {f['repeats']} runs)",
        f"K=16 generic torch.func path (model=custom): {f['functional_seconds_k16']:.2f} s, "
        f"{f['functional_speedup_k16']:.1f}x the sequential engine",
        f"K=64 torch.func vmap: {f['vmap_seconds_k64']:.2f} s; the stacked layers are "
        f"{f['stacked_speedup_over_vmap_k64']:.1f}x faster",
        f"DP-SGD K=16 (ensemble): {f['dp_seconds_k16']:.2f} s, {f['dp_cost_ratio']:.2f}x "
        f"non-private (plus {f['dp_sigma_search_seconds']:.2f} s once for the accountant's sigma)",
        f"training: {f['train_gflops_per_s']:.1f} GFLOP/s = {100 * f['matmul_fraction']:.0f}% of "
        f"torch.mm's {f['matmul_gflops_per_s']:.1f} GFLOP/s",
        f"peak memory: {f['peak_memory_mib']:.0f} MiB",
        f"default mia-bench run ({f['default_run_overrides']}): {f['default_run_seconds']:.1f} s",
    ]
    for key, (op, bound) in TARGETS.items():
        value = float(f[key])  # type: ignore[arg-type]
        met = value >= bound if op == ">=" else value <= bound if op == "<=" else value < bound
        lines.append(f"target {key} {op} {bound}: {value:.3g} ({'met' if met else 'NOT met'})")
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmark.speed", description=__doc__)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--quick", action="store_true", help="1 epoch, 1 sequential model: a smoke test"
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
    parser.add_argument(
        "--repeats", type=int, default=3, help="time each training this many times, keep the best"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0: torch's default); 1 is steadier on a machine others share",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs = args.epochs or 1
        args.sequential_models = 1
        args.repeats = 1
    return args


def main(argv: list[str] | None = None) -> dict[str, object]:
    figures = measure(parse(argv))
    print(report(figures))
    print(json.dumps(figures, sort_keys=True))
    sys.stdout.flush()
    return figures


if __name__ == "__main__":
    main()
