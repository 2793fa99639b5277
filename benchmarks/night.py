"""A whole night through ingest + qa + align: per-step seconds and peak memory, per executor.

Issue 13's target: a 500-frame night of 2048 x 2048 through ingest, qa and
align in <= 30 s on this 2-core machine, with the per-frame cost staying
linear (50, 150 and 500 frames).

Method.  Each night is simulated once (``obsdb.simulate``, uint16 frames,
two bands, one pointing group with drift; cached under
``--cache``) and read once so that every timed read comes from the page
cache.  Then, for every executor (``serial``, ``processes`` and ``dask``,
the last a LocalCluster of ``--workers`` processes), one child process
(``python benchmarks/night.py --child``) opens a fresh SQLite catalog and
runs ``Catalog.ingest``, ``Catalog.qa`` and ``Catalog.align`` with that
executor, timing each step.  ``parent MB`` is the child's own peak resident set (the process that
writes the catalog; with the serial executor the pixel work runs in one worker process of its own),
read from ``VmHWM`` in ``/proc/self/status`` and reset before each step (``clear_refs``), so that
``ingest MB``, ``qa MB`` and ``align MB`` are each step's own peak.  (Before 2026-12-06 it was the
child's ``ru_maxrss``, which after ``exec`` keeps the peak of the process that started the child:
this benchmark's, which had simulated the night, so it read 320 MB for a child of 130.)  ``peak MB``
is the largest of it and of the workers it waited for (their ``ru_maxrss``, read in the child).
Executors alternate within a repetition; with ``--repeat`` > 1 the medians
are printed, since the machine is shared and noisy.  The date and the load average are printed
at the start and the end.  ``cpu ms/frame`` is the
CPU time of the child and of the workers it waited for (all three steps, per
frame): what the work cost, whatever share of the cores the machine gave.
``ingest cpu ms/frame`` is the ingest step's alone (the child's, its waited
children's and its live workers' CPU read before and after the step).  With
``--code PATH`` the children import obsdb from that checkout (old code, e.g.
``git archive`` of main) instead of this one; with ``--old PATH`` every executor runs with both,
alternated within each repetition (rows ``KIND old``), and the ratio new / old of the ingest
step's CPU is printed (the median of each repetition's ratio).
``--trace N`` prints, per step, the N largest allocation sites (tracemalloc) at the highest traced
memory seen between frames: what grows with the night.  ``--keep DIR`` keeps each catalog.

With ``--today`` the same night also goes through the pipeline users
assemble today (ccdproc ImageFileCollection, astropy sigma_clipped_stats,
astroalign.find_transform onto the middle frame; ``benchmarks/chain.py``'s
``child_today``), alternated with obsdb's serial run, and the ratio
obsdb / today is printed (target <= 0.3).

Run::

    python benchmarks/night.py --frames 50,150,500 --size 2048
    python benchmarks/night.py --frames 50 --size 1024 --executors serial,processes --today
    python benchmarks/night.py --frames 500 --executors processes --trace 12 --keep /tmp/nights
    python benchmarks/night.py --frames 50,150 --executors processes --old /tmp/old-ingest --repeat 3
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


def simulated_night(cache: Path, frames: int, size: int) -> Path:
    """The night's folder (simulated once, then reused), every file read once into the page cache."""
    folder = cache / f"night-{frames}x{size}"
    if not (folder / "truth.json").is_file():
        from obsdb.simulate import simulate_night

        print(f"simulating {frames} frames of {size}x{size} into {folder} ...", file=sys.stderr, flush=True)
        simulate_night(folder, seed=13, size=size, n_frames=frames, bands=("V", "R"), n_groups=1, dtype="uint16",
                       cloud_fraction=0.1, trail_fraction=0.05, defocus_fraction=0.05, max_group_offset=40)
    for path in folder.glob("*.fits"):
        path.read_bytes()
    return folder


def tree_cpu() -> float:
    """CPU seconds (user + system) of this process, of the children it waited for, and of its live
    descendants (a pool's workers outlive a step: their CPU so far is read from ``/proc``)."""
    used = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    total = sum(u.ru_utime + u.ru_stime for u in used)
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state, ppid, ..., utime (14th field of the line), stime, cutime, cstime.
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = sum(int(v) for v in fields[11:15]) / tick
    me = os.getpid()
    for pid, seconds in times.items():
        ancestor = parents.get(pid)
        while ancestor is not None and ancestor not in (me, 0, 1):
            ancestor = parents.get(ancestor)
        if ancestor == me:
            total += seconds
    return total


