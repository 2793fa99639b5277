"""The source passes ruff (pyproject.toml [tool.ruff]): unused and undefined names, syntax errors, and
invalid escapes in strings (a future SyntaxError).  .ci/run runs ruff itself before the tests; this test
shows a developer the same findings when ruff is installed (it is in the ``test`` extra)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINTED = ["obsdb", "tests", "benchmarks", "migrations"]


def test_ruff_finds_nothing():
    pytest.importorskip("ruff", reason="ruff is not installed: pip install -e '.[test]'")
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *LINTED], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
