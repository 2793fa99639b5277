"""Star lists as matching, fitting and verification read them.

A star list is either an ``(n, 2)`` array of positions or a structured array
with ``x`` and ``y`` fields (and, from detection, ``flux``, ``peak``,
``saturated``, ...).  These helpers give the parts of either form that the
registration modules (:mod:`~obsdb.imaging.match`, :mod:`~obsdb.imaging.fit`,
:mod:`~obsdb.imaging.verify`, :mod:`~obsdb.imaging.register`) need.
"""

from __future__ import annotations

import numpy as np

__all__ = ["as_xy", "brightest", "star_flux", "usable_stars"]


def as_xy(stars) -> np.ndarray:
    """Positions of a star list as an ``(n, 2)`` float array.

    Parameters
    ----------
    stars : array_like or None
        ``(n, 2)`` positions, or a structured array with ``x`` and ``y`` fields.

    Returns
    -------
    numpy.ndarray
        ``(n, 2)`` positions; empty for None or an empty list.

    Raises
    ------
    ValueError
        When ``stars`` is neither form.
    """
    if stars is None:
        return np.empty((0, 2))
    arr = np.asarray(stars)
    if arr.dtype.names is not None:
        return np.column_stack([arr["x"], arr["y"]]).astype(float)
    arr = np.asarray(arr, dtype=float)
    if arr.size == 0:
        return np.empty((0, 2))
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError("positions must be an (n, 2) array or have x, y fields")
    return arr


def brightest(n_total: int, flux, n: int) -> np.ndarray:
    """Indices of the ``n`` brightest of ``n_total`` stars (the first ``n`` without fluxes).

    Non-finite fluxes count as the faintest; equal fluxes keep their list order.
    """
    if flux is None:
        return np.arange(min(n, n_total))
    flux = np.asarray(flux, dtype=float)
    flux = np.where(np.isfinite(flux), flux, -np.inf)
    order = np.argsort(-flux, kind="stable")
    return order[: min(n, n_total)]


def star_flux(stars) -> np.ndarray | None:
    """The ``flux`` field of a structured star list as floats; None when the list has none."""
    arr = np.asarray(stars)
    if arr.dtype.names is not None and "flux" in arr.dtype.names:
        return np.asarray(arr["flux"], dtype=float)
    return None


def usable_stars(stars) -> np.ndarray:
    """The list without the single-pixel objects a detector may report as (saturated) stars.

    A saturated hot pixel is fixed on the detector, so it sits at the same
    place in every frame: a handful of them among the brightest "stars"
    vote for a zero shift.  Their flux is all in the peak pixel, while even
    a saturated real star spreads several times its peak.  Lists without
    ``flux`` and ``peak`` are returned as they are.
    """
    arr = np.asarray(stars)
    if arr.dtype.names is None or not {"peak", "flux"} <= set(arr.dtype.names) or len(arr) == 0:
        return arr
    flux = np.asarray(arr["flux"], dtype=float)
    peak = np.asarray(arr["peak"], dtype=float)
    single = (flux > 0) & (peak > 0.5 * flux)
    return arr[~single]
