"""`obsdb solve` end to end on a simulated 2-degree night made from the index's own stars: the reference
is solved within 1 arcsec of its true WCS and recorded; solving again is a no-op; a wrong solution is
refused and nothing is recorded; a missing solver is one line saying what to install."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from obsdb.api import Catalog
from obsdb.cli.app import app
from obsdb.imaging import astrometry
from tests.solve_helpers import FRAME_SCALE, FRAME_SHAPE, require_solver, write_wide_field_frames

runner = CliRunner()
POINTS = [(0, 0), (FRAME_SHAPE[1] - 1, 0), (0, FRAME_SHAPE[0] - 1), (FRAME_SHAPE[1] - 1, FRAME_SHAPE[0] - 1),
          ((FRAME_SHAPE[1] - 1) / 2, (FRAME_SHAPE[0] - 1) / 2)]


@pytest.fixture(scope="module")
def wide_night(tmp_path_factory):
    require_solver()
    root = tmp_path_factory.mktemp("wide")
    truths = write_wide_field_frames(root / "night")
    db = root / "obsdb.sqlite"
    with Catalog.open(db, create=True) as cat:
        cat.ingest([root / "night"])
        cat.qa()
    return db, truths


def _invoke(db, *args):
    return runner.invoke(app, ["--db", str(db), *args], catch_exceptions=False)


def _offsets(solved, truth) -> np.ndarray:
    a = solved.all_pix2world(np.array(POINTS, float), 0)
    b = truth.all_pix2world(np.array(POINTS, float), 0)
    return astrometry._separation_arcsec(a[:, 0], a[:, 1], b[:, 0], b[:, 1])


def test_solve_records_the_references_wcs_within_an_arcsecond(wide_night):
    db, truths = wide_night
    result = _invoke(db, "solve", "--format", "json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert row["outcome"] == "solved", row
    assert row["pixel_scale"] == pytest.approx(FRAME_SCALE, rel=1e-3)
    assert row["n_matched"] >= 10 and row["residual_arcsec"] < 1.0
    with Catalog.open(db) as cat:
        frame = next(f for f in cat.frame_dicts() if f["id"] == row["frame_id"])
        wcs = cat.wcs(row["frame_id"])
        [recorded] = cat.wcs_solutions([row["frame_id"]])
        others = [f["id"] for f in cat.frame_dicts() if f["id"] != row["frame_id"]]
        assert all(cat.wcs(i) is None for i in others)         # only the reference was solved
    name = frame["path"].rsplit("/", 1)[-1]
    offsets = _offsets(wcs, truths[name])
    print(f"simulated night: reference {name} solved, {row['n_matched']}/{row['n_reference']} matched, "
          f"residual {row['residual_arcsec']:.2f}\", worst of 5 points {offsets.max():.2f}\"")
    assert offsets.max() < 1.0, offsets
    assert recorded["hints"]["scale_low"] < FRAME_SCALE < recorded["hints"]["scale_high"]
    assert recorded["index"].startswith("index-tycho2-")

    again = _invoke(db, "solve", "--format", "json")
    assert again.exit_code == 0
    assert [r["outcome"] for r in json.loads(again.output)] == ["current"]


def test_every_frame_can_be_solved_and_each_gets_its_own_dither(wide_night):
    db, truths = wide_night
    result = _invoke(db, "solve", "--all-frames", "--format", "csv")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("frame,night,outcome")
    assert len(lines) == 1 + len(truths)
    with Catalog.open(db) as cat:
        for frame in cat.frame_dicts():
            name = frame["path"].rsplit("/", 1)[-1]
            assert _offsets(cat.wcs(frame["id"]), truths[name]).max() < 1.0, name


def test_a_wrong_solution_is_refused_and_not_recorded(wide_night, monkeypatch, tmp_path):
    db, _ = wide_night
    run = astrometry._run_solve_field

    def run_and_spoil(program, folder, *args):
        log = run(program, folder, *args)
        from astropy.io import fits

        # The solver paired the wrong stars: its matches, each index star given another's frame star.
        with fits.open(folder / "stars.corr", mode="update") as hdus:
            data = hdus[1].data
            order = np.roll(np.arange(len(data)), 1)
            data["index_ra"], data["index_dec"] = data["index_ra"][order].copy(), data["index_dec"][order].copy()
        return log

    monkeypatch.setattr(astrometry, "_run_solve_field", run_and_spoil)
    with Catalog.open(db) as cat:
        before = cat.wcs_solutions()
        outcomes = cat.solve(frame="1002", force=True)
        assert [o.outcome for o in outcomes] == ["refused"]
        assert "verification failed" in outcomes[0].reason
        assert cat.wcs_solutions() == before


def test_the_table_and_the_missing_solver(wide_night, monkeypatch):
    db, _ = wide_night
    table = _invoke(db, "solve", "--frame", "1001")
    assert table.exit_code == 0
    assert "already solved" in table.output or "solved" in table.output
    assert max(len(line) for line in table.output.splitlines()) <= 80
    monkeypatch.setattr(astrometry.shutil, "which", lambda name: None)
    missing = _invoke(db, "solve", "--frame", "1001", "--force")
    assert missing.exit_code == 1
    assert "apt-get install astrometry.net astrometry-data-tycho2-" in missing.output
    assert "Traceback" not in missing.output and len(missing.output.strip().splitlines()) == 1


def test_real_frames_with_a_header_wcs_keep_it(real_data, tmp_path):
    """The Lowell light's SCAMP TPV WCS (numbers written as text) and the M 67 scan's DSS plate solution
    are the frames' WCS; solve leaves them alone (no solver needed to say so)."""
    import shutil

    folder = tmp_path / "real"
    folder.mkdir()
    lowell = real_data / "lowell42_raw_night" / "20190326.0140.fits.gz"
    shutil.copy(lowell, folder)
    shutil.copy(real_data / "single" / "M67_DSS_POSS1_M6707HH.fits.gz", folder)
    with Catalog.open(tmp_path / "obsdb.sqlite", create=True) as cat:
        cat.ingest([folder])
        ids = {f["path"].rsplit("/", 1)[-1]: f["id"] for f in cat.frame_dicts()}
        outcomes = [cat.solve(frame=str(folder / name))[0] for name in sorted(ids)]
        assert [o.outcome for o in outcomes] == ["header-wcs", "header-wcs"]
        lowell_wcs = cat.wcs(ids[lowell.name])
        m67_wcs = cat.wcs(ids["M67_DSS_POSS1_M6707HH.fits.gz"])
        assert cat.wcs_solutions() == []
    # the mount's pointing (RA 08:18:29.9, Dec +25:20:01) lies on the frame, near the reference pixel,
    # and the scale is SCAMP's 1.107"/px (CD1_1 = -0.000307)
    x, y = lowell_wcs.all_world2pix([[124.624583, 25.333611]], 0)[0]
    assert 0 < x < 1432 and 0 < y < 1370
    from astropy.wcs.utils import proj_plane_pixel_scales

    assert np.mean(proj_plane_pixel_scales(lowell_wcs)) * 3600 == pytest.approx(1.107, abs=0.005)
    assert lowell_wcs.wcs.ctype[0].startswith("RA---TPV") or lowell_wcs.wcs.ctype[0].startswith("RA---TAN")
    ra, dec = m67_wcs.all_pix2world([[529.0, 529.0]], 0)[0]
    assert abs(ra - 132.834) < 0.01 and abs(dec - 11.812) < 0.01         # M 67


def test_an_empty_catalog_says_there_is_nothing_to_solve(tmp_path):
    db = tmp_path / "empty.sqlite"
    assert _invoke(db, "init").exit_code == 0
    result = _invoke(db, "solve")
    assert result.exit_code == 1
    assert result.output.strip() == "error: no frame to solve: ingest and accept light frames first, or name one " \
                                    "with --frame"
