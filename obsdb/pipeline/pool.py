"""Worker processes for the pixel work of ingest, align, render and report.

Two process-wide settings for the processes that do pixel work:

Ctrl-C sends SIGINT to the whole process group. If the workers took it too,
each idle one would die with a ``KeyboardInterrupt`` traceback on the user's
terminal. So the workers ignore SIGINT and the parent alone decides: it stops
handing out work, lets the running tasks finish, and its caller reports the
interruption in one line.

Frame-sized buffers: glibc serves every allocation above its mmap threshold
(a few MiB) with a fresh ``mmap`` and returns it on ``free``, so each 16 MiB
frame buffer costs thousands of page faults on first touch, again for every
frame: a quarter of the ingest time of a 2048x2048 frame here
(``benchmarks/ingest.py``). Raising the mmap and trim thresholds lets freed
frames be reused from the heap; the peak memory is unchanged.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator


_MMAP_THRESHOLD = 32 * 2**20
"""glibc's largest accepted mmap threshold on 64-bit (a 2048x2048 float32 frame is 16 MiB)."""
_TRIM_THRESHOLD = 256 * 2**20
"""Free memory kept at the top of the heap before it is given back to the system."""
_ALLOCATOR_TUNED = False


def keep_frame_buffers_in_heap() -> bool:
    """Let glibc reuse freed frame-sized buffers instead of unmapping them (idempotent).

    Returns
    -------
    bool
        Whether the allocator was tuned (False off glibc, e.g. macOS, musl).
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from <malloc.h>
    _ALLOCATOR_TUNED = bool(mallopt(m_mmap_threshold, _MMAP_THRESHOLD)) and bool(
        mallopt(m_trim_threshold, _TRIM_THRESHOLD))
    return _ALLOCATOR_TUNED


def _ignore_interrupts_then(initializer: Callable[..., Any] | None, *initargs: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keep_frame_buffers_in_heap()
    if initializer is not None:
        initializer(*initargs)


def process_pool(workers: int, initializer: Callable[..., Any] | None = None, initargs: tuple = ()):
    """A ``ProcessPoolExecutor`` of ``workers`` processes that ignore SIGINT and reuse frame buffers.

    Parameters
    ----------
    workers : int
        Number of worker processes.
    initializer, initargs
        Optional per-worker set-up, run after SIGINT is ignored.

    Returns
    -------
    concurrent.futures.ProcessPoolExecutor
        Use it as a context manager, or call ``shutdown(cancel_futures=True)``.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork shares the parent's imported modules, which keeps start-up cheap.
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=_ignore_interrupts_then, initargs=(initializer, *initargs))


class DeferredInterrupt:
    """A Ctrl-C noted while a batch is being written, acted on once it is committed."""

    def __init__(self) -> None:
        self.requested = False

    def raise_if_requested(self) -> None:
        """Raise ``KeyboardInterrupt`` if Ctrl-C came since the last check."""
        if self.requested:
            raise KeyboardInterrupt


@contextmanager
def deferred_interrupt() -> Iterator[DeferredInterrupt]:
    """Hold Ctrl-C until the caller reaches a safe point.

    A ``KeyboardInterrupt`` raised inside a database commit can surface from
    the driver or the connection pool's clean-up with its own traceback. So the
    first SIGINT only sets ``requested``; the caller commits what is complete
    and calls :meth:`DeferredInterrupt.raise_if_requested`. A second Ctrl-C
    interrupts at once. Outside the main thread, nothing is changed.

    Yields
    ------
    DeferredInterrupt
    """
    state = DeferredInterrupt()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def note(signum, frame):
        if state.requested:
            raise KeyboardInterrupt
        state.requested = True

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)
