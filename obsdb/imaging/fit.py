"""Least-squares transform from matched star positions, with outlier clipping and F-tests.

The model is chosen by the data: a shift, then rotation, then scale are
added only when nested F-tests show that the simpler model leaves
significantly larger residuals.  Transforms follow
:mod:`obsdb.imaging.transform`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from obsdb.imaging.starlist import as_xy
from obsdb.imaging.transform import Transform

__all__ = ["FIT_ALPHA", "FIT_CLIP_SIGMA", "FitResult", "fit_transform", "noise_weights"]

FIT_CLIP_SIGMA = 3.0
"""Default outlier threshold of :func:`fit_transform`, as an equivalent 1-D Gaussian sigma."""

FIT_ALPHA = 1e-3
"""Default significance level of the F-tests that add rotation and scale."""

NOISE_WEIGHT_BINS = 4
"""Flux bins in which :func:`noise_weights` measures the residual variance."""

_RAYLEIGH_MEDIAN = math.sqrt(2.0 * math.log(2.0))
"""Median of a 2-D residual length in units of the per-axis sigma (the Rayleigh distribution's)."""

@dataclass(frozen=True, kw_only=True)
class FitResult:
    """Least-squares transform from matched centroids.

    Attributes
    ----------
    transform : Transform
        Frame pixels to reference pixels about the given centre.  Rotation is
        exactly 0 and scale exactly 1 when they were not fitted or not
        significant.
    model : str
        ``"translation"``, ``"rotation"`` (rotation, scale 1) or
        ``"similarity"`` (rotation and scale).
    residual_rms : float
        RMS of the 2-D residual vector lengths of the kept stars, pixels.
    n_matched : int
        Pairs given.
    n_rejected : int
        Pairs clipped as outliers.
    inliers : numpy.ndarray
        Boolean mask of the kept pairs.
    p_rotation, p_scale : float
        F-test p-values for adding rotation to a shift and scale to a
        rotation (NaN when not tested).
    sigma_dx, sigma_dy, sigma_rotation_deg : float
        1-sigma uncertainties of the fitted parameters.
    """

    transform: Transform
    model: str
    residual_rms: float
    n_matched: int
    n_rejected: int
    inliers: np.ndarray = field(repr=False)
    p_rotation: float = float("nan")
    p_scale: float = float("nan")
    sigma_dx: float = float("nan")
    sigma_dy: float = float("nan")
    sigma_rotation_deg: float = float("nan")


def _fit_model(p, q, w, model, cx, cy):
    """Fit one model; returns (Transform, residual vectors (n, 2))."""
    z = p[:, 0] + 1j * p[:, 1]
    v = q[:, 0] + 1j * q[:, 1]
    sw = w.sum()
    zm = (w * z).sum() / sw
    vm = (w * v).sum() / sw
    if model == "translation":
        a = 1.0 + 0j
    else:
        zc, vc = z - zm, v - vm
        cross = (w * np.conj(zc) * vc).sum()
        if model == "rotation":
            a = cross / abs(cross) if abs(cross) > 0 else 1.0 + 0j
        else:
            a = cross / (w * np.abs(zc) ** 2).sum()
    t = Transform.from_complex(a, zm, vm, cx, cy)
    if model == "translation":
        t = Transform(t.dx, t.dy, 0.0, 1.0, cx, cy)
    elif model == "rotation":
        t = Transform(t.dx, t.dy, t.rotation_deg, 1.0, cx, cy)
    res = q - t.map_xy(p)
    return t, res


_N_PARAMS = {"translation": 2, "rotation": 3, "similarity": 4}


def fit_transform(frame_xy, ref_xy, *, center, fit_rotation="auto", clip_sigma: float = FIT_CLIP_SIGMA,
                  weights=None, alpha: float = FIT_ALPHA, max_iter: int = 10) -> FitResult:
    """Least-squares transform from matched star positions, with outlier clipping.

    Parameters
    ----------
    frame_xy, ref_xy : array_like
        (n, 2) positions of the same stars in the frame and the reference.
    center : (float, float)
        Centre of rotation and scale (the frame centre).
    fit_rotation : {"auto", True, False, "rotation", "similarity", "translation"}
        ``"auto"`` fits rotation and then scale only when nested F-tests
        (level ``alpha``) show that the simpler model leaves significantly
        larger residuals; ``True``/``"similarity"`` always fits both,
        ``"rotation"`` fits rotation with scale 1, ``False``/``"translation"``
        fits a shift only.
    clip_sigma : float
        Outlier threshold, expressed as the equivalent 1-D Gaussian sigma: a
        pair is rejected when its 2-D residual is as improbable as a
        ``clip_sigma`` deviation in one dimension.  The noise level is
        estimated robustly (median residual length).
    weights : array_like, optional
        Relative weights (inverse variances) of the pairs.
    alpha : float
        Significance level of the F-tests in ``"auto"``.
    max_iter : int
        Clipping iterations at most.

    Returns
    -------
    FitResult

    Raises
    ------
    ValueError
        With fewer than 2 pairs (or too few for the requested model).
    """
    p = as_xy(frame_xy)
    q = as_xy(ref_xy)
    if p.shape != q.shape:
        raise ValueError("frame_xy and ref_xy must have the same shape")
    n = len(p)
    cx, cy = float(center[0]), float(center[1])
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    if fit_rotation is True:
        fit_rotation = "similarity"
    elif fit_rotation is False:
        fit_rotation = "translation"
    if fit_rotation not in ("auto", "similarity", "rotation", "translation"):
        raise ValueError(f"fit_rotation must be auto, True, False, rotation, similarity: {fit_rotation!r}")
    # Clip with the most general model that is allowed: clipping edge stars
    # with a shift-only model would hide a rotation by rejecting its evidence.
    clip_model = "similarity" if fit_rotation == "auto" else fit_rotation
    need = {"translation": 1, "rotation": 2, "similarity": 2}[clip_model]
    if n < max(need, 2):
        raise ValueError(f"need at least 2 pairs, got {n}")
    if n < 3 and clip_model != "translation":
        clip_model = "translation"
        if fit_rotation == "auto":
            fit_rotation = "translation"

    # P(chi2_2 > r^2) equal to the two-sided 1-D tail at clip_sigma
    tail = math.erfc(clip_sigma / math.sqrt(2.0))
    r_cut = math.sqrt(-2.0 * math.log(tail)) if tail > 0 else np.inf
    keep = np.ones(n, dtype=bool)
    for _ in range(max_iter):
        t, _ = _fit_model(p[keep], q[keep], w[keep], clip_model, cx, cy)
        r_all = np.hypot(*(q - t.map_xy(p)).T) * np.sqrt(w / np.median(w[keep]))
        sigma = np.median(r_all[keep]) / _RAYLEIGH_MEDIAN
        if not sigma > 0:
            break
        new = r_all <= r_cut * sigma
        if new.sum() < max(3, _N_PARAMS[clip_model] // 2 + 1) or np.array_equal(new, keep):
            break
        keep = new

    pk, qk, wk = p[keep], q[keep], w[keep]
    nk = len(pk)
    wn = wk / wk.mean()
    rss = {}
    fits = {}
    for m in ("translation", "rotation", "similarity"):
        if _N_PARAMS[m] < 2 * nk:
            fits[m] = _fit_model(pk, qk, wk, m, cx, cy)
            rss[m] = float((wn[:, None] * fits[m][1] ** 2).sum())
    p_rot = p_scale = float("nan")
    if fit_rotation == "auto":
        model = "translation"
        p_rot = _f_test(rss.get("translation"), rss.get("rotation"), 1, 2 * nk - 3)
        if p_rot < alpha:
            model = "rotation"
            p_scale = _f_test(rss.get("rotation"), rss.get("similarity"), 1, 2 * nk - 4)
            if p_scale < alpha:
                model = "similarity"
    else:
        model = fit_rotation
    transform, res = fits[model]
    resid_len = np.hypot(res[:, 0], res[:, 1])
    rms = float(np.sqrt(np.mean(resid_len ** 2)))

    dof = max(2 * nk - _N_PARAMS[model], 1)
    s2 = rss[model] / dof                        # per-axis variance at unit weight
    sw = wn.sum()
    sig_t = math.sqrt(s2 / sw)
    zc = (pk[:, 0] + 1j * pk[:, 1]) - (wn * (pk[:, 0] + 1j * pk[:, 1])).sum() / sw
    lever = float((wn * np.abs(zc) ** 2).sum())
    sig_rot = math.degrees(math.sqrt(s2 / lever)) if (model != "translation" and lever > 0) else float("nan")
    return FitResult(transform=transform, model=model, residual_rms=rms, n_matched=n,
                     n_rejected=int(n - nk), inliers=keep, p_rotation=p_rot, p_scale=p_scale,
                     sigma_dx=sig_t, sigma_dy=sig_t, sigma_rotation_deg=sig_rot)


def _f_test(rss_simple, rss_full, d1, d2) -> float:
    """p-value that the extra ``d1`` parameters improve the fit by chance."""
    if rss_simple is None or rss_full is None or d2 <= 0:
        return float("nan")
    if rss_full <= 0:
        return 0.0 if rss_simple > 0 else 1.0
    from obsdb.imaging.tails import f_tail

    fval = max(rss_simple - rss_full, 0.0) / d1 / (rss_full / d2)
    return f_tail(d1, d2, fval)


def noise_weights(fxy, rxy, fit: FitResult, flux) -> np.ndarray | None:
    """Inverse-variance weights from the residuals' dependence on flux.

    Centroid noise falls steeply with flux (as 1/flux for faint stars on a
    bright sky), so the faint half of a list carries most of the scatter.
    The residual variance is measured in flux quartiles of the kept pairs
    (median squared residual, robust to the few outliers left) and
    interpolated in log flux.

    Parameters
    ----------
    fxy, rxy : numpy.ndarray
        (n, 2) matched positions in the frame and the reference.
    fit : FitResult
        An unweighted fit of the pairs (its transform and inliers).
    flux : numpy.ndarray
        (n,) fluxes of the frame's stars.

    Returns
    -------
    numpy.ndarray or None
        (n,) weights; None with fewer than ``4 * NOISE_WEIGHT_BINS`` usable pairs or a zero variance.
    """
    res = rxy - fit.transform.map_xy(fxy)
    r2 = (res ** 2).sum(axis=1)
    keep = fit.inliers & (flux > 0)
    if keep.sum() < 4 * NOISE_WEIGHT_BINS:
        return None
    lf = np.log(np.where(flux > 0, flux, np.nan))
    order = np.argsort(lf[keep])
    bins = np.array_split(order, NOISE_WEIGHT_BINS)
    centre = np.array([np.median(lf[keep][b]) for b in bins])
    var = np.array([np.median(r2[keep][b]) for b in bins]) / (2 * math.log(2))
    var = np.maximum.accumulate(var[::-1])[::-1]      # fainter is never more precise
    if not np.all(var > 0):
        return None
    v = np.interp(np.where(np.isfinite(lf), lf, centre[0]), centre, var)
    return 1.0 / v
