"""``obsdb report`` on nights of several sizes: seconds, CPU and peak memory of the process, per phase.

Does the report's memory or time grow with the frames faster than the frames do?  Each catalog (as
``benchmarks/night.py --keep DIR`` leaves them: ``DIR/night-<frames>-<executor>.sqlite``, ingested, judged
and aligned) is copied, and a child process (``python benchmarks/report.py --child``) runs
``Catalog.report`` on the copy into a fresh folder, with and without thumbnails; the catalogs alternate
within a repetition.  Per run: the wall and CPU seconds (the child and the workers it waited for),
the child's peak resident set (``VmHWM``), and the seconds and peak of its phases: reading the
catalog (``read_snapshot``), drawing the pictures, writing the frame pages and the index.

Run::

    python benchmarks/night.py --frames 50,500 --executors processes --keep /tmp/nights
    python benchmarks/report.py /tmp/nights/night-50-processes.sqlite /tmp/nights/night-500-processes.sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _children import child_env  # noqa: E402
from night import own_peak_kb, reset_peak  # noqa: E402


def child(db: Path, out: Path, thumbnails: bool) -> dict:
    """One report in this process: seconds and own peak per phase (the phases are timed by wrapping
    the report's own functions, so the report runs unchanged)."""
    import obsdb.report.build as build
    from obsdb import Catalog

    phases: dict[str, float] = {}
    peaks: dict[str, int] = {}

    def timed(name, function):
        def wrapper(*args, **kwargs):
            reset_peak()
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                phases[name] = phases.get(name, 0.0) + time.perf_counter() - start
                peaks[name] = max(peaks.get(name, 0), own_peak_kb())
        return wrapper

    build.read_snapshot = timed("read", build.read_snapshot)
    build._draw_pictures = timed("pictures", build._draw_pictures)
    build._write_page = timed("pages", build._write_page)
    build._write_index = timed("index", build._write_index)
    start = time.perf_counter()
    with Catalog.open(db) as catalog:
        result = catalog.report(out, thumbnails=thumbnails)
    wall = time.perf_counter() - start
    used = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return {"wall": wall, "cpu": sum(u.ru_utime + u.ru_stime for u in used), "phases": phases,
            "peaks_kb": peaks, "pages": result.n_frame_pages}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("catalogs", nargs="*", type=Path, help="catalogs of night.py --keep")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--child", nargs=3, metavar=("DB", "OUT", "THUMBNAILS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        db, out, thumbnails = args.child
        print(json.dumps(child(Path(db), Path(out), thumbnails == "1")))
        return 0
    print(f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; load average {os.getloadavg()[0]:.2f}; "
          f"median of {args.repeat}")
    print(f"{'catalog':28s} {'thumbs':>6s} {'frames':>6s} {'wall s':>7s} {'cpu s':>6s} {'cpu ms/frame':>12s} "
          f"{'peak MB':>8s} {'read s':>7s} {'read MB':>8s} {'pictures s':>10s} {'pages s':>8s} {'pages MB':>9s} "
          f"{'index s':>8s} {'index MB':>9s}")
    runs: dict[tuple, list[dict]] = {}
    for repeat in range(args.repeat):
        for thumbnails in (False, True):
            for db in args.catalogs:
                with tempfile.TemporaryDirectory(prefix="obsdb-report-") as tmp:
                    copy = Path(tmp) / "obsdb.sqlite"
                    shutil.copyfile(db, copy)
                    done = subprocess.run([sys.executable, __file__, "--child", str(copy), str(Path(tmp) / "out"),
                                           "1" if thumbnails else "0"], capture_output=True, text=True,
                                          env=child_env())
                    if done.returncode != 0:
                        raise SystemExit(f"child failed: {done.stderr[-2000:]}")
                    runs.setdefault((db.name, thumbnails), []).append(json.loads(done.stdout.strip().splitlines()[-1]))
    for (name, thumbnails), results in runs.items():
        def med(get):
            return statistics.median(get(r) for r in results)

        frames = med(lambda r: r["pages"])
        print(f"{name:28s} {'yes' if thumbnails else 'no':>6s} {frames:6.0f} {med(lambda r: r['wall']):7.1f} "
              f"{med(lambda r: r['cpu']):6.1f} {1000 * med(lambda r: r['cpu']) / frames:12.1f} "
              f"{med(lambda r: max(r['peaks_kb'].values())) / 1024:8.0f} "
              f"{med(lambda r: r['phases'].get('read', 0)):7.2f} {med(lambda r: r['peaks_kb'].get('read', 0)) / 1024:8.0f} "
              f"{med(lambda r: r['phases'].get('pictures', 0)):10.2f} {med(lambda r: r['phases'].get('pages', 0)):8.2f} "
              f"{med(lambda r: r['peaks_kb'].get('pages', 0)) / 1024:9.0f} "
              f"{med(lambda r: r['phases'].get('index', 0)):8.2f} {med(lambda r: r['peaks_kb'].get('index', 0)) / 1024:9.0f}")
    print(f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
