"""Interrupts: SIGTERM raised like Ctrl-C, and writes that an interrupt never cuts in half.

Python raises ``KeyboardInterrupt`` (Ctrl-C) wherever the main thread happens to be. Inside a
write to the tracking store that is harmful: an interrupt between SQLite's ``BEGIN`` and
``COMMIT`` leaves a connection holding the database's write lock, so the very writes that mark
the run KILLED then fail with "database is locked". :func:`deferred_interrupts` holds Ctrl-C and
SIGTERM back until the write is done and raises them right after it, where the job's handler
can record the interruption.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

#: The signals that stop a job (Ctrl-C; SIGTERM from ``kill``, a scheduler, a launcher).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the job is, so that its run ends KILLED like a Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(f"signal {signum}")


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` meanwhile (signals install in the main thread only)."""
    if not _in_main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Ctrl-C and SIGTERM arriving meanwhile take effect when the block ends, not inside it.

    The first signal received is then handled as it would have been (the handler in force before
    the block: ``KeyboardInterrupt``, :class:`Terminated`, or the default action). Nested blocks
    pass a held signal outwards. Outside the main thread (where Python runs no signal handler)
    it does nothing.
    """
    if not _in_main_thread():
        yield
        return
    held: list[int] = []
    previous = {
        s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in STOP_SIGNALS
    }
    try:
        yield
    finally:
        # While the handlers are restored the kernel holds new stop signals back (delivered at
        # the unblock, to the restored handlers), a signal already received runs its holding
        # handler first, and an interrupt raised half-way through still restores every handler:
        # a handler left holding would swallow every later Ctrl-C of the process.
        with _blocked(STOP_SIGNALS), contextlib.ExitStack() as restore:
            for signum, handler in previous.items():
                restore.callback(signal.signal, signum, handler)
            _run_pending_handlers()
        if held:
            _deliver(held[0], previous[held[0]])


@contextlib.contextmanager
def _blocked(signals: tuple[signal.Signals, ...]) -> Iterator[None]:
    """The calling thread's kernel mask holds ``signals`` meanwhile (not on Windows)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _run_pending_handlers() -> None:
    """Nothing: Python runs the handlers of the signals it has received when a function is
    entered (or between other bytecodes), so calling this runs them here."""


def _deliver(signum: int, handler: object) -> None:
    """Act on ``signum`` as ``handler`` (a signal module handler value) would have."""
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        os.kill(os.getpid(), signum)  # the default action (terminate) with its exit status
