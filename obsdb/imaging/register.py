"""Registration of a frame onto a reference frame: :func:`register` and its outcome.

Pure functions on arrays, no database.  The steps live in their own modules:

1. stars in both frames (:func:`detect_registration_stars`, or lists given by
   the caller, so the reference is detected once per night);
2. :func:`obsdb.imaging.match.match_stars`: similarity-invariant triangles of
   the brightest stars vote for a transform, which all stars then confirm;
3. :func:`obsdb.imaging.fit.fit_transform`: least squares on the matched
   centroids with iterative clipping, rotation and scale kept only when the
   data demand them (nested F-tests);
4. :func:`obsdb.imaging.verify.verify_transform`: every recorded transform
   puts more frame stars on reference stars than chance can;
5. when the bright stars cannot do it: faint stars found with a matched
   filter (:mod:`obsdb.imaging.faint`), then
   :func:`obsdb.imaging.xcorr.cross_correlation_shift` on cleaned,
   band-passed frames, kept only when the stars confirm it.  A frame that no
   method registers gets ``ok=False`` and a reason.

All transforms follow :mod:`obsdb.imaging.transform`: they map frame pixels
to reference pixels, ``dx = x_reference - x_frame`` for the same star, about
the frame centre ``((nx - 1) / 2, (ny - 1) / 2)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from obsdb.imaging.fit import NOISE_WEIGHT_BINS, FitResult, fit_transform, noise_weights
from obsdb.imaging.match import MatchError, match_stars
from obsdb.imaging.starlist import as_xy, star_flux, usable_stars
from obsdb.imaging.transform import Transform
from obsdb.imaging.verify import Verification, verify_transform

__all__ = ["REGISTER_VERSION", "RegistrationOptions", "RegistrationResult", "detect_registration_stars",
           "refine_registration_stars", "register"]

REGISTER_VERSION = "register-2"
"""Identifies the algorithms below; recorded with every result."""

REGISTRATION_MAX_STARS = 400
"""Brightest stars :func:`detect_registration_stars` keeps."""

REFINE_MAX_MOVE = 3.0
"""A refined centroid that moved this far (pixels) from the detection is not trusted."""

NARROW_SCALE_CHANGE = 0.02
"""Largest scale change of the first, expected-case search (the same camera, a drift)."""

WIDE_SEARCH = {"max_rotation_deg": 180.0, "max_scale_change": 1.0}
"""The second search: any rotation (a flip, another mounting) and scale 0.5-2 (another binning or
camera); its offset reaches anywhere the frames overlap."""

SCALE_CHANGE_SEEN = 0.005
"""A matched scale further than this from 1 is fitted as a similarity from the start."""

PARTS_MIN_STARS = 60
"""A list needs this many stars to be tried one part of its frame at a time."""

PART_MIN_STARS = 15
"""A part of a frame needs this many stars to be matched on its own."""


@dataclass(frozen=True)
class RegistrationOptions:
    """How :func:`register` searches and what it accepts.

    Attributes
    ----------
    max_offset : float
        Largest translation (pixels, per axis) searched by star matching in the
        expected case, and by cross-correlation; default 500.
    max_rotation_deg : float
        Largest rotation (degrees) searched in the expected case; default 2.
        Any rotation is tried next.
    fit_rotation : {"auto", True, False, "rotation", "similarity", "translation"}
        The fitted model (see :func:`obsdb.imaging.fit.fit_transform`); default ``"auto"``.
    min_matches : int
        Fewer kept star pairs than this is a failure of a star method; default 6.
    max_rms : float
        A star fit with a larger residual RMS (pixels) is a failure; default 1.
    min_xcorr_quality : float
        Cross-correlation peaks less significant than this are not trusted; default 9.
    use_xcorr : bool
        Fall back to faint stars and cross-correlation at all (they need both
        images); default True.
    weighted : bool
        Refit with inverse-variance weights measured from the residuals as a
        function of flux (:func:`obsdb.imaging.fit.noise_weights`); default True.
    """

    max_offset: float = 500.0
    max_rotation_deg: float = 2.0
    fit_rotation: bool | str = "auto"
    min_matches: int = 6
    max_rms: float = 1.0
    min_xcorr_quality: float = 9.0
    use_xcorr: bool = True
    weighted: bool = True


@dataclass(frozen=True, kw_only=True)
class _StarFit:
    """A star fit that held: the fit, the pairs it kept and the verification it passed."""

    fit: FitResult
    n_kept: int
    verification: Verification


@dataclass(frozen=True, kw_only=True)
class RegistrationResult:
    """Outcome of registering one frame onto the reference.

    Attributes
    ----------
    ok : bool
        True when a transform was measured.
    method : str or None
        ``"stars"``, ``"faint-stars"`` or ``"xcorr"``; None when ``ok`` is False.
    transform : Transform or None
        Frame to reference; None when ``ok`` is False (never a guess).
    residual_rms : float or None
        Star-fit residual RMS in pixels (None for cross-correlation).
    n_matched : int
        Star pairs kept in the fit.
    n_rejected : int
        Star pairs clipped as outliers.
    reason : str
        Why it failed, or why the fallback was used; empty otherwise.
    model : str or None
        Star-fit model: translation, rotation or similarity.
    quality : float or None
        Cross-correlation peak significance when it was computed.
    n_frame_stars, n_reference_stars : int
        Stars available on each side.
    verification : Verification or None
        The independent check every recorded transform passed (see
        :func:`verify_transform`); also kept for a cross-correlation shift it refused.
    version : str
        Algorithm version.
    """

    ok: bool
    method: str | None = None
    transform: Transform | None = None
    residual_rms: float | None = None
    n_matched: int = 0
    n_rejected: int = 0
    reason: str = ""
    model: str | None = None
    quality: float | None = None
    n_frame_stars: int = 0
    n_reference_stars: int = 0
    verification: Verification | None = None
    version: str = REGISTER_VERSION

    @property
    def dx(self) -> float | None:
        """Translation in x at the frame centre (None when not registered)."""
        return None if self.transform is None else self.transform.dx

    @property
    def dy(self) -> float | None:
        """Translation in y at the frame centre (None when not registered)."""
        return None if self.transform is None else self.transform.dy

    def as_dict(self) -> dict:
        """Plain, JSON-ready dict (the transform as a nested dict)."""
        d = asdict(self)
        d["transform"] = None if self.transform is None else asdict(self.transform)
        return d


def register(frame, reference, *, frame_stars=None, reference_stars=None, saturation=None, mask=None,
             shape: tuple[int, int] | None = None, options: RegistrationOptions | None = None,
             **overrides) -> RegistrationResult:
    """Register a frame onto the reference: stars first, faint stars and cross-correlation as fallbacks.

    Parameters
    ----------
    frame, reference : numpy.ndarray
        2-D images of the same shape (``reference`` may be None when
        ``reference_stars`` is given and ``use_xcorr`` is False).
    frame_stars, reference_stars : numpy.ndarray, optional
        Star lists (structured, with ``x``, ``y`` and preferably ``flux``);
        detected when not given.  Pass ``reference_stars`` from
        :func:`detect_registration_stars` to detect the reference once.
    saturation : float, optional
        Saturation level, for detection.
    mask : numpy.ndarray of bool, optional
        Bad detector pixels (True = bad), for detection and cross-correlation.
    shape : (ny, nx), optional
        Frame shape when neither image is given (star lists from the catalog).
    options : RegistrationOptions, optional
        Search limits and acceptance thresholds; the defaults when not given.
    **overrides
        Fields of :class:`RegistrationOptions` to change for this call, e.g.
        ``use_xcorr=False``; an unknown name is a TypeError.

    Returns
    -------
    RegistrationResult
    """
    opts = replace(options or RegistrationOptions(), **overrides)
    frame = None if frame is None else np.asarray(frame)
    ref_img = None if reference is None else np.asarray(reference)
    if shape is None:
        shape = frame.shape if frame is not None else (ref_img.shape if ref_img is not None else None)
    if shape is None:
        raise ValueError("need an image or the shape to know the frame size")
    center = ((shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0)

    try:
        if reference_stars is None:
            reference_stars = detect_registration_stars(ref_img, saturation=saturation, mask=mask)
        if frame_stars is None:
            frame_stars = detect_registration_stars(frame, saturation=saturation, mask=mask)
    except ValueError as exc:  # nothing to detect in (a blank or fully masked image)
        return RegistrationResult(ok=False, reason=f"no stars can be detected: {exc}")
    reference_stars = usable_stars(reference_stars)
    frame_stars = usable_stars(frame_stars)
    counts = {"n_frame_stars": len(frame_stars), "n_reference_stars": len(reference_stars)}

    result, reasons = _register_by_stars(frame_stars, reference_stars, shape, center, opts, counts)
    if result is not None:
        return result
    if frame is not None and ref_img is not None:
        result, why = _register_by_faint_stars(frame, ref_img, frame_stars, reference_stars, mask, shape, center,
                                               opts, reasons, counts)
        if result is not None:
            return result
        reasons.append(why)
    why = "; ".join(reasons)
    if not opts.use_xcorr or frame is None or ref_img is None:
        return RegistrationResult(ok=False, reason=why, **counts)
    return _register_by_xcorr(frame, ref_img, frame_stars, reference_stars, mask, shape, center, opts, why, counts)


def _fitted(method: str, attempt: _StarFit, reason: str, counts: dict) -> RegistrationResult:
    """The result of a star fit that held."""
    return RegistrationResult(ok=True, method=method, transform=attempt.fit.transform,
                              residual_rms=attempt.fit.residual_rms, n_matched=attempt.n_kept,
                              n_rejected=attempt.fit.n_rejected, reason=reason, model=attempt.fit.model,
                              verification=attempt.verification, **counts)


def _register_by_stars(frame_stars, reference_stars, shape, center, opts: RegistrationOptions, counts: dict):
    """The bright-star methods, from the expected case to the unusual: ``(result, [])``, a refusal that
    needs no fallback (a mirrored frame), or ``(None, reasons)``."""
    n_f, n_r = counts["n_frame_stars"], counts["n_reference_stars"]
    if n_f < 3 or n_r < 3:
        return None, [f"too few stars ({n_f} in frame, {n_r} in reference)"]
    reasons = []
    # The expected case first: a small rotation and no change of scale (the same camera, a drift).
    attempt, why = _star_fit(frame_stars, reference_stars, shape, center, opts, weighted=opts.weighted,
                             max_offset=opts.max_offset, max_rotation_deg=opts.max_rotation_deg,
                             max_scale_change=NARROW_SCALE_CHANGE)
    if attempt is not None:
        return _fitted("stars", attempt, "", counts), []
    reasons.append(f"star matching failed: {why}")
    # Then any rotation and scale, anywhere the frames overlap.
    wide = dict(WIDE_SEARCH, max_offset=float(max(shape)))
    attempt, why = _star_fit(frame_stars, reference_stars, shape, center, opts, weighted=opts.weighted, **wide)
    if attempt is not None:
        return _fitted("stars", attempt, f"{reasons[0]}; matched at any rotation and scale", counts), []
    reasons.append(f"at any rotation and scale: {why}")
    # At another scale most of one list may lie outside the other frame, so its brightest stars
    # are mostly not there: try that list's stars in one part of its frame at a time.
    attempt, part = _match_in_parts(frame_stars, reference_stars, shape, center, opts, wide)
    if attempt is not None:
        return _fitted("stars", attempt, f"{reasons[0]}; matched at any rotation and scale on the {part}",
                       counts), []
    # A mirrored frame (a parity flip) matches only once flipped: say so rather than fit it.
    attempt, _ = _star_fit(_mirrored(frame_stars, center[0]), reference_stars, shape, center, opts, weighted=False,
                           **wide)
    if attempt is not None:
        t = attempt.fit.transform
        return RegistrationResult(ok=False, reason=f"mirrored: the frame is a parity flip of the reference (flipped "
                                  f"in x, it matches at rotation {t.rotation_deg:.2f} deg, scale {t.scale:.4f}: "
                                  f"{attempt.verification.describe()}); not fitted", **counts), []
    return None, reasons


def _register_by_faint_stars(frame, ref_img, frame_stars, reference_stars, mask, shape, center,
                             opts: RegistrationOptions, reasons: list[str], counts: dict):
    """Faint frames: stars a person would still see, found with a matched filter below the usual threshold
    once the sensor's pattern (columns, rows, hot pixels) is taken out.  ``(result, "")`` or ``(None, why)``."""
    from obsdb.imaging.faint import FAINT_NSIGMA, detect_faint_stars, typical_fwhm

    fwhm = typical_fwhm(reference_stars, frame_stars)
    faint_f = detect_faint_stars(frame, fwhm=fwhm, mask=mask)
    faint_r = detect_faint_stars(ref_img, fwhm=fwhm, mask=mask)
    attempt, why = (None, "too few") if min(len(faint_f), len(faint_r)) < 3 else _star_fit(
        faint_f, faint_r, shape, center, opts, weighted=False, max_offset=opts.max_offset,
        max_rotation_deg=opts.max_rotation_deg, max_scale_change=NARROW_SCALE_CHANGE)
    if attempt is not None:
        reason = "; ".join(reasons) + (f"; matched faint stars (matched filter at FWHM {fwhm:.1f} px, "
                                       f"{FAINT_NSIGMA:g} sigma)")
        return _fitted("faint-stars", attempt, reason, counts), ""
    return None, f"faint stars ({len(faint_f)} in frame, {len(faint_r)} in reference): {why}"


