"""Registration of a frame onto a reference frame.

Pure functions on arrays, no database.  The pipeline is

1. stars in both frames (``stars.detect_stars``, or lists given by the caller,
   so the reference is detected once per night);
2. :func:`match_stars`: similarity-invariant triangles of the brightest stars,
   matched in invariant space (pairs within a radius); every matched triangle pair
   proposes a similarity transform, the proposals vote, the best-supported
   ones are verified against the bright-star lists, and the winner matches
   all stars within a radius;
3. :func:`fit_transform`: least squares on the matched centroids with
   iterative clipping, rotation and scale kept only when the data demand
   them (nested F-tests);
4. when stars cannot do it (too few, too few matches, bad residuals),
   :func:`cross_correlation_shift` on hot-pixel-cleaned, band-passed frames;
   a frame that neither method registers gets ``ok=False`` and a reason.

All transforms follow :mod:`obsdb.imaging.transform`: they map frame pixels
to reference pixels, ``dx = x_reference - x_frame`` for the same star, about
the frame centre ``((nx - 1) / 2, (ny - 1) / 2)``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from obsdb.imaging.neighbours import f_survival, k_nearest, nearest, pairs_within
from obsdb.imaging.transform import Transform

REGISTER_VERSION = "register-2"
"""Identifies the algorithms below; recorded with every result."""

_RAYLEIGH_MEDIAN = math.sqrt(2.0 * math.log(2.0))


class MatchError(RuntimeError):
    """The two star lists could not be matched."""


# ---------------------------------------------------------------------------
# small helpers


def _as_xy(stars) -> np.ndarray:
    """(n, 2) float array of positions from a structured array or an array."""
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


def _brightest(n_total: int, flux, n: int) -> np.ndarray:
    """Indices of the ``n`` brightest entries (the first ``n`` without fluxes)."""
    if flux is None:
        return np.arange(min(n, n_total))
    flux = np.asarray(flux, dtype=float)
    flux = np.where(np.isfinite(flux), flux, -np.inf)
    order = np.argsort(-flux, kind="stable")
    return order[: min(n, n_total)]


def _similarity_lsq(p: np.ndarray, q: np.ndarray, w=None):
    """Weighted least-squares similarity ``q = a * (p - pm) + qm`` in complex form.

    Returns the complex factor ``a`` (scale * exp(i rotation)), and the
    weighted means ``pm``, ``qm`` as complex numbers.
    """
    z = p[:, 0] + 1j * p[:, 1]
    v = q[:, 0] + 1j * q[:, 1]
    if w is None:
        w = np.ones(len(z))
    sw = w.sum()
    zm = (w * z).sum() / sw
    vm = (w * v).sum() / sw
    zc, vc = z - zm, v - vm
    a = (w * np.conj(zc) * vc).sum() / (w * np.abs(zc) ** 2).sum()
    return a, zm, vm


def _transform_from_complex(a: complex, zm: complex, vm: complex, cx: float, cy: float) -> Transform:
    """Transform about ``(cx, cy)`` from ``v = a (z - zm) + vm``."""
    c = cx + 1j * cy
    t = vm - c - a * (zm - c)
    return Transform(float(t.real), float(t.imag), math.degrees(math.atan2(a.imag, a.real)),
                     float(abs(a)), float(cx), float(cy))


def _apply(t: Transform, xy: np.ndarray) -> np.ndarray:
    xr, yr = t.apply(xy[:, 0], xy[:, 1])
    return np.column_stack([xr, yr])


# ---------------------------------------------------------------------------
# triangles


def _triangles(xy: np.ndarray, k: int) -> np.ndarray:
    """Triangles (m, 3) of indices: each star with pairs of its ``k`` nearest neighbours.

    Local triangles survive partial overlap and missing stars better than
    triangles spanning the whole field, and their number grows only linearly.
    """
    n = len(xy)
    if n < 3:
        return np.empty((0, 3), dtype=int)
    k = min(k, n - 1)
    nn = k_nearest(xy, k + 1)
    nn = nn[:, 1:]
    ii, jj = np.triu_indices(k, 1)
    tri = np.column_stack([np.repeat(np.arange(n), len(ii)), nn[:, ii].ravel(), nn[:, jj].ravel()])
    tri.sort(axis=1)
    return np.unique(tri, axis=0)


def _triangle_invariants(xy: np.ndarray, tri: np.ndarray, min_side: float):
    """Similarity invariants and canonical vertex order of triangles.

    Vertices are reordered so that vertex ``j`` is opposite the ``j``-th
    shortest side; the invariants are (middle/longest, shortest/longest)
    side ratios.  Returns (invariants (m, 2), ordered triangles (m, 3),
    orientation sign (m,)), dropping triangles that are too small, too thin
    or whose side order is ambiguous (the vertex order would be a guess).
    """
    p = xy[tri]                                   # (m, 3, 2)
    # side j is opposite vertex j
    side = np.stack([np.hypot(*(p[:, 2] - p[:, 1]).T),
                     np.hypot(*(p[:, 0] - p[:, 2]).T),
                     np.hypot(*(p[:, 1] - p[:, 0]).T)], axis=1)
    order = np.argsort(side, axis=1)
    s = np.take_along_axis(side, order, axis=1)
    tri = np.take_along_axis(tri, order, axis=1)
    inv = np.column_stack([s[:, 1] / s[:, 2], s[:, 0] / s[:, 2]])
    p = xy[tri]
    cross = ((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
             - (p[:, 1, 1] - p[:, 0, 1]) * (p[:, 2, 0] - p[:, 0, 0]))
    keep = ((s[:, 2] >= min_side) & (inv[:, 1] > 0.08)
            & (s[:, 1] - s[:, 0] > 0.015 * s[:, 2]) & (s[:, 2] - s[:, 1] > 0.015 * s[:, 2]))
    return inv[keep], tri[keep], np.sign(cross[keep])


# ---------------------------------------------------------------------------
# matching


ALL_TRIANGLES_UP_TO = 30
"""Star lists up to this long are also matched with all their triangles when local ones fail."""


def match_stars(frame_xy, ref_xy, *, frame_flux=None, ref_flux=None, max_offset: float = 500.0,
                max_rotation_deg: float = 2.0, max_scale_change: float = 0.02,
                n_bright: int = 40, n_neighbours: int = 6, match_radius: float = 2.0,
                center=None, return_transform: bool = False):
    """Match two star lists related by a similarity transform.

    Parameters
    ----------
    frame_xy, ref_xy : array_like
        (n, 2) positions (or structured arrays with ``x``, ``y``) in the frame
        and in the reference.
    frame_flux, ref_flux : array_like, optional
        Fluxes used to pick the brightest stars for the triangle search;
        without them the lists are taken to be sorted brightest first.
    max_offset : float
        Largest translation (pixels, per axis, at ``center``) to accept.
    max_rotation_deg : float
        Largest absolute rotation to accept.
    max_scale_change : float
        Largest ``|scale - 1|`` to accept.
    n_bright : int
        Stars of the frame taken for triangles; twice as many of the
        reference are used, since clouds, overlap and noise reorder the
        brightest stars.
    n_neighbours : int
        Each star forms triangles with pairs of its nearest neighbours.
    match_radius : float
        Final matching radius in pixels after the transform has been refined.
    center : (float, float), optional
        Centre of the transform; the centroid of the frame stars' bounding
        box by default.
    return_transform : bool
        Also return the similarity transform found.

    Returns
    -------
    idx_frame, idx_ref : numpy.ndarray
        Indices into ``frame_xy`` and ``ref_xy`` of the matched pairs,
        one-to-one.
    transform : Transform
        Only with ``return_transform=True``.

    Raises
    ------
    MatchError
        When no transform is supported by at least 4 bright stars.
    """
    fxy = _as_xy(frame_xy)
    rxy = _as_xy(ref_xy)
    if len(fxy) < 3 or len(rxy) < 3:
        raise MatchError(f"too few stars to match ({len(fxy)} in frame, {len(rxy)} in reference)")
    if center is None:
        center = (0.5 * (fxy[:, 0].min() + fxy[:, 0].max()), 0.5 * (fxy[:, 1].min() + fxy[:, 1].max()))
    cx, cy = float(center[0]), float(center[1])

    fb = _brightest(len(fxy), frame_flux, n_bright)
    rb = _brightest(len(rxy), ref_flux, 2 * n_bright)
    fsel, rsel = fxy[fb], rxy[rb]

    best = _vote(fsel, rsel, cx, cy, max_offset, max_rotation_deg, max_scale_change, n_neighbours)
    if best is None and max(len(fsel), len(rsel)) <= ALL_TRIANGLES_UP_TO:
        # A field with few stars gives few local triangles: all triangles then (their number grows
        # with the cube of the stars: a second per call at 40 and 80 stars, hence the limit).
        best = _vote(fsel, rsel, cx, cy, max_offset, max_rotation_deg, max_scale_change,
                     n_neighbours=max(len(fsel), len(rsel)))
    if best is None:
        raise MatchError("no consistent triangle matches")

    refined = [r for r in (_refine(t, fxy, rxy, match_radius, cx, cy) for t, _ in best) if r is not None]
    if not refined:
        raise MatchError("transform found by triangles does not hold on the full lists")
    # The bright stars may support rival transforms (few of them in a small overlap); all the stars
    # decide.  A rival that still holds as well on every star is a repeated pattern, not the sky.
    refined.sort(key=lambda r: -len(r[0]))
    i_f, i_r, transform = refined[0]
    # As many coincidences as chance gives unrelated lists are no match (the reference's bounding box
    # stands in for its frame).
    lo, hi = rxy.min(axis=0), rxy.max(axis=0)
    area = float(max(np.prod(hi - lo), 1.0))
    mapped = _apply(transform, fxy)
    inside = int(np.all((mapped >= lo) & (mapped <= hi), axis=1).sum())
    expected = inside * min(1.0, len(rxy) * math.pi * match_radius ** 2 / area)
    # The best of up to ~100 candidates: chance gets that many tries.
    if len(i_f) < VERIFY_MIN_MATCHES or 100 * _poisson_tail(len(i_f), expected) > VERIFY_MAX_CHANCE:
        raise MatchError(f"no match beyond chance: the best transform puts {len(i_f)} stars on reference "
                         f"stars, {expected:.2g} expected by chance")
    for other_f, _, other in refined[1:]:
        if len(other_f) >= max(4, 0.6 * len(i_f)) and _transforms_differ(transform, other, fxy, 2 * match_radius):
            raise MatchError(f"ambiguous: two different transforms fit {len(i_f)} and {len(other_f)} stars")
    if return_transform:
        return i_f, i_r, transform
    return i_f, i_r


def _refine(transform, fxy, rxy, match_radius, cx, cy):
    """A triangle transform refined on all stars: wide radius first (it may be off by a few pixels at
    the far edge), then the final radius.  ``(i_frame, i_ref, transform)``, or None when it does not hold."""
    for radius in (max(4 * match_radius, 6.0), 2 * match_radius, match_radius):
        i_f, i_r = _nearest_pairs(_apply(transform, fxy), rxy, radius)
        if len(i_f) < 3:
            return None
        a, zm, vm = _similarity_lsq(fxy[i_f], rxy[i_r])
        transform = _transform_from_complex(a, zm, vm, cx, cy)
    i_f, i_r = _nearest_pairs(_apply(transform, fxy), rxy, match_radius)
    return (i_f, i_r, transform) if len(i_f) >= 3 else None


def _transforms_differ(one, two, fxy, tolerance) -> bool:
    """True when two transforms put some frame star more than ``tolerance`` px apart."""
    return bool(np.hypot(*(_apply(one, fxy) - _apply(two, fxy)).T).max() > tolerance)


def _nearest_pairs(mapped: np.ndarray, rxy: np.ndarray, radius: float):
    """One-to-one nearest neighbours within ``radius`` (closest pair wins a tie)."""
    d, j = nearest(rxy, mapped, upper_bound=radius)
    ok = np.isfinite(d)
    i = np.nonzero(ok)[0]
    d, j = d[ok], j[ok]
    order = np.argsort(d, kind="stable")
    i, j = i[order], j[order]
    _, first = np.unique(j, return_index=True)
    first.sort()
    return i[first], j[first]


def _vote(fsel, rsel, cx, cy, max_offset, max_rotation_deg, max_scale_change, n_neighbours):
    """Similarity transforms from triangle matches, with their bright-star inlier counts: the best,
    then any rival supported by other stars nearly as well (None when nothing has 4 inliers)."""
    extent = max(np.ptp(fsel, axis=0).max(), np.ptp(rsel, axis=0).max(), 1.0)
    min_side = 0.01 * extent
    inv_f, tri_f, sgn_f = _triangle_invariants(fsel, _triangles(fsel, n_neighbours), min_side)
    inv_r, tri_r, sgn_r = _triangle_invariants(rsel, _triangles(rsel, n_neighbours), min_side)
    if len(inv_f) == 0 or len(inv_r) == 0:
        return None
    a_i, b_i = pairs_within(inv_f, inv_r, 0.02)
    if len(a_i) == 0:
        return None
    same = sgn_f[a_i] == sgn_r[b_i]           # no mirror images
    a_i, b_i = a_i[same], b_i[same]
    if len(a_i) == 0:
        return None

    # similarity from the three vertex pairs of every candidate, vectorised
    pf = fsel[tri_f[a_i]]
    pr = rsel[tri_r[b_i]]
    z = pf[..., 0] + 1j * pf[..., 1]
    v = pr[..., 0] + 1j * pr[..., 1]
    zm, vm = z.mean(axis=1), v.mean(axis=1)
    zc, vc = z - zm[:, None], v - vm[:, None]
    a = (np.conj(zc) * vc).sum(axis=1) / (np.abs(zc) ** 2).sum(axis=1)
    c = cx + 1j * cy
    t = vm - c - a * (zm - c)
    rot = np.degrees(np.angle(a))
    resid = np.abs(vc - a[:, None] * zc).max(axis=1)
    size = np.abs(zc).max(axis=1)
    margin = 2.0 + 0.02 * max_offset
    ok = ((np.abs(rot) <= max_rotation_deg + 0.25) & (np.abs(np.abs(a) - 1) <= max_scale_change + 0.005)
          & (np.abs(t.real) <= max_offset + margin) & (np.abs(t.imag) <= max_offset + margin)
          & (resid <= 0.02 * size + 1.0))
    if not ok.any():
        return None
    a, t = a[ok], t[ok]

    # Vote in translation: the right proposals pile up in one cell, wrong
    # ones scatter.  Cells are coarse because a small triangle far from the
    # centre extrapolates its rotation error into the translation.
    cell = 8.0
    key = np.round(t.real / cell).astype(np.int64) * 1_000_003 + np.round(t.imag / cell).astype(np.int64)
    uniq, inv_idx, counts = np.unique(key, return_inverse=True, return_counts=True)
    score = counts[inv_idx]
    order = np.lexsort((np.arange(len(score)), -score))
    # one candidate per cell is enough to verify; at most 30 cells
    _, first = np.unique(inv_idx[order], return_index=True)
    cand = order[np.sort(first)][:30]

    zf = fsel[:, 0] + 1j * fsel[:, 1]
    mapped = a[cand, None] * (zf[None, :] - c) + c + t[cand, None]      # (k, n)
    radius = max(3.0, 0.004 * extent)
    d, j = nearest(rsel, np.column_stack([mapped.real.ravel(), mapped.imag.ravel()]), upper_bound=radius)
    hit = np.isfinite(d).reshape(mapped.shape)
    j = np.where(hit, j.reshape(mapped.shape), -1)
    n_in = hit.sum(axis=1)
    k = int(np.argmax(n_in))
    if n_in[k] < 4:
        return None
    # A second transform with nearly as much support but other star pairs
    # means a repeated pattern (or fixed detector defects), not the sky.
    shared = ((j == j[k]) & hit & hit[k]).sum(axis=1)
    rival = (shared < 0.5 * n_in) & (n_in >= max(4, 0.6 * n_in[k]))
    # The best and its rivals (if any), best first: match_stars lets all the stars decide between them.
    chosen = [k] + [int(r) for r in np.flatnonzero(rival)[np.argsort(-n_in[rival], kind="stable")][:4]]
    out = []
    for i in chosen:
        aa, tt = a[cand[i]], t[cand[i]]
        out.append((Transform(float(tt.real), float(tt.imag), math.degrees(math.atan2(aa.imag, aa.real)),
                              float(abs(aa)), cx, cy), int(n_in[i])))
    return out


# ---------------------------------------------------------------------------
# verification

VERIFY_RADIUS = 2.0
"""Pixels within which a mapped frame star counts as landing on a reference star."""

VERIFY_MIN_MATCHES = 4
"""Fewest coincidences that verify a transform, however sparse the field."""

VERIFY_MAX_CHANCE = 1e-6
"""Largest probability that the coincidences a verified transform shows arose by chance."""


@dataclass
class Verification:
    """Whether the frame's stars, mapped by a transform, land on the reference's.

    Attributes
    ----------
    ok : bool
        The coincidences are too many to be chance (see :func:`verify_transform`).
    n_inside : int
        Frame stars that the transform maps inside the reference frame.
    n_reference : int
        Reference stars.
    n_matched : int
        One-to-one coincidences within ``radius``.
    expected : float
        Coincidences expected by chance at the reference's star density.
    p_chance : float
        Poisson probability of at least ``n_matched`` coincidences by chance.
    radius : float
        Coincidence radius, pixels.
    """

    ok: bool
    n_inside: int
    n_reference: int
    n_matched: int
    expected: float
    p_chance: float
    radius: float

    def describe(self) -> str:
        """``"12 of 40 frame stars on reference stars (0.003 expected by chance)"``."""
        return (f"{self.n_matched} of {self.n_inside} frame stars on reference stars within "
                f"{self.radius:g} px ({self.expected:.2g} expected by chance)")


def _poisson_tail(k: int, lam: float) -> float:
    """P(N >= k) for N ~ Poisson(lam), without scipy (summed in log space)."""
    if k <= 0:
        return 1.0
    if lam <= 0:
        return 0.0
    if k < lam:
        # Below the mean the tail is large: 1 - P(N < k).
        term, below = math.exp(-lam), 0.0
        for i in range(k):
            below += term
            term *= lam / (i + 1)
        return max(0.0, 1.0 - below)
    log_term = -lam + k * math.log(lam) - math.lgamma(k + 1)
    total, i, term = 0.0, k, math.exp(log_term)
    while term > total * 1e-17 and i < k + 10_000:
        total += term
        i += 1
        term *= lam / i
    return min(1.0, total)


def _one_to_one(mapped: np.ndarray, rxy: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Closest-first one-to-one pairs within ``radius``."""
    if len(mapped) == 0 or len(rxy) == 0:
        return np.empty(0, int), np.empty(0, int)
    i, j = pairs_within(mapped, rxy, radius)
    d = np.hypot(mapped[i, 0] - rxy[j, 0], mapped[i, 1] - rxy[j, 1])
    order = np.lexsort((j, i, d))
    i, j = i[order], j[order]
    used_i, used_j, keep = set(), set(), []
    for k, (a, b) in enumerate(zip(i.tolist(), j.tolist())):
        if a not in used_i and b not in used_j:
            used_i.add(a)
            used_j.add(b)
            keep.append(k)
    return i[keep], j[keep]


