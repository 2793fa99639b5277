"""Times for light curves: the barycentric Julian date in TDB (BJD_TDB), the time scale transit and
variable-star work is published in (Eastman et al. 2010, PASP 122, 935).  Pure functions on numbers."""

from __future__ import annotations

import numpy as np


def bjd_tdb(mjd_utc, ra_deg: float, dec_deg: float, *, longitude: float, latitude: float,
            elevation: float | None = None) -> np.ndarray:
    """BJD_TDB of instants given as MJD (UTC), for a star at (``ra_deg``, ``dec_deg``) seen from a site.

    The light travel time to the solar system's barycentre comes from astropy's built-in ephemeris
    (ERFA's ``epv00``: the Earth's position to a few km, some 10 ms of time at most), so that no
    ephemeris file is downloaded; the site moves the answer by up to 21 ms (an Earth radius).

    Parameters
    ----------
    mjd_utc : array_like
        Modified Julian dates in UTC (NaN stays NaN).
    ra_deg, dec_deg : float
        The star's ICRS coordinates, degrees.
    longitude, latitude : float
        The site, degrees (east-positive longitude).
    elevation : float, optional
        The site's height, m (0 when unknown).

    Returns
    -------
    numpy.ndarray
        Full Julian dates (BJD_TDB), float64.

    Examples
    --------
    A star near the ecliptic pole changes its light time little over a year; one on the ecliptic by
    up to 8.3 minutes either side:

    >>> t = bjd_tdb([61000.0], 270.0, 66.56, longitude=0.0, latitude=0.0)
    >>> bool(abs((t[0] - 2400000.5 - 61000.0) * 86400) < 70)   # TDB - UTC is 69.2 s; light time small
    True
    """
    import warnings

    import astropy.units as u
    from astropy.coordinates import EarthLocation, SkyCoord
    from astropy.time import Time
    from astropy.utils import iers
    from erfa import ErfaWarning

    mjd = np.atleast_1d(np.asarray(mjd_utc, dtype=float))
    out = np.full(mjd.shape, np.nan)
    finite = np.isfinite(mjd)
    if not finite.any():
        return out
    site = EarthLocation.from_geodetic(lon=longitude * u.deg, lat=latitude * u.deg, height=(elevation or 0.0) * u.m)
    # No download of Earth-orientation tables (this machine may have no network); beyond the bundled
    # tables the site's rotation is off by a fraction of a second of UT1, a few microseconds of light time.
    with iers.conf.set_temp("auto_download", False), iers.conf.set_temp("auto_max_age", None), \
            iers.conf.set_temp("iers_degraded_accuracy", "ignore"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ErfaWarning, message=".*dubious year")
        times = Time(mjd[finite], format="mjd", scale="utc", location=site)
        light = times.light_travel_time(SkyCoord(ra_deg * u.deg, dec_deg * u.deg, frame="icrs"),
                                        kind="barycentric", ephemeris="builtin")
        out[finite] = (times.tdb + light).jd
    return out