def _register_by_xcorr(frame, ref_img, frame_stars, reference_stars, mask, shape, center,
                       opts: RegistrationOptions, why: str, counts: dict) -> RegistrationResult:
    """The cross-correlation fallback, kept only when the stars confirm its shift."""
    from obsdb.imaging.xcorr import cross_correlation_shift

    dx, dy, quality = cross_correlation_shift(frame, ref_img, mask=mask,
                                              max_shift=min(opts.max_offset, min(shape) - 2))
    if quality < opts.min_xcorr_quality:
        return RegistrationResult(ok=False, reason=f"{why}; cross-correlation peak significance {quality:.1f} "
                                  f"< {opts.min_xcorr_quality}", quality=quality, **counts)
    # A correlation peak is only a candidate: fixed-pattern noise peaks at zero shift and a repeated
    # pattern anywhere.  It is recorded only when the stars confirm it.
    shift = Transform(dx, dy, 0.0, 1.0, *center)
    verification = verify_transform(frame_stars, reference_stars, shift, shape)
    if not verification.ok:
        return RegistrationResult(ok=False, reason=f"{why}; cross-correlation shift ({dx:+.2f}, {dy:+.2f}) px, "
                                  f"peak significance {quality:.1f}, not confirmed by the stars: "
                                  f"{verification.describe()}", quality=quality, verification=verification,
                                  **counts)
    return RegistrationResult(ok=True, method="xcorr", transform=shift, reason=f"{why}; used cross-correlation, "
                              f"confirmed by the stars ({verification.describe()})", quality=quality,
                              verification=verification, **counts)


