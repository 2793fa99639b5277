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
    ra, dec, mag = index_stars(float(centre[0]), float(centre[1]), float(radius))
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
