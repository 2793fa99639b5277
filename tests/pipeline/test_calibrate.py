"""Master calibration frames and their matching (issue 23, first step): known bias structure, dark
current and flat pattern recovered; rejected frames left out; a flat of another band never matched;
the real Lowell raw night."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_fits

HEIGHT, WIDTH, DATA_W = 48, 70, 64
"""Raw frame: 64 data columns, then 6 overscan columns."""

BIAS_LEVEL = 1000.0
READ_NOISE = 5.0
DARK_RATE = 0.5
"""Dark current, ADU/s."""
FLAT_LEVEL = 20000.0


def _truth():
    y, x = np.mgrid[0:HEIGHT, 0:DATA_W]
    structure = 3.0 * x / DATA_W + 2.0 * np.sin(y / 5.0)            # fixed bias pattern beyond the overscan
    r2 = ((x - DATA_W / 2) / DATA_W) ** 2 + ((y - HEIGHT / 2) / HEIGHT) ** 2
    flat = 1.0 - 0.6 * r2                                             # vignetting
    flat[20:26, 30:36] *= 0.9                                         # a dust spot
    return structure.astype(np.float32), (flat / np.median(flat)).astype(np.float32)


def _raw(rng, image, offset):
    """A raw frame: ``image`` plus bias offset, structure and read noise, with an overscan strip."""
    structure, _ = _truth()
    raw = np.empty((HEIGHT, WIDTH), np.float32)
    raw[:, :DATA_W] = image + structure
    raw[:, DATA_W:] = 0.0
    raw += BIAS_LEVEL + offset + rng.normal(0, READ_NOISE, raw.shape)
    return np.round(raw).astype(np.float32)


START = datetime(2026, 3, 1, 19, 0, tzinfo=timezone.utc)


def _write(folder: Path, name: str, data, kind: str, when: datetime, **cards):
    header = {"IMAGETYP": kind, "DATE-OBS": when.strftime("%Y-%m-%dT%H:%M:%S"), "TELESCOP": "T1",
              "INSTRUME": "CAM", "BIASSEC": f"[{DATA_W + 1}:{WIDTH},1:{HEIGHT}]",
              "TRIMSEC": f"[1:{DATA_W},1:{HEIGHT}]", "XBINNING": 1, "YBINNING": 1, "SATURATE": 65535}
    header.update(cards)
    write_fits(folder / name, data, header)


def make_raw_night(folder: Path, seed: int = 1) -> dict:
    """Bias, dark, V and R flat, and light frames with known truth; one bias with a raised level
    (``calib-level``) that must not enter the master."""
    rng = np.random.default_rng(seed)
    structure, flat = _truth()
    for i in range(7):
        _write(folder, f"b{i:02d}.fits", _raw(rng, 0.0, rng.normal(0, 3)), "BIAS", START + timedelta(minutes=i),
               EXPTIME=0.0, **{"CCD-TEMP": -10.0})
    bad = _raw(rng, 0.0, 0.0)
    bad[:, :DATA_W] += 400.0                           # a raised level in the image area only
    _write(folder, "b99.fits", bad, "BIAS", START + timedelta(minutes=8), EXPTIME=0.0, **{"CCD-TEMP": -10.0})
    for i in range(5):
        _write(folder, f"d{i:02d}.fits", _raw(rng, DARK_RATE * 60.0, rng.normal(0, 3)), "DARK",
               START + timedelta(minutes=10 + i), EXPTIME=60.0, **{"CCD-TEMP": -10.0 + 0.2 * i})
    for band, base in (("V", 30), ("R", 40)):
        for i in range(4):
            level = FLAT_LEVEL * (0.8 + 0.1 * i)
            signal = rng.poisson(level * flat).astype(np.float32) + DARK_RATE * 2.0
            _write(folder, f"f{band}{i:02d}.fits", _raw(rng, signal, 0.0), "FLAT",
                   START + timedelta(minutes=base + i), EXPTIME=2.0, FILTER=band, **{"CCD-TEMP": -10.0})
    sky = 500.0
    lights = {"L1": ("V", 60.0, -10.0), "L2": ("R", 120.0, -10.0), "L3": ("B", 60.0, 5.0)}
    for i, (name, (band, exptime, temp)) in enumerate(lights.items()):
        signal = rng.poisson(sky * flat).astype(np.float32) + DARK_RATE * exptime
        _write(folder, f"{name}.fits", _raw(rng, signal, 0.0), "LIGHT", START + timedelta(hours=3, minutes=10 * i),
               EXPTIME=exptime, FILTER=band, OBJECT="field", **{"CCD-TEMP": temp})
    return {"structure": structure, "flat": flat, "dark": DARK_RATE * 60.0}


def _masters_by(masters, kind, band=None):
    return [m for m in masters if m["kind"] == kind and not m["bad"] and (band is None or m["band"] == band)]


def _frame_ids(catalog) -> dict[str, int]:
    return {f["file_name"]: f["id"] for f in catalog.frame_dicts()}


@pytest.fixture()
def raw_catalog(catalog_url, tmp_path):
    from obsdb import Catalog

    folder = tmp_path / "raw"
    truth = make_raw_night(folder)
    catalog = Catalog.open(catalog_url, create=True)
    catalog.ingest([str(folder)])
    catalog.qa()
    yield catalog, truth, tmp_path
    catalog.close()


def test_masters_recover_the_truth_and_lights_get_their_own_band(raw_catalog):
    from astropy.io import fits

    from obsdb.catalog.masters import MasterStore

    catalog, truth, tmp_path = raw_catalog
    ids = _frame_ids(catalog)
    report = catalog.calibrate(tmp_path / "masters")
    assert not report.failed
    masters = MasterStore(catalog.db).masters()
    (bias,), (dark,) = _masters_by(masters, "bias"), _masters_by(masters, "dark")
    (flat_v,), (flat_r,) = _masters_by(masters, "flat", "V"), _masters_by(masters, "flat", "R")

    # The raised bias is rejected by the calibration checks and left out of the master.
    assert ids["b99.fits"] not in {m["frame_id"] for m in bias["members"]}
    assert bias["n_frames"] == 7 and any("b99.fits" in line or ":" in line for line in report.refused)

    # Bias: overscan removed, structure recovered.  Per pixel the master's noise is about
    # 1.25 x 5 / sqrt(7) = 2.4 ADU: the mean error is < 0.3 ADU, the rms < 3.5 ADU.
    data = fits.getdata(bias["path"])
    assert data.shape == (HEIGHT, DATA_W)
    error = data - truth["structure"]
    assert abs(float(np.mean(error))) < 0.3 and float(np.std(error)) < 3.5
    # Dark: bias-subtracted, 30 ADU of dark current in 60 s, to 0.5 ADU on the mean.
    dark_data = fits.getdata(dark["path"])
    assert abs(float(np.mean(dark_data)) - truth["dark"]) < 0.5
    assert dark["exptime"] == pytest.approx(60.0) and dark["ccd_temp"] == pytest.approx(-9.6)
    # Flat: the vignetting and the dust spot to 0.5 % rms (Poisson noise of 4 flats of ~20,000 ADU: 0.4 %
    # per flat per pixel; the median of 4 is about 0.25 %).
    for master in (flat_v, flat_r):
        pattern = fits.getdata(master["path"])
        assert float(np.median(pattern)) == pytest.approx(1.0, abs=1e-3)
        assert float(np.std(pattern / truth["flat"] - 1)) < 0.005
        # The dust spot's 10 % depth, to 0.5 % (against the ring just above it).
        depth = float(np.mean(pattern[20:26, 30:36]) / np.mean(pattern[14:20, 30:36]))
        true_depth = float(np.mean(truth["flat"][20:26, 30:36]) / np.mean(truth["flat"][14:20, 30:36]))
        assert depth == pytest.approx(true_depth, abs=0.005) and true_depth < 0.92

    # The header names the master's id, every member and its SHA-256.
    header = fits.getheader(bias["path"])
    assert header["OBSDB_MID"] == bias["id"]
    history = "\n".join(str(h) for h in header["HISTORY"])
    for member in bias["members"]:
        assert member["file_name"] in history and member["sha256"] in history

    # Matching: each light gets its own band's flat, never the other; reasons say why.
    rows = {(r["frame_id"], r["kind"]): r for r in report.matches}
    l1, l2, l3 = ids["L1.fits"], ids["L2.fits"], ids["L3.fits"]
    assert rows[(l1, "flat")]["master_id"] == flat_v["id"]
    assert f"flat {flat_r['id']} (R) refused: band R != V" in rows[(l1, "flat")]["reason"]
    assert rows[(l2, "flat")]["master_id"] == flat_r["id"]
    assert rows[(l1, "dark")]["master_id"] == dark["id"] and rows[(l1, "dark")]["scale"] == 1.0
    assert rows[(l2, "dark")]["master_id"] == dark["id"] and rows[(l2, "dark")]["scale"] == pytest.approx(2.0)
    assert rows[(l3, "flat")]["master_id"] is None
    assert rows[(l3, "flat")]["reason"].startswith("uncalibrated: no flat for B")
    assert rows[(l3, "dark")]["master_id"] is None and "temperature" in rows[(l3, "dark")]["reason"]
    assert all(rows[(light, "bias")]["master_id"] == bias["id"] for light in (l1, l2, l3))

    # Applied in memory, the master set gives back the true sky of L1 (500 ADU, a flat field): the
    # mean residual is below 0.1 sigma of the sky's pixel noise (~23 ADU).
    from obsdb.imaging.calibration import apply_calibration
    from obsdb.imaging.fitsio import read_fits_image

    light_file = next(f["path"] for f in catalog.frame_dicts() if f["id"] == l1)
    image = read_fits_image(light_file, hash_mode="none")
    sky = apply_calibration(image.data, image.header, bias=fits.getdata(bias["path"]),
                            dark=fits.getdata(dark["path"]), dark_scale=1.0, flat=fits.getdata(flat_v["path"]))
    noise = float(np.std(sky))
    assert 15 < noise < 35 and abs(float(np.mean(sky)) - 500.0) < 0.1 * noise

    # show names the masters a light uses.
    detail = catalog.show("L1.fits")[0]
    assert f"flat master {flat_v['id']}" in detail["calibration"]


def test_rerun_reuses_then_a_bad_master_is_never_used(raw_catalog):
    from obsdb.catalog.masters import MasterStore

    catalog, _, tmp_path = raw_catalog
    first = catalog.calibrate(tmp_path / "masters")
    second = catalog.calibrate(tmp_path / "masters")
    assert not second.built and len(second.reused) == len(first.built) == 4
    store = MasterStore(catalog.db)
    flat_v = _masters_by(store.masters(), "flat", "V")[0]
    store.mark_bad([flat_v["id"]], "dust moved", by="ana")
    third = catalog.calibrate(tmp_path / "masters")
    light = _frame_ids(catalog)["L1.fits"]
    row = next(r for r in third.matches if r["frame_id"] == light and r["kind"] == "flat")
    # The bad master is never chosen, and not silently rebuilt from the same frames.
    assert not third.built and row["master_id"] is None
    assert f"flat {flat_v['id']} (V) refused: marked bad (dust moved)" in row["reason"]
    assert any("marked bad by ana (dust moved); not rebuilt" in line for line in third.refused)
    # A frame rejected by hand changes the set: a new master of the other three is built.
    first_member = flat_v["members"][0]["frame_id"]
    label = next(f["file_name"] for f in catalog.frame_dicts() if f["id"] == first_member)
    catalog.tag(label, "reject", reason="a plane crossed it", author="ana")
    fourth = catalog.calibrate(tmp_path / "masters")
    (rebuilt,) = [b for b in fourth.built if b["kind"] == "flat"]
    row = next(r for r in fourth.matches if r["frame_id"] == light and r["kind"] == "flat")
    assert row["master_id"] == rebuilt["id"] and rebuilt["n_frames"] == 3


def test_foreign_file_is_never_overwritten(tmp_path, catalog):
    from obsdb.errors import ObsdbError

    folder = tmp_path / "raw"
    make_raw_night(folder)
    catalog.ingest([str(folder)])
    out = tmp_path / "masters"
    out.mkdir()
    (night,) = catalog.night_names()
    mine = out / f"master-bias-{night}-1.fits"                 # the name the first master would get
    mine.write_bytes(b"the user's own file")
    with pytest.raises(ObsdbError, match="was not written by obsdb"):
        catalog.calibrate(out)
    assert mine.read_bytes() == b"the user's own file"


def test_processes_executor_gives_the_same_masters(tmp_path, catalog):
    from astropy.io import fits

    from obsdb.catalog.masters import MasterStore
    from obsdb.pipeline.executors import ProcessExecutor

    folder = tmp_path / "raw"
    make_raw_night(folder)
    catalog.ingest([str(folder)])
    report = catalog.calibrate(tmp_path / "masters", executor=ProcessExecutor(2))
    assert len(report.built) == 4 and not report.failed
    for master in MasterStore(catalog.db).masters():
        assert fits.getheader(master["path"])["OBSDB_MID"] == master["id"]


# -- matching, pure ------------------------------------------------------------------------------------


def _master(mid, kind, **extra):
    base = {"id": mid, "kind": kind, "night_id": 1, "night": "n", "instrument_id": 1, "readout": "bin=1x1",
            "band": None, "exptime": None, "ccd_temp": None, "valid_from": None, "valid_to": None,
            "time": START, "bad": False, "bad_reason": None, "written": True}
    base.update(extra)
    return base


def test_matching_gates_and_preference():
    from obsdb.pipeline.calib_match import match_light

    light = {"id": 9, "night_id": 1, "night": "n", "instrument_id": 1, "readout": "bin=1x1", "band": "VR",
             "exptime": 300.0, "ccd_temp": -100.0, "date_obs": START + timedelta(hours=1)}
    masters = [_master(1, "bias"), _master(2, "bias", time=START + timedelta(hours=0.9)),
               _master(3, "bias", bad=True, bad_reason="noisy", time=START + timedelta(hours=1)),
               _master(4, "bias", readout="bin=2x2", time=START + timedelta(hours=1)),
               _master(11, "flat", band="V", time=START + timedelta(hours=1)),
               _master(12, "flat", band="VR", time=START + timedelta(hours=0.6)),
               _master(13, "flat", band="VR", valid_to=START, time=START),
               _master(20, "dark", exptime=60.0, ccd_temp=-80.0),
               _master(21, "dark", exptime=60.0, ccd_temp=-101.0, written=False)]
    rows = {r["kind"]: r for r in match_light(light, masters)}
    assert rows["bias"]["master_id"] == 2                               # nearest of the good ones
    assert "bias 3 refused: marked bad (noisy)" in rows["bias"]["reason"]
    assert "bias 4 refused: read-out bin=2x2 != bin=1x1" in rows["bias"]["reason"]
    assert rows["flat"]["master_id"] == 12
    assert rows["flat"]["reason"].startswith("flat 12 (VR): same night, 0.4 h before")
    assert "flat 11 (V) refused: band V != VR" in rows["flat"]["reason"]
    assert "flat 13 (VR) refused: valid" in rows["flat"]["reason"]
    assert rows["dark"]["master_id"] is None
    assert "temperature -80.0 C vs -100.0 C" in rows["dark"]["reason"]
    assert "never finished" in rows["dark"]["reason"]


def test_a_dark_is_scaled_only_with_a_bias():
    from obsdb.pipeline.calib_match import match_light

    light = {"id": 9, "night_id": 1, "night": "n", "instrument_id": 1, "readout": "bin=1x1", "band": "V",
             "exptime": 120.0, "ccd_temp": None, "date_obs": START}
    dark = _master(20, "dark", exptime=60.0)
    rows = {r["kind"]: r for r in match_light(light, [dark])}
    assert rows["dark"]["master_id"] is None and "no bias to separate the offset" in rows["dark"]["reason"]
    rows = {r["kind"]: r for r in match_light(light, [dark, _master(1, "bias")])}
    assert rows["dark"]["master_id"] == 20 and rows["dark"]["scale"] == pytest.approx(2.0)
    assert "scaled x2" in rows["dark"]["reason"]
    # The light's header gives no temperature: the dark passes, and its reason says it was not checked.
    assert "temperature not checked (the light's header gives none)" in rows["dark"]["reason"]


def test_overscan_and_trim_match_a_direct_computation():
    from obsdb.imaging.calibration import overscan_and_trim, parse_section

    rng = np.random.default_rng(0)
    raw = rng.normal(100, 1, (10, 12)).astype(np.float32) + np.arange(10)[:, None]
    out, info = overscan_and_trim(raw, {"BIASSEC": "[11:12,1:10]", "TRIMSEC": "[2:9,1:10]"})
    expected = (raw - np.median(raw[:, 10:12], axis=1)[:, None])[:, 1:9]
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)
    assert info["trimsec"] == "[2:9,1:10]"
    with pytest.raises(ValueError, match="outside"):
        parse_section("[1:20,1:10]", (10, 12))


# -- the real Lowell raw night ---------------------------------------------------------------------------


def test_real_lowell_night(real_data, tmp_path):
    from astropy.io import fits

    from obsdb import Catalog
    from obsdb.catalog.masters import MasterStore

    folder = real_data / "lowell42_raw_night"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    with Catalog.open(str(tmp_path / "obsdb.sqlite"), create=True) as catalog:
        catalog.ingest([str(folder)])
        catalog.qa()
        report = catalog.calibrate(tmp_path / "masters")
        assert not report.failed
        masters = MasterStore(catalog.db).masters()
        numbers = {f["id"]: f["number"] for f in catalog.frame_dicts()}
        (bias,), flats = _masters_by(masters, "bias"), _masters_by(masters, "flat")
        assert sorted(numbers[m["frame_id"]] for m in bias["members"]) == [4, 5, 6, 7, 8, 9]
        data = fits.getdata(bias["path"])
        assert data.shape == (1370, 1365)                           # TRIMSEC [18:1382,1:1370]
        # Overscan-subtracted: the bias level is ~0 in the trimmed area (raw level ~1000s ADU).
        assert abs(float(np.median(data))) < 2.0
        # One VR master flat of the four VR flats; the lone V flat gets none (too few frames).
        (flat,) = flats
        assert flat["band"] == "VR"
        assert sorted(numbers[m["frame_id"]] for m in flat["members"]) == [101, 113, 114, 115]
        assert any("flat in V" in line and "fewer than 3" in line for line in report.refused)
        lights = {f["id"] for f in catalog.frame_dicts() if f["type"] == "light"}
        rows = [r for r in report.matches if r["kind"] == "flat"]
        assert {r["frame_id"] for r in rows} == lights and len(lights) == 4
        assert all(r["master_id"] == flat["id"] for r in rows)
        pattern = fits.getdata(flat["path"])
        assert float(np.median(pattern)) == pytest.approx(1.0, abs=1e-3)


# -- the command line ------------------------------------------------------------------------------------


def test_cli_calibrate_masters_and_show(tmp_path):
    import json

    from typer.testing import CliRunner

    from obsdb.cli.app import app

    runner = CliRunner()
    db = tmp_path / "obsdb.sqlite"

    def invoke(*args):
        return runner.invoke(app, ["--db", str(db), *args], catch_exceptions=False)

    make_raw_night(tmp_path / "raw")
    assert invoke("init").exit_code == 0
    assert invoke("ingest", str(tmp_path / "raw")).exit_code == 0
    assert invoke("qa").exit_code == 0
    result = invoke("calibrate", "--out", str(tmp_path / "masters"))
    assert result.exit_code == 0, result.output
    assert "4 masters built" in result.output and "1 without flat" in result.output
    listing = json.loads(invoke("masters", "--format", "json").output)
    assert sorted(m["kind"] for m in listing) == ["bias", "dark", "flat", "flat"]
    flat_v = next(m for m in listing if m["band"] == "V")
    assert invoke("masters", "--mark-bad", str(flat_v["id"])).exit_code == 2          # a reason is required
    assert invoke("masters", "--mark-bad", str(flat_v["id"]), "--reason", "dust moved").exit_code == 0
    rerun = invoke("calibrate", "--out", str(tmp_path / "masters"))
    assert rerun.exit_code == 0 and "not rebuilt" in rerun.output
    listing = json.loads(invoke("masters", "--format", "json").output)
    assert next(m for m in listing if m["id"] == flat_v["id"])["bad_reason"] == "dust moved"
    shown = invoke("show", "L3.fits")
    assert "uncalibrated: no flat for B" in shown.output
    # A file that is not a folder as --out: one line, no traceback.
    (tmp_path / "file").write_text("x")
    bad = invoke("calibrate", "--out", str(tmp_path / "file"))
    assert bad.exit_code != 0 and "not a folder" in bad.output and "Traceback" not in bad.output


def test_real_lights_are_flatter_after_the_flat(real_data, tmp_path, capsys):
    """The issue's yardstick: the flat-fielded sky of each VR light is flatter than the raw sky
    (large-scale rms of 8x8 tile medians, printed before/after), on the calibrated lights that
    `calibrate --write-lights` writes; each names the VR master flat, never a V one."""
    from astropy.io import fits

    from obsdb import Catalog
    from obsdb.catalog.masters import MasterStore
    from obsdb.imaging.calibration import large_scale_rms, overscan_and_trim
    from obsdb.imaging.fitsio import read_fits_image

    folder = real_data / "lowell42_raw_night"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    with Catalog.open(str(tmp_path / "obsdb.sqlite"), create=True) as catalog:
        catalog.ingest([str(folder)])
        catalog.qa()
        report = catalog.calibrate(tmp_path / "masters", write_lights=True)
        masters = {m["id"]: m for m in MasterStore(catalog.db).masters()}
        files = {f["id"]: f["path"] for f in catalog.frame_dicts()}
    assert not report.lights_failed and len(report.lights_written) == 4
    for written in sorted(report.lights_written):
        with fits.open(written) as hdul:
            done, header = hdul[0].data, hdul[0].header
        flat = masters[header["OBSDBIDF"]]
        assert flat["kind"] == "flat" and flat["band"] == "VR"
        image = read_fits_image(files[header["OBSDBFID"]], hash_mode="none")
        raw, _ = overscan_and_trim(image.data, image.header)
        before, after = large_scale_rms(raw), large_scale_rms(done)
        with capsys.disabled():
            print(f"\n{Path(files[header['OBSDBFID']]).name}: large-scale sky rms {before:.2%} raw, "
                  f"{after:.2%} flat-fielded")
        assert after < before


def test_write_lights_calibrates_and_names_the_masters(raw_catalog):
    from astropy.io import fits


    catalog, truth, tmp_path = raw_catalog
    out = tmp_path / "masters"
    report = catalog.calibrate(out, write_lights=True)
    assert not report.failed and not report.lights_failed
    names = sorted(Path(p).name for p in report.lights_written)
    # The lights measured at ingest were measured again on their calibrated pixels, and say so.
    from obsdb.catalog.masters import MasterStore

    assert report.remeasured >= 1 and not report.not_remeasured
    assert MasterStore(catalog.db).lights_measured_otherwise() == {}
    # L3 (B, +5 C) has a bias but no flat and no dark: it is still written (bias-subtracted).
    assert names == ["L1_cal.fits", "L2_cal.fits", "L3_cal.fits"]
    with fits.open(out / "calibrated" / "L1_cal.fits") as hdul:
        data, header = hdul[0].data, hdul[0].header
    assert data.shape == (HEIGHT, DATA_W)
    # Sky 500 ADU x flat, flat-fielded back to 500; per-pixel noise ~ sqrt(500 + 25) = 23 ADU.
    assert abs(float(np.nanmean(data)) - 500.0) < 0.1 * 23
    assert header["OBSDBCAL"] is True and header["OBSDBFID"] == _frame_ids(catalog)["L1.fits"]
    assert all(isinstance(header[card], int) for card in ("OBSDBIDB", "OBSDBIDD", "OBSDBIDF"))
    history = "\n".join(str(h) for h in header["HISTORY"])
    assert f"flat master {header['OBSDBIDF']}: master-flat-" in history and "sha256 " in history
    assert header["LTV1"] == 0 and "BIASSEC" not in header
    # A file there that obsdb did not write is never replaced.
    (out / "calibrated" / "L2_cal.fits").unlink()
    fits.writeto(out / "calibrated" / "L2_cal.fits", np.zeros((2, 2), np.float32))
    again = catalog.calibrate(out, write_lights=True)
    assert any("obsdb did not write it" in line for line in again.lights_failed)
    assert fits.getdata(out / "calibrated" / "L2_cal.fits").shape == (2, 2)
    # The two obsdb wrote before, from the same raw files and masters, are left as they were.
    assert sorted(Path(p).name for p in again.lights_unchanged) == ["L1_cal.fits", "L3_cal.fits"]
    assert not again.lights_written
    # A new master for L1's band: its calibrated file is written again, naming the new flat.
    from obsdb.catalog.masters import MasterStore

    flat_v = _masters_by(MasterStore(catalog.db).masters(), "flat", "V")[0]
    first = flat_v["members"][0]["frame_id"]
    catalog.tag(next(f["file_name"] for f in catalog.frame_dicts() if f["id"] == first), "reject",
                reason="a plane", author="ana")
    third = catalog.calibrate(out, write_lights=True)
    assert [Path(p).name for p in third.lights_written] == ["L1_cal.fits"]
    assert fits.getheader(out / "calibrated" / "L1_cal.fits")["OBSDBIDF"] != flat_v["id"]
