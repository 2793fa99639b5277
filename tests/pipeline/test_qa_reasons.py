"""QA names the cause: a simulated night with one known verdict per frame (twilight and
moonlight, cloud, lit cloud, a focuser change, a trail, seeing following airmass), the
evidence kept with each tag, and the instrument's history as the yardstick of a small night
(which a later night never rewrites), on SQLite and PostgreSQL; and the real frames."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from obsdb.catalog.db import upgrade
from obsdb.api import Catalog
from obsdb.catalog.models import Frame, Tag
from obsdb.pipeline.qa_rules import REJECTING
from obsdb.simulate import simulate_qa_night


def _catalog(url):
    upgrade(url)
    return Catalog.open(url)


def active_tags(catalog) -> dict[str, list[Tag]]:
    """{file name: [active rule tags]}"""
    with catalog.session() as session:
        rows = session.execute(select(Frame.file_name, Tag).join(Tag, Tag.frame_id == Frame.id)
                               .where(Tag.retracted_at.is_(None), Tag.source.like("rule:%"))).all()
        session.expunge_all()
    out: dict[str, list[Tag]] = {}
    for name, tag in rows:
        out.setdefault(name, []).append(tag)
    return out


@pytest.fixture(scope="module")
def qa_nights(tmp_path_factory):
    root = tmp_path_factory.mktemp("qa_reasons")
    with_focuser = simulate_qa_night(root / "focuser", seed=11)
    without = simulate_qa_night(root / "nofocuser", seed=11, focuser=False)
    return root, with_focuser, without


def test_every_reason_on_a_simulated_night(qa_nights, catalog_url):
    root, truth, _ = qa_nights
    catalog = _catalog(catalog_url)
    try:
        catalog.ingest([root / "focuser"])
        report = catalog.qa()
        tags = active_tags(catalog)
    finally:
        catalog.close()
    assert report.yardsticks == {"2026-03-09 V": "band V"}
    expected = {f["file"]: f["qa_expect"] for f in truth.frames}
    assert {e for e in expected.values()} == {None, "bright-sky", "cloud", "focus", "trail", "seeing"}
    for name, expect in expected.items():
        got = sorted(t.name for t in tags.get(name, []))
        assert got == ([expect] if expect else []), (name, expect, [t.reason for t in tags.get(name, [])])
    by_name = {name: {t.name: t for t in ts} for name, ts in tags.items()}
    frames = {f["file"]: f for f in truth.frames}
    for name, named in by_name.items():
        for tag in named.values():
            e = tag.evidence
            assert e["rule"] and e["value"] is not None and e["threshold"] is not None
            assert e["yardstick"]["kind"] == "night" and e["yardstick"]["n_frames"] == len(frames)
            assert e["yardstick"]["band"] == "V" and e["yardstick"]["nights"] == ["2026-03-09"]
        if "bright-sky" in named:
            e, f = named["bright-sky"].evidence, frames[name]
            # The Sun and the Moon as computed offline agree with the simulator's (astropy's) numbers.
            assert e["sun_alt"] == pytest.approx(f["sun_alt"], abs=0.1)
            assert e["moon_alt"] == pytest.approx(f["moon_alt"], abs=0.1)
            assert e["moon_sep"] is not None and 0 < e["moon_illum"] < 1
            assert f["sun_alt"] > -18 or f["moon_alt"] > 0
            assert "twilight" in named["bright-sky"].reason or "moonlight" in named["bright-sky"].reason
        if "seeing" in named:
            e = named["seeing"].evidence
            assert e["airmass"] > 2.5 and e["focus_position"] == e["focus_best"] == 5000
            assert "not" not in named["seeing"].reason.split(";")[0]
        if "focus" in named:
            assert named["focus"].evidence["focus_position"] == 5300
            assert "FOCPOS 5300 vs 5000" in named["focus"].reason
    lit_cloud = next(n for n, f in frames.items() if f["qa_expect"] == "cloud" and f["transparency"] > 0.9)
    assert "dark sky" in by_name[lit_cloud]["cloud"].reason


def test_without_a_focuser_card_defocus_is_soft_and_seeing_comes_from_airmass(qa_nights, tmp_path):
    root, _, truth = qa_nights
    catalog = _catalog(f"sqlite:///{tmp_path / 'obsdb.sqlite'}")
    try:
        catalog.ingest([root / "nofocuser"])
        catalog.qa()
        tags = active_tags(catalog)
    finally:
        catalog.close()
    for f in truth.frames:
        got = sorted(t.name for t in tags.get(f["file"], []))
        expect = {"focus": "soft"}.get(f["qa_expect"], f["qa_expect"])
        assert got == ([expect] if expect else []), (f["file"], [t.reason for t in tags.get(f["file"], [])])
        if expect == "seeing":
            assert "airmass^0.6" in tags[f["file"]][0].reason
        if expect == "soft":
            assert "no focuser card" in tags[f["file"]][0].reason
    assert {"soft", "seeing", "bright-sky"} <= REJECTING


def test_small_night_is_judged_against_history_and_never_rewritten(qa_nights, catalog_url, tmp_path):
    """A one-frame night gets the instrument's history as its yardstick; judging it does not
    touch the other night, and a later plain `qa` does not rewrite it."""
    import shutil

    from astropy.io import fits

    root, truth, _ = qa_nights
    cloudy = next(f for f in truth.frames if f["qa_expect"] == "cloud" and f["transparency"] < 0.5)
    clear = next(f for f in truth.frames if f["qa_expect"] is None)
    lone = tmp_path / "lone"
    lone.mkdir()
    # The cloudy frame, a week later: a night of its own, of one frame.
    shutil.copy(root / "focuser" / cloudy["file"], lone / "QAFIELD_V_0099.fits")
    with fits.open(lone / "QAFIELD_V_0099.fits", mode="update") as hdul:
        hdul[0].header["DATE-OBS"] = "2026-03-16T19:00:00.000"
    catalog = _catalog(catalog_url)
    try:
        catalog.ingest([lone])
        alone = catalog.qa()
        assert alone.yardsticks == {"2026-03-16 V": "none"} and alone.added == []  # nothing to compare with
        catalog.ingest([root / "focuser"])
        later = catalog.qa()
        # The small night was judged before: kept as it was, the new night judged on its own.
        assert later.kept == ["2026-03-16 V"] and later.nights == ["2026-03-09"]
        assert "QAFIELD_V_0099.fits" not in active_tags(catalog)
        asked = catalog.qa(night="2026-03-16")
        tags = active_tags(catalog)
    finally:
        catalog.close()
    assert asked.nights == ["2026-03-16"] and [a[1] for a in asked.added] == ["cloud"]
    (tag,) = tags["QAFIELD_V_0099.fits"]
    assert tag.name == "cloud" and "the instrument's history (band V, 60 s: 20 frames of 2026-03-09" in tag.reason
    assert tag.evidence["yardstick"]["kind"] == "instrument-history"
    assert tag.evidence["yardstick"]["nights"] == ["2026-03-16", "2026-03-09"]
    assert tag.evidence["yardstick"]["n_frames"] == 21 and tag.evidence["yardstick"]["exptime"] == 60
    # The big night's verdicts are those it had: the clear frame untouched.
    assert clear["file"] not in tags


def test_sun_and_moon_offline_leave_astropy_settings_alone():
    from datetime import datetime

    from astropy.utils import iers

    from obsdb.imaging.sky import site_from_header, sun_and_moon, target_from_header

    before = (iers.conf.auto_download, iers.conf.iers_degraded_accuracy)
    (sky,) = sun_and_moon([datetime(2026, 3, 9, 17, 35)], -32.38, 20.81, 1798.0, targets=[(112.5, -35.0)])
    assert (iers.conf.auto_download, iers.conf.iers_degraded_accuracy) == before
    assert -9 < sky["sun_alt"] < -7 and sky["moon_alt"] < 0 and 0.6 < sky["moon_illum"] < 0.7
    assert site_from_header({"LAT-OBS": "-32:22:46", "LONG-OBS": "20:48:36", "ALT-OBS": 1798}) == pytest.approx(
        (-32.3794, 20.81, 1798.0), abs=1e-3)
    assert target_from_header({"OBJCTRA": "07 30 00", "OBJCTDEC": "-35 00 00"}) == pytest.approx((112.5, -35.0))
    assert target_from_header({"RA": 112.5, "DEC": -35.0}) == pytest.approx((112.5, -35.0))
    assert site_from_header({"SITELAT": "north"}) is None and target_from_header({}) is None


# --------------------------------------------------------------------------- real frames

FOCUS_HFD = [25, 24, 15, 8.7, 7.1, 6.8, 6.3, 5.6, 4.8, 4.4, 4.0, 3.7, 4.9, 7.8, 12.8, 19.6, 26]
"""Half-flux diameters of STAR_FOCUS_1..17 from the real-data README, px."""


def test_real_focus_run_rejects_only_the_defocused(real_data, tmp_path):
    catalog = _catalog(f"sqlite:///{tmp_path / 'obsdb.sqlite'}")
    try:
        catalog.ingest([real_data / "focus_seq"])
        catalog.qa()
        tags = active_tags(catalog)
    finally:
        catalog.close()
    for i, hfd in enumerate(FOCUS_HFD, start=1):
        got = sorted(t.name for t in tags.get(f"STAR_FOCUS_{i}.fits", []))
        if hfd >= 6.3:      # 1.7 x the best or more: defocused
            assert got == ["focus"], (i, got)
        elif hfd <= 4.9:    # within 1.35 x the best: in focus
            assert got == [], (i, got)
    reason = tags["STAR_FOCUS_1.fits"][0].reason
    assert "focus run" in reason and "flat-topped or annular" in reason


def test_real_overcast_all_sky_is_cloud_alone_or_with_the_clear_frame(real_data, tmp_path):
    cloudy, starry = (real_data / "allsky_iceact" / f"iceact_{n}.fits" for n in ("cloudy", "starry"))
    catalog = _catalog(f"sqlite:///{tmp_path / 'obsdb.sqlite'}")
    try:
        catalog.ingest([cloudy])
        catalog.qa()
        (alone,) = active_tags(catalog)["iceact_cloudy.fits"]
        assert alone.name == "cloud" and alone.evidence["rule"] == "cloud-sky-saturated"
        assert alone.evidence["yardstick"]["kind"] == "none" and "Sun and Moon not computed" in alone.reason
        catalog.ingest([starry])
        catalog.qa(night=["2017-06-10", "2017-05-02"])
        tags = active_tags(catalog)
    finally:
        catalog.close()
    (tag,) = tags["iceact_cloudy.fits"]
    assert tag.name == "cloud" and tag.evidence["yardstick"]["kind"] == "instrument-history"
    assert "iceact_starry.fits" not in tags


def test_real_sparse_sharp_frame_is_not_few_stars(real_data, tmp_path):
    catalog = _catalog(f"sqlite:///{tmp_path / 'obsdb.sqlite'}")
    try:
        catalog.ingest([real_data / "single" / "ccdproc_SAAO1m_a8280271.fits.gz"])
        catalog.qa()
        assert active_tags(catalog) == {}
    finally:
        catalog.close()
