"""readers.in_thread_ahead: the next batch read in a thread while the last is used, never two at once."""

from __future__ import annotations

import threading
import time

import pytest

from obsdb.catalog.readers import in_thread_ahead


class OneAtATime:
    """A stand-in connection: records the threads that use it and fails if two use it at once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.threads = set()
        self.started = []
        self.calls = []

    def read(self, argument):
        if not self.lock.acquire(blocking=False):
            raise AssertionError("two threads used the connection at once")
        try:
            self.threads.add(threading.get_ident())
            self.started.append(argument)
            time.sleep(0.01)  # long enough for a second call to overlap, were one started
            self.calls.append(argument)
            return [argument] * 3
        finally:
            self.lock.release()


def test_results_come_in_order_and_the_next_is_read_while_the_caller_works():
    connection = OneAtATime()
    seen = []
    for index, result in enumerate(in_thread_ahead(connection.read, range(5))):
        # While the caller holds batch i, the read of batch i + 1 has started (the last has none).
        expected = min(index + 2, 5)
        deadline = time.monotonic() + 10
        while len(connection.started) < expected and time.monotonic() < deadline:
            time.sleep(0.001)
        assert len(connection.started) == expected
        seen.append(result)
    assert seen == [[i] * 3 for i in range(5)]
    assert threading.get_ident() not in connection.threads


def test_an_error_is_raised_where_its_result_would_have_come():
    def read(argument):
        if argument == 2:
            raise ValueError("no such table")
        return argument

    seen = []
    with pytest.raises(ValueError, match="no such table"):
        for result in in_thread_ahead(read, range(5)):
            seen.append(result)
    assert seen == [0, 1]


def test_closing_early_waits_for_the_call_running():
    connection = OneAtATime()
    batches = in_thread_ahead(connection.read, range(10))
    assert next(batches) == [0, 0, 0]
    batches.close()  # the read of batch 1 was running: it ends before close returns
    assert connection.calls == [0, 1]
    assert not connection.lock.locked()


def test_the_arguments_are_all_taken_before_the_first_call():
    order = []

    def arguments():
        for i in range(3):
            order.append(f"argument {i}")
            yield i

    for _ in in_thread_ahead(lambda a: order.append(f"call {a}"), arguments()):
        pass
    assert order[:3] == ["argument 0", "argument 1", "argument 2"]
    assert list(in_thread_ahead(lambda a: a, [])) == []
