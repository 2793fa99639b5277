"""Nights for a purpose: the notebook's NGC 3293 night and a night for the QA reasons."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np

from obsdb.simulate.model import FrameSpec
from obsdb.simulate.night import simulate_night
from obsdb.simulate.truth import NightTruth


# --------------------------------------------------------------------------- the notebook's night

NOTEBOOK_BANDS = {
    "B": list(range(3816, 3826)) + list(range(3852, 3862)) + list(range(3882, 3892)) + list(range(3942, 3952)),
    "V": list(range(3862, 3872)) + list(range(3920, 3930)) + [4052, 4053, 4058, 4059, 4062, 4063, 4064, 4065,
                                                              4098, 4099],
    "R": list(range(3872, 3882)) + [3930, 3933, 3937, 4056, 4057, 4060, 4094, 4095],
}
"""The frames of the seed notebook's NGC 3293 night: numbers by band."""

NOTEBOOK_GROUPS = [
    # (frames, stage-1 box X0, X1, Y0, Y1 in the group's frames, where the reference star sits in them)
    (range(3852, 3862), (437, 485, 1171, 1204), (631, 448)),
    ((3885, 3886, 3889, 3890), (1194, 1258, 1081, 1141), (564, 499)),
    ((3942, 3943, 3946, 3947), (1299, 1348, 1001, 1062), (658, 417)),
    ((3950, 3951), (440, 465, 1197, 1232), (618, 470)),
    (range(3872, 3882), (1266, 1309, 1046, 1082), (615, 464)),
    ((3933, 3937), (670, 720, 35, 88), (590, 490)),
    ((4056, 4057, 4094, 4095), (1335, 1373, 987, 1035), (681, 409)),
    (range(3862, 3872), (1613, 1657, 403, 454), (612, 456)),
    ((3922, 3923, 3925, 3926, 4098, 4099), (1292, 1354, 998, 1059), (658, 416)),
    ((4052,), (100, 200, 100, 200), (575, 524)),
    ((4062, 4064), (952, 981, 279, 322), (634, 466)),
]
"""The notebook's pointing groups, as ``examples/ngc3293-plan.toml`` records them."""

NOTEBOOK_REFERENCE_STAR = (681.0, 409.0)
"""The reference star in frame 4056 (group 6), which the notebook shifted everything onto."""

NOTEBOOK_FINE_BOX = (902, 942, 488, 527)
"""The fine (stage 3) box, on the grid stages 1 and 2 bring the frames to (frame 4056's)."""


def like_notebook_night(outdir, *, seed: int = 3293, progress=None) -> NightTruth:
    """The seed notebook's NGC 3293 night, simulated: its frame numbers and bands, 2048 x 2048, pointed
    so that each group's box holds a bright star and the reference star sits where the notebook saw it.

    ``examples/ngc3293-plan.toml`` then applies as written: its boxes fall on stars, its
    reference-star positions are true, and the staged alignment reproduces the notebook's steps.
    Frames the notebook put in no group share the pointing of the group nearest in number.

    Parameters
    ----------
    outdir : path-like
        Folder for the frames (``proc_NGC_3293_<band>_<number>.fits``, uint16) and ``truth.json``.
    seed : int
    progress : callable, optional
        ``progress(done, total, file_name)``.
    """
    rng = np.random.default_rng(seed)
    star_x, star_y = NOTEBOOK_REFERENCE_STAR
    # A frame at pointing offset (ox, oy) sees sky (x, y) at (x - ox, y - oy): the reference star at
    # the group's recorded position fixes the offset; group 6 (frame 4056) is the sky grid itself.
    offsets, members = {}, {}
    extra = [(star_x, star_y, 4.0e5)]
    for index, (frames, box, (rx, ry)) in enumerate(NOTEBOOK_GROUPS):
        ox, oy = star_x - rx, star_y - ry
        x0, x1, y0, y1 = box
        extra.append(((x0 + x1) / 2 + ox, (y0 + y1) / 2 + oy, 3.0e5))      # the group's box star
        for number in frames:
            offsets[number] = (ox, oy)
            members[number] = index
    # The fine box is read on the grid the first two stages bring every frame to (4056's, the sky's).
    extra.append(((NOTEBOOK_FINE_BOX[0] + NOTEBOOK_FINE_BOX[1]) / 2,
                  (NOTEBOOK_FINE_BOX[2] + NOTEBOOK_FINE_BOX[3]) / 2, 3.0e5))
    grouped = sorted(offsets)
    specs = []
    for band, numbers in NOTEBOOK_BANDS.items():
        for number in numbers:
            nearest = min(grouped, key=lambda n: (abs(n - number), n))
            ox, oy = offsets.get(number, offsets[nearest])
            # Tracking wanders by a pixel or so between the frames of a group: stage 1 measures it.
            drift = rng.uniform(-1.5, 1.5, 2)
            specs.append(FrameSpec(number=number, band=band, kind="good", offset=(ox + drift[0], oy + drift[1]),
                                   rotation_deg=0.0, fwhm=float(rng.uniform(2.6, 3.2))))
    specs.sort(key=lambda spec: spec.number)
    return simulate_night(outdir, specs, seed=seed, size=2048, dtype="uint16", object_name="proc_NGC_3293",
                          extra_stars=extra, progress=progress)


