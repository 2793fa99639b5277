"""A night of an open cluster with known magnitudes: :func:`simulate_cluster_night`.

The photometry test bed (issue 24): an NGC 3293-like young cluster observed in B, V
and R in turn, with every number photometry has to recover written down:

- stars on a colour-magnitude sequence (a reddened zero-age main sequence at the
  cluster's distance) plus field stars, each with true B, V and R magnitudes;
- an instrument with its own passbands (a colour term per band), zero point,
  atmospheric extinction per band and known gain and read noise;
- per frame a transparency (thin cloud passing) and an airmass, so that each frame's
  zero point is known: ``m_instrumental = m_system - zero_point`` with
  ``m_instrumental = -2.5 log10(flux in ADU)``;
- a pointing that drifts by a few pixels through the night and a TAN WCS on every
  frame, so that RA and Dec work;
- one star with a planetary transit (a trapezoid in flux) of known depth and
  mid-time, in MJD (UTC) and BJD_TDB.

The truth is ``cluster.json`` beside the frames (:class:`ClusterTruth`); the night's
geometry is also in the usual ``truth.json`` (:class:`obsdb.simulate.NightTruth`),
whose reference is the first frame.  One flux per star is all ``truth.json`` holds: its
``stars.flux`` are the V-band counts of a clear 30 s exposure above the atmosphere, so
the fluxes it derives per frame are approximate; the per-band truth is in ``cluster.json``.

Magnitudes in the instrument's system: ``b = B + COLOUR_TERMS["B"] * (B - V)``,
``v = V + COLOUR_TERMS["V"] * (B - V)``, ``r = R + COLOUR_TERMS["R"] * (V - R)``
(the colour the band is usually transformed with).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from obsdb.simulate.model import FrameSpec, SkyField, _centre, _shape, make_detector

CLUSTER_NAME = "NGC3293"
"""OBJECT of the frames and the prefix of their file names."""

CLUSTER_RADEC = (158.9500, -58.2300)
"""(RA, Dec) in degrees of the field centre: NGC 3293's."""

PIXEL_SCALE = 1.2
"""Arcseconds per pixel of the simulated camera (a 512 px frame is 10 arcmin across)."""

SITE = (-32.38, 20.81, 1798.0)
"""Observatory (latitude, longitude east, height m): Sutherland, where the cluster culminates at 64 deg."""

NIGHT_START = "2026-03-14T20:00:00"
"""UTC start of the first exposure; the cluster culminates about 21:40 UTC."""

BANDS = ("B", "V", "R")
"""Filters, taken in this order again and again."""

EXPTIME = {"B": 60.0, "V": 30.0, "R": 20.0}
"""Exposure time (s) per band: the blue frames longer, for the reddened stars."""

CADENCE = 180.0
"""Seconds from the start of one exposure to the start of the next."""

ZERO_POINT = {"B": 20.6, "V": 21.0, "R": 21.0}
"""Magnitude (instrument system) giving 1 ADU/s above the atmosphere: V = 11 gives 3e5 ADU in 30 s."""

EXTINCTION = {"B": 0.25, "V": 0.15, "R": 0.10}
"""Atmospheric extinction, mag per airmass."""

COLOUR_TERMS = {"B": 0.06, "V": -0.03, "R": 0.04}
"""Instrument minus standard magnitude per mag of colour: B and V per (B - V), R per (V - R)."""

DISTANCE_MODULUS = 12.0
"""NGC 3293's (about 2.5 kpc)."""

REDDENING = 0.26
"""E(B - V) of the cluster; A_V = 3.1 E(B-V) and E(V - R) = 0.78 E(B - V)."""

ZAMS = np.array([
    # M_V, (B-V)_0, (V-R)_0: an approximate zero-age main sequence (Schmidt-Kaler 1982, Johnson R)
    (-4.0, -0.30, -0.13), (-3.0, -0.28, -0.12), (-2.0, -0.24, -0.10), (-1.0, -0.17, -0.07),
    (0.0, -0.05, -0.02), (1.0, 0.05, 0.03), (2.0, 0.20, 0.13), (3.0, 0.40, 0.30),
    (4.0, 0.55, 0.45), (5.0, 0.68, 0.53),
])
"""The cluster's sequence before distance and reddening."""

