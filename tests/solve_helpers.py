"""Plate-solving tests' shared pieces: whether astrometry.net is here, and a simulated wide field made
from the installed index's own stars, with its true WCS."""

from __future__ import annotations

import os

import pytest

FIELD_CENTRE = (150.1, 29.9)
"""RA, Dec (deg) of the simulated field: an ordinary patch of sky at mid declination."""

FIELD_SHAPE = (2048, 2048)
FIELD_SCALE = 3.5
"""Arcsec per pixel: a 2048-pixel frame covers 2.0 degrees, which Debian's smallest index package
(astrometry-data-tycho2-10-19, 60'-2000' fields) solves."""

FIELD_ROTATION = 30.0
"""Degrees, east of north."""

EXTRA_STARS = 150
"""Fainter stars that no index holds, placed at random (a real frame has many)."""


def require_solver() -> None:
    """Skip when ``solve-field`` or its index files are missing, unless ``OBSDB_REQUIRE_SOLVE=1``
    (set by ``.ci/run`` when it could install them), where that is a failure."""
    from obsdb.imaging.astrometry import installed_indexes, solver_path

    if solver_path() is None or not installed_indexes():
        reason = "astrometry.net's solve-field and an index package are not installed"
        if os.environ.get("OBSDB_REQUIRE_SOLVE") == "1":
            pytest.fail(reason + " (OBSDB_REQUIRE_SOLVE=1)")
        pytest.skip(reason)


def simulation_index():
    """The index whose stars make the simulated fields: Tycho-2 10 (the densest of the package CI
    installs) when present, so that a developer with more index packages simulates the same sky."""
    from obsdb.imaging.astrometry import installed_indexes

    indexes = installed_indexes()
    return next((p for p in indexes if p.name.startswith("index-tycho2-10.")), indexes[0])


def true_wcs(centre=FIELD_CENTRE, scale=FIELD_SCALE, rotation=FIELD_ROTATION, shape=FIELD_SHAPE):
    """The simulated field's WCS: TAN, north rotated ``rotation`` degrees east, east to the left."""
    import numpy as np
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = list(centre)
    wcs.wcs.crpix = [(shape[1] + 1) / 2, (shape[0] + 1) / 2]
    s, t = scale / 3600.0, np.radians(rotation)
    wcs.wcs.cd = [[-s * np.cos(t), -s * np.sin(t)], [-s * np.sin(t), s * np.cos(t)]]
    return wcs


def simulated_stars(wcs, shape=FIELD_SHAPE, *, seed: int = 1, noise: float = 0.1, extra: int = EXTRA_STARS):
    """A star list (0-based x, y, flux; brightest first) of the index's stars seen through ``wcs``,
    with ``noise`` px of centroid scatter, plus ``extra`` fainter random stars."""
    import numpy as np

    from obsdb.imaging.astrometry import index_stars

    centre = wcs.all_pix2world([[(shape[1] - 1) / 2, (shape[0] - 1) / 2]], 0)[0]
    radius = np.hypot(*shape) * np.mean(np.abs(np.diag(wcs.pixel_scale_matrix))) / 2 * 1.05
    ra, dec, mag = index_stars(float(centre[0]), float(centre[1]), float(radius), index=simulation_index())
    x, y = wcs.all_world2pix(ra, dec, 0)
    inside = (x > 0) & (x < shape[1] - 1) & (y > 0) & (y < shape[0] - 1)
    rng = np.random.default_rng(seed)
    n = int(inside.sum())
    stars = np.zeros(n + extra, dtype=[("x", "f8"), ("y", "f8"), ("flux", "f8")])
    stars["x"] = np.concatenate([x[inside] + rng.normal(0, noise, n), rng.uniform(0, shape[1] - 1, extra)])
    stars["y"] = np.concatenate([y[inside] + rng.normal(0, noise, n), rng.uniform(0, shape[0] - 1, extra)])
    magnitudes = np.concatenate([np.nan_to_num(mag[inside], nan=11.0), rng.uniform(12.5, 15.0, extra)])
    stars["flux"] = 1e6 * 10 ** (-0.4 * (magnitudes - 8.0))
    return stars[np.argsort(-stars["flux"])]


FRAME_SHAPE = (1024, 1024)
FRAME_SCALE = 7.0
"""Arcsec per pixel of the simulated frames: 1024 pixels cover 2.0 degrees, as the star list above."""

FOCAL_LENGTH = 265.2
PIXEL_SIZE = 9.0
"""mm and micron: FOCALLEN and XPIXSZ of the frames, which give :data:`FRAME_SCALE` (206265 * 9e-3 / 265.2)."""


def write_wide_field_frames(folder, *, n: int = 3, centre=FIELD_CENTRE, seed: int = 11):
    """Write ``n`` light frames of a 2-degree field made from the index's own stars (Gaussian stars,
    sky and noise), dithered by a few pixels, with the pointing and pixel scale in their headers and
    no WCS.  Returns the true WCS of each file, by file name."""
    import numpy as np
    from astropy.io import fits

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    truths = {}
    yy, xx = np.mgrid[0:FRAME_SHAPE[0], 0:FRAME_SHAPE[1]]
    for i in range(n):
        wcs = true_wcs(centre=centre, scale=FRAME_SCALE, rotation=FIELD_ROTATION, shape=FRAME_SHAPE)
        wcs.wcs.crpix = [wcs.wcs.crpix[0] + 3.0 * i, wcs.wcs.crpix[1] - 2.0 * i]
        stars = simulated_stars(wcs, FRAME_SHAPE, seed=seed + i, noise=0.0, extra=120)
        image = np.full(FRAME_SHAPE, 1000.0)
        sigma = 1.3
        for x, y, flux in zip(stars["x"], stars["y"], stars["flux"]):
            peak = min(flux / 1e6 * 20000.0, 30000.0)
            x0, x1, y0, y1 = int(x) - 7, int(x) + 8, int(y) - 7, int(y) + 8
            if x0 < 0 or y0 < 0 or x1 > FRAME_SHAPE[1] or y1 > FRAME_SHAPE[0]:
                continue
            image[y0:y1, x0:x1] += peak * np.exp(-((xx[y0:y1, x0:x1] - x) ** 2 + (yy[y0:y1, x0:x1] - y) ** 2)
                                                 / (2 * sigma ** 2))
        image = rng.poisson(image).astype(np.float32) + rng.normal(0, 5, FRAME_SHAPE).astype(np.float32)
        header = fits.Header()
        header["IMAGETYP"] = "Light Frame"
        header["FILTER"] = "V"
        header["OBJECT"] = "WIDE"
        header["EXPTIME"] = 30.0
        header["DATE-OBS"] = f"2026-03-14T22:{10 + i:02d}:00"
        header["OBJCTRA"] = "10 00 40"       # about 0.07 deg from the true centre, as a mount reports it
        header["OBJCTDEC"] = "+29 58 00"
        header["FOCALLEN"] = FOCAL_LENGTH
        header["XPIXSZ"] = PIXEL_SIZE
        name = f"wide_{1001 + i:04d}.fits"
        fits.PrimaryHDU(image, header=header).writeto(folder / name, overwrite=True)
        truths[name] = wcs
    return truths
