"""Worker processes for the pixel work of ingest, align, render and report.

Ctrl-C sends SIGINT to the whole process group. If the workers took it too,
each idle one would die with a ``KeyboardInterrupt`` traceback on the user's
terminal. So the workers ignore SIGINT and the parent alone decides: it stops
handing out work, lets the running tasks finish, and its caller reports the
interruption in one line (:func:`deferred_interrupt` holds it until the
catalog writes in hand are committed).
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator


def _ignore_interrupts_then(initializer: Callable[..., Any] | None, *initargs: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)


def process_pool(workers: int, initializer: Callable[..., Any] | None = None, initargs: tuple = ()):
    """A ``ProcessPoolExecutor`` of ``workers`` processes that ignore SIGINT.

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
