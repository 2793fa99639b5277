"""Ingest speed and memory against the floor and against what users do today.

On the same simulated float32 frames, per frame (median over ``--repeat``
runs, each obsdb run into a fresh catalog, each measurement in its own
subprocess):

- ``obsdb stats``: :func:`obsdb.pipeline.ingest.ingest` with
  ``IngestConfig(measure_quality=False)`` (header + pixel statistics), with
  1 and with 2 workers;
- ``obsdb quality``: the same with the default config (star and PSF
  metrics too), 1 and 2 workers;
- ``read only``: ``Path.read_bytes`` of every file;
- ``floor``: ``read_bytes`` plus one numpy pass (``np.frombuffer`` on the
  data part, one float64 ``sum``);
- ``floor + sha256``: the floor plus the SHA-256 of the bytes, which obsdb
  computes for every file (its cost is not in the floor above);
- ``(b) today``: ``ccdproc.ImageFileCollection(folder).summary`` plus, per
  frame, ``astropy.io.fits.getdata`` and ``astropy.stats.sigma_clipped_stats``.

Times: ``s/frame/worker`` is wall time x workers / frames (the cost of one
frame on one worker), ``wall/frame`` is wall time / frames, ``CPU ms/frame``
the CPU time (user + system) of the measuring process and of the pool's
workers it waited for, per frame.  Catalog
creation (Alembic) is outside the timed section; discovery, reading,
measuring and the catalog writes are inside.

Peak extra memory: in each subprocess, after imports (and after opening the
catalog), ``VmRSS`` is taken as the baseline and ``5`` is written to
``/proc/self/clear_refs`` (which resets ``VmHWM``); ``VmHWM - baseline``
after the run is the peak extra memory, in frames of ``size^2 x 4`` bytes.
With 2 workers the pool processes are forked children, whose ``VmHWM``
cannot be reset from here (it starts at the parent's peak, like
``ru_maxrss``), so memory is given for the 1-worker runs, where the one
process is the worker.

Page cache: the frames are read once before any timing, so every timed read
is from the page cache (said in the output).

Run::

    python benchmarks/ingest.py                # 50 frames of 2048x2048, 3 repeats
    python benchmarks/ingest.py --frames 20 --size 1024 --repeat 1 --keep
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _children import process_cpu  # noqa: E402 - benchmarks/ is on sys.path when run

TARGET_MS_PER_FRAME = 15.0
TARGET_SPEEDUP_VS_TODAY = 20.0
TARGET_PEAK_FRAMES = 3.0

KINDS = {
    # name: (label, workers)
    "obsdb-stats-1": ("obsdb header+stats, 1 worker", 1),
    "obsdb-stats-2": ("obsdb header+stats, 2 workers", 2),
    "obsdb-quality-1": ("obsdb with quality, 1 worker", 1),
    "obsdb-quality-2": ("obsdb with quality, 2 workers", 2),
    "read": ("read only (read_bytes)", 1),
    "floor": ("floor: read + one numpy pass", 1),
    "floor-sha": ("floor + sha256", 1),
    "today": ("(b) ImageFileCollection + sigma_clipped_stats", 1),
}


# --------------------------------------------------------------------------- child side

def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _data_offset(raw: bytes) -> int:
    """Byte offset of the primary data: the end of the 2880-byte block holding END."""
    for start in range(0, len(raw), 80):
        if raw[start:start + 8] == b"END     ":
            return (start // 2880 + 1) * 2880
    raise ValueError("no END card")


def _fits_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == ".fits")


def child(kind: str, folder: Path, db: Path | None) -> dict:
    """Run one measurement in this (fresh) process and return its numbers."""
    import warnings

    import numpy as np

    files = _fits_files(folder)
    catalog = None
    if kind.startswith("obsdb"):
        # Import everything the run uses, so imports are not counted as its memory.
        import astropy.io.fits  # noqa: F401

        import obsdb.catalog.writes  # noqa: F401
        import obsdb.imaging.fitsio  # noqa: F401
        import obsdb.imaging.header  # noqa: F401
        import obsdb.imaging.stars  # noqa: F401
        import obsdb.imaging.stats  # noqa: F401
        import obsdb.pipeline.metrics  # noqa: F401
        from obsdb.catalog.db import database_url, upgrade
        from obsdb.api import Catalog
        from obsdb.config import IngestConfig

        upgrade(database_url(str(db)))
        catalog = Catalog.open(str(db))
        config = IngestConfig(measure_quality=kind.startswith("obsdb-quality"))
        workers = KINDS[kind][1]

        def run():
            report = catalog.ingest([folder], workers=workers, config=config, user="bench")
            if report.failed or len(report.added) != len(files):
                raise SystemExit(f"ingest failed: {report.failed[:3]}")
    elif kind in ("read", "floor", "floor-sha"):
        import hashlib

        def run():
            for path in files:
                raw = path.read_bytes()
                if kind == "read":
                    del raw
                    continue
                if kind == "floor-sha":
                    hashlib.sha256(raw).hexdigest()
                offset = _data_offset(raw)
                count = (len(raw) - offset) // 4
                # Stored big-endian float32; trailing block padding is zeros.
                float(np.frombuffer(raw, dtype=">f4", count=count, offset=offset).sum(dtype=np.float64))
                del raw  # free before the next read, as obsdb does
    elif kind == "today":
        from astropy.io import fits
        from astropy.stats import sigma_clipped_stats
        from ccdproc import ImageFileCollection

        def run():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                summary = ImageFileCollection(str(folder)).summary
                assert len(summary) == len(files)
                for path in files:
                    data = fits.getdata(path)
                    sigma_clipped_stats(data)
    else:
        raise SystemExit(f"unknown kind {kind}")

    baseline = _status_kb("VmRSS")
    reset = _reset_peak()
    start, cpu = time.perf_counter(), process_cpu()
    run()
    wall, cpu = time.perf_counter() - start, process_cpu() - cpu
    peak = _status_kb("VmHWM")
    if catalog is not None:
        catalog.close()
    extra_kb = (peak - baseline) if (reset and peak is not None and baseline is not None) else None
    return {"kind": kind, "wall": wall, "cpu": cpu, "frames": len(files), "extra_kb": extra_kb}



# --------------------------------------------------------------------------- parent side

def measure(kind: str, folder: Path, work: Path, index: int) -> dict:
    db = work / f"catalog-{kind}-{index}.sqlite"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--folder", str(folder),
           "--db", str(db)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{done.stdout}\n{done.stderr}")
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--only", nargs="*", choices=sorted(KINDS), help="measure only these")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(child(args.child, Path(args.folder), Path(args.db) if args.db else None)))
        return 0

    import astropy
    import numpy as np

    from obsdb.simulate import simulate_night

    work = Path(tempfile.mkdtemp(prefix="obsdb-bench-ingest-"))
    folder = work / "frames"
    try:
        start = time.perf_counter()
        simulate_night(folder, seed=args.seed, size=args.size, n_frames=args.frames)
        files = _fits_files(folder)
        frame_mib = args.size * args.size * 4 / 2**20
        print(f"{len(files)} frames of {args.size}x{args.size} float32 ({frame_mib:.0f} MiB each) "
              f"simulated in {time.perf_counter() - start:.1f} s in {folder}")
        print(f"python {sys.version.split()[0]}, numpy {np.__version__}, astropy {astropy.__version__}, "
              f"{os.cpu_count()} CPUs; median of {args.repeat} repeat(s), each in a fresh subprocess "
              f"(obsdb: fresh catalog)")
        start = time.perf_counter()
        for path in files:
            path.read_bytes()
        print(f"page cache: one warm-up read pass over all files before timing "
              f"({time.perf_counter() - start:.2f} s); every timed read is from the cache")

        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
              "(other processes on the machine make the times noisy)")
        kinds = args.only or list(KINDS)
        results: dict[str, list[dict]] = {kind: [] for kind in kinds}
        for index in range(args.repeat):
            for kind in kinds:
                results[kind].append(measure(kind, folder, work, index))

        rows = {}
        for kind in kinds:
            runs = results[kind]
            workers = KINDS[kind][1]
            wall = statistics.median(r["wall"] for r in runs) / len(files)
            cpu = statistics.median(r["cpu"] for r in runs) / len(files)
            extras = [r["extra_kb"] for r in runs if r["extra_kb"] is not None]
            extra = statistics.median(extras) / 1024 / frame_mib if extras and workers == 1 else None
            rows[kind] = (wall * workers, wall, extra, cpu)

        print()
        print(f"{'':48s} {'ms/frame/worker':>15s} {'wall ms/frame':>13s} {'CPU ms/frame':>12s} "
              f"{'peak extra (frames)':>20s}")
        for kind in kinds:
            per_worker, wall, extra, cpu = rows[kind]
            extra_text = f"{extra:.2f}" if extra is not None else "-"
            print(f"{KINDS[kind][0]:48s} {per_worker * 1e3:15.2f} {wall * 1e3:13.2f} {cpu * 1e3:12.2f} "
                  f"{extra_text:>20s}")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print()
        if "obsdb-stats-1" in rows:
            stats_ms = rows["obsdb-stats-1"][0] * 1e3
            verdict = "meets" if stats_ms <= TARGET_MS_PER_FRAME else "MISSES"
            print(f"obsdb header+stats: {stats_ms:.2f} ms/frame/worker ({verdict} target <= "
                  f"{TARGET_MS_PER_FRAME:.0f} ms)")
            if "today" in rows:
                ratio = rows["today"][0] / rows["obsdb-stats-1"][0]
                verdict = "meets" if ratio >= TARGET_SPEEDUP_VS_TODAY else "MISSES"
                print(f"(b) today / obsdb header+stats (1 worker): {ratio:.1f}x ({verdict} target >= "
                      f"{TARGET_SPEEDUP_VS_TODAY:.0f}x)")
            for floor in ("floor", "floor-sha"):
                if floor in rows:
                    print(f"obsdb header+stats (1 worker) / {KINDS[floor][0]}: "
                          f"{rows['obsdb-stats-1'][0] / rows[floor][0]:.1f}x")
            extra = rows["obsdb-stats-1"][2]
            if extra is not None:
                verdict = "meets" if extra <= TARGET_PEAK_FRAMES else "MISSES"
                print(f"obsdb header+stats peak extra memory: {extra:.2f} frames per worker ({verdict} "
                      f"target <= {TARGET_PEAK_FRAMES:.0f})")
        if "obsdb-quality-1" in rows and rows["obsdb-quality-1"][2] is not None:
            print(f"obsdb with quality peak extra memory: {rows['obsdb-quality-1'][2]:.2f} frames per worker")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
