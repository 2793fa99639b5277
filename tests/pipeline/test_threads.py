"""The render's threads: which executor a step gets, results in order, errors after the finished frames."""

from __future__ import annotations

import threading
import time

import pytest

from obsdb.pipeline.executors import (ProcessExecutor, SerialExecutor, ThreadExecutor, in_process_threads,
                                      make_executor)


def test_the_default_in_process_executor_is_threads_and_a_chosen_one_is_kept():
    default = make_executor(None, workers=1)
    assert isinstance(in_process_threads(default, 1), ThreadExecutor)
    assert isinstance(in_process_threads(None, 1), ThreadExecutor)
    chosen = make_executor("serial", workers=1)
    assert in_process_threads(chosen, 1) is chosen
    pool = make_executor(None, workers=3)
    assert in_process_threads(pool, 3) is pool
    assert isinstance(in_process_threads(None, 3), ProcessExecutor)


def _slow_square(item, delay):
    time.sleep(delay * (3 - item % 3))  # later items finish first
    return item * item, threading.current_thread().name


def test_threads_hand_back_every_result_in_the_items_order_from_two_threads():
    pairs = list(ThreadExecutor(2).map(_slow_square, list(range(6)), args=(0.01,)))
    assert [item for item, _ in pairs] == list(range(6))
    assert [result[0] for _, result in pairs] == [i * i for i in range(6)]
    assert len({result[1] for _, result in pairs}) == 2


def test_an_error_comes_after_the_frames_that_finished_and_stops_the_rest():
    started, gate = [], threading.Event()

    def work(item):
        started.append(item)
        if item == 0:
            gate.wait(5)  # item 1 finishes while item 0 is still running
            raise OSError(5, "Input/output error")
        if item == 1:
            gate.set()
        else:
            time.sleep(0.2)  # in flight when the error arrives
        return item

    handed_back = []
    with pytest.raises(OSError):
        for item, result in ThreadExecutor(2).map(work, list(range(10))):
            handed_back.append(result)
    # Those that finished before the error went on are handed back (the caller records their files);
    # the queue behind them was cancelled.
    assert handed_back[:1] == [1] and 0 not in handed_back
    assert len(started) < 10


def test_serial_executor_stays_serial():
    assert list(SerialExecutor(chosen=True).map(lambda x: x + 1, [1, 2])) == [(1, 2), (2, 3)]


def test_render_threads_reading_the_umask_leave_it_as_it_was():
    import os
    from concurrent.futures import ThreadPoolExecutor

    from obsdb.imaging.fitsio.write import _umask

    import sys

    before, interval = os.umask(0o027), sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch between any two bytecodes: the race, if any, shows
    try:
        with ThreadPoolExecutor(4) as pool:
            seen = set(pool.map(lambda _: _umask(), range(20000)))
        assert seen == {0o027}  # never the temporary value another thread had set
        assert os.umask(0o027) == 0o027
    finally:
        sys.setswitchinterval(interval)
        os.umask(before)
