"""From per-frame magnitudes to a colour-magnitude diagram and a transit: pure functions on arrays.

The steps after each frame's photometry and its ensemble zero point
(:mod:`obsdb.imaging.photometry`, :mod:`obsdb.imaging.ensemble`):

- :func:`mean_magnitudes`: one magnitude per source and band from the frames it was
  measured in (weighted mean, with an error that grows when the frames disagree);
  which frames count (the accepted ones) is the caller's choice;
- :func:`colour_index`: a colour and its error;
- :func:`read_standards`: a user's standard catalogue from a CSV file (RA, Dec, magnitudes);
- :func:`match_sky` and :func:`calibrate`: a user's standard catalogue matched by sky
  position, and per band a zero point and a colour term fitted robustly, with the
  residuals and their RMS;
- :func:`fit_transit`: a box or trapezoid fitted to a light curve, giving the depth and
  the mid-time with their errors.

Rows are frames and columns are sources in every ``(n_frames, n_sources)`` array, as in
:func:`obsdb.imaging.ensemble.ensemble_zero_points`; NaN marks a source not measured in a frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from obsdb.errors import ObsdbError

MATCH_RADIUS_ARCSEC = 2.0
"""Default radius (arcsec) within which a source and a standard star are the same star:
several times a verified WCS's residual (< 0.5 arcsec), below the spacing of most fields."""

CLIP_SIGMA = 3.0
"""A standard star whose residual from the calibration fit exceeds this many robust standard
deviations (1.4826 x the median absolute deviation) is left out, and the fit repeated."""

CLIP_ITERATIONS = 10
"""At most this many fit-and-clip passes of the calibration (they settle in 2-3)."""

CLIP_FLOOR = 1e-4
"""Smallest spread (in units of the stars' errors; magnitudes with equal weights) the clipping uses."""

MIN_STANDARDS = 3
"""Fewer matched standard stars than this cannot fit a zero point and a colour term (2 parameters and a
check); a fit with fewer raises ValueError."""

MAGNITUDE_PER_FLUX = 2.5 / math.log(10.0)
"""d(mag) / d(flux / flux): 1.0857 mag per unit relative flux, the factor between a magnitude error and
the relative flux error."""


# --------------------------------------------------------------------------- mean magnitudes and colours


@dataclass
class MeanMagnitudes:
    """One magnitude per source from many frames.

    Attributes
    ----------
    mag : numpy.ndarray
        Per source: the weighted mean magnitude (NaN with no frame).
    err : numpy.ndarray
        Its error: the formal ``1/sqrt(sum w)`` times ``sqrt(chi2)`` when the frames scatter more
        than their errors say (``chi2 > 1``), so that an error is never smaller than the data show.
    n : numpy.ndarray
        Frames that measured the source.
    chi2 : numpy.ndarray
        Reduced chi-square of the frames about the mean (NaN with fewer than two).
    """

    mag: np.ndarray = field(repr=False)
    err: np.ndarray = field(repr=False)
    n: np.ndarray = field(repr=False)
    chi2: np.ndarray = field(repr=False)


def mean_magnitudes(mag, err, *, use=None) -> MeanMagnitudes:
    """Weighted mean magnitude per source over the frames (rows) that measured it.

    Parameters
    ----------
    mag, err : array_like
        ``(n_frames, n_sources)`` magnitudes (zero points already applied) and their 1-sigma
        errors; NaN where a source was not measured.
    use : array_like of bool, optional
        Per frame, whether it counts (the accepted frames); default all.

    Returns
    -------
    MeanMagnitudes

    Examples
    --------
    Two frames agree on the first star; the second star was measured once:

    >>> import numpy as np
    >>> mag = np.array([[12.00, 14.0], [12.02, np.nan]])
    >>> err = np.array([[0.01, 0.05], [0.01, np.nan]])
    >>> mean = mean_magnitudes(mag, err)
    >>> np.round(mean.mag, 3).tolist(), np.round(mean.err, 4).tolist(), mean.n.tolist()
    ([12.01, 14.0], [0.01, 0.05], [2, 1])
    """
    mag = np.atleast_2d(np.asarray(mag, dtype=float))
    err = np.atleast_2d(np.asarray(err, dtype=float))
    if mag.shape != err.shape:
        raise ValueError(f"magnitudes of shape {mag.shape} but errors of shape {err.shape}")
    seen = np.isfinite(mag) & np.isfinite(err) & (err > 0)
    if use is not None:
        use = np.asarray(use, dtype=bool)
        if use.shape != (mag.shape[0],):
            raise ValueError(f"use has {use.size} entries for {mag.shape[0]} frames")
        seen &= use[:, None]
    weight = np.where(seen, 1.0 / np.where(seen, err, 1.0) ** 2, 0.0)
    total = weight.sum(axis=0)
    n = seen.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, (weight * np.where(seen, mag, 0.0)).sum(axis=0) / total, np.nan)
        formal = np.where(n > 0, 1.0 / np.sqrt(total), np.nan)
        chi = (weight * np.where(seen, mag - mean[None, :], 0.0) ** 2).sum(axis=0)
        chi2 = np.where(n > 1, chi / np.maximum(n - 1, 1), np.nan)
    scale = np.sqrt(np.where(np.isfinite(chi2), np.maximum(chi2, 1.0), 1.0))
    return MeanMagnitudes(mean, formal * scale, n, chi2)


