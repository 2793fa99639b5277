"""glibc's allocator set for frame-sized arrays: one arena, and freed frames kept for the next one.

A 2048 x 2048 frame is 16 MiB in float32; every step that touches pixels
allocates and frees several such arrays per frame.  glibc's defaults serve
them badly:

- an array above the mmap threshold (128 KiB at start, raised up to 32 MiB
  as such blocks are freed) is mapped afresh and unmapped when freed, and
  memory returned to the system past the trim threshold is mapped again
  for the next frame: each time, every page is faulted in and zeroed by the
  kernel;
- each thread that allocates gets an arena of its own (up to 8 per core),
  whose heaps are trimmed and grown again frame after frame.

On the render's two threads the page faults cost about as much system CPU
as the second thread saved (``benchmarks/siril.py``, issue 25 in
``benchmarks/RESULTS.md``).  :func:`tune_for_frames` asks glibc, through
``mallopt``, for one arena, no mapping below 64 MiB, and no trimming below
256 MiB of free memory at the top of the heap: a frame's arrays then reuse
the last frame's pages.  The process keeps at most that much freed memory
for the next frame.

Only glibc has ``mallopt``; elsewhere (macOS, musl) nothing is changed.  A
user's own ``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_`` or
``MALLOC_TRIM_THRESHOLD_`` wins: nothing is changed then either.
"""

from __future__ import annotations

import os
import sys

# mallopt's parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

MAP_ABOVE_BYTES = 64 * 2**20
"""Blocks of this size and above are mapped on their own (a frame of 4096 x 4096 float32 and larger)."""
KEEP_FREE_BYTES = 256 * 2**20
"""Free memory at the top of the heap kept for the next frames before any is given back."""

_USER_SETTINGS = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
_tuned: bool | None = None


def tune_for_frames() -> bool:
    """Set glibc's allocator for frame-sized arrays in this process (and the processes it forks).

    Called by the commands that read and write pixels, before their work starts; idempotent.

    Returns
    -------
    bool
        Whether the allocator was set (False off glibc, or when the user set it in the environment).
    """
    global _tuned
    if _tuned is not None:
        return _tuned
    _tuned = False
    if not sys.platform.startswith("linux") or any(name in os.environ for name in _USER_SETTINGS):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _tuned = all(mallopt(parameter, value) == 1 for parameter, value in (
        (M_ARENA_MAX, 1), (M_MMAP_THRESHOLD, MAP_ABOVE_BYTES), (M_TRIM_THRESHOLD, KEEP_FREE_BYTES)))
    return _tuned