def verify_transform(frame_stars, reference_stars, transform: Transform, shape, *,
                     radius: float = VERIFY_RADIUS) -> Verification:
    """Check a transform independently of how it was found: do the frame's stars land on the reference's?

    The frame's usable stars (single hot pixels left out: they sit still on
    the detector) are mapped into the reference; those landing inside it
    should fall on reference stars.  By chance, each lands within ``radius``
    of one with probability ``n_reference * pi * radius**2 / area``, so the
    coincidences of a wrong transform are Poisson with a known mean.  The
    transform is verified when at least :data:`VERIFY_MIN_MATCHES` coincide
    and the chance of that many is below :data:`VERIFY_MAX_CHANCE`: a
    threshold set by the star density, which a random transform does not
    reach (a test throws random transforms at real star lists).

    Parameters
    ----------
    frame_stars, reference_stars : array_like
        Star lists (structured with ``x``, ``y``; ``flux`` and ``peak`` to drop hot pixels).
    transform : Transform
        Frame to reference.
    shape : (ny, nx)
        The reference's shape.
    radius : float
        Coincidence radius, pixels.

    Returns
    -------
    Verification
    """
    fxy = _as_xy(_usable(frame_stars))
    rxy = _as_xy(_usable(reference_stars))
    ny, nx = shape
    mapped = _apply(transform, fxy) if len(fxy) else np.empty((0, 2))
    inside = ((mapped[:, 0] >= -0.5) & (mapped[:, 0] <= nx - 0.5)
              & (mapped[:, 1] >= -0.5) & (mapped[:, 1] <= ny - 0.5)) if len(mapped) else np.zeros(0, bool)
    mapped = mapped[inside]
    i, _ = _one_to_one(mapped, rxy, radius)
    per_star = min(1.0, len(rxy) * math.pi * radius ** 2 / float(nx * ny))
    expected = len(mapped) * per_star
    p = _poisson_tail(len(i), expected)
    ok = len(i) >= VERIFY_MIN_MATCHES and p <= VERIFY_MAX_CHANCE
    return Verification(bool(ok), int(len(mapped)), int(len(rxy)), int(len(i)), float(expected), float(p),
                        float(radius))


