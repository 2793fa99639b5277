"""Plate solutions in storage (obsdb.catalog.astrometry), on SQLite and PostgreSQL: a verified solution is
recorded with its provenance and read back as the frame's WCS; an unverified one never is; a header's own
WCS wins over a recorded solution."""

from __future__ import annotations

import math

import numpy as np
import pytest

from obsdb.api import Catalog
from obsdb.catalog.astrometry import AstrometryStore, UnverifiedSolution
from obsdb.catalog.db import upgrade
from obsdb.imaging.astrometry import SOLVE_VERSION, Solution, SolveHints, Verification, wcs_text
from tests.conftest import write_fits
from tests.solve_helpers import true_wcs


def _solution(wcs, *, passed: bool = True) -> Solution:
    check = Verification(n_reference=20, n_matched=19 if passed else 2, fraction=0.95 if passed else 0.1,
                         residual_arcsec=0.3 if passed else 9.0, residual_pixels=0.05 if passed else 1.5,
                         pixel_scale=7.0, passed=passed, reason="" if passed else "2 of 20 matched")
    return Solution(header_text=wcs_text(wcs), solver="astrometry.net", solver_version="0.93",
                    index="index-tycho2-10 (4110)", hints=SolveHints(150.0, 30.0, 2.0, 5.95, 8.05),
                    verification=check, cpu_seconds=0.4)


@pytest.fixture()
def cat(catalog_url, tmp_path):
    upgrade(catalog_url)
    folder = tmp_path / "frames"
    write_fits(folder / "plain_0001.fits", np.zeros((64, 64), np.float32),
               {"IMAGETYP": "Light Frame", "DATE-OBS": "2026-03-14T22:00:00"})
    header = dict(true_wcs(shape=(64, 64)).to_header())
    write_fits(folder / "withwcs_0002.fits", np.zeros((64, 64), np.float32),
               {"IMAGETYP": "Light Frame", "DATE-OBS": "2026-03-14T22:05:00", **header})
    with Catalog.open(catalog_url) as catalog:
        catalog.ingest([folder])
        yield catalog


def _frame_id(cat, name: str) -> int:
    return next(f["id"] for f in cat.frame_dicts() if f["path"].endswith(name))


def test_a_verified_solution_is_recorded_with_its_provenance_and_is_the_frames_wcs(cat):
    frame = _frame_id(cat, "plain_0001.fits")
    assert cat.wcs(frame) is None
    truth = true_wcs(centre=(10.0, -5.0), shape=(64, 64))
    AstrometryStore(cat.db).record_solution(frame, _solution(truth), author="tester")
    [row] = cat.wcs_solutions([frame])
    assert row["solver"] == "astrometry.net" and row["solver_version"] == "0.93"
    assert row["index"] == "index-tycho2-10 (4110)" and row["algorithm"] == SOLVE_VERSION
    assert row["hints"] == {"ra": 150.0, "dec": 30.0, "radius": 2.0, "scale_low": 5.95, "scale_high": 8.05}
    assert row["n_matched"] == 19 and row["residual_arcsec"] == pytest.approx(0.3)
    assert row["created_at"].tzinfo is not None
    wcs = cat.wcs(frame)
    ra, dec = wcs.all_pix2world([[31.5, 31.5]], 0)[0]
    assert (ra, dec) == pytest.approx(truth.all_pix2world([[31.5, 31.5]], 0)[0], abs=1e-9)
    # solving again replaces the row
    AstrometryStore(cat.db).record_solution(frame, _solution(true_wcs(centre=(11.0, -5.0), shape=(64, 64))),
                                            author="tester")
    assert len(cat.wcs_solutions([frame])) == 1
    assert cat.wcs(frame).all_pix2world([[31.5, 31.5]], 0)[0][0] == pytest.approx(11.0, abs=1e-6)
    assert any(e["command"] == "solve" for e in cat.log(command="solve"))


def test_an_unverified_solution_is_never_recorded(cat):
    frame = _frame_id(cat, "plain_0001.fits")
    with pytest.raises(UnverifiedSolution, match="unverified"):
        AstrometryStore(cat.db).record_solution(frame, _solution(true_wcs(), passed=False), author="tester")
    assert cat.wcs_solutions([frame]) == []
    assert cat.wcs(frame) is None


def test_the_headers_own_wcs_wins_over_a_recorded_solution(cat):
    frame = _frame_id(cat, "withwcs_0002.fits")
    own = cat.wcs(frame)
    assert own is not None
    AstrometryStore(cat.db).record_solution(frame, _solution(true_wcs(centre=(40.0, 0.0), shape=(64, 64))),
                                            author="tester")
    ra, dec = cat.wcs(frame).all_pix2world([[31.5, 31.5]], 0)[0]
    assert math.isclose(ra, 150.1, abs_tol=1e-6) and math.isclose(dec, 29.9, abs_tol=1e-6)
    assert cat.wcs(10_000) is None
