"""Frame weights for a weighted stack, as the stacking tools observers use define them.

Pure functions on per-frame numbers the catalog already holds (background noise,
FWHM, star counts, star S/N).  Each returns one weight per frame, normalised so that
the weights' mean is 1 (a stack's level does not depend on how many frames it has),
with NaN for a frame whose inputs are missing; :func:`normalised` states the rule.

The formulas are Siril's (1.2, "Stacking: weighting"):

- **noise**: ``1 / (scale**2 * sigma_bg**2)``, inverse-variance weighting, which
  makes the weighted mean's noise ``sqrt(1 / sum(w))`` in units of the weights;
- **weighted FWHM**: Siril's wFWHM ``f + 2 f (n_ref - n) / n_ref`` (a frame that
  matches fewer of the reference's stars counts as blurrier), then
  ``(1/f**2 - 1/f_max**2) / (1/f_min**2 - 1/f_max**2)``;
- **star count**: ``((n - n_min) / (n_max - n_min))**2``;

and an **SNR** weight, ``snr**2`` (PixInsight's SubframeSelector ranks by SNR; its
square is the weight that maximises a mean's S/N when the noise dominates).  The
min-max forms give the worst frame of a set weight 0, as Siril does: it then adds
nothing to the stack.
"""

from __future__ import annotations

import numpy as np

WEIGHTS_VERSION = "weights-1"
"""Identifies the formulas below; stored with every weight they make."""

WEIGHT_KINDS = ("noise", "fwhm", "stars", "snr")
"""The built-in weights, by the name ``render --weight`` and ``--where`` use."""


def normalised(weights) -> np.ndarray:
    """Weights scaled to a mean of 1 over the finite ones (all equal -> all 1).

    Examples
    --------
    >>> normalised([1.0, 3.0, float("nan")]).tolist()
    [0.5, 1.5, nan]
    >>> normalised([0.0, 0.0]).tolist()
    [1.0, 1.0]
    """
    w = np.asarray(weights, dtype=float).copy()
    finite = np.isfinite(w)
    if not finite.any():
        return w
    mean = w[finite].mean()
    if mean <= 0:
        w[finite] = 1.0
        return w
    w[finite] /= mean
    return w


def noise_weights(background_rms, scale=None) -> np.ndarray:
    """Inverse-variance weights ``1 / (scale**2 sigma**2)``, mean 1.

    Parameters
    ----------
    background_rms : array_like
        Each frame's sky noise (ADU).
    scale : array_like, optional
        Each frame's flux scale to the reference (a frame through thin cloud has
        scale > 1: its noise counts for more once it is brought to the reference's level).

    Examples
    --------
    >>> noise_weights([1.0, 2.0]).round(3).tolist()
    [1.6, 0.4]
    """
    sigma = np.asarray(background_rms, dtype=float)
    s = np.ones_like(sigma) if scale is None else np.asarray(scale, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = 1.0 / (s**2 * sigma**2)
    w[~(np.isfinite(w) & (sigma > 0))] = np.nan
    return normalised(w)


def weighted_fwhm(fwhm, n_matched, n_reference) -> np.ndarray:
    """Siril's wFWHM: ``f + 2 f (n_ref - n) / n_ref``, the FWHM penalised by stars lost.

    Parameters
    ----------
    fwhm : array_like
        Each frame's median FWHM.
    n_matched : array_like
        Stars of the frame matched to the reference (at most ``n_reference`` count).
    n_reference : int or array_like
        Stars of the reference.

    Examples
    --------
    >>> weighted_fwhm([3.0, 3.0], [100, 50], 100).tolist()
    [3.0, 6.0]
    """
    f = np.asarray(fwhm, dtype=float)
    n_ref = np.asarray(n_reference, dtype=float)
    n = np.minimum(np.asarray(n_matched, dtype=float), n_ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        return f + 2.0 * f * (n_ref - n) / n_ref


def fwhm_weights(fwhm) -> np.ndarray:
    """``(1/f**2 - 1/f_max**2) / (1/f_min**2 - 1/f_max**2)``, mean 1 (pass wFWHM for Siril's).

    Examples
    --------
    >>> fwhm_weights([2.0, 4.0]).tolist()
    [2.0, 0.0]
    """
    f = np.asarray(fwhm, dtype=float)
    good = np.isfinite(f) & (f > 0)
    w = np.full(f.shape, np.nan)
    if not good.any():
        return w
    lo, hi = f[good].min(), f[good].max()
    if hi == lo:
        w[good] = 1.0
        return w
    w[good] = (1 / f[good] ** 2 - 1 / hi**2) / (1 / lo**2 - 1 / hi**2)
    return normalised(w)


def star_count_weights(n_stars) -> np.ndarray:
    """``((n - n_min) / (n_max - n_min))**2``, mean 1.

    Examples
    --------
    >>> star_count_weights([10, 20, 30]).round(3).tolist()
    [0.0, 0.6, 2.4]
    """
    n = np.asarray(n_stars, dtype=float)
    good = np.isfinite(n)
    w = np.full(n.shape, np.nan)
    if not good.any():
        return w
    lo, hi = n[good].min(), n[good].max()
    if hi == lo:
        w[good] = 1.0
        return w
    w[good] = ((n[good] - lo) / (hi - lo)) ** 2
    return normalised(w)


def snr_weights(snr) -> np.ndarray:
    """``snr**2``, mean 1 (a frame of no measured S/N gets NaN).

    Examples
    --------
    >>> snr_weights([10.0, 20.0]).tolist()
    [0.4, 1.6]
    """
    s = np.asarray(snr, dtype=float)
    w = np.where(np.isfinite(s) & (s > 0), s**2, np.nan)
    return normalised(w)