def reset_peak() -> None:
    """Start a new peak of this process's resident set (Linux: ``VmHWM`` is reset by ``clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def own_peak_kb() -> int:
    """This process's peak resident set since the last :func:`reset_peak`, KiB.

    ``VmHWM`` rather than ``ru_maxrss``: after ``exec`` the latter keeps the peak of the process that
    started us (the benchmark, which may have simulated a night), so a child's "own" peak read 320 MB
    where the child itself never passed 130.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


TRACE_STEP = 2 * 2**20
"""Bytes by which traced memory must pass the step's highest yet before ``--trace`` snapshots again."""


class Tracer:
    """With ``--trace N``: tracemalloc in the child (not in its forked workers), and per step the N
    allocation sites that grew most from the step's start to the highest traced memory seen between
    frames (snapshots taken from the steps' progress callbacks, and at the step's end), to stderr."""

    def __init__(self, top: int):
        import tracemalloc

        self.top, self.tracemalloc = top, tracemalloc
        self.best, self.snapshot, self.baseline = 0, None, None
        if top:
            os.register_at_fork(after_in_child=tracemalloc.stop)  # workers measure, untraced
            tracemalloc.start(6)
            self.filters = [tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
                            tracemalloc.Filter(False, tracemalloc.__file__)]

    def begin(self) -> None:
        if self.top:
            self.tracemalloc.reset_peak()
            self.best, self.snapshot = 0, None
            self.baseline = self.tracemalloc.take_snapshot().filter_traces(self.filters)

    def progress(self, *_args) -> None:
        if self.top:
            current = self.tracemalloc.get_traced_memory()[0]
            if current > self.best + TRACE_STEP:  # a snapshot costs a second: only for a new high
                self.best, self.snapshot = current, self.tracemalloc.take_snapshot()

    def end(self, step: str) -> None:
        if not self.top:
            return
        at_peak = self.snapshot
        self.best, self.snapshot = 0, None
        self.progress()
        current, peak = self.tracemalloc.get_traced_memory()
        for name, snap in (("largest between frames", at_peak), ("at the end", self.snapshot)):
            if snap is None:
                continue
            stats = snap.filter_traces(self.filters).compare_to(self.baseline, "traceback")
            total = sum(stat.size_diff for stat in stats)
            print(f"--- {step}, {name}: {total / 2**20:+.1f} MiB traced since the step began "
                  f"(traced peak {peak / 2**20:.1f} MiB, now {current / 2**20:.1f} MiB)", file=sys.stderr)
            for stat in sorted(stats, key=lambda st: -st.size_diff)[:self.top]:
                where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(list(stat.traceback)))
                print(f"  {stat.size_diff / 2**20:+7.2f} MiB {stat.count_diff:+8d} blocks  {where}", file=sys.stderr)


