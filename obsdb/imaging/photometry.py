"""Aperture photometry of catalogued stars on a frame's own pixels.

Pure functions on arrays.  A star's flux is summed in a circular aperture
(exact pixel overlap, by sep's C code) less a local sky taken from an
annulus around it; its error is the one IRAF's ``phot`` and every CCD
textbook give::

    var = F / g  +  A * s**2  +  A**2 * s**2 / n_sky

with ``F`` the sky-subtracted flux (ADU), ``g`` the gain (e-/ADU), ``A`` the
aperture's area, ``s`` the sky's per-pixel scatter measured in the annulus
(which holds the read noise, the dark and the sky's own photon noise, whatever
calibration the frame had) and ``n_sky`` the annulus pixels that measured the
sky.  The read noise is therefore not an input: it is inside ``s``.  Only the
gain is, for the star's own photon noise; where the header gives none it is
assumed to be 1 e-/ADU and the result says so (:attr:`Photometry.gain_source`).

sep (rather than photutils) sums the apertures: both compute the exact
overlap of a circle with the pixel grid and agree to 1e-8 of the flux
(``benchmarks/photometry.py`` measures both on the same frames); sep's sums are a
single C call, and obsdb's whole photometry of 400 stars, sky included, takes
about 0.7 of the time of photutils' ``aperture_photometry`` with its
``ApertureStats`` annulus median (the same run of that script).  The sky is not sep's
annulus mean, which a neighbour's wings drag up: it is a sigma-clipped median
of the annulus pixels, all stars at once in one array.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

PHOTOMETRY_VERSION = "aperture-1"
"""Identifies the algorithm below; stored with every measurement it makes."""

RADIUS_FWHM = 1.5
"""Default aperture radius in units of the frame's FWHM: 99.8 % of a Gaussian
star's flux, so that a focus drift of 10 % changes the enclosed fraction by
less than 0.1 % (a 1-FWHM aperture gives a better S/N for faint stars but loses
2 % of the flux to the same drift)."""

ANNULUS_FWHM = (3.0, 5.0)
"""Sky annulus, inner and outer radius in FWHM: beyond 99.99 % of the star's
own light, and wide enough for several hundred sky pixels."""

MAX_SKY_PIXELS = 1000
"""The default annulus holds at most about this many pixels (its outer radius
shrinks for a wide PSF): beyond it the sky's error term gains little and the
cost grows as FWHM squared."""

MIN_ANNULUS_WIDTH = 4.0
"""Pixels between the annulus' inner and outer radius at least (sharp PSFs)."""

MIN_SKY_PIXELS = 20
"""Fewer usable annulus pixels than this leaves the sky unmeasured (flag SKY)."""

SKY_CLIP_SIGMA = 3.0
"""Clipping threshold for the annulus pixels, in robust standard deviations."""

SKY_CLIP_ITERATIONS = 5
"""Maximum clipping iterations of the sky (stars in the annulus go in 2-3)."""

BLEND_FLUX_RATIO = 0.01
"""A neighbour counts for the BLENDED flag when at least this fraction of the
star's flux (a 5-magnitude fainter neighbour is still counted)."""

BLEND_MARGIN_FWHM = 1.0
"""...and when its centre lies within the aperture radius plus this many FWHM."""

ASSUMED_GAIN = 1.0
"""The gain (e-/ADU) used when neither the caller nor the header gives one."""

GAIN_KEYWORDS = ("EGAIN", "GAIN", "CCDGAIN", "GAIN_E")
"""Header keywords read for the gain in e-/ADU, in this order: EGAIN first, because
ZWO and N.I.N.A. headers write the camera's gain *setting* in GAIN (80, 120, ...)
and the electrons per ADU in EGAIN."""

MAX_GAIN = 20.0
"""A gain keyword above this many e-/ADU is a camera setting, not a conversion
factor (CCDs and CMOS sensors give 0.05-10 e-/ADU), and is not used."""

