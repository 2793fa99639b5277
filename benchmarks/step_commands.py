"""`obsdb align` and `obsdb render --stack median` as commands: this checkout against another, alternated.

Issue 25: on a small night these two commands' time is mostly fixed costs (interpreter, imports,
catalog open, first calls), which ``benchmarks/siril.py`` shows against Siril.  This script
measures only those two commands, for two checkouts of obsdb, so that a change to their fixed
costs is seen apart from Siril's and the in-process runs' noise:

1. simulates one night (``obsdb simulate DIR --frames N --size S --seed SEED``), makes one
   catalog with ``init``, ``ingest`` and ``qa`` (not timed) and picks the band with the most
   accepted frames, as ``siril.py`` does;
2. runs one untimed warm-up of each checkout (``.pyc`` files, page cache), then ``--repeat``
   rounds; each round runs the new and the old checkout (first one, then the other, swapped in
   every round), each on a fresh copy of the catalog: ``obsdb --db X align --band B`` then
   ``obsdb --db X render --out OUT --band B --stack median``, each timed as a subprocess from
   start to exit: wall seconds and CPU seconds (user + system, from ``os.wait4``);
3. prints the medians of each command for both checkouts and the medians of the per-round
   ratios new / old, wall and CPU.  On a shared machine CPU time is the steadier of the two: it
   is what the command cost, wall time also says how much of the cores it got.

The old checkout is put first on ``PYTHONPATH`` (same interpreter and packages); the new one is
this script's.  Both run from ``.pyc`` files, as installed copies do (``_children.installed_env``).  Run::

    git -C /work/main archive main | tar -x -C /tmp/old-obsdb
    python benchmarks/step_commands.py --old /tmp/old-obsdb --repeat 7
    python benchmarks/step_commands.py --old /tmp/old-obsdb --size 2048 --repeat 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _children import installed_env, obsdb_prefix  # noqa: E402

STEPS = ("align", "render")


def run_timed(argv: list[str], env: dict) -> tuple[float, float]:
    """Wall and CPU seconds of one command; exits with its output when it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    out, err = proc.stdout.read(), proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{out.decode()[-2000:]}\n{err.decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def prepare(tmp: Path, args, env: dict) -> tuple[Path, str]:
    """The night's catalog after init, ingest and qa, and the band to align and stack."""
    night, base = tmp / "night", tmp / "base.sqlite"
    obsdb = obsdb_prefix()
    run_timed([*obsdb, "simulate", str(night), "--frames", str(args.frames), "--size", str(args.size),
               "--seed", str(args.seed)], env)
    for words in (["init"], ["ingest", str(night)], ["qa"]):
        run_timed([*obsdb, "--db", str(base), *words], env)
    done = subprocess.run([*obsdb, "--db", str(base), "frames", "--status", "accepted", "--type", "light",
                           "--format", "csv", "--columns", "band"], env=env, capture_output=True, text=True,
                          check=True)
    bands = done.stdout.split()[1:]
    band = sorted(set(bands), key=lambda b: (-bands.count(b), b))[0]
    return base, band


def one_round(tmp: Path, base: Path, band: str, env: dict, counter: list) -> dict:
    """Align then render on a fresh copy of the catalog; (wall, CPU) of each."""
    counter[0] += 1
    db, out = tmp / f"catalog-{counter[0]}.sqlite", tmp / f"out-{counter[0]}"
    shutil.copyfile(base, db)
    obsdb = [*obsdb_prefix(), "--db", str(db)]
    times = {"align": run_timed([*obsdb, "align", "--band", band], env),
             "render": run_timed([*obsdb, "render", "--out", str(out), "--band", band, "--stack", "median"], env)}
    shutil.rmtree(out, ignore_errors=True)
    db.unlink()
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, required=True, help="the other obsdb checkout (e.g. main, unpacked)")
    parser.add_argument("--frames", type=int, default=21, help="frames in the night (default 21, as siril.py)")
    parser.add_argument("--size", type=int, default=1024, help="frame size, px (default 1024)")
    parser.add_argument("--seed", type=int, default=13, help="seed of the night (default 13, as siril.py)")
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds (default 7)")
    args = parser.parse_args(argv)
    if not (args.old / "obsdb" / "__init__.py").is_file():
        print(f"--old {args.old}: not an obsdb checkout (no obsdb/__init__.py)", file=sys.stderr)
        return 2
    new_env = installed_env()
    old_env = {**new_env, "PYTHONPATH": os.pathsep.join((str(args.old.resolve()), new_env["PYTHONPATH"]))}
    envs = {"new": new_env, "old": old_env}
    started, load = time.strftime("%Y-%m-%d %H:%M", time.gmtime()), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="obsdb-steps-") as name:
        tmp, counter = Path(name), [0]
        base, band = prepare(tmp, args, new_env)
        for which in envs:
            one_round(tmp, base, band, envs[which], counter)  # warm-up
        rounds = []
        for i in range(args.repeat):
            order = ("new", "old") if i % 2 == 0 else ("old", "new")
            rounds.append({which: one_round(tmp, base, band, envs[which], counter) for which in order})
    med = statistics.median
    print(f"{args.frames} frames of {args.size}x{args.size}, band {band}; {args.repeat} rounds, new and old "
          f"alternated; {started} UTC, load average {load:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"new: {Path(__file__).resolve().parents[1]}   old: {args.old}")
    print(f"{'command':<16}{'new wall s':>11}{'old wall s':>11}{'new/old':>9}{'new CPU s':>11}{'old CPU s':>11}"
          f"{'new/old':>9}")
    for step in (*STEPS, "both"):
        def of(r, which, k):
            return sum(r[which][s][k] for s in STEPS) if step == "both" else r[which][step][k]
        cells = []
        for k in (0, 1):
            cells += [med(of(r, "new", k) for r in rounds), med(of(r, "old", k) for r in rounds),
                      med(of(r, "new", k) / of(r, "old", k) for r in rounds)]
        label = "align + render" if step == "both" else step
        print(f"{label:<16}{cells[0]:11.3f}{cells[1]:11.3f}{cells[2]:8.2f}x{cells[3]:11.3f}{cells[4]:11.3f}"
              f"{cells[5]:8.2f}x")
    print("per round, align + render CPU new/old: "
          + " ".join(f"{sum(r['new'][s][1] for s in STEPS) / sum(r['old'][s][1] for s in STEPS):.2f}" for r in rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
