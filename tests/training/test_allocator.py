"""The allocator setting: glibc keeps what a training step frees, and nothing changes elsewhere."""

from __future__ import annotations

import platform
import resource
import sys

import pytest
import torch

from benchmark.training.allocator import retain_freed_memory

GLIBC = sys.platform == "linux" and platform.libc_ver()[0] == "glibc"


def test_it_is_set_on_linux_with_glibc_only(monkeypatch):
    retain_freed_memory.cache_clear()
    monkeypatch.setattr(sys, "platform", "darwin")
    assert retain_freed_memory() is False
    monkeypatch.undo()
    retain_freed_memory.cache_clear()
    assert retain_freed_memory() is GLIBC
    assert retain_freed_memory() is GLIBC  # once per process, then cached


@pytest.mark.skipif(not GLIBC, reason="a glibc setting")
def test_a_step_reuses_the_pages_the_previous_step_freed():
    assert retain_freed_memory()

    def step() -> None:  # six 4 MiB activations, written and freed, as a training step does
        activations = [torch.ones(1 << 20) for _ in range(6)]
        del activations

    for _ in range(3):  # the heap settles
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        step()
    # Memory returned to the kernel would fault back in, 6 * 1024 pages a step.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 1024