_PARTS = {"central half": (0.25, 0.75, 0.25, 0.75), "lower left quarter": (0.0, 0.5, 0.0, 0.5),
          "lower right quarter": (0.5, 1.0, 0.0, 0.5), "upper left quarter": (0.0, 0.5, 0.5, 1.0),
          "upper right quarter": (0.5, 1.0, 0.5, 1.0)}
"""The parts of a frame tried one at a time (fractions x0, x1, y0, y1 of its width and height)."""


def _match_in_parts(frame_stars, reference_stars, shape, center, options: RegistrationOptions, search: dict):
    """:func:`_star_fit` within ``search`` with the frame's (then the reference's) stars restricted to one
    part of the frame at a time; the transform found is verified on the full lists.
    ``(_StarFit, description)`` or ``(None, "")``."""
    ny, nx = shape
    for side in ("frame", "reference"):
        stars = frame_stars if side == "frame" else reference_stars
        if len(stars) < PARTS_MIN_STARS:
            continue
        x, y = as_xy(stars).T
        for name, (x0, x1, y0, y1) in _PARTS.items():
            inside = (x >= x0 * nx) & (x < x1 * nx) & (y >= y0 * ny) & (y < y1 * ny)
            if inside.sum() < PART_MIN_STARS:
                continue
            pair = (stars[inside], reference_stars) if side == "frame" else (frame_stars, stars[inside])
            attempt, _ = _star_fit(*pair, shape, center, options, weighted=False, **search)
            if attempt is None:
                continue
            verification = verify_transform(frame_stars, reference_stars, attempt.fit.transform, shape)
            if verification.ok:
                return replace(attempt, verification=verification), f"{side}'s {name}"
    return None, ""


