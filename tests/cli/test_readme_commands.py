"""Every shell command the README shows (beyond the two install commands) runs as written and exits 0.

The README's bash blocks are run in order in a fresh folder: `obsdb-demo` is made first by the demo
itself (a smaller night: ``--frames 12 --size 256``), and the night folder of "Your own night" by
``obsdb simulate``.  ``obsdb ... serve`` is started on a free port, must answer its first page, and is
then stopped.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OBSDB = [sys.executable, "-m", "obsdb.cli.app"]


def readme_commands() -> list[str]:
    """The command lines of the README's bash blocks, comments dropped, the install commands left out."""
    text = (ROOT / "README.md").read_text()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
            if line and "python3 -m venv" not in line:
                lines.append(line)
    return lines


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(words: list[str], cwd: Path, env: dict) -> None:
    port = _free_port()
    server = subprocess.Popen([*OBSDB, *words, "--port", str(port)], cwd=cwd, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
                    assert page.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "the review desk did not answer within 60 s"
                time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_readme_lists_the_tour_and_your_own_night():
    commands = readme_commands()
    assert any(c.startswith("obsdb rejected") for c in commands)
    assert any(c.startswith("obsdb run ") for c in commands)
    assert any(c.endswith(" serve") for c in commands)


@pytest.mark.system  # the whole README, a command at a time in subprocesses, a server included
def test_every_readme_command_runs_as_written(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OBSDB_DB", "OBSDB_CONFIG")}
    env["COLUMNS"] = "100"
    done = subprocess.run([*OBSDB, "demo", "--out", "obsdb-demo", "--frames", "12", "--size", "256"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    made = {"obsdb-demo"}
    for line in readme_commands():
        words = shlex.split(line)
        if words[0] == "export":
            name, value = words[1].split("=", 1)
            env[name] = value
            continue
        assert words[0] == "obsdb", line
        words = words[1:]
        if words[0] == "demo":
            continue          # made above, smaller
        if words[0] == "run":
            night = words[1]
            if night not in made:
                simulated = subprocess.run([*OBSDB, "simulate", night, "--frames", "9", "--size", "256"],
                                           cwd=tmp_path, env=env, capture_output=True, text=True)
                assert simulated.returncode == 0, simulated.stderr[-2000:]
                made.add(night)
        if words[-1] == "serve":
            _serve(words, tmp_path, env)
            continue
        done = subprocess.run([*OBSDB, *words], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, (line, done.stdout[-2000:], done.stderr[-2000:])