# ---------------------------------------------------------------------------
# fitting


@dataclass
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
    t = _transform_from_complex(a, zm, vm, cx, cy)
    if model == "translation":
        t = Transform(t.dx, t.dy, 0.0, 1.0, cx, cy)
    elif model == "rotation":
        t = Transform(t.dx, t.dy, t.rotation_deg, 1.0, cx, cy)
    res = q - _apply(t, p)
    return t, res


_N_PARAMS = {"translation": 2, "rotation": 3, "similarity": 4}


def fit_transform(frame_xy, ref_xy, *, center, fit_rotation="auto", clip_sigma: float = 3.0,
                  weights=None, alpha: float = 1e-3, max_iter: int = 10) -> FitResult:
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
    p = _as_xy(frame_xy)
    q = _as_xy(ref_xy)
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
        r_all = np.hypot(*(q - _apply(t, p)).T) * np.sqrt(w / np.median(w[keep]))
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
    fval = max(rss_simple - rss_full, 0.0) / d1 / (rss_full / d2)
    # The F survival function (scipy.stats.f.sf(x, d1, d2)) computed here: importing scipy.special
    # or scipy.stats would cost every `obsdb align` more than its work.
    return f_survival(d1, d2, fval)


# ---------------------------------------------------------------------------
# cross-correlation


