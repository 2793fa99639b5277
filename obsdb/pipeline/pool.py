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


def die_with_parent(parent_pid: int) -> None:
    """End this worker when the process that started it dies, even by ``kill -9``.

    A worker whose parent is gone would otherwise wait on its task pipe for
    ever, holding its memory (and the terminal's output pipe open).  On Linux
    the kernel sends SIGKILL (``prctl(PR_SET_PDEATHSIG)``); elsewhere a thread
    checks the parent every second.
    """
    import sys
    import time

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            if libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0) == 0:
                if os.getppid() != parent_pid:  # the parent died before the request took effect
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="obsdb-parent-watch", daemon=True).start()


_IN_POOL_WORKER = False


def in_pool_worker() -> bool:
    """Whether this process is a worker of :func:`process_pool`: its death is already contained
    (:func:`resilient_map` runs the files it held again, each in a child of its own)."""
    return _IN_POOL_WORKER


def _ignore_interrupts_then(parent_pid: int, initializer: Callable[..., Any] | None, *initargs: Any) -> None:
    import faulthandler

    global _IN_POOL_WORKER
    _IN_POOL_WORKER = True
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A worker's death is the parent's to report (resilient_map), in one line.
    faulthandler.disable()
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
                               initializer=_ignore_interrupts_then,
                               initargs=(os.getpid(), initializer, *initargs))


