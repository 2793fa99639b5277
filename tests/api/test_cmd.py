"""`Catalog.cmd`: one row per source, per band the weighted mean of its unflagged differential magnitudes over
the accepted frames, and the colour; errors for a band with no photometry, a bad standards file, no WCS."""

import math

import numpy as np
import pytest

from obsdb import Catalog
from obsdb.errors import ObsdbError

NIGHT = dict(seed=24, size=192, n_frames=8, bands=("B", "V"), n_groups=1, cloud_fraction=0.0,
             trail_fraction=0.0, defocus_fraction=0.0)


@pytest.fixture(scope="module")
def measured(simulated_nights, tmp_path_factory):
    base = tmp_path_factory.mktemp("cmd")
    simulated_nights.copy(base / "night", **NIGHT)
    Catalog.run(base / "night", base / "out", render_outputs=False, report=False)
    catalog = Catalog.open(base / "out" / "obsdb.sqlite")
    yield catalog, base
    catalog.close()


def _by_hand(catalog, band, frame_ids=None):
    """Per source, the inverse-variance mean of mag - zero_point over unflagged rows (of these frames)."""
    rows = catalog.photometry(band=band)
    sums = {}
    for r in rows:
        if r["source"] < 0 or r["flags"] or not math.isfinite(r["mag"]) or not math.isfinite(r["zero_point"]):
            continue
        if frame_ids is not None and r["frame_id"] not in frame_ids:
            continue
        w = 1.0 / r["mag_err"] ** 2
        s = sums.setdefault(int(r["source"]), [0.0, 0.0, 0])
        s[0] += w * (r["mag"] - r["zero_point"])
        s[1] += w
        s[2] += 1
    return {k: (v[0] / v[1], v[2]) for k, v in sums.items()}


def test_the_cmd_is_the_weighted_mean_of_each_band_and_their_difference(measured):
    catalog, _ = measured
    table = catalog.cmd(blue="B", red="V")
    assert table.colnames[:5] == ["id", "x", "y", "ra", "dec"]
    assert {"mag_B", "mag_err_B", "n_B", "mag_V", "mag_err_V", "n_V", "colour", "colour_err"} <= set(table.colnames)
    assert str(table["mag_V"].unit) == "mag" and str(table["x"].unit) == "pix"
    assert table.meta["colour_name"] == "B-V" and table.meta["magnitude"] == "V"
    b, v = _by_hand(catalog, "B"), _by_hand(catalog, "V")
    both = [row for row in table if row["n_B"] and row["n_V"]]
    assert len(both) >= 10
    for row in both:
        sid = int(row["id"])
        assert row["mag_B"] == pytest.approx(b[sid][0], abs=1e-9) and row["n_B"] == b[sid][1]
        assert row["mag_V"] == pytest.approx(v[sid][0], abs=1e-9) and row["n_V"] == v[sid][1]
        assert row["colour"] == pytest.approx(b[sid][0] - v[sid][0], abs=1e-9)
        assert row["colour_err"] == pytest.approx(math.hypot(row["mag_err_B"], row["mag_err_V"]), rel=1e-9)
    # Every source measured in neither band is left out; none is listed twice.
    assert np.all((np.asarray(table["n_B"]) + np.asarray(table["n_V"])) > 0)
    assert len(set(np.asarray(table["id"]).tolist())) == len(table)


def test_only_accepted_frames_count_unless_all_is_asked(measured):
    catalog, _ = measured
    v_records = list(catalog.frames(band="V", status="accepted"))
    v_frames = [r.id for r in v_records]
    assert len(v_frames) >= 3
    before = catalog.cmd(blue="B", red="V")
    catalog.tag(v_records[0].file_name, "reject", reason="test: clouds", author="test")
    try:
        after = catalog.cmd(blue="B", red="V")
        every = catalog.cmd(blue="B", red="V", accepted_only=False)
        assert v_frames[0] not in after.meta["frames"]["V"] and v_frames[0] in every.meta["frames"]["V"]
        assert len(after.meta["frames"]["V"]) == len(before.meta["frames"]["V"]) - 1
        expected = _by_hand(catalog, "V", frame_ids=set(after.meta["frames"]["V"]))
        row = after[int(np.argmax(after["n_V"]))]
        assert row["mag_V"] == pytest.approx(expected[int(row["id"])][0], abs=1e-9)
        assert int(np.max(after["n_V"])) == int(np.max(before["n_V"])) - 1
        assert int(np.max(every["n_V"])) == int(np.max(before["n_V"]))
    finally:
        catalog.untag(v_records[0].file_name, "reject", reason="test done", author="test")


def test_a_band_with_no_photometry_is_one_line(measured):
    catalog, _ = measured
    with pytest.raises(ObsdbError, match="band R: no photometry"):
        catalog.cmd(blue="V", red="R")


def test_standards_need_a_wcs_and_a_readable_file(measured):
    catalog, base = measured
    good = base / "standards.csv"
    good.write_text("RA,Dec,B,V\n10.0,-58.0,12.0,11.5\n10.1,-58.1,13.0,12.4\n10.2,-58.2,14.0,13.1\n")
    with pytest.raises(ObsdbError, match="no sky coordinates .*obsdb solve"):
        catalog.cmd(standards=good)
    bad = base / "bad.csv"
    bad.write_text("RA,Dec,V\n10.0,north,12\n")
    with pytest.raises(ObsdbError, match=r"bad.csv, line 2"):
        catalog.cmd(standards=bad)
    other = base / "other.csv"
    other.write_text("RA,Dec,K\n10.0,-58.0,9.0\n")
    with pytest.raises(ObsdbError, match="no magnitudes in B, V"):
        catalog.cmd(standards=other)