# --------------------------------------------------------------------------- a night for the QA reasons

QA_SITE = (-32.38, 20.81, 1798.0)
"""Site of :func:`simulate_qa_night` (latitude, longitude east, height m: Sutherland)."""

QA_TARGET = (112.5, -35.0)
"""(RA, Dec) in degrees of its field: near the zenith at the start of the dark time, low after midnight."""

QA_NIGHT = [
    # (UTC time on 2026-03-09/10, expected verdict, kind, sky factor, transparency)
    # On this date the Sun sets at 17:00 UTC; astronomical twilight ends near 18:35; the Moon
    # (66 % lit) rises at 20:20 and is 15-20 deg up by 21:30-22:00.
    ("17:35", "bright-sky", "good", 4.0, 0.97),   # Sun at -8 deg
    ("17:48", "bright-sky", "good", 3.5, 0.97),   # Sun at -11 deg
    ("18:45", None, "good", 1.0, 0.98),
    ("18:51", None, "good", 1.05, 0.97),
    ("18:57", "cloud", "cloud", 3.5, 0.3),         # flux lost, sky up: cloud
    ("19:03", None, "good", 1.0, 0.99),
    ("19:09", "focus", "defocus", 1.0, 0.98),      # the focuser moved
    ("19:15", None, "good", 0.95, 0.97),
    ("19:21", None, "good", 1.1, 0.98),
    ("19:27", "cloud", "good", 3.5, 0.97),         # sky up at full flux in a dark sky: lit cloud
    ("19:33", "trail", "trail", 1.0, 0.98),
    ("19:39", None, "good", 1.0, 0.96),
    ("19:45", "focus", "defocus", 1.0, 0.97),
    ("19:51", None, "good", 1.05, 0.98),
    ("19:57", "cloud", "cloud", 5.0, 0.2),
    ("20:03", None, "good", 1.0, 0.99),
    ("21:30", "bright-sky", "good", 3.5, 0.97),   # moonlight
    ("21:45", "bright-sky", "good", 3.2, 0.98),
    ("00:40", "seeing", "good", 1.0, 0.97),        # the field sinks: FWHM follows airmass**0.6
    ("01:00", "seeing", "good", 1.0, 0.96),
]
"""The frames of :func:`simulate_qa_night`: time, the QA verdict it should get (None: clean),
the simulated kind, the sky level as a multiple of the night's, and the transparency."""