def colour_index(mag1, err1, mag2, err2) -> tuple[np.ndarray, np.ndarray]:
    """A colour ``mag1 - mag2`` (e.g. B - V) and its error, the two errors being independent.

    Examples
    --------
    >>> c, e = colour_index([13.0], [0.03], [12.5], [0.04])
    >>> round(float(c[0]), 3), round(float(e[0]), 3)
    (0.5, 0.05)
    """
    m1, e1 = np.asarray(mag1, dtype=float), np.asarray(err1, dtype=float)
    m2, e2 = np.asarray(mag2, dtype=float), np.asarray(err2, dtype=float)
    return m1 - m2, np.hypot(e1, e2)


# --------------------------------------------------------------------------- standard stars

RA_COLUMNS = ("ra", "raj2000", "_raj2000", "ra_icrs", "ra_deg", "radeg")
"""Names (any case) of a standard catalogue's right-ascension column: decimal degrees or h:m:s."""

DEC_COLUMNS = ("dec", "de", "dej2000", "_dej2000", "de_icrs", "dec_deg", "decdeg")
"""Names (any case) of its declination column: decimal degrees or d:m:s."""


class StandardsFileError(ObsdbError, ValueError):
    """A standard catalogue that cannot be read: the message names the file, the line and the problem."""


@dataclass
class Standards:
    """A user's standard catalogue.

    Attributes
    ----------
    ra, dec : numpy.ndarray
        Degrees.
    mag, err : dict of str to numpy.ndarray
        Per band, the magnitudes and (where the file gives them) their errors; NaN where a star has none.
    path : str
        The file read.
    """

    ra: np.ndarray = field(repr=False)
    dec: np.ndarray = field(repr=False)
    mag: dict = field(repr=False)
    err: dict = field(repr=False)
    path: str = ""

    @property
    def bands(self) -> list[str]:
        """The bands the catalogue gives magnitudes in, in the file's order."""
        return list(self.mag)


def _sexagesimal(text: str, *, hours: bool) -> float:
    """Degrees from ``"10:35:48.2"`` / ``"10 35 48.2"`` (hours when ``hours``) or a decimal number."""
    text = text.strip()
    parts = text.replace(":", " ").split()
    if len(parts) == 1:
        return float(parts[0])
    if len(parts) > 3:
        raise ValueError(text)
    sign = -1.0 if parts[0].startswith("-") else 1.0
    values = [abs(float(parts[0]))] + [float(p) for p in parts[1:]]
    degrees = sum(v / 60.0**i for i, v in enumerate(values))
    return sign * degrees * (15.0 if hours else 1.0)


