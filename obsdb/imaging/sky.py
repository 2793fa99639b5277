"""Where the Sun and the Moon were for a frame, and what its header says about the site,
the target and the focuser: the evidence QA needs to tell twilight or moonlight from cloud,
and defocus from seeing.

Pure functions on header mappings and numbers; the Sun and Moon come from astropy's
built-in ephemeris, offline (no IERS download: the bundled tables are used, with degraded
accuracy far from their range, which is far better than the degree QA needs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

FOCUS_CARDS = ("FOCPOS", "FOCUSPOS", "TELFOCUS", "FOCUS", "FOC-POS", "FOCUSER", "FOCUSSTP", "FOCSTEP")
"""Header cards that give a focuser position, in the order they are tried."""

SITE_CARDS = (("SITELAT", "SITELONG", "SITEELEV"), ("LAT-OBS", "LONG-OBS", "ALT-OBS"),
              ("LATITUDE", "LONGITUD", "ALTITUDE"), ("OBSLAT", "OBSLONG", "OBSALT"),
              ("OBSGEO-B", "OBSGEO-L", "OBSGEO-H"))
"""(latitude, longitude, height) card triples, tried in order; longitudes east-positive."""

TARGET_CARDS = (("RA", "DEC"), ("OBJCTRA", "OBJCTDEC"), ("RA_OBS", "DEC_OBS"), ("TELRA", "TELDEC"),
                ("CRVAL1", "CRVAL2"))
"""(right ascension, declination) card pairs, tried after a celestial WCS."""


def _angle(value, *, hours: bool = False) -> float | None:
    """Degrees from a number or a sexagesimal string (``'22:04:08'``, ``'-00 55 31'``); None if unreadable.

    A sexagesimal right ascension is in hours; a plain number is in degrees."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    text = str(value).strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    parts = text.replace(":", " ").replace("d", " ").replace("h", " ").replace("m", " ").replace("s", " ").split()
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        return None
    if not numbers or len(numbers) > 3:
        return None
    sign = -1.0 if text.startswith("-") else 1.0
    total = abs(numbers[0]) + sum(v / 60 ** i for i, v in enumerate(numbers[1:], start=1))
    return sign * total * (15.0 if hours else 1.0)


def _card(header: Mapping, name: str):
    value = header.get(name)
    return value if value not in (None, "") else None


def site_from_header(header: Mapping | None) -> tuple[float, float, float] | None:
    """``(latitude, longitude east, height m)`` from the header's site cards, or None."""
    if not header:
        return None
    for lat_card, lon_card, h_card in SITE_CARDS:
        lat, lon = _angle(_card(header, lat_card)), _angle(_card(header, lon_card))
        if lat is None or lon is None or not -90 <= lat <= 90:
            continue
        height = _angle(_card(header, h_card)) or 0.0
        return lat, lon, height
    return None


def target_from_header(header: Mapping | None, shape: tuple[int, int] | None = None) -> tuple[float, float] | None:
    """``(ra, dec)`` in degrees: the WCS at the frame centre when the header has a celestial WCS
    (and ``shape`` = (ny, nx) is known), else the first readable pair of :data:`TARGET_CARDS`."""
    if not header:
        return None
    ctype = str(header.get("CTYPE1", ""))
    if shape and ctype.startswith("RA"):
        try:
            import warnings

            from astropy.io import fits
            from astropy.io.fits.verify import VerifyWarning
            from astropy.utils.exceptions import AstropyUserWarning
            from astropy.wcs import WCS, FITSFixedWarning

            with warnings.catch_warnings():
                # Cards astropy repairs or cannot read are reported on every frame; a WCS it cannot
                # use ends in the except below.
                warnings.filterwarnings("ignore", category=FITSFixedWarning)
                warnings.filterwarnings("ignore", category=VerifyWarning)
                warnings.filterwarnings("ignore", category=AstropyUserWarning,
                                        message="The following header keyword is invalid")
                h = fits.Header()
                for key, value in header.items():
                    if isinstance(value, (str, int, float, bool)) and len(key) <= 8:
                        try:
                            h[key] = value
                        except (ValueError, KeyError):
                            continue
                world = WCS(h).celestial.pixel_to_world_values((shape[1] - 1) / 2, (shape[0] - 1) / 2)
            ra, dec = float(world[0]), float(world[1])
            if math.isfinite(ra) and math.isfinite(dec):
                return ra % 360.0, dec
        except Exception:  # a damaged WCS: fall back to the pointing cards
            pass
    for ra_card, dec_card in TARGET_CARDS:
        raw = _card(header, ra_card)
        ra = _angle(raw, hours=isinstance(raw, str) and any(c in raw.strip() for c in ": "))
        dec = _angle(_card(header, dec_card))
        if ra is not None and dec is not None and -90 <= dec <= 90:
            return ra % 360.0, dec
    return None