def simulate_qa_night(outdir, *, seed: int = 0, size=256, n_stars: int | None = None, focuser: bool = True,
                      fwhm: float = 2.6, sky: float = 600.0, exptime: float = 60.0) -> NightTruth:
    """A night whose every frame has one known QA verdict: twilight and moonlight with the stars
    at full flux (``bright-sky``), cloud (flux lost; and a raised sky in the dark: lit cloud),
    a focuser change (``focus``), a trail, and seeing that follows airmass (``seeing``).

    The headers carry a real site (:data:`QA_SITE`), times (:data:`QA_NIGHT`, computed with
    astropy so that the Sun and the Moon really are where the verdicts need them), the field's
    RA and Dec, the airmass of the field at each time, and (with ``focuser``) ``FOCPOS``.
    Every frame's FWHM is ``fwhm * airmass**0.6`` (x 2.2 for the defocused ones).

    Parameters
    ----------
    outdir : path-like
    seed : int
    size : int or tuple
    n_stars : int, optional
    focuser : bool
        Write FOCPOS (False: no focuser card, so a defocus has no evidence but its size).
    fwhm, sky, exptime : float
        Zenith FWHM (px), the night's sky (ADU) and the exposure time (s).

    Returns
    -------
    NightTruth
        Each frame's truth has ``qa_expect`` (the verdict, or None), ``sun_alt``, ``moon_alt``.
    """
    import warnings

    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord
    from astropy.io import fits
    from astropy.time import Time
    from astropy.utils import iers

    from obsdb.imaging.sky import sun_and_moon

    times = []
    for clock, *_ in QA_NIGHT:
        hour = int(clock[:2])
        day = 9 if hour >= 12 else 10
        times.append(datetime.fromisoformat(f"2026-03-{day:02d}T{clock}:00"))
    lat, lon, height = QA_SITE
    from erfa import ErfaWarning

    with iers.conf.set_temp("auto_download", False), iers.conf.set_temp("iers_degraded_accuracy", "ignore"), \
            warnings.catch_warnings():
        # ERFA doubts dates beyond its leap-second table; the night's airmasses need no better.
        warnings.filterwarnings("ignore", category=ErfaWarning, message=".*dubious year")
        site = EarthLocation.from_geodetic(lon * u.deg, lat * u.deg, height * u.m)
        altaz = SkyCoord(QA_TARGET[0] * u.deg, QA_TARGET[1] * u.deg).transform_to(
            AltAz(obstime=Time(times, scale="utc"), location=site))
        airmasses = [float(a) for a in altaz.secz]
    skies = sun_and_moon(times, lat, lon, height, targets=[QA_TARGET] * len(times))
    specs = []
    for number, ((_, expect, kind, sky_factor, transparency), airmass) in enumerate(zip(QA_NIGHT, airmasses),
                                                                                     start=1):
        width = fwhm * airmass ** 0.6 * (2.2 if kind == "defocus" else 1.0)
        specs.append(FrameSpec(number=number, band="V", kind=kind, exptime=exptime, fwhm=width,
                               background=sky * sky_factor, transparency=transparency))
    truth = simulate_night(outdir, specs, seed=seed, size=size, n_stars=n_stars, object_name="QAFIELD",
                           night_start=times[0].isoformat(), max_group_offset=5.0)
    for frame, when, airmass, (_, expect, *_), where in zip(truth.frames, times, airmasses, QA_NIGHT, skies):
        path = Path(outdir) / frame["file"]
        with fits.open(path, mode="update") as hdul:
            h = hdul[0].header
            h["DATE-OBS"] = (when.isoformat(timespec="milliseconds"), "UTC start of exposure (ISO-8601)")
            h["AIRMASS"] = (round(airmass, 4), "Airmass at start of exposure")
            h["SITELAT"] = (lat, "[deg] Site latitude")
            h["SITELONG"] = (lon, "[deg] Site longitude, east positive")
            h["SITEELEV"] = (height, "[m] Site height")
            h["RA"] = (QA_TARGET[0], "[deg] Pointing right ascension")
            h["DEC"] = (QA_TARGET[1], "[deg] Pointing declination")
            if not focuser:
                del h["FOCPOS"]
        frame.update(date_obs=when.isoformat(timespec="milliseconds"), airmass=airmass, qa_expect=expect,
                     sun_alt=where["sun_alt"], moon_alt=where["moon_alt"], moon_illum=where["moon_illum"])
    truth.save(Path(outdir) / "truth.json")
    return truth