def _robust_sigma(values: np.ndarray) -> float:
    med = np.median(values)
    return float(1.4826 * np.median(np.abs(values - med)))


def _prepare_for_xcorr(image, mask, taper: int) -> np.ndarray:
    """Clean, flatten and compress an image so that stars dominate its correlation.

    Order matters: sharp single-pixel outliers (hot pixels, cosmic rays) are
    removed before anything spreads them, because fixed hot pixels coincide
    in every frame and would otherwise pin the correlation peak at (0, 0).
    """
    from scipy import ndimage

    img = np.array(image, dtype=np.float32, copy=True)
    bad = ~np.isfinite(img)
    if mask is not None:
        bad |= np.asarray(mask, dtype=bool)
    step = max(1, int(math.sqrt(img.size / 65536)))
    sample = img[::step, ::step][~bad[::step, ::step]]
    if sample.size == 0:
        return np.zeros_like(img), np.zeros_like(img)
    level = float(np.median(sample))
    img[bad] = level

    med3 = ndimage.median_filter(img, size=3, mode="nearest")
    noise = _robust_sigma((img - med3)[::step, ::step]) or 1.0
    excess = img - med3
    # A star of FWHM >= ~1.5 px keeps at least a third of its peak in the 3x3
    # median; a hot pixel or cosmic-ray hit keeps almost none of it.
    sharp = (excess > 5 * noise) & (excess > 0.75 * (img - level))
    sharp = ndimage.binary_dilation(sharp)
    img[sharp] = med3[sharp]
    bad |= sharp

    # smooth background from a coarse grid of block medians
    b = 32
    ny, nx = img.shape
    nby, nbx = max(ny // b, 1), max(nx // b, 1)
    blocks = img[: nby * b, : nbx * b].reshape(nby, b, nbx, b) if ny >= b and nx >= b else img[None, :, None, :]
    bg = np.median(blocks, axis=(1, 3)) if blocks.ndim == 4 else np.full((1, 1), level)
    bg = ndimage.median_filter(bg, size=3, mode="nearest")
    bg_full = ndimage.zoom(bg, (ny / bg.shape[0], nx / bg.shape[1]), order=1, mode="nearest", grid_mode=True)
    img -= bg_full[:ny, :nx]
    # A sensor's column and row pattern sits still on the detector and would pin the peak at zero
    # shift: each column's and row's median is taken out (stars barely move a median).
    img -= np.median(img, axis=0)[None, :]
    img -= np.median(img, axis=1)[:, None]
    sigma = _robust_sigma(img[::step, ::step]) or 1.0
    # compress: faint stars count, bright ones cannot dominate
    img = np.arcsinh(img / (3 * sigma)).astype(np.float32)
    img[bad] = 0.0
    weight = (~bad).astype(np.float32)

    if taper > 0:
        for axis, n in enumerate(img.shape):
            m = min(taper, n // 4)
            if m < 1:
                continue
            ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(m) + 0.5) / m)
            win = np.ones(n, dtype=np.float32)
            win[:m] = ramp
            win[n - m:] = ramp[::-1]
            shape = [1, 1]
            shape[axis] = n
            img *= win.reshape(shape)
            weight *= win.reshape(shape)
    return img, weight


def _subpixel(c: np.ndarray, iy: int, ix: int) -> tuple[float, float]:
    """Sub-pixel peak by a 3-point Gaussian (log-parabola) fit per axis."""
    def one(m, c0, p):
        if min(m, c0, p) > 0:
            lm, l0, lp = math.log(m), math.log(c0), math.log(p)
        else:
            lm, l0, lp = m, c0, p
        den = lm - 2 * l0 + lp
        return 0.0 if den >= 0 else float(np.clip(0.5 * (lm - lp) / den, -0.5, 0.5))

    ny, nx = c.shape
    fy = one(c[(iy - 1) % ny, ix], c[iy, ix], c[(iy + 1) % ny, ix])
    fx = one(c[iy, (ix - 1) % nx], c[iy, ix], c[iy, (ix + 1) % nx])
    return fx, fy


