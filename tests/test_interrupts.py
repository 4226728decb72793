"""Interrupts never land inside a deferred block: they are raised as soon as it ends."""

from __future__ import annotations

import os
import signal

import pytest

from benchmark.interrupts import Terminated, deferred_interrupts, terminate_as_interrupt


def _signal_self(signum: int) -> None:
    os.kill(os.getpid(), signum)


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