def _band_columns(names: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Magnitude and error columns: ``V`` or ``Vmag`` a magnitude, ``e_V``, ``V_err``, ``e_Vmag`` or
    ``Verr`` its error."""
    magnitudes, errors = {}, {}
    for index, name in enumerate(names):
        key = name.strip()
        lower = key.lower()
        if lower in RA_COLUMNS or lower in DEC_COLUMNS or not key:
            continue
        for prefix, suffix in (("e_", ""), ("", "_err"), ("", "err"), ("", "_error")):
            if lower.startswith(prefix) and lower.endswith(suffix) and (prefix or suffix):
                band = key[len(prefix): len(key) - len(suffix)]
                band = band[:-3] if band.lower().endswith("mag") and len(band) > 3 else band
                if band:
                    errors[band] = index
                    break
        else:
            band = key[:-3] if lower.endswith("mag") and len(key) > 3 else key
            magnitudes[band] = index
    return magnitudes, {band: column for band, column in errors.items() if band in magnitudes}


def read_standards(path) -> Standards:
    """Read a standard catalogue: a CSV file with a header row naming RA, Dec and one column per band.

    RA and Dec are decimal degrees, or sexagesimal (``10:35:48.2``: hours for RA; ``-58:13:48``: degrees);
    their columns are found by name (:data:`RA_COLUMNS`, :data:`DEC_COLUMNS`, any case).  Every other
    column is a band's magnitudes (``V`` or ``Vmag``) or their errors (``e_V``, ``V_err``, ``e_Vmag``).
    An empty cell is a star without that value.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    Standards

    Raises
    ------
    StandardsFileError
        A missing or unreadable file, no RA/Dec or magnitude column, or a value that is not a number; the
        message names the file and the line.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "std.csv").write_text("RA,Dec,B,e_B,Vmag\\n10:35:48,-58:13:48,11.2,0.01,10.9\\n158.9,-58.2,,,12.5\\n")
    >>> standards = read_standards(folder / "std.csv")
    >>> standards.bands, standards.ra.round(3).tolist(), standards.mag["B"].tolist()
    (['B', 'V'], [158.95, 158.9], [11.2, nan])
    """
    import csv

    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError) as exc:
        raise StandardsFileError(f"{path}: cannot read the standard catalogue ({exc.__class__.__name__}: "
                                 f"{getattr(exc, 'strerror', None) or exc})") from None
    if not rows:
        raise StandardsFileError(f"{path}: empty: a header row (RA, Dec, magnitudes) and a star a line are needed")
    names = [name.strip() for name in rows[0]]
    lowered = [name.lower() for name in names]
    ra_column = next((lowered.index(n) for n in RA_COLUMNS if n in lowered), None)
    dec_column = next((lowered.index(n) for n in DEC_COLUMNS if n in lowered), None)
    if ra_column is None or dec_column is None:
        raise StandardsFileError(f"{path}: no {'RA' if ra_column is None else 'Dec'} column in the header "
                                 f"({', '.join(names)}); name it RA and Dec")
    magnitudes, errors = _band_columns(names)
    if not magnitudes:
        raise StandardsFileError(f"{path}: no magnitude column besides RA and Dec (e.g. B, V or Vmag)")
    ra, dec = [], []
    mag = {band: [] for band in magnitudes}
    err = {band: [] for band in errors}
    for number, row in enumerate(rows[1:], start=2):
        row = row + [""] * (len(names) - len(row))
        try:
            ra.append(_sexagesimal(row[ra_column], hours=":" in row[ra_column] or " " in row[ra_column].strip()))
            dec.append(_sexagesimal(row[dec_column], hours=False))
        except ValueError:
            raise StandardsFileError(f"{path}, line {number}: RA {row[ra_column]!r} or Dec {row[dec_column]!r} is "
                                     "not a position (decimal degrees, or 10:35:48.2 and -58:13:48)") from None
        if not (0.0 <= ra[-1] < 360.0 and -90.0 <= dec[-1] <= 90.0):
            raise StandardsFileError(f"{path}, line {number}: RA {ra[-1]:g} or Dec {dec[-1]:g} degrees is off the sky")
        for target, columns in ((mag, magnitudes), (err, errors)):
            for band, column in columns.items():
                cell = row[column].strip()
                try:
                    target[band].append(float(cell) if cell else math.nan)
                except ValueError:
                    raise StandardsFileError(f"{path}, line {number}: {names[column]} {cell!r} is not a number") \
                        from None
    return Standards(np.array(ra, dtype=float), np.array(dec, dtype=float),
                     {band: np.array(values, dtype=float) for band, values in mag.items()},
                     {band: np.array(values, dtype=float) for band, values in err.items()}, str(path))



def _unit_vectors(ra, dec) -> np.ndarray:
    ra, dec = np.radians(np.asarray(ra, dtype=float)), np.radians(np.asarray(dec, dtype=float))
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1).reshape(-1, 3)


def match_sky(ra, dec, ref_ra, ref_dec, *, radius: float = MATCH_RADIUS_ARCSEC) -> tuple[np.ndarray, np.ndarray]:
    """Match sources to catalogue stars by sky position, one to one.

    Parameters
    ----------
    ra, dec : array_like
        The sources' positions, degrees.
    ref_ra, ref_dec : array_like
        The catalogue's, degrees.
    radius : float
        Largest separation, arcsec (:data:`MATCH_RADIUS_ARCSEC`).

    Returns
    -------
    index : numpy.ndarray of int
        Per source, the matched catalogue star, or -1.  Two sources near one catalogue star: the nearer
        keeps it, the other is left unmatched rather than guessed.
    separation : numpy.ndarray
        Per source, the distance to that star in arcsec (NaN when unmatched).

    Examples
    --------
    >>> index, sep = match_sky([10.0, 10.01], [-5.0, -5.0], [10.0003, 20.0], [-5.0, 0.0])
    >>> index.tolist(), round(float(sep[0]), 2)
    ([0, -1], 1.08)
    """
    from scipy.spatial import cKDTree

    source = _unit_vectors(ra, dec)
    index = np.full(len(source), -1, dtype=int)
    separation = np.full(len(source), np.nan)
    reference = _unit_vectors(ref_ra, ref_dec)
    if not len(source) or not len(reference):
        return index, separation
    # Chord length on the unit sphere for the angular radius.
    chord = 2.0 * math.sin(math.radians(radius / 3600.0) / 2.0)
    distance, nearest = cKDTree(reference).query(source, distance_upper_bound=chord)
    found = np.flatnonzero(np.isfinite(distance))
    taken: set[int] = set()
    for i in found[np.argsort(distance[found], kind="stable")]:
        if nearest[i] in taken:
            continue
        taken.add(int(nearest[i]))
        index[i] = nearest[i]
        separation[i] = math.degrees(2.0 * math.asin(distance[i] / 2.0)) * 3600.0
    return index, separation


@dataclass
class Calibration:
    """A band's transformation ``standard = instrumental + zero_point + colour_term * colour``.

    Attributes
    ----------
    zero_point, zero_point_err : float
        Magnitudes.
    colour_term, colour_term_err : float
        Magnitudes per magnitude of instrumental colour (0 when no colour term was fitted).
    residuals : numpy.ndarray
        Per standard star given: standard minus calibrated instrumental magnitude (NaN where a star had
        no usable value).
    used : numpy.ndarray of bool
        Per standard star: kept by the clipping.
    rms : float
        RMS of the kept residuals, magnitudes.
    colour_name : str
        The colour the term multiplies (e.g. ``"b-v"``), for the record.
    """

    zero_point: float
    zero_point_err: float
    colour_term: float
    colour_term_err: float
    residuals: np.ndarray = field(repr=False)
    used: np.ndarray = field(repr=False)
    rms: float = float("nan")
    colour_name: str = ""

    def apply(self, instrumental, colour=None) -> np.ndarray:
        """Standard magnitudes of instrumental ones (``colour`` needed when a colour term was fitted)."""
        instrumental = np.asarray(instrumental, dtype=float)
        if colour is None:
            if self.colour_term:
                raise ValueError("this calibration has a colour term: give each star's instrumental colour")
            return instrumental + self.zero_point
        return instrumental + self.zero_point + self.colour_term * np.asarray(colour, dtype=float)


def fit_calibration(instrumental, standard, *, colour=None, err=None, clip: float = CLIP_SIGMA,
                    colour_name: str = "") -> Calibration:
    """Fit ``standard - instrumental = zero_point + colour_term * colour`` robustly.

    Weighted least squares, iterated: stars beyond ``clip`` robust standard deviations of the residuals
    (a variable, a blend, a wrong match) are left out and the fit repeated until none is.

    Parameters
    ----------
    instrumental, standard : array_like
        Per matched star, its (mean) instrumental and standard magnitude.
    colour : array_like, optional
        Per star, the instrumental colour the term multiplies (e.g. ``b - v``); without it only a zero
        point is fitted.
    err : array_like, optional
        Per star, the error of ``standard - instrumental``; default equal weights.
    clip : float
        Rejection threshold in robust standard deviations (:data:`CLIP_SIGMA`).
    colour_name : str
        Recorded with the result.

    Returns
    -------
    Calibration

    Raises
    ------
    ValueError
        With fewer than :data:`MIN_STANDARDS` usable stars.

    Examples
    --------
    Five stars through a zero point of 21 and a colour term of 0.05, one of them a wrong match:

    >>> import numpy as np
    >>> colour = np.array([0.0, 0.4, 0.8, 1.2, 0.6])
    >>> instrumental = np.array([-9.0, -8.0, -7.0, -6.0, -5.0])
    >>> standard = instrumental + 21.0 + 0.05 * colour
    >>> standard[4] += 0.5
    >>> cal = fit_calibration(instrumental, standard, colour=colour)
    >>> round(cal.zero_point, 3), round(cal.colour_term, 3), cal.used.tolist()
    (21.0, 0.05, [True, True, True, True, False])
    """
    from astropy.stats import mad_std

    instrumental = np.asarray(instrumental, dtype=float)
    standard = np.asarray(standard, dtype=float)
    difference = standard - instrumental
    with_colour = colour is not None
    x = np.asarray(colour, dtype=float) if with_colour else np.zeros_like(difference)
    sigma = np.ones_like(difference) if err is None else np.asarray(err, dtype=float)
    usable = np.isfinite(difference) & np.isfinite(x) & np.isfinite(sigma) & (sigma > 0)
    if usable.sum() < MIN_STANDARDS:
        raise ValueError(f"{int(usable.sum())} usable standard stars: at least {MIN_STANDARDS} are needed "
                         f"for a zero point{' and a colour term' if with_colour else ''}")
    used = usable.copy()
    params, cov = np.zeros(2), np.zeros((2, 2))
    for _ in range(CLIP_ITERATIONS):
        params, cov = _weighted_line(x[used], difference[used], sigma[used], with_colour, errors_given=err is not None)
        pull = (difference - params[0] - params[1] * x) / sigma
        centre = np.median(pull[used])
        # A floor under the spread: a fit perfect to rounding must not clip the stars that made it.
        spread = max(float(mad_std(pull[used])), CLIP_FLOOR)
        keep = usable & (np.abs(pull - centre) <= clip * spread)
        if keep.sum() < MIN_STANDARDS or np.array_equal(keep, used):
            break
        used = keep
    residual = np.where(usable, difference - params[0] - params[1] * x, np.nan)
    rms = float(np.sqrt(np.mean(residual[used] ** 2)))
    return Calibration(float(params[0]), float(math.sqrt(cov[0, 0])), float(params[1]),
                       float(math.sqrt(cov[1, 1])), residual, used, rms, colour_name)


def _weighted_line(x, y, sigma, with_slope: bool, *, errors_given: bool):
    """Weighted least-squares intercept (and slope) and their covariance: with errors given, scaled by the
    reduced chi-square when the stars scatter more than their errors; without, the scatter is the error."""
    w = 1.0 / sigma**2
    design = np.stack([np.ones_like(x), x], axis=1) if with_slope else np.ones((len(x), 1))
    a = design.T @ (design * w[:, None])
    solution = np.linalg.solve(a, design.T @ (w * y))
    cov = np.linalg.inv(a)
    dof = len(x) - design.shape[1]
    if dof > 0:
        chi2 = float(np.sum(w * (y - design @ solution) ** 2) / dof)
        cov = cov * (max(chi2, 1.0) if errors_given else chi2)
    params, full = np.zeros(2), np.zeros((2, 2))
    params[: len(solution)] = solution
    full[: len(solution), : len(solution)] = cov
    return params, full


def calibrate(ra, dec, instrumental, standard_ra, standard_dec, standard_mag, *, colour=None, err=None,
              standard_err=None, radius: float = MATCH_RADIUS_ARCSEC, colour_name: str = "") -> tuple[
                  Calibration, np.ndarray]:
    """Match sources to a standard catalogue by position and fit the band's calibration.

    Parameters
    ----------
    ra, dec : array_like
        The sources' positions (degrees), from the reference frame's WCS.
    instrumental : array_like
        The sources' mean instrumental magnitudes in the band.
    standard_ra, standard_dec, standard_mag : array_like
        The user's catalogue: positions (degrees) and magnitudes in the band (NaN where it has none).
    colour : array_like, optional
        The sources' instrumental colour for the colour term (e.g. ``b - v``).
    err, standard_err : array_like, optional
        Errors of the instrumental and the standard magnitudes, combined in quadrature for the weights.
    radius : float
        Match radius, arcsec.
    colour_name : str
        Recorded with the result.

    Returns
    -------
    calibration : Calibration
        Its ``residuals`` and ``used`` are per matched source (in source order).
    matched : numpy.ndarray of int
        The indices of the sources that were matched to a standard star.
    """
    index, _ = match_sky(ra, dec, standard_ra, standard_dec, radius=radius)
    matched = np.flatnonzero(index >= 0)
    catalogue = np.asarray(standard_mag, dtype=float)[index[matched]]
    sigma = None
    if err is not None or standard_err is not None:
        mine = np.zeros(len(matched)) if err is None else np.asarray(err, dtype=float)[matched]
        theirs = np.zeros(len(matched)) if standard_err is None else np.asarray(standard_err, dtype=float)[
            index[matched]]
        sigma = np.hypot(mine, theirs)
    fitted = fit_calibration(np.asarray(instrumental, dtype=float)[matched], catalogue,
                             colour=None if colour is None else np.asarray(colour, dtype=float)[matched],
                             err=sigma, colour_name=colour_name)
    return fitted, matched


# --------------------------------------------------------------------------- transits


@dataclass
class TransitFit:
    """A transit fitted to a light curve.

    Attributes
    ----------
    model : str
        ``"box"`` or ``"trapezoid"``.
    mid_time, mid_time_err : float
        Mid-transit, in the light curve's time unit (days: MJD or BJD_TDB), and its 1-sigma error.
    depth, depth_err : float
        Fractional flux lost at mid-transit, and its error.
    duration : float
        First to fourth contact (the box's length), days.
    ingress : float
        Each of ingress and egress (0 for a box), days.
    baseline : float
        The out-of-transit flux.
    chi2 : float
        Reduced chi-square of the fit (with the errors given; with none, 1 by construction).
    n_in_transit : int
        Points inside the box, or between second and third contact.
    """

    model: str
    mid_time: float
    mid_time_err: float
    depth: float
    depth_err: float
    duration: float
    ingress: float
    baseline: float
    chi2: float
    n_in_transit: int


def trapezoid(t, mid: float, depth: float, duration: float, ingress: float, baseline: float = 1.0) -> np.ndarray:
    """A trapezoid transit: ``baseline`` outside, ``baseline * (1 - depth)`` between second and third contact.

    Examples
    --------
    >>> trapezoid([0.0, 0.45, 0.5, 1.0], 0.5, 0.02, 0.4, 0.1).round(4).tolist()
    [1.0, 0.98, 0.98, 1.0]
    """
    t = np.asarray(t, dtype=float)
    ramp = max(float(ingress), 1e-12)
    inside = np.clip((duration / 2.0 - np.abs(t - mid)) / ramp, 0.0, 1.0)
    return baseline * (1.0 - depth * inside)


def _box_scan(t, flux, weight, durations, step):
    """chi-square of the best box at every (duration, mid-time) of a grid: rows durations, columns mid-times."""
    mids = np.arange(t.min(), t.max() + step / 2, step)
    chi2 = np.full((len(durations), len(mids)), np.inf)
    depth = np.zeros_like(chi2)
    baseline = np.zeros_like(chi2)
    total_w, total_wf = weight.sum(), (weight * flux).sum()
    for i, length in enumerate(durations):
        inside = np.abs(t[None, :] - mids[:, None]) < length / 2.0
        w_in = (inside * weight).sum(axis=1)
        wf_in = (inside * weight * flux).sum(axis=1)
        ok = (inside.sum(axis=1) >= 3) & ((~inside).sum(axis=1) >= 3)
        with np.errstate(invalid="ignore", divide="ignore"):
            level_in = wf_in / w_in
            level_out = (total_wf - wf_in) / (total_w - w_in)
        model = np.where(inside, level_in[:, None], level_out[:, None])
        value = (weight[None, :] * (flux[None, :] - model) ** 2).sum(axis=1)
        chi2[i] = np.where(ok, value, np.inf)
        depth[i] = np.where(ok, 1.0 - level_in / level_out, 0.0)
        baseline[i] = level_out
    return mids, chi2, depth, baseline


def fit_transit(t, flux, err=None, *, model: str = "trapezoid", duration: float | None = None,
                groups=None) -> TransitFit:
    """Fit a transit (one dip) to a light curve.

    A box is scanned over mid-times (a tenth of the median cadence apart) and durations (20 between
    twice the cadence and half the time span, or the one given) for a start; the trapezoid is then
    fitted by least squares (scipy), its errors from the covariance, scaled by the reduced chi-square
    when that is above 1.  The box's mid-time error is the half-width of the mid-times whose
    chi-square is within 1 of the best.

    Parameters
    ----------
    t : array_like
        Times, days (MJD or BJD_TDB: the result is in the same scale).
    flux : array_like
        Relative flux (``10**(-0.4 * differential magnitude)``); any baseline.
    err : array_like, optional
        Flux errors; default the out-of-transit scatter.
    model : {"trapezoid", "box"}
    duration : float, optional
        A known duration (days): fixed for the box, the start of the trapezoid's.
    groups : array_like, optional
        Per point, a label (the band) whose points share a baseline of their own: each group is
        divided by its median, fitted, divided again by its mean out of that transit, and fitted
        again, so that B, V and R points make one light curve.  The result's ``baseline`` is then 1.

    Returns
    -------
    TransitFit

    Raises
    ------
    ValueError
        For fewer than 10 usable points or an unknown model.

    Examples
    --------
    A 2 % transit of 0.05 d centred on 0.3, sampled every 3 minutes without noise:

    >>> import numpy as np
    >>> t = np.arange(0.0, 0.6, 3 / 1440)
    >>> flux = trapezoid(t, 0.3, 0.02, 0.05, 0.01)
    >>> fit = fit_transit(t, flux, np.full(t.size, 0.001))
    >>> round(fit.mid_time, 4), round(fit.depth, 4)
    (0.3, 0.02)
    """
    if model not in ("trapezoid", "box"):
        raise ValueError(f"unknown transit model {model!r}: 'trapezoid' or 'box'")
    t = np.asarray(t, dtype=float)
    flux = np.asarray(flux, dtype=float)
    given = err is not None
    sigma = np.asarray(err, dtype=float) if given else np.ones_like(flux)
    good = np.isfinite(t) & np.isfinite(flux) & np.isfinite(sigma) & (sigma > 0)
    if good.sum() < 10:
        raise ValueError(f"{int(good.sum())} usable points: a transit fit needs at least 10")
    if groups is not None:
        return _fit_groups(t[good], flux[good], sigma[good] if given else None, np.asarray(groups)[good],
                           model=model, duration=duration)
    t, flux, sigma = t[good], flux[good], sigma[good]
    order = np.argsort(t)
    t, flux, sigma = t[order], flux[order], sigma[order]
    cadence = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
    span = float(t[-1] - t[0])
    durations = np.array([duration]) if duration else np.linspace(2 * cadence, span / 2, 20)
    step = cadence / 10.0
    mids, chi2, depths, baselines = _box_scan(t, flux, 1.0 / sigma**2, durations, step)
    i, j = np.unravel_index(np.argmin(chi2), chi2.shape)
    best_mid, best_duration, best_depth, best_baseline = mids[j], durations[i], depths[i, j], baselines[i, j]
    if not given:
        # No errors given: the scatter outside the transit is the error of every point.
        outside = np.abs(t - best_mid) > best_duration / 2.0
        sigma = np.full_like(flux, np.std(flux[outside], ddof=1) if outside.sum() > 2 else np.std(flux))
    if model == "box":
        return _box_result(t, flux, sigma, mids, chi2[i], best_mid, best_duration, best_depth, best_baseline,
                           given)
    return _trapezoid_result(t, flux, sigma, best_mid, best_duration, best_depth, best_baseline, span)


def _fit_groups(t, flux, sigma, groups, *, model, duration) -> TransitFit:
    """:func:`fit_transit` of points whose groups (bands) have baselines of their own."""
    labels = np.unique(groups)
    scale = np.ones_like(flux)
    for label in labels:
        scale[groups == label] = np.median(flux[groups == label])
    fit = None
    for _ in range(2):
        fit = fit_transit(t, flux / scale, None if sigma is None else sigma / scale, model=model,
                          duration=duration)
        outside = np.abs(t - fit.mid_time) > fit.duration / 2.0
        for label in labels:
            mine = (groups == label) & outside
            if mine.sum() >= 2:
                scale[groups == label] = np.mean(flux[mine])
    return fit


def _box_result(t, flux, sigma, mids, chi2_row, mid, length, depth, baseline, given) -> TransitFit:
    weight = 1.0 / sigma**2
    inside = np.abs(t - mid) < length / 2.0
    model = np.where(inside, baseline * (1 - depth), baseline)
    dof = max(len(t) - 3, 1)
    reduced = float(np.sum(weight * (flux - model) ** 2) / dof)
    scale = max(reduced, 1.0)
    if not given:
        chi2_row = chi2_row / (sigma[0] ** 2)
    # Mid-times whose chi-square is within (1 x the excess scatter) of the best: the 1-sigma interval.
    close = mids[chi2_row <= chi2_row.min() + scale]
    mid_err = max((close.max() - close.min()) / 2.0, (mids[1] - mids[0]) / 2.0) if len(close) else float("nan")
    level_err = math.sqrt(scale * (1.0 / weight[inside].sum() + 1.0 / weight[~inside].sum()))
    return TransitFit("box", float(mid), float(mid_err), float(depth), float(level_err / baseline),
                      float(length), 0.0, float(baseline), reduced, int(inside.sum()))


def _trapezoid_jacobian(t, sigma, p):
    """d(residual)/d(parameters) of the trapezoid, analytic: finite differences of a function with kinks
    can miss a ramp between two samples and report a mid-time that nothing constrains."""
    mid, depth, length, fraction, base = p
    ramp = max(fraction * length / 2.0, 1e-12)
    shape = np.clip((length / 2.0 - np.abs(t - mid)) / ramp, 0.0, 1.0)
    on_ramp = (shape > 0.0) & (shape < 1.0)
    d_mid = np.where(on_ramp, np.sign(t - mid) / ramp, 0.0)
    d_length = np.where(on_ramp, 0.5 / ramp - shape * fraction / 2.0 / ramp, 0.0)
    d_fraction = np.where(on_ramp, -shape / max(fraction, 1e-12), 0.0)
    model_d = np.stack([-base * depth * d_mid, -base * shape, -base * depth * d_length,
                        -base * depth * d_fraction, 1.0 - depth * shape], axis=1)
    return -model_d / sigma[:, None]


def _trapezoid_result(t, flux, sigma, mid, length, depth, baseline, span) -> TransitFit:
    from scipy.optimize import least_squares

    def residual(p):
        mid_, depth_, length_, fraction, base = p
        return (flux - trapezoid(t, mid_, depth_, length_, fraction * length_ / 2.0, base)) / sigma

    def jacobian(p):
        return _trapezoid_jacobian(t, sigma, p)

    start = np.array([mid, max(depth, 1e-4), length, 0.4, baseline])
    lower = np.array([t[0], 0.0, 1e-6, 0.02, 0.0])
    upper = np.array([t[-1], 1.0, span, 1.0, np.inf])
    start = np.clip(start, lower + 1e-9, upper - 1e-9)
    solution = least_squares(residual, start, jac=jacobian, bounds=(lower, upper), x_scale="jac")
    p = solution.x
    dof = max(len(t) - len(p), 1)
    reduced = float(np.sum(solution.fun**2) / dof)
    # A parameter held at a bound (the ingress at its longest or shortest) is fixed there: the errors of
    # the others come from the free columns of the Jacobian.
    free = solution.active_mask == 0
    jac = jacobian(p)[:, free]
    errors = np.full(len(p), np.nan)
    try:
        cov = np.linalg.pinv(jac.T @ jac) * max(reduced, 1.0)
        errors[free] = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    except np.linalg.LinAlgError:
        pass
    mid_, depth_, length_, fraction, base = p
    if not errors[0] > 0:
        # No sample on a ramp: the mid-time is known only to within the gap the ramps fall in.
        errors[0] = _ramp_gap(t, mid_, length_) / math.sqrt(12.0)
    ingress = fraction * length_ / 2.0
    flat = np.abs(t - mid_) <= length_ / 2.0 - ingress
    return TransitFit("trapezoid", float(mid_), float(errors[0]), float(depth_), float(errors[1]),
                      float(length_), float(ingress), float(base), reduced, int(flat.sum()))


def _ramp_gap(t, mid, length) -> float:
    """The widest gap between samples around first and fourth contact (a uniform uncertainty's width)."""
    gaps = []
    for contact in (mid - length / 2.0, mid + length / 2.0):
        before, after = t[t <= contact], t[t > contact]
        if len(before) and len(after):
            gaps.append(after.min() - before.max())
    return max(gaps) if gaps else float(np.median(np.diff(t)))


def relative_flux(differential_mag) -> np.ndarray:
    """Flux relative to the light curve's median, from differential magnitudes.

    Examples
    --------
    >>> relative_flux([0.0, 0.0, 2.5]).round(3).tolist()
    [1.0, 1.0, 0.1]
    """
    mag = np.asarray(differential_mag, dtype=float)
    return 10 ** (-0.4 * (mag - np.nanmedian(mag)))
