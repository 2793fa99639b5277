"""New calibration frames checked against the previous master (BANZAI's check), the clipping counted
per input, and a master built from a memory-mapped stack (issue 23)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from tests.pipeline.test_calibrate import (BIAS_LEVEL, DATA_W, HEIGHT, READ_NOISE, START, WIDTH, _frame_ids,
                                           _masters_by, _raw, _write, make_raw_night)


def test_unlike_master_counts_patterns_not_noise_or_level():
    from obsdb.imaging.calibration import UNLIKE_FRACTION, unlike_master

    rng = np.random.default_rng(3)
    master = rng.normal(0, 1.0, (200, 300)).astype(np.float32)          # a master's own noise
    frame = master + rng.normal(0, 5.0, master.shape).astype(np.float32)
    quiet = unlike_master(frame, master, master_noise=1.0)
    # Gaussian noise: 2e-9 of the pixels lie beyond 6 sigma; the scatter is the frame's 5 ADU.
    assert quiet["fraction"] < 1e-3 and quiet["scatter"] == pytest.approx(5.1, rel=0.05)
    # A level drift alone is not a difference (the set's level check judges levels).
    assert unlike_master(frame + 300, master, master_noise=1.0)["fraction"] < 1e-3
    # A read-out pattern over 8 % of the rows, 10 sigma high: 8 % of the pixels, over the limit.
    striped = frame.copy()
    striped[::12] += 50.0
    found = unlike_master(striped, master, master_noise=1.0)
    assert found["fraction"] == pytest.approx(1 / 12, abs=0.005) and found["fraction"] > UNLIKE_FRACTION
    # 4 sigma high is not 6: nothing.
    mild = frame.copy()
    mild[::12] += 20.0
    assert unlike_master(mild, master, master_noise=1.0)["fraction"] < 1e-3
    with pytest.raises(ValueError, match="differ in shape"):
        unlike_master(frame[:10], master)


def test_pixel_noise_ignores_gradients():
    from obsdb.imaging.calibration import pixel_noise, robust_noise

    rng = np.random.default_rng(4)
    y, x = np.mgrid[0:256, 0:256]
    image = 1000 + 4.0 * x + rng.normal(0, 7.0, x.shape)       # a 1,000 ADU ramp across the frame
    assert pixel_noise(image) == pytest.approx(7.0, rel=0.05)
    assert robust_noise(image) > 100


def test_combine_counts_the_clipping_of_each_input():
    from obsdb.imaging.calibration import combine

    rng = np.random.default_rng(5)
    frames = [rng.normal(100, 5, (64, 80)).astype(np.float32) for _ in range(7)]
    frames[2][10:20] += 500                     # a satellite across 10 rows of one input
    per_input: list[int] = []
    master, rejected = combine(frames, per_input=per_input, rows=16)   # several bands of rows
    assert len(per_input) == 7 and sum(per_input) == rejected
    assert per_input[2] >= 800 and per_input[2] == max(per_input)
    assert float(np.abs(master[10:20] - 100).max()) < 25


def _night_two(folder, *, striped: bool):
    """Six bias frames of the next night; the last one with a read-out pattern over one row in
    eight, 60 ADU (12 read noises) high: the set's level and noise checks pass it."""
    rng = np.random.default_rng(11)
    when = START + timedelta(days=1)
    for i in range(6):
        raw = _raw(rng, 0.0, rng.normal(0, 3))
        if striped and i == 5:
            raw[::8, :DATA_W] += 60.0
        _write(folder, f"n2b{i:02d}.fits", raw, "BIAS", when + timedelta(minutes=i), EXPTIME=0.0,
               **{"CCD-TEMP": -10.0})


def _status(catalog, file_name: str) -> str:
    return next(f["status"] for f in catalog.frame_dicts() if f["file_name"] == file_name)


@pytest.mark.parametrize("striped", [True, False])
def test_a_bias_unlike_last_nights_master_is_refused_with_its_numbers(catalog_url, tmp_path, striped):
    from obsdb import Catalog
    from obsdb.catalog.masters import MasterStore

    make_raw_night(tmp_path / "n1")
    with Catalog.open(catalog_url, create=True) as catalog:
        catalog.ingest([str(tmp_path / "n1")])
        catalog.qa()
        first = catalog.calibrate(tmp_path / "masters")
        assert first.compared == 0                       # nothing before the first night
        (old_bias,) = _masters_by(MasterStore(catalog.db).masters(), "bias")

        _night_two(tmp_path / "n2", striped=striped)
        catalog.ingest([str(tmp_path / "n2")])
        catalog.qa()
        ids = _frame_ids(catalog)
        # The statistics checks see nothing wrong with the striped frame.
        assert _status(catalog, "n2b05.fits") != "rejected"
        second = catalog.calibrate(tmp_path / "masters")
        assert second.compared == 6 and not second.failed
        new_bias = [b for b in second.built if b["kind"] == "bias"]
        assert len(new_bias) == 1
        if not striped:
            assert not second.unlike and new_bias[0]["n_frames"] == 6
            return
        # The striped frame: tagged with the fraction, the threshold, the scatter and the master.
        ((label, reason),) = second.unlike
        assert "n2b05" in label
        assert f"from master bias {old_bias['id']} of " in reason and "(limit 5%)" in reason
        fraction = float(reason.split(":")[1].split("%")[0])
        assert 12.0 < fraction < 13.0                     # one row in 8: 12.5 %
        assert _status(catalog, "n2b05.fits") == "rejected"
        assert new_bias[0]["n_frames"] == 5
        masters = MasterStore(catalog.db).masters()
        built = next(m for m in masters if m["id"] == new_bias[0]["id"])
        assert ids["n2b05.fits"] not in {m["frame_id"] for m in built["members"]}
        # Each member's clipped pixels are recorded beside the total.
        per_input = built["stats"]["rejected_per_input"]
        assert set(per_input) == {str(m["frame_id"]) for m in built["members"]}
        assert sum(per_input.values()) == built["stats"]["rejected"]

        # A person's word wins: accepted by hand, the frame joins a new master of all six.
        catalog.tag("n2b05.fits", "accept", reason="the pattern is the new controller's", author="ana")
        third = catalog.calibrate(tmp_path / "masters")
        assert [b["n_frames"] for b in third.built if b["kind"] == "bias"] == [6]


