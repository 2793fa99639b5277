"""The same star in every frame, and each frame's zero point from the stars that hold still.

Pure functions on star positions and magnitudes.  Positions come already mapped into
the reference frame's pixel grid (through the catalog's verified transforms), so that
identifying a star across frames is a nearest-neighbour match; magnitudes come from
:mod:`obsdb.imaging.photometry`.

Ensemble photometry (Honeycutt 1992, the method of every differential photometry
package since) models each measurement as ``m[f, s] = M[s] + Z[f]``: a star's own
magnitude plus the frame's zero point (its transparency, airmass and exposure).  Both
are fitted together by weighted least squares over the stars that are constant; a
star whose residuals scatter more than its errors allow is a variable (or a bad
measurement) and is left out of the zero points, iteratively.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MATCH_RADIUS = 2.0
"""Pixels (in the reference grid) within which two frames' stars are the same star:
well above the transforms' verified residuals (< 0.3 px), well below typical spacing."""

VARIABLE_CHI2 = 5.0
"""A star whose residuals about the ensemble have a reduced chi-square above this (times
the ensemble's median when the errors are too small for every star) is left out of the
zero points, and flagged variable when it has enough frames."""

ERROR_FLOOR = 0.002
"""Magnitudes added in quadrature to every error (flat-field and aperture-centring
residuals a photon-noise error does not hold), so that the brightest stars do not
dominate the fit with errors of 0.1 mmag they cannot keep."""

MIN_FRAMES_PER_STAR = 3
"""A star measured in fewer frames neither sets zero points nor gets a variability index."""

ITERATIONS = 10
"""At most this many fit-and-reject passes (they settle in 2-4)."""


