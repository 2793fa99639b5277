"""Stars too faint for the usual detection, found with a matched filter, for registering faint frames.

A person still sees stars in a 5 s frame of a faint field that
:func:`obsdb.imaging.stars.detect_stars` misses; a Gaussian of the stars'
FWHM (the matched filter for a point source) finds them once the sensor's
fixed pattern is taken out.  Many candidates are noise: registration keeps
only a transform whose coincidences chance cannot explain
(:func:`obsdb.imaging.verify.verify_transform`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["FAINT_NSIGMA", "detect_faint_stars", "typical_fwhm"]

FAINT_NSIGMA = 4.0
"""Threshold of :func:`detect_faint_stars`, in sigmas of the matched-filtered image."""

FAINT_SKY_STEP = 4
"""The sky of :func:`detect_faint_stars` is a median of every this-many-th pixel, interpolated back."""

FAINT_SKY_BOX = 9
"""Median box of that coarse sky, in coarse pixels (36 frame pixels: much wider than a star)."""

DEFAULT_FWHM = 3.0
"""FWHM (pixels) assumed by :func:`typical_fwhm` when too few stars tell it."""


def typical_fwhm(*star_lists) -> float:
    """The median FWHM of the stars at hand; :data:`DEFAULT_FWHM` unless at least 10 have a star's size
    (a faint frame's few detections are often a warm column or a blend).

    Parameters
    ----------
    *star_lists : numpy.ndarray or None
        Structured star lists; those without a ``fwhm`` field are ignored.

    Returns
    -------
    float
        FWHM, pixels.
    """
    values = [np.asarray(stars["fwhm"], dtype=float) for stars in star_lists
              if stars is not None and len(stars) and getattr(stars, "dtype", None) is not None
              and stars.dtype.names and "fwhm" in stars.dtype.names]
    values = np.concatenate(values) if values else np.empty(0)
    values = values[np.isfinite(values) & (values > 0.8) & (values < 20.0)]
    return float(np.median(values)) if len(values) >= 10 else DEFAULT_FWHM


def detect_faint_stars(data, *, fwhm: float = 3.0, nsigma: float = FAINT_NSIGMA, mask=None,
                       max_stars: int = 150) -> np.ndarray:
    """Stars too faint for :func:`obsdb.imaging.register.detect_registration_stars`, for registering faint frames.

    The sensor's fixed pattern is taken out first (column and row medians,
    then :func:`obsdb.imaging.defects.sharp_defects`), the sky with a coarse
    median, and the image is smoothed with a Gaussian of the stars' FWHM (the
    matched filter for a point source); local maxima above ``nsigma`` times the
    smoothed image's robust sigma are candidates, centred to a fraction of a
    pixel on the smoothed image.  Many are noise: registration keeps only a
    transform whose coincidences chance cannot explain (:func:`verify_transform`).

    Parameters
    ----------
    data : numpy.ndarray
        The frame.
    fwhm : float
        Star FWHM, pixels.
    nsigma : float
        Threshold on the matched-filtered image.
    mask : numpy.ndarray of bool, optional
        Bad pixels.
    max_stars : int
        The brightest candidates kept.

    Returns
    -------
    numpy.ndarray
        Structured (``x``, ``y``, ``flux``, ``peak``), brightest first.
    """
    from astropy.stats import mad_std
    from scipy import ndimage

    from obsdb.imaging.defects import sharp_defects

    img = np.array(data, dtype=np.float64)
    bad = ~np.isfinite(img) if mask is None else (~np.isfinite(img) | np.asarray(mask, dtype=bool))
    out = np.zeros(0, dtype=[("x", "f8"), ("y", "f8"), ("flux", "f8"), ("peak", "f8")])
    if bad.all() or min(img.shape) < 16:
        return out
    img[bad] = np.nanmedian(img[~bad])
    img -= np.median(img, axis=0)[None, :]
    img -= np.median(img, axis=1)[:, None]
    bad |= sharp_defects(img, fwhm=fwhm)
    img[bad] = 0.0
    step = FAINT_SKY_STEP
    coarse = ndimage.median_filter(img[::step, ::step], size=FAINT_SKY_BOX, mode="nearest")
    sky = ndimage.zoom(coarse, step, order=1)[:img.shape[0], :img.shape[1]]
    if sky.shape != img.shape:
        sky = np.pad(sky, [(0, img.shape[0] - sky.shape[0]), (0, img.shape[1] - sky.shape[1])], mode="edge")
    smooth = ndimage.gaussian_filter(img - sky, max(fwhm, 1.0) / 2.3548)
    sigma = float(mad_std(smooth))
    if not sigma > 0:
        return out
    peaks = (smooth == ndimage.maximum_filter(smooth, size=5)) & (smooth > nsigma * sigma) & ~bad
    y, x = np.nonzero(peaks)
    if len(x) == 0:
        return out
    ny, nx = img.shape
    offsets = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
    values = np.array([smooth[np.clip(y + dy, 0, ny - 1), np.clip(x + dx, 0, nx - 1)] for dy, dx in offsets])
    weights = np.clip(values - values.min(axis=0), 0.0, None) + 1e-12
    out = np.zeros(len(x), dtype=out.dtype)
    out["x"] = x + (weights * offsets[:, 1, None]).sum(axis=0) / weights.sum(axis=0)
    out["y"] = y + (weights * offsets[:, 0, None]).sum(axis=0) / weights.sum(axis=0)
    out["flux"] = smooth[y, x]
    out["peak"] = 0.2 * out["flux"]   # spread like a star: not taken for a hot pixel downstream
    return out[np.argsort(-out["flux"], kind="stable")][:max_stars]