class ChildCrashed(Exception):
    """A contained call's process died (a signal, an abrupt exit or the time limit) before it answered."""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def run_contained(function: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
    """``function(*args)`` in a forked child, so that a crash of C code costs only this call.

    A C library that dies on a hostile input (``sep.extract`` with SIGSEGV on a frame with random
    bytes in its data) would otherwise take the whole process with it: a serial ingest, or a pool
    worker and with it the pool.  With ``fork`` the child shares the parent's pages (the image is
    not copied) and its imported modules; only the result travels back, pickled through a pipe.
    The child ignores SIGINT like the pool's workers: the parent decides what Ctrl-C stops.
    Where ``fork`` is missing (Windows), the call runs in this process.

    Parameters
    ----------
    function : callable
        Called in the child; its result must be picklable.
    *args
        Its arguments (inherited by the fork, never pickled).
    timeout : float, optional
        Seconds after which the child is killed (a C loop that never ends).

    Returns
    -------
    object
        What ``function`` returned.

    Raises
    ------
    ChildCrashed
        When the child died before answering; the message names the signal or exit status.
    Exception
        What ``function`` raised, raised again here.
    """
    import pickle
    import select
    import time

    if not hasattr(os, "fork"):
        return function(*args)
    read_end, write_end = os.pipe()
    parent_pid = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's code
        status = 0
        try:
            os.close(read_end)
            die_with_parent(parent_pid)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            # The parent reports a death in one line; a traceback dump from here would repeat it.
            import faulthandler

            faulthandler.disable()
            try:
                answer = (True, function(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the parent, which raises it
                answer = (False, exc)
            try:
                payload = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # noqa: BLE001 - an unpicklable exception still says what it was
                payload = pickle.dumps((False, RuntimeError(f"{type(answer[1]).__name__}: {answer[1]}")))
            view = memoryview(payload)
            while view:
                view = view[os.write(write_end, view):]
        except BaseException:  # noqa: BLE001 - the parent sees a child that died without an answer
            status = 70
        finally:
            # _exit: no atexit handlers, no flush of stdio buffers copied from the parent.
            os._exit(status)
    os.close(write_end)
    chunks = []
    deadline = None if timeout is None else time.monotonic() + timeout
    timed_out = False
    try:
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([read_end], [], [], wait)
            if not ready:
                timed_out = True
                os.kill(pid, signal.SIGKILL)
                break
            chunk = os.read(read_end, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        raise
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    if timed_out:
        raise ChildCrashed(f"stopped after {timeout:.0f} s")
    try:
        ok, value = pickle.loads(b"".join(chunks))
    except Exception:  # noqa: BLE001 - no answer, or one cut short by the child's death
        if os.WIFSIGNALED(status):
            raise ChildCrashed(f"killed by {_signal_name(os.WTERMSIG(status))}") from None
        raise ChildCrashed(f"exited with status {os.waitstatus_to_exitcode(status)} without an answer") from None
    if ok:
        return value
    raise value


def resilient_map(function: Callable[..., Any], items: list, workers: int,
                  args: tuple = (), timeout: Callable[[Any], float] | None = None) -> Iterator[tuple[Any, Any]]:
    """``function(item, *args)`` for each item in a pool of ``workers``, surviving workers that die.

    A worker killed by a signal (a C library's crash, the kernel's OOM killer) breaks a
    ``ProcessPoolExecutor``: every unfinished task fails with ``BrokenProcessPool``.  Then the
    tasks the dead worker may have held are run again one at a time, each in a forked child of
    its own (:func:`run_contained`), so the one that kills its process again costs only itself,
    and a new pool takes the rest.  The pool hands tasks out in order, so at most ``2 * workers +
    1`` unfinished tasks (the running ones and the call queue's) can have been in flight.

    Parameters
    ----------
    function : callable
        Run in the workers; ``function(item, *args)``.
    items : list
        Picklable inputs.
    workers : int
        Pool size.
    args : tuple
        Further arguments, the same for each item.
    timeout : callable, optional
        ``timeout(item)``: seconds one item may take (with one worker only, which runs the items in
        order).  A worker that overruns it is killed, and the item is run again in a child of its
        own under the same limit, ending as a :class:`ChildCrashed` when it overruns again (a C
        loop that never ends must not hang a serial ingest).

    Yields
    ------
    (item, result)
        In completion order; ``result`` is what ``function`` returned, or the :class:`ChildCrashed`
        of the item whose process died twice.  Other exceptions of ``function`` propagate.
    """
    from concurrent.futures import as_completed
    from concurrent.futures.process import BrokenProcessPool

    todo = list(items)
    while todo:
        executor = process_pool(workers)
        pending: dict[int, Any] = {}
        handed: set[int] = set()
        broken = False
        try:
            try:
                for i, item in enumerate(todo):
                    pending[i] = executor.submit(function, item, *args)
            except BrokenProcessPool:
                # A worker died while the items were still being handed to the pool (a crash on
                # one of the first): the rest were never submitted, and are run again below.
                broken = True
            owner = {future: i for i, future in pending.items()}
            # One worker runs the items in order: waiting for each in turn times each one.
            in_order = timeout is not None and workers == 1
            for future in (() if broken else (pending[i] for i in range(len(todo))) if in_order
                           else as_completed(owner)):
                index = owner[future]
                try:
                    result = future.result(timeout=timeout(todo[index]) if in_order else None)
                except BrokenProcessPool:
                    broken = True
                    break
                except TimeoutError:
                    _kill_workers(executor)
                    broken = True
                    break
                # A handed result is the caller's: no future of ours keeps it (500 measurements of
                # 2048 px frames held to the end were 16 MB of the parent's memory).
                del pending[index], owner[future]
                handed.add(index)
                future = None
                yield todo[index], result
                result = None
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
        if not broken:
            return
        unfinished = []
        for i, item in enumerate(todo):
            if i in handed:
                continue
            future = pending.get(i)  # None: never submitted
            if future is not None and future.done() and not future.cancelled() and future.exception() is None:
                yield item, future.result()  # finished before the pool broke
            else:
                unfinished.append(item)
        suspects, todo = unfinished[:2 * workers + 1], unfinished[2 * workers + 1:]
        for item in suspects:
            try:
                yield item, run_contained(function, item, *args, timeout=timeout(item) if timeout else None)
            except ChildCrashed as crash:
                yield item, crash


def _kill_workers(executor) -> None:
    """SIGKILL the processes of a ``ProcessPoolExecutor`` (one is stuck): the pool breaks, and
    :func:`resilient_map` runs the unfinished items again."""
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        try:
            process.kill()
        except (OSError, AttributeError):
            pass


def serial_worker_map(function: Callable[..., Any], items: list, args: tuple = (),
                      timeout: Callable[[Any], float] | None = None) -> Iterator[tuple[Any, Any]]:
    """``function(item, *args)`` for each item, in order, in one long-lived worker process.

    Serial work on hostile files needs its crashes contained: a fork per item did it, at 40-60 ms
    of CPU per 2048 x 2048 frame (the child's page-table copies and faults).  One worker process
    (:func:`resilient_map` with one worker) contains them as well: a crash costs the item that
    caused it (run again in a child of its own), a new worker takes the rest.  Where ``fork`` is
    missing, or in a daemonic process, the items run in this process.
    """
    import multiprocessing

    if not hasattr(os, "fork") or multiprocessing.current_process().daemon:
        # No fork, or a daemonic process (which may not start a pool): in this process, the
        # detection still contained per frame where fork exists (run_contained).
        for item in items:
            yield item, function(item, *args)
        return
    yield from resilient_map(function, list(items), 1, args=args, timeout=timeout)


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
