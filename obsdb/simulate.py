"""Synthetic nights with known truth: the test bed and demo input of obsdb.

A night is a list of :class:`FrameSpec` (what each frame should be: band,
pointing group, quality kind, optional overrides), rendered into FITS files
that look like a calibrated CCD night, plus a ``truth.json`` that says exactly
where every star is in every frame and how each frame maps onto the reference.

Geometry
--------
Stars live in *sky pixel* coordinates, which coincide with the pixel grid of a
frame pointed at offset ``(0, 0)`` with no rotation.  A frame with pointing
offset ``o`` and rotation ``t`` (about the frame centre ``c``) maps its own
pixels to the sky by::

    sky = c + R(t) (p - c) + o

so a star at sky position ``S`` appears at ``p = c + R(-t) (S - c - o)``.
The truth transform from a frame to the reference (obsdb's convention,
``dx = x_reference - x_frame``) is then ``T_ref^-1 . T_frame``, returned as an
:class:`obsdb.imaging.transform.Transform` centred on the frame centre.

Stars are pixel-integrated Gaussians (differences of ``erf`` over each pixel
edge, so the rendered centroid is the true centre), trails are sums of such
Gaussians spaced evenly and symmetrically along a segment whose midpoint is
the true position.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from scipy.special import erf

from obsdb.imaging.transform import Transform

__all__ = [
    "FrameSpec",
    "SkyField",
    "Detector",
    "NightTruth",
    "plan_night",
    "simulate_night",
    "simulate_frame",
    "make_sky",
    "make_detector",
    "render_streak",
    "KINDS",
    "IMAGE_TYPES",
]

KINDS = ("good", "cloud", "trail", "defocus")
"""Quality kinds a frame can be simulated as."""

IMAGE_TYPES = ("Light Frame", "Bias Frame", "Dark Frame", "Flat Field")
"""IMAGETYP values the simulator writes."""

SATURATE = 65535.0
"""Default saturation level in ADU; frames are clipped here and it is written as SATURATE."""

GAIN = 1.5
"""Detector gain in e-/ADU (written as GAIN)."""

READ_NOISE = 10.0
"""Read noise in electrons."""

NIGHT_START = "2026-03-14T20:00:00"
"""UTC start of the simulated night (DATE-OBS of the first frame)."""

REFERENCE_EXPTIME = 30.0
"""Exposure time (s) for which :attr:`SkyField.flux` and hot-pixel values are given."""

STARS_PER_PIXEL = 300.0 / 512**2
"""Default star density for small frames (about 300 stars in a 512x512 frame)."""

_EXACT_POISSON_BELOW = 100.0
"""Pixels expecting fewer electrons than this get exact Poisson noise; above, a Gaussian is used."""


# --------------------------------------------------------------------------- specs


@dataclass
class FrameSpec:
    """What one simulated frame should be.

    Parameters
    ----------
    number : int
        Frame number, used in the file name.
    band : str
        Filter name (FILTER header).
    group : int
        Pointing group index; frames of a group share a pointing up to a small drift.
    kind : str
        ``"good"``, ``"cloud"``, ``"trail"`` or ``"defocus"``.
    exptime : float
        Exposure time in seconds.
    image_type : str
        IMAGETYP value: ``"Light Frame"``, ``"Bias Frame"``, ``"Dark Frame"`` or ``"Flat Field"``.
    offset : tuple of float, optional
        Pointing offset ``(x, y)`` in pixels of this frame versus the sky origin.
    rotation_deg : float, optional
        Rotation of the frame versus the sky, counter-clockwise in the pixel plane.
    fwhm : float, optional
        PSF FWHM in pixels (geometric mean of the two axes).
    background : float, optional
        Sky level in ADU at the frame centre.
    transparency : float, optional
        Fraction of the star light that gets through (1 = clear).
    trail_length : float, optional
        Length of the star trails in pixels (0 = no trail).
    trail_angle_deg : float, optional
        Direction of the trails, counter-clockwise from +x.
    streaks : list of dict, optional
        Satellite streaks across the frame (light frames only), each with
        ``x0, y0, x1, y1`` (0-based end points of the centre line, frame
        pixels), ``width`` (FWHM of the Gaussian cross profile, px) and
        ``brightness`` (ADU per pixel on the centre line); see
        :func:`render_streak`.  Recorded in the truth as ``streaks``.

    Notes
    -----
    ``None`` overrides are drawn from the night's distributions by
    :func:`simulate_night` (or by :func:`simulate_frame` with a fresh generator).
    """

    number: int
    band: str = "V"
    group: int = 0
    kind: str = "good"
    exptime: float = 30.0
    image_type: str = "Light Frame"
    offset: tuple[float, float] | None = None
    rotation_deg: float | None = None
    fwhm: float | None = None
    background: float | None = None
    transparency: float | None = None
    trail_length: float | None = None
    trail_angle_deg: float | None = None
    streaks: list | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; expected one of {KINDS}")
        if self.image_type not in IMAGE_TYPES:
            raise ValueError(f"unknown image_type {self.image_type!r}; expected one of {IMAGE_TYPES}")
        if self.offset is not None:
            self.offset = (float(self.offset[0]), float(self.offset[1]))

    @property
    def is_light(self) -> bool:
        """True for a sky exposure (stars are rendered)."""
        return self.image_type == "Light Frame"


@dataclass
class SkyField:
    """Stars in sky pixel coordinates.

    Attributes
    ----------
    x, y : numpy.ndarray
        Star centres in sky pixels (0-based, the grid of a frame at offset 0).
    flux : numpy.ndarray
        Total counts (ADU) of each star in a clear :data:`REFERENCE_EXPTIME` exposure.
    extent : tuple of int
        ``(ny, nx)`` size of the field in pixels.
    center : tuple of float
        ``(cx, cy)`` sky position of the field's centre.
    """

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    extent: tuple[int, int]
    center: tuple[float, float]

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class Detector:
    """The camera: fixed defects and electronic properties shared by all frames.

    Attributes
    ----------
    size : tuple of int
        ``(ny, nx)``.
    hot_x, hot_y : numpy.ndarray
        Hot pixel positions (0-based column, row); the same in every frame.
    hot_value : numpy.ndarray
        ADU each hot pixel adds in a :data:`REFERENCE_EXPTIME` exposure (scales with exposure).
    gain : float
        e-/ADU.
    read_noise : float
        Read noise in electrons.
    saturate : float
        Saturation level in ADU.
    bias_level : float
        Level of bias and dark frames in ADU (light frames are bias-subtracted).
    """

    size: tuple[int, int]
    hot_x: np.ndarray
    hot_y: np.ndarray
    hot_value: np.ndarray
    gain: float = GAIN
    read_noise: float = READ_NOISE
    saturate: float = SATURATE
    bias_level: float = 100.0


def _shape(size) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    ny, nx = size
    return int(ny), int(nx)


def _centre(shape) -> tuple[float, float]:
    ny, nx = shape
    return (nx - 1) / 2.0, (ny - 1) / 2.0


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


# --------------------------------------------------------------------------- sky, detector


def make_sky(*, seed, n_stars: int, extent, center=None, flux_min: float = 300.0,
             flux_max: float = 3.0e7, slope: float = 0.6) -> SkyField:
    """Draw a star field with a power-law luminosity function.

    Parameters
    ----------
    seed : int or numpy.random.Generator
        Seed of the draw.
    n_stars : int
        Number of stars in the whole field.
    extent : int or tuple of int
        ``(ny, nx)`` size of the field in pixels.
    center : tuple of float, optional
        ``(cx, cy)`` sky position of the field centre; default ``((nx-1)/2, (ny-1)/2)``,
        i.e. the field starts at sky pixel (0, 0).
    flux_min, flux_max : float
        Faintest and brightest total counts in a clear 30 s exposure.
    slope : float
        ``N(>F) ~ F**-slope``; 0.6 gives many faint and a few saturating stars.

    Returns
    -------
    SkyField
    """
    rng = _rng(seed)
    ny, nx = _shape(extent)
    cx, cy = _centre((ny, nx)) if center is None else (float(center[0]), float(center[1]))
    x = cx + (rng.random(n_stars) - 0.5) * nx
    y = cy + (rng.random(n_stars) - 0.5) * ny
    # Pareto draw truncated at flux_max: inverse CDF of a bounded power law.
    u = rng.random(n_stars)
    lo, hi = flux_min ** -slope, flux_max ** -slope
    flux = (lo - u * (lo - hi)) ** (-1.0 / slope)
    return SkyField(x, y, flux, (ny, nx), (cx, cy))


def make_detector(*, seed, size, n_hot_pixels: int | None = None) -> Detector:
    """Draw a detector with fixed hot pixels.

    Parameters
    ----------
    seed : int or numpy.random.Generator
        Seed of the draw.
    size : int or tuple of int
        ``(ny, nx)``.
    n_hot_pixels : int, optional
        Number of hot pixels; default about 20 per 512x512 area.

    Returns
    -------
    Detector
        About one hot pixel in ten saturates; the rest add 2,000-30,000 ADU per 30 s.
    """
    rng = _rng(seed)
    ny, nx = _shape(size)
    if n_hot_pixels is None:
        n_hot_pixels = max(1, round(20 * ny * nx / 512**2))
    flat = rng.choice(ny * nx, size=n_hot_pixels, replace=False)
    hot_y, hot_x = np.divmod(flat, nx)
    value = np.exp(rng.uniform(math.log(2000.0), math.log(30000.0), n_hot_pixels))
    value[rng.random(n_hot_pixels) < 0.1] = 2 * SATURATE
    return Detector((ny, nx), hot_x.astype(int), hot_y.astype(int), value)


# --------------------------------------------------------------------------- planning


def plan_night(*, seed=0, n_frames: int = 36, bands=("B", "V", "R"), n_groups: int = 4,
               first_number: int = 1001, cloud_fraction: float = 0.15, trail_fraction: float = 0.1,
               defocus_fraction: float = 0.1, max_group_offset: float = 150.0,
               max_rotation_deg: float = 0.0) -> list[FrameSpec]:
    """Plan a night: the sequence of frames, their bands, groups, kinds and pointings.

    Frames come in contiguous runs, one per (group, band), groups in turn and
    bands in turn inside each group, like a real night.  Clouds and focus drift
    come in spells of consecutive frames, trails hit single frames.

    Parameters
    ----------
    seed : int or numpy.random.Generator
        Seed of the plan.
    n_frames : int
        Number of frames.
    bands : sequence of str
        Filters, in the order they are taken within a group.
    n_groups : int
        Number of pointing groups.
    first_number : int
        Number of the first frame; numbers are consecutive.
    cloud_fraction, trail_fraction, defocus_fraction : float
        Approximate fraction of frames of each bad kind.
    max_group_offset : float
        Largest pointing offset of a group from the first one, in pixels.
    max_rotation_deg : float
        Largest absolute rotation of a frame (the first frame is never rotated).

    Returns
    -------
    list of FrameSpec
        In time order.  The first frame is ``"good"`` and every band with at
        least 3 frames has at least 3 good ones.  Offsets and rotations are set;
        seeing, sky and trail parameters are left ``None`` for
        :func:`simulate_night` to draw.
    """
    rng = _rng(seed)
    bands = tuple(bands)
    if n_frames < 1 or not bands or n_groups < 1:
        raise ValueError("need n_frames >= 1, at least one band and n_groups >= 1")
    runs = [(g, b) for g in range(n_groups) for b in bands]
    runs = runs[:n_frames]
    per_run = np.full(len(runs), n_frames // len(runs))
    per_run[: n_frames % len(runs)] += 1
    specs = []
    number = first_number
    for (group, band), count in zip(runs, per_run):
        for _ in range(count):
            specs.append(FrameSpec(number=number, band=band, group=group))
            number += 1

    kinds = np.array(["good"] * n_frames, dtype=object)
    free = np.ones(n_frames, dtype=bool)
    free[0] = False  # the reference frame must be good

    def spell(n_wanted, max_spells):
        # Consecutive runs of free frames, as a passing cloud or a focus drift would give.
        chosen = []
        n_spells = min(max_spells, n_wanted)
        sizes = np.full(n_spells, n_wanted // n_spells) if n_spells else []
        for i in range(n_wanted % n_spells if n_spells else 0):
            sizes[i] += 1
        for size in sizes:
            starts = [i for i in range(1, n_frames - size + 1) if free[i:i + size].all()]
            if not starts:
                break
            s = int(rng.choice(starts))
            free[s:s + size] = False
            chosen.extend(range(s, s + size))
        return chosen

    kinds[spell(round(cloud_fraction * n_frames), 2)] = "cloud"
    kinds[spell(round(defocus_fraction * n_frames), 1)] = "defocus"
    n_trail = min(round(trail_fraction * n_frames), int(free.sum()))
    if n_trail:
        trail = rng.choice(np.flatnonzero(free), size=n_trail, replace=False)
        kinds[trail] = "trail"
        free[trail] = False

    band_of = np.array([s.band for s in specs], dtype=object)
    for band in bands:
        idx = np.flatnonzero(band_of == band)
        n_good = int((kinds[idx] == "good").sum())
        bad = [i for i in idx if kinds[i] != "good"]
        while n_good < min(3, len(idx)) and bad:
            kinds[bad.pop(int(rng.integers(len(bad))))] = "good"
            n_good += 1
    for spec, kind in zip(specs, kinds):
        spec.kind = str(kind)
    _draw_pointing(specs, rng, max_group_offset=max_group_offset, max_rotation_deg=max_rotation_deg)
    return specs


def _draw_pointing(specs, rng, *, max_group_offset, max_rotation_deg):
    """Fill missing offsets and rotations: group offsets plus a sub-pixel drift per frame."""
    group_offset = {}
    position = {}
    for i, spec in enumerate(specs):
        g = spec.group
        if g not in group_offset:
            if not group_offset:
                base = rng.uniform(-0.5, 0.5, 2)
            else:
                r = max_group_offset * math.sqrt(rng.uniform(0.1, 1.0))
                a = rng.uniform(0, 2 * math.pi)
                base = np.array([r * math.cos(a), r * math.sin(a)]) + rng.uniform(-0.5, 0.5, 2)
            group_offset[g] = base
            position[g] = base.copy()
        else:
            # Tracking drift: 0.2-1 px per frame in a random direction.
            step = rng.uniform(0.2, 1.0)
            a = rng.uniform(0, 2 * math.pi)
            position[g] = position[g] + step * np.array([math.cos(a), math.sin(a)])
        if spec.offset is None:
            spec.offset = (float(position[g][0]), float(position[g][1]))
        if spec.rotation_deg is None:
            spec.rotation_deg = 0.0 if i == 0 or max_rotation_deg == 0 else float(
                rng.uniform(-max_rotation_deg, max_rotation_deg))
    return specs


def _draw_conditions(specs, rng):
    """Fill missing seeing, sky, transparency and trail parameters from night-wide distributions."""
    night_fwhm = rng.uniform(2.5, 3.0)
    night_sky = rng.uniform(400.0, 900.0)
    # One generator per frame, so editing one frame's kind leaves the others' draws alone.
    for spec, rng in zip(specs, rng.spawn(len(specs))):
        kind = spec.kind
        if spec.fwhm is None:
            fwhm = float(np.clip(night_fwhm * math.exp(rng.normal(0, 0.06)), 2.2, 3.5))
            if kind == "defocus":
                fwhm = night_fwhm * rng.uniform(2.0, 3.0)
            spec.fwhm = float(fwhm)
        if spec.background is None:
            spec.background = float(rng.uniform(5000.0, 20000.0) if kind == "cloud"
                                    else night_sky * rng.uniform(0.85, 1.3))
        if spec.transparency is None:
            spec.transparency = float(rng.uniform(0.1, 0.6) if kind == "cloud" else rng.uniform(0.9, 1.0))
        if spec.trail_length is None:
            spec.trail_length = float(rng.uniform(10.0, 30.0)) if kind == "trail" else 0.0
        if spec.trail_angle_deg is None:
            spec.trail_angle_deg = float(rng.uniform(0.0, 180.0)) if kind == "trail" else 0.0
    return specs


# --------------------------------------------------------------------------- geometry


def _rotation(deg):
    t = math.radians(deg)
    return math.cos(t), math.sin(t)


def _sky_to_frame(xs, ys, offset, rotation_deg, centre):
    cx, cy = centre
    c, s = _rotation(rotation_deg)
    u = np.asarray(xs, dtype=float) - cx - offset[0]
    v = np.asarray(ys, dtype=float) - cy - offset[1]
    return cx + c * u + s * v, cy - s * u + c * v


def _frame_transform(offset, rotation_deg, ref_offset, ref_rotation_deg, centre) -> Transform:
    """Frame pixels -> reference pixels, as ``T_ref^-1 . T_frame`` about the frame centre."""
    c, s = _rotation(ref_rotation_deg)
    ox, oy = offset[0] - ref_offset[0], offset[1] - ref_offset[1]
    # R(-t_ref) applied to the offset difference.
    dx, dy = c * ox + s * oy, -s * ox + c * oy
    return Transform(float(dx), float(dy), float(rotation_deg - ref_rotation_deg), 1.0,
                     float(centre[0]), float(centre[1]))


# --------------------------------------------------------------------------- rendering


def _render_stars(shape, x, y, flux, fwhm_x, fwhm_y, trail_length=0.0, trail_angle_deg=0.0,
                  chunk=512):
    """Sum of pixel-integrated (trailed) Gaussians, exact up to truncation at ~7 sigma."""
    ny, nx = shape
    image = np.zeros(ny * nx)
    sx, sy = fwhm_x / 2.3548200450309493, fwhm_y / 2.3548200450309493
    half = int(math.ceil(7.0 * max(sx, sy) + trail_length / 2.0)) + 1
    keep = (x > -half) & (x < nx - 1 + half) & (y > -half) & (y < ny - 1 + half) & (flux > 0)
    x, y, flux = x[keep], y[keep], flux[keep]
    if not len(x):
        return image.reshape(shape)
    if trail_length > 0:
        # Points spaced <= sigma apart: the ripple of such a sum is ~exp(-2 pi^2) of the
        # profile, far below noise; symmetric spacing keeps the centroid on the midpoint.
        n_sub = int(math.ceil(trail_length / min(1.0, sx, sy))) + 1
        t = np.linspace(-trail_length / 2.0, trail_length / 2.0, n_sub)
        ct, st = _rotation(trail_angle_deg)
        tx, ty = t * ct, t * st
    else:
        n_sub = 1
        tx = ty = np.zeros(1)
    k = 2 * half + 1
    steps = np.arange(k)
    edges = np.arange(k + 1) - 0.5
    idx_parts, w_parts = [], []
    for lo in range(0, len(x), chunk):
        xc, yc, fc = x[lo:lo + chunk], y[lo:lo + chunk], flux[lo:lo + chunk]
        ix0 = np.rint(xc).astype(np.int64) - half
        iy0 = np.rint(yc).astype(np.int64) - half
        # Sub-star positions relative to each stamp's first pixel, shape (n, n_sub).
        px = (xc - ix0)[:, None] + tx[None, :]
        py = (yc - iy0)[:, None] + ty[None, :]
        gx = np.diff(erf((edges[None, None, :] - px[:, :, None]) / (math.sqrt(2) * sx)), axis=-1)
        gy = np.diff(erf((edges[None, None, :] - py[:, :, None]) / (math.sqrt(2) * sy)), axis=-1)
        # Separable PSF: each sub-star is outer(gy, gx); summing them is one matmul per star.
        stamps = np.matmul(gy.transpose(0, 2, 1), gx) * (0.25 * fc / n_sub)[:, None, None]
        xx = ix0[:, None] + steps[None, :]
        yy = iy0[:, None] + steps[None, :]
        inside = ((yy >= 0) & (yy < ny))[:, :, None] & ((xx >= 0) & (xx < nx))[:, None, :]
        flat = yy[:, :, None] * nx + xx[:, None, :]
        idx_parts.append(flat[inside])
        w_parts.append(stamps[inside])
    image += np.bincount(np.concatenate(idx_parts), weights=np.concatenate(w_parts),
                         minlength=ny * nx)
    return image.reshape(shape)


def render_streak(shape, x0: float, y0: float, x1: float, y1: float, width: float,
                  brightness: float) -> np.ndarray:
    """A satellite streak: a straight line with a Gaussian cross profile, between two end points.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)``.
    x0, y0, x1, y1 : float
        0-based end points of the centre line (may lie outside the frame).
    width : float
        FWHM of the cross profile, px.
    brightness : float
        ADU per pixel on the centre line (the profile's peak); the ends fall off
        over one ``width`` (a satellite's image is the PSF swept along the line).

    Returns
    -------
    numpy.ndarray
        The streak alone (float64), to add to a frame before its noise.
    """
    ny, nx = shape
    length = math.hypot(x1 - x0, y1 - y0)
    sigma = width / 2.3548200450309493
    yy, xx = np.mgrid[0:ny, 0:nx]
    if length < 1e-9:
        return np.zeros(shape)
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    rx, ry = xx - x0, yy - y0
    across = rx * uy - ry * ux
    along = rx * ux + ry * uy
    # Beyond the end points the swept PSF falls off as the PSF does: half an erf step at each end.
    ends = 0.5 * (erf(along / (math.sqrt(2) * sigma)) - erf((along - length) / (math.sqrt(2) * sigma)))
    return brightness * np.exp(-0.5 * (across / sigma) ** 2) * ends


def _add_noise(model, rng, gain, read_noise, pedestal=0.0):
    """Shot noise (exact Poisson where counts are low, Gaussian elsewhere) plus read noise.

    ``pedestal`` is an electronic offset (bias level): it carries no shot noise.
    """
    model = model - pedestal
    electrons = np.clip(model, 0, None) * gain
    sigma = np.sqrt(electrons + read_noise ** 2)
    noisy = electrons + sigma * rng.standard_normal(model.shape, dtype=np.float32)
    low = electrons < _EXACT_POISSON_BELOW
    if low.any():
        noisy[low] = rng.poisson(electrons[low]) + read_noise * rng.standard_normal(int(low.sum()))
    return noisy / gain + pedestal


def _cosmic_rays(shape, n, rng):
    """1-3 pixel sharp hits; returns flat indices, values and the hit centres."""
    ny, nx = shape
    cx = rng.integers(0, nx, n)
    cy = rng.integers(0, ny, n)
    idx, val = [], []
    for x, y in zip(cx, cy):
        energy = rng.uniform(800.0, 20000.0)
        npix = int(rng.integers(1, 4))
        pts = [(x, y)]
        for _ in range(npix - 1):
            ddx, ddy = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1)][int(rng.integers(5))]
            pts.append((pts[-1][0] + ddx, pts[-1][1] + ddy))
        for j, (px, py) in enumerate(pts):
            if 0 <= px < nx and 0 <= py < ny:
                idx.append(py * nx + px)
                val.append(energy * (1.0 if j == 0 else rng.uniform(0.2, 0.7)))
    return (np.array(idx, dtype=np.int64), np.array(val, dtype=float),
            [[int(x), int(y)] for x, y in zip(cx, cy)])


def simulate_frame(spec: FrameSpec, sky: SkyField | None, *, rng, size, detector: Detector,
                   reference_offset=(0.0, 0.0), reference_rotation_deg: float = 0.0,
                   n_cosmic_rays: int | None = None, noise: bool = True,
                   ellipticity: float | None = None) -> tuple[np.ndarray, dict]:
    """Render one frame and its truth.

    Parameters
    ----------
    spec : FrameSpec
        What to render; ``None`` fields are drawn from ``rng`` (defaults of a night).
        The spec is not modified.
    sky : SkyField or None
        The stars (ignored for bias, dark and flat frames).
    rng : numpy.random.Generator or int
        Randomness of this frame (noise, cosmic rays, PSF ellipticity, missing fields).
    size : int or tuple of int
        ``(ny, nx)`` of the frame.
    detector : Detector
        Hot pixels, gain, read noise, saturation.
    reference_offset, reference_rotation_deg
        Pointing of the reference frame, for the truth shift ``dx, dy``.
    n_cosmic_rays : int, optional
        Number of cosmic-ray hits; default Poisson with mean 4 per 512x512 per 30 s.
    noise : bool
        False gives the noise-free model (still with hot pixels and cosmic rays
        unless those are set to zero).
    ellipticity : float, optional
        Axis ratio of the PSF (>= 1); default 1-1.08 for light frames.

    Returns
    -------
    data : numpy.ndarray
        float32 image in ADU, clipped at ``detector.saturate``.
    truth : dict
        Per-frame truth (see :class:`NightTruth`), with ``file`` left ``None``.
    """
    rng = _rng(rng)
    shape = _shape(size)
    ny, nx = shape
    centre = _centre(shape)
    spec = dataclasses.replace(spec)
    if spec.offset is None or spec.rotation_deg is None:
        _draw_pointing([spec], rng, max_group_offset=0.0, max_rotation_deg=0.0)
    _draw_conditions([spec], rng)
    scale = spec.exptime / REFERENCE_EXPTIME
    if ellipticity is None:
        ellipticity = 1.0 + rng.uniform(0.0, 0.08) if spec.is_light else 1.0
    # Elongate along x or y at random, keeping the geometric-mean FWHM.
    if rng.random() < 0.5:
        fwhm_x, fwhm_y = spec.fwhm * math.sqrt(ellipticity), spec.fwhm / math.sqrt(ellipticity)
    else:
        fwhm_x, fwhm_y = spec.fwhm / math.sqrt(ellipticity), spec.fwhm * math.sqrt(ellipticity)

    gradient = (0.0, 0.0)
    if spec.image_type == "Light Frame":
        frac = rng.uniform(0.1, 0.3) if spec.kind == "cloud" else rng.uniform(0.0, 0.03)
        a = rng.uniform(0, 2 * math.pi)
        g = frac * spec.background / max(nx, ny)
        gradient = (g * math.cos(a), g * math.sin(a))
        xs, ys = _sky_to_frame(sky.x, sky.y, spec.offset, spec.rotation_deg, centre)
        flux = sky.flux * spec.transparency * scale
        model = _render_stars(shape, xs, ys, flux, fwhm_x, fwhm_y,
                              spec.trail_length, spec.trail_angle_deg)
        model += spec.background
        for streak in spec.streaks or ():
            model += render_streak(shape, streak["x0"], streak["y0"], streak["x1"], streak["y1"],
                                   streak["width"], streak["brightness"])
        if gradient != (0.0, 0.0):
            model += (gradient[0] * (np.arange(nx) - centre[0]))[None, :]
            model += (gradient[1] * (np.arange(ny) - centre[1]))[:, None]
        hot_scale = scale
        pedestal = 0.0
    elif spec.image_type == "Flat Field":
        yy, xx = np.mgrid[0:ny, 0:nx]
        r2 = ((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (0.5 * max(nx, ny)) ** 2
        model = 25000.0 * (1.0 - 0.15 * r2) + detector.bias_level
        hot_scale = scale
        pedestal = detector.bias_level
    else:
        model = np.full(shape, detector.bias_level, dtype=float)
        hot_scale = scale if spec.image_type == "Dark Frame" else 0.0
        pedestal = detector.bias_level
        if spec.image_type == "Dark Frame":
            model += 0.02 * spec.exptime

    if hot_scale:
        np.add.at(model, (detector.hot_y, detector.hot_x), detector.hot_value * hot_scale)
    if noise:
        model = _add_noise(model, rng, detector.gain, detector.read_noise, pedestal)
    if n_cosmic_rays is None:
        n_cosmic_rays = int(rng.poisson(4.0 * nx * ny / 512**2 * max(spec.exptime, 1.0) / REFERENCE_EXPTIME))
    cr_idx, cr_val, cr_pos = _cosmic_rays(shape, n_cosmic_rays, rng)
    if len(cr_idx):
        flat = model.reshape(-1)
        np.add.at(flat, cr_idx, cr_val)
    data = np.clip(model, None, detector.saturate).astype(np.float32)

    transform = _frame_transform(spec.offset, spec.rotation_deg, reference_offset,
                                 reference_rotation_deg, centre)
    truth = {
        "number": int(spec.number),
        "file": None,
        "band": spec.band,
        "group": int(spec.group),
        "kind": spec.kind,
        "image_type": spec.image_type,
        "dx": transform.dx,
        "dy": transform.dy,
        "rotation_deg": float(spec.rotation_deg),
        "offset": [float(spec.offset[0]), float(spec.offset[1])],
        "fwhm": float(spec.fwhm),
        "fwhm_x": float(fwhm_x),
        "fwhm_y": float(fwhm_y),
        "ellipticity": float(ellipticity),
        "background": float(spec.background),
        "background_gradient": [float(gradient[0]), float(gradient[1])],
        "transparency": float(spec.transparency),
        "trail_length": float(spec.trail_length),
        "trail_angle_deg": float(spec.trail_angle_deg),
        "streaks": [{k: float(v) for k, v in streak.items()} for streak in (spec.streaks or ())
                    if spec.image_type == "Light Frame"],
        "exptime": float(spec.exptime),
        "n_cosmic_rays": int(n_cosmic_rays),
        "cosmic_rays": cr_pos,
    }
    return data, truth


# --------------------------------------------------------------------------- truth


@dataclass
class NightTruth:
    """What was simulated: the answer key for a night.

    Attributes
    ----------
    reference : int
        Number of the truth reference frame (the first light frame of the night).
    frames : list of dict
        Per-frame truth: number, file, band, group, kind, image_type, dx, dy
        (shift onto the reference, ``x_reference - x_frame``), rotation_deg,
        offset, fwhm, fwhm_x, fwhm_y, ellipticity, background (ADU at the
        frame centre), background_gradient (ADU/px in x and y), transparency,
        trail_length, trail_angle_deg, streaks (satellite streaks: x0, y0,
        x1, y1, width, brightness), exptime, n_cosmic_rays, cosmic_rays,
        date_obs, airmass.
    hot_pixels : list of [x, y]
        Hot pixel positions, the same in every frame.
    size : list of int
        ``[ny, nx]``.
    seed : int or None
        Seed of the night.
    stars : dict
        ``{"x": [...], "y": [...], "flux": [...]}`` in sky pixels, flux in ADU
        for a clear 30 s exposure.
    detector : dict
        gain, read_noise, saturate.
    object_name : str
    directory : str or None
        Folder of the files (set when saved or loaded; not stored).
    """

    reference: int
    frames: list
    hot_pixels: list
    size: list
    seed: object = None
    stars: dict = field(default_factory=lambda: {"x": [], "y": [], "flux": []})
    detector: dict = field(default_factory=dict)
    object_name: str = "NGC3293"
    directory: str | None = None

    def __post_init__(self):
        self._by_number = {int(f["number"]): f for f in self.frames}

    @property
    def numbers(self) -> list[int]:
        """Frame numbers in time order."""
        return [int(f["number"]) for f in self.frames]

    def frame(self, number: int) -> dict:
        """The truth dict of one frame (KeyError if unknown)."""
        try:
            return self._by_number[int(number)]
        except KeyError:
            raise KeyError(f"no frame {number} in this night") from None

    def path(self, number: int) -> Path:
        """Path of a frame's file (relative to :attr:`directory` when known)."""
        name = self.frame(number)["file"]
        return Path(self.directory) / name if self.directory else Path(name)

    def _centre(self):
        return _centre(tuple(self.size))

    def transform(self, number: int, reference: int | None = None) -> Transform:
        """Truth transform from frame pixels to reference pixels.

        Parameters
        ----------
        number : int
            Frame number.
        reference : int, optional
            Reference frame number; default :attr:`reference`.

        Returns
        -------
        Transform
            Centred on the frame centre ``((nx-1)/2, (ny-1)/2)``.
        """
        f = self.frame(number)
        r = self.frame(self.reference if reference is None else reference)
        return _frame_transform(f["offset"], f["rotation_deg"], r["offset"], r["rotation_deg"],
                                self._centre())

    def shift(self, number: int, reference: int | None = None) -> tuple[float, float]:
        """Truth shift ``(dx, dy)`` moving the frame onto the reference (``x_ref - x_frame``)."""
        t = self.transform(number, reference)
        return t.dx, t.dy

    def map_to_reference(self, number: int, x, y, reference: int | None = None):
        """Map frame pixel positions to reference pixel positions.

        Returns
        -------
        xr, yr : numpy.ndarray
        """
        return self.transform(number, reference).apply(x, y)

    def sky_positions_in_frame(self, number: int, margin: float = 0.0):
        """True star centres in a frame.

        Parameters
        ----------
        number : int
            Frame number.
        margin : float
            Keep stars at least this far inside the frame edges (may be negative).

        Returns
        -------
        x, y, flux : numpy.ndarray
            0-based pixel centres (trail midpoints for trailed frames) and the
            total counts of each star in that frame before noise and saturation.
        """
        f = self.frame(number)
        ny, nx = self.size
        sx = np.asarray(self.stars["x"], dtype=float)
        sy = np.asarray(self.stars["y"], dtype=float)
        sf = np.asarray(self.stars["flux"], dtype=float)
        x, y = _sky_to_frame(sx, sy, f["offset"], f["rotation_deg"], self._centre())
        inside = ((x >= -0.5 + margin) & (x <= nx - 0.5 - margin)
                  & (y >= -0.5 + margin) & (y <= ny - 0.5 - margin))
        flux = sf * f["transparency"] * f["exptime"] / REFERENCE_EXPTIME
        if f.get("image_type", "Light Frame") != "Light Frame":
            flux = flux * 0.0
        return x[inside], y[inside], flux[inside]

    def to_dict(self) -> dict:
        """JSON-ready content."""
        return {
            "reference": self.reference,
            "size": list(self.size),
            "seed": self.seed,
            "object_name": self.object_name,
            "detector": self.detector,
            "hot_pixels": self.hot_pixels,
            "frames": self.frames,
            "stars": self.stars,
        }

    def save(self, path) -> Path:
        """Write the truth as JSON (atomically) and return the path."""
        from obsdb.imaging.fitsio import atomic_write_bytes

        path = Path(path)
        atomic_write_bytes(path, json.dumps(self.to_dict(), indent=1).encode())
        self.directory = str(path.parent)
        return path

    @classmethod
    def load(cls, path) -> "NightTruth":
        """Read a truth JSON written by :meth:`save` (or a folder holding ``truth.json``)."""
        path = Path(path)
        if path.is_dir():
            path = path / "truth.json"
        d = json.loads(path.read_text())
        return cls(reference=d["reference"], frames=d["frames"], hot_pixels=d["hot_pixels"],
                   size=d["size"], seed=d.get("seed"), stars=d.get("stars", {}),
                   detector=d.get("detector", {}), object_name=d.get("object_name", ""),
                   directory=str(path.parent))


# --------------------------------------------------------------------------- nights


def _airmass(hours_since_start: float) -> float:
    # The field culminates ~2 h into the night at 65 deg altitude and sinks ~12 deg an hour.
    alt = max(15.0, 65.0 - 12.0 * abs(hours_since_start - 2.0))
    return 1.0 / math.sin(math.radians(alt))


def _header(spec: FrameSpec, truth: dict, detector: Detector, object_name: str, date_obs: str,
            airmass: float, ccd_temp: float):
    from astropy.io import fits

    h = fits.Header()
    h["DATE-OBS"] = (date_obs, "UTC start of exposure (ISO-8601)")
    h["EXPTIME"] = (float(spec.exptime), "[s] Duration of exposure")
    h["EXPOSURE"] = (float(spec.exptime), "[s] Duration of exposure")
    h["SET-TEMP"] = (-20.0, "CCD temperature setpoint in C")
    h["CCD-TEMP"] = (round(ccd_temp, 3), "CCD temperature at start of exposure in C")
    h["XPIXSZ"] = (9.0, "Pixel width in microns (after binning)")
    h["YPIXSZ"] = (9.0, "Pixel height in microns (after binning)")
    h["XBINNING"] = (1, "Binning level along the X-axis")
    h["YBINNING"] = (1, "Binning level along the Y-axis")
    h["FILTER"] = (spec.band, "Filter name")
    h["IMAGETYP"] = (spec.image_type, "Type of image")
    h["OBJECT"] = (object_name if spec.is_light else "", "Target object name")
    h["TELESCOP"] = ("Simulated 0.6m f/8", "Telescope name")
    h["INSTRUME"] = ("SimCam KAF-1001E", "Detector instrument name")
    h["OBSERVER"] = ("obsdb", "Observer name")
    h["GAIN"] = (detector.gain, "[e-/ADU] Detector gain")
    h["RDNOISE"] = (detector.read_noise, "[e-] Read noise")
    h["SATURATE"] = (detector.saturate, "[ADU] Saturation level")
    h["AIRMASS"] = (round(airmass, 4), "Airmass at start of exposure")
    if spec.is_light:
        h["FOCPOS"] = (_focuser_position(spec), "Focuser position, steps")
    h["SWCREATE"] = ("obsdb.simulate", "Name of software")
    return h


FOCUSER_BEST = 5000
"""Focuser position (steps) of the simulated camera in focus; a ``defocus`` frame is
:data:`FOCUSER_DEFOCUS_STEPS` away: the focuser moved, as it does in a real defocus."""

FOCUSER_DEFOCUS_STEPS = 300


def _focuser_position(spec: FrameSpec) -> int:
    return FOCUSER_BEST + (FOCUSER_DEFOCUS_STEPS if spec.kind == "defocus" else 0)


def simulate_night(outdir, specs: list[FrameSpec] | None = None, *, seed=0, size=512,
                   n_stars: int | None = None, object_name: str = "NGC3293",
                   n_hot_pixels: int | None = None, n_cosmic_rays: int | None = None,
                   dtype: str = "float32", noise: bool = True, night_start: str = NIGHT_START,
                   bayer: str | None = None, progress=None, extra_stars=None, **plan_kwargs) -> NightTruth:
    """Simulate a night and write it to ``outdir``.

    Parameters
    ----------
    outdir : path-like
        Output folder (created).
    specs : list of FrameSpec, optional
        The frames in time order; default :func:`plan_night` with ``seed`` and
        ``plan_kwargs``.  ``None`` fields are drawn from the night's
        distributions; the list is not modified.
    seed : int
        Seed of everything (plan, sky, detector, conditions, noise).
    size : int or tuple of int
        ``(ny, nx)`` of every frame.
    n_stars : int, optional
        Number of stars in a frame-sized area; default scales with area,
        about 300 for 512x512 and 2000 for 2048x2048.
    object_name : str
        OBJECT header and file name prefix.
    n_hot_pixels : int, optional
        Hot pixels of the detector; default about 20 per 512x512.
    n_cosmic_rays : int, optional
        Cosmic rays per frame; default Poisson, mean 4 per 512x512 per 30 s.
    dtype : {"float32", "uint16"}
        Stored data type; ``uint16`` is written with BZERO=32768.
    night_start : str
        ISO UTC DATE-OBS of the first frame (default :data:`NIGHT_START`); another
        date makes another night of the same field.
    noise : bool
        False writes noise-free frames (for exact geometry tests; set
        ``n_hot_pixels=0`` and ``n_cosmic_rays=0`` too for clean frames).
    bayer : str, optional
        Simulate a colour sensor with this 2x2 pattern (``RGGB``, ``BGGR``, ``GRBG``,
        ``GBRG``): every pixel scaled by its channel's sensitivity
        (:data:`obsdb.imaging.bayer.RESPONSE`), BAYERPAT in the header.
    progress : callable, optional
        ``progress(done, total, file_name)`` after each frame is written.
    extra_stars : list of (x, y, flux), optional
        Stars placed by hand, in sky pixels (the grid of a frame at offset 0), added to
        the drawn field: a star a plan's box or reference-star position must find.
    **plan_kwargs
        Passed to :func:`plan_night` (``max_group_offset`` and
        ``max_rotation_deg`` also apply to missing pointings of given specs).

    Returns
    -------
    NightTruth
        Also written as ``outdir/truth.json``.  Files are
        ``outdir/{object_name}_{band}_{number:04d}.fits``.

    Notes
    -----
    ``simulate_night(d, seed=s, **kw)`` and
    ``simulate_night(d, plan_night(seed=s, **kw), seed=s)`` give the same night,
    so a planned night can be edited (say one frame made cloudy) and rendered
    with everything else unchanged.  Set an edited frame's drawn fields back to
    ``None`` (e.g. ``background``) to have them drawn for its new kind.

    Examples
    --------
    >>> truth = simulate_night(tmp_path, seed=1, size=256, n_frames=6)  # doctest: +SKIP
    >>> truth.shift(1004)                        # (x_ref - x_frame, y_ref - y_frame)  # doctest: +SKIP
    """
    from astropy.io import fits

    from obsdb.imaging.fitsio import atomic_write_fits

    if dtype not in ("float32", "uint16"):
        raise ValueError(f"dtype must be 'float32' or 'uint16', not {dtype!r}")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    shape = _shape(size)
    ny, nx = shape
    ss = np.random.SeedSequence(seed)
    plan_ss, sky_ss, det_ss, cond_ss, frames_ss = ss.spawn(5)
    if specs is None:
        # The same plan as plan_night(seed=seed): a caller can plan, edit a spec, and re-simulate.
        specs = plan_night(seed=seed, **plan_kwargs)
    else:
        unknown = set(plan_kwargs) - {"max_group_offset", "max_rotation_deg"}
        if unknown:
            raise TypeError(f"with explicit specs, unexpected arguments: {sorted(unknown)}")
        specs = [dataclasses.replace(s) for s in specs]
        _draw_pointing(specs, np.random.default_rng(plan_ss),
                       max_group_offset=plan_kwargs.get("max_group_offset", 150.0),
                       max_rotation_deg=plan_kwargs.get("max_rotation_deg", 0.0))
    if not specs:
        raise ValueError("no frames to simulate")
    numbers = [s.number for s in specs]
    if len(set(numbers)) != len(numbers):
        raise ValueError("frame numbers must be unique")
    _draw_conditions(specs, np.random.default_rng(cond_ss))

    lights = [s for s in specs if s.is_light]
    ref = lights[0] if lights else specs[0]
    # The sky must cover every frame at every pointing, rotated corners included.
    reach = max(math.hypot(*s.offset) for s in specs)
    rot = max(abs(s.rotation_deg) for s in specs)
    corner = math.hypot(nx, ny) / 2.0
    rot_pad = corner * 2 * math.sin(math.radians(min(rot, 90.0)) / 2) if rot else 0.0
    trail = max(s.trail_length for s in specs)
    fwhm = max(s.fwhm for s in specs)
    # A fixed margin (enough for default trails and defocus) keeps the sky, and so every
    # other frame, unchanged when one frame's kind is edited.
    pad = int(math.ceil(reach + rot_pad + max(64.0, trail / 2 + 3 * fwhm + 16)))
    extent = (ny + 2 * pad, nx + 2 * pad)
    if n_stars is None:
        n_stars = _default_n_stars(shape)
    n_sky = int(round(n_stars * extent[0] * extent[1] / (ny * nx)))
    sky = make_sky(seed=np.random.default_rng(sky_ss), n_stars=n_sky, extent=extent,
                   center=_centre(shape))
    if extra_stars:
        xs, ys, fluxes = (np.array(v, dtype=float) for v in zip(*extra_stars))
        sky = dataclasses.replace(sky, x=np.concatenate([sky.x, xs]), y=np.concatenate([sky.y, ys]),
                                  flux=np.concatenate([sky.flux, fluxes]))
    detector = make_detector(seed=np.random.default_rng(det_ss), size=shape, n_hot_pixels=n_hot_pixels)

    start = datetime.fromisoformat(night_start)
    t = 0.0
    frame_rngs = [np.random.default_rng(s) for s in frames_ss.spawn(len(specs))]
    frames = []
    for spec, rng in zip(specs, frame_rngs):
        data, truth = simulate_frame(spec, sky, rng=rng, size=shape, detector=detector,
                                     reference_offset=ref.offset,
                                     reference_rotation_deg=ref.rotation_deg,
                                     n_cosmic_rays=n_cosmic_rays, noise=noise)
        date_obs = (start + timedelta(seconds=t)).isoformat(timespec="milliseconds")
        airmass = _airmass(t / 3600.0)
        header = _header(spec, truth, detector, object_name, date_obs, airmass,
                         -20.0 + rng.normal(0, 0.05))
        if bayer is not None:
            # A one-shot colour camera: each pixel sees the sky through its filter of the 2x2 pattern.
            from obsdb.imaging.bayer import mosaic_response

            data = data * mosaic_response(data.shape, bayer)
            header["BAYERPAT"] = (bayer, "Bayer colour filter pattern")
        t += spec.exptime + rng.uniform(10.0, 30.0)
        name = f"{object_name}_{spec.band}_{spec.number:04d}.fits"
        if dtype == "uint16":
            hdu = fits.PrimaryHDU(np.clip(np.rint(data), 0, 65535).astype(np.uint16), header=header)
        else:
            hdu = fits.PrimaryHDU(data, header=header)
        atomic_write_fits(outdir / name, [hdu])
        truth.update(file=name, date_obs=date_obs, airmass=airmass)
        frames.append(truth)
        if progress is not None:
            progress(len(frames), len(specs), name)

    night = NightTruth(
        reference=int(ref.number), frames=frames,
        hot_pixels=[[int(x), int(y)] for x, y in zip(detector.hot_x, detector.hot_y)],
        size=[ny, nx], seed=seed if isinstance(seed, (int, type(None))) else None,
        stars={"x": sky.x.tolist(), "y": sky.y.tolist(), "flux": sky.flux.tolist()},
        detector={"gain": detector.gain, "read_noise": detector.read_noise,
                  "saturate": detector.saturate},
        object_name=object_name)
    night.save(outdir / "truth.json")
    return night


def _default_n_stars(shape) -> int:
    # ~300 in 512^2 and ~2000 in 2048^2: density falls slowly with area (n ~ area^0.68).
    area = shape[0] * shape[1]
    return max(1, int(round(300.0 * (area / 512**2) ** 0.684)))


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
    with iers.conf.set_temp("auto_download", False), iers.conf.set_temp("iers_degraded_accuracy", "ignore"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
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
