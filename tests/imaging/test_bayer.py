"""Colour (Bayer) sensors: measured on superpixels, registered at full resolution, rendered demosaiced."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from obsdb import Catalog
from obsdb.imaging.bayer import RESPONSE, cfa_pattern, luminance, mosaic_response, superpixels


def test_the_pattern_is_read_from_the_header_and_a_bad_one_named():
    assert cfa_pattern({"BAYERPAT": "rggb "}) == "RGGB"
    assert cfa_pattern({"COLORTYP": "GRBG"}) == "GRBG"
    assert cfa_pattern({"FILTER": "V"}) is None and cfa_pattern({"BAYERPAT": "NONE"}) is None
    with pytest.raises(ValueError, match="BAYERPAT = 'XYZW': not a Bayer pattern"):
        cfa_pattern({"BAYERPAT": "XYZW"})


def _checkerboard(image) -> float:
    """Spread of the four 2x2 phases' medians, relative to their mean (0 for a grey image)."""
    phases = [np.nanmedian(image[dy::2, dx::2]) for dy in (0, 1) for dx in (0, 1)]
    return float((max(phases) - min(phases)) / np.mean(phases))


@pytest.mark.parametrize("pattern", ["RGGB", "GBRG"])
def test_an_evenly_lit_mosaic_demosaics_to_a_grey_image(pattern):
    mosaic = 1000.0 * mosaic_response((64, 64), pattern)
    assert _checkerboard(mosaic) > 0.5
    grey = luminance(mosaic, pattern)
    assert _checkerboard(grey) < 1e-6
    assert np.nanmedian(grey) == pytest.approx(1000.0 * (RESPONSE["R"] + RESPONSE["G"] + RESPONSE["B"]) / 3)
    assert superpixels(mosaic).shape == (32, 32)


@pytest.fixture(scope="module")
def colour_night(tmp_path_factory, simulated_nights):
    root = tmp_path_factory.mktemp("bayer")
    truth = simulated_nights.copy(root / "night", seed=7, size=512, n_frames=8, bands=("L",), n_groups=2,
                                  cloud_fraction=0.0, trail_fraction=0.0, defocus_fraction=0.0, max_group_offset=60,
                                  bayer="RGGB")
    return root, truth


def test_a_colour_night_is_registered_at_full_resolution_and_rendered_without_checkerboard(colour_night):
    root, truth = colour_night
    assert fits.getheader(root / "night" / truth.frames[0]["file"])["BAYERPAT"] == "RGGB"
    with Catalog.open(root / "c.sqlite", create=True) as cat:
        cat.ingest([root / "night"])
        cat.qa()
        report = cat.align(status="any")[0]
        ok = [r for r in report.results if r.ok]
        assert len(ok) >= 7 and all(r.method in ("stars", "reference") for r in ok)
        errors = [np.hypot(r.dx - dx, r.dy - dy) for r in ok
                  for dx, dy in [truth.shift(r.number, reference=report.reference)]]
        assert max(errors) < 0.05, errors
        # The stored FWHM is in full-resolution pixels (the simulator's seeing is 2.0-3.5 px).
        fwhms = [f.metrics.fwhm for f in cat.frames()]
        assert 1.5 < float(np.median(fwhms)) < 5.0

        rendered = cat.render(root / "out", status="any", stack="median")
    raw = fits.getdata(root / "night" / truth.frames[0]["file"]).astype(float)
    assert _checkerboard(raw) > 0.3
    for _, path in rendered.frames:
        with fits.open(path) as hdul:
            assert hdul[0].header["OBSDB_CFA"] == "RGGB" and "BAYERPAT" not in hdul[0].header
            assert _checkerboard(hdul[0].data.astype(float)) < 0.01
    stack = fits.getdata(rendered.stacks[0]["path"]).astype(float)
    assert _checkerboard(stack) < 0.01


def test_the_pixel_fallback_detects_a_mosaic_as_ingest_stores_it(colour_night):
    from obsdb.imaging.fitsio import read_fits_image
    from obsdb.catalog.stores import AlignStore
    from obsdb.pipeline.align import _detect

    root, truth = colour_night
    with Catalog.open(root / "c.sqlite", create=True) as cat:
        if not cat.frames():  # run on its own, without the test above
            cat.ingest([root / "night"])
        frame = AlignStore(cat.db).align_frames(status="any")[0]
    fresh = _detect(read_fits_image(frame.path, hash_mode="none"))
    stored = frame.stars
    d = np.hypot(fresh["x"][:, None] - stored["x"][None, :], fresh["y"][:, None] - stored["y"][None, :])
    nearest = d.min(axis=1)
    assert np.median(nearest) < 0.01 and (nearest < 0.05).mean() > 0.9
