"""Worker processes for the pixel work of ingest, align, render and report.

Ctrl-C sends SIGINT to the whole process group. If the workers took it too,
each idle one would die with a ``KeyboardInterrupt`` traceback on the user's
terminal. So the workers ignore SIGINT and the parent alone decides: it stops
handing out work, lets the running tasks finish, and its caller reports the
interruption in one line.
"""

from __future__ import annotations

import os
import signal
from typing import Any, Callable


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
