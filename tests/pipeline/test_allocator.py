"""The allocator set for frame-sized arrays: freed frames' pages reused, the user's own settings kept."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")

SCRIPT = textwrap.dedent("""
    import resource, sys, threading
    import numpy as np
    from obsdb.pipeline.allocator import tune_for_frames
    tuned = tune_for_frames() if sys.argv[1] == "tune" else False
    assert sys.argv[1] != "tune" or tune_for_frames() == tuned  # idempotent
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    def frames():  # as the render's threads do: a frame, its padded copy, a float64 working copy
        for _ in range(10):
            frame = np.ones((2048, 2048), dtype=np.float32)
            padded = np.pad(frame, 12)
            del frame
            work = padded.astype(np.float64)
            del padded, work
    np.ones((2048, 2048), dtype=np.float32)
    before = faults()
    threads = [threading.Thread(target=frames) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(int(tuned), faults() - before)
""")


def _run(mode: str, **env) -> tuple[int, int]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | env
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True,
                         env=environment)
    tuned, faults = out.stdout.split()
    return int(tuned), int(faults)


def test_frames_reuse_the_last_frames_pages_once_tuned():
    tuned, faults = _run("tune")
    if not tuned:
        pytest.skip("not glibc")
    # Two threads of ten frames each: glibc's defaults map many of their arrays afresh (12,000-14,000
    # pages faulted in on the machine this was written on), the tuned allocator reuses them (2,400-2,700).
    _, untuned = _run("plain")
    assert faults * 2 < untuned, (faults, untuned)


def test_the_users_own_allocator_settings_are_left_alone():
    tuned, _ = _run("tune", MALLOC_ARENA_MAX="4")
    assert tuned == 0
