"""The worker pool: workers leave Ctrl-C to the parent, and frame buffers are reused."""

import os
import signal

import pytest

from obsdb.pipeline.pool import process_pool


def _sigint_handler_name(_=None) -> str:
    return {signal.SIG_IGN: "ignore", signal.SIG_DFL: "default"}.get(signal.getsignal(signal.SIGINT), "python")


def _initialised_value(value):
    os.environ["OBSDB_TEST_POOL_INIT"] = value


def _read_initialised_value() -> str:
    return os.environ.get("OBSDB_TEST_POOL_INIT", "")


def test_workers_ignore_sigint_while_the_parent_keeps_its_handler():
    # Whatever the parent has (Python's handler; SIG_IGN when started as a background job).
    before = signal.getsignal(signal.SIGINT)
    with process_pool(2) as pool:
        assert set(pool.map(_sigint_handler_name, range(4))) == {"ignore"}
    assert signal.getsignal(signal.SIGINT) is before


def test_the_callers_initializer_still_runs():
    with process_pool(1, initializer=_initialised_value, initargs=("ready",)) as pool:
        assert pool.submit(_read_initialised_value).result() == "ready"


def test_a_first_ctrl_c_waits_for_the_safe_point_and_a_second_one_does_not():
    from obsdb.pipeline.pool import deferred_interrupt

    before = signal.getsignal(signal.SIGINT)
    with deferred_interrupt() as interrupt:
        os.kill(os.getpid(), signal.SIGINT)
        assert interrupt.requested  # noted, not raised: a commit here would finish
        with pytest.raises(KeyboardInterrupt):
            interrupt.raise_if_requested()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the handler runs between bytecodes
                pass
    assert signal.getsignal(signal.SIGINT) is before


def _pid(_item) -> int:
    return os.getpid()


def _sleep_on_two(item) -> int:
    import time

    if item == 2:
        time.sleep(60)
    return item


def test_serial_work_runs_in_one_long_lived_worker():
    """No fork per item: every item is measured by the same worker process, not this one."""
    from obsdb.pipeline.pool import serial_worker_map

    pids = [pid for _, pid in serial_worker_map(_pid, list(range(6)))]
    assert len(set(pids)) == 1 and pids[0] != os.getpid()


def test_an_item_that_hangs_the_serial_worker_is_stopped_and_the_rest_measured():
    import time

    from obsdb.pipeline.pool import ChildCrashed, serial_worker_map

    start = time.monotonic()
    results = dict(serial_worker_map(_sleep_on_two, [1, 2, 3, 4], timeout=lambda item: 1.0))
    assert time.monotonic() - start < 20
    assert isinstance(results.pop(2), ChildCrashed)
    assert results == {1: 1, 3: 3, 4: 4}


def _square(item: int) -> int:
    return item * item


def test_a_pool_that_breaks_while_items_are_handed_out_loses_none(monkeypatch):
    """A worker can die (a crash on one of the first items) before every item is submitted: then
    ``submit`` itself raises BrokenProcessPool.  The items handed out and those never submitted are
    all measured, each once (the race failed a test on a slow machine)."""
    from concurrent.futures.process import BrokenProcessPool

    from obsdb.pipeline import pool

    real_pool = pool.process_pool
    breaks = []

    class BreaksOnThirdSubmit:
        def __init__(self, workers):
            self._pool, self._submitted = real_pool(workers), 0

        def submit(self, *args, **kwargs):
            self._submitted += 1
            if self._submitted == 3:
                breaks.append(True)
                raise BrokenProcessPool("a worker died")
            return self._pool.submit(*args, **kwargs)

        def shutdown(self, **kwargs):
            self._pool.shutdown(**kwargs)

    monkeypatch.setattr(pool, "process_pool", BreaksOnThirdSubmit)
    results = list(pool.resilient_map(_square, list(range(12)), 2))
    assert breaks and sorted(results) == [(i, i * i) for i in range(12)]
