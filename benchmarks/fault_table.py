"""The reliability table: N trials of each fault at a random point of each command, on each backend.

    python benchmarks/fault_table.py --trials 3
    python benchmarks/fault_table.py --trials 1 --backend sqlite --command init --command render

Each trial is :func:`tests.pipeline.test_fault_injection.run_trial`: the command with the fault (kill -9, Ctrl-C, a
full disk, the PostgreSQL server stopping), then the fault cleared and the command run again, judged as
``recovered`` (the faulted command finished or died silently, the next one finished the work), ``advice``
(the faulted command printed one line of known advice, the next one finished the work), ``LOST`` (something
acknowledged is gone, or the next run could not finish) or ``bad`` (a traceback, an ``unexpected`` error, a
500 from the desk, a message not in the advice list).  Prints one Markdown table row per cell as it
finishes; the exit status is 1 when any cell holds a LOST or bad trial.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    from tests.pipeline.test_fault_injection import BACKENDS, COMMANDS, faults_for, make_world, postgres_answers, ready, run_trial

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3, help="trials per (command, fault, backend)")
    parser.add_argument("--backend", action="append", choices=BACKENDS, help="repeatable; default both")
    parser.add_argument("--command", action="append", choices=COMMANDS, help="repeatable; default all")
    parser.add_argument("--fault", action="append", help="repeatable; default all")
    args = parser.parse_args(argv)
    import signal

    # A terminated run still unmounts its small disks and drops its databases (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    backends = args.backend or [b for b in BACKENDS if b != "postgresql" or postgres_answers()]
    commands = args.command or list(COMMANDS)
    started = time.monotonic()
    failures = 0
    with tempfile.TemporaryDirectory(prefix="obsdb-faults-") as tmp:
        world = make_world(Path(tmp))
        disk = ("a tmpfs of the catalog's and outputs' folder, filled to a random free space" if world.tmpfs
                else "RLIMIT_FSIZE of a random size on the command (EFBIG)")
        print(f"{args.trials} trials per cell; disk full: {disk}; server stop: a TCP proxy cut at a random point\n")
        print("| command | fault | backend | trials | recovered | advice printed | LOST or bad |")
        print("|---|---|---|---|---|---|---|", flush=True)
        try:
            for command in commands:
                for backend in backends:
                    ready(world, backend, command)
                    for fault in faults_for(backend):
                        if args.fault and fault not in args.fault:
                            continue
                        outcomes = [_trial(run_trial, world, backend, command, fault, seed, Path(tmp))
                                    for seed in range(args.trials)]
                        kinds = Counter(o.kind for o in outcomes)
                        advice = Counter(_short(o.detail) for o in outcomes if o.kind == "advice")
                        wrong = [str(o) for o in outcomes if o.kind in ("LOST", "bad")]
                        failures += len(wrong)
                        print(f"| {command} | {fault} | {backend} | {len(outcomes)} | {kinds['recovered']} | "
                              + ("; ".join(f"{n} x `{text}`" for text, n in advice.items()) or "-") + " | "
                              + ("; ".join(f"`{w[:200]}`" for w in wrong) or "0") + " |", flush=True)
        finally:
            world.close()
    print(f"\n{time.monotonic() - started:.0f} s")
    return 1 if failures else 0


def _trial(run_trial, world, backend, command, fault, seed, tmp):
    """One trial; a failure of the harness itself is shown in the table, and the table goes on."""
    from tests.pipeline.test_fault_injection import Outcome

    try:
        return run_trial(world, backend, command, fault, seed, tmp / f"{command}-{fault}-{backend}-{seed}")
    except Exception as exc:  # noqa: BLE001 - reported in the row, never hidden
        return Outcome("bad", f"harness: {type(exc).__name__}: {exc}")


def _short(line: str) -> str:
    """The advice without the paths and driver text that differ between trials."""
    import re

    line = re.sub(r"^error: ", "", line)
    line = re.sub(r"(sqlite|postgresql)\S*|/\S+", "…", line)
    return re.sub(r" \(.*?\)", "", line)[:160]


if __name__ == "__main__":
    sys.exit(main())
