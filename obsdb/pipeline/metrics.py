"""Quality metrics and the star list of one frame, from one detection, for the catalog."""

from __future__ import annotations

import math
from dataclasses import dataclass

METRICS_VERSION = "metrics-3"
"""Identifies the metric algorithm; stored with each result."""

STAR_LIST_SIZE = 400
"""Brightest stars stored per frame: what registration matches (and QA and groups reuse)."""

TRANSPARENCY_STARS = 60
"""Brightest unsaturated stars of a stored list compared for transparency."""


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


def metrics_from_image(data, saturation) -> FrameQuality:
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

    Returns
    -------
    FrameQuality
    """
    from obsdb.imaging.register import refine_registration_stars
    from obsdb.imaging.stars import measure_quality

    quality = measure_quality(data, saturation=saturation, n_refine=STAR_LIST_SIZE)
    stars = refine_registration_stars(data, quality.stars[:STAR_LIST_SIZE])
    return FrameQuality(metrics={
        "n_stars": int(quality.n_stars),
        "fwhm": _finite_or_none(quality.fwhm),
        "hfd": _finite_or_none(quality.hfd),
        "elongation": _finite_or_none(quality.elongation),
        "background": _finite_or_none(quality.background),
        "background_rms": _finite_or_none(quality.background_rms),
        "background_gradient": _finite_or_none(quality.background_gradient),
        "algorithm": METRICS_VERSION,
    }, stars=stars)


def transparency_stars(stars):
    """The stars of a stored list that transparency compares: the brightest unsaturated ones."""
    import numpy as np

    if stars is None or len(stars) == 0:
        return stars
    usable = stars[~stars["saturated"]] if "saturated" in stars.dtype.names else stars
    order = np.argsort(np.asarray(usable["flux"], dtype=float))[::-1][:TRANSPARENCY_STARS]
    return usable[order]
