"""Calibration applied, against the truth of a simulated raw night (obsdb.simulate_raw): calibrated
lights equal the true sky and stars within the noise, the warm dark and the saturated flat are refused
with their reasons, every light records its masters, metrics are measured on calibrated pixels, and
render's outputs name the masters."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def calibrated_night(tmp_path_factory):
    from obsdb import Catalog
    from obsdb.simulate_raw import simulate_raw_night

    tmp = tmp_path_factory.mktemp("rawnight")
    truth = simulate_raw_night(tmp / "raw", seed=3)
    catalog = Catalog.open(str(tmp / "obsdb.sqlite"), create=True)
    catalog.ingest([str(tmp / "raw")])
    catalog.qa()
    report = catalog.calibrate(tmp / "masters", write_lights=True)
    yield catalog, truth, report, tmp
    catalog.close()


def test_warm_dark_and_saturated_flat_are_refused_with_reasons(calibrated_night):
    from obsdb.catalog.masters import MasterStore

    catalog, truth, report, _ = calibrated_night
    frames = {f["file_name"]: f for f in catalog.frame_dicts()}
    warm, saturated = frames[truth["warm_dark"]], frames[truth["saturated_flat"]]
    # 16x the dark current: its level, or its noise (the hot pixels), is out of line with its set.
    assert warm["status"] == "rejected" and {t["name"] for t in warm["tags"]} & {"calib-level", "calib-noise"}
    assert saturated["status"] == "rejected" and any(t["name"] == "calib-saturated" for t in saturated["tags"])
    assert any(truth["warm_dark"] in line and "left out" in line for line in report.refused)
    assert any(truth["saturated_flat"] in line and "left out" in line for line in report.refused)
    members = {m["kind"]: {f["file_name"] for f in m["members"]} for m in MasterStore(catalog.db).masters()}
    assert truth["warm_dark"] not in members["dark"] and len(members["dark"]) == 5
    assert truth["saturated_flat"] not in members["flat"] and len(members["flat"]) == 5


def test_every_light_records_its_masters(calibrated_night):
    from obsdb.catalog.masters import MasterStore

    catalog, truth, report, _ = calibrated_night
    frames = {f["id"]: f for f in catalog.frame_dicts()}
    rows = MasterStore(catalog.db).light_calibrations([fid for fid, f in frames.items() if f["type"] == "light"])
    assert len(rows) == len(truth["lights"])
    for frame_id, used in rows.items():
        kinds = {row["kind"]: row for row in used}
        assert set(kinds) == {"bias", "dark", "flat"}
        assert kinds["dark"]["scale"] == pytest.approx(frames[frame_id]["exptime"] / 60.0)
        assert all(len(row["sha256"]) == 64 for row in used)


def test_calibrated_lights_equal_the_truth(calibrated_night):
    from astropy.io import fits

    from obsdb.imaging.calibration import large_scale_rms

    catalog, truth, report, tmp = calibrated_night
    assert not report.lights_failed and len(report.lights_written) == len(truth["lights"])
    residuals = []
    for name, true in truth["lights"].items():
        data = fits.getdata(tmp / "masters" / "calibrated" / name.replace(".fits", "_cal.fits"))
        assert data.shape == true.shape
        sky = float(np.median(true))
        sigma = float(np.sqrt(sky + 5.0 ** 2))                       # Poisson + read noise, ADU
        residual = data - true
        assert abs(float(np.nanmean(residual))) < 0.1 * sigma, name
        residuals.append(residual / sky)
    # Large-scale structure left (vignetting, donuts, bias pattern): the tile medians of the mean
    # relative residual, 4x4 tiles, within 0.2 % of the sky.
    mean = np.mean(residuals, axis=0) + 1.0
    assert large_scale_rms(mean, blocks=4) < 0.002
    # The raw sky is far from flat (vignetting ~12 % in the corners): the test can fail.
    from obsdb.simulate_raw import BIAS_LEVEL

    raw = fits.getdata(tmp / "raw" / next(iter(truth["lights"])))[:, :true.shape[1]].astype(float)
    assert large_scale_rms(raw - BIAS_LEVEL, blocks=4) > 0.03


def test_metrics_are_measured_on_calibrated_pixels(calibrated_night):
    from sqlalchemy import select

    from obsdb.catalog.masters import MasterStore
    from obsdb.catalog.models import Frame, FrameMetrics

    catalog, truth, report, _ = calibrated_night
    assert report.remeasured == len(truth["lights"])
    with catalog.session() as session:
        used = dict(session.execute(select(Frame.file_name, FrameMetrics.calibration)
                                    .join(FrameMetrics, FrameMetrics.frame_id == Frame.id)).all())
    assert {used[name] for name in truth["lights"]} == {"bias 1, dark 2, flat 3", "bias 1, dark 2 x2, flat 3"}
    assert MasterStore(catalog.db).lights_measured_otherwise() == {}
    # Calibrated, the sky is the true sky (12 ADU/s); raw it held the bias level (~1000 ADU).
    frames = {f["file_name"]: f for f in catalog.frame_dicts()}
    for name, true in truth["lights"].items():
        background = frames[name]["metrics"]["background"]
        assert background == pytest.approx(float(np.median(true)), rel=0.05), name
    # A master marked bad: the lights lose it, and qa measures them again without it.
    MasterStore(catalog.db).mark_bad([3], "dust moved", by="test")

    catalog.calibrate(report.built[0]["path"].rsplit("/", 1)[0], remeasure=False)
    assert len(MasterStore(catalog.db).lights_measured_otherwise()) == len(truth["lights"])
    catalog.qa()
    assert MasterStore(catalog.db).lights_measured_otherwise() == {}


def test_render_outputs_name_the_masters(calibrated_night):
    from astropy.io import fits

    catalog, truth, report, tmp = calibrated_night
    catalog.align()
    result = catalog.render(tmp / "aligned", status="any")
    outputs = sorted((tmp / "aligned").glob("*.fits"))
    assert outputs, result
    for path in outputs:
        header = fits.getheader(path)
        assert header["OBSDBCAL"] is True
        assert header["OBSDBIDB"] == 1 and header["OBSDBIDD"] == 2
        history = "\n".join(str(h) for h in header["HISTORY"])
        assert "bias master 1: master-bias-" in history and "dark master 2: master-dark-" in history
        assert "sha256 " in history


def test_run_builds_the_masters_and_says_which_each_band_used(tmp_path):
    import shutil

    from astropy.io import fits

    from obsdb import Catalog
    from obsdb.simulate_raw import simulate_raw_night

    truth = simulate_raw_night(tmp_path / "night", seed=4)
    # One more light, in B: there is no B flat.
    shutil.copy(tmp_path / "night" / "light-00.fits", tmp_path / "night" / "light-B.fits")
    with fits.open(tmp_path / "night" / "light-B.fits", mode="update") as hdul:
        hdul[0].header["FILTER"] = "B"
        hdul[0].header["DATE-OBS"] = "2026-03-14T21:30:00"
    summary = Catalog.run(tmp_path / "night", tmp_path / "out", report=False)
    lines = [text for name, text in summary.steps if name == "calibrate"]
    # The lights are measured once, after the masters: none raw at ingest, none "again".
    assert lines[0].startswith("3 masters built") and "; 0 lights measured again" in lines[0]
    with Catalog.open(tmp_path / "out" / "obsdb.sqlite") as catalog:
        from obsdb.catalog.masters import MasterStore

        lights = catalog.frame_dicts(light_only=True)
        assert len(lights) == len(truth["lights"]) + 1 and all((f["metrics"] or {}).get("fwhm") for f in lights)
        assert MasterStore(catalog.db).lights_measured_otherwise() == {}
    assert "V: 5 lights; bias 1 (5), dark 2 (5, 2 scaled), flat 3 (5)" in lines
    assert "B: 1 lights; bias 1 (1), dark 2 (1), no flat (1: no flat for B)" in lines
    assert any(truth["warm_dark"] in line for line in lines) and any(truth["saturated_flat"] in line for line in lines)
    assert summary.stacked
    rendered = sorted((tmp_path / "out" / "aligned").glob("light-0*.fits"))
    assert rendered and all(fits.getheader(p)["OBSDBIDF"] == 3 for p in rendered)
    stack = fits.getheader(tmp_path / "out" / "aligned" / "stack_V.fits")
    history = "\n".join(str(h) for h in stack["HISTORY"])
    assert stack["OBSDBCAL"] == stack["NCOMBINE"] and "flat master 3 (" in history


def test_masters_lists_each_bands_lights_without_a_master(tmp_path, catalog_url):
    """`obsdb masters` ends with the library's coverage: per night and band, the lights lacking a master."""
    import shutil

    from astropy.io import fits
    from typer.testing import CliRunner

    from obsdb import Catalog
    from obsdb.cli.app import app
    from obsdb.simulate_raw import simulate_raw_night

    truth = simulate_raw_night(tmp_path / "night", seed=4)
    shutil.copy(tmp_path / "night" / "light-00.fits", tmp_path / "night" / "light-B.fits")
    with fits.open(tmp_path / "night" / "light-B.fits", mode="update") as hdul:
        hdul[0].header["FILTER"] = "B"
    db = catalog_url
    with Catalog.open(db, create=True) as catalog:
        catalog.ingest([tmp_path / "night"])
        before = catalog.calibration_coverage()
        assert [(r["band"], r["lights"], r["unmatched"]) for r in before] == [
            ("B", 1, 1), ("V", len(truth["lights"]), len(truth["lights"]))]
        catalog.qa()
        catalog.calibrate(tmp_path / "masters")
        after = {r["band"]: r for r in catalog.calibration_coverage()}
    assert after["B"]["without_flat"] == 1 and after["B"]["without_bias"] == 0 and after["B"]["unmatched"] == 0
    assert after["V"]["without_flat"] == after["V"]["without_dark"] == after["V"]["without_bias"] == 0
    result = CliRunner().invoke(app, ["--db", db, "masters"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    night = after["B"]["night"]
    assert f"{night} B: 1 light; 1 without flat" in result.output
    assert f"{night} V: {len(truth['lights'])} lights; all matched" in result.output
