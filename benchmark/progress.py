"""Progress: a bar on an interactive terminal, one log line per phase otherwise.

A sweep's log file or a CI job gets ``attacks: 12 attack(s) in 3.4 s`` instead of carriage-return
bar redraws; a terminal gets tqdm. Lowest layer: anything may use it.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
log = logging.getLogger("benchmark.progress")


def interactive() -> bool:
    return sys.stderr.isatty()


def progress(
    iterable: Iterable[T], desc: str, unit: str = "it", enabled: bool = True, **tqdm_args
) -> Iterator[T]:
    """``iterable``, shown as a tqdm bar on a TTY, else logged once when the phase ends."""
    if not enabled:
        yield from iterable
        return
    if interactive():
        yield from tqdm(iterable, desc=desc, unit=unit, **tqdm_args)
        return
    start, count = time.perf_counter(), 0
    log.info("%s: started", desc)
    for item in iterable:
        count += 1
        yield item
    log.info("%s: %d %s(s) in %.1f s", desc, count, unit, time.perf_counter() - start)


#: The training-curve metric keys (their one spelling; ``benchmark.evaluation.keys`` re-exports
#: them): the mean over the epoch's steps of the batch loss and of the batch accuracy.
TRAIN_LOSS = "train/loss"
TRAIN_ACC = "train/acc"

#: Where the training engines report each epoch's metrics (the open MLflow run, when a job sets
#: one): ``sink(epoch, means, per_model)``, ``means`` the mean over the K models
#: (``{"train/loss": ..., "train/acc": ...}``), ``per_model`` the same keys with one value per
#: model (model ``k`` at index ``k``). A context variable, so that the engines need no tracking
#: argument and a shadow training can switch it off.
EpochSink = Callable[[int, dict[str, float], dict[str, list[float]]], None]
_epoch_sink: ContextVar[EpochSink | None] = ContextVar("epoch_sink", default=None)


@contextmanager
def reporting_epochs(sink: EpochSink | None) -> Iterator[None]:
    """Send the engines' per-epoch metrics to ``sink`` (None: nowhere) inside the block."""
    token = _epoch_sink.set(sink)
    try:
        yield
    finally:
        _epoch_sink.reset(token)


#: One epoch as :func:`recording_epochs` keeps it: ``(epoch, means, per_model)``.
Epoch = tuple[int, dict[str, float], dict[str, list[float]]]


@contextmanager
def recording_epochs() -> Iterator[list[Epoch]]:
    """Keep every epoch's metrics reported inside the block, still sending them to the current
    sink (the model store keeps a trained ensemble's curve, and replays it when reused)."""
    outer = _epoch_sink.get()
    curve: list[Epoch] = []

    def sink(epoch: int, metrics: dict[str, float], per_model: dict[str, list[float]]) -> None:
        curve.append((epoch, dict(metrics), {k: list(v) for k, v in per_model.items()}))
        if outer is not None:
            outer(epoch, metrics, per_model)

    with reporting_epochs(sink):
        yield curve


def report_epoch(
    epoch: int, metrics: dict[str, float], per_model: dict[str, list[float]] | None = None
) -> None:
    """One epoch's training metrics, to the current sink (a no-op without one)."""
    sink = _epoch_sink.get()
    if sink is not None:
        sink(epoch, metrics, per_model or {})
