"""The demo's cost: ``obsdb demo`` (36 frames of 512x512, the whole pipeline and the report) in a child.

Prints, per run, the CPU seconds of the child and every process it waited for (``RUSAGE_CHILDREN``)
beside its wall seconds, then the medians, with the date and the load average: on a shared
machine wall time says how much of the cores the demo got, CPU time what its work cost.
Issue 25's target is 8 s of wall on a quiet machine; the demo runs in one process (``--workers 1``;
its render on two threads), so its CPU time is about its wall time there.

Run::

    python benchmarks/demo.py              # 3 runs
    python benchmarks/demo.py --repeat 1
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _children import child_env, obsdb_prefix  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; load average {os.getloadavg()[0]:.2f}; "
          f"{os.cpu_count()} cores; `obsdb demo`, {args.repeat} runs")
    cpus, walls = [], []
    for run in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="obsdb-demo-") as tmp:
            used = resource.getrusage(resource.RUSAGE_CHILDREN)
            before = used.ru_utime + used.ru_stime
            start = time.perf_counter()
            done = subprocess.run([*obsdb_prefix(), "demo", "-o", str(Path(tmp) / "demo")], capture_output=True,
                                  text=True, env=child_env())
            walls.append(time.perf_counter() - start)
            used = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(used.ru_utime + used.ru_stime - before)
        if done.returncode != 0:
            raise SystemExit(f"obsdb demo failed:\n{done.stderr[-2000:]}")
        print(f"run {run + 1}: CPU {cpus[-1]:.2f} s, wall {walls[-1]:.2f} s")
    print(f"median: CPU {statistics.median(cpus):.2f} s, wall {statistics.median(walls):.2f} s; "
          f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
