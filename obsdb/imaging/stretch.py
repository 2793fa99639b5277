"""Display limits and stretches of the previews: IRAF's zscale and an asinh curve.

These are the values of astropy's ``ZScaleInterval`` (default parameters) and
``AsinhStretch``, which the previews used before.  They are computed here because
``astropy.visualization`` imports matplotlib and ``astropy.time`` when it loads (0.3 s): every
command that drew a preview (``render``'s stack PNG, the report, the desk) paid that for a few
hundred operations on 1,000 numbers.  ``tests/imaging/test_stretch.py`` compares both with astropy's
on random, integer, constant and real images.
"""

from __future__ import annotations

import numpy as np

ZSCALE_SAMPLES = 1000
"""Pixels sampled (evenly spaced through the finite values) for the zscale limits."""

ZSCALE_CONTRAST = 0.25
"""The fitted slope of the sorted samples is divided by this: lower shows a wider range."""

ZSCALE_MAX_REJECT = 0.5
"""The line fit stops when more than this fraction of the samples has been rejected."""

ZSCALE_MIN_PIXELS = 5
"""Fewest samples the line may be fitted to."""

ZSCALE_KREJ = 2.5
"""Samples beyond this many standard deviations of the residuals from the line are rejected."""

ZSCALE_ITERATIONS = 5
"""Most fit-and-reject rounds."""


def zscale_limits(values) -> tuple[float, float]:
    """IRAF's zscale display limits of an image's values.

    The finite values are sampled (:data:`ZSCALE_SAMPLES`, evenly spaced) and
    sorted; a straight line is fitted to the sorted samples against their rank,
    rejecting outliers (:data:`ZSCALE_KREJ` sigma, each rejection grown by 1 %
    of the samples) for up to :data:`ZSCALE_ITERATIONS` rounds.  The limits are
    the median plus and minus the ranks either side of the middle times the
    slope over :data:`ZSCALE_CONTRAST`, kept within the samples' range; when the
    fit rejected too much, the samples' minimum and maximum.

    Parameters
    ----------
    values : array_like
        Pixel values, any shape; NaN and infinities are ignored.

    Returns
    -------
    vmin, vmax : float
        The limits.  For values with no finite element, a ``ValueError`` is raised.
    """
    values = np.asanyarray(values).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("zscale needs at least one finite value")
    stride = int(max(1.0, values.size / ZSCALE_SAMPLES))
    samples = np.sort(values[::stride][:ZSCALE_SAMPLES])
    n = samples.size
    low, high = samples[0], samples[-1]
    least = max(ZSCALE_MIN_PIXELS, int(n * ZSCALE_MAX_REJECT))
    ranks = np.arange(n)
    rejected = np.zeros(n, dtype=bool)
    grow = np.ones(max(1, int(n * 0.01)), dtype=bool)
    kept, kept_before = n, n + 1
    fit = None
    for _ in range(ZSCALE_ITERATIONS):
        if kept >= kept_before or kept < least:
            break
        fit = np.polyfit(ranks, samples, deg=1, w=(~rejected).astype(int))
        residual = samples - np.poly1d(fit)(ranks)
        cut = ZSCALE_KREJ * residual[~rejected].std()
        rejected[(residual < -cut) | (residual > cut)] = True
        # Each rejection takes its neighbours in rank with it (a convolution of the mask).
        rejected = np.convolve(rejected, grow, mode="same")
        kept_before, kept = kept, int(np.sum(~rejected))
    if kept >= least and fit is not None:
        slope = fit[0] / ZSCALE_CONTRAST
        middle = (n - 1) // 2
        median = np.median(samples)
        low = max(low, median - (middle - 1) * slope)
        high = min(high, median + (n - middle) * slope)
    return low, high


def asinh_stretch(grey: np.ndarray, softening: float) -> np.ndarray:
    """``asinh(x / a) / asinh(1 / a)`` of grey levels clipped to [0, 1] (a new array).

    Parameters
    ----------
    grey : numpy.ndarray
        Levels, nominally in [0, 1].
    softening : float
        ``a``: the level where the curve turns from linear to logarithmic.

    Returns
    -------
    numpy.ndarray
        Stretched levels in [0, 1].
    """
    out = np.clip(grey, 0.0, 1.0)
    np.true_divide(out, softening, out=out)
    np.arcsinh(out, out=out)
    np.true_divide(out, np.arcsinh(1.0 / softening), out=out)
    return out