# Flags, one bit each; the names are what the catalog and the CLI show.
SATURATED = 1
"""A pixel inside the aperture is at or above the saturation level."""
EDGE = 2
"""The aperture crosses the image's edge: part of the flux is missing."""
DEFECT = 4
"""A masked (defect) pixel lies inside the aperture; the sum skips it."""
BLENDED = 8
"""Another star is close enough to add light to the aperture."""
SKY = 16
"""Too few annulus pixels to measure the sky (edge, mask or crowding)."""

FLAG_NAMES = {SATURATED: "saturated", EDGE: "edge", DEFECT: "defect", BLENDED: "blended", SKY: "sky"}
"""Each flag bit's name."""

PHOT_DTYPE = np.dtype([
    ("x", "f8"), ("y", "f8"),
    ("flux", "f8"), ("flux_err", "f8"),
    ("sky", "f8"), ("sky_rms", "f8"), ("n_sky", "i4"),
    ("area", "f8"), ("peak", "f8"), ("flags", "i4"),
])
"""Fields of a photometry table: position (0-based pixel centres, as the star
list's), sky-subtracted flux and its 1-sigma error (ADU), the local sky level
and its per-pixel scatter (ADU), the annulus pixels used, the aperture's area
(pixels, the part inside the image; masked pixels count, see :func:`aperture_photometry`), the brightest pixel in the aperture, flags."""


