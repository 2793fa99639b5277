"""Concurrent writers lose nothing: the final catalog is the one a serial run gives, on both backends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from obsdb import Catalog

# Several processes writing one catalog at once: a system test, run by .ci/run with the slow ones.
pytestmark = pytest.mark.system

SMALL = dict(size=160, bands=("V",), n_groups=1, cloud_fraction=0, trail_fraction=0, defocus_fraction=0)


def _facts(url: str) -> list[tuple]:
    with Catalog.open(url) as catalog:
        return sorted((Path(r["path"]).name, r["shape"], r["date_obs"], r["number"], r["night"], r["readable"],
                       round(r["stats"]["median"], 6) if r["stats"] else None) for r in catalog.frame_dicts())


def test_an_ingest_that_loses_the_race_for_a_new_file_verifies_the_winners_row(tmp_path, catalog_url, copy_night):
    """Another ingest inserts the same files between this one's look-up and its insert."""
    import obsdb.catalog.writes as writes

    copy_night(tmp_path / "night", seed=71, n_frames=3, **SMALL)
    with Catalog.open(catalog_url, create=True):
        pass
    real = writes.ensure_nights
    raced = []

    def rival_first(session, nights):
        if not raced:
            raced.append(True)
            with Catalog.open(catalog_url) as rival:     # a second process, as far as the database knows
                rival.ingest([tmp_path / "night"])
        return real(session, nights)

    with Catalog.open(catalog_url) as catalog:
        writes.ensure_nights = rival_first
        try:
            report = catalog.ingest([tmp_path / "night"])
        finally:
            writes.ensure_nights = real
    assert raced and report.failed == []
    assert len(report.added) + len(report.unchanged) == 3
    facts = _facts(catalog_url)
    assert len(facts) == 3 and all(f[4] for f in facts)


def _obsdb(url: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, OBSDB_DB=url, COLUMNS="100")
    return subprocess.Popen([sys.executable, "-m", "obsdb.cli.app", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_three_ingests_of_overlapping_folders_at_once_equal_one_serial_ingest(tmp_path, catalog_url, copy_night):
    for index, name in enumerate("abc"):
        copy_night(tmp_path / "night" / name, seed=80 + index, n_frames=4, first_number=1001 + 10 * index,
                   **SMALL)
    folders = [str(tmp_path / "night" / name) for name in "abc"]
    with Catalog.open(catalog_url, create=True):
        pass
    procs = [_obsdb(catalog_url, "ingest", folders[0], folders[1]),
             _obsdb(catalog_url, "ingest", folders[1], folders[2]),
             _obsdb(catalog_url, "ingest", folders[2], folders[0], "--workers", "2")]
    outputs = [proc.communicate(timeout=240) for proc in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        assert "error" not in err.lower() and "unexpected" not in err, err
    serial = f"sqlite:///{tmp_path / 'serial.sqlite'}"
    with Catalog.open(serial, create=True) as catalog:
        catalog.ingest(folders)
    assert _facts(catalog_url) == _facts(serial)
    assert len(_facts(serial)) == 12


def _answers(url: str) -> list[tuple]:
    with Catalog.open(url) as catalog:
        return sorted((r["file_name"], r["status"], tuple(r["reasons"]),
                       None if not r["shift"] else (round(r["shift"]["dx"], 4), round(r["shift"]["dy"], 4)))
                      for r in catalog.frame_dicts())


def _wait(procs) -> None:
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert "unexpected" not in err and "Traceback" not in err, err


def test_qa_during_ingest_two_aligns_at_once_and_tagging_during_render(tmp_path, catalog_url, copy_night):
    night = tmp_path / "night"
    copy_night(night, seed=75, n_frames=10, size=192, bands=("V", "R"), n_groups=1)
    serial = f"sqlite:///{tmp_path / 'serial.sqlite'}"
    with Catalog.open(serial, create=True) as catalog:
        catalog.ingest([night])
        catalog.qa()
        catalog.align()
        catalog.tag("1003", "tracking-slight", reason="doubled stars", author="tester")
    with Catalog.open(catalog_url, create=True):
        pass
    # qa while the ingest is still writing: each sees a consistent catalog; a second qa finishes the job.
    _wait([_obsdb(catalog_url, "ingest", str(night)), _obsdb(catalog_url, "qa")])
    _wait([_obsdb(catalog_url, "qa")])
    _wait([_obsdb(catalog_url, "align"), _obsdb(catalog_url, "align", "--workers", "2")])
    _wait([_obsdb(catalog_url, "render", "--out", str(tmp_path / "out"), "--workers", "2"),
           _obsdb(catalog_url, "tag", "1003", "tracking-slight", "--reason", "doubled stars")])
    assert _answers(catalog_url) == _answers(serial)
    assert any(status == "rejected" and "tracking-slight" in " ".join(reasons)
               for name, status, reasons, _ in _answers(catalog_url) if "1003" in name)
