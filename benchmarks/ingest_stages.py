"""CPU per stage of one frame's ingest, as the worker measures it: old code against new, alternated.

What is timed is :func:`obsdb.pipeline.ingest.measure_file` on the simulated 2048 x 2048 frames of
``benchmarks/night.py``'s night (the same simulation and cache), in a process that counts as a pool
worker (no fork for the detection, as in the serial worker and the process pool).  Each stage is a
function wrapped with a CPU timer of the main thread (``time.thread_time``), inclusive of the stages
it calls; the whole frame is timed with the process's CPU (``time.process_time``: the SHA-256 thread
too, whose share is ``hash thread``).  A stage that a version of the code does not have is left
blank for it.

Method.  One child process per code version and repetition (``--repeat``, old and new alternated,
which goes first alternating too) imports that code (``PYTHONPATH``), measures ``--warm`` frames
untimed, then the next ``--per-child`` frames; the table gives, per stage, the median over every
frame measured of that version.  ``--old`` is a checkout of the old code, e.g.::

    git -C /work/main archive main | tar -x -C /tmp/old-ingest

Run::

    nice -n 5 python benchmarks/ingest_stages.py --old /tmp/old-ingest
    python benchmarks/ingest_stages.py --per-child 5 --repeat 1        # this checkout only
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

STAGES = [
    # (stage, module, attribute, depth): depth indents the table (a stage inside the one above).
    ("read (decode; hash in a thread)", "obsdb.imaging.fitsio", "read_fits_image", 0),
    ("header", "obsdb.imaging.header", "header_to_json", 0),
    ("columns", "obsdb.imaging.header", "frame_columns", 0),
    ("stars + metrics + streaks", "obsdb.pipeline.metrics", "metrics_from_image", 0),
    ("prepare (float32, mask, background)", "obsdb.imaging.stars", "_prepare", 1),
    ("extremes (min / max)", "obsdb.imaging.stars", "_unusable", 2),
    ("edge padding", "obsdb.imaging.stars", "_edge_padding", 2),
    ("background mesh", "obsdb.imaging.stars", "_subtract_subsampled_background", 2),
    ("sep.extract", "sep", "extract", 1),
    ("sep.flux_radius", "sep", "flux_radius", 1),
    ("sep.winpos", "sep", "winpos", 1),
    ("sep.sum_circle", "sep", "sum_circle", 1),
    ("centroid refinement", "obsdb.imaging.register", "refine_registration_stars", 1),
    ("streak search", "obsdb.imaging.streaks", "find_streaks", 1),
    ("pixel statistics", "obsdb.imaging.stats", "pixel_stats", 0),
    ("median (partition)", "obsdb.imaging.stats", "exact_median", 1),
    ("histogram (integer frames)", "obsdb.imaging.stats", "integer_histogram", 1),
    ("mean, std", "obsdb.imaging.stats", "mean_std", 1),
    ("clipped background", "obsdb.imaging.stats", "clipped_background", 1),
]
"""The stages timed; a (module, attribute) missing from a version is skipped for it."""


def _instrument(times: dict[str, float]) -> None:
    """Wrap every stage's function with a main-thread CPU timer adding into ``times``."""
    import functools
    import importlib

    for stage, module_name, attribute, _ in STAGES:
        module = importlib.import_module(module_name)
        original = getattr(module, attribute, None)
        if original is None:
            continue

        def timed(*args, __original=original, __stage=stage, **kwargs):
            start = time.thread_time()
            try:
                return __original(*args, **kwargs)
            finally:
                times[__stage] = times.get(__stage, 0.0) + time.thread_time() - start

        setattr(module, attribute, functools.wraps(original)(timed))


