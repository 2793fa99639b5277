"""What a simulated night is made of: frame specs, the sky and the detector, and the night's constants."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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
