"""Where the per-frame work runs: in this process, in a local pool, or on a Dask cluster.

Every step's pixel work is a pure function of one frame (read, stats, stars
and metrics in ingest; registration in align; resampling in render; the
thumbnail in report).  An executor maps such a function over the frames and
hands the results back, in completion order, to the coordinating process,
which alone writes to the catalog, in batches.  The three executors give the
same results; they differ in where the work runs:

``serial``
    In this process, one frame after the other.  The render, whose work
    releases the GIL, puts its frames on two threads of this process instead
    (:class:`ThreadExecutor`, :func:`in_process_threads`) unless
    ``--executor serial`` was asked for by name.
``processes``
    A pool of local worker processes (:mod:`obsdb.pipeline.pool`): a worker
    that dies costs only the frame it held, the rest go to a new pool.
``dask``
    A ``dask.distributed`` cluster: the scheduler named by ``--scheduler``
    (or ``OBSDB_DASK_SCHEDULER``), else a LocalCluster of ``--workers``
    processes.  A task lost with a dying worker is run again elsewhere; the
    workers read the frames from the paths the catalog holds, so they must
    see the same filesystem (a shared disk on a cluster).
"""

from __future__ import annotations

import contextlib

import os
from typing import Any, Callable, Iterator

EXECUTORS = ("serial", "processes", "dask")

DASK_RETRIES = 2
"""Times a Dask task that raised is run again (a worker that died is handled by the scheduler itself)."""


class TaskFailed(Exception):
    """A task that could not be run (its worker died once too often, or the cluster went away)."""