def focus_from_header(header: Mapping | None) -> tuple[str, float] | None:
    """``(card, position)`` of the focuser, or None when no card of :data:`FOCUS_CARDS` holds a number."""
    if not header:
        return None
    for name in FOCUS_CARDS:
        value = _angle(_card(header, name))
        if value is not None:
            return name, value
    return None


def sun_and_moon(times, latitude: float, longitude: float, height: float = 0.0,
                 targets=None) -> list[dict]:
    """Sun and Moon for frames taken at one site.

    Parameters
    ----------
    times : list of datetime (UTC)
    latitude, longitude, height : float
        The site (deg, deg east, m).
    targets : list of (ra, dec) or None, optional
        The frames' pointings (deg), for the Moon's separation.

    Returns
    -------
    list of dict
        ``sun_alt``, ``moon_alt``, ``moon_sep`` (None without a target), ``moon_illum`` per frame.
    """
    import warnings

    import astropy.units as u
    import numpy as np
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord, get_body, get_sun
    from astropy.time import Time
    from astropy.utils import iers

    if not times:
        return []
    from astropy.coordinates.baseframe import NonRotationTransformationWarning
    from astropy.utils.exceptions import AstropyWarning
    from erfa import ErfaWarning

    with iers.conf.set_temp("auto_download", False), iers.conf.set_temp("iers_degraded_accuracy", "ignore"), \
            warnings.catch_warnings():
        # The Sun-Moon separation is taken between GCRS frames of different origins (the
        # difference is far below the illumination's precision); ERFA doubts far-future dates, and
        # frames older than the IERS table get mean polar motions: arcseconds, far below a
        # Sun or Moon altitude's use here.
        warnings.filterwarnings("ignore", category=NonRotationTransformationWarning)
        warnings.filterwarnings("ignore", category=ErfaWarning, message=".*dubious year")
        warnings.filterwarnings("ignore", category=AstropyWarning, message="Tried to get polar motions")
        t = Time(list(times), scale="utc")
        site = EarthLocation.from_geodetic(longitude * u.deg, latitude * u.deg, height * u.m)
        frame = AltAz(obstime=t, location=site)
        sun = get_sun(t)
        moon = get_body("moon", t, site)
        sun_altaz, moon_altaz = sun.transform_to(frame), moon.transform_to(frame)
        # Illuminated fraction from the Sun-Moon elongation seen from the Earth.
        elongation = sun.separation(moon).radian
        phase = np.arctan2(sun.distance * np.sin(elongation), moon.distance - sun.distance * np.cos(elongation))
        illum = (1 + np.cos(phase.to_value(u.rad))) / 2.0
        seps = [None] * len(t)
        if targets is not None:
            for i, target in enumerate(targets):
                if target is None:
                    continue
                where = SkyCoord(target[0] * u.deg, target[1] * u.deg, frame="icrs").transform_to(frame[i])
                seps[i] = float(where.separation(moon_altaz[i]).deg)
    return [{"sun_alt": float(sun_altaz.alt.deg[i]), "moon_alt": float(moon_altaz.alt.deg[i]),
             "moon_sep": seps[i], "moon_illum": float(illum[i])} for i in range(len(t))]
