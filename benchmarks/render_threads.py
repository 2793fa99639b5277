"""`obsdb render` as a command on one thread, on two with glibc's default allocator, and on two as shipped.

Issue 25 asks for render <= 250 ms a 2048^2 frame and align + render within Siril's wall time.  With
one worker the render puts its frames on two threads of its process, and every command on pixels
sets glibc's allocator for frame-sized arrays (``obsdb.pipeline.allocator``).  This script measures
what each of the two does, as a user runs the command:

``serial``
    ``obsdb render ... --executor serial``: one thread (the allocator set).
``threads, glibc defaults``
    ``obsdb render ...`` with ``MALLOC_ARENA_MAX=8`` in the environment: a user's own setting, which
    obsdb leaves alone, so the allocator keeps glibc's defaults but for that one (8 arenas is about
    the default on two cores).
``threads``
    ``obsdb render ...``, as shipped.

Method.  One night is simulated (``obsdb simulate``, 21 frames, seed 13, bands B, V, R) and taken
through ``init``, ``ingest``, ``qa`` and ``align --band B`` once (not timed).  Each round renders
the band with ``--stack median`` once per mode, in an order rotated by the round, each on a fresh
copy of the aligned catalog into a fresh folder.  For each run: wall time, the child's user and
system CPU, its minor page faults and its peak resident set (``os.wait4``: that child's own).  The outputs of the three modes are compared byte for byte.

Run::

    python benchmarks/render_threads.py --size 2048 --repeat 5
    python benchmarks/render_threads.py --size 1024 --repeat 5
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _children import installed_env, machine_line, obsdb_prefix  # noqa: E402

MODES = {
    "serial": ({}, ["--executor", "serial"]),
    "threads, glibc defaults": ({"MALLOC_ARENA_MAX": "8"}, []),
    "threads": ({}, []),
}


def obsdb(db: Path, *args: str, env: dict | None = None):
    """Run one obsdb command; its own resource usage (``os.wait4``: this child's, not all children's)."""
    environment = installed_env() | (env or {})
    with tempfile.TemporaryFile("w+") as errors:
        child = subprocess.Popen([*obsdb_prefix(), "--db", str(db), *args], stdout=subprocess.DEVNULL,
                                 stderr=errors, env=environment, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode not in (0, 3):
            errors.seek(0)
            raise SystemExit(f"obsdb {' '.join(args)}: exit {child.returncode}: {errors.read().strip()[-500:]}")
    return usage


def timed_render(base: Path, work: Path, band: str, mode: str) -> dict:
    env, extra = MODES[mode]
    db, out = work / "catalog.sqlite", work / "out"
    shutil.copyfile(base, db)
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    usage = obsdb(db, "render", "--out", str(out), "--band", band, "--stack", "median", *extra, env=env)
    wall = time.perf_counter() - start
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.fits"))}
    return {"wall": wall, "user": usage.ru_utime, "sys": usage.ru_stime, "faults": usage.ru_minflt,
            "peak_mb": usage.ru_maxrss / 1024, "digests": digests}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--frames", type=int, default=21)
    parser.add_argument("--band", default="B")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="obsdb-render-threads-") as tmp:
        tmp = Path(tmp)
        night, base = tmp / "night", tmp / "aligned.sqlite"
        obsdb(base, "simulate", str(night), "--frames", str(args.frames), "--size", str(args.size), "--seed", "13")
        obsdb(base, "init")
        obsdb(base, "ingest", str(night))
        obsdb(base, "qa")
        obsdb(base, "align", "--band", args.band)
        print(f"{machine_line()}; {args.frames} frames of {args.size}^2, band {args.band}, "
              f"render --stack median as a command, {args.repeat} rounds, modes rotated")
        timed_render(base, tmp, args.band, "threads")  # warm-up: .pyc files, page cache
        runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
        order = list(MODES)
        for round_ in range(args.repeat):
            for mode in order[round_ % len(order):] + order[: round_ % len(order)]:
                runs[mode].append(timed_render(base, tmp, args.band, mode))
        frames = len(runs["threads"][0]["digests"]) - 1  # less the stack
        print(f"{'mode':<26}{'wall s':>8}{'user s':>8}{'sys s':>8}{'faults':>9}{'peak MB':>9}"
              f"{'wall ms/frame':>15}{'wall / serial':>15}")
        serial = statistics.median(r["wall"] for r in runs["serial"])
        for mode, results in runs.items():
            median = {key: statistics.median(r[key] for r in results)
                      for key in ("wall", "user", "sys", "faults", "peak_mb")}
            print(f"{mode:<26}{median['wall']:>8.2f}{median['user']:>8.2f}{median['sys']:>8.2f}"
                  f"{median['faults']:>9.0f}{median['peak_mb']:>9.0f}{1000 * median['wall'] / frames:>15.0f}"
                  f"{median['wall'] / serial:>15.2f}")
        reference = runs["serial"][0]["digests"]
        same = all(r["digests"] == reference for results in runs.values() for r in results)
        print(f"outputs ({len(reference)} files) of every run: {'byte-identical' if same else 'DIFFERENT'}")
        print("wall per round, threads / serial: "
              + " ".join(f"{t['wall'] / s['wall']:.2f}" for t, s in zip(runs["threads"], runs["serial"])))
        print(f"measured until {machine_line()}")


if __name__ == "__main__":
    main()
