"""The query commands on one catalog, fast path against the normal (SQLAlchemy) path, alternated.

Each command runs as ``/usr/bin/time -f "%e %U %S %M" obsdb --db DB CMD > /dev/null`` (wall s, user
s, system s, peak RSS KiB): one untimed warm-up on each path, then ``--repeat`` rounds, each round the
fast path (``OBSDB_LITE=1``, this checkout) and at once the same command on the normal path
(``OBSDB_LITE=0``; or with ``--old DIR`` another checkout of obsdb, e.g. main, unpacked with ``git
archive``; or with ``--generic-plans`` the fast path again, on a PostgreSQL catalog whose URL gives
the session options of before ``plan_cache_mode=force_custom_plan``, ``options=-c jit=off``, so that
the server may switch a prepared statement to a generic plan), so that both see the same load on a
shared machine.  It prints every run's ``time`` line,
then per command the median wall and CPU (user + system) of each path and the median of the
per-round ratios normal / fast.  The outputs of the two paths are compared too (``same output`` or
``OUTPUTS DIFFER``: a fast path must print what the normal one prints).

The default commands are the issue's archive-wide ones and a single-night one: ``nights``, ``summary
--night all``, ``rejected --band V --night all``, ``rejected --band V --night NIGHT`` (NIGHT: the
middle night of the catalog, or ``--night``); ``--command 'log -n 5'`` (repeatable) names others.

Run::

    python benchmarks/catalog.py --build-only --db postgresql+psycopg://postgres@127.0.0.1:5432/NAME
    python benchmarks/fast_path.py --db postgresql+psycopg://postgres@127.0.0.1:5432/NAME
    python benchmarks/fast_path.py --db /tmp/obsdb-bench-catalog.sqlite --repeat 5
    python benchmarks/fast_path.py --db postgresql+psycopg://postgres@127.0.0.1:5432/NAME --generic-plans \
        --command 'rejected --band V --night all --format json'
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _children import installed_env, obsdb_prefix  # noqa: E402 - benchmarks/ is on sys.path when run

TIME = "/usr/bin/time"
FORMAT = "%e %U %S %M"
OTHERS = {"normal": "OBSDB_LITE=0", "generic": "the fast path, URL options=-c jit=off (generic plans allowed)"}


def timed(argv, env) -> tuple[list[float], str]:
    """Run ``argv`` under ``/usr/bin/time``, stdout to a file; ([wall, user, sys, KiB], sha256 of stdout)."""
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        done = subprocess.run([TIME, "-f", FORMAT, "-o", report.name, *argv], env=env, stdin=subprocess.DEVNULL,
                              stdout=out, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            sys.exit(f"{shlex.join(argv)} exited with {done.returncode}: {done.stderr.strip()[-500:]}")
        out.seek(0)
        digest = hashlib.sha256(out.read()).hexdigest()
        fields = report.read().split()[-4:]
    return [float(x) for x in fields], digest


def middle_night(db: str, env) -> str:
    """The middle night of the catalog (``nights --format json``)."""
    done = subprocess.run(obsdb_prefix() + ["--db", db, "nights", "--format", "json"], env=env,
                          capture_output=True, text=True, check=True)
    nights = [n["night"] for n in json.loads(done.stdout)]
    return nights[len(nights) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="the catalog: a path or a URL")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds per command (default 3)")
    parser.add_argument("--night", help="the night of the single-night command (default: the middle one)")
    parser.add_argument("--command", action="append", help="a command to time instead of the defaults "
                                                           "(repeatable), e.g. 'log -n 5'")
    parser.add_argument("--old", metavar="DIR", help="compare with this checkout of obsdb instead of OBSDB_LITE=0")
    parser.add_argument("--generic-plans", action="store_true",
                        help="compare with the fast path in PostgreSQL sessions that allow generic plans")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not os.access(TIME, os.X_OK):
        sys.exit(f"{TIME} is needed (apt-get install time)")
    env = installed_env()
    fast_env = {**env, "OBSDB_LITE": "1"}
    other_db = args.db
    if args.old:
        other_env, other = {**env, "PYTHONPATH": str(Path(args.old).resolve())}, "old"
    elif args.generic_plans:
        if "://" not in args.db:
            parser.error("--generic-plans compares PostgreSQL session settings: give a postgresql+psycopg:// URL")
        other_env, other = fast_env, "generic"
        other_db = args.db + ("&" if "?" in args.db else "?") + "options=-c%20jit%3Doff"
    else:
        other_env, other = {**env, "OBSDB_LITE": "0"}, "normal"
    night = args.night or middle_night(args.db, env)
    commands = args.command or ["nights", "summary --night all", "rejected --band V --night all",
                                f"rejected --band V --night {night}"]
    from datetime import datetime, timezone

    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: python benchmarks/fast_path.py "
          f"{shlex.join(sys.argv[1:])}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"each run: {TIME} -f '{FORMAT}' obsdb --db DB CMD > file (wall s, user s, sys s, peak KiB); "
          f"fast: OBSDB_LITE=1; {other}: {OTHERS.get(other, args.old)}; alternated")
    summary = []
    for command in commands:
        argv = obsdb_prefix() + ["--db", args.db, *shlex.split(command)]
        other_argv = obsdb_prefix() + ["--db", other_db, *shlex.split(command)]
        timed(argv, fast_env)
        timed(other_argv, other_env)
        fast_runs, other_runs, digests = [], [], set()
        for _ in range(args.repeat):
            for runs, run_argv, run_env in ((fast_runs, argv, fast_env), (other_runs, other_argv, other_env)):
                figures, digest = timed(run_argv, run_env)
                runs.append(figures)
                digests.add(digest)
        print(f"\n{command}")
        for label, runs in (("fast", fast_runs), (other, other_runs)):
            for wall, user, system, kib in runs:
                print(f"  {label:<6} {wall:.2f} {user:.2f} {system:.2f} {kib:.0f}")
        med = statistics.median
        ratio = med(o[0] / f[0] for f, o in zip(fast_runs, other_runs))
        summary.append((command, med(r[0] for r in fast_runs), med(r[1] + r[2] for r in fast_runs),
                        med(r[0] for r in other_runs), med(r[1] + r[2] for r in other_runs), ratio,
                        "same output" if len(digests) == 1 else "OUTPUTS DIFFER"))
    width = max(len(row[0]) for row in summary)
    print(f"\n{'command':<{width}}  fast wall s  CPU s  {other} wall s  CPU s  {other}/fast  outputs")
    for command, fast_wall, fast_cpu, other_wall, other_cpu, ratio, same in summary:
        print(f"{command:<{width}}  {fast_wall:11.2f}  {fast_cpu:5.2f}  {other_wall:{len(other) + 7}.2f}  "
              f"{other_cpu:5.2f}  {ratio:{len(other) + 5}.1f}x  {same}")


if __name__ == "__main__":
    main()