def child(folder: Path, warm: int, count: int, offset: int) -> dict:
    """Measure ``count`` frames of the night after ``warm`` untimed ones: CPU ms per stage and frame."""
    import obsdb
    import obsdb.pipeline.pool as pool
    from obsdb.config import IngestConfig
    from obsdb.pipeline.ingest import measure_file

    # As in the serial worker and the process pool: the detection's crash is contained by the worker.
    pool._IN_POOL_WORKER = True
    files = sorted(str(p) for p in folder.glob("*.fits"))
    files = files[offset:] + files[:offset]
    config = IngestConfig()
    times: dict[str, float] = {}
    _instrument(times)
    for path in files[:warm]:
        measure_file(path, config)
    frames = []
    for path in files[warm:warm + count]:
        times.clear()
        process, thread = time.process_time(), time.thread_time()
        measurement = measure_file(path, config)
        process, thread = time.process_time() - process, time.thread_time() - thread
        if not measurement.ok:
            raise SystemExit(f"{path}: {measurement.error}")
        frame = {stage: 1000 * seconds for stage, seconds in times.items()}
        frame["total (process CPU)"] = 1000 * process
        frame["hash thread"] = 1000 * (process - thread)
        frames.append(frame)
    return {"code": str(Path(obsdb.__file__).resolve().parents[1]), "frames": frames}


def run_child(code: Path, folder: Path, warm: int, count: int, offset: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OBSDB_DB", "OBSDB_CONFIG")}
    env["PYTHONPATH"] = str(code)
    done = subprocess.run([sys.executable, __file__, "--child", str(folder), str(warm), str(count), str(offset)],
                          capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    if done.returncode != 0:
        raise SystemExit(f"child ({code}) failed: {done.stderr[-2000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    if Path(answer["code"]) != code.resolve():
        raise SystemExit(f"child imported {answer['code']}, not {code}")
    return answer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, help="a checkout of the old code to alternate with this one")
    parser.add_argument("--frames", type=int, default=50, help="the night (of night.py) the frames come from")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--per-child", type=int, default=10, help="frames timed per child process")
    parser.add_argument("--warm", type=int, default=2, help="frames measured untimed first in each child")
    parser.add_argument("--repeat", type=int, default=3, help="children per code version, alternated")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "obsdb-bench-night")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        folder, warm, count, offset = args.child
        print(json.dumps(child(Path(folder), int(warm), int(count), int(offset))))
        return 0

    sys.path.insert(0, str(HERE))
    from night import simulated_night

    args.cache.mkdir(parents=True, exist_ok=True)
    folder = simulated_night(args.cache, args.frames, args.size)
    versions = {"new": ROOT} if args.old is None else {"old": args.old, "new": ROOT}
    print(f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; load average {os.getloadavg()[0]:.2f}; "
          f"{os.cpu_count()} cores; {folder.name}: frames {args.warm + 1}-{args.warm + args.per_child} of each "
          f"child timed, {args.repeat} children per version, alternated")
    frames: dict[str, list[dict]] = {name: [] for name in versions}
    for repeat in range(args.repeat):
        order = list(versions) if repeat % 2 == 0 else list(versions)[::-1]
        for name in order:
            frames[name].extend(run_child(versions[name], folder, args.warm, args.per_child, 0)["frames"])
    rows = [(stage, depth) for stage, _, _, depth in STAGES] + [("hash thread", 0), ("total (process CPU)", 0)]
    header = f"{'CPU ms per frame, median':44s}" + "".join(f"{name:>9s}" for name in versions)
    if args.old is not None:
        header += f"{'new/old':>9s}"
    print(header)
    for stage, depth in rows:
        medians = {}
        for name, measured in frames.items():
            values = [f[stage] for f in measured if stage in f]
            medians[name] = statistics.median(values) if values else None
        if all(v is None for v in medians.values()):
            continue
        line = f"{'  ' * depth + stage:44s}" + "".join(f"{'' if v is None else f'{v:.1f}':>9s}"
                                                     for v in medians.values())
        if args.old is not None and medians.get("old") and medians.get("new") is not None:
            line += f"{medians['new'] / medians['old']:9.2f}"
        print(line)
    totals = {name: sorted(f["total (process CPU)"] for f in measured) for name, measured in frames.items()}
    for name, values in totals.items():
        print(f"{name}: total per frame min {values[0]:.1f}, median {statistics.median(values):.1f}, "
              f"max {values[-1]:.1f} ms over {len(values)} frames")
    print(f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
