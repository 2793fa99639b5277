"""Start-up time of the catalog query commands, and the heavy imports each one pays for.

A catalog query (``frames``, ``show``, ``history``, ``rejected``, ``summary``,
``nights``) reads a few rows from SQLite or PostgreSQL and prints them, so nearly
all of its wall time is interpreter start-up and imports.  This script

1. builds a small catalog in a temporary directory (``obsdb init``,
   ``obsdb simulate DIR --frames 6 --size 128``, ``obsdb ingest DIR``; not
   timed), or with ``--backend postgresql`` in a new database on
   ``--pg-server`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432``
   or ``$OBSDB_BENCH_PG``), dropped at the end;
2. times each query command as a subprocess, wall clock start to exit and
   CPU time (user + system, from ``os.wait4``): one untimed warm-up run (it
   also writes the ``.pyc`` files, as an installed copy has them, whatever
   ``PYTHONDONTWRITEBYTECODE`` says; and it tells whether the command works
   at all), then ``--repeat`` runs, each followed at once by a run of the
   baseline ``python -c "import sqlite3"`` (alternated, so that both see the
   same load on a shared machine); it prints the medians and the median of
   the per-pair ratios command / baseline, the figure that travels between
   a busy machine and a quiet one;
3. runs each command once more under ``python -X importtime`` and reports
   the cumulative import time of the heavy packages it actually imported
   (astropy, numpy, scipy, alembic, sqlalchemy, psycopg, rich, typer, matplotlib,
   pandas; also pydantic, which recent typer imports to convert parameters,
   and the imaging packages photutils and sep), at module level or inside
   the functions the command calls.

A package's time is the ``cumulative`` column of ``-X importtime`` summed
over its outermost entries (an entry of the package not nested inside
another entry of the same package).  It therefore includes whatever that
package imported first, so the figures overlap (astropy's includes numpy's
when astropy was the first to import numpy) and do not add up; they answer
"what would this command save without that import".  ``-X importtime``
slows imports down somewhat, so its figures are larger than their share of
the wall-clock medians.

A command that fails (exits non-zero, e.g. one that does not exist yet) is
reported as ``n/a (exit code N)``; the script carries on.

Which obsdb is measured: the checkout this script belongs to (its parent
directory is put first on ``PYTHONPATH`` of every subprocess), run with the
``obsdb`` console script next to ``sys.executable`` (``python -m
obsdb.cli.app`` when there is none).  For reference the script also times
``python -c pass``, ``python -c "import sqlalchemy"``, ``python -c "import psycopg"`` (psycopg 3,
SQLAlchemy's driver) and ``python -c "import psycopg2"`` (the fast path's driver where installed).

Run::

    python benchmarks/startup.py                 # median of 7 runs per command
    python benchmarks/startup.py --repeat 15
    python benchmarks/startup.py --db obsdb.sqlite --frame 1009   # an existing catalog, no setup
    python benchmarks/startup.py --backend postgresql --normal    # PostgreSQL, fast and SQLAlchemy paths
    python benchmarks/startup.py --db postgresql+psycopg://postgres@127.0.0.1:5432/NAME --frame 1234
    git -C /work/main archive main | tar -x -C /tmp/old-startup
    python benchmarks/startup.py --old /tmp/old-startup   # main's code too, alternated in each run

The query commands that :mod:`obsdb.catalog.lite` answers run without SQLAlchemy: their heavy imports
name no ``sqlalchemy`` (``OBSDB_LITE=0`` in the environment turns that fast path off).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

from _children import child_env, obsdb_prefix  # noqa: E402 - benchmarks/ is on sys.path when run
from catalog import PG_SERVER, PostgresStore  # noqa: E402 - the 1M-frame benchmark's database handling

HEAVY = ("astropy", "numpy", "scipy", "alembic", "sqlalchemy", "psycopg", "rich", "typer", "matplotlib", "pandas",
         "pydantic", "photutils", "sep")
ROOT = Path(__file__).resolve().parents[1]
WIDTH = 98


def run(argv, cwd, env, capture=False):
    """Run ``argv``; return (wall seconds, return code, stdout, stderr)."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    return wall, proc.returncode, proc.stdout or "", proc.stderr


def setup_catalog(tmp: Path, env, db: str | None = None) -> tuple[str, int]:
    """Create, simulate and ingest a small night (in the catalog ``db``, default an SQLite file in
    ``tmp``); return the catalog and the first frame number."""
    db = db or str(tmp / "obsdb.sqlite")
    night = str(tmp / "night")
    for args in (["init"], ["simulate", night, "--frames", "6", "--size", "128"], ["ingest", night]):
        _, rc, _, err = run(obsdb_prefix() + ["--db", db, *args], tmp, env)
        if rc != 0:
            sys.exit(f"setup failed: obsdb {' '.join(args)} exited with {rc}\n{err.strip()}")
    return db, first_frame(db, tmp, env)


