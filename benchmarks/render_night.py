"""Render a simulated night: CPU ms per frame, the parent's peak memory, and render_frame's stages.

Issue 25's target: render (``obsdb render --stack``) at <= 250 ms of CPU per
2048 x 2048 frame, with the parent's peak memory flat in the number of frames.

Method.  Each night is simulated once (``benchmarks/night.py``'s
``simulated_night``, the same cache folder) and taken through ingest, qa and
align once, in a child process, into a catalog kept beside it (one per schema
revision, so older code gets its own).  Every timed render then runs in a
fresh child process (``--child``) on a copy of that catalog: it opens the
copy and calls ``Catalog.render(out, stack=METHOD)`` in that process (no
worker pool: the parent does the pixel work, so its peak is the one to keep
flat).  ``cpu ms/frame`` is the CPU time (user + system) of the render call,
of the child and of any process it waited for, divided by the frames
rendered; ``parent MB`` the child's peak resident set (``ru_maxrss``), and
``growth MB`` that peak less the resident size just before the render (the
imports and the catalog).  With ``--second`` the same catalog is rendered a
second time into another folder (what a night's re-render costs once the
detector-defect map is known).

``--stages`` profiles one ``render_frame`` call on a frame of the night
(cProfile with a CPU-time clock, after one warm-up call) and prints the CPU
ms of each stage: read, sharp_defects, the NaN fill, resample (prefilter and
map), saturation handling, the FITS write and its SHA-256, the preview.

``--old DIR`` runs the same children with the code under ``DIR`` (e.g. a
``git archive`` of main) first on the path, alternating with this checkout
within each repetition; the ratio new / old is printed.

Run::

    python benchmarks/render_night.py --frames 20,100 --size 2048
    python benchmarks/render_night.py --frames 20 --stages
    git -C /work/main archive main | tar -x -C /tmp/old-render
    python benchmarks/render_night.py --frames 20,100 --old /tmp/old-render --repeat 2
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

from _children import child_env, tune_allocator_as_the_commands_do  # noqa: E402


def _cpu() -> float:
    used = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in used)


def _rss_kb() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def prepare(folder: Path, db: Path) -> dict:
    """ingest + qa + align of the night into ``db`` (two worker processes: this part is not timed)."""
    from obsdb import Catalog

    with Catalog.open(db, create=True) as catalog:
        catalog.ingest([folder], workers=2)
        catalog.qa(workers=2)
        catalog.align(workers=2)
    return {"prepared": str(db)}


def child(db: Path, out: Path, method: str, second: bool) -> dict:
    """Render the catalog (a copy) into ``out`` in this process; CPU and memory of the render call."""
    from obsdb import Catalog

    tune_allocator_as_the_commands_do()
    answer = {}
    with Catalog.open(db) as catalog:
        base_kb = _rss_kb()
        for label, folder in (("first", out / "a"), ("second", out / "b"))[: 2 if second else 1]:
            cpu, start = _cpu(), time.perf_counter()
            report = catalog.render(folder, stack=method)
            answer[label] = {"cpu": _cpu() - cpu, "wall": time.perf_counter() - start,
                             "frames": len(report.frames), "stacks": len(report.stacks)}
    answer["base_kb"] = base_kb
    return answer


def stages(db: Path, out: Path) -> dict:
    """CPU ms of render_frame's stages on one frame of the night (the median frame of the plan)."""
    import cProfile
    import pstats

    from obsdb import Catalog
    from obsdb.catalog.stores import RenderStore
    from obsdb.pipeline import render as render_module

    with Catalog.open(db) as catalog:
        tasks = RenderStore(catalog.db).render_plan(run=None, status="accepted", band=None, where=None, nights=None)
        for task in tasks:
            task["output"] = render_module.output_name(task["path"])
            task["wcs"] = None
            task["streaks"] = []
            task["calibration"] = []
        render_module._attach_detector_defects(tasks)
    task = tasks[len(tasks) // 2]
    render_module.render_frame(task, str(out), "spline3", False)  # warm-up: imports, caches
    profile = cProfile.Profile(time.process_time)
    total = time.process_time()
    profile.runcall(render_module.render_frame, task, str(out), "spline3", True)
    total = time.process_time() - total
    stats = pstats.Stats(profile).stats
    wanted = {
        "read": ("read.py", "read_fits_image"),
        "sharp_defects": ("defects.py", "sharp_defects"),
        "NaN fill (PreparedFrame)": ("resample.py", "__init__"),
        "resample (prefilter + map)": ("resample.py", "resample"),
        "saturation": ("render.py", "_linear_near_saturation"),
        "FITS write + SHA-256": ("write.py", "atomic_write_fits"),
        "  of which SHA-256": ("~", "<built-in method _hashlib.openssl_sha256>"),
        "preview PNG": ("preview.py", "write_preview_png"),
    }
    out_ms = {"total (with preview)": 1000 * total}
    for label, (file_end, name) in wanted.items():
        ms = sum(v[3] for (path, _, func), v in stats.items() if func == name and path.endswith(file_end))
        out_ms[label] = 1000 * ms
    return out_ms


def compare(old: Path, new: Path) -> None:
    """Print how far the new outputs are from the old: aligned frames in units of each frame's noise, stacks."""
    import numpy as np
    from astropy.io import fits
    from astropy.stats import mad_std

    worst, worst_name, masks_differ, names = 0.0, "", 0, sorted(p.name for p in old.glob("*.fits"))
    stacks = [n for n in names if n.startswith("stack_")]
    for name in names:
        with fits.open(old / name) as a, fits.open(new / name) as b:
            x, y = a[0].data.astype(np.float64), b[0].data.astype(np.float64)
            both = np.isfinite(x) & np.isfinite(y)
            masks_differ += int((np.isfinite(x) != np.isfinite(y)).any())
            noise = float(mad_std(x[both][::7]))
            diff = float(np.abs(x[both] - y[both]).max()) / noise if both.any() else 0.0
            if name in stacks:
                identical = bool(np.array_equal(a[0].data, b[0].data, equal_nan=True)
                                 and np.array_equal(a["COVERAGE"].data, b["COVERAGE"].data))
                print(f"       {name}: max |new - old| = {diff:.2e} of its noise; bit-identical: {identical}")
            elif diff > worst:
                worst, worst_name = diff, name
    print(f"       aligned frames ({len(names) - len(stacks)}): max |new - old| = {worst:.2e} of the frame's noise "
          f"({worst_name}); NaN masks differ in {masks_differ} files")


# An editable install's import hook maps ``obsdb`` and ``obsdb.migrations`` to its checkout before
# PYTHONPATH is searched: the old code's child drops it first, so that it runs the old code throughout.
_WITHOUT_EDITABLE_HOOK = ("import runpy, sys; "
                          "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; "
                          "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def _child_command(pythonpath: str | None) -> tuple[list[str], dict]:
    env = child_env()
    if not pythonpath:
        return [sys.executable], env
    env["PYTHONPATH"] = os.pathsep.join([pythonpath, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return [sys.executable, "-c", _WITHOUT_EDITABLE_HOOK], env


def run_child(args: list[str], pythonpath: str | None = None) -> dict:
    """A child process's JSON answer (its own peak memory included)."""
    command, env = _child_command(pythonpath)
    done = subprocess.run([*command, __file__, *args], capture_output=True, text=True, env=env,
                          cwd=tempfile.gettempdir())
    if done.returncode != 0:
        raise SystemExit(f"child failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def schema_revision(pythonpath: str | None) -> str:
    """The schema revision of the code on ``pythonpath`` (its catalogs are kept apart)."""
    command, env = _child_command(pythonpath)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write("import obsdb.catalog.db as db; print(db.SCHEMA_REVISION, db.migrations_dir())\n")
    try:
        answer = subprocess.run([*command, handle.name], capture_output=True, text=True, env=env,
                                check=True, cwd=tempfile.gettempdir()).stdout.split()
    finally:
        os.unlink(handle.name)
    return answer[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", default="20,100", help="night sizes, comma-separated")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--stack", default="median", help="stack method (median, mean, sigma-clip)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--second", action="store_true", help="render each catalog twice in the child")
    parser.add_argument("--stages", action="store_true", help="profile render_frame's stages instead")
    parser.add_argument("--old", help="folder of older code to compare with (first on PYTHONPATH)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "obsdb-bench-night")
    parser.add_argument("--child", nargs=4, metavar=("DB", "OUT", "METHOD", "SECOND"), help=argparse.SUPPRESS)
    parser.add_argument("--child-stages", nargs=2, metavar=("DB", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--prepare", nargs=2, metavar=("FOLDER", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.prepare or args.child or args.child_stages:
        if args.prepare:
            answer = prepare(Path(args.prepare[0]), Path(args.prepare[1]))
        elif args.child:
            db, out, method, second = args.child
            answer = child(Path(db), Path(out), method, second == "1")
        else:
            answer = stages(Path(args.child_stages[0]), Path(args.child_stages[1]))
        answer["self_peak_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps(answer))
        return 0

    from night import simulated_night

    args.cache.mkdir(parents=True, exist_ok=True)
    codes = {"new": None} if not args.old else {"old": str(Path(args.old).resolve()), "new": None}
    print(f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; load average {os.getloadavg()[0]:.2f}; "
          f"{os.cpu_count()} cores; {args.size}x{args.size} frames; stack {args.stack}; median of {args.repeat}")
    for n in [int(x) for x in args.frames.split(",")]:
        folder = simulated_night(args.cache, n, args.size)
        catalogs = {}
        for code, path in codes.items():
            db = args.cache / f"render-{n}x{args.size}-rev{schema_revision(path)}.sqlite"
            if not db.is_file():
                print(f"ingest + qa + align of {n} frames into {db} ...", file=sys.stderr, flush=True)
                part = db.with_suffix(".part")
                part.unlink(missing_ok=True)
                run_child(["--prepare", str(folder), str(part)], path)
                part.rename(db)
            catalogs[code] = db
        if args.stages:
            for code, path in codes.items():
                with tempfile.TemporaryDirectory(prefix="obsdb-render-") as tmp:
                    shutil.copy(catalogs[code], Path(tmp) / "c.sqlite")
                    ms = run_child(["--child-stages", str(Path(tmp) / "c.sqlite"), str(Path(tmp) / "out")], path)
                print(f"\n{n} frames, {code} code: render_frame stages, CPU ms (one frame, preview on)")
                for label, value in ms.items():
                    if label != "self_peak_kb":
                        print(f"  {label:28s} {value:8.1f}")
            continue
        results: dict[str, list[dict]] = {code: [] for code in codes}
        with tempfile.TemporaryDirectory(prefix="obsdb-render-") as kept:
            for repeat in range(args.repeat):
                order = list(codes)
                order = order[repeat % len(order):] + order[:repeat % len(order)]
                for code in order:
                    with tempfile.TemporaryDirectory(prefix="obsdb-render-") as tmp:
                        shutil.copy(catalogs[code], Path(tmp) / "c.sqlite")
                        # The first repetition's outputs are kept for the comparison of old and new.
                        out = Path(kept) / code if repeat == 0 else Path(tmp) / "out"
                        results[code].append(run_child(["--child", str(Path(tmp) / "c.sqlite"), str(out),
                                                        args.stack, "1" if args.second else "0"], codes[code]))
            if args.old:
                compare(Path(kept) / "old" / "a", Path(kept) / "new" / "a")
        print(f"\n{'frames':>6s} {'code':5s} {'pass':6s} {'rendered':>8s} {'cpu s':>7s} {'cpu ms/frame':>13s} "
              f"{'wall s':>7s} {'parent MB':>10s} {'growth MB':>10s}")
        per_frame = {}
        for code, runs in results.items():
            for label in ("first", "second") if args.second else ("first",):
                cpu = statistics.median(r[label]["cpu"] for r in runs)
                frames = runs[0][label]["frames"]
                per_frame[(code, label)] = 1000 * cpu / max(frames, 1)
                peak = statistics.median(r["self_peak_kb"] for r in runs) / 1024
                growth = statistics.median(r["self_peak_kb"] - r["base_kb"] for r in runs) / 1024
                print(f"{n:6d} {code:5s} {label:6s} {frames:8d} {cpu:7.2f} {per_frame[(code, label)]:13.0f} "
                      f"{statistics.median(r[label]['wall'] for r in runs):7.1f} {peak:10.0f} {growth:10.0f}")
        if args.old:
            print(f"       new / old CPU per frame = {per_frame[('new', 'first')] / per_frame[('old', 'first')]:.2f}"
                  " (target: <= 250 ms per frame)")
    print(f"\n{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
