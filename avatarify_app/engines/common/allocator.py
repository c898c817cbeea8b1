"""Keep large CPU tensors' memory in the process between frames (glibc malloc tuning).

PyTorch's CPU tensors come from malloc. glibc serves blocks above its mmap threshold (128 KiB
up to 32 MiB, adjusted dynamically) with fresh mmap'd pages and returns them on free, so every
large tensor of every frame pays a page fault per 4 KiB page when first written: measured here
~0.55 ms per MB, ~35 ms for one 64 MB feature map, about a quarter of LivePortrait's CPU frame.
Raising the mmap and trim thresholds makes malloc serve those blocks from its heap and keep
freed memory for the next frame (what jemalloc or tcmalloc, recommended for PyTorch CPU
inference, also achieve). The cost: the process keeps its peak memory instead of returning it.

Process-wide and irreversible for the process's lifetime; a no-op where malloc is not glibc's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
THRESHOLD = 2**31 - 1  # the largest value mallopt's int takes (~2 GiB)


def keep_freed_memory() -> bool:
    """Set glibc's M_MMAP_THRESHOLD and M_TRIM_THRESHOLD to ~2 GiB (idempotent); True when set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, THRESHOLD))
    log.debug("glibc malloc keeps freed memory for reuse: %s", done)
    return done