def child(folder: Path, db: Path, executor_kind: str, workers: int, trace: int = 0) -> dict:
    """ingest + qa + align in this process with one executor; seconds and own peak memory per step."""
    marks, peaks = {}, {}
    tune_allocator_as_the_commands_do()
    from obsdb import Catalog
    from obsdb.pipeline.executors import make_executor

    tracer = Tracer(trace)
    start = time.perf_counter()
    with make_executor(executor_kind, workers=workers) as executor, Catalog.open(db, create=True) as catalog:
        marks["start executor"] = time.perf_counter() - start
        peaks["open"] = own_peak_kb()
        watch = {"progress": tracer.progress} if trace else {}
        steps = (("ingest", lambda: catalog.ingest([folder], executor=executor, workers=workers, **watch)),
                 ("qa", lambda: catalog.qa(workers=workers, **watch)),
                 ("align", lambda: catalog.align(executor=executor, workers=workers, **watch)))
        done = {}
        for step, call in steps:
            reset_peak()
            tracer.begin()
            t, cpu = time.perf_counter(), tree_cpu()
            done[step] = call()
            marks[step] = time.perf_counter() - t
            marks[f"cpu {step}"] = tree_cpu() - cpu
            peaks[step] = own_peak_kb()
            tracer.end(step)
    ingested, assessed, runs = done["ingest"], done["qa"], done["align"]
    aligned = sum(len(r.results) - len(r.failures) for r in runs)
    # CPU of this process and of the workers it waited for (a Dask cluster's, once it is closed): on a
    # shared machine wall time says how much of the cores we got, CPU time what the work cost.
    used = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    marks["cpu"] = sum(u.ru_utime + u.ru_stime for u in used)
    return {"phases": marks, "frames": len(ingested.added), "failed": len(ingested.failed),
            "assessed": assessed.assessed, "aligned": aligned, "step_peak_kb": peaks,
            "self_peak_kb": max(peaks.values()),
            # Workers are forked from this process (or started by it): their ru_maxrss is their own.
            "workers_peak_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}


def run_child(args: list[str], code: Path | None = None) -> dict:
    """A child process's JSON answer; its peak memory is the largest of the child's own (``VmHWM``) and
    of the workers it waited for (measured in the child: from here ``ru_maxrss`` would carry this
    process's own peak into every child it starts).  ``code``: the checkout the child imports obsdb from."""
    start = time.perf_counter()
    env = child_env()
    if code is not None:
        env["PYTHONPATH"] = str(code.resolve())
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"child failed: {done.stderr[-2000:]}")
    if done.stderr.strip():
        print(done.stderr.rstrip(), file=sys.stderr)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    answer["wall"] = wall
    answer["peak_mb"] = max(answer.get("self_peak_kb", 0), answer.get("workers_peak_kb", 0)) / 1024
    return answer