def identify_sources(positions: list[np.ndarray], *, radius: float = MATCH_RADIUS,
                     order: list[int] | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """One source per star: match every frame's stars to a growing source list.

    Parameters
    ----------
    positions : list of numpy.ndarray
        Per frame, an ``(n, 2)`` array of star positions in the reference grid.
    radius : float
        Match radius in pixels (:data:`MATCH_RADIUS`).
    order : list of int, optional
        The order in which frames are taken (the reference first gives its stars the
        lowest ids, so ids are stable when frames are added later); default as given.

    Returns
    -------
    sources : numpy.ndarray
        ``(m, 2)`` mean positions of the sources.
    members : list of numpy.ndarray
        Per frame (in the given order of ``positions``), each star's source id, or -1
        for a star that lost a tie (two stars of one frame within ``radius`` of one
        source: the nearer one keeps it; the other is ambiguous and left out).

    Examples
    --------
    >>> import numpy as np
    >>> ref = np.array([[10.0, 10.0], [50.0, 50.0]])
    >>> other = np.array([[50.4, 49.8], [90.0, 20.0]])
    >>> sources, members = identify_sources([ref, other])
    >>> [m.tolist() for m in members]
    [[0, 1], [1, 2]]
    """
    from scipy.spatial import cKDTree

    order = list(range(len(positions))) if order is None else list(order)
    sums = np.zeros((0, 2))
    counts = np.zeros(0)
    members: list[np.ndarray] = [np.empty(0, dtype=int)] * len(positions)
    for f in order:
        xy = np.asarray(positions[f], dtype=float).reshape(-1, 2)
        ids = np.full(len(xy), -1, dtype=int)
        if len(sums) and len(xy):
            tree = cKDTree(sums / counts[:, None])
            distance, nearest = tree.query(xy, distance_upper_bound=radius)
            found = np.isfinite(distance)
            # One star per source per frame: the nearest claimant wins.
            claim = np.flatnonzero(found)
            claim = claim[np.argsort(distance[claim], kind="stable")]
            taken = set()
            for i in claim:
                if nearest[i] in taken:
                    ids[i] = -2
                    continue
                taken.add(nearest[i])
                ids[i] = nearest[i]
        new = ids == -1
        if new.any():
            start = len(sums)
            ids[new] = np.arange(start, start + new.sum())
            sums = np.vstack([sums, np.zeros((new.sum(), 2))])
            counts = np.concatenate([counts, np.zeros(new.sum())])
        kept = ids >= 0
        np.add.at(sums, ids[kept], xy[kept])
        np.add.at(counts, ids[kept], 1)
        ids[ids == -2] = -1
        members[f] = ids
    return sums / np.maximum(counts, 1)[:, None], members


@dataclass
class Ensemble:
    """Zero points per frame and magnitudes per star from one ensemble fit.

    Attributes
    ----------
    zero_point, zero_point_err : numpy.ndarray
        Per frame: the frame's offset (mag) relative to the ensemble's mean frame, and its
        1-sigma error; NaN for a frame with too few comparison stars.
    magnitude, magnitude_err : numpy.ndarray
        Per star: the mean magnitude on the ensemble's scale and its error.
    chi2 : numpy.ndarray
        Per star: the reduced chi-square of its residuals (the variability index).
    comparison : numpy.ndarray of bool
        Per star: used to set the zero points.
    variable : numpy.ndarray of bool
        Per star: residuals beyond :data:`VARIABLE_CHI2`, with enough frames to say so.
    n_frames : numpy.ndarray
        Per star: frames it was measured in.
    """

    zero_point: np.ndarray = field(repr=False)
    zero_point_err: np.ndarray = field(repr=False)
    magnitude: np.ndarray = field(repr=False)
    magnitude_err: np.ndarray = field(repr=False)
    chi2: np.ndarray = field(repr=False)
    comparison: np.ndarray = field(repr=False)
    variable: np.ndarray = field(repr=False)
    n_frames: np.ndarray = field(repr=False)

    def differential(self, mag: np.ndarray) -> np.ndarray:
        """Magnitudes with each frame's zero point removed (rows: frames)."""
        return np.asarray(mag, dtype=float) - self.zero_point[:, None]


def ensemble_zero_points(mag, err, *, exclude=None, min_comparison: int = 3) -> Ensemble:
    """Fit ``m[f, s] = M[s] + Z[f]`` over the constant stars, iteratively rejecting variables.

    Parameters
    ----------
    mag, err : array_like
        ``(n_frames, n_stars)`` instrumental magnitudes and their errors; NaN where a
        star was not measured (or its measurement was flagged) in a frame.
    exclude : array_like of bool, optional
        Stars never used as comparisons (the targets, known variables).
    min_comparison : int
        A frame needs at least this many comparison stars for a zero point.

    Returns
    -------
    Ensemble
        The zero points are relative: their weighted mean over the frames is 0.

    Examples
    --------
    Three frames, four constant stars, the second frame 0.3 mag through cloud:

    >>> import numpy as np
    >>> true = np.array([12.0, 13.0, 14.0, 15.0])
    >>> mag = true[None, :] + np.array([0.0, 0.3, 0.0])[:, None]
    >>> fit = ensemble_zero_points(mag, np.full(mag.shape, 0.01))
    >>> np.round(fit.zero_point - fit.zero_point[0], 3).tolist()
    [0.0, 0.3, 0.0]
    """
    mag = np.asarray(mag, dtype=float)
    err = np.asarray(err, dtype=float)
    n_frames, n_stars = mag.shape
    seen = np.isfinite(mag) & np.isfinite(err) & (err > 0)
    var = np.where(seen, err**2 + ERROR_FLOOR**2, np.inf)
    n_seen = seen.sum(axis=0)
    use = (n_seen >= MIN_FRAMES_PER_STAR)
    if exclude is not None:
        use &= ~np.asarray(exclude, dtype=bool)
    star = np.nanmedian(np.where(seen, mag, np.nan), axis=0) if n_stars else np.zeros(0)
    # A robust start (each frame's median offset) so that a deep variable cannot drag the first
    # fit and inflate every other star's chi-square.
    with np.errstate(invalid="ignore"):
        offsets = np.where(seen & use[None, :], mag - star[None, :], np.nan)
    zero = np.nan_to_num(np.nanmedian(offsets, axis=1) if use.any() else np.zeros(n_frames))
    star = np.nanmedian(np.where(seen, mag - zero[:, None], np.nan), axis=0) if n_stars else star
    chi2 = np.full(n_stars, np.nan)
    limit = VARIABLE_CHI2
    for _ in range(ITERATIONS):
        zero, star = _alternate(mag, var, seen, use, zero, star)
        chi2 = _reduced_chi2(mag, var, seen, zero, star)
        limit = _chi2_limit(chi2, use)
        rejected = use & (chi2 > limit)
        if not rejected.any():
            break
        use &= ~rejected
    weights = np.where(seen & use[None, :], 1.0 / var, 0.0)
    n_comparison = (weights > 0).sum(axis=1)
    zero_err = np.where(n_comparison >= min_comparison, 1.0 / np.sqrt(np.maximum(weights.sum(axis=1), 1e-300)),
                        np.nan)
    zero = np.where(n_comparison >= min_comparison, zero, np.nan)
    star_weights = np.where(seen & np.isfinite(zero)[:, None], 1.0 / var, 0.0)
    star_err = np.where(star_weights.sum(axis=0) > 0, 1.0 / np.sqrt(np.maximum(star_weights.sum(axis=0), 1e-300)),
                        np.nan)
    variable = (n_seen >= MIN_FRAMES_PER_STAR) & (chi2 > limit)
    return Ensemble(zero, zero_err, star, star_err, chi2, use, variable, n_seen)


def _chi2_limit(chi2: np.ndarray, use: np.ndarray) -> float:
    """:data:`VARIABLE_CHI2` times the comparison stars' median reduced chi-square when that is
    above 1: errors that are too small for every star (a gain assumed, a flat-field floor) do
    not make every star a variable."""
    typical = np.nanmedian(chi2[use]) if use.any() else np.nan
    return VARIABLE_CHI2 * max(1.0, float(typical) if np.isfinite(typical) else 1.0)


def _alternate(mag, var, seen, use, zero, star, passes: int = 50, tolerance: float = 1e-7):
    """Weighted least squares of ``M[s] + Z[f]`` by alternating the two closed-form updates."""
    w_all = np.where(seen, 1.0 / var, 0.0)
    w_cmp = w_all * use[None, :]
    filled = np.where(seen, mag, 0.0)
    for _ in range(passes):
        # A star measured in no frame has no magnitude (NaN): 0 x NaN would poison every frame's sum.
        offset = np.where(seen, filled - np.nan_to_num(star)[None, :], 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            new_zero = np.sum(w_cmp * offset, axis=1) / np.sum(w_cmp, axis=1)
        new_zero = np.nan_to_num(new_zero)
        # Fix the scale: the zero points' weighted mean is 0.
        frame_weight = np.sum(w_cmp, axis=1)
        if frame_weight.sum() > 0:
            new_zero -= np.sum(frame_weight * new_zero) / frame_weight.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            new_star = np.sum(w_all * (filled - new_zero[:, None]), axis=0) / np.sum(w_all, axis=0)
        change = max(np.nanmax(np.abs(new_zero - zero), initial=0.0),
                     np.nanmax(np.abs(np.nan_to_num(new_star - star)), initial=0.0))
        zero, star = new_zero, new_star
        if change < tolerance:
            break
    return zero, star


def _reduced_chi2(mag, var, seen, zero, star) -> np.ndarray:
    """Each star's reduced chi-square about its fitted magnitude (NaN with fewer than 2 frames)."""
    residual = np.where(seen, mag - zero[:, None] - star[None, :], 0.0)
    chi = np.where(seen, residual**2 / var, 0.0).sum(axis=0)
    dof = seen.sum(axis=0) - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(dof > 0, chi / np.maximum(dof, 1), np.nan)
