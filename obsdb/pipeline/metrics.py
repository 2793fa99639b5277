"""Quality metrics of one frame as a plain dict for the catalog."""

from __future__ import annotations

import math

METRICS_VERSION = "metrics-2"
"""Identifies the metric algorithm; stored with each result."""

STARS_KEPT = 60
"""Brightest stars kept in the catalog for transparency matching."""


def _finite_or_none(value):
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def metrics_from_image(data, saturation) -> dict:
    """Measure stars, PSF and sky of a frame.

    Parameters
    ----------
    data : numpy.ndarray
        The frame.
    saturation : float or None
        Saturation level for flagging stars.

    Returns
    -------
    dict
        Keys of :class:`obsdb.catalog.models.FrameMetrics` (transparency is
        computed later, against the band's reference frame).
    """
    import numpy as np

    from obsdb.imaging.stars import measure_quality

    quality = measure_quality(data, saturation=saturation)
    stars = quality.stars
    stars_list = []
    if stars is not None and len(stars):
        if "saturated" in (stars.dtype.names or ()):
            # Saturated fluxes are clipped: useless for transparency ratios.
            stars = stars[~stars["saturated"]]
        x, y, flux = (np.asarray(stars[k], dtype=float) for k in ("x", "y", "flux"))
        order = np.argsort(flux)[::-1][:STARS_KEPT]
        stars_list = [[round(float(x[i]), 3), round(float(y[i]), 3), round(float(flux[i]), 1)] for i in order]
    return {
        "n_stars": int(quality.n_stars),
        "fwhm": _finite_or_none(quality.fwhm),
        "hfd": _finite_or_none(quality.hfd),
        "elongation": _finite_or_none(quality.elongation),
        "background": _finite_or_none(quality.background),
        "background_rms": _finite_or_none(quality.background_rms),
        "background_gradient": _finite_or_none(quality.background_gradient),
        "stars": stars_list,
        "algorithm": METRICS_VERSION,
    }
