"""Interrupts never land inside a deferred block: they are raised as soon as it ends."""

from __future__ import annotations

import signal

import pytest

from benchmark.interrupts import Terminated, deferred_interrupts, terminate_as_interrupt


def _signal_self(signum: int) -> None:
    # To this thread: os.kill may hand it to another thread of the process (torch's, MLflow's),
    # whose C handler then trips Python's flag at a moment of its own.
    signal.raise_signal(signum)


@pytest.mark.parametrize(
    ("signum", "raised"), [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)]
)
def test_a_signal_inside_the_block_is_raised_after_it_completes(signum, raised):
    completed = []
    with terminate_as_interrupt(), pytest.raises(raised):
        with deferred_interrupts():
            _signal_self(signum)
            completed.append("the write")  # not deferred, the handler would have raised before this
        completed.append("after the block")
    assert completed == ["the write"]


def test_nested_blocks_hold_the_signal_until_the_outermost_ends():
    order = []
    with terminate_as_interrupt(), pytest.raises(Terminated), deferred_interrupts():
        with deferred_interrupts():
            _signal_self(signal.SIGTERM)
            order.append("inner")
        order.append("outer")
    assert order == ["inner", "outer"]


def test_the_handlers_in_force_before_the_block_are_restored():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with deferred_interrupts():
        pass
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_an_interrupt_while_the_handlers_are_restored_still_restores_them_all():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), deferred_interrupts():
        _signal_self(signal.SIGINT)
        _signal_self(signal.SIGTERM)  # held too; the first one held is the one delivered
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
