"""The ingest -> qa -> align chain on one night, against the pipeline a user assembles today.

Targets (deliverable 10): on a night of 27 frames of 1024x1024,

- ``obsdb align`` costs <= 0.3 s beyond start-up;
- the chain as separate commands takes <= 0.5 of the time of today's pipeline;
- the chain in one process (``obsdb run`` without rendering, or the Python
  API) takes <= 0.35 of it.

Method.  The script

1. simulates one night with ``obsdb simulate DIR --frames N --size S --seed
   SEED`` into a temporary folder and reads every file once so that all
   timed reads come from the page cache (not timed);
2. runs one untimed warm-up round (it writes ``.pyc`` files and checks that
   every method works), then ``--repeat`` timed rounds.  Round ``i`` runs
   every method once, in an order rotated by ``i``, so slow spells of the
   shared machine fall on all methods alike.  Every method gets a fresh
   catalog (a new temporary SQLite path) and is timed wall-clock, start to
   exit, as subprocesses:

   (a) ``separate``: ``obsdb --db X init``, ``ingest DIR``, ``qa``,
       ``align`` as four commands (``init`` is needed: ``ingest`` refuses a
       catalog that does not exist).  Their sum is the method's time; each
       part is reported too.  Right after ``align``, on the same catalog,
       the start-up references ``obsdb --db X frames --format json`` and
       ``obsdb --help`` are timed;
   (b) ``obsdb run``: ``obsdb --db X run DIR --out OUT`` plus
       ``--no-render``/``--no-report`` when ``obsdb run --help`` offers
       them.  When it does not, ``run`` also groups, renders, stacks and
       writes the HTML report, and the output says so: its ratio is then not
       the one the target is about, and (c) is the one-process figure;
   (c) ``api``: one Python process (``python benchmarks/chain.py --child
       api``) doing ``Catalog.open(X, create=True)``, ``cat.ingest([DIR])``,
       ``cat.qa()``, ``cat.align()``; its in-process phase times are kept
       for information;
   (d) ``today``: one Python process doing what a user assembles today:
       ``ccdproc.ImageFileCollection(DIR).summary``; for every frame
       ``astropy.io.fits.getdata`` and ``astropy.stats.sigma_clipped_stats``;
       then ``astroalign.find_transform(frame, reference)`` for every frame
       against the middle frame of the sorted file list, astroalign errors
       caught per frame and counted.

3. prints the per-method medians over the rounds, the ratios (a)/(d),
   (b)/(d), (c)/(d) computed per round then their median, and pass/fail
   against 0.5 / 0.35 / 0.35.  "align beyond start-up" is median(align) -
   median(start-up reference), for both references (``frames --format json``
   is the one the target is judged on: it pays the catalog imports and open
   that every catalog command pays; ``--help`` only pays the CLI's);
4. profiles ``obsdb align`` once on a catalog made by ``init``, ``ingest``,
   ``qa`` (not timed), two ways:

   - whole process, as ``python -m cProfile -o F $(which obsdb) --db X
     align``: the top cumulative entries without the import machinery
     (``<module>`` bodies, ``importlib``), and how much of the time is
     imports, at start-up and inside functions (lazy imports);
   - warm, in one process: the command is run once on a copy of the catalog
     (every import done, untimed), then ``cProfile`` runs it on another copy:
     what align itself costs with no import at all (in-process caches, e.g.
     SQLAlchemy's compiled statements, are warm too, so this is a lower
     bound).

Which obsdb is measured: the checkout this script belongs to (its parent
directory is put first on ``PYTHONPATH``), through the ``obsdb`` console
script next to ``sys.executable`` (``python -m obsdb.cli.app`` when there is
none).  The machine is shared: compare the ratios (measured alternately),
not the absolute times.

Run::

    python benchmarks/chain.py                          # 27 frames of 1024x1024, 5 rounds
    python benchmarks/chain.py --frames 9 --size 256 --repeat 1 --no-profile   # quick check
    python benchmarks/chain.py --json > chain.json
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

from _children import child_env, children_cpu, obsdb_prefix  # noqa: E402 - benchmarks/ is on sys.path when run

ROOT = Path(__file__).resolve().parents[1]
TARGET_SEPARATE = 0.5
TARGET_ONE_PROCESS = 0.35
TARGET_ALIGN_BEYOND_STARTUP = 0.3
WIDTH = 100
METHODS = ("separate", "run", "api", "today")
LABELS = {
    "separate": "(a) obsdb init+ingest+qa+align, separate commands",
    "run": "(b) obsdb run, one process",
    "api": "(c) Python API, one process",
    "today": "(d) today: ImageFileCollection + sigma_clipped_stats + astroalign",
}
# Call-stack rows above the align command (CLI dispatch, this script's wrapper), left out of the tables.
WRAPPERS = ("typer/", "click/", "benchmarks/chain.py", "obsdb/cli/app.py")
IMPORT_FILES = ("<frozen importlib", "importlib/", "<frozen zipimport")


# --------------------------------------------------------------------------- helpers

def timed(argv: list[str], cwd: Path, env: dict) -> tuple[float, subprocess.CompletedProcess, float]:
    """Run ``argv``: its wall time, its completed process, and its CPU time (with its own children's)."""
    start, cpu = time.perf_counter(), children_cpu()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall, cpu = time.perf_counter() - start, children_cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"failed (exit code {done.returncode}): {' '.join(argv)}\n"
                         f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return wall, done, cpu


def remove_db(db: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(db) + suffix).unlink(missing_ok=True)


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


# --------------------------------------------------------------------------- child side

def child_api(folder: Path, db: Path) -> dict:
    marks = {}
    start = time.perf_counter()
    from obsdb import Catalog

    marks["import"] = time.perf_counter() - start
    t = time.perf_counter()
    with Catalog.open(db, create=True) as cat:
        marks["open (create)"] = time.perf_counter() - t
        t = time.perf_counter()
        ingested = cat.ingest([folder])
        marks["ingest"] = time.perf_counter() - t
        t = time.perf_counter()
        assessed = cat.qa()
        marks["qa"] = time.perf_counter() - t
        t = time.perf_counter()
        runs = cat.align()
        marks["align"] = time.perf_counter() - t
    if ingested.failed:
        raise SystemExit(f"ingest failed: {ingested.failed[:3]}")
    aligned = sum(len(r.results) - len(r.failures) for r in runs)
    return {"phases": marks, "frames": len(ingested.added), "assessed": assessed.assessed,
            "aligned": aligned, "runs": len(runs)}


def child_today(folder: Path) -> dict:
    import warnings

    marks = {}
    start = time.perf_counter()
    import astroalign
    from astropy.io import fits
    from astropy.stats import sigma_clipped_stats
    from ccdproc import ImageFileCollection

    marks["import"] = time.perf_counter() - start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        collection = ImageFileCollection(str(folder))
        summary = collection.summary
        files = sorted(folder / name for name in summary["file"])
        marks["ImageFileCollection"] = time.perf_counter() - t
        t = time.perf_counter()
        frames, stats = [], []
        for path in files:
            data = fits.getdata(path)
            stats.append(sigma_clipped_stats(data))
            frames.append(data)
        marks["getdata + sigma_clipped_stats"] = time.perf_counter() - t
        t = time.perf_counter()
        reference = frames[len(frames) // 2]
        errors: dict[str, int] = {}
        for data in frames:
            try:
                astroalign.find_transform(data, reference)
            except Exception as exc:  # astroalign raises MaxIterError, ValueError, TypeError...
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
        marks["astroalign.find_transform"] = time.perf_counter() - t
    return {"phases": marks, "frames": len(files), "reference": files[len(files) // 2].name,
            "astroalign_errors": sum(errors.values()), "errors_by_type": errors}


def child_profile_warm(db: Path, warm_db: Path, out: Path) -> dict:
    """Run ``obsdb align`` once on ``warm_db`` (imports), then profile it on ``db``."""
    import cProfile
    import io
    from contextlib import redirect_stdout

    from obsdb.cli.app import app

    def call(path: Path) -> None:
        with redirect_stdout(io.StringIO()):
            try:
                app(["--db", str(path), "align"], standalone_mode=False)
            except SystemExit as exc:
                if exc.code not in (0, None):
                    raise
    call(warm_db)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(call, db)
    wall = time.perf_counter() - start
    profiler.dump_stats(str(out))
    return {"wall": wall}


# --------------------------------------------------------------------------- parent side

class Bench:
    def __init__(self, folder: Path, work: Path, run_flags: list[str]):
        self.folder = folder
        self.work = work
        self.env = child_env()
        self.obsdb = obsdb_prefix()
        self.run_flags = run_flags
        self.counter = 0

    def fresh_db(self, name: str) -> Path:
        self.counter += 1
        return self.work / f"{name}-{self.counter}.sqlite"

    def cli(self, db: Path, *args: str) -> tuple[float, subprocess.CompletedProcess, float]:
        return timed([*self.obsdb, "--db", str(db), *args], self.work, self.env)

    def separate(self) -> dict:
        db = self.fresh_db("separate")
        parts, cpu = {}, 0.0
        for part, args in (("init", ["init"]), ("ingest", ["ingest", str(self.folder)]), ("qa", ["qa"]),
                           ("align", ["align"])):
            parts[part], _, used = self.cli(db, *args)
            cpu += used
        refs = {}
        refs["frames --format json"], done, _ = self.cli(db, "frames", "--format", "json")
        n = len(json.loads(done.stdout))
        refs["--help"], _, _ = self.cli(db, "--help")
        remove_db(db)
        return {"wall": sum(parts.values()), "cpu": cpu, "parts": parts, "startup": refs, "frames": n}

    def run(self) -> dict:
        db = self.fresh_db("run")
        out = self.work / f"run-out-{self.counter}"
        wall, _, cpu = self.cli(db, "run", str(self.folder), "--out", str(out), *self.run_flags)
        remove_db(db)
        shutil.rmtree(out, ignore_errors=True)
        return {"wall": wall, "cpu": cpu}

    def child(self, mode: str, *extra: str) -> dict:
        argv = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--folder", str(self.folder),
                *extra]
        wall, done, cpu = timed(argv, self.work, self.env)
        result = last_json(done.stdout)
        result["wall"], result["cpu"] = wall, cpu
        return result

    def api(self) -> dict:
        db = self.fresh_db("api")
        result = self.child("api", "--db", str(db))
        remove_db(db)
        return result

    def today(self) -> dict:
        return self.child("today")

    def measure(self, method: str) -> dict:
        return getattr(self, method)()


def run_flags_available(env: dict, work: Path) -> tuple[list[str], list[str]]:
    """The flags of ``obsdb run`` that skip rendering/report, and the ones it lacks."""
    done = subprocess.run([*obsdb_prefix(), "run", "--help"], cwd=work, env=env, capture_output=True,
                          text=True, check=False)
    text = done.stdout + done.stderr
    have, lack = [], []
    for flag in ("--no-render", "--no-report"):
        (have if flag in text else lack).append(flag)
    return have, lack


def is_import(key) -> bool:
    filename, _, name = key
    return (name == "<module>" or any(s in filename for s in IMPORT_FILES)
            or name in ("<built-in method builtins.exec>", "<built-in method builtins.__import__>",
                        "<built-in method _imp.exec_dynamic>", "<built-in method _imp.create_dynamic>",
                        "<built-in method builtins.compile>", "<built-in method marshal.loads>"))


def short(key) -> str:
    filename, line, name = key
    if filename == "~":
        return name
    path = filename
    for marker in ("/site-packages/", str(ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{line}({name})"


def profile_table(path: Path, top: int) -> dict:
    import pstats

    stats = pstats.Stats(str(path)).stats
    total = max(ct for (_, _, _, ct, _) in stats.values())
    imports = sum(ct for key, (_, _, _, ct, _) in stats.items() if key[2] == "_find_and_load")
    command = next((ct for key, (_, _, _, ct, _) in stats.items()
                    if key[0].endswith(os.path.join("obsdb", "cli", "align_cmds.py")) and key[2] == "align"), None)
    rows = [(ct, nc, tt, short(key)) for key, (_, nc, tt, ct, _) in stats.items()
            if not is_import(key) and not short(key).startswith(WRAPPERS)]
    rows.sort(reverse=True)
    return {"total": total, "imports": imports, "command": command,
            "top": [{"cumulative": ct, "ncalls": nc, "tottime": tt, "function": name}
                    for ct, nc, tt, name in rows[:top]]}


def import_entries(stderr: str) -> list[tuple[int, float, str]]:
    """``-X importtime`` lines as (depth, cumulative s, module), in their printed (post-)order."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|", 2)
        stripped = name.lstrip(" ")
        rows.append(((len(name) - len(stripped) - 1) // 2, int(cumulative) / 1e6, stripped.strip()))
    return rows


def extra_imports(bench: Bench, db: Path, top: int) -> dict:
    """What ``obsdb align`` imports that ``obsdb frames --format json`` does not (outermost such modules)."""
    seen = {}
    for name, args in (("align", ["align"]), ("frames", ["frames", "--format", "json"])):
        _, done, _ = timed([sys.executable, "-X", "importtime", *bench.obsdb[1:], "--db", str(db), *args],
                        bench.work, bench.env)
        seen[name] = import_entries(done.stderr)
    frames = {name for _, _, name in seen["frames"]}
    extra, third = [], []
    stack: list[tuple[int, bool, bool]] = []  # (depth, extra, extra third-party) of the ancestors
    for depth, cumulative, name in reversed(seen["align"]):  # the post-order backwards: parents first
        while stack and stack[-1][0] >= depth:
            stack.pop()
        is_extra = name not in frames
        is_third = is_extra and not name.startswith("obsdb")
        if is_extra and not any(flag for _, flag, _ in stack):
            extra.append((cumulative, name))
        if is_third and not any(flag for _, _, flag in stack):
            third.append((cumulative, name))
        stack.append((depth, is_extra, is_third))
    extra.sort(reverse=True)
    third.sort(reverse=True)
    total = lambda rows: sum(c for d, c, _ in rows if d == 0)  # noqa: E731
    return {"align_imports": total(seen["align"]), "frames_imports": total(seen["frames"]),
            "extra_total": sum(c for c, _ in extra),
            "extra_top": [{"cumulative": c, "module": n} for c, n in extra[:top]],
            "third_party_top": [{"cumulative": c, "module": n} for c, n in third[:top]]}


def profile_align(bench: Bench, top: int) -> dict:
    db = bench.fresh_db("profile")
    bench.cli(db, "init")
    bench.cli(db, "ingest", str(bench.folder))
    bench.cli(db, "qa")
    copies = [bench.work / "profile-cold.sqlite", bench.work / "profile-warm-a.sqlite",
              bench.work / "profile-warm-b.sqlite", bench.work / "profile-importtime.sqlite"]
    for copy in copies:
        shutil.copyfile(db, copy)
    remove_db(db)
    out_cold = bench.work / "align-cold.prof"
    wall_cold, _, _ = timed([sys.executable, "-m", "cProfile", "-o", str(out_cold), *bench.obsdb[1:], "--db",
                          str(copies[0]), "align"], bench.work, bench.env)
    out_warm = bench.work / "align-warm.prof"
    warm = bench.child("profile-warm", "--db", str(copies[2]), "--warm-db", str(copies[1]),
                       "--prof", str(out_warm))
    result = {"cold": {"wall": wall_cold, **profile_table(out_cold, top)},
              "warm": {"wall": warm["wall"], **profile_table(out_warm, top)},
              "imports": extra_imports(bench, copies[3], top)}
    for copy in copies:
        remove_db(copy)
    return result


def med(values) -> float:
    return statistics.median(values)


def fmt_s(x: float) -> str:
    return f"{x:7.3f} s"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(meta: dict, rounds: list[dict], profile: dict | None, top: int) -> dict:
    walls = {m: [r[m]["wall"] for r in rounds] for m in METHODS}
    cpus = {m: [r[m]["cpu"] for r in rounds] for m in METHODS}
    ratios = {m: [r[m]["wall"] / r["today"]["wall"] for r in rounds] for m in ("separate", "run", "api")}
    parts = {p: [r["separate"]["parts"][p] for r in rounds] for p in rounds[0]["separate"]["parts"]}
    refs = {p: [r["separate"]["startup"][p] for r in rounds] for p in rounds[0]["separate"]["startup"]}
    align = med(parts["align"])
    beyond = {name: align - med(values) for name, values in refs.items()}
    api_phases = {p: med(r["api"]["phases"][p] for r in rounds) for p in rounds[0]["api"]["phases"]}
    today_phases = {p: med(r["today"]["phases"][p] for r in rounds) for p in rounds[0]["today"]["phases"]}
    run_is_chain = not meta["run_lacks"]
    summary = {
        "meta": meta,
        "median_wall": {m: med(v) for m, v in walls.items()},
        "median_cpu": {m: med(v) for m, v in cpus.items()},
        "median_parts_separate": {p: med(v) for p, v in parts.items()},
        "median_startup_reference": {p: med(v) for p, v in refs.items()},
        "align_beyond_startup": beyond,
        "median_ratio_to_today": {m: med(v) for m, v in ratios.items()},
        "api_phases": api_phases, "today_phases": today_phases,
        "today_astroalign_errors": [r["today"]["astroalign_errors"] for r in rounds],
        "today_errors_by_type": rounds[-1]["today"]["errors_by_type"],
        "api_aligned": rounds[-1]["api"]["aligned"], "api_runs": rounds[-1]["api"]["runs"],
        "rounds": rounds, "profile": profile,
    }
    targets = {
        "align beyond start-up (frames --format json) <= 0.3 s":
            (beyond["frames --format json"], beyond["frames --format json"] <= TARGET_ALIGN_BEYOND_STARTUP),
        "(a)/(d) separate commands <= 0.5":
            (med(ratios["separate"]), med(ratios["separate"]) <= TARGET_SEPARATE),
        "(b)/(d) obsdb run <= 0.35" + ("" if run_is_chain else " [run renders+reports: not the chain]"):
            (med(ratios["run"]), med(ratios["run"]) <= TARGET_ONE_PROCESS),
        "(c)/(d) API, one process <= 0.35":
            (med(ratios["api"]), med(ratios["api"]) <= TARGET_ONE_PROCESS),
    }
    summary["targets"] = {k: {"value": v, "pass": ok} for k, (v, ok) in targets.items()}
    if meta["json"]:
        print(json.dumps(summary, indent=1, default=str))
        return summary

    line = "-" * WIDTH
    print(line)
    print(f"median wall time over {len(rounds)} round(s), methods alternated (order rotated each round); "
          f"CPU: user + system of the method's processes, median")
    print(line)
    print(f"{'method':<66}{'median':>10}{'min':>8}{'max':>8}{'CPU':>8}")
    for m in METHODS:
        v = walls[m]
        print(f"{LABELS[m]:<66}{med(v):9.3f}s{min(v):7.2f}s{max(v):7.2f}s{med(cpus[m]):7.2f}s")
        if m == "separate":
            for p, pv in parts.items():
                print(f"{'    obsdb ' + p:<66}{med(pv):9.3f}s{min(pv):7.2f}s{max(pv):7.2f}s")
        if m == "run":
            print(f"    argv: obsdb --db X run DIR --out OUT {' '.join(meta['run_flags'])}".rstrip())
            if meta["run_lacks"]:
                print(f"    obsdb run has no {', '.join(meta['run_lacks'])}: it also groups, renders, stacks "
                      "and writes the report")
        if m == "api":
            print("    in-process: " + ", ".join(f"{p} {v:.3f}" for p, v in api_phases.items())
                  + f" s; {summary['api_aligned']} frames aligned in {summary['api_runs']} run(s)")
        if m == "today":
            print("    in-process: " + ", ".join(f"{p} {v:.3f}" for p, v in today_phases.items()) + " s")
            errs = summary["today_astroalign_errors"]
            print(f"    astroalign errors per round: {errs} of {meta['frames']} frames "
                  f"{summary['today_errors_by_type'] or ''}; reference {rounds[-1]['today']['reference']}")
    print("start-up references (same catalog, right after align):")
    for p, pv in refs.items():
        print(f"{'    obsdb ' + p:<66}{med(pv):9.3f}s{min(pv):7.2f}s{max(pv):7.2f}s")
    print(line)
    print("ratios to (d), per round then median")
    print(line)
    for m in ("separate", "run", "api"):
        v = ratios[m]
        print(f"{LABELS[m][:3] + '/(d)':<12}{med(v):8.3f}   rounds: {' '.join(f'{x:.3f}' for x in v)}")
    print(f"align beyond start-up: align {align:.3f} s - frames --format json "
          f"{med(refs['frames --format json']):.3f} s = {beyond['frames --format json']:.3f} s; "
          f"- --help {med(refs['--help']):.3f} s = {beyond['--help']:.3f} s")
    print(line)
    print("targets")
    print(line)
    for name, (value, ok) in targets.items():
        print(f"{verdict(ok):<6}{name:<80}{value:8.3f}")
    if profile:
        for kind, title in (("cold", "python -m cProfile obsdb --db X align (whole process)"),
                            ("warm", "obsdb align profiled in-process after a warm-up run (no imports)")):
            p = profile[kind]
            print(line)
            print(f"profile: {title}")
            print(f"wall {p['wall']:.3f} s under the profiler; profiled total {p['total'] * 1000:.0f} ms, of which "
                  f"imports (all _find_and_load) {p['imports'] * 1000:.0f} ms; the align command function "
                  f"{(p['command'] or 0) * 1000:.0f} ms")
            print(line)
            print(f"{'cumulative ms':>13}{'tottime ms':>11}{'ncalls':>9}  function (import machinery and <module> "
                  "bodies left out)")
            for row in p["top"][:top]:
                print(f"{row['cumulative'] * 1000:13.1f}{row['tottime'] * 1000:11.1f}{row['ncalls']:9d}  "
                      f"{row['function'][:62]}")
        cold, warm = profile["cold"]["command"] or 0, profile["warm"]["command"] or 0
        print(f"align command, cold {cold * 1000:.0f} ms - warm {warm * 1000:.0f} ms = {(cold - warm) * 1000:.0f} ms "
              "of imports and first-call costs inside the command (under the profiler)")
        imp = profile["imports"]
        print(line)
        print(f"python -X importtime: align imports {imp['align_imports'] * 1000:.0f} ms, frames --format json "
              f"{imp['frames_imports'] * 1000:.0f} ms; modules align imports and frames does not "
              f"(outermost): {imp['extra_total'] * 1000:.0f} ms")
        print(line)
        outer = [f"{r['module']} {r['cumulative'] * 1000:.0f}" for r in imp["extra_top"] if r["cumulative"] >= 0.005]
        print("outermost (ms): " + ", ".join(outer))
        print("third-party modules among them, outermost (cumulative ms, as -X importtime gives it):")
        for row in imp["third_party_top"][:min(top, 15)]:
            print(f"{row['cumulative'] * 1000:13.1f}  {row['module']}")
    print(line)
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=27)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--top", type=int, default=25, help="profile entries to print")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile of obsdb align")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the tables")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--warm-db", help=argparse.SUPPRESS)
    parser.add_argument("--prof", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child == "api":
        print(json.dumps(child_api(Path(args.folder), Path(args.db))))
        return 0
    if args.child == "today":
        print(json.dumps(child_today(Path(args.folder))))
        return 0
    if args.child == "profile-warm":
        print(json.dumps(child_profile_warm(Path(args.db), Path(args.warm_db), Path(args.prof))))
        return 0
    if args.child:
        raise SystemExit(f"unknown child {args.child}")

    say = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    work = Path(tempfile.mkdtemp(prefix="obsdb-bench-chain-"))
    folder = work / "night"
    env = child_env()
    try:
        start = time.perf_counter()
        timed([*obsdb_prefix(), "simulate", str(folder), "--frames", str(args.frames), "--size", str(args.size),
               "--seed", str(args.seed)], work, env)
        files = sorted(folder.glob("*.fits"))
        say(f"{len(files)} frames of {args.size}x{args.size} simulated (seed {args.seed}) in "
            f"{time.perf_counter() - start:.1f} s in {folder}")
        for path in files:
            path.read_bytes()
        run_flags, run_lacks = run_flags_available(env, work)
        import platform
        say(f"python {platform.python_version()}, {os.cpu_count()} CPUs; load average before: "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; page cache warmed")
        bench = Bench(folder, work, run_flags)
        say("warm-up round (untimed) ...")
        warm = {m: bench.measure(m) for m in METHODS}
        if warm["separate"]["frames"] != len(files):
            raise SystemExit(f"catalog has {warm['separate']['frames']} frames, expected {len(files)}")
        rounds = []
        for index in range(args.repeat):
            order = METHODS[index % len(METHODS):] + METHODS[:index % len(METHODS)]
            row = {m: bench.measure(m) for m in order}
            row["order"] = list(order)
            rounds.append(row)
            say(f"round {index + 1}/{args.repeat} ({' '.join(order)}): "
                + ", ".join(f"{m} {row[m]['wall']:.2f} s" for m in METHODS))
        profile = None if args.no_profile else profile_align(bench, args.top)
        meta = {"frames": len(files), "size": args.size, "seed": args.seed, "repeat": args.repeat,
                "run_flags": run_flags, "run_lacks": run_lacks, "json": args.json,
                "load_after": os.getloadavg(), "python": platform.python_version()}
        say(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        report(meta, rounds, profile, args.top)
    finally:
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