def _mirrored(stars, cx: float):
    """The star list flipped in x about ``cx`` (structured or plain (n, 2))."""
    out = np.array(stars, copy=True)
    if out.dtype.names is not None:
        out["x"] = 2 * cx - np.asarray(out["x"], dtype=float)
    else:
        out = out.astype(float)
        out[:, 0] = 2 * cx - out[:, 0]
    return out


def _star_fit(frame_stars, reference_stars, shape, center, options: RegistrationOptions, *, weighted: bool,
              max_offset: float, max_rotation_deg: float, max_scale_change: float):
    """Match, fit and verify within one search range: ``(_StarFit, "")`` or ``(None, why)``."""
    cx, cy = center
    min_matches, max_rms = options.min_matches, options.max_rms
    try:
        i_f, i_r, matched = match_stars(frame_stars, reference_stars, frame_flux=star_flux(frame_stars),
                                        ref_flux=star_flux(reference_stars), max_offset=max_offset,
                                        max_rotation_deg=max_rotation_deg, max_scale_change=max_scale_change,
                                        center=(cx, cy), return_transform=True)
    except MatchError as exc:
        return None, str(exc)
    good = _fit_mask(frame_stars)[i_f] & _fit_mask(reference_stars)[i_r]
    if good.sum() >= min_matches:
        i_f, i_r = i_f[good], i_r[good]
    if len(i_f) < min_matches:
        return None, f"only {len(i_f)} star matches (need {min_matches})"
    fxy, rxy = as_xy(frame_stars)[i_f], as_xy(reference_stars)[i_r]
    rotation = options.fit_rotation
    if abs(matched.scale - 1) > SCALE_CHANGE_SEEN:
        # Another binning or camera: the F-tests would start from a shift, whose residuals are the
        # field's size, and clip every pair.
        rotation = "similarity"
    elif abs(matched.rotation_deg) > 2 * max(1.0, min(max_rotation_deg, 2.0)):
        rotation = "rotation"
    fit = fit_transform(fxy, rxy, center=(cx, cy), fit_rotation=rotation)
    flux = star_flux(frame_stars)
    if weighted and flux is not None and len(i_f) >= 4 * NOISE_WEIGHT_BINS:
        w = noise_weights(fxy, rxy, fit, np.asarray(flux)[i_f])
        if w is not None:
            fit = fit_transform(fxy, rxy, center=(cx, cy), fit_rotation=rotation, weights=w)
    kept = fit.n_matched - fit.n_rejected
    if kept < min_matches:
        return None, f"only {kept} star matches after clipping (need {min_matches})"
    if not fit.residual_rms <= max_rms:
        return None, f"star fit residual rms {fit.residual_rms:.2f} px > {max_rms} px"
    verification = verify_transform(frame_stars, reference_stars, fit.transform, shape)
    if not verification.ok:
        return None, f"the fit is not confirmed by the stars: {verification.describe()}"
    return _StarFit(fit=fit, n_kept=kept, verification=verification), ""


