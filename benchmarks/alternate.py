"""One obsdb command under several versions of obsdb, alternated: wall and CPU time, and the output.

On a shared machine two runs a minute apart differ by 20-30 %, so versions are compared within one
run, taking turns.  Each version is a folder holding an ``obsdb`` package (``git archive COMMIT obsdb
| tar -x -C DIR``), a commit of this repository (unpacked so into a temporary folder), or ``this``
(this checkout).  Each run is ``python -m obsdb --db DB ARGS`` with the version's folder first on
``PYTHONPATH``, started from a temporary working folder: ``python -m`` puts the working folder ahead
of ``PYTHONPATH``, so started from the checkout it would run this checkout's obsdb whatever the
version asked for.  The standard output goes to a file; its SHA-256 is compared across versions.

``--callgrind`` also counts each version's instructions once, under ``valgrind --tool=callgrind``
with ``PYTHONHASHSEED=0``: a figure the machine's other work does not move (a run takes about 50x
its usual time).

Run::

    python benchmarks/alternate.py --db /tmp/lead-1m.sqlite --versions 4e7d72b this --rounds 8 \\
        -- rejected --band V --night all
    python benchmarks/alternate.py --db DB --versions 4e7d72b this --rounds 0 --callgrind -- rejected

A change that adds a catalog revision needs two copies of the catalog, one per revision (an older
obsdb refuses a newer catalog): ``--db`` names the one of ``this``, ``--version-db VERSION=DB`` another
version's (``cp`` the file, or ``CREATE DATABASE b TEMPLATE a``, before ``obsdb init`` upgrades one)::

    python benchmarks/alternate.py --db /tmp/new-1m.sqlite --version-db /tmp/old-main=/tmp/lead-1m.sqlite \
        --versions /tmp/old-main this --rounds 8 -- rejected --band V --night all
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _children import ROOT, children_cpu, machine_line  # noqa: E402 - benchmarks/ is on sys.path when run

def unpack(version: str, into: Path) -> Path:
    """The folder holding ``version``'s ``obsdb`` package."""
    if version == "this":
        return ROOT
    if (Path(version) / "obsdb" / "__init__.py").is_file():
        return Path(version).resolve()
    folder = into / re.sub(r"[^\w.-]", "_", version)
    folder.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", version, "obsdb"], capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(f"{version}: neither a folder with an obsdb package nor a commit "
                         f"({archive.stderr.decode(errors='replace').strip()})")
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def run_once(code: Path, argv: list[str], cwd: Path, out: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one run; its standard output in ``out``."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    with open(out, "wb") as stdout:
        start, cpu = time.perf_counter(), children_cpu()
        done = subprocess.run([sys.executable, "-m", "obsdb", *argv], cwd=cwd, env=env, stdout=stdout,
                              stderr=subprocess.PIPE, check=False)
        wall, cpu = time.perf_counter() - start, children_cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"{code}: exit code {done.returncode}: {done.stderr.decode(errors='replace')[-2000:]}")
    return wall, cpu


def instructions(code: Path, argv: list[str], cwd: Path) -> int:
    """Instructions of one run under callgrind."""
    env = {**os.environ, "PYTHONPATH": str(code), "PYTHONHASHSEED": "0"}
    done = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={cwd / 'callgrind.out'}",
                           sys.executable, "-m", "obsdb", *argv], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, check=False)
    found = re.search(rb"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or not found:
        raise SystemExit(f"{code}: callgrind failed: {done.stderr.decode(errors='replace')[-2000:]}")
    return int(found.group(1))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="the catalog (a path or a postgresql+psycopg:// URL)")
    parser.add_argument("--versions", nargs="+", required=True,
                        help="folders with an obsdb package, commits, or 'this' (this checkout)")
    parser.add_argument("--version-db", action="append", default=[], metavar="VERSION=DB",
                        help="another catalog for one version (a copy at its revision); repeatable")
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds, versions alternated (default 6)")
    parser.add_argument("--callgrind", action="store_true", help="also count each version's instructions once")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the obsdb command and its options")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the obsdb command after --")
    dbs = {version: args.db for version in args.versions}
    for pair in args.version_db:
        version, _, db = pair.partition("=")
        if version not in dbs or not db:
            parser.error(f"--version-db {pair!r}: expected VERSION=DB with VERSION one of --versions")
        dbs[version] = db
    argvs = {version: ["--db", db, *command] for version, db in dbs.items()}
    with tempfile.TemporaryDirectory(prefix="obsdb-alternate-") as scratch:
        scratch = Path(scratch)
        codes = {version: unpack(version, scratch) for version in args.versions}
        catalogs = "; ".join(f"{version}: {db}" for version, db in dbs.items()) if args.version_db else args.db
        print(f"{machine_line()}; obsdb --db DB {' '.join(command)} > file (DB {catalogs}); {args.rounds} rounds, "
              "versions alternated")
        digests = {}
        for version, code in codes.items():  # untimed: .pyc files, page cache, and the output to compare
            out = scratch / "out"
            run_once(code, argvs[version], scratch, out)
            digests[version] = hashlib.sha256(out.read_bytes()).hexdigest()
        times: dict[str, list[tuple[float, float]]] = {version: [] for version in codes}
        for _ in range(args.rounds):
            for version, code in codes.items():
                times[version].append(run_once(code, argvs[version], scratch, scratch / "out"))
        for version, runs in times.items():
            if runs:
                walls = sorted(wall for wall, _ in runs)
                print(f"{version:<12} wall s {' '.join(f'{w:.2f}' for w in walls)} | median {statistics.median(walls):.3f}, "
                      f"CPU median {statistics.median(cpu for _, cpu in runs):.3f}")
        if args.callgrind:
            for version, code in codes.items():
                print(f"{version:<12} instructions {instructions(code, argvs[version], scratch) / 1e9:.3f} G")
        same = len(set(digests.values())) == 1
        print("output: the same in every version" if same else
              "output differs: " + ", ".join(f"{v} {d[:12]}" for v, d in digests.items()))
        print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
