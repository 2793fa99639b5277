"""Calibration frames are not light frames (issue 20, item 5): no star metrics, no light-frame tags, and
their own checks within their set, caught when injected and silent on clean sets and the real night."""

from __future__ import annotations

import numpy as np
import pytest

from obsdb.pipeline.calib_checks import (FLAT_LINEAR_FRACTION, FLAT_MIN_SIGNAL, LEVEL_SIGMA, NOISE_RATIO,
                                         SATURATED_FRACTION, evaluate_calibration, set_key)
from tests.conftest import write_fits


def _frame(i, kind="bias", median=1000.0, rms=5.0, night="2026-03-14", band=None, exptime=0.0, n_saturated=0,
           pixels=4096, saturation=65535.0):
    return {"id": i, "label": str(i), "night": night, "instrument": "T|C|64x64|1x1", "type": kind, "band": band,
            "exptime": exptime, "pixels": pixels, "median": median, "std": rms, "background": median,
            "background_rms": rms, "n_saturated": n_saturated, "saturation": saturation}


def _tags(verdicts):
    return sorted((frame_id, name) for frame_id, name in verdicts.wanted)


# -- the rules on made-up statistics ------------------------------------------------------------------

def test_a_clean_set_is_silent():
    frames = [_frame(i, median=1000 + 0.3 * i, rms=5 + 0.05 * i) for i in range(6)]
    assert _tags(evaluate_calibration(frames)) == []


def test_a_level_outlier_is_caught_with_its_yardstick():
    frames = [_frame(i, median=1000.0 + (i % 2)) for i in range(5)] + [_frame(9, median=1000 + 8 * 5.0)]
    verdicts = evaluate_calibration(frames)
    assert _tags(verdicts) == [(9, "calib-level")]
    evidence = verdicts.evidence[(9, "calib-level")]
    # The medians scatter by less than the noise: the noise floor (5 ADU) is the yardstick: (1040 - 1000.5) / 5.
    assert evidence["scatter"] == 5.0 and evidence["sigmas"] == pytest.approx(7.9, abs=0.01)
    assert evidence["threshold"] == LEVEL_SIGMA and evidence["yardstick"]["frames"] == 6
    reason = verdicts.wanted[(9, "calib-level")]
    assert reason.startswith("calib-level: median 1,040 ADU is 7.9 sigma above the set's 1,000")
    assert "6 bias frames of 2026-03-14" in reason and "limit 5 sigma" in reason


def test_just_inside_the_limit_is_not_an_outlier():
    frames = [_frame(i) for i in range(5)] + [_frame(9, median=1000 + 0.99 * LEVEL_SIGMA * 5.0)]
    assert _tags(evaluate_calibration(frames)) == []


def test_a_noise_outlier_either_way():
    frames = [_frame(i) for i in range(5)] + [_frame(8, rms=5.0 * NOISE_RATIO * 1.1),
                                              _frame(9, rms=5.0 / NOISE_RATIO / 1.1)]
    verdicts = evaluate_calibration(frames)
    assert _tags(verdicts) == [(8, "calib-noise"), (9, "calib-noise")]
    assert verdicts.evidence[(8, "calib-noise")]["ratio"] == pytest.approx(1.65)


def test_a_set_too_small_has_no_level_yardstick():
    frames = [_frame(1), _frame(2, median=5000.0)]
    verdicts = evaluate_calibration(frames)
    assert _tags(verdicts) == [] and verdicts.sets[0]["judged"] is False


def test_darks_are_judged_per_exposure_and_flats_per_band():
    darks = [_frame(i, "dark", median=1100, exptime=60.0) for i in range(3)] + \
            [_frame(10 + i, "dark", median=1400, exptime=300.0) for i in range(3)]
    assert _tags(evaluate_calibration(darks)) == []              # two sets, each clean
    assert set_key(darks[0]) != set_key(darks[3])
    flats = [_frame(i, "flat", median=20000, rms=140, band="V") for i in range(3)] + \
            [_frame(10, "flat", median=30000, rms=170, band="R")]
    assert set_key(flats[0])[3] == "V" and set_key(flats[3])[3] == "R"
    # Twilight flats change level by design: no level rule for flats.
    assert _tags(evaluate_calibration(flats)) == []


