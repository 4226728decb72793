"""Interleaved timing: every side of every ratio measured in the same rounds, in alternation.

On a machine that others share, the load changes from one second to the next; two figures timed
minutes apart make a meaningless ratio (a run under load once printed a DP cost of 0.33x). So
the benchmark times every workload once per *round*, in a fixed order that is reversed every other
round (A B, B A, A B, ...: a drift in load within a round counts against both sides alike), forms
each ratio from the two timings of the same round, and reports the median ratio over the rounds
with its spread (min-max). The two sides of a ratio are timed next to each other whenever the
order allows it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds(fn: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of one call of ``fn`` (the device's queue drained before and after)."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


@dataclass
class Rounds:
    """Per-round timings (seconds) of every named workload, in the order they were taken."""

    times: dict[str, list[float]] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])

    def per_round(self, figure: Callable[..., float], *names: str) -> list[float]:
        """``figure(t_1, ..., t_n)`` of each round's timings of ``names``."""
        return [figure(*ts) for ts in zip(*(self.times[n] for n in names), strict=True)]


def interleave(
    workloads: Sequence[tuple[str, Callable[[], object]]], rounds: int, device: torch.device
) -> Rounds:
    """Time every workload once per round; odd rounds run them in reverse order."""
    result = Rounds({name: [] for name, _ in workloads})
    for r in range(rounds):
        order = workloads if r % 2 == 0 else list(reversed(workloads))
        for name, fn in order:
            result.times[name].append(seconds(fn, device))
    return result


def spread(values: Sequence[float]) -> dict[str, float]:
    """The median of ``values`` and their range (``low``, ``high``)."""
    return {"median": statistics.median(values), "low": min(values), "high": max(values)}


def put(figures: dict[str, object], key: str, values: Sequence[float]) -> None:
    """``figures[key]`` = the median of ``values``; ``key_low``/``key_high`` = their range."""
    s = spread(values)
    figures[key] = s["median"]
    figures[f"{key}_low"], figures[f"{key}_high"] = s["low"], s["high"]


def shown(figures: dict[str, object], key: str, fmt: str = ".2f", suffix: str = "x") -> str:
    """``median [low-high]`` of a figure stored by :func:`put`."""
    f = figures
    return f"{f[key]:{fmt}}{suffix} [{f[f'{key}_low']:{fmt}}-{f[f'{key}_high']:{fmt}}]"