def first_frame(db: str, cwd: Path, env) -> int:
    """The lowest frame number in the catalog (1001, simulate's first, when it cannot be listed)."""
    _, rc, out, _ = run(obsdb_prefix() + ["--db", db, "frames", "--format", "json"], cwd, env, capture=True)
    number = 1001                              # simulate numbers frames from 1001
    if rc == 0:
        try:
            records = json.loads(out)
            number = int(min(r["number"] for r in records if r.get("number") is not None))
        except (ValueError, KeyError, TypeError):
            pass
    return number


def parse_importtime(stderr: str) -> dict[str, float]:
    """Cumulative import ms per heavy package, from ``-X importtime`` output (post-order tree)."""
    roots, pending = [], []                 # nodes: (name, cumulative us, children)
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cum, name_field = line[len("import time:"):].split("|", 2)
        try:
            cum_us = int(cum)
        except ValueError:                  # the header line
            continue
        name = name_field[1:]                # one space after the bar, then 2 per level
        depth = (len(name) - len(name.lstrip(" "))) // 2
        children = []
        while pending and pending[-1][0] > depth:
            children.append(pending.pop()[1])
        node = (name.strip(), cum_us, children[::-1])
        if depth == 0:
            roots.append(node)
        else:
            pending.append((depth, node))
    roots.extend(node for _, node in pending)   # incomplete output: keep what there is

    totals: dict[str, float] = {}

    def walk(node, inside: frozenset):
        name, cum_us, children = node
        pkg = name.split(".")[0]
        if pkg in HEAVY and pkg not in inside:
            totals[pkg] = totals.get(pkg, 0.0) + cum_us / 1000.0
            inside = inside | {pkg}
        for child in children:
            walk(child, inside)

    for root in roots:
        walk(root, frozenset())
    return totals


BASELINE = [sys.executable, "-c", "import sqlite3"]
"""What a query command is compared with: the interpreter and the stdlib driver, nothing else."""


def run_timed(argv, cwd, env):
    """Run ``argv``; return (wall s, CPU s user + system, return code)."""

    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, proc.returncode


def measure(label, argv, cwd, env, repeat, importtime_argv=None, old_env=None):
    """(label, 'wall s, CPU s, ratio' or 'n/a (exit code N)', heavy imports text).

    ``old_env``: also run ``argv`` with this environment (another checkout first on PYTHONPATH),
    alternated with the new code and the baseline in every repetition, and add its medians.
    """
    _, rc, _, err = run(argv, cwd, env)      # warm-up: .pyc files, page cache; does it work?
    if rc != 0:
        return label, f"n/a (exit code {rc})", ""
    if old_env is not None:
        run(argv, cwd, old_env)
    walls, cpus, ratios, base_walls = [], [], [], []
    old_walls, old_cpus, old_ratios = [], [], []
    for _ in range(repeat):
        wall, cpu, rc = run_timed(argv, cwd, env)
        if rc != 0:
            return label, f"n/a (exit code {rc})", ""
        if old_env is not None:
            old_wall, old_cpu, _ = run_timed(argv, cwd, old_env)
        base, _, _ = run_timed(BASELINE, cwd, env)
        walls.append(wall)
        cpus.append(cpu)
        base_walls.append(base)
        ratios.append(wall / base)
        if old_env is not None:
            old_walls.append(old_wall)
            old_cpus.append(old_cpu)
            old_ratios.append(old_wall / base)
    heavy = ""
    if importtime_argv is not None:
        _, rc, _, err = run(importtime_argv, cwd, env)
        totals = parse_importtime(err)
        order = sorted(totals, key=lambda p: -totals[p])
        heavy = ", ".join(f"{p}: {totals[p]:.0f}" for p in order) or "none"
    med = statistics.median
    timing = f"{med(walls):.3f} {med(cpus):.3f} {med(ratios):5.1f}x {med(base_walls):.3f}"
    if old_env is not None:
        timing += f" | {med(old_walls):.3f} {med(old_cpus):.3f} {med(old_ratios):5.1f}x"
    return label, timing, heavy


def print_table(rows, title, old=None):
    heading = "wall s CPU s ratio base s" + (f" | {old}: wall s CPU s ratio" if old else "")
    c1 = max(len("command"), *(len(r[0]) for r in rows))
    c2 = max(len(heading), *(len(r[1]) for r in rows))
    c3 = max(WIDTH - c1 - c2 - 4, 30)
    print(title)
    print(f"{'command':<{c1}}  {heading:>{c2}}  heavy imports (package: ms, cumulative)")
    print("-" * WIDTH)
    for label, wall, heavy in rows:
        lines = textwrap.wrap(heavy, c3) or [""]
        print(f"{label:<{c1}}  {wall:>{c2}}  {lines[0]}".rstrip())
        for more in lines[1:]:
            print(f"{'':<{c1}}  {'':>{c2}}  {more}")


