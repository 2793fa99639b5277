"""Quality metrics and the star list of one frame, from one detection, for the catalog."""

from __future__ import annotations

import math
from dataclasses import dataclass

from obsdb.catalog.versions import METRICS_VERSION

STAR_LIST_SIZE = 400
"""Brightest stars stored per frame: what registration matches (and QA and groups reuse)."""

TRANSPARENCY_STARS = 60
"""Brightest unsaturated stars of a stored list compared for transparency."""


DETECTION_SECONDS = 60.0
"""Time allowed for one frame's detection (plus :data:`DETECTION_SECONDS_PER_MPX`) before it is
stopped: a C loop that never ends must not hang an ingest.  Detection takes ~0.1 s per megapixel."""

DETECTION_SECONDS_PER_MPX = 2.0
"""Further time allowed per megapixel of the frame."""


def detection_time_limit(n_pixels: int) -> float:
    """Seconds allowed for the detection on a frame of ``n_pixels``."""
    return DETECTION_SECONDS + DETECTION_SECONDS_PER_MPX * n_pixels / 1e6


def _finite_or_none(value):
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass
class FrameQuality:
    """What one detection gives the catalog: the metric columns and the star list."""

    metrics: dict
    """Keys of :class:`obsdb.catalog.models.FrameMetrics` (transparency comes later, in `obsdb qa`)."""
    stars: object
    """The brightest :data:`STAR_LIST_SIZE` stars (:data:`obsdb.imaging.stars.STAR_DTYPE`), with
    positions refined as registration refines them."""
    streaks: list | None = None
    """Straight streaks found (:meth:`obsdb.imaging.streaks.Streak.as_dict` each, full-resolution
    pixels); None when the frame was not searched."""


def metrics_from_image(data, saturation, *, cfa: str | None = None, streaks: bool = False,
                       extremes: tuple[float, float] | None = None) -> FrameQuality:
    """Measure stars, PSF and sky of a frame, and keep its registration star list.

    One detection serves both: the stored list is exactly what
    :func:`obsdb.imaging.register.detect_registration_stars` returns for the
    frame, so `obsdb align` needs no second read of the pixels.

    Parameters
    ----------
    data : numpy.ndarray
        The frame.
    saturation : float or None
        Saturation level for flagging stars.
    cfa : str, optional
        Bayer pattern of a colour sensor: stars are then measured on the 2x2
        superpixel image and given in full-resolution pixels
        (:mod:`obsdb.imaging.bayer`), FWHM and HFD too.
    streaks : bool
        Also search the frame for satellite streaks (:func:`obsdb.imaging.streaks.find_streaks`, on
        the pixels already in memory): light frames only.  Sets ``n_streaks`` in the metrics.
    extremes : (float, float), optional
        ``data.min()`` and ``data.max()`` when the caller has them (see
        :func:`obsdb.imaging.stars.measure_quality`).

    Returns
    -------
    FrameQuality
    """
    from obsdb.imaging.register import refine_registration_stars
    from obsdb.imaging.stars import WINDOWED_STARS, measure_quality

    scale = 1.0
    if cfa is not None:
        from obsdb.imaging.bayer import stars_to_full_resolution, superpixels

        # A superpixel sums four pixels: it is saturated when its brightest is, at about twice the level.
        data, scale = superpixels(data), 2.0
        saturation = None if saturation is None else 2.0 * saturation
        extremes = None  # the superpixels' are others
    quality = measure_quality(data, saturation=saturation, n_refine=WINDOWED_STARS, extremes=extremes)
    stars = refine_registration_stars(data, quality.stars[:STAR_LIST_SIZE])
    if cfa is not None:
        stars = stars_to_full_resolution(stars)

    def length(value):
        value = _finite_or_none(value)
        return None if value is None else value * scale

    def per_pixel(value, superpixel_factor):
        value = _finite_or_none(value)
        if value is None or cfa is None:
            return value
        return value / superpixel_factor

    found = None
    if streaks:
        from obsdb.imaging.streaks import find_streaks

        try:
            found = [s.as_dict() for s in find_streaks(data, rms=quality.background_rms, stars=quality.stars,
                                                       cfa_scale=scale)]
        except Exception:  # noqa: BLE001 - the star metrics stand without it: n_streaks stays NULL
            found = None
    return FrameQuality(metrics={
        "n_stars": int(quality.n_stars),
        "fwhm": length(quality.fwhm),
        "hfd": length(quality.hfd),
        "elongation": _finite_or_none(quality.elongation),
        # Per full-resolution pixel: a superpixel holds four pixels' sky and twice one pixel's noise.
        "background": per_pixel(quality.background, 4.0),
        "background_rms": per_pixel(quality.background_rms, 2.0),
        "background_gradient": per_pixel(quality.background_gradient, 4.0),
        "algorithm": METRICS_VERSION,
        **({"n_streaks": len(found)} if found is not None else {}),
    }, stars=stars, streaks=found)


def transparency_stars(stars):
    """The stars of a stored list that transparency compares: the brightest unsaturated ones."""
    import numpy as np

    if stars is None or len(stars) == 0:
        return stars
    usable = stars[~stars["saturated"]] if "saturated" in stars.dtype.names else stars
    order = np.argsort(np.asarray(usable["flux"], dtype=float))[::-1][:TRANSPARENCY_STARS]
    return usable[order]
