"""kill -9 at random points of ingest, qa, align, render and report (``--workers 2``).

After each kill: the catalog passes SQLite's integrity check, no worker of
the killed command is alive 5 s later, the next run of the same command
leaves no temporary file behind, and the answers at the end (frames,
statuses, reasons, shifts, outputs) are those of an uninterrupted run.
One trial per command runs in the default suite; ``-m slow`` runs more.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest


# Commands killed in the middle, in subprocesses: a system test, run by .ci/run with the slow ones.
pytestmark = pytest.mark.system

STEPS = ["ingest", "qa", "align", "render", "report"]


def _command(step: str, night: Path, root: Path) -> list[str]:
    return {"ingest": ["ingest", str(night), "--workers", "2"],
            "qa": ["qa"],
            "align": ["align", "--workers", "2"],
            "render": ["render", "--out", str(root / "aligned"), "--stack", "median", "--workers", "2"],
            "report": ["report", "--out", str(root / "report"), "--workers", "2"]}[step]


def _run(db: Path, args: list[str], **kwargs) -> subprocess.Popen:
    env = dict(os.environ, OBSDB_DB=str(db), COLUMNS="100")
    return subprocess.Popen([sys.executable, "-m", "obsdb.cli.app", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _finish(db: Path, args: list[str]) -> None:
    proc = _run(db, args)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, (args, err)
    assert "unexpected" not in err, err


def _children(pid: int) -> set[int]:
    """Every descendant of ``pid`` now (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _answers(db: Path, root: Path) -> dict:
    """What a user asks of the catalog at the end, without ids, times and run numbers."""
    listing = subprocess.run([sys.executable, "-m", "obsdb.cli.app", "--db", str(db), "frames", "--format", "json"],
                             capture_output=True, text=True, check=True).stdout
    frames = sorted(
        (r["file_name"], r["status"], tuple(r["reasons"]), r["readable"],
         None if not r["shift"] else (round(r["shift"]["dx"], 4), round(r["shift"]["dy"], 4)))
        for r in json.loads(listing))
    outputs = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                     if p.is_file() and p.suffix in (".fits", ".html"))
    return {"frames": frames, "outputs": outputs}


def _leftovers(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*.part"))


@pytest.fixture(scope="module")
def night(tmp_path_factory, simulated_nights):
    root = tmp_path_factory.mktemp("kill")
    simulated_nights.copy(root / "night", seed=91, size=256, n_frames=12, bands=("V", "R"), n_groups=1)
    serial = root / "serial"
    serial.mkdir()
    db = serial / "obsdb.sqlite"
    _finish(db, ["init"])
    for step in STEPS:
        _finish(db, _command(step, root / "night", serial))
    return root, _answers(db, serial)


def _trial(night, step: str, seed: int, tmp_path: Path) -> None:
    root, expected = night
    rng = random.Random(seed)
    db = tmp_path / "obsdb.sqlite"
    _finish(db, ["init"])
    for before in STEPS[:STEPS.index(step)]:
        _finish(db, _command(before, root / "night", tmp_path))
    proc = _run(db, _command(step, root / "night", tmp_path))
    # Random points from start-up to well into the work (the steps take 1-4 s here).
    time.sleep(rng.uniform(0.4, 2.5))
    family = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(pid) for pid in family):
        time.sleep(0.1)
    assert not [pid for pid in family if _alive(pid)], f"workers of the killed {step} still alive after 5 s"
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    _finish(db, _command(step, root / "night", tmp_path))
    assert _leftovers(tmp_path) == []
    for after in STEPS[STEPS.index(step) + 1:]:
        _finish(db, _command(after, root / "night", tmp_path))
    assert _answers(db, tmp_path) == expected


@pytest.mark.parametrize("step", STEPS)
def test_kill_9_once_per_command(night, step, tmp_path):
    _trial(night, step, seed=STEPS.index(step), tmp_path=tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 5))
@pytest.mark.parametrize("step", STEPS)
def test_kill_9_at_more_random_points(night, step, seed, tmp_path):
    _trial(night, step, seed=100 * seed + STEPS.index(step), tmp_path=tmp_path)
