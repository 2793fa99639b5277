"""BJD_TDB for light curves (obsdb.imaging.timescales): the light time's size and shape over a year."""

from __future__ import annotations

import numpy as np
import pytest

from obsdb.imaging.timescales import bjd_tdb

AU_LIGHT_SECONDS = 499.005
"""Light time over one astronomical unit, s."""


def _light_seconds(mjd, ra, dec, **site):
    """BJD_TDB less the JD in TDB of the same instants (the light time alone), s."""
    from astropy.time import Time

    tdb = Time(mjd, format="mjd", scale="utc").tdb.jd
    return (bjd_tdb(mjd, ra, dec, **site) - tdb) * 86400.0


def test_a_star_on_the_ecliptic_swings_by_the_light_time_of_one_au():
    days = 61000.0 + np.arange(0, 366, 3.0)
    light = _light_seconds(days, 90.0, 23.44, longitude=0.0, latitude=0.0)      # RA 6h, on the ecliptic
    # The Earth's orbit: +-499 s, within the eccentricity (1.7 %) and the Sun's wobble about the barycentre.
    assert light.max() == pytest.approx(AU_LIGHT_SECONDS, rel=0.03)
    assert light.min() == pytest.approx(-AU_LIGHT_SECONDS, rel=0.03)


def test_a_star_at_the_ecliptic_pole_barely_moves_and_the_site_adds_tens_of_milliseconds():
    days = 61000.0 + np.arange(0, 366, 15.0)
    pole = _light_seconds(days, 270.0, 66.56, longitude=0.0, latitude=0.0)
    assert np.abs(pole).max() < 10.0                 # the Sun's wobble off the ecliptic plane only
    here = bjd_tdb(days, 90.0, 23.44, longitude=20.81, latitude=-32.38, elevation=1798.0)
    there = bjd_tdb(days, 90.0, 23.44, longitude=-159.19, latitude=32.38, elevation=0.0)
    difference = np.abs(here - there) * 86400.0
    # Antipodal sites: at most the Earth's diameter, 12,742 km, 42.5 ms of light; and far from nothing.
    assert 0.02 < difference.max() < 0.0426


def test_missing_times_stay_missing():
    out = bjd_tdb([np.nan, 61000.5], 10.0, -20.0, longitude=0.0, latitude=0.0)
    assert np.isnan(out[0]) and np.isfinite(out[1])
    assert np.isnan(bjd_tdb([np.nan], 10.0, -20.0, longitude=0.0, latitude=0.0)).all()