def cross_correlation_shift(frame, reference, *, mask=None, max_shift=None,
                            reference_mask=None, smooth_sigma: float = 1.0,
                            highpass_scale: float = 24.0, min_overlap: float = 0.2) -> tuple[float, float, float]:
    """Translation between two frames by FFT cross-correlation, without stars.

    Both frames are cleaned of sharp single-pixel outliers (hot pixels and
    cosmic rays) and of known bad pixels first, flattened (smooth background
    removed), intensity-compressed, edge-tapered and zero-padded; the
    correlation is band-passed (smoothing on the PSF scale, removing scales
    above ``highpass_scale``) and its peak located to sub-pixel precision.

    Parameters
    ----------
    frame, reference : numpy.ndarray
        2-D images of the same shape.
    mask : numpy.ndarray of bool, optional
        Known bad pixels of the detector (True = bad), applied to both
        frames unless ``reference_mask`` is given.
    max_shift : float, optional
        Largest shift searched, per axis; half the smaller dimension by
        default.  The frames are zero-padded by this much, so shifts up to
        it do not wrap around.
    reference_mask : numpy.ndarray of bool, optional
        Bad pixels of the reference if they differ from ``mask``.
    smooth_sigma : float
        Gaussian smoothing (pixels) applied to each image in the Fourier
        domain: a matched filter for faint stars.
    highpass_scale : float
        Structures larger than about this (pixels) are suppressed.
    min_overlap : float
        Shifts where the frames overlap by less than this fraction are not
        searched.

    Returns
    -------
    dx, dy : float
        Shift with the project's sign convention, ``x_reference - x_frame``.
    quality : float
        Peak significance: height of the overlap-normalised correlation
        peak above the median of the searched plane, in units of its robust
        standard deviation.  Pure noise gives about 4-6; star fields give
        tens to hundreds.  NaN shifts and quality 0 when no shift leaves
        enough overlap.
    """
    from scipy import fft as sfft

    frame = np.asarray(frame)
    reference = np.asarray(reference)
    if frame.shape != reference.shape or frame.ndim != 2:
        raise ValueError("frame and reference must be 2-D arrays of the same shape")
    ny, nx = frame.shape
    if max_shift is None:
        max_shift = min(ny, nx) // 2
    max_shift = int(min(max(1, math.ceil(max_shift)), max(ny, nx) - 2))
    taper = 16
    a, wa = _prepare_for_xcorr(frame, mask, taper)
    b, wb = _prepare_for_xcorr(reference, mask if reference_mask is None else reference_mask, taper)

    shape = (sfft.next_fast_len(ny + max_shift + 1, real=True), sfft.next_fast_len(nx + max_shift + 1, real=True))
    fa = sfft.rfft2(a, s=shape, workers=-1)
    fb = sfft.rfft2(b, s=shape, workers=-1)
    ky = sfft.fftfreq(shape[0])[:, None]
    kx = sfft.rfftfreq(shape[1])[None, :]
    k2 = (2 * np.pi) ** 2 * (kx ** 2 + ky ** 2)
    filt = np.exp(-k2 * smooth_sigma ** 2) * (1.0 - np.exp(-k2 * highpass_scale ** 2 / 2))
    # c(s) = sum_x ref(x + s) frame(x): peaks at s = x_ref - x_frame
    corr = sfft.irfft2(fb * np.conj(fa) * filt, s=shape, workers=-1)
    # Pixels overlapping at each shift: the noise of c(s) grows as its
    # square root, so c / sqrt(overlap) has one noise level everywhere and
    # large shifts with a sliver of overlap cannot win by chance.
    overlap = sfft.irfft2(sfft.rfft2(wb, s=shape, workers=-1) * np.conj(sfft.rfft2(wa, s=shape, workers=-1)),
                          s=shape, workers=-1)

    sy = min(max_shift, shape[0] // 2 - 1)
    sx = min(max_shift, shape[1] // 2 - 1)

    def centred(arr):
        # shift (0, 0) to index (sy, sx); index (i, j) is shift (i - sy, j - sx)
        return np.roll(arr, (sy, sx), axis=(0, 1))[: 2 * sy + 1, : 2 * sx + 1]

    corr = centred(corr)
    overlap = centred(overlap)
    enough = overlap >= min_overlap * min(wa.sum(), wb.sum())
    if not enough.any():
        return float("nan"), float("nan"), 0.0
    norm = np.where(enough, corr / np.sqrt(np.maximum(overlap, 1e-9)), -np.inf)
    iy, ix = np.unravel_index(int(np.argmax(norm)), norm.shape)
    sample = norm[enough]
    step = max(1, int(sample.size // 250000))
    sample = sample[::step]
    med = float(np.median(sample))
    sd = _robust_sigma(sample) or float(np.std(sample)) or 1.0
    quality = float((norm[iy, ix] - med) / sd)
    fx, fy = _peak_position(corr, iy, ix)
    return float(fx - sx), float(fy - sy), quality


def _peak_position(corr: np.ndarray, iy: int, ix: int) -> tuple[float, float]:
    """Sub-pixel position (x, y) of the correlation peak near ``(iy, ix)``.

    A compact peak gets a 3-point Gaussian fit per axis.  A trailed frame
    against an untrailed reference gives a ridge, flat along the trail,
    whose maximum wanders with the noise; its centre is then the weighted
    centroid of the part above half the peak.
    """
    from scipy import ndimage

    ny, nx = corr.shape
    h = 40
    y0, y1 = max(iy - h, 0), min(iy + h + 1, ny)
    x0, x1 = max(ix - h, 0), min(ix + h + 1, nx)
    win = corr[y0:y1, x0:x1]
    base = float(np.median(win))
    top = float(corr[iy, ix])
    above = win > base + 0.5 * (top - base)
    lab, _ = ndimage.label(above)
    comp = lab == lab[iy - y0, ix - x0]
    w = np.where(comp, win - (base + 0.5 * (top - base)), 0.0)
    yy, xx = np.nonzero(comp)
    ww = w[yy, xx]
    if not ww.sum() > 0:  # a flat surface (a flat field, pure noise): no peak to centre on
        return float(ix), float(iy)
    mx = (ww * xx).sum() / ww.sum()
    my = (ww * yy).sum() / ww.sum()
    cxx = (ww * (xx - mx) ** 2).sum() / ww.sum()
    cyy = (ww * (yy - my) ** 2).sum() / ww.sum()
    cxy = (ww * (xx - mx) * (yy - my)).sum() / ww.sum()
    ev = np.linalg.eigvalsh(np.array([[cxx, cxy], [cxy, cyy]]))
    if ev[1] > 2.0 and ev[1] > 2.0 * max(ev[0], 1e-6):
        return float(x0 + mx), float(y0 + my)
    # compact: the raw maximum may sit next to the normalised one
    j0, j1 = max(iy - 1, 0), min(iy + 2, ny)
    i0, i1 = max(ix - 1, 0), min(ix + 2, nx)
    dy, dx = np.unravel_index(int(np.argmax(corr[j0:j1, i0:i1])), (j1 - j0, i1 - i0))
    iy, ix = j0 + dy, i0 + dx
    if 0 < iy < ny - 1 and 0 < ix < nx - 1:
        fx, fy = _subpixel(corr, iy, ix)
    else:
        fx = fy = 0.0
    return float(ix + fx), float(iy + fy)


# ---------------------------------------------------------------------------
# the whole registration


@dataclass
class RegistrationResult:
    """Outcome of registering one frame onto the reference.

    Attributes
    ----------
    ok : bool
        True when a transform was measured.
    method : str or None
        ``"stars"`` or ``"xcorr"``; None when ``ok`` is False.
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
    method: str | None
    transform: Transform | None
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


def _frame_psf_covariance(stars) -> np.ndarray:
    """Typical 2x2 second-moment matrix of a frame's stars (px^2).

    All stars of a frame share the PSF, trail included, so the median over
    the bright unsaturated ones is a far better window than each faint
    star's own noisy moments.
    """
    use = np.ones(len(stars), dtype=bool)
    if "saturated" in stars.dtype.names:
        use &= ~stars["saturated"]
    use &= np.isfinite(stars["a"]) & np.isfinite(stars["b"]) & (stars["b"] > 0)
    sel = stars[use][:50]
    if len(sel) == 0:
        sel = stars[:50]
    a, b, t = (np.asarray(sel[k], dtype=float) for k in ("a", "b", "theta"))
    c, s = np.cos(t), np.sin(t)
    cxx = np.median(a ** 2 * c ** 2 + b ** 2 * s ** 2)
    cyy = np.median(a ** 2 * s ** 2 + b ** 2 * c ** 2)
    cxy = np.median((a ** 2 - b ** 2) * c * s)
    cov = np.array([[cxx, cxy], [cxy, cyy]])
    # at least a 1-px window: the centroid of an undersampled star needs its wings
    w, v = np.linalg.eigh(cov)
    return (v * np.maximum(w, 1.0)) @ v.T


def refine_centroids(data, x, y, cov, *, mask=None, n_iter: int = 8, chunk: int = 256):
    """Gaussian-windowed centroids with an elliptical window shared by the frame.

    The window has the frame's own PSF second moments ``cov`` (for trailed
    frames, the trail's): its fixed point is the centre of any symmetric
    profile, and with ``step = 2 * windowed offset`` (exact for a Gaussian
    PSF equal to the window) it converges in a few iterations even for
    trails, where a round window of the half-flux size lets the centroid
    wander along the flat top of the trail.  The background is the median of
    each stamp's border.

    Parameters
    ----------
    data : numpy.ndarray
        The image (not background-subtracted).
    x, y : numpy.ndarray
        Starting positions (0-based).
    cov : numpy.ndarray
        2x2 window covariance in px^2.
    mask : numpy.ndarray of bool, optional
        Bad pixels (True = bad), given zero weight.
    n_iter : int
        Iterations.
    chunk : int
        Stars processed at once (bounds the memory of the stamps).

    Returns
    -------
    xr, yr : numpy.ndarray
        Refined positions; NaN where the stamp leaves the frame, holds masked
        or non-finite pixels at the centre, or the iteration diverged.
    """
    img = np.asarray(data)
    ny, nx = img.shape
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    cov = np.asarray(cov, dtype=float)
    h = int(np.clip(math.ceil(3.5 * math.sqrt(np.linalg.eigvalsh(cov).max())), 4, 60))
    ci = np.linalg.inv(cov)
    offs = np.arange(-h, h + 1)
    xr = np.full(len(x), np.nan)
    yr = np.full(len(y), np.nan)
    # Bad pixels are looked up in the stamps only: a frame-sized isfinite mask cost 5 ms of a
    # 30 ms refinement on 2k frames, for the 3 % of its pixels the stamps hold.
    bad_mask = None if mask is None else np.asarray(mask, dtype=bool)
    border = np.ones((2 * h + 1, 2 * h + 1), dtype=bool)
    border[2:-2, 2:-2] = False
    for lo in range(0, len(x), chunk):
        sl = slice(lo, lo + chunk)
        ix = np.rint(x[sl]).astype(np.int64)
        iy = np.rint(y[sl]).astype(np.int64)
        inside = (ix - h >= 0) & (ix + h < nx) & (iy - h >= 0) & (iy + h < ny)
        if not inside.any():
            continue
        ix, iy = ix[inside], iy[inside]
        rows = (iy[:, None] + offs)[:, :, None]
        cols = (ix[:, None] + offs)[:, None, :]
        stamp = img[rows, cols].astype(np.float64)
        good = np.isfinite(stamp)
        if bad_mask is not None:
            good &= ~bad_mask[rows, cols]
        if good.all():
            # The same medians: nanmedian runs a Python-level median per row (7 ms for 400 stars).
            bg = np.median(stamp[:, border], axis=1)
        else:
            stamp = np.where(good, stamp, np.nan)
            bg = np.nanmedian(stamp[:, border], axis=1)
        stamp = np.where(good, stamp - bg[:, None, None], 0.0)
        u0 = offs[None, None, :].astype(float)
        v0 = offs[None, :, None].astype(float)
        cx = x[sl][inside] - ix
        cy = y[sl][inside] - iy
        ok = np.isfinite(bg)
        for _ in range(n_iter):
            u = u0 - cx[:, None, None]
            v = v0 - cy[:, None, None]
            w = np.exp(-0.5 * (ci[0, 0] * u * u + 2 * ci[0, 1] * u * v + ci[1, 1] * v * v)) * stamp
            sw = w.sum(axis=(1, 2))
            pos = sw > 0
            ok &= pos
            sw = np.where(pos, sw, 1.0)
            cx = cx + 2.0 * (w * u).sum(axis=(1, 2)) / sw
            cy = cy + 2.0 * (w * v).sum(axis=(1, 2)) / sw
            ok &= (np.abs(cx) < h / 2) & (np.abs(cy) < h / 2)
            cx = np.where(ok, cx, 0.0)
            cy = np.where(ok, cy, 0.0)
        idx = np.flatnonzero(inside) + lo
        xr[idx] = np.where(ok, ix + cx, np.nan)
        yr[idx] = np.where(ok, iy + cy, np.nan)
    return xr, yr


def detect_registration_stars(data, *, saturation=None, mask=None, max_stars: int = 400,
                              refine: bool = True):
    """Stars of a frame as :func:`register` uses them.

    Call it once for the night's reference and pass the result as
    ``reference_stars``.  Positions are refined with
    :func:`refine_centroids` (the frame's PSF as window); stars whose
    refinement fails keep the detector's windowed position.

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
        Refine the positions (see :func:`refine_centroids`).

    Returns
    -------
    numpy.ndarray
        Structured array from :func:`obsdb.imaging.stars.detect_stars`.
    """
    from obsdb.imaging.stars import detect_stars

    data = np.asarray(data)
    stars = detect_stars(data, mask=mask, saturation=saturation, max_stars=max_stars)
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
        moves it by 3 px or more keeps its detected position.
    """
    data = np.asarray(data)
    stars = np.array(stars, copy=True)
    if len(stars):
        xr, yr = refine_centroids(data, stars["x"], stars["y"], _frame_psf_covariance(stars), mask=mask)
        moved = np.hypot(xr - stars["x"], yr - stars["y"])
        ok = np.isfinite(moved) & (moved < 3.0)
        stars["x"] = np.where(ok, xr, stars["x"])
        stars["y"] = np.where(ok, yr, stars["y"])
    return stars


def _usable(stars) -> np.ndarray:
    """Drop single-pixel objects that a detector may report as (saturated) stars.

    A saturated hot pixel is fixed on the detector, so it sits at the same
    place in every frame: a handful of them among the brightest "stars"
    vote for a zero shift.  Their flux is all in the peak pixel, while even
    a saturated real star spreads several times its peak.
    """
    arr = np.asarray(stars)
    if arr.dtype.names is None or not {"peak", "flux"} <= set(arr.dtype.names) or len(arr) == 0:
        return arr
    flux = np.asarray(arr["flux"], dtype=float)
    peak = np.asarray(arr["peak"], dtype=float)
    single = (flux > 0) & (peak > 0.5 * flux)
    return arr[~single]


_WEIGHT_BINS = 4


def _noise_weights(fxy, rxy, fit: FitResult, flux):
    """Inverse-variance weights from the residuals' dependence on flux.

    Centroid noise falls steeply with flux (as 1/flux for faint stars on a
    bright sky), so the faint half of a list carries most of the scatter.
    The residual variance is measured in flux quartiles of the kept pairs
    (median squared residual, robust to the few outliers left) and
    interpolated in log flux.
    """
    res = rxy - _apply(fit.transform, fxy)
    r2 = (res ** 2).sum(axis=1)
    keep = fit.inliers & (flux > 0)
    if keep.sum() < 4 * _WEIGHT_BINS:
        return None
    lf = np.log(np.where(flux > 0, flux, np.nan))
    order = np.argsort(lf[keep])
    bins = np.array_split(order, _WEIGHT_BINS)
    centre = np.array([np.median(lf[keep][b]) for b in bins])
    var = np.array([np.median(r2[keep][b]) for b in bins]) / (2 * math.log(2))
    var = np.maximum.accumulate(var[::-1])[::-1]      # fainter is never more precise
    if not np.all(var > 0):
        return None
    v = np.interp(np.where(np.isfinite(lf), lf, centre[0]), centre, var)
    return 1.0 / v


def _flux(stars):
    arr = np.asarray(stars)
    if arr.dtype.names is not None and "flux" in arr.dtype.names:
        return np.asarray(arr["flux"], dtype=float)
    return None


def _fit_mask(stars) -> np.ndarray:
    """Stars good for the fit: not saturated (their centres are flat-topped)."""
    arr = np.asarray(stars)
    n = len(arr)
    if arr.dtype.names is not None and "saturated" in arr.dtype.names:
        good = ~np.asarray(arr["saturated"], dtype=bool)
        if good.sum() >= 3:
            return good
    return np.ones(n, dtype=bool)


def register(frame, reference, *, frame_stars=None, reference_stars=None, saturation=None,
             mask=None, max_offset: float = 500.0, max_rotation_deg: float = 2.0,
             fit_rotation="auto", min_matches: int = 6, max_rms: float = 1.0,
             min_xcorr_quality: float = 9.0, use_xcorr: bool = True,
             weighted: bool = True, shape: tuple[int, int] | None = None) -> RegistrationResult:
    """Register a frame onto the reference: stars first, cross-correlation as fallback.

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
    max_offset, max_rotation_deg : float
        Search limits for star matching.
    fit_rotation : see :func:`fit_transform`
    min_matches : int
        Fewer kept star pairs than this is a failure of the star method.
    max_rms : float
        A star fit with a larger residual RMS (pixels) is a failure.
    min_xcorr_quality : float
        Cross-correlation peaks less significant than this are not trusted.
    use_xcorr : bool
        Fall back to cross-correlation at all.
    weighted : bool
        Refit with inverse-variance weights measured from the residuals as
        a function of flux (see ``_noise_weights``).
    shape : (ny, nx), optional
        Frame shape when neither image is given (star lists from the catalog).

    Returns
    -------
    RegistrationResult
    """
    frame = None if frame is None else np.asarray(frame)
    ref_img = None if reference is None else np.asarray(reference)
    if shape is None:
        shape = frame.shape if frame is not None else (ref_img.shape if ref_img is not None else None)
    if shape is None:
        raise ValueError("need an image or the shape to know the frame size")
    cx, cy = (shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0

    try:
        if reference_stars is None:
            reference_stars = detect_registration_stars(ref_img, saturation=saturation, mask=mask)
        if frame_stars is None:
            frame_stars = detect_registration_stars(frame, saturation=saturation, mask=mask)
    except ValueError as exc:  # nothing to detect in (a blank or fully masked image)
        return RegistrationResult(False, None, None, None, 0, 0, f"no stars can be detected: {exc}", None, None)
    reference_stars = _usable(reference_stars)
    frame_stars = _usable(frame_stars)
    n_f, n_r = len(frame_stars), len(reference_stars)
    counts = dict(n_frame_stars=n_f, n_reference_stars=n_r)

    def fitted(attempt, why):
        fit, kept, verification = attempt
        return RegistrationResult(True, "stars", fit.transform, fit.residual_rms, kept, fit.n_rejected, why,
                                  fit.model, None, verification=verification, **counts)

    reasons = []
    kept = 0
    if n_f < 3 or n_r < 3:
        reasons.append(f"too few stars ({n_f} in frame, {n_r} in reference)")
    else:
        star_fit = functools.partial(_star_fit, frame_stars, reference_stars, shape, (cx, cy),
                                     fit_rotation=fit_rotation, min_matches=min_matches, max_rms=max_rms,
                                     weighted=weighted)
        # The expected case first: a small rotation and no change of scale (the same camera, a drift).
        attempt, why = star_fit(max_offset=max_offset, max_rotation_deg=max_rotation_deg, max_scale_change=0.02)
        if attempt is not None:
            return fitted(attempt, "")
        reasons.append(f"star matching failed: {why}")
        # Then any rotation (a flip, another mounting) and scale 0.5-2 (another binning or camera),
        # anywhere the frames overlap.
        wide = dict(max_offset=float(max(shape)), max_rotation_deg=180.0, max_scale_change=1.0)
        attempt, why = star_fit(**wide)
        if attempt is not None:
            return fitted(attempt, f"{reasons[0]}; matched at any rotation and scale")
        reasons.append(f"at any rotation and scale: {why}")
        # At another scale most of one list may lie outside the other frame, so its brightest stars
        # are mostly not there: try that list's stars in one part of its frame at a time.
        attempt, part = _match_in_parts(frame_stars, reference_stars, shape, (cx, cy), wide,
                                        fit_rotation=fit_rotation, min_matches=min_matches, max_rms=max_rms)
        if attempt is not None:
            return fitted(attempt, f"{reasons[0]}; matched at any rotation and scale on the {part}")
        # A mirrored frame (a parity flip) matches only once flipped: say so rather than fit it.
        flipped = _mirrored(frame_stars, cx)
        attempt, _ = _star_fit(flipped, reference_stars, shape, (cx, cy), fit_rotation=fit_rotation,
                               min_matches=min_matches, max_rms=max_rms, weighted=False, **wide)
        if attempt is not None:
            t = attempt[0].transform
            return RegistrationResult(False, None, None, None, 0, 0,
                                      f"mirrored: the frame is a parity flip of the reference (flipped in x, "
                                      f"it matches at rotation {t.rotation_deg:.2f} deg, scale {t.scale:.4f}: "
                                      f"{attempt[2].describe()}); not fitted", None, None, **counts)

    if frame is not None and ref_img is not None:
        # Faint frames: stars a person would still see, found with a matched filter below the usual
        # threshold, once the sensor's pattern (columns, rows, hot pixels) is taken out.
        fwhm = _typical_fwhm(reference_stars, frame_stars)
        faint_f = detect_faint_stars(frame, fwhm=fwhm, mask=mask)
        faint_r = detect_faint_stars(ref_img, fwhm=fwhm, mask=mask)
        attempt, why = (None, "too few") if min(len(faint_f), len(faint_r)) < 3 else _star_fit(
            faint_f, faint_r, shape, (cx, cy), fit_rotation=fit_rotation, min_matches=min_matches,
            max_rms=max_rms, weighted=False, max_offset=max_offset, max_rotation_deg=max_rotation_deg,
            max_scale_change=0.02)
        if attempt is not None:
            fit, kept_faint, verification = attempt
            return RegistrationResult(True, "faint-stars", fit.transform, fit.residual_rms, kept_faint,
                                      fit.n_rejected, "; ".join(reasons) + f"; matched faint stars (matched "
                                      f"filter at FWHM {fwhm:.1f} px, {FAINT_NSIGMA:g} sigma)", fit.model, None,
                                      verification=verification, **counts)
        reasons.append(f"faint stars ({len(faint_f)} in frame, {len(faint_r)} in reference): {why}")

    why = "; ".join(reasons)
    if not use_xcorr or frame is None or ref_img is None:
        return RegistrationResult(False, None, None, None, kept, 0, why, None, None, **counts)
    dx, dy, quality = cross_correlation_shift(frame, ref_img, mask=mask,
                                              max_shift=min(max_offset, min(shape) - 2))
    if quality < min_xcorr_quality:
        return RegistrationResult(False, None, None, None, kept, 0,
                                  f"{why}; cross-correlation peak significance {quality:.1f} "
                                  f"< {min_xcorr_quality}", None, quality, **counts)
    # A correlation peak is only a candidate: fixed-pattern noise peaks at zero shift and a repeated
    # pattern anywhere.  It is recorded only when the stars confirm it.
    shift = Transform(dx, dy, 0.0, 1.0, cx, cy)
    verification = verify_transform(frame_stars, reference_stars, shift, shape)
    if not verification.ok:
        return RegistrationResult(False, None, None, None, kept, 0,
                                  f"{why}; cross-correlation shift ({dx:+.2f}, {dy:+.2f}) px, peak "
                                  f"significance {quality:.1f}, not confirmed by the stars: "
                                  f"{verification.describe()}", None, quality, verification=verification,
                                  **counts)
    return RegistrationResult(True, "xcorr", shift, None, 0, 0, f"{why}; used cross-correlation, "
                              f"confirmed by the stars ({verification.describe()})", None, quality,
                              verification=verification, **counts)


_PARTS = {"central half": (0.25, 0.75, 0.25, 0.75), "lower left quarter": (0.0, 0.5, 0.0, 0.5),
          "lower right quarter": (0.5, 1.0, 0.0, 0.5), "upper left quarter": (0.0, 0.5, 0.5, 1.0),
          "upper right quarter": (0.5, 1.0, 0.5, 1.0)}


def _match_in_parts(frame_stars, reference_stars, shape, center, search, *, fit_rotation, min_matches, max_rms):
    """:func:`_star_fit` with the frame's (then the reference's) stars restricted to one part of the frame
    at a time; the transform found is verified on the full lists.  ``(attempt, description)`` or ``(None, "")``."""
    ny, nx = shape
    for side in ("frame", "reference"):
        stars = frame_stars if side == "frame" else reference_stars
        if len(stars) < 60:
            continue
        x, y = _as_xy(stars).T
        for name, (x0, x1, y0, y1) in _PARTS.items():
            inside = (x >= x0 * nx) & (x < x1 * nx) & (y >= y0 * ny) & (y < y1 * ny)
            if inside.sum() < 15:
                continue
            pair = (stars[inside], reference_stars) if side == "frame" else (frame_stars, stars[inside])
            attempt, _ = _star_fit(*pair, shape, center, fit_rotation=fit_rotation, min_matches=min_matches,
                                   max_rms=max_rms, weighted=False, **search)
            if attempt is None:
                continue
            verification = verify_transform(frame_stars, reference_stars, attempt[0].transform, shape)
            if verification.ok:
                return (attempt[0], attempt[1], verification), f"{side}'s {name}"
    return None, ""


FAINT_NSIGMA = 4.0
"""Threshold of :func:`detect_faint_stars`, in sigmas of the matched-filtered image."""


def _typical_fwhm(*star_lists) -> float:
    """The median FWHM of the stars at hand; 3 px unless at least 10 have a star's size (a faint
    frame's few detections are often a warm column or a blend)."""
    values = [np.asarray(stars["fwhm"], dtype=float) for stars in star_lists
              if stars is not None and len(stars) and getattr(stars, "dtype", None) is not None
              and stars.dtype.names and "fwhm" in stars.dtype.names]
    values = np.concatenate(values) if values else np.empty(0)
    values = values[np.isfinite(values) & (values > 0.8) & (values < 20.0)]
    return float(np.median(values)) if len(values) >= 10 else 3.0


def detect_faint_stars(data, *, fwhm: float = 3.0, nsigma: float = FAINT_NSIGMA, mask=None,
                       max_stars: int = 150) -> np.ndarray:
    """Stars too faint for :func:`detect_registration_stars`, for registering faint frames.

    The sensor's fixed pattern is taken out first (column and row medians,
    then :func:`obsdb.imaging.defects.sharp_defects`), the sky with a coarse
    median, and the image is smoothed with a Gaussian of the stars' FWHM (the
    matched filter for a point source); local maxima above ``nsigma`` times the
    smoothed image's robust sigma are candidates, centred to a fraction of a
    pixel on the smoothed image.  Many are noise: registration keeps only a
    transform whose coincidences chance cannot explain (:func:`verify_transform`).

    Parameters
    ----------
    data : numpy.ndarray
        The frame.
    fwhm : float
        Star FWHM, pixels.
    nsigma : float
        Threshold on the matched-filtered image.
    mask : numpy.ndarray of bool, optional
        Bad pixels.
    max_stars : int
        The brightest candidates kept.

    Returns
    -------
    numpy.ndarray
        Structured (``x``, ``y``, ``flux``, ``peak``), brightest first.
    """
    from scipy import ndimage

    from obsdb.imaging.defects import sharp_defects

    img = np.array(data, dtype=np.float64)
    bad = ~np.isfinite(img) if mask is None else (~np.isfinite(img) | np.asarray(mask, dtype=bool))
    out = np.zeros(0, dtype=[("x", "f8"), ("y", "f8"), ("flux", "f8"), ("peak", "f8")])
    if bad.all() or min(img.shape) < 16:
        return out
    img[bad] = np.nanmedian(img[~bad])
    img -= np.median(img, axis=0)[None, :]
    img -= np.median(img, axis=1)[:, None]
    bad |= sharp_defects(img, fwhm=fwhm)
    img[bad] = 0.0
    step = 4
    coarse = ndimage.median_filter(img[::step, ::step], size=9, mode="nearest")
    sky = ndimage.zoom(coarse, step, order=1)[:img.shape[0], :img.shape[1]]
    if sky.shape != img.shape:
        sky = np.pad(sky, [(0, img.shape[0] - sky.shape[0]), (0, img.shape[1] - sky.shape[1])], mode="edge")
    smooth = ndimage.gaussian_filter(img - sky, max(fwhm, 1.0) / 2.3548)
    sigma = 1.4826 * float(np.median(np.abs(smooth - np.median(smooth))))
    if not sigma > 0:
        return out
    peaks = (smooth == ndimage.maximum_filter(smooth, size=5)) & (smooth > nsigma * sigma) & ~bad
    y, x = np.nonzero(peaks)
    if len(x) == 0:
        return out
    ny, nx = img.shape
    offsets = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
    values = np.array([smooth[np.clip(y + dy, 0, ny - 1), np.clip(x + dx, 0, nx - 1)] for dy, dx in offsets])
    weights = np.clip(values - values.min(axis=0), 0.0, None) + 1e-12
    out = np.zeros(len(x), dtype=out.dtype)
    out["x"] = x + (weights * offsets[:, 1, None]).sum(axis=0) / weights.sum(axis=0)
    out["y"] = y + (weights * offsets[:, 0, None]).sum(axis=0) / weights.sum(axis=0)
    out["flux"] = smooth[y, x]
    out["peak"] = 0.2 * out["flux"]   # spread like a star: not taken for a hot pixel downstream
    return out[np.argsort(-out["flux"], kind="stable")][:max_stars]


def _mirrored(stars, cx: float):
    """The star list flipped in x about ``cx`` (structured or plain (n, 2))."""
    out = np.array(stars, copy=True)
    if out.dtype.names is not None:
        out["x"] = 2 * cx - np.asarray(out["x"], dtype=float)
    else:
        out = out.astype(float)
        out[:, 0] = 2 * cx - out[:, 0]
    return out


def _star_fit(frame_stars, reference_stars, shape, center, *, fit_rotation, min_matches, max_rms, weighted,
              max_offset, max_rotation_deg, max_scale_change):
    """Match, fit and verify within one search range: ``((fit, kept, verification), "")`` or ``(None, why)``."""
    cx, cy = center
    try:
        i_f, i_r, matched = match_stars(frame_stars, reference_stars, frame_flux=_flux(frame_stars),
                                        ref_flux=_flux(reference_stars), max_offset=max_offset,
                                        max_rotation_deg=max_rotation_deg, max_scale_change=max_scale_change,
                                        center=(cx, cy), return_transform=True)
    except MatchError as exc:
        return None, str(exc)
    good = _fit_mask(frame_stars)[i_f] & _fit_mask(reference_stars)[i_r]
    if good.sum() >= min_matches:
        i_f, i_r = i_f[good], i_r[good]
    if len(i_f) < min_matches:
        return None, f"only {len(i_f)} star matches (need {min_matches})"
    fxy, rxy = _as_xy(frame_stars)[i_f], _as_xy(reference_stars)[i_r]
    rotation = fit_rotation
    if abs(matched.scale - 1) > 0.005:
        # Another binning or camera: the F-tests would start from a shift, whose residuals are the
        # field's size, and clip every pair.
        rotation = "similarity"
    elif abs(matched.rotation_deg) > 2 * max(1.0, min(max_rotation_deg, 2.0)):
        rotation = "rotation"
    fit = fit_transform(fxy, rxy, center=(cx, cy), fit_rotation=rotation)
    flux = _flux(frame_stars)
    if weighted and flux is not None and len(i_f) >= 4 * _WEIGHT_BINS:
        w = _noise_weights(fxy, rxy, fit, np.asarray(flux)[i_f])
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
    return (fit, kept, verification), ""