@dataclass
class Photometry:
    """Aperture photometry of one frame.

    Attributes
    ----------
    stars : numpy.ndarray
        One row per star (:data:`PHOT_DTYPE`), in the order given.
    radius : float
        Aperture radius in pixels.
    annulus : tuple of float
        Inner and outer sky radius in pixels.
    gain : float
        e-/ADU used for the star's photon noise.
    gain_source : str
        Where the gain came from: a header keyword, ``"given"`` or ``"assumed"``.
    version : str
        :data:`PHOTOMETRY_VERSION`.
    """

    stars: np.ndarray = field(repr=False)
    radius: float
    annulus: tuple[float, float]
    gain: float
    gain_source: str
    version: str = PHOTOMETRY_VERSION

    def magnitudes(self, zero_point: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Instrumental magnitudes ``zero_point - 2.5 log10(flux)`` and their errors.

        Non-positive fluxes give NaN (a star at the noise level has no magnitude).
        """
        flux = self.stars["flux"]
        with np.errstate(divide="ignore", invalid="ignore"):
            good = flux > 0
            mag = np.where(good, zero_point - 2.5 * np.log10(np.where(good, flux, 1.0)), np.nan)
            err = np.where(good, 2.5 / math.log(10) * self.stars["flux_err"] / np.where(good, flux, 1.0), np.nan)
        return mag, err


def header_gain(header) -> tuple[float | None, str | None]:
    """The detector gain in e-/ADU from a FITS header, and the keyword it came from.

    Parameters
    ----------
    header : Mapping
        A FITS header (or any mapping of keywords).

    Returns
    -------
    (float or None, str or None)
        ``(None, None)`` when no keyword of :data:`GAIN_KEYWORDS` holds a positive number.

    Examples
    --------
    >>> header_gain({"EGAIN": 1.6})
    (1.6, 'EGAIN')
    >>> header_gain({"GAIN": "high"})
    (None, None)
    >>> header_gain({"GAIN": 80})          # a ZWO camera's gain setting, not e-/ADU
    (None, None)
    """
    for key in GAIN_KEYWORDS:
        value = header.get(key) if hasattr(header, "get") else None
        try:
            gain = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(gain) and 0 < gain <= MAX_GAIN:
            return gain, key
    return None, None


def aperture_radii(fwhm: float, *, radius: float | None = None,
                   annulus: tuple[float, float] | None = None) -> tuple[float, tuple[float, float]]:
    """The aperture and annulus radii in pixels for a frame of this FWHM.

    Parameters
    ----------
    fwhm : float
        The frame's median stellar FWHM in pixels.
    radius : float, optional
        A fixed aperture radius in pixels; default :data:`RADIUS_FWHM` x FWHM.
    annulus : (float, float), optional
        Fixed inner and outer sky radii in pixels; default :data:`ANNULUS_FWHM` x FWHM,
        the outer radius brought in to hold about :data:`MAX_SKY_PIXELS` pixels, at
        least :data:`MIN_ANNULUS_WIDTH` wide and outside the aperture.

    Examples
    --------
    >>> aperture_radii(2.0)
    (3.0, (6.0, 10.0))
    >>> aperture_radii(2.0, radius=5.0)
    (5.0, (6.0, 10.0))
    """
    if not (math.isfinite(fwhm) and fwhm > 0):
        raise ValueError(f"FWHM {fwhm!r}: a positive number of pixels is needed for the apertures")
    r = float(radius) if radius is not None else RADIUS_FWHM * fwhm
    if annulus is not None:
        inner, outer = (float(v) for v in annulus)
    else:
        inner = max(ANNULUS_FWHM[0] * fwhm, r + 1.0)
        outer = min(ANNULUS_FWHM[1] * fwhm, math.sqrt(inner * inner + MAX_SKY_PIXELS / math.pi))
        outer = max(outer, inner + MIN_ANNULUS_WIDTH)
    if not (0 < r <= inner < outer):
        raise ValueError(f"aperture {r:g} px and annulus {inner:g}-{outer:g} px: need 0 < radius <= inner < outer")
    return r, (inner, outer)


def local_sky(data: np.ndarray, x: np.ndarray, y: np.ndarray, inner: float, outer: float, *,
              mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sigma-clipped median sky and its per-pixel scatter in an annulus around each position.

    All stars at once: the annulus pixels of every star are gathered into one
    ``(n_stars, n_pixels)`` array (pixels outside the image, masked or not
    finite are NaN) and sorted once along each row; each clipping pass then costs
    a comparison, because the median of the kept values is an index into the sorted
    row and their standard deviation comes from running sums.  Clipping is about the
    median by the standard deviation (astropy's ``sigma_clip`` defaults), at
    :data:`SKY_CLIP_SIGMA`, :data:`SKY_CLIP_ITERATIONS` passes at most; a value
    clipped once stays out.

    Parameters
    ----------
    data : numpy.ndarray
        The frame (2-D).
    x, y : numpy.ndarray
        Positions, 0-based pixel centres.
    inner, outer : float
        Annulus radii in pixels (a pixel counts when its centre lies in ``[inner, outer]``).
    mask : numpy.ndarray of bool, optional
        True where a pixel must not be used.

    Returns
    -------
    sky, rms : numpy.ndarray
        Median and standard deviation of the kept pixels (the deviation corrected
        for the Gaussian tails the clip cut off); NaN where fewer than
        :data:`MIN_SKY_PIXELS` remain.
    n_sky : numpy.ndarray
        The kept pixels per star.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.size == 0:
        return np.empty(0), np.empty(0), np.empty(0, dtype=int)
    ix, iy, inside = _pixels_near(data.shape, x, y, inner, outer)
    # One gather of clipped flat indices, then NaN where outside: cheaper than boolean fancy indexing.
    index = _flat_index(data.shape, ix, iy)
    values = np.where(inside, np.take(data, index), np.nan)
    if mask is not None:
        values[inside & np.take(mask, index)] = np.nan
    values = np.sort(values, axis=1)                     # NaN sort last
    rows = np.arange(x.size)
    # Running sums about the row's least value (no cancellation), with a leading 0 column.
    shifted = values - values[:, :1]
    np.nan_to_num(shifted, copy=False)
    sums = np.zeros((x.size, values.shape[1] + 1))
    squares = np.zeros_like(sums)
    np.cumsum(shifted, axis=1, out=sums[:, 1:])
    np.cumsum(np.square(shifted, out=shifted), axis=1, out=squares[:, 1:])
    low = np.zeros(x.size, dtype=int)
    high = np.sum(np.isfinite(values), axis=1)           # kept: values[low:high]
    for _ in range(SKY_CLIP_ITERATIONS + 1):
        center, spread = _kept_median_std(values, sums, squares, rows, low, high)
        if _ == SKY_CLIP_ITERATIONS:
            break
        with np.errstate(invalid="ignore"):
            new_low = np.maximum(low, np.sum(values < (center - SKY_CLIP_SIGMA * spread)[:, None], axis=1))
            new_high = np.minimum(high, np.sum(values <= (center + SKY_CLIP_SIGMA * spread)[:, None], axis=1))
        if np.array_equal(new_low, low) and np.array_equal(new_high, high):
            break
        low, high = new_low, new_high
    n_sky = high - low
    rms = spread / _CLIP_STD_FACTOR
    few = n_sky < MIN_SKY_PIXELS
    center[few] = np.nan
    rms[few] = np.nan
    return center, rms, n_sky


def _kept_median_std(values, sums, squares, rows, low, high):
    """Median and standard deviation of each sorted row's values[low:high]."""
    kept = high - low
    some = kept > 0
    lo_mid = np.where(some, low + (kept - 1) // 2, 0)
    hi_mid = np.where(some, low + kept // 2, 0)
    center = np.where(some, 0.5 * (values[rows, lo_mid] + values[rows, hi_mid]), np.nan)
    total = sums[rows, high] - sums[rows, low]
    total2 = squares[rows, high] - squares[rows, low]
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = (total2 - total**2 / kept) / (kept - 1)
    spread = np.sqrt(np.where(kept > 1, np.maximum(variance, 0.0), np.nan))
    return center, spread


def _clip_std_factor(c: float) -> float:
    """The standard deviation of a unit Gaussian cut at +-c (what a c-sigma clip leaves)."""
    inside = math.erf(c / math.sqrt(2))
    density = math.exp(-c * c / 2) / math.sqrt(2 * math.pi)
    return math.sqrt(1 - 2 * c * density / inside)


_CLIP_STD_FACTOR = _clip_std_factor(SKY_CLIP_SIGMA)


def _pixels_near(shape, x, y, inner, outer):
    """Pixel indices whose centres lie between ``inner`` and ``outer`` pixels of each position.

    Returns ``(ix, iy, inside)``: ``(n_stars, n_offsets)`` arrays, ``inside`` False
    for offsets outside the ring or the image.  Only offsets that can fall in the
    ring for some sub-pixel centre are gathered (a ring, not its bounding square).
    """
    half = int(math.ceil(outer)) + 1
    dy, dx = np.mgrid[-half:half + 1, -half:half + 1]
    reach = np.hypot(dx, dy)
    ring = (reach >= inner - 0.75) & (reach <= outer + 0.75)     # a rounded centre is within 0.71 px
    ix = np.rint(x).astype(int)[:, None] + dx[ring][None, :]
    iy = np.rint(y).astype(int)[:, None] + dy[ring][None, :]
    r2 = (ix - x[:, None]) ** 2 + (iy - y[:, None]) ** 2
    ny, nx = shape
    inside = (r2 >= inner * inner) & (r2 <= outer * outer) & (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    return ix, iy, inside


def _flat_index(shape, ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    """Indices into the flattened image of pixels (ix, iy), clipped onto the image (callers mask the
    clipped ones out)."""
    ny, nx = shape
    return np.clip(iy, 0, ny - 1) * nx + np.clip(ix, 0, nx - 1)


def blended(x: np.ndarray, y: np.ndarray, flux: np.ndarray, reach: float) -> np.ndarray:
    """True for each star that has a neighbour within ``reach`` pixels bright enough to matter.

    A neighbour counts when its flux is at least :data:`BLEND_FLUX_RATIO` of the star's.

    Examples
    --------
    >>> import numpy as np
    >>> blended(np.array([0.0, 3.0, 50.0]), np.zeros(3), np.array([100.0, 50.0, 100.0]), 5.0).tolist()
    [True, True, False]
    """
    from scipy.spatial import cKDTree

    x = np.asarray(x, dtype=float)
    n = x.size
    flags = np.zeros(n, dtype=bool)
    if n < 2:
        return flags
    flux = np.where(np.isfinite(flux), np.asarray(flux, dtype=float), 0.0)
    tree = cKDTree(np.column_stack([x, np.asarray(y, dtype=float)]))
    pairs = tree.query_pairs(reach, output_type="ndarray")
    if pairs.size == 0:
        return flags
    i, j = pairs[:, 0], pairs[:, 1]
    flags[i[flux[j] >= BLEND_FLUX_RATIO * np.abs(flux[i])]] = True
    flags[j[flux[i] >= BLEND_FLUX_RATIO * np.abs(flux[j])]] = True
    return flags


def aperture_photometry(data: np.ndarray, x, y, *, fwhm: float, radius: float | None = None,
                        annulus: tuple[float, float] | None = None, gain: float | None = None,
                        header=None, saturation: float | None = None, mask: np.ndarray | None = None,
                        neighbours_flux=None) -> Photometry:
    """Fluxes, errors and flags of stars in circular apertures with a local sky annulus.

    Parameters
    ----------
    data : numpy.ndarray
        The frame's pixels (ADU), before any resampling; calibrated where calibration exists.
    x, y : array_like
        Star positions, 0-based pixel centres (the catalog's star list).
    fwhm : float
        The frame's FWHM in pixels (sets the default radii and the blend reach).
    radius, annulus : optional
        Fixed radii in pixels instead of the FWHM multiples (:func:`aperture_radii`).
    gain : float, optional
        e-/ADU; else read from ``header`` (:func:`header_gain`), else :data:`ASSUMED_GAIN`.
    header : Mapping, optional
        The frame's header, for the gain.
    saturation : float, optional
        Pixel level at and above which a star is flagged SATURATED.
    mask : numpy.ndarray of bool, optional
        Defect pixels (True = bad).  A star with one in its aperture is flagged DEFECT;
        the pixel is left out of the sky and, in the aperture, stands at the mean of
        the aperture's other pixels (sep's rule), which is only an estimate.
    neighbours_flux : array_like, optional
        Fluxes used to judge blends (default: the fluxes measured here).

    Returns
    -------
    Photometry
        One row per star, in the order given.

    Examples
    --------
    A Gaussian star of 10,000 ADU (FWHM 4 px) on a flat sky of 100 ADU; the
    aperture of 1.5 FWHM holds 99.8 % of it:

    >>> import numpy as np
    >>> yy, xx = np.mgrid[0:64, 0:64]
    >>> sigma = 4.0 / 2.3548
    >>> image = 100 + 1e4 * np.exp(-((xx - 30.3) ** 2 + (yy - 31.6) ** 2) / (2 * sigma**2)) / (2 * np.pi * sigma**2)
    >>> phot = aperture_photometry(image, [30.3], [31.6], fwhm=4.0, gain=2.0)
    >>> round(float(phot.stars["flux"][0]))
    9977
    >>> int(phot.stars["flags"][0])
    0
    """
    import sep

    x = np.atleast_1d(np.asarray(x, dtype=float))
    y = np.atleast_1d(np.asarray(y, dtype=float))
    if x.shape != y.shape:
        raise ValueError(f"{x.size} x positions but {y.size} y positions")
    r, (inner, outer) = aperture_radii(fwhm, radius=radius, annulus=annulus)
    if gain is not None:
        if not (math.isfinite(gain) and gain > 0):
            raise ValueError(f"gain {gain!r}: a positive number of electrons per ADU is needed")
        gain_value, gain_source = float(gain), "given"
    else:
        gain_value, key = header_gain(header) if header is not None else (None, None)
        gain_value, gain_source = (gain_value, key) if gain_value else (ASSUMED_GAIN, "assumed")

    pixels = _sep_ready(data)
    table = np.zeros(x.size, dtype=PHOT_DTYPE)
    table["x"], table["y"] = x, y
    if x.size == 0:
        return Photometry(table, r, (inner, outer), gain_value, gain_source)

    user_mask = None if mask is None else np.ascontiguousarray(mask, dtype=bool)
    peak, has_nan = _aperture_peak(pixels, x, y, r)
    # Not-finite pixels are rare: the whole-frame mask they need is built only when one lies in an aperture.
    bad = user_mask
    if has_nan.any():
        bad = ~np.isfinite(pixels) if user_mask is None else (user_mask | ~np.isfinite(pixels))
        pixels = np.where(bad, 0.0, pixels).astype(pixels.dtype)
    sky, sky_rms, n_sky = local_sky(pixels, x, y, inner, outer, mask=bad)
    total, _, aper_flags = sep.sum_circle(pixels, x, y, r, mask=bad, subpix=0)
    area = np.full(x.size, math.pi * r * r)
    # Geometry, not sep's APER_TRUNC: sep rounds a start of -0.3 px to 0 and misses a small overhang.
    ny, nx = pixels.shape
    truncated = (x - r < -0.5) | (y - r < -0.5) | (x + r > nx - 0.5) | (y + r > ny - 0.5)
    area[truncated] = _truncated_areas(pixels.shape, x[truncated], y[truncated], r)
    flux = total - np.nan_to_num(sky) * area
    with np.errstate(invalid="ignore"):
        variance = (np.maximum(flux, 0.0) / gain_value + area * sky_rms**2
                    + area**2 * sky_rms**2 / np.maximum(n_sky, 1))
    table["flux"] = np.where(np.isfinite(sky), flux, np.nan)
    table["flux_err"] = np.sqrt(variance)
    table["sky"], table["sky_rms"], table["n_sky"], table["area"] = sky, sky_rms, n_sky, area
    table["peak"] = peak

    flags = np.zeros(x.size, dtype=np.int32)
    flags[truncated] |= EDGE
    flags[((aper_flags & sep.APER_HASMASKED) != 0) | has_nan] |= DEFECT
    if saturation is not None:
        flags[table["peak"] >= saturation] |= SATURATED
    judged = table["flux"] if neighbours_flux is None else np.asarray(neighbours_flux, dtype=float)
    flags[blended(x, y, judged, r + BLEND_MARGIN_FWHM * fwhm)] |= BLENDED
    flags[~np.isfinite(sky)] |= SKY
    table["flags"] = flags
    return Photometry(table, r, (inner, outer), gain_value, gain_source)


def _sep_ready(data: np.ndarray) -> np.ndarray:
    """The pixels as sep reads them (native-order float, C-contiguous), copied only when they are not."""
    data = np.asarray(data)
    if data.dtype.kind == "f" and data.dtype.isnative and data.dtype.itemsize in (4, 8) and data.flags.c_contiguous:
        return data
    return np.ascontiguousarray(data, dtype=np.float64)


def _aperture_peak(data: np.ndarray, x: np.ndarray, y: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray]:
    """The brightest finite pixel whose centre lies in each aperture, and whether a non-finite one does."""
    ix, iy, inside = _pixels_near(data.shape, x, y, 0.0, r)
    values = np.full(ix.shape, -np.inf)
    values[inside] = data[iy[inside], ix[inside]]
    not_finite = ~np.isfinite(values) & inside
    values[not_finite] = -np.inf
    peak = values.max(axis=1)
    return np.where(np.isfinite(peak), peak, np.nan), not_finite.any(axis=1)


def _truncated_areas(shape, x: np.ndarray, y: np.ndarray, r: float) -> np.ndarray:
    """The part of each aperture that lies on the image (exact overlap), for apertures crossing an edge."""
    import sep

    areas = np.empty(x.size)
    ny, nx = shape
    for i, (xi, yi) in enumerate(zip(x, y)):
        # A window of ones cut where the image ends: its edges are the image's only where the image ends.
        x0, y0 = max(int(math.floor(xi - r)) - 1, 0), max(int(math.floor(yi - r)) - 1, 0)
        x1, y1 = min(int(math.ceil(xi + r)) + 2, nx), min(int(math.ceil(yi + r)) + 2, ny)
        if x1 <= x0 or y1 <= y0:
            areas[i] = 0.0
            continue
        ones = np.ones((y1 - y0, x1 - x0))
        areas[i] = sep.sum_circle(ones, np.array([xi - x0]), np.array([yi - y0]), r, subpix=0)[0][0]
    return areas


def flag_names(flags: int) -> list[str]:
    """The names of the bits set in a photometry flag value.

    Examples
    --------
    >>> flag_names(SATURATED | BLENDED)
    ['saturated', 'blended']
    """
    return [name for bit, name in FLAG_NAMES.items() if flags & bit]