def test_a_master_from_a_memory_mapped_stack_is_the_same(tmp_path):
    from astropy.io import fits

    from obsdb.imaging.fitsio import read_fits_image
    from obsdb.pipeline.calibrate import build_master

    rng = np.random.default_rng(8)
    members = []
    for i in range(5):
        path = tmp_path / f"b{i}.fits"
        _write(tmp_path, path.name, _raw(rng, 0.0, rng.normal(0, 3)), "BIAS", START, EXPTIME=0.0)
        members.append({"frame_id": i + 1, "path": str(path), "file_name": path.name, "exptime": 0.0,
                        "sha256": read_fits_image(str(path), hash_mode="inline").sha256})
    results = {}
    for name, budget in (("memory", 1 << 40), ("mapped", 0)):
        job = {"id": 1, "kind": "bias", "path": str(tmp_path / f"{name}.fits"), "members": members,
               "bias": None, "dark": None, "cards": {}, "in_memory_bytes": budget}
        result = build_master(job)
        assert "error" not in result, result
        results[name] = (fits.getdata(job["path"]), result["stats"])
    assert np.array_equal(results["memory"][0], results["mapped"][0])
    assert results["memory"][1]["rejected_per_input"] == results["mapped"][1]["rejected_per_input"]
    assert results["mapped"][0].shape == (HEIGHT, DATA_W) and WIDTH > DATA_W
    assert abs(float(np.median(results["mapped"][0]))) < READ_NOISE and BIAS_LEVEL > 0


def _night_without_sections(folder):
    """make_raw_night's frames with their BIASSEC and TRIMSEC cards taken out (a camera that writes none)."""
    from astropy.io import fits

    make_raw_night(folder)
    for path in folder.glob("*.fits"):
        with fits.open(path, mode="update") as hdul:
            del hdul[0].header["BIASSEC"]
            del hdul[0].header["TRIMSEC"]


def test_sections_from_the_configuration_stand_in_for_missing_cards(catalog_url, tmp_path):
    from astropy.io import fits

    from obsdb import Catalog
    from obsdb.catalog.masters import MasterStore

    _night_without_sections(tmp_path / "raw")
    sections = {"biassec": f"[{DATA_W + 1}:{WIDTH},1:{HEIGHT}]", "trimsec": f"[1:{DATA_W},1:{HEIGHT}]"}
    with Catalog.open(catalog_url, create=True) as catalog:
        catalog.ingest([str(tmp_path / "raw")])
        catalog.qa()
        report = catalog.calibrate(tmp_path / "masters", sections=sections, write_lights=True)
        assert not report.failed and not report.lights_failed
        (bias,) = _masters_by(MasterStore(catalog.db).masters(), "bias")
        data = fits.getdata(bias["path"])
        # Overscan subtracted and trimmed, as the cards would have made it (without them the master
        # would be 70 columns wide at the bias level: the member frames are).
        assert data.shape == (HEIGHT, DATA_W) and abs(float(np.median(data))) < READ_NOISE
        assert bias["stats"]["biassec"] == sections["biassec"]
        # The lights, whose headers say nothing either, take their masters' sections.
        light = fits.getdata(tmp_path / "masters" / "calibrated" / "L1_cal.fits")
        assert light.shape == (HEIGHT, DATA_W) and abs(float(np.nanmean(light)) - 500.0) < 0.1 * 23
        member = fits.getdata(next(f["path"] for f in catalog.frame_dicts() if f["file_name"] == "b00.fits"))
        assert member.shape == (HEIGHT, WIDTH) and float(np.median(member)) > BIAS_LEVEL / 2


def test_the_calibration_section_of_obsdb_toml_is_checked(tmp_path):
    from obsdb.config import ConfigError, load_config

    good = tmp_path / "good.toml"
    good.write_text('[calibration]\nbiassec = "[1025:1056,1:1024]"\ntrimsec = " [1:1024,1:1024] "\n')
    assert load_config(good).calibration.sections() == {"biassec": "[1025:1056,1:1024]",
                                                          "trimsec": "[1:1024,1:1024]"}
    for text, message in (('biassec = "1025:1056"', "expected a FITS section"),
                          ("biassec = 3", "expected a FITS section"),
                          ('bias_sec = "[1:2,1:2]"', "unknown key calibration.bias_sec (did you mean 'biassec'?)")):
        bad = tmp_path / "bad.toml"
        bad.write_text(f"[calibration]\n{text}\n")
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
            load_config(bad)
