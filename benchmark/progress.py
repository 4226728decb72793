"""Progress: a bar on an interactive terminal, one log line per phase otherwise.

A sweep's log file or a CI job gets ``attacks: 12 attack(s) in 3.4 s`` instead of carriage-return
bar redraws; a terminal gets tqdm. Lowest layer: anything may use it.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
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
