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
