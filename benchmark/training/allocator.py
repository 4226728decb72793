"""The one process-wide allocator setting: glibc keeps the memory a training step frees.

A training step allocates and frees the same few activation and gradient buffers every step
(at ``K=64`` on the default MLP, several of 4 MiB each). glibc's ``malloc`` gives a block above
its *mmap threshold* its own ``mmap`` and returns it to the kernel on ``free``, and trims the top
of its heap whenever more than its *trim threshold* is free there. Its thresholds adapt to the
largest block freed so far (4 MiB here, so a trim threshold of 8 MiB), which is below what one
step frees: the next step faults the same pages back in, zeroed by the kernel. Measured on the
default MLP at ``K=64``: up to 390 thousand page faults per training (median 125 thousand), and
1.16x [1.01-1.39] its CPU time (6 process pairs; README, "Performance").

:func:`retain_freed_memory` fixes both thresholds (``mallopt``) so that blocks up to
``MMAP_THRESHOLD`` come from the heap and up to ``TRIM_THRESHOLD`` of free heap stays mapped for
the next step. The cost is memory that stays resident after it is freed (at most
``TRIM_THRESHOLD`` at the top of the heap); the peak is unchanged. It only changes where memory
comes from, never a computed value.

It is called by :func:`benchmark.training.engines.train`, once per process, and does nothing
outside Linux with glibc (another libc, macOS, Windows) or when ``mallopt`` refuses a value.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import platform
import sys

log = logging.getLogger(__name__)

#: ``mallopt`` parameters (glibc's ``malloc.h``).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: Blocks up to this size come from the heap: glibc's own ceiling for its adaptive threshold on
#: 64-bit systems (``DEFAULT_MMAP_THRESHOLD_MAX``), reached at once instead of block by block.
MMAP_THRESHOLD = 32 * 1024 * 1024
#: Free memory at the top of the heap up to this size stays mapped.
TRIM_THRESHOLD = 1024 * 1024 * 1024


@functools.cache
def retain_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds for this process; True if they are set.

    Idempotent (cached). The mmap threshold is set first: setting the trim threshold alone would
    also freeze the mmap threshold at its 128 KiB default, and every activation would be mapped
    and unmapped (twice as slow as glibc's adaptive default).
    """
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1:
        return False
    if mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1:
        log.debug("mallopt refused the trim threshold; glibc trims its heap as before")
    return True