class Executor:
    """Maps a picklable function over items and yields ``(item, result)`` as results arrive."""

    kind = "serial"
    workers = 1

    def map(self, function: Callable[..., Any], items: list, args: tuple = ()) -> Iterator[tuple[Any, Any]]:
        """``function(item, *args)`` for every item.

        Yields
        ------
        (item, result)
            In completion order; ``result`` is what ``function`` returned, or a
            :class:`TaskFailed` (or :class:`obsdb.pipeline.pool.ChildCrashed`) when the
            task could not be run.  An exception ``function`` raised propagates.
        """
        for item in items:
            yield item, function(item, *args)

    def close(self) -> None:
        """Release the workers (a no-op for the serial executor)."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> str:
        """One line for the log: which executor, how many workers."""
        return self.kind if self.workers <= 1 else f"{self.kind} ({self.workers} workers)"


class SerialExecutor(Executor):
    """Everything in this process.

    Parameters
    ----------
    chosen : bool
        The user asked for it by name (``--executor serial``): a step then keeps
        to one thread too (see :func:`in_process_threads`).
    """

    def __init__(self, chosen: bool = False):
        self.chosen = chosen


class ThreadExecutor(Executor):
    """Frames on a few threads of this process, results handed back in the items' order.

    For a step whose per-frame work spends its time where the GIL is released:
    numpy's ufuncs and partitions, ``scipy.ndimage``'s filters, hashing, zlib
    and file writes (the render's resampling and writing).  At most ``threads``
    frames are in flight; an exception a task raised propagates, and the
    frames not started by then are not started.
    """

    kind = "threads"

    def __init__(self, threads: int):
        self.workers = threads

    def map(self, function, items, args=()):
        from concurrent.futures import ThreadPoolExecutor

        items = list(items)
        if self.workers <= 1 or len(items) <= 1:
            yield from Executor.map(self, function, items, args)
            return
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="obsdb-frame")
        try:
            futures = [pool.submit(function, item, *args) for item in items]
            for i, (item, future) in enumerate(zip(items, futures)):
                try:
                    result = future.result()
                except BaseException:
                    # An error or Ctrl-C: the frames in flight finish and the others never start.  Those
                    # that finished are handed back before the error goes on, so that the caller records
                    # every file that was written.
                    pool.shutdown(wait=True, cancel_futures=True)
                    for later_item, later in zip(items[i + 1:], futures[i + 1:]):
                        if later.done() and not later.cancelled() and later.exception() is None:
                            yield later_item, later.result()
                    raise
                yield item, result
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


IN_PROCESS_THREADS = 2
"""Threads a step that supports them uses in this process when no executor was chosen (at most the cores)."""


def in_process_threads(executor: Executor | None, workers: int) -> Executor:
    """The executor for a step whose per-frame work releases the GIL (the render).

    The caller's executor when it is a pool, a cluster or a serial one asked for
    by name; otherwise (``-j 1``, the default) a :class:`ThreadExecutor` of
    :data:`IN_PROCESS_THREADS` threads, at most one per core.
    """
    if executor is not None and (executor.kind != "serial" or getattr(executor, "chosen", False)):
        return executor
    if executor is None and workers > 1:
        return ProcessExecutor(workers)
    return ThreadExecutor(max(1, min(IN_PROCESS_THREADS, os.cpu_count() or 1)))


class ProcessExecutor(Executor):
    """A local pool of ``workers`` processes that survives a worker's death."""

    kind = "processes"

    def __init__(self, workers: int):
        self.workers = workers

    def map(self, function, items, args=()):
        from obsdb.pipeline.pool import resilient_map

        if self.workers <= 1 or len(items) <= 1:
            yield from Executor.map(self, function, items, args)
            return
        yield from resilient_map(function, list(items), self.workers, args=args)


def _call(item, function, args):
    # A Dask worker's death is contained by the scheduler (the task runs again elsewhere, and fails as
    # KilledWorker after that): per-frame forks for containment would only cost time here.
    import obsdb.pipeline.pool as pool

    pool._IN_POOL_WORKER = True
    return function(item, *args)


class DaskExecutor(Executor):
    """A ``dask.distributed`` cluster: the one at ``scheduler``, else a LocalCluster of ``workers``.

    Parameters
    ----------
    scheduler : str, optional
        ``tcp://HOST:PORT`` of a running scheduler (e.g. one that ``dask-jobqueue``
        started on SLURM or PBS).
    workers : int
        Worker processes of the LocalCluster made when no scheduler is given.
    """

    kind = "dask"

    def __init__(self, scheduler: str | None = None, workers: int = 2):
        from obsdb.errors import ObsdbError

        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ObsdbError("--executor dask needs dask.distributed: pip install 'obsdb[dask]'") from None
        self.cluster = None
        try:
            if scheduler:
                self.client = Client(scheduler, timeout="10s")
            else:
                # One thread per worker process: the work holds the GIL (numpy and sep release it only in part).
                # Started with SIGINT ignored, which the worker processes inherit: Ctrl-C reaches the whole
                # process group, and only this process must act on it (cancel, commit, one line), as the
                # process pool's workers do, not every worker with a traceback of its own.
                with _sigint_ignored():
                    self.cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                                                dashboard_address=None, silence_logs=40)
                self.client = Client(self.cluster)
        except OSError as exc:
            self.close()
            raise ObsdbError(f"--scheduler {scheduler}: cannot reach the Dask scheduler ({exc})") from None
        self.workers = len(self.client.scheduler_info().get("workers", {})) or workers
        self.scheduler = scheduler or self.client.scheduler.address

    def map(self, function, items, args=()):
        from distributed import as_completed

        items = list(items)
        if not items:
            return
        futures = self.client.map(_call, items, function=function, args=args, pure=False, retries=DASK_RETRIES)
        index = {future.key: i for i, future in enumerate(futures)}
        try:
            for future in as_completed(futures):
                item = items[index[future.key]]
                try:
                    result = future.result()
                except Exception as exc:  # noqa: BLE001 - the cluster's failures are the frame's, not the run's
                    if type(exc).__name__ in ("KilledWorker", "CommClosedError", "CancelledError", "TimeoutError"):
                        yield item, TaskFailed(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                        continue
                    raise
                yield item, result
        finally:
            # Ctrl-C, or an error in the caller: nothing keeps running on the cluster for us.
            self.client.cancel([f for f in futures if not f.done()])

    def close(self) -> None:
        client, cluster = getattr(self, "client", None), getattr(self, "cluster", None)
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    def describe(self) -> str:
        return f"dask ({self.workers} workers at {self.scheduler})"


@contextlib.contextmanager
def _sigint_ignored():
    """SIGINT ignored in this process while the block runs (processes started meanwhile keep ignoring it)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield                       # signal handlers can only be changed from the main thread
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def make_executor(kind: str | None = None, *, workers: int = 1, scheduler: str | None = None) -> Executor:
    """The executor a command asked for.

    Parameters
    ----------
    kind : {"serial", "processes", "dask"}, optional
        Default: ``dask`` when a scheduler is named (``scheduler`` or
        ``OBSDB_DASK_SCHEDULER``), else ``processes`` for more than one worker, else ``serial``.
    workers : int
        Local worker processes (the pool, or the LocalCluster).
    scheduler : str, optional
        A Dask scheduler address.
    """
    from obsdb.errors import ObsdbError
    from obsdb.text import not_one_of

    scheduler = scheduler or os.environ.get("OBSDB_DASK_SCHEDULER") or None
    kind_given = kind is not None
    if kind is None:
        kind = "dask" if scheduler else ("processes" if workers > 1 else "serial")
    if kind not in EXECUTORS:
        raise ObsdbError(not_one_of("--executor", kind, EXECUTORS))
    if workers < 1:
        raise ObsdbError(f"--workers {workers}: at least 1")
    if kind == "dask":
        return DaskExecutor(scheduler, workers=workers)
    if scheduler and kind != "dask":
        raise ObsdbError(f"--scheduler {scheduler}: only for --executor dask")
    return ProcessExecutor(workers) if kind == "processes" else SerialExecutor(chosen=kind_given)


def executor_for(executor: Executor | None, workers: int) -> Executor:
    """The caller's executor, or the local one ``workers`` asks for (the Python API's default)."""
    if executor is not None:
        return executor
    return ProcessExecutor(workers) if workers > 1 else SerialExecutor()
