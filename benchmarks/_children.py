"""How the benchmarks start ``obsdb`` in a child process: this checkout's code, this interpreter."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def obsdb_prefix(xopts=()) -> list[str]:
    """The command line that starts ``obsdb`` with this interpreter (``xopts``: e.g. ``-X importtime``)."""
    script = Path(sys.executable).with_name("obsdb")
    if script.is_file():
        return [sys.executable, *xopts, str(script)]
    return [sys.executable, *xopts, "-m", "obsdb.cli.app"]


def child_env() -> dict:
    """The environment of a child: no catalog or config from the caller, this checkout first on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("OBSDB_DB", "OBSDB_CONFIG", "OBSDB_DEBUG")}
    if (ROOT / "obsdb" / "__init__.py").is_file():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["COLUMNS"] = "200"
    return env


def installed_env() -> dict:
    """:func:`child_env`, with ``.pyc`` files written and used, as an installed obsdb runs.

    This machine sets ``PYTHONDONTWRITEBYTECODE=1``: without ``.pyc`` files every timed command compiles
    obsdb's own modules from source again, a fixed cost no user pays.  ``benchmarks/startup.py`` drops the variable for the same reason.
    """
    env = child_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def machine_line() -> str:
    """When and on what a benchmark ran: ``2026-12-06 22:41 UTC, load average 1.02, 2 cores``."""
    import time

    return (f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, load average {os.getloadavg()[0]:.2f}, "
            f"{os.cpu_count()} cores")


def children_cpu() -> float:
    """CPU seconds (user + system) of the children this process has waited for (and of theirs)."""
    import resource

    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def process_cpu() -> float:
    """CPU seconds (user + system) of this process and of the children it waited for (a pool's
    workers, once it is shut down)."""
    import resource

    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime + children_cpu()


def tune_allocator_as_the_commands_do() -> None:
    """The allocator setting that obsdb's pixel commands make (absent from an old checkout: then nothing)."""
    try:
        from obsdb.pipeline.allocator import tune_for_frames
    except ImportError:
        return
    tune_for_frames()