@contextmanager
def server_database(args):
    """The URL of a new PostgreSQL database for the small catalog (``--backend postgresql`` without
    ``--db``), dropped on leaving; None otherwise."""
    if args.db or args.backend != "postgresql":
        yield None
        return
    store = PostgresStore(f"{args.pg_server.rstrip('/')}/obsdb_startup_{os.getpid()}")
    store.create()
    try:
        yield store.url
    finally:
        store.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per command (median; default 7)")
    parser.add_argument("--db", help="time the queries on this existing catalog (a path or a URL) instead of "
                                     "building one")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite",
                        help="where the small catalog is built (default sqlite)")
    parser.add_argument("--pg-server", default=os.environ.get("OBSDB_BENCH_PG", PG_SERVER),
                        help=f"PostgreSQL server for --backend postgresql (default $OBSDB_BENCH_PG or {PG_SERVER})")
    parser.add_argument("--frame", type=int, help="frame number for show/history (default: the lowest)")
    parser.add_argument("--old", metavar="DIR",
                        help="also time another checkout of obsdb (e.g. main, unpacked with `git archive`), "
                             "alternated with this one and the baseline in every run")
    parser.add_argument("--normal", action="store_true",
                        help="also time each command on the normal (SQLAlchemy) path, OBSDB_LITE=0, alternated "
                             "with the fast path and the baseline in every run")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.old and args.normal:
        parser.error("--old and --normal both fill the second columns: give one")

    env = child_env()
    # A user's obsdb runs from .pyc files; without them every run compiles obsdb's modules again
    # (tens of ms that no installed copy pays), which PYTHONDONTWRITEBYTECODE=1 would impose here.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    old_env, old = None, None
    if args.old:
        old_env, old = {**env, "PYTHONPATH": str(Path(args.old).resolve())}, "old"
    elif args.normal:
        old_env, old = {**env, "OBSDB_LITE": "0"}, "normal"
    with tempfile.TemporaryDirectory(prefix="obsdb-startup-") as tmp_s, server_database(args) as url:
        tmp = Path(tmp_s)
        if args.db:
            db = args.db if "://" in args.db else str(Path(args.db).resolve())
            first = first_frame(db, tmp, env)
        else:
            db, first = setup_catalog(tmp, env, url)
        if args.frame is not None:
            first = args.frame
        commands = [
            ("frames", ["frames"]),
            ("frames --format json", ["frames", "--format", "json"]),
            ("frames --where", ["frames", "--where", "fwhm > 2 and band in ('V', 'B') or status == 'rejected'"]),
            (f"show {first}", ["show", str(first)]),
            (f"history {first}", ["history", str(first)]),
            ("rejected", ["rejected"]),
            ("summary", ["summary"]),
            ("summary --format json", ["summary", "--format", "json"]),
            ("nights", ["nights"]),
            ("nights --format json", ["nights", "--format", "json"]),
            ("log", ["log"]),
            ("log --format json", ["log", "--format", "json"]),
            ("--help", ["--help"]),
        ]
        rows = []
        for label, cmd in commands:
            rows.append(measure(label, obsdb_prefix() + ["--db", db, *cmd], tmp, env, args.repeat,
                                obsdb_prefix(["-X", "importtime"]) + ["--db", db, *cmd], old_env))
        reference = [
            measure("python -c pass", [sys.executable, "-c", "pass"], tmp, env, args.repeat),
            measure("python -c 'import sqlalchemy'", [sys.executable, "-c", "import sqlalchemy"], tmp,
                    env, args.repeat, [sys.executable, "-X", "importtime", "-c", "import sqlalchemy"]),
            measure("python -c 'import psycopg'", [sys.executable, "-c", "import psycopg"], tmp,
                    env, args.repeat, [sys.executable, "-X", "importtime", "-c", "import psycopg"]),
            measure("python -c 'import psycopg2'", [sys.executable, "-c", "import psycopg2"], tmp,
                    env, args.repeat, [sys.executable, "-X", "importtime", "-c", "import psycopg2"]),
        ]

    where = ROOT if (ROOT / "obsdb" / "__init__.py").is_file() else "the installed package"
    from datetime import datetime, timezone

    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: python benchmarks/startup.py "
          f"{' '.join(sys.argv[1:])}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"obsdb from {where}; {sys.executable} (Python {sys.version.split()[0]}); "
          f"median of {args.repeat} runs after one warm-up; each run alternated with the baseline "
          f"`python -c 'import sqlite3'` (base s: its median wall; ratio: median of command / baseline)"
          + (f"; old: {args.old}, alternated in the same runs" if args.old else "")
          + ("; normal: OBSDB_LITE=0 (the SQLAlchemy path), alternated in the same runs" if args.normal else "")
          + "; the fast path ran where the heavy imports name no sqlalchemy")
    print()
    size = f"6 frames of 128x128 on {'PostgreSQL' if args.backend == 'postgresql' else 'SQLite'}"
    print_table(rows, f"catalog query commands ({args.db or size})", old=old)
    print()
    print_table(reference, "reference")


if __name__ == "__main__":
    main()
