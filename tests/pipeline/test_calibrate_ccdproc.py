"""obsdb's calibrated pixels against ccdproc's, step for step where the methods are the same:
``subtract_overscan`` (median per row), ``trim_image``, ``subtract_bias``, ``subtract_dark`` (scaled by
exposure) and ``flat_correct``.  Skipped without ccdproc (the ``bench`` extra), unless
``OBSDB_REQUIRE_CCDPROC=1``, where its absence fails."""

from __future__ import annotations

import os

import numpy as np
import pytest


@pytest.fixture(scope="module")
def ccdproc():
    try:
        import ccdproc
    except ImportError:
        if os.environ.get("OBSDB_REQUIRE_CCDPROC") == "1":
            pytest.fail("ccdproc is not installed and OBSDB_REQUIRE_CCDPROC=1 (pip install -e '.[bench]')")
        pytest.skip("ccdproc is not installed (the bench extra)")
    return ccdproc


def _raw_light(shape=(120, 150), overscan=20, seed=5):
    from astropy.io import fits

    rng = np.random.default_rng(seed)
    height, width = shape
    raw = rng.normal(2000.0, 40.0, (height, width + overscan))
    raw += (5.0 * np.sin(np.arange(height) / 9.0))[:, None]           # the level drifts along the rows
    raw[40:44, 60:64] = 60000.0                                        # a bright star core
    header = fits.Header()
    header["BIASSEC"] = f"[{width + 1}:{width + overscan},1:{height}]"
    header["TRIMSEC"] = f"[3:{width},2:{height}]"                       # trims a little of the image too
    header["EXPTIME"] = 120.0
    trimmed = (height - 1, width - 2)
    bias = rng.normal(0.0, 3.0, trimmed).astype(np.float32)
    dark = rng.gamma(2.0, 2.0, trimmed).astype(np.float32)
    flat = rng.normal(1.0, 0.05, trimmed).astype(np.float32)
    flat /= np.median(flat)
    return np.round(raw).astype(np.uint16), header, bias, dark, flat


def test_calibrated_pixels_equal_ccdprocs(ccdproc):
    import astropy.units as u
    from astropy.nddata import CCDData

    from obsdb.imaging.calibration import apply_calibration

    raw, header, bias, dark, flat = _raw_light()
    ours = apply_calibration(raw, header, bias=bias, dark=dark, dark_scale=2.0, flat=flat)

    ccd = CCDData(raw.astype(np.float64), unit="adu", meta=header)
    ccd = ccdproc.subtract_overscan(ccd, fits_section=header["BIASSEC"], median=True, overscan_axis=1)
    ccd = ccdproc.trim_image(ccd, fits_section=header["TRIMSEC"])
    ccd = ccdproc.subtract_bias(ccd, CCDData(bias, unit="adu"))
    ccd = ccdproc.subtract_dark(ccd, CCDData(dark, unit="adu", meta={"EXPTIME": 60.0}), exposure_time="EXPTIME",
                                exposure_unit=u.s, scale=True)
    # obsdb's flat is normalised to a median of 1 and applied as it is; ccdproc divides by the mean
    # unless told the norm.
    ccd = ccdproc.flat_correct(ccd, CCDData(flat, unit="adu"), norm_value=1.0)
    theirs = np.asarray(ccd.data)

    assert ours.shape == theirs.shape == bias.shape
    # float32 rounding: a few units in the last place of the largest values.
    scale = float(np.max(np.abs(theirs)))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=4 * np.finfo(np.float32).eps * scale)
    # And it is not trivially equal: the steps do change the pixels.
    assert float(np.max(np.abs(ours - raw[1:, 2:150]))) > 100


def test_overscan_and_trim_equal_ccdprocs(ccdproc):
    from astropy.nddata import CCDData

    from obsdb.imaging.calibration import overscan_and_trim

    raw, header, *_ = _raw_light(seed=9)
    ours, info = overscan_and_trim(raw, header)
    ccd = CCDData(raw.astype(np.float64), unit="adu")
    ccd = ccdproc.subtract_overscan(ccd, fits_section=header["BIASSEC"], median=True, overscan_axis=1)
    theirs = np.asarray(ccdproc.trim_image(ccd, fits_section=header["TRIMSEC"]).data)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=2 * np.finfo(np.float32).eps * 65535)
    assert info["trimsec"] == header["TRIMSEC"]