def test_saturation_and_the_linear_range_of_flats():
    bias = [_frame(i, median=1000.0) for i in range(3)]
    flats = [_frame(10, "flat", median=20000, band="V"),
             _frame(11, "flat", median=FLAT_LINEAR_FRACTION * 65535 * 1.05, band="V"),
             _frame(12, "flat", median=1000 + FLAT_MIN_SIGNAL * 0.5, band="V"),
             _frame(13, "flat", median=20000, band="V", n_saturated=int(4096 * SATURATED_FRACTION * 3))]
    verdicts = evaluate_calibration(bias + flats)
    assert _tags(verdicts) == [(11, "flat-nonlinear"), (12, "flat-faint"), (13, "calib-saturated")]
    assert verdicts.evidence[(12, "flat-faint")]["bias_level"] == 1000.0
    assert "above the night's bias level 1,000" in verdicts.wanted[(12, "flat-faint")]
    assert verdicts.evidence[(11, "flat-nonlinear")]["fraction"] == pytest.approx(0.735)


# -- through qa, on both backends -----------------------------------------------------------------------

SHAPE = (64, 64)


def _write(folder, name, kind, level, rms, seed, *, band=None, exptime=0.0, saturate=0.0, minute=0):
    rng = np.random.default_rng(seed)
    data = rng.normal(level, rms, SHAPE)
    if saturate:
        data.flat[:int(saturate * data.size)] = 65535
    header = {"IMAGETYP": kind, "TELESCOP": "T1", "INSTRUME": "C1", "EXPTIME": exptime,
              "DATE-OBS": f"2026-03-14T20:{minute:02d}:00"}
    if band:
        header["FILTER"] = band
    return write_fits(folder / name, np.clip(np.round(data), 0, 65535).astype(np.uint16), header)


@pytest.fixture(scope="module")
def calibration_night(tmp_path_factory):
    """6 bias (one 10 read noises high, one twice as noisy), 4 V flats (one beyond the linear range,
    one with 2 % of its pixels saturated, two clean), 3 darks of 60 s (clean)."""
    folder = tmp_path_factory.mktemp("calib")
    for i in range(6):
        level = 1050.0 if i == 4 else 1000.0
        _write(folder, f"bias_{100 + i}.fits", "Bias Frame", level, 10.0 if i == 5 else 5.0, i, minute=i)
    _write(folder, "flat_200.fits", "Flat Field", 20000, 140, 20, band="V", exptime=2, minute=10)
    _write(folder, "flat_201.fits", "Flat Field", 20500, 140, 21, band="V", exptime=2, minute=11)
    _write(folder, "flat_202.fits", "Flat Field", 52000, 230, 22, band="V", exptime=2, minute=12)
    _write(folder, "flat_203.fits", "Flat Field", 20000, 140, 23, band="V", exptime=2, saturate=0.02, minute=13)
    for i in range(3):
        _write(folder, f"dark_{300 + i}.fits", "Dark Frame", 1100, 6, 30 + i, exptime=60, minute=20 + i)
    return folder


def test_qa_tags_injected_calibration_problems_and_only_them(calibration_night, catalog_url):
    from obsdb.api import Catalog

    with Catalog.open(catalog_url, create=True) as catalog:
        catalog.ingest([calibration_night])
        report = catalog.qa()
        got = sorted((str(label), name) for label, name, _ in report.added)
        assert got == [("104", "calib-level"), ("105", "calib-noise"), ("202", "flat-nonlinear"),
                       ("203", "calib-saturated")]
        records = {r["number"]: r for r in catalog.frame_dicts()}
        # No star metrics on any of them, and no light-frame tag.
        assert all(r["metrics"] is None for r in records.values())
        assert {t["name"] for r in records.values() for t in r["tags"]} == \
            {"calib-level", "calib-noise", "flat-nonlinear", "calib-saturated"}
        tag = next(t for t in records[104]["tags"] if t["name"] == "calib-level")
        assert tag["source"] == "rule:calib-level" and "sigma above the set's 1,000" in tag["reason"]
        with catalog.session() as session:
            from sqlalchemy import select

            from obsdb.catalog.models import Tag

            evidence = session.scalars(select(Tag.evidence).where(Tag.name == "calib-level")).one()
        assert evidence["set_median"] == 1000.0 and evidence["yardstick"]["frames"] == 6
        assert 9 < evidence["sigmas"] < 11                       # 50 ADU over a read noise of ~5
        # Judging again changes nothing.
        again = catalog.qa()
        assert again.added == [] and again.retracted == []