N_MEMBERS = 130
"""Cluster stars in a 512 x 512 frame (scaled with the frame's area) (main sequence, M_V from -3 to 4.5; V from about 9.8 to 17.3)."""

N_FIELD = 160
"""Field stars in a 512 x 512 frame, spread over it (V 12-19.5, B - V 0.3-1.6)."""

CORE_RADIUS = 70.0
"""Pixels: the members' Gaussian concentration about the field centre (in a 512 x 512 frame; scaled with
its side)."""

TRANSIT = {"depth": 0.015, "duration_hours": 1.2, "ingress_hours": 0.25, "mid_hours": 1.55, "v_mag": 11.8}
"""The transit: fractional flux depth, first to fourth contact, each of ingress and egress, mid-time after the
first exposure's start, and the host's V (a field star of G colour placed near the centre)."""

N_FRAMES = 60
"""Frames of the night (B, V, R in turn: 20 of each, 3 h)."""

MIN_SIZE = 256
"""Smallest frame side (px): the cluster's core and the transit host 60 px inside the edges need room."""


@dataclass
class ClusterTruth:
    """The answer key of a cluster night (``cluster.json``).

    Attributes
    ----------
    stars : dict of list
        Per star: ``id``, ``x``, ``y`` (0-based pixels of the first frame), ``ra``, ``dec`` (deg),
        ``B``, ``V``, ``R`` (standard magnitudes), ``b``, ``v``, ``r`` (the instrument's system),
        ``member`` (cluster member).
    frames : list of dict
        Per frame in time order: ``number``, ``file``, ``band``, ``date_obs`` (start, UTC), ``exptime``,
        ``mjd_mid``, ``bjd_tdb_mid`` (mid-exposure), ``airmass``, ``transparency``, ``zero_point``
        (``m_system - m_instrumental``), ``offset`` (``[dx, dy]``: add to first-frame pixels to get
        this frame's), ``transit_flux`` (the host's relative flux), ``cosmic_rays`` (``[x, y]`` of each
        hit, frame pixels).
    transit : dict
        ``star`` (its id), ``depth``, ``duration_days``, ``ingress_days``, ``mid_mjd`` (UTC),
        ``mid_bjd_tdb``.
    system : dict
        ``zero_point``, ``extinction``, ``colour_terms`` per band; ``gain``, ``read_noise``, ``saturate``;
        ``pixel_scale``, ``site``, ``ra``, ``dec``.
    directory : str or None
        Folder of the files (not stored).
    """

    stars: dict
    frames: list
    transit: dict
    system: dict
    directory: str | None = field(default=None, compare=False)

    def array(self, key: str) -> np.ndarray:
        """One star column as an array (``"V"``, ``"x"``, ...)."""
        return np.asarray(self.stars[key])

    def uncrowded(self, radius: float = 10.0, contrast: float = 5.75) -> np.ndarray:
        """Per star, whether no other star within ``radius`` px is brighter than ``contrast`` mag fainter
        than it in any band (defaults: the aperture plus two FWHM, and 0.5 % of its flux): the stars
        whose photometry the truth can judge, since it knows what detection cannot resolve."""
        x, y = self.array("x"), self.array("y")
        distance = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :]) + np.eye(x.size) * 1e9
        crowded = np.zeros(x.size, dtype=bool)
        for band in "BVR":
            m = self.array(band)
            crowded |= ((distance < radius) & (m[None, :] < m[:, None] + contrast)).any(axis=1)
        return ~crowded

    def frame_positions(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Every star's true position in frame ``index`` (its place in :attr:`frames`)."""
        dx, dy = self.frames[index]["offset"]
        return self.array("x") + dx, self.array("y") + dy

    def path(self, index: int) -> Path:
        """The file of frame ``index``."""
        name = self.frames[index]["file"]
        return Path(self.directory) / name if self.directory else Path(name)

    def save(self, path) -> Path:
        """Write the truth as JSON (atomically) and return the path."""
        from obsdb.imaging.fitsio import atomic_write_bytes

        path = Path(path)
        content = {"stars": self.stars, "frames": self.frames, "transit": self.transit, "system": self.system}
        atomic_write_bytes(path, json.dumps(content, indent=1).encode())
        self.directory = str(path.parent)
        return path

    @classmethod
    def load(cls, path) -> "ClusterTruth":
        """Read ``cluster.json`` (or the folder that holds it)."""
        path = Path(path)
        if path.is_dir():
            path = path / "cluster.json"
        content = json.loads(path.read_text())
        return cls(content["stars"], content["frames"], content["transit"], content["system"],
                   directory=str(path.parent))


def cluster_stars(rng, shape) -> dict:
    """Draw the members on the sequence and the field stars; positions in the first frame's pixels.

    Returns
    -------
    dict of numpy.ndarray
        ``x``, ``y``, ``B``, ``V``, ``R``, ``member``; the transit host is the last star.
    """
    ny, nx = shape
    cx, cy = _centre(shape)
    # The densities of a 512 x 512 frame (the numbers above), whatever the frame's size.
    scale = nx * ny / 512**2
    n_members, n_field = max(3, round(N_MEMBERS * scale)), max(3, round(N_FIELD * scale))
    core = CORE_RADIUS * math.sqrt(scale)
    # Members: more faint than bright (a rising mass function), a little scatter off the sequence.
    absolute = -3.0 + 7.5 * rng.random(n_members) ** 0.7
    bv0 = np.interp(absolute, ZAMS[:, 0], ZAMS[:, 1]) + rng.normal(0, 0.015, n_members)
    vr0 = np.interp(absolute, ZAMS[:, 0], ZAMS[:, 2]) + rng.normal(0, 0.01, n_members)
    v_members = absolute + DISTANCE_MODULUS + 3.1 * REDDENING
    bv_members = bv0 + REDDENING
    vr_members = vr0 + 0.78 * REDDENING
    x_members = np.clip(cx + rng.normal(0, core, n_members), 12, nx - 13)
    y_members = np.clip(cy + rng.normal(0, core, n_members), 12, ny - 13)
    # Field stars: fainter on the whole, redder, anywhere.
    v_field = 12.0 + 7.5 * rng.random(n_field) ** 0.5
    bv_field = rng.uniform(0.3, 1.6, n_field)
    vr_field = 0.55 * bv_field + rng.normal(0, 0.03, n_field)
    x_field = rng.uniform(-20, nx + 20, n_field)
    y_field = rng.uniform(-20, ny + 20, n_field)
    # The transit host: a G star, isolated, in every frame.
    host_x, host_y = _isolated_spot(rng, np.concatenate([x_members, x_field]),
                                    np.concatenate([y_members, y_field]), shape)
    v = np.concatenate([v_members, v_field, [TRANSIT["v_mag"]]])
    bv = np.concatenate([bv_members, bv_field, [0.65]])
    vr = np.concatenate([vr_members, vr_field, [0.36]])
    return {"x": np.concatenate([x_members, x_field, [host_x]]),
            "y": np.concatenate([y_members, y_field, [host_y]]),
            "V": v, "B": v + bv, "R": v - vr,
            "member": np.concatenate([np.ones(n_members, bool), np.zeros(n_field + 1, bool)])}


def _isolated_spot(rng, x, y, shape, clearance: float = 25.0):
    """A place at least ``clearance`` px from every star and 60 px inside the frame."""
    ny, nx = shape
    for _ in range(10000):
        px, py = rng.uniform(60, nx - 60), rng.uniform(60, ny - 60)
        if np.min(np.hypot(x - px, y - py)) > clearance:
            return float(px), float(py)
    raise ValueError("no isolated place for the transit host: the field is too crowded")


def system_magnitudes(stars: dict) -> dict:
    """The instrument's magnitudes ``b, v, r`` of stars with standard ``B, V, R`` (:data:`COLOUR_TERMS`)."""
    bv = np.asarray(stars["B"]) - np.asarray(stars["V"])
    vr = np.asarray(stars["V"]) - np.asarray(stars["R"])
    return {"b": np.asarray(stars["B"]) + COLOUR_TERMS["B"] * bv,
            "v": np.asarray(stars["V"]) + COLOUR_TERMS["V"] * bv,
            "r": np.asarray(stars["R"]) + COLOUR_TERMS["R"] * vr}


def transit_flux(t_days, mid: float, depth: float, duration: float, ingress: float) -> np.ndarray:
    """Relative flux of a trapezoid transit at times ``t_days`` (any consistent day scale).

    Examples
    --------
    >>> transit_flux([0.0, 0.5, 1.0], 0.5, 0.01, 0.4, 0.1).tolist()
    [1.0, 0.99, 1.0]
    """
    t = np.asarray(t_days, dtype=float)
    inside = np.clip((duration / 2.0 - np.abs(t - mid)) / ingress, 0.0, 1.0)
    return 1.0 - depth * inside


def _observing_times(n_frames: int, start: datetime):
    """Per frame: band, exposure time, start (datetime) and mid-exposure MJD (UTC)."""
    from astropy.time import Time

    bands = [BANDS[i % len(BANDS)] for i in range(n_frames)]
    exptimes = [EXPTIME[b] for b in bands]
    starts = [start + timedelta(seconds=i * CADENCE) for i in range(n_frames)]
    mids = [s + timedelta(seconds=e / 2.0) for s, e in zip(starts, exptimes)]
    return bands, exptimes, starts, Time(mids, scale="utc").mjd


def _sky_quantities(mjd_mid: np.ndarray):
    """Airmass and BJD_TDB at the mid-exposure times (astropy; no download needed)."""
    import warnings

    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord
    from astropy.time import Time
    from astropy.utils import iers
    from erfa import ErfaWarning

    lat, lon, height = SITE
    with iers.conf.set_temp("auto_download", False), iers.conf.set_temp("iers_degraded_accuracy", "ignore"), \
            warnings.catch_warnings():
        # ERFA doubts dates beyond its leap-second table; a 2026 night's seconds are still right to a second.
        warnings.filterwarnings("ignore", category=ErfaWarning, message=".*dubious year")
        site = EarthLocation.from_geodetic(lon * u.deg, lat * u.deg, height * u.m)
        target = SkyCoord(CLUSTER_RADEC[0] * u.deg, CLUSTER_RADEC[1] * u.deg)
        times = Time(mjd_mid, format="mjd", scale="utc", location=site)
        airmass = np.asarray(target.transform_to(AltAz(obstime=times, location=site)).secz, dtype=float)
        bjd = (times.tdb + times.light_travel_time(target, "barycentric")).jd
    return airmass, np.asarray(bjd, dtype=float)


def _wcs(offset, shape):
    """A TAN WCS of a frame whose pixels are the first frame's plus ``offset``; north up, east left."""
    from astropy.wcs import WCS

    cx, cy = _centre(shape)
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = list(CLUSTER_RADEC)
    # FITS pixels are 1-based: the field centre (0-based cx, cy in the first frame) moves with the pointing.
    w.wcs.crpix = [cx + 1.0 + offset[0], cy + 1.0 + offset[1]]
    w.wcs.cd = np.array([[-PIXEL_SCALE / 3600.0, 0.0], [0.0, PIXEL_SCALE / 3600.0]])
    return w


def _pointings(rng, n_frames: int) -> np.ndarray:
    """Offsets (px) of each frame from the first: a slow drift of ~8 px over the night plus jitter."""
    direction = rng.uniform(0, 2 * math.pi)
    drift = np.linspace(0.0, rng.uniform(6.0, 10.0), n_frames)
    jitter = rng.normal(0, 0.7, (n_frames, 2))
    jitter[0] = 0.0
    offsets = np.stack([drift * math.cos(direction), drift * math.sin(direction)], axis=1) + jitter
    offsets[0] = 0.0
    return offsets


def _transparency(rng, n_frames: int) -> np.ndarray:
    """Per frame, the fraction of light through the sky: clear, a thin cloud passing (up to 0.25 mag) in the
    second hour, and 1 % flicker."""
    t = np.arange(n_frames) / max(n_frames - 1, 1)
    cloud = 0.25 * np.exp(-0.5 * ((t - 0.45) / 0.08) ** 2)
    flicker = np.abs(rng.normal(0, 0.01, n_frames))
    return 10 ** (-0.4 * (cloud + flicker))


def simulate_cluster_night(outdir, *, seed: int = 3293, size=512, n_frames: int = N_FRAMES,
                           night_start: str = NIGHT_START, progress=None) -> ClusterTruth:
    """Simulate the cluster night and write its frames, ``cluster.json`` and ``truth.json``.

    Parameters
    ----------
    outdir : path-like
        Folder for ``NGC3293_<band>_<number>.fits`` (float32), numbered from 1001.
    seed : int
        Seed of everything: the same seed gives the same files.
    size : int or tuple of int
        ``(ny, nx)`` of every frame.
    n_frames : int
        Frames, B, V and R in turn every :data:`CADENCE` seconds.
    night_start : str
        ISO UTC start of the first exposure.
    progress : callable, optional
        ``progress(done, total, file_name)`` after each frame.

    Returns
    -------
    ClusterTruth

    Examples
    --------
    >>> truth = simulate_cluster_night(tmp_path, n_frames=6)  # doctest: +SKIP
    >>> truth.transit["depth"], truth.frames[0]["zero_point"]  # doctest: +SKIP
    """
    from obsdb.simulate.frames import simulate_frame
    from obsdb.simulate.night import _header, _write_frame
    from obsdb.simulate.truth import NightTruth

    if n_frames < 1:
        raise ValueError(f"n_frames must be at least 1, not {n_frames}")
    shape = _shape(size)
    if min(shape) < MIN_SIZE:
        raise ValueError(f"frames of {shape[1]}x{shape[0]}: the cluster night needs at least {MIN_SIZE} px a side")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    star_ss, sky_ss, det_ss, frame_ss = np.random.SeedSequence(seed).spawn(4)
    stars = cluster_stars(np.random.default_rng(star_ss), shape)
    system = system_magnitudes(stars)
    host = len(stars["V"]) - 1
    sky_rng = np.random.default_rng(sky_ss)
    offsets = _pointings(sky_rng, n_frames)
    transparency = _transparency(sky_rng, n_frames)
    fwhm = np.clip(2.8 * np.exp(sky_rng.normal(0, 0.05, n_frames)), 2.3, 3.5)
    background = 350.0 * sky_rng.uniform(0.9, 1.1, n_frames)
    detector = make_detector(seed=np.random.default_rng(det_ss), size=shape)
    bands, exptimes, starts, mjd_mid = _observing_times(n_frames, datetime.fromisoformat(night_start))
    airmass, bjd_mid = _sky_quantities(mjd_mid)

    day = 1.0 / 24.0
    transit_mid_mjd = float(mjd_mid[0] - exptimes[0] / 2 / 86400 + TRANSIT["mid_hours"] * day)
    relative = transit_flux(mjd_mid, transit_mid_mjd, TRANSIT["depth"], TRANSIT["duration_hours"] * day,
                            TRANSIT["ingress_hours"] * day)
    _, transit_mid_bjd = _sky_quantities(np.array([transit_mid_mjd]))

    ra, dec = _wcs((0.0, 0.0), shape).all_pix2world(stars["x"], stars["y"], 0)
    frames, night_frames = [], []
    for index, rng_seed in enumerate(frame_ss.spawn(n_frames)):
        band, exptime = bands[index], exptimes[index]
        zero_point = (ZERO_POINT[band] + 2.5 * math.log10(exptime) + 2.5 * math.log10(transparency[index])
                      - EXTINCTION[band] * airmass[index])
        counts = 10 ** (-0.4 * (system[band.lower()] - zero_point))
        counts[host] *= relative[index]
        # The sky grid is the first frame's; simulate_frame moves the stars by the frame's pointing offset.
        # Its flux is per 30 s at full transparency: the counts above already hold exposure and sky.
        sky = SkyField(stars["x"], stars["y"], counts, shape, _centre(shape))
        spec = FrameSpec(number=1001 + index, band=band, exptime=30.0, offset=tuple(-offsets[index]),
                         rotation_deg=0.0, fwhm=float(fwhm[index]), background=float(background[index]),
                         transparency=1.0, trail_length=0.0, trail_angle_deg=0.0)
        data, frame_truth = simulate_frame(spec, sky, rng=np.random.default_rng(rng_seed), size=shape,
                                           detector=detector)
        date_obs = starts[index].isoformat(timespec="milliseconds")
        header = _header(spec, frame_truth, detector, CLUSTER_NAME, date_obs, float(airmass[index]), -20.0)
        header["EXPTIME"] = (exptime, "[s] Duration of exposure")
        header["EXPOSURE"] = (exptime, "[s] Duration of exposure")
        header["AIRMASS"] = (round(float(airmass[index]), 4), "Airmass at mid-exposure")
        header["MJD-OBS"] = (float(mjd_mid[index] - exptime / 2 / 86400), "MJD (UTC) of the start of exposure")
        header["RA"] = (CLUSTER_RADEC[0], "[deg] Pointing right ascension")
        header["DEC"] = (CLUSTER_RADEC[1], "[deg] Pointing declination")
        header["SITELAT"] = (SITE[0], "[deg] Site latitude")
        header["SITELONG"] = (SITE[1], "[deg] Site longitude, east positive")
        header["SITEELEV"] = (SITE[2], "[m] Site height")
        header.update(_wcs(offsets[index], shape).to_header())
        name = f"{CLUSTER_NAME}_{band}_{1001 + index:04d}.fits"
        _write_frame(outdir / name, data, header, dtype="float32", bayer=None)
        frame_truth.update(file=name, date_obs=date_obs, airmass=float(airmass[index]), exptime=exptime,
                           transparency=float(transparency[index]))
        night_frames.append(frame_truth)
        frames.append({"number": 1001 + index, "file": name, "band": band, "date_obs": date_obs,
                       "exptime": exptime, "mjd_mid": float(mjd_mid[index]), "bjd_tdb_mid": float(bjd_mid[index]),
                       "airmass": float(airmass[index]), "transparency": float(transparency[index]),
                       "zero_point": float(zero_point), "fwhm": float(fwhm[index]),
                       "offset": [float(offsets[index][0]), float(offsets[index][1])],
                       "transit_flux": float(relative[index]), "cosmic_rays": frame_truth["cosmic_rays"]})
        if progress is not None:
            progress(index + 1, n_frames, name)

    truth = ClusterTruth(
        stars={"id": list(range(len(stars["V"]))), "x": stars["x"].tolist(), "y": stars["y"].tolist(),
               "ra": np.asarray(ra).tolist(), "dec": np.asarray(dec).tolist(),
               **{band: np.asarray(stars[band]).tolist() for band in BANDS},
               **{band: system[band].tolist() for band in ("b", "v", "r")},
               "member": stars["member"].tolist()},
        frames=frames,
        transit={"star": host, "depth": TRANSIT["depth"], "duration_days": TRANSIT["duration_hours"] * day,
                 "ingress_days": TRANSIT["ingress_hours"] * day, "mid_mjd": transit_mid_mjd,
                 "mid_bjd_tdb": float(transit_mid_bjd[0])},
        system={"zero_point": dict(ZERO_POINT), "extinction": dict(EXTINCTION), "colour_terms": dict(COLOUR_TERMS),
                "gain": detector.gain, "read_noise": detector.read_noise, "saturate": detector.saturate,
                "pixel_scale": PIXEL_SCALE, "site": list(SITE), "ra": CLUSTER_RADEC[0], "dec": CLUSTER_RADEC[1]})
    truth.save(outdir / "cluster.json")
    # The geometry in the usual answer key, for the tools that read truth.json (fluxes: V in 30 s, clear).
    v_flux = 10 ** (-0.4 * (system["v"] - ZERO_POINT["V"] - 2.5 * math.log10(30.0)))
    NightTruth(reference=1001, frames=night_frames,
               hot_pixels=[[int(x), int(y)] for x, y in zip(detector.hot_x, detector.hot_y)],
               size=list(shape), seed=seed,
               stars={"x": stars["x"].tolist(), "y": stars["y"].tolist(), "flux": v_flux.tolist()},
               detector={"gain": detector.gain, "read_noise": detector.read_noise, "saturate": detector.saturate},
               object_name=CLUSTER_NAME).save(outdir / "truth.json")
    return truth
