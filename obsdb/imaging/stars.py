"""Star detection, PSF metrics, sky metrics and transparency of a frame.

Pure functions on arrays, no database.  Detection is Source Extractor's
algorithm through ``sep``: a meshed background, a matched-filter
threshold, deblending, then windowed centroids (``sep.winpos``) and
half-flux radii (``sep.flux_radius``) for the stars that matter.

Units: pixel coordinates are 0-based (x = column, y = row), sizes are in
pixels, fluxes and levels in ADU (the units of the input array).

FWHM convention
    The per-star FWHM is that of the Gaussian with the star's second
    moments, ``2.3548 * sqrt((a**2 + b**2) / 2)``, where ``a`` and ``b``
    are sep's isophotal moments corrected for the truncation of the profile
    at the detection threshold (a faint Gaussian cut at its isophote has
    moments ~30 % too small; the correction assumes a Gaussian core) and
    for sep's 3x3 detection filter, which widens every object by 0.5 px**2
    per axis.  Pixel sampling is kept (+3.5 % at FWHM 2.6 px).
    A trailed star therefore has a larger FWHM as well as a larger
    elongation; ``fwhm * sqrt(2 / (1 + elongation**2))`` is the width
    across the trail (see :func:`minor_axis_fwhm`).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np

GAUSS_FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))
"""FWHM / sigma of a Gaussian (2.3548)."""

STARS_VERSION = "stars-6"
"""Identifies the detection and metric algorithm; stored with results.
stars-4: the background of frames from :data:`BACKGROUND_SUBSAMPLE_FROM` px measured on a 2 x 2
subsample (sep's 32 deblending levels are kept: 16 saved 8 ms of 36 on a 2k frame but moved the
median FWHM of the crowded real M 67 plate by 5.6 %).
stars-5: of a stored (registration) list, only the :data:`WINDOWED_STARS` brightest get windowed
centroids, half-flux diameters and aperture flags; the fainter ones keep their isophotal
positions until registration refines them.  The background of frames from
:data:`BACKGROUND_SUBSAMPLE_FROM` px is measured on a 4 x 4 subsample (:data:`BACKGROUND_SUBSAMPLE`;
1,024 pixels in a 128-px box): 4.6 ms instead of 10.6 on a 2k frame, moving the metrics of the
simulated 2k night by at most 0.6 % (background rms), 0.9 % (n_stars), 0.2 % (FWHM).
stars-6: sep deblends at :data:`DEBLEND_LEVELS` (8) thresholds instead of 32: 11 ms less of 35 in
``sep.extract`` on a 2k frame.  The simulated 2k night loses 0-4 of ~650 detections a frame, its
PSF medians unchanged; on the real frames the crowded M 67 plate's median FWHM moves from 6.33 to
6.74 px (a few close pairs no longer split count as one star), the Lowell lights' by <= 0.7 %, and
the defocused STAR_FOCUS_16 is one annulus instead of two pieces (HFD 26.0 -> 20.1 px; README
19.6).  QA verdicts on every real frame and registration (``benchmarks/register*.py``) unchanged."""

WINDOWED_STARS = 120
"""Brightest stars of a registration list (and of ingest's stored list, the same list) given sep's
windowed centroid, half-flux diameter and aperture flag: the stars :func:`measure_quality`'s PSF
medians draw on (``2 * 50 + 20``).  Registration refines every star's position itself
(:func:`obsdb.imaging.register.refine_registration_stars`), to the same position from the windowed
or the isophotal start for 99 % of the stars of a 2k frame; windowing the 280 fainter stars of a
400-star list cost 8 ms of a 90 ms ingest.  Their ``hfd`` is NaN and their aperture ``flux`` is
measured at the isophotal position (a median 0.02 % from the windowed one)."""

# Flag bits of the ``flag`` field.  The low byte is sep's object flag word
# (1 = merged with a neighbour by deblending, 2 = truncated by the frame
# edge, 4/8 = overflow/singular moments); the bits below are obsdb's.
FLAG_SATURATED = 0x100
"""The peak pixel is at or above the saturation level."""
FLAG_APERTURE = 0x200
"""The HFD / windowed-centroid aperture touched the frame edge or a masked pixel."""
FLAG_WINPOS_FAILED = 0x400
"""The windowed centroid did not converge; x, y are isophotal."""

STAR_DTYPE = np.dtype([
    ("x", "f8"), ("y", "f8"),
    ("flux", "f8"), ("flux_iso", "f8"), ("peak", "f8"),
    ("a", "f4"), ("b", "f4"), ("theta", "f4"),
    ("fwhm", "f4"), ("hfd", "f4"), ("elongation", "f4"),
    ("npix", "i4"), ("saturated", "?"), ("flag", "i4"),
])
"""Fields of a star list; see :func:`detect_stars`."""

# sep.OBJ_MERGED | sep.OBJ_TRUNC | sep.OBJ_SINGU, spelled out so that reading stored stars (align)
# does not import sep.
_SEP_QUALITY_BAD = 1 | 2 | 8

# A star's brightest pixel carries 15-30 % of its flux for FWHM 1.5-3 px;
# a hot pixel or a cosmic-ray hit carries 50-100 % in one pixel.  The limit
# adapts to the frame (a multiple of the typical star's) within these bounds.
_SHARP_MIN, _SHARP_MAX, _SHARP_FACTOR = 0.3, 0.5, 2.5
# A long cosmic-ray track is a line one pixel wide: its minor-axis sigma is
# far below that of any sampled PSF (0.64 px at FWHM 1.5 px).  Only judged on
# objects large enough for their moments to mean something.
_MIN_B = 0.3
_MIN_NPIX_SHAPE = 12
# Per-axis variance of sep's default detection kernel (see _gaussian_axes).
_KERNEL_VAR = 0.5

PIXSTACK_PIXELS = 4_000_000
"""sep's pixel stack (the pixels of the objects open during its scan) is a quarter of the frame up to
this many pixels, a thirty-second beyond.  sep's default (300,000) overflowed on cloudy 2k frames with
large trailed stars; but the stack is touched whole when extraction starts, 42 bytes a pixel: a
quarter of a 16k x 16k frame took 2.8 GB for nothing, a thirty-second takes a third of the frame."""

PIXSTACK_FIRST = 100_000
"""The pixel stack sep is given first (4 MB).  sep initialises its whole stack on every call, and the
large stack (:data:`PIXSTACK_PIXELS`) cost 30-40 ms of a 90 ms ``sep.extract`` on a 2k frame, whose
open objects held under 1,000 pixels at a time; a frame that fills the small stack is extracted again
with the large one, which finds the same objects (the size only decides whether they fit)."""

BACKGROUND_SUBSAMPLE_FROM = 2048
"""Frames at least this many pixels on their short side get their meshed background measured on
a subsample (:data:`BACKGROUND_SUBSAMPLE`, :func:`_subtract_subsampled_background`): from there on
the mesh boxes are at their 128-px cap.  Smaller frames (all the real test frames) keep the
full-resolution mesh."""

BACKGROUND_SUBSAMPLE = 4
"""Step of the subsample those frames' background is measured on (:func:`_subtract_subsampled_background`):
every fourth pixel of every fourth row, 1,024 of them in a 128-px box: the mode of each box is
still known to a few hundredths of the pixel noise (2 x 2, 4,096 a box, cost 6 ms more on a 2k frame)."""

_PIXSTACK_FULL = "internal pixel buffer full"
"""How sep's message for a full pixel stack begins."""

PIXEL_LIMIT = 1e12
"""Largest pixel magnitude that star detection takes for light; beyond it a pixel is bad, as NaN is.

No detector reads that far (a 32-bit ADC tops at 4.3e9), while a frame with random bytes inserted
into its data holds values up to 3e38, whose sums overflow inside sep: ``sep.extract`` died with
SIGSEGV on such a file (issue 11)."""

_MIN_PADDING_LINE = 16
"""Shortest edge row or column that :func:`_edge_padding` may take for padding: a line of a few
equal pixels is chance (each column of a 1 x 5000 frame is one pixel, always "constant")."""


@dataclass
class QualityMetrics:
    """Quality metrics of one frame.

    Attributes
    ----------
    n_stars : int
        Stars detected (saturated stars included; cosmic rays and hot pixels
        excluded).
    n_measured : int
        Stars used for the PSF medians (brightest unsaturated, unblended, not
        at the edge; at most ``n_brightest``).
    n_saturated : int
        Stars with the saturated flag.
    n_rejected : int
        Detections rejected as cosmic rays or hot pixels.
    fwhm : float
        Median FWHM of the measured stars, px (NaN without stars).
    hfd : float
        Median half-flux diameter, px (NaN without stars).
    elongation : float
        Median a/b (NaN without stars).
    background : float
        Median of the background mesh, ADU.
    background_rms : float
        Global background noise, ADU.
    background_gradient : float
        Peak-to-peak across the frame of the plane fitted to the background
        mesh, ADU.
    background_gradient_frac : float
        ``background_gradient / background`` (NaN when the level is <= 0).
    stars : numpy.ndarray
        All detected stars (:data:`STAR_DTYPE`), brightest first.  ``x, y``
        are windowed centroids for the brightest stars and isophotal for the
        rest; ``flux`` is the aperture flux used for transparency.
    """

    n_stars: int
    n_measured: int
    n_saturated: int
    n_rejected: int
    fwhm: float
    hfd: float
    elongation: float
    background: float
    background_rms: float
    background_gradient: float
    background_gradient_frac: float
    stars: np.ndarray = field(repr=False)

    def as_dict(self, *, include_stars: bool = False) -> dict:
        """Plain dict of the scalar fields (and the star list on request)."""
        out = asdict(self)
        out.pop("stars")
        if include_stars:
            out["stars"] = [[float(s["x"]), float(s["y"]), float(s["flux"])] for s in self.stars]
        return out


@dataclass
class _Prepared:
    sub: np.ndarray          # background-subtracted, float32, C-contiguous, 0 where masked
    raw: np.ndarray          # the input as an array (for saturation tests)
    mask: np.ndarray | None  # True = bad pixel
    level: float
    rms: float
    gradient: float


def _prepare(data, mask, background, *, need_gradient: bool, extremes=None) -> _Prepared:
    import sep
    from astropy.stats import mad_std

    raw = np.asarray(data)
    if raw.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {raw.shape}")
    # sep reads the buffer as native float32 and trusts its values: anything else is converted here.
    img = np.ascontiguousarray(raw, dtype=np.float32)
    if img.dtype.byteorder not in ("=", "|"):
        img = img.astype(img.dtype.newbyteorder("="))
    bad = _unusable(img, extremes)
    padding = _edge_padding(img)
    if padding is not None:
        bad = padding if bad is None else (bad | padding)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != img.shape:
            raise ValueError(f"mask shape {mask.shape} differs from image shape {img.shape}")
        bad = mask if bad is None else (bad | mask)
    if bad is not None:
        if bad.all():
            raise ValueError(f"every pixel is masked or not finite (or beyond +-{PIXEL_LIMIT:g})")
        img = np.where(bad, np.float32(0), img)
        bad = np.ascontiguousarray(bad)
    # Boxes of ~1/16 of the frame: clouds and moonlight vary on that scale, stars (<= 30 px) do
    # not, and 128-px boxes on 2k frames cost half of 64-px ones.
    box = int(min(128, max(32, min(img.shape) // 16)))
    if background is None and min(img.shape) >= BACKGROUND_SUBSAMPLE_FROM:
        # The subtraction writes a new array (the caller's is never touched) in the same pass
        # that would otherwise copy the frame first.
        sub, level, rms, gradient = _subtract_subsampled_background(img, bad, box, need_gradient)
        if bad is not None:
            sub[bad] = 0.0
        return _Prepared(sub=sub, raw=raw, mask=bad, level=level, rms=rms, gradient=gradient)
    if bad is None and np.may_share_memory(img, raw):
        # The background is subtracted in place below: never touch the caller's array.
        img = img.copy()

    gradient = float("nan")
    if background is None or isinstance(background, sep.Background):
        if background is None:
            background = sep.Background(img, mask=bad, bw=box, bh=box, fw=3, fh=3)
        # subfrom() spares the frame-sized array back() would allocate; the background on the
        # sample grids is what the subtraction took away there.
        level_before = img[::16, ::16].copy()
        plane_before = img[_plane_grid(img.shape)].copy()
        background.subfrom(img)
        level = float(np.median(level_before - img[::16, ::16]))
        rms = float(background.globalrms)
        if need_gradient:
            gradient = _plane_ptp_of_sample(plane_before - img[_plane_grid(img.shape)], img.shape)
    else:
        back = np.asarray(background, dtype=np.float32)
        img -= back
        sample = img[::4, ::4] if bad is None else img[::4, ::4][~bad[::4, ::4]]
        level = float(np.median(back)) if back.ndim else float(back)
        rms = float(mad_std(sample))
        if need_gradient:
            gradient = _plane_ptp(np.broadcast_to(back, img.shape))
    if bad is not None:
        img[bad] = 0.0
    return _Prepared(sub=img, raw=raw, mask=bad, level=level, rms=rms, gradient=gradient)


def _subtract_subsampled_background(img: np.ndarray, bad: np.ndarray | None, box: int,
                                    need_gradient: bool) -> tuple[np.ndarray, float, float, float]:
    """``img`` minus sep's meshed background measured on a :data:`BACKGROUND_SUBSAMPLE` subsample.

    The mesh of boxes of ``box`` frame pixels is measured on every ``k``-th pixel of every
    ``k``-th row (``k = BACKGROUND_SUBSAMPLE``; boxes of ``box / k`` subsample pixels: the same
    sky, ``1 / k**2`` of the pixels), and each subsample pixel's background is taken away from
    the ``k x k`` block it starts.  The background varies over ~100 px, so the shift of a pixel
    or three is far below the noise; the per-pixel noise (``globalrms``) is that of the frame's
    own pixels, not binned ones.  The difference is written into a new array, ``k`` rows at a
    time from the background's row repeated along x: one pass over the frame, which is the copy
    the caller would need anyway.

    Returns
    -------
    sub : numpy.ndarray
        The background-subtracted frame (float32, C-contiguous; ``img`` is not modified).
    level, rms, gradient : float
        Median background, global rms, and the peak-to-peak of the plane fitted to the
        background (NaN unless ``need_gradient``).
    """
    import sep

    k = BACKGROUND_SUBSAMPLE
    cell = box // k
    sample = np.ascontiguousarray(img[::k, ::k])
    sample_bad = None if bad is None else np.ascontiguousarray(bad[::k, ::k])
    background = sep.Background(sample, mask=sample_bad, bw=cell, bh=cell, fw=3, fh=3)
    back = background.back()
    ny, nx = img.shape
    sub = np.empty((ny, nx), dtype=np.float32)
    # The same float32 differences as subtracting back[y // k, x // k] pixel by pixel.
    wide = np.repeat(back, k, axis=1)[:, :nx]
    blocks = ny // k
    np.subtract(img[:k * blocks].reshape(blocks, k, nx), wide[:blocks, None, :],
                out=sub[:k * blocks].reshape(blocks, k, nx))
    if ny % k:
        np.subtract(img[k * blocks:], wide[blocks], out=sub[k * blocks:])
    # The frame's [::16, ::16] grid, as the full-resolution path samples it.
    level = float(np.median(back[::16 // k, ::16 // k]))
    gradient = float("nan")
    if need_gradient:
        rows, cols = _plane_grid(img.shape)
        on_grid = back[np.arange(ny)[rows][:, None] // k, np.arange(nx)[cols][None, :] // k]
        gradient = _plane_ptp_of_sample(on_grid, img.shape)
    return sub, level, float(background.globalrms), gradient


def _unusable(img: np.ndarray, extremes: tuple[float, float] | None = None) -> np.ndarray | None:
    """Mask of the pixels detection must not read (NaN, inf, beyond :data:`PIXEL_LIMIT`), or None.

    ``extremes``: the image's minimum and maximum when the caller has them already (ingest takes
    them once for the detection and the pixel statistics)."""
    # Extremes within the limit (NaN propagates into them) prove every pixel usable: no mask to make.
    low, high = (float(img.min()), float(img.max())) if extremes is None else (float(v) for v in extremes)
    if -PIXEL_LIMIT <= low and high <= PIXEL_LIMIT:
        return None
    bad = np.isnan(img)
    bad |= img < -PIXEL_LIMIT
    bad |= img > PIXEL_LIMIT
    return bad


def _edge_padding(img: np.ndarray) -> np.ndarray | None:
    """Mask of constant rows and columns at the frame's edges (None when there are none).

    Cameras and croppers fill unexposed borders with one value (usually 0).
    Unmasked, such a band pulls the meshed background down beside it and the
    step at its edge is detected as a long, bright "star" (STAR_FOCUS_13-17:
    up to 15 zero rows below a 400 ADU sky gave a 60 px wide object that
    doubled the frame's median HFD).  Only whole rows and columns, from the
    edges inwards, are masked: a constant line carries no light.
    """
    ny, nx = img.shape

    def constant(line: np.ndarray) -> bool:
        if line.size < _MIN_PADDING_LINE:
            return False
        first = line[0]
        return bool(np.isfinite(first) and (line == first).all())

    top = 0
    while top < ny and constant(img[top]):
        top += 1
    if top == ny:
        return None  # a constant frame: nothing to find either way
    bottom = ny
    while bottom > top and constant(img[bottom - 1]):
        bottom -= 1
    left = 0
    while left < nx and constant(img[top:bottom, left]):
        left += 1
    right = nx
    while right > left and constant(img[top:bottom, right - 1]):
        right -= 1
    if (top, bottom, left, right) == (0, ny, 0, nx):
        return None
    if 2 * (bottom - top) * (right - left) < ny * nx:
        # Padding is a border; a frame mostly of one value is flat (a flat frame with a hot pixel).
        return None
    bad = np.ones(img.shape, dtype=bool)
    bad[top:bottom, left:right] = False
    return bad


def _plane_ptp(back: np.ndarray) -> float:
    """Peak-to-peak over the frame of a plane fitted to a coarse sample."""
    return _plane_ptp_of_sample(back[_plane_grid(back.shape)], back.shape)


def _plane_grid(shape) -> tuple[slice, slice]:
    """The coarse grid on which :func:`_plane_ptp` samples a background of this shape."""
    step = max(1, min(shape) // 32)
    return slice(step // 2, None, step), slice(step // 2, None, step)


def _plane_ptp_of_sample(sample: np.ndarray, shape) -> float:
    """:func:`_plane_ptp` from the background's values on :func:`_plane_grid`."""
    ny, nx = shape
    step = max(1, min(ny, nx) // 32)
    sample = np.asarray(sample, dtype=np.float64)
    yy, xx = np.mgrid[step // 2:ny:step, step // 2:nx:step]
    design = np.column_stack([np.ones(sample.size), xx.ravel(), yy.ravel()])
    coef, *_ = np.linalg.lstsq(design, sample.ravel(), rcond=None)
    return float(abs(coef[1]) * (nx - 1) + abs(coef[2]) * (ny - 1))


def _gaussian_axes(objs):
    """Major and minor Gaussian sigma of each object, px, and its position angle.

    sep measures the isophotal moments on the matched-filtered image: the
    default 3x3 kernel ([1 2 1] x [1 2 1] / 16) adds 0.5 px**2 to each axis'
    variance, and the isophote cuts the profile.  A circular Gaussian cut at
    radius R keeps a fraction ``g(u) = (1 - (1 + u) e^-u) / (1 - e^-u)`` of
    its second moment, ``u = R**2 / (2 sigma**2)``, with R from the
    isophotal area; solved by fixed-point iteration, then the kernel's
    variance is removed.  The pixel's own 1/12 px**2 is kept: it is part of
    the image the metrics describe.
    """
    x2 = objs["x2"].astype(np.float64)
    y2 = objs["y2"].astype(np.float64)
    xy = objs["xy"].astype(np.float64)
    # sqrt(det) of the moment matrix is a*b: the isophote of an elliptical
    # Gaussian at u is an ellipse of area 2 pi u a b, whatever the elongation.
    ab_meas = np.sqrt(np.maximum(x2 * y2 - xy ** 2, 1e-8))
    npix = np.maximum(objs["npix"], 1).astype(np.float64)
    k = np.ones_like(ab_meas)
    for _ in range(8):
        u = np.clip(npix / (2.0 * math.pi * k * ab_meas), 0.5, 50.0)
        eu = np.exp(-u)
        g = (1.0 - (1.0 + u) * eu) / (1.0 - eu)
        k = 1.0 / np.maximum(g, 0.2)
    x2c = np.maximum(k * x2 - _KERNEL_VAR, 1e-4)
    y2c = np.maximum(k * y2 - _KERNEL_VAR, 1e-4)
    xyc = k * xy
    mean = 0.5 * (x2c + y2c)
    half_diff = np.sqrt(0.25 * (x2c - y2c) ** 2 + xyc ** 2)
    a = np.sqrt(mean + half_diff)
    b = np.sqrt(np.maximum(mean - half_diff, 1e-4))
    theta = 0.5 * np.arctan2(2.0 * xyc, x2c - y2c)
    return a, b, theta


def _pixstack_sizes(n_pixels: int) -> tuple[int, int]:
    """sep pixel stacks for a frame of ``n_pixels``: the one tried first, and the one a full stack retries with."""
    largest = max(300_000, min(n_pixels // 4, max(PIXSTACK_PIXELS, n_pixels // 32)))
    return min(PIXSTACK_FIRST, largest), largest


DEBLEND_LEVELS = 8
"""Thresholds sep's deblending tries between an object's detection level and its peak (sep's default
is 32).  Deblending rescans each object's pixels at every level, half of ``sep.extract``'s time on a
2k frame (35 ms at 32 levels, 24 at 8, 21 without deblending); 8 still split the pairs the metrics
and registration need split (``stars-6``)."""

SUB_OBJECT_LIMIT = 4096
"""Sub-objects sep may deblend one detection into (its default, 1024, fails on rich clusters)."""


@contextmanager
def _sep_limits(*, sub_objects: int, pixstack: int):
    """sep's process-wide limits set for one extraction and put back afterwards.

    sep keeps them as globals; a library call must not leave them changed for the
    caller's own sep work.
    """
    import sep

    before = sep.get_sub_object_limit(), sep.get_extract_pixstack()
    sep.set_sub_object_limit(sub_objects)
    sep.set_extract_pixstack(pixstack)
    try:
        yield
    finally:
        sep.set_sub_object_limit(before[0])
        sep.set_extract_pixstack(before[1])


def _extract(prep: _Prepared, nsigma: float, minarea: int):
    import sep

    if not math.isfinite(prep.rms):
        raise ValueError(f"background rms is {prep.rms}")
    rms = prep.rms if prep.rms > 0 else 1.0
    first, largest = _pixstack_sizes(prep.sub.size)
    for pixstack in (first, largest):
        try:
            with _sep_limits(sub_objects=SUB_OBJECT_LIMIT, pixstack=pixstack):
                return sep.extract(prep.sub, nsigma, err=rms, mask=prep.mask, minarea=minarea,
                                   deblend_cont=0.01, deblend_nthresh=DEBLEND_LEVELS)
        except Exception as exc:
            # The stack's size never changes what is found, only whether it fits: a frame that
            # overflows the small stack gets the same answer from the large one.
            if pixstack == largest or not str(exc).startswith(_PIXSTACK_FULL):
                raise


def _detect(data, *, mask=None, nsigma=5.0, saturation=None, max_stars=None,
            background=None, n_refine=None, need_gradient=False, minarea=5, extremes=None):
    """Detection shared by detect_stars and measure_quality.

    Returns (stars, n_rejected, prepared).
    """
    import sep

    prep = _prepare(data, mask, background, need_gradient=need_gradient, extremes=extremes)
    objs = _extract(prep, nsigma, minarea)
    empty = np.zeros(0, dtype=STAR_DTYPE)
    if len(objs) == 0:
        return empty, 0, prep

    flux_iso = objs["flux"].astype(np.float64)
    peak = objs["peak"].astype(np.float64)
    a, b, theta = _gaussian_axes(objs)
    good = (flux_iso > 0) & np.isfinite(a) & np.isfinite(b)

    # Saturation is judged on the raw pixel value at the peak.
    ypk = np.clip(objs["ypeak"], 0, prep.raw.shape[0] - 1)
    xpk = np.clip(objs["xpeak"], 0, prep.raw.shape[1] - 1)
    saturated = np.zeros(len(objs), dtype=bool)
    if saturation is not None:
        saturated = np.asarray(prep.raw[ypk, xpk], dtype=np.float64) >= float(saturation)

    sharp = np.where(flux_iso > 0, peak / np.where(flux_iso > 0, flux_iso, 1.0), np.inf)
    # Typical star sharpness, from the brighter half (faint objects are
    # noisy) of the objects not obviously defects (they can outnumber stars).
    ref = good & ~saturated & (sharp < _SHARP_MAX)
    if ref.sum() >= 5:
        order = np.argsort(flux_iso[ref])[::-1]
        typical = float(np.median(sharp[ref][order[: max(5, order.size // 2)]]))
    else:
        typical = _SHARP_MIN / _SHARP_FACTOR
    sharp_limit = float(np.clip(_SHARP_FACTOR * typical, _SHARP_MIN, _SHARP_MAX))
    # Judged on the uncorrected moments: the truncation correction assumes a
    # Gaussian and would widen a line.
    fx2, fy2, fxy = (objs[k].astype(np.float64) for k in ("x2", "y2", "xy"))
    minor2 = 0.5 * (fx2 + fy2) - np.sqrt(0.25 * (fx2 - fy2) ** 2 + fxy ** 2) - _KERNEL_VAR
    thin = minor2 < _MIN_B ** 2
    line = thin & (objs["npix"] >= _MIN_NPIX_SHAPE)
    # A saturated star has a flat top several pixels wide; a saturated hot
    # pixel or cosmic-ray hit is one pixel across (the filter's 3x3 alone).
    cosmic = (~saturated & ((sharp > sharp_limit) | line)) | (saturated & thin)
    keep = good & ~cosmic
    n_rejected = int((good & cosmic).sum())
    order = np.flatnonzero(keep)
    if order.size == 0:
        return empty, n_rejected, prep
    order = order[np.argsort(flux_iso[order])[::-1]]
    if max_stars is not None:
        order = order[: int(max_stars)]
    objs, flux_iso, peak, saturated = objs[order], flux_iso[order], peak[order], saturated[order]
    a_c, b_c, theta = a[order], b[order], theta[order]
    n = len(objs)

    stars = np.zeros(n, dtype=STAR_DTYPE)
    stars["x"] = objs["x"]
    stars["y"] = objs["y"]
    stars["flux_iso"] = flux_iso
    stars["peak"] = peak
    stars["a"] = a_c
    stars["b"] = b_c
    stars["theta"] = theta
    stars["fwhm"] = GAUSS_FWHM * np.sqrt((a_c ** 2 + b_c ** 2) / 2.0)
    stars["elongation"] = a_c / b_c
    stars["npix"] = objs["npix"]
    stars["saturated"] = saturated
    stars["flag"] = objs["flag"].astype(np.int32) | np.where(saturated, FLAG_SATURATED, 0)
    stars["hfd"] = np.nan

    m = n if n_refine is None else min(n, int(n_refine))
    if m:
        x0, y0 = objs["x"][:m], objs["y"][:m]
        # 2 (a + b) is 4 sigma for a round star and reaches past the ends of
        # a trail (a = L / sqrt(12) for a trail of length L).
        rmax = np.clip(2.0 * (a_c[:m] + b_c[:m]), 3.0, 60.0)
        r_half, fr_flag = sep.flux_radius(prep.sub, x0, y0, rmax, 0.5, mask=prep.mask, subpix=5)
        hfd = 2.0 * np.asarray(r_half, dtype=np.float64)
        stars["hfd"][:m] = hfd
        # SExtractor's window (sigma = HFD / 2.35), capped: a trailed or
        # defocused star needs no wider window to be centred (the weights
        # are symmetric), and winpos' cost grows with the window's area.
        sig = np.clip(np.where(np.isfinite(hfd) & (hfd > 0), hfd / GAUSS_FWHM, 1.0), 0.5, 3.0)
        xw, yw, wflag = sep.winpos(prep.sub, x0, y0, sig, mask=prep.mask)
        ok = (wflag == 0) & np.isfinite(xw) & np.isfinite(yw) & (np.hypot(xw - x0, yw - y0) < 2.0 + hfd)
        stars["x"][:m] = np.where(ok, xw, x0)
        stars["y"][:m] = np.where(ok, yw, y0)
        extra = np.where(fr_flag != 0, FLAG_APERTURE, 0) | np.where(ok, 0, FLAG_WINPOS_FAILED)
        stars["flag"][:m] |= extra.astype(np.int32)

    stars["flux"] = _aperture_flux(prep, stars, m)
    return stars, n_rejected, prep


def _metric_selection(stars: np.ndarray, n_brightest: int) -> np.ndarray:
    """Indices of the stars trusted for PSF medians, brightest first.

    Objects whose minor axis is narrower than :data:`_MIN_B` (what is left
    after removing the detection filter's width is noise: faint 5-10 pixel
    fragments, e.g. the ends of long trails) have no measurable shape and
    are left out; with few stars one of them could set the median
    elongation to hundreds.
    """
    usable = ~stars["saturated"] & np.isfinite(stars["hfd"]) & (stars["b"] > _MIN_B)
    clean = usable & ((stars["flag"] & _SEP_QUALITY_BAD) == 0) & ((stars["flag"] & FLAG_APERTURE) == 0)
    idx = np.flatnonzero(clean)
    if idx.size < 3:
        # Few stars: blended or edge ones are better than nothing.
        idx = np.flatnonzero(usable)
    return idx[:n_brightest]


def _aperture_flux(prep: _Prepared, stars: np.ndarray, m: int) -> np.ndarray:
    """Flux in a circle of 1.5 x the frame's median HFD (at least 3 px).

    Isophotal fluxes lose the wings, and lose more of them for defocused,
    trailed or cloud-dimmed stars; a radius that scales with the frame's PSF
    keeps the fraction collected nearly constant (99.8 % for a Gaussian),
    which is what a flux ratio between frames needs.
    """
    import sep

    idx = _metric_selection(stars[:m], 50) if m else np.zeros(0, int)
    if idx.size:
        radius = max(3.0, 1.5 * float(np.median(stars["hfd"][idx])))
    else:
        radius = max(3.0, 1.5 * float(np.nanmedian(stars["fwhm"]))) if len(stars) else 3.0
    flux, _, _ = sep.sum_circle(prep.sub, stars["x"], stars["y"], radius, mask=prep.mask, subpix=5)
    return np.asarray(flux, dtype=np.float64)


def detect_stars(data, *, mask=None, nsigma: float = 5.0, saturation: float | None = None,
                 max_stars: int | None = None, background=None, n_refine: int | None = None) -> np.ndarray:
    """Detect stars and measure their position, flux and shape.

    Parameters
    ----------
    data : numpy.ndarray
        2-D image (any numeric dtype, any byte order; not modified).  NaN and
        inf pixels, pixels beyond +-:data:`PIXEL_LIMIT`, and constant rows
        and columns at the edges (unexposed padding), are masked.
    mask : numpy.ndarray of bool, optional
        True where pixels are bad.
    nsigma : float
        Detection threshold in units of the global background rms of the
        *unfiltered* pixels, applied to the image smoothed by sep's default
        3x3 kernel (at least 5 connected pixels).  Smoothing lowers the noise
        about threefold, so this is stricter than a matched-filter threshold
        of the same number: on pure Gaussian noise nothing passes 2.5, and a
        flat patch 1 sigma high is not found.  Fainter stars are the business
        of :func:`obsdb.imaging.faint.detect_faint_stars`.
    saturation : float, optional
        Raw level at or above which a star's peak pixel is saturated.  Without
        it no star is flagged saturated.
    max_stars : int, optional
        Keep only the brightest stars.
    background : float, numpy.ndarray or sep.Background, optional
        A known background; by default a ``sep.Background`` with boxes of
        1/16 of the frame (32-128 px).
    n_refine : int, optional
        Only this many of the brightest stars get windowed centroids, HFDs and
        the aperture flag (default: every star returned); the others keep
        their isophotal barycentre and a NaN ``hfd``.

    Returns
    -------
    numpy.ndarray
        Structured array (:data:`STAR_DTYPE`), brightest (isophotal flux)
        first, with fields:

        - ``x``, ``y``: 0-based windowed centroid (``sep.winpos`` with the
          star's HFD as window), px; isophotal barycentre when the window
          failed (``FLAG_WINPOS_FAILED``) or the star is beyond ``n_refine``.
        - ``flux``: background-subtracted flux in a circle of 1.5 x the
          frame's median HFD (>= 3 px), ADU.  ``flux_iso``: isophotal flux.
        - ``peak``: brightest pixel above background, ADU.
        - ``a``, ``b``, ``theta``: Gaussian sigmas of the major and minor
          axis (px; corrected for isophotal truncation and sep's detection
          filter) and position angle (rad, from +x towards +y).
        - ``fwhm``: ``2.3548 * sqrt((a**2 + b**2) / 2)``, px.
        - ``hfd``: half-flux diameter within a radius of 2 (a + b) (3-60 px),
          px.
        - ``elongation``: a / b.
        - ``npix``: isophotal area, px.
        - ``saturated``: peak pixel >= ``saturation``.
        - ``flag``: sep's object flags (1 blended, 2 edge-truncated) or'ed
          with :data:`FLAG_SATURATED`, :data:`FLAG_APERTURE`,
          :data:`FLAG_WINPOS_FAILED`.

        Cosmic rays and hot pixels (objects whose brightest pixel holds far
        more of the flux than stars' do, or one pixel wide) are not returned.

    Raises
    ------
    ValueError
        When the image is not 2-D or has no usable pixel.
    """
    stars, _, _ = _detect(data, mask=mask, nsigma=nsigma, saturation=saturation,
                          max_stars=max_stars, background=background, n_refine=n_refine)
    return stars


def measure_quality(data, *, saturation: float | None = None, mask=None,
                    n_brightest: int = 50, nsigma: float = 5.0, n_refine: int | None = None,
                    extremes: tuple[float, float] | None = None) -> QualityMetrics:
    """Measure the stars, PSF and sky of a frame.

    Parameters
    ----------
    data : numpy.ndarray
        2-D image; not modified.
    saturation : float, optional
        Raw saturation level; saturated stars are counted but not measured.
    mask : numpy.ndarray of bool, optional
        True where pixels are bad (NaN pixels, and constant rows and columns
        at the edges, i.e. unexposed padding, are masked anyway).
    n_brightest : int
        PSF medians use at most this many of the brightest clean stars.
    nsigma : float
        Detection threshold (see :func:`detect_stars`).
    n_refine : int, optional
        Brightest stars given windowed centroids, HFDs and aperture fluxes of
        their own (default ``2 * n_brightest + 20``, what the medians need).
        Ingest asks for :data:`WINDOWED_STARS`, as
        :func:`obsdb.imaging.register.detect_registration_stars` does, so that
        the stored list is the one registration makes.  The PSF medians use
        the default's stars whatever this is.
    extremes : (float, float), optional
        ``data.min()`` and ``data.max()`` (NaN when a pixel is NaN), when the caller has them
        already: one pass over the frame fewer.

    Returns
    -------
    QualityMetrics
        With ``n_stars == 0`` and NaN PSF metrics when no star is found.
    """
    # Windowed centroids and HFDs only for the brightest stars (the medians
    # use them; saturated and blended ones are skipped, hence the margin):
    # on rich fields they would cost more than the detection itself.
    n_metric = 2 * n_brightest + 20
    stars, n_rejected, prep = _detect(data, mask=mask, nsigma=nsigma, saturation=saturation,
                                      n_refine=max(n_metric, n_refine or 0), need_gradient=True,
                                      extremes=extremes)
    idx = _metric_selection(stars[:n_metric], n_brightest) if len(stars) else np.zeros(0, int)
    nan = float("nan")
    if idx.size:
        fwhm = float(np.median(stars["fwhm"][idx]))
        hfd = float(np.median(stars["hfd"][idx]))
        elong = float(np.median(stars["elongation"][idx]))
    else:
        fwhm = hfd = elong = nan
    level = prep.level
    return QualityMetrics(
        n_stars=int(len(stars)),
        n_measured=int(idx.size),
        n_saturated=int(stars["saturated"].sum()) if len(stars) else 0,
        n_rejected=n_rejected,
        fwhm=fwhm,
        hfd=hfd,
        elongation=elong,
        background=level,
        background_rms=prep.rms,
        background_gradient=prep.gradient,
        background_gradient_frac=prep.gradient / level if level > 0 else nan,
        stars=stars,
    )


def minor_axis_fwhm(fwhm: float, elongation: float) -> float:
    """FWHM across the major axis, from the round-equivalent FWHM and a/b.

    With ``fwhm = 2.3548 sqrt((a**2 + b**2) / 2)`` and ``e = a / b``, the
    minor-axis FWHM is ``fwhm * sqrt(2 / (1 + e**2))``: a trail lengthens
    ``a`` but leaves this unchanged, so it tracks focus on trailed frames.
    """
    if not (math.isfinite(fwhm) and math.isfinite(elongation)) or elongation <= 0:
        return float("nan")
    return float(fwhm * math.sqrt(2.0 / (1.0 + elongation ** 2)))


# ---------------------------------------------------------------- focus

def half_flux_diameter(data, x: float | None = None, y: float | None = None, *,
                       mask=None, background: float | None = None,
                       rmax: float | None = None) -> float:
    """Half-flux diameter of one star, for any size or shape (donuts too).

    The background (sigma-clipped median of the unmasked pixels unless
    given) is subtracted; the star's extent is where its azimuthally
    averaged profile becomes consistent with zero; the HFD is twice the
    radius enclosing half of the flux within that extent.

    Parameters
    ----------
    data : numpy.ndarray
        2-D image containing the star (a cut-out or a whole small frame).
    x, y : float, optional
        0-based centre; by default the flux-weighted centre of the pixels
        more than 3 sigma above the background.
    mask : numpy.ndarray of bool, optional
        True where pixels are bad (e.g. zero-filled padding rows).
    background : float, optional
        Known background level, ADU.
    rmax : float, optional
        Largest radius considered; by default the distance to the farthest
        frame corner.

    Returns
    -------
    float
        Half-flux diameter, px; NaN when no positive flux is found.
    """
    img = np.asarray(data, dtype=np.float64)
    valid = np.isfinite(img)
    if mask is not None:
        valid &= ~np.asarray(mask, dtype=bool)
    if not valid.any():
        return float("nan")
    values = img[valid]
    med, std = _clipped(values)
    if background is None:
        background = med
    sub = np.where(valid, img - background, 0.0)
    if x is None or y is None:
        # Smooth first so single noisy pixels do not pull the centre.
        from scipy.ndimage import uniform_filter
        smooth = uniform_filter(sub, 3)
        # A 3x3 mean has 1/3 of the pixel noise: this is a 3-sigma cut.
        sel = valid & (smooth > std)
        if not sel.any():
            return float("nan")
        w = np.where(sel, sub, 0.0)
        w = np.clip(w, 0, None)
        tot = w.sum()
        if tot <= 0:
            return float("nan")
        yy, xx = np.indices(img.shape)
        x = float((w * xx).sum() / tot)
        y = float((w * yy).sum() / tot)
    yy, xx = np.indices(img.shape)
    r = np.hypot(xx - x, yy - y)[valid]
    v = sub[valid]
    if rmax is not None:
        keep = r <= rmax
        r, v = r[keep], v[keep]
    order = np.argsort(r)
    r, v = r[order], v[order]
    # Extent: beyond it, every 1-px annulus mean is within 3 sigma of zero.
    edges = np.arange(0.0, r[-1] + 1.0, 1.0)
    ring = np.searchsorted(r, edges[1:])
    starts = np.concatenate([[0], ring[:-1]])
    counts = ring - starts
    sums = np.add.reduceat(v, starts) if v.size else np.zeros(0)
    sums = np.where(counts > 0, sums, 0.0)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    noise = 3.0 * std / np.sqrt(np.maximum(counts, 1))
    signif = means > noise
    if not signif.any():
        return float("nan")
    extent = edges[np.flatnonzero(signif)[-1] + 1] + 2.0
    inside = r <= extent
    cum = np.cumsum(v[inside])
    total = cum[-1]
    if total <= 0:
        return float("nan")
    j = int(np.searchsorted(cum, 0.5 * total))
    return float(2.0 * r[inside][min(j, cum.size - 1)])


def _clipped(values, sigma=3.0, iterations=5):
    """Median and robust sigma (never below 1e-9) of ``values`` clipped at ``sigma`` about the median."""
    from astropy.stats import mad_std, sigma_clip

    v = sigma_clip(np.asarray(values, dtype=np.float64), sigma=sigma, maxiters=iterations, cenfunc="median",
                   stdfunc="mad_std", masked=False)
    return float(np.median(v)), float(max(mad_std(v), 1e-9))


# ---------------------------------------------------------------- storage

STORED_STAR_DTYPE = STAR_DTYPE.newbyteorder("<")
""":data:`STAR_DTYPE` in little-endian order: how a star list is stored in the catalog."""


def encode_stars(stars: np.ndarray) -> bytes:
    """A star list as compact bytes for the catalog (see :func:`decode_stars`).

    Parameters
    ----------
    stars : numpy.ndarray
        Structured array with the fields of :data:`STAR_DTYPE` (extra fields
        are dropped, missing ones raise).
    """
    out = np.zeros(len(stars), dtype=STORED_STAR_DTYPE)
    for name in STORED_STAR_DTYPE.names:
        out[name] = stars[name]
    return out.tobytes()


def decode_stars(data: bytes) -> np.ndarray:
    """The star list stored by :func:`encode_stars` (a read-only structured array).

    Raises
    ------
    ValueError
        When the bytes are not a whole number of records.
    """
    if len(data) % STORED_STAR_DTYPE.itemsize:
        raise ValueError(f"star list of {len(data)} bytes is not a multiple of "
                         f"{STORED_STAR_DTYPE.itemsize}-byte records")
    return np.frombuffer(data, dtype=STORED_STAR_DTYPE)


# ---------------------------------------------------------------- transparency

def _as_xyf(stars) -> np.ndarray:
    """(N, 3) float array of x, y, flux of finite, positive-flux stars."""
    if stars is None:
        return np.zeros((0, 3))
    if isinstance(stars, np.ndarray) and stars.dtype.names:
        arr = np.column_stack([stars["x"], stars["y"], stars["flux"]]).astype(np.float64)
        if "saturated" in stars.dtype.names:
            arr = arr[~stars["saturated"]]
    else:
        arr = np.asarray(stars, dtype=np.float64).reshape(-1, 3) if len(stars) else np.zeros((0, 3))
    ok = np.isfinite(arr).all(axis=1) & (arr[:, 2] > 0)
    arr = arr[ok]
    return arr[np.argsort(arr[:, 2])[::-1]]


def find_offset(stars, reference_stars, *, n_vote: int = 50, tolerance: float = 2.0,
                min_votes: int = 4) -> tuple[float, float, int] | None:
    """Translation taking ``stars`` positions onto ``reference_stars``.

    Every pairwise difference between the ``n_vote`` brightest stars of each
    list votes; the difference with most neighbours within ``tolerance`` px
    wins, refined by the median of its neighbours.  Works at any offset
    that leaves enough common stars.

    Parameters
    ----------
    stars, reference_stars : structured array or sequence of (x, y, flux)
    n_vote : int
        Brightest stars of each list that vote (the reference gets twice as
        many, so that dimmed frames still overlap it).
    tolerance : float
        Match radius, px.
    min_votes : int
        Fewer agreeing pairs than this is a failure.

    Returns
    -------
    (dx, dy, votes) or None
        ``reference = star + (dx, dy)``; None when the vote fails.
    """
    from obsdb.imaging.neighbours import counts_within

    a = _as_xyf(stars)[:n_vote, :2]
    b = _as_xyf(reference_stars)[: 2 * n_vote, :2]
    if len(a) < 2 or len(b) < 2:
        return None
    diffs = (b[None, :, :] - a[:, None, :]).reshape(-1, 2)
    counts = counts_within(diffs, tolerance)
    best = int(np.argmax(counts))
    votes = int(counts[best])
    if votes < min(min_votes, len(a), len(b)):
        return None
    near = np.flatnonzero(np.hypot(*(diffs - diffs[best]).T) <= tolerance)
    dx, dy = np.median(diffs[near], axis=0)
    return float(dx), float(dy), votes


def transparency(stars, reference_stars, *, n_ratio: int = 50, match_radius: float = 2.0,
                 min_matches: int = 3) -> float:
    """Flux of a frame's stars relative to the same stars in a reference.

    Stars are matched after finding the offset between the two lists
    (:func:`find_offset`, robust to offsets of hundreds of pixels), then the
    median flux ratio of the ``n_ratio`` brightest matched pairs is returned.
    When the stars cannot be matched the transparency is unknown (NaN): a
    ratio of unmatched fluxes would compare cloud features or other objects
    with stars (it read 9.7 on the overcast all-sky frame).

    Parameters
    ----------
    stars, reference_stars : structured array or sequence of (x, y, flux)
        Star lists (e.g. ``QualityMetrics.stars`` or the catalog's stored
        ``[x, y, flux]`` rows); saturated stars are ignored when flagged.
    n_ratio : int
        Matched pairs used for the median.
    match_radius : float
        Distance after the offset within which two stars match, px.
    min_matches : int
        Fewer matches than this falls back to rank matching.

    Returns
    -------
    float
        Ratio (1.0 = as clear as the reference); NaN when either list is
        empty or fewer than ``min_matches`` stars match.
    """
    from obsdb.imaging.neighbours import nearest_within

    a = _as_xyf(stars)
    b = _as_xyf(reference_stars)
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    offset = find_offset(a, b)
    if offset is not None:
        dx, dy, _ = offset
        dist, j = nearest_within(b[:, :2], a[:, :2] + (dx, dy), match_radius)
        hit = np.isfinite(dist)
        if hit.sum() >= min_matches:
            ai, bj = np.flatnonzero(hit), j[hit]
            # One reference star per frame star: keep the nearest claim.
            _, first = np.unique(bj, return_index=True)
            ai, bj = ai[first], bj[first]
            order = np.argsort(b[bj, 2])[::-1][:n_ratio]
            return float(np.median(a[ai[order], 2] / b[bj[order], 2]))
    return float("nan")