def _fit_mask(stars) -> np.ndarray:
    """Stars good for the fit: not saturated (their centres are flat-topped)."""
    arr = np.asarray(stars)
    n = len(arr)
    if arr.dtype.names is not None and "saturated" in arr.dtype.names:
        good = ~np.asarray(arr["saturated"], dtype=bool)
        if good.sum() >= 3:
            return good
    return np.ones(n, dtype=bool)


def detect_registration_stars(data, *, saturation=None, mask=None, max_stars: int = REGISTRATION_MAX_STARS,
                              refine: bool = True):
    """Stars of a frame as :func:`register` uses them.

    Call it once for the night's reference and pass the result as
    ``reference_stars``.  Positions are refined with
    :func:`obsdb.imaging.centroid.refine_centroids` (the frame's PSF as window); stars whose
    refinement fails keep the detector's position (windowed for the
    :data:`obsdb.imaging.stars.WINDOWED_STARS` brightest, the isophotal barycentre beyond).

    Parameters
    ----------
    data : numpy.ndarray
        The image.
    saturation : float, optional
        Saturation level in ADU.
    mask : numpy.ndarray of bool, optional
        Bad pixels (True = bad).
    max_stars : int
        Keep at most this many of the brightest.
    refine : bool
        Refine the positions (see :func:`obsdb.imaging.centroid.refine_centroids`).

    Returns
    -------
    numpy.ndarray
        Structured array from :func:`obsdb.imaging.stars.detect_stars`.
    """
    from obsdb.imaging.stars import WINDOWED_STARS, detect_stars

    data = np.asarray(data)
    # Windowed centroids for the brightest only: the refinement below places the others as well.
    stars = detect_stars(data, mask=mask, saturation=saturation, max_stars=max_stars, n_refine=WINDOWED_STARS)
    return refine_registration_stars(data, stars, mask=mask) if refine else stars


