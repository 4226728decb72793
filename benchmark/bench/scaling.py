"""How training cost grows: wall time and peak memory versus ``K`` and versus the pool size.

``python -m benchmark.bench.speed --scaling`` runs :func:`table`. Each point trains one
configuration with the ensemble engine (the default) in a fresh process, so that its peak memory
is its own: ``K`` in 16, 64, 256 on the default data and model, and ``K=16`` on synthetic data
whose pool holds 5k, 20k and 50k points (binary features, :mod:`benchmark.data.synthetic`). Time
is the whole ``train`` call (initialising, stacking and training the ``K`` models; data loading
and the attacks excluded) for ``epochs`` epochs, also given per epoch. Memory is the process's
peak resident set (CPU) or the peak of allocated device memory (CUDA), with the part that
training added above what the process held before it.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import subprocess
import sys

import torch

from benchmark.bench.interleave import seconds
from benchmark.config.compose import compose_config
from benchmark.experiment.plan import prepare
from benchmark.protocol.membership import make_membership
from benchmark.training.engines import train
from benchmark.training.trained import resolve_device

#: (label, K, pool size or None for the default data).
POINTS = (
    ("K", 16, None),
    ("K", 64, None),
    ("K", 256, None),
    ("pool", 16, 5_000),
    ("pool", 16, 20_000),
    ("pool", 16, 50_000),
)


def peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    scale = 1 if platform.system() == "Darwin" else 1024  # ru_maxrss: bytes on macOS, else KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def point_overrides(pool_size: int | None, device: str, epochs: int) -> list[str]:
    overrides = ["tracking.enabled=false", f"training.device={device}", f"training.epochs={epochs}"]
    if pool_size is None:
        return overrides
    synthetic = compose_config([*overrides, "data=synthetic"])
    # The pool is what remains after the test split: size the dataset so that it is pool_size.
    n_samples = math.ceil(pool_size / (1 - synthetic.data.test_fraction))
    return [*overrides, "data=synthetic", f"data.n_samples={n_samples}"]


def run_point(k: int, pool_size: int | None, device_name: str, epochs: int) -> dict[str, object]:
    """Train one point in this process; its timing and memory."""
    device = resolve_device(device_name)
    plan = prepare(compose_config(point_overrides(pool_size, device.type, epochs)), False)
    membership = make_membership(len(plan.pool), k, plan.seed)
    warm = make_membership(len(plan.pool), 2, plan.seed)
    train(plan.recipe.replace(epochs=1), plan.pool, warm, False)  # one-time costs, untimed
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    before = peak_mib(device) if device.type != "cuda" else torch.cuda.memory_allocated() / 2**20
    wall = seconds(lambda: train(plan.recipe, plan.pool, membership, False), device)
    peak = peak_mib(device)
    return {
        "k": k,
        "pool": len(plan.pool),
        "features": int(math.prod(plan.pool.input_shape)),
        "epochs": epochs,
        "seconds": wall,
        "seconds_per_epoch": wall / epochs,
        "peak_mib": peak,
        "training_mib": max(peak - before, 0.0),
    }


def table(device: str, epochs: int, threads: int) -> list[dict[str, object]]:
    """Every point of :data:`POINTS`, each in its own process."""
    rows = []
    for label, k, pool_size in POINTS:
        point = {"k": k, "pool": pool_size, "device": device, "epochs": epochs, "threads": threads}
        command = [sys.executable, "-m", "benchmark.bench.scaling", json.dumps(point)]
        out = subprocess.run(command, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"scaling point {point} failed:\n{out.stderr[-2000:]}")
        rows.append({"varies": label, **json.loads(out.stdout.strip().splitlines()[-1])})
    return rows


def report(rows: list[dict[str, object]]) -> str:
    lines = [
        "| varies | K | pool | features | epochs | training s | s per epoch | peak MiB | "
        "training adds MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['varies']} | {r['k']} | {r['pool']} | {r['features']} | {r['epochs']} | "
            f"{r['seconds']:.2f} | {r['seconds_per_epoch']:.2f} | {r['peak_mib']:.0f} | "
            f"{r['training_mib']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """One point, in a child process of :func:`table`: its figures as a JSON line."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.bench.scaling")
    parser.add_argument("point", help="JSON: k, pool (null: default data), device, epochs")
    point = json.loads(parser.parse_args(argv).point)
    if point["threads"] > 0:
        torch.set_num_threads(point["threads"])
    print(json.dumps(run_point(point["k"], point["pool"], point["device"], point["epochs"])))


if __name__ == "__main__":
    main()
