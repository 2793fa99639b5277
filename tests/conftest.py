"""Shared fixtures: where the real frames live, and how their absence is handled."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("OBSDB_REAL_DATA", PROJECT_ROOT.parent / "shared" / "data" / "real"))


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The folder of real frames (../shared/data/real).

    Skips when it is absent, unless ``OBSDB_REQUIRE_REAL_DATA=1`` (set by
    ``.ci/run``), where a missing folder is a failure.
    """
    if not REAL_DATA.is_dir():
        message = f"real frames not found at {REAL_DATA}"
        if os.environ.get("OBSDB_REQUIRE_REAL_DATA") == "1":
            pytest.fail(message + " (OBSDB_REQUIRE_REAL_DATA=1)")
        pytest.skip(message)
    return REAL_DATA