def step_mb(runs: list[dict], step: str) -> float:
    """The median over repeats of the child's own peak during one step, MB (NaN for an old answer)."""
    return statistics.median(r.get("step_peak_kb", {}).get(step, float("nan")) for r in runs) / 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", default="50,150,500", help="night sizes, comma-separated")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--executors", default="serial,processes,dask")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--today", action="store_true", help="also time the ccdproc + astroalign pipeline")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "obsdb-bench-night")
    parser.add_argument("--code", type=Path, help="import obsdb from this checkout in the children (old code)")
    parser.add_argument("--old", type=Path, help="also run every executor with obsdb from this checkout (old code), "
                                                 "alternated with the new within each repetition; rows 'KIND old'")
    parser.add_argument("--keep", type=Path, help="keep each night's catalog as KEEP/night-<frames>-<executor>.sqlite "
                                                  "(for benchmarks/report.py)")
    parser.add_argument("--trace", type=int, default=0, metavar="N",
                        help="tracemalloc in the child: the N largest allocation sites of each step, to stderr "
                             "(slow; for finding what grows, not for timing)")
    parser.add_argument("--child", nargs=5, metavar=("FOLDER", "DB", "EXECUTOR", "WORKERS", "TRACE"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--child-today", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        folder, db, kind, workers, trace = args.child
        answer = child(Path(folder), Path(db), kind, int(workers), int(trace))
        import obsdb

        answer["code"] = str(Path(obsdb.__file__).resolve().parents[1])
        print(json.dumps(answer))
        return 0
    if args.child_today:
        from chain import child_today

        answer = child_today(Path(args.child_today))
        answer["self_peak_kb"] = own_peak_kb()
        answer["workers_peak_kb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(json.dumps(answer))
        return 0

    args.cache.mkdir(parents=True, exist_ok=True)
    kinds = [k.strip() for k in args.executors.split(",") if k.strip()]
    rows = []
    print(f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; load average {os.getloadavg()[0]:.2f}; "
          f"{os.cpu_count()} cores; {args.size}x{args.size} uint16 frames; {args.workers} workers; "
          f"median of {args.repeat}; code {(args.code or Path(__file__).resolve().parents[1]).resolve()}")
    print(f"{'frames':>6s} {'executor':13s} {'ingest s':>9s} {'qa s':>7s} {'align s':>8s} {'total s':>8s} "
          f"{'ms/frame':>9s} {'wall s':>7s} {'peak MB':>8s} {'aligned':>8s} {'cpu ms/frame':>13s} {'parent MB':>10s} "
          f"{'ingest cpu ms/frame':>20s} {'ingest MB':>10s} {'qa MB':>6s} {'align MB':>9s}")
    for n in [int(x) for x in args.frames.split(",")]:
        folder = simulated_night(args.cache, n, args.size)
        # Row label -> (executor, checkout); with --old each executor's old row follows its new one.
        labels = {k: (k, args.code) for k in kinds}
        if args.old:
            labels = {label: spec for k in kinds for label, spec in ((k, (k, args.code)), (f"{k} old", (k, args.old)))}
        results: dict[str, list[dict]] = {k: [] for k in list(labels) + (["today"] if args.today else [])}
        for repeat in range(args.repeat):
            order = list(results)
            order = order[repeat % len(order):] + order[:repeat % len(order)]
            for label in order:
                with tempfile.TemporaryDirectory(prefix="obsdb-night-") as tmp:
                    if label == "today":
                        results[label].append(run_child(["--child-today", str(folder)]))
                    else:
                        kind, code = labels[label]
                        db = Path(tmp) / "obsdb.sqlite"
                        answer = run_child(["--child", str(folder), str(db), kind, str(args.workers),
                                            str(args.trace)], code)
                        if code is not None and Path(answer["code"]) != code.resolve():
                            raise SystemExit(f"the child imported {answer['code']}, not {code}")
                        results[label].append(answer)
                        if args.keep:
                            args.keep.mkdir(parents=True, exist_ok=True)
                            shutil.copyfile(db, args.keep / f"night-{n}-{label.replace(' ', '-')}.sqlite")
        for kind, runs in results.items():
            if kind == "today":
                total = statistics.median(sum(v for k, v in r["phases"].items() if k != "import") for r in runs)
                print(f"{n:6d} {'today':13s} {'':>9s} {'':>7s} {'':>8s} {total:8.1f} {1000 * total / n:9.0f} "
                      f"{statistics.median(r['wall'] for r in runs):7.1f} "
                      f"{statistics.median(r['peak_mb'] for r in runs):8.0f} "
                      f"{n - statistics.median(r['astroalign_errors'] for r in runs):8.0f}")
                rows.append({"frames": n, "executor": "today", "total": total})
                continue
            phase = {p: statistics.median(r["phases"][p] for r in runs) for p in ("ingest", "qa", "align")}
            total = sum(phase.values())
            print(f"{n:6d} {kind:13s} {phase['ingest']:9.1f} {phase['qa']:7.1f} {phase['align']:8.1f} {total:8.1f} "
                  f"{1000 * total / n:9.0f} {statistics.median(r['wall'] for r in runs):7.1f} "
                  f"{statistics.median(r['peak_mb'] for r in runs):8.0f} "
                  f"{statistics.median(r['aligned'] for r in runs):8.0f} "
                  f"{1000 * statistics.median(r['phases'].get('cpu', float('nan')) for r in runs) / n:13.0f} "
                  f"{statistics.median(r['self_peak_kb'] for r in runs) / 1024:10.0f} "
                  f"{1000 * statistics.median(r['phases'].get('cpu ingest', float('nan')) for r in runs) / n:20.0f} "
                  f"{step_mb(runs, 'ingest'):10.0f} {step_mb(runs, 'qa'):6.0f} {step_mb(runs, 'align'):9.0f}")
            rows.append({"frames": n, "executor": kind, "total": total, **phase})
        for kind in kinds if args.old else ():
            # Per repetition: the new run against the old one beside it, then the median of the ratios.
            pairs = zip(results[kind], results[f"{kind} old"])
            ratios = [new["phases"]["cpu ingest"] / old["phases"]["cpu ingest"] for new, old in pairs]
            print(f"       {kind}: ingest CPU new / old = {statistics.median(ratios):.2f} "
                  f"(per repetition {', '.join(f'{r:.2f}' for r in ratios)})")
        if args.today and "serial" in results:
            ours = next(r["total"] for r in rows if r["frames"] == n and r["executor"] == "serial")
            theirs = next(r["total"] for r in rows if r["frames"] == n and r["executor"] == "today")
            print(f"       obsdb serial / today = {ours / theirs:.2f} (target <= 0.3)")
    print(f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