def refine_registration_stars(data, stars, *, mask=None):
    """Refine detected star positions as :func:`detect_registration_stars` does.

    Ingest detects once for its quality metrics and passes the brightest
    stars here, so the stored list equals what registration would detect.

    Parameters
    ----------
    data : numpy.ndarray
        The image.
    stars : numpy.ndarray
        Detections (:func:`obsdb.imaging.stars.detect_stars`), not modified.
    mask : numpy.ndarray of bool, optional
        Bad pixels (True = bad).

    Returns
    -------
    numpy.ndarray
        A copy with refined ``x``, ``y``; a star whose refinement fails or
        moves it by :data:`REFINE_MAX_MOVE` px or more keeps its detected position.
    """
    from obsdb.imaging.centroid import frame_psf_covariance, refine_centroids

    data = np.asarray(data)
    stars = np.array(stars, copy=True)
    if len(stars):
        xr, yr = refine_centroids(data, stars["x"], stars["y"], frame_psf_covariance(stars), mask=mask)
        moved = np.hypot(xr - stars["x"], yr - stars["y"])
        ok = np.isfinite(moved) & (moved < REFINE_MAX_MOVE)
        stars["x"] = np.where(ok, xr, stars["x"])
        stars["y"] = np.where(ok, yr, stars["y"])
    return stars