def test_old_star_metrics_and_light_tags_on_calibration_frames_are_undone(calibration_night, tmp_path):
    from sqlalchemy import select

    from obsdb.api import Catalog
    from obsdb.catalog.models import Frame, FrameMetrics, Tag

    with Catalog.open(f"sqlite:///{tmp_path / 'c.sqlite'}", create=True) as catalog:
        catalog.ingest([calibration_night])
        with catalog.session() as session:
            bias = session.scalars(select(Frame).where(Frame.number == 100)).one()
            # What an older version left: a FWHM of 1,223 px on a bias frame, and a light-frame tag.
            session.add(FrameMetrics(frame_id=bias.id, n_stars=3, fwhm=1223.0, algorithm="old"))
            session.add(Tag(frame_id=bias.id, name="few-stars", source="rule:few-stars", reason="few-stars: 3",
                            author="obsdb"))
        report = catalog.qa()
        assert ("100", "few-stars") in {(str(label), name) for label, name, _ in report.retracted}
        with catalog.session() as session:
            assert session.get(FrameMetrics, bias.id) is None
        assert catalog.summary()[0]["median_fwhm"] is None


def test_rejected_and_summary_list_calibration_apart(calibration_night, tmp_path):
    from typer.testing import CliRunner

    from obsdb.cli.app import app

    runner = CliRunner()
    db = str(tmp_path / "c.sqlite")
    runner.invoke(app, ["--db", db, "init"])
    runner.invoke(app, ["--db", db, "ingest", str(calibration_night)])
    runner.invoke(app, ["--db", db, "qa"])
    rejected = runner.invoke(app, ["--db", db, "rejected"], terminal_width=200).output
    assert "rejected frames (0)" in rejected and "calibration frames with problems (4)" in rejected
    assert "flat-nonlinear" in rejected.split("calibration frames with problems")[1]
    summary = runner.invoke(app, ["--db", db, "summary"], terminal_width=200).output
    assert "calibration frames with problems (4)" in summary


# -- the real night --------------------------------------------------------------------------------------

def test_the_real_lowell_calibration_frames(real_data, tmp_path):
    """6 bias and 5 twilight flats of one real night: by inspection none is an outlier
    (docs/calibration-frames.md gives the numbers), and the checks agree."""
    from obsdb.api import Catalog
    from obsdb.catalog.stores import CalibrationStore

    with Catalog.open(f"sqlite:///{tmp_path / 'c.sqlite'}", create=True) as catalog:
        catalog.ingest([real_data / "lowell42_raw_night"])
        frames = CalibrationStore(catalog.db).calibration_frames()
        verdicts = evaluate_calibration(frames)
    assert sorted(f["type"] for f in frames) == ["bias"] * 6 + ["flat"] * 5
    bias = [f for f in frames if f["type"] == "bias"]
    assert {f["median"] for f in bias} == {1626.0}
    assert max(f["background_rms"] for f in bias) / min(f["background_rms"] for f in bias) < 1.01
    flats = [f for f in frames if f["type"] == "flat"]
    assert all(20000 < f["median"] < 0.7 * f["saturation"] for f in flats)
    assert verdicts.wanted == {}
    assert sorted((s["key"], s["judged"]) for s in verdicts.sets) == [
        ("1 flat frame in V of 2019-03-25, hall|E2V CCD-231 4096x4112 84-1-D84 0 6393-15-01|1432x1370|3x3", False),
        ("4 flat frames in VR of 2019-03-25, hall|E2V CCD-231 4096x4112 84-1-D84 0 6393-15-01|1432x1370|3x3", False),
        ("6 bias frames of 2019-03-25, hall|E2V CCD-231 4096x4112 84-1-D84 0 6393-15-01|1432x1370|3x3", True)]
