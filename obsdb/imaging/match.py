"""Matching two star lists related by a similarity transform (shift, rotation, scale).

Similarity-invariant triangles of the brightest stars are matched in
invariant space; every matched triangle pair proposes a transform; the
proposals vote in translation; the best-supported ones are checked on the
bright stars, refined on all of them, and the winner must beat chance
(:func:`obsdb.imaging.verify.poisson_tail`) and every rival transform.
Transforms follow :mod:`obsdb.imaging.transform`.
"""

from __future__ import annotations

import math

import numpy as np

from obsdb.imaging.starlist import as_xy, brightest
from obsdb.imaging.transform import Transform
from obsdb.imaging.verify import VERIFY_MAX_CHANCE, VERIFY_MIN_MATCHES, poisson_tail

__all__ = ["ALL_TRIANGLES_UP_TO", "MatchError", "match_stars"]


class MatchError(RuntimeError):
    """The two star lists could not be matched."""


ALL_TRIANGLES_UP_TO = 30
"""Star lists up to this long are also matched with all their triangles when local ones fail."""

TRIANGLE_MIN_SIDE = 0.01
"""Shortest longest side of a triangle, as a fraction of the star lists' extent: smaller ones
carry their centroid errors into invariants and transforms."""

TRIANGLE_MIN_RATIO = 0.08
"""Smallest shortest/longest side ratio of a triangle: thinner ones have unstable invariants."""

TRIANGLE_SIDE_GAP = 0.015
"""Least difference between two sides, as a fraction of the longest, for the vertex order to be
read from the side order rather than guessed."""

INVARIANT_RADIUS = 0.02
"""Triangles match when their invariants (side ratios) lie within this of each other."""

VOTE_ROTATION_MARGIN_DEG = 0.25
"""Rotation a single triangle's proposal may exceed the search range by (its own noise)."""

VOTE_SCALE_MARGIN = 0.005
"""Scale change a single triangle's proposal may exceed the search range by (its own noise)."""

VOTE_OFFSET_MARGIN = (2.0, 0.02)
"""Translation margin of a proposal beyond ``max_offset``: pixels plus a fraction of ``max_offset``."""

VOTE_SHAPE_TOLERANCE = (1.0, 0.02)
"""Largest vertex residual of a triangle pair's similarity fit: pixels plus a fraction of the
triangle's size; a pair beyond it is not the same triangle."""

VOTE_CELL = 8.0
"""Translation cell of the vote, pixels.  Coarse, because a small triangle far from the centre
extrapolates its rotation error into the translation."""

VOTE_MAX_CELLS = 30
"""Best-supported translation cells whose transform is checked on the bright stars."""

VOTE_CHECK_RADIUS = (3.0, 0.004)
"""Radius within which a bright star counts as confirming a proposal: at least the pixels given,
or the fraction of the star lists' extent."""

VOTE_MIN_INLIERS = 4
"""Fewest bright stars that must confirm a proposal."""

MAX_RIVALS = 4
"""Rival transforms, besides the best, that all stars decide between."""

RIVAL_SUPPORT = 0.6
"""A rival needs this share of the best transform's support (and other stars) to count."""

CHANCE_TRIES = 100
"""Candidates the best transform was chosen from: chance gets that many tries at the verification."""


def _similarity_lsq(p: np.ndarray, q: np.ndarray):
    """Least-squares similarity ``q = a * (p - pm) + qm`` in complex form: ``(a, pm, qm)``."""
    z = p[:, 0] + 1j * p[:, 1]
    v = q[:, 0] + 1j * q[:, 1]
    zm, vm = z.mean(), v.mean()
    zc, vc = z - zm, v - vm
    a = (np.conj(zc) * vc).sum() / (np.abs(zc) ** 2).sum()
    return a, zm, vm


def _triangles(xy: np.ndarray, k: int) -> np.ndarray:
    """Triangles (m, 3) of indices: each star with pairs of its ``k`` nearest neighbours.

    Local triangles survive partial overlap and missing stars better than
    triangles spanning the whole field, and their number grows only linearly.
    """
    from obsdb.imaging.neighbours import k_nearest

    n = len(xy)
    if n < 3:
        return np.empty((0, 3), dtype=int)
    k = min(k, n - 1)
    nn = k_nearest(xy, k + 1)[:, 1:]             # the star itself comes first
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
    gap = TRIANGLE_SIDE_GAP * s[:, 2]
    keep = ((s[:, 2] >= min_side) & (inv[:, 1] > TRIANGLE_MIN_RATIO)
            & (s[:, 1] - s[:, 0] > gap) & (s[:, 2] - s[:, 1] > gap))
    return inv[keep], tri[keep], np.sign(cross[keep])


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
        When no transform is supported by at least :data:`VOTE_MIN_INLIERS` bright
        stars, or the best one is no better than chance or than a rival.
    """
    fxy = as_xy(frame_xy)
    rxy = as_xy(ref_xy)
    if len(fxy) < 3 or len(rxy) < 3:
        raise MatchError(f"too few stars to match ({len(fxy)} in frame, {len(rxy)} in reference)")
    if center is None:
        center = (0.5 * (fxy[:, 0].min() + fxy[:, 0].max()), 0.5 * (fxy[:, 1].min() + fxy[:, 1].max()))
    cx, cy = float(center[0]), float(center[1])

    fsel = fxy[brightest(len(fxy), frame_flux, n_bright)]
    rsel = rxy[brightest(len(rxy), ref_flux, 2 * n_bright)]
    limits = dict(max_offset=max_offset, max_rotation_deg=max_rotation_deg, max_scale_change=max_scale_change)

    best = _vote(fsel, rsel, cx, cy, n_neighbours=n_neighbours, **limits)
    if best is None and max(len(fsel), len(rsel)) <= ALL_TRIANGLES_UP_TO:
        # A field with few stars gives few local triangles: all triangles then (their number grows
        # with the cube of the stars: a second per call at 40 and 80 stars, hence the limit).
        best = _vote(fsel, rsel, cx, cy, n_neighbours=max(len(fsel), len(rsel)), **limits)
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
    mapped = transform.map_xy(fxy)
    inside = int(np.all((mapped >= lo) & (mapped <= hi), axis=1).sum())
    expected = inside * min(1.0, len(rxy) * math.pi * match_radius ** 2 / area)
    if (len(i_f) < VERIFY_MIN_MATCHES
            or CHANCE_TRIES * poisson_tail(len(i_f), expected) > VERIFY_MAX_CHANCE):
        raise MatchError(f"no match beyond chance: the best transform puts {len(i_f)} stars on reference "
                         f"stars, {expected:.2g} expected by chance")
    for other_f, _, other in refined[1:]:
        if (len(other_f) >= max(VOTE_MIN_INLIERS, RIVAL_SUPPORT * len(i_f))
                and _transforms_differ(transform, other, fxy, 2 * match_radius)):
            raise MatchError(f"ambiguous: two different transforms fit {len(i_f)} and {len(other_f)} stars")
    if return_transform:
        return i_f, i_r, transform
    return i_f, i_r


def _refine(transform, fxy, rxy, match_radius, cx, cy):
    """A triangle transform refined on all stars: wide radius first (it may be off by a few pixels at
    the far edge), then the final radius.  ``(i_frame, i_ref, transform)``, or None when it does not hold."""
    for radius in (max(4 * match_radius, 6.0), 2 * match_radius, match_radius):
        i_f, i_r = _nearest_pairs(transform.map_xy(fxy), rxy, radius)
        if len(i_f) < 3:
            return None
        transform = Transform.from_complex(*_similarity_lsq(fxy[i_f], rxy[i_r]), cx, cy)
    i_f, i_r = _nearest_pairs(transform.map_xy(fxy), rxy, match_radius)
    return (i_f, i_r, transform) if len(i_f) >= 3 else None


def _transforms_differ(one, two, fxy, tolerance) -> bool:
    """True when two transforms put some frame star more than ``tolerance`` px apart."""
    return bool(np.hypot(*(one.map_xy(fxy) - two.map_xy(fxy)).T).max() > tolerance)


def _nearest_within(points: np.ndarray, queries: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Each query's nearest point within ``radius``: ``(distance, index)``, ``(inf, len(points))`` for none."""
    from obsdb.imaging.neighbours import nearest_within

    # A neighbour must be strictly closer than the bound; the bound is nudged up by a rounding error
    # so that one exactly at ``radius`` counts, as it does elsewhere.
    return nearest_within(points, queries, np.nextafter(radius, np.inf))


def _nearest_pairs(mapped: np.ndarray, rxy: np.ndarray, radius: float):
    """One-to-one nearest neighbours within ``radius`` (closest pair wins a tie)."""
    d, j = _nearest_within(rxy, mapped, radius)
    ok = np.isfinite(d)
    i = np.nonzero(ok)[0]
    d, j = d[ok], j[ok]
    order = np.argsort(d, kind="stable")
    i, j = i[order], j[order]
    _, first = np.unique(j, return_index=True)
    first.sort()
    return i[first], j[first]


def _vote(fsel, rsel, cx, cy, *, max_offset, max_rotation_deg, max_scale_change, n_neighbours):
    """Similarity transforms from triangle matches, with their bright-star inlier counts: the best,
    then any rival supported by other stars nearly as well (None when nothing has
    :data:`VOTE_MIN_INLIERS` inliers)."""
    extent = max(np.ptp(fsel, axis=0).max(), np.ptp(rsel, axis=0).max(), 1.0)
    min_side = TRIANGLE_MIN_SIDE * extent
    inv_f, tri_f, sgn_f = _triangle_invariants(fsel, _triangles(fsel, n_neighbours), min_side)
    inv_r, tri_r, sgn_r = _triangle_invariants(rsel, _triangles(rsel, n_neighbours), min_side)
    if len(inv_f) == 0 or len(inv_r) == 0:
        return None
    from obsdb.imaging.neighbours import pairs_within

    a_i, b_i = pairs_within(inv_f, inv_r, INVARIANT_RADIUS)
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
    reach = max_offset + VOTE_OFFSET_MARGIN[0] + VOTE_OFFSET_MARGIN[1] * max_offset
    ok = ((np.abs(rot) <= max_rotation_deg + VOTE_ROTATION_MARGIN_DEG)
          & (np.abs(np.abs(a) - 1) <= max_scale_change + VOTE_SCALE_MARGIN)
          & (np.abs(t.real) <= reach) & (np.abs(t.imag) <= reach)
          & (resid <= VOTE_SHAPE_TOLERANCE[1] * size + VOTE_SHAPE_TOLERANCE[0]))
    if not ok.any():
        return None
    a, t = a[ok], t[ok]

    # Vote in translation: the right proposals pile up in one cell, wrong ones scatter.
    key = (np.round(t.real / VOTE_CELL).astype(np.int64) * 1_000_003
           + np.round(t.imag / VOTE_CELL).astype(np.int64))
    _, inv_idx, counts = np.unique(key, return_inverse=True, return_counts=True)
    score = counts[inv_idx]
    order = np.lexsort((np.arange(len(score)), -score))
    # one candidate per cell is enough to check
    _, first = np.unique(inv_idx[order], return_index=True)
    cand = order[np.sort(first)][:VOTE_MAX_CELLS]

    zf = fsel[:, 0] + 1j * fsel[:, 1]
    mapped = a[cand, None] * (zf[None, :] - c) + c + t[cand, None]      # (k, n)
    radius = max(VOTE_CHECK_RADIUS[0], VOTE_CHECK_RADIUS[1] * extent)
    d, j = _nearest_within(rsel, np.column_stack([mapped.real.ravel(), mapped.imag.ravel()]), radius)
    hit = np.isfinite(d).reshape(mapped.shape)
    j = np.where(hit, j.reshape(mapped.shape), -1)
    n_in = hit.sum(axis=1)
    k = int(np.argmax(n_in))
    if n_in[k] < VOTE_MIN_INLIERS:
        return None
    # A second transform with nearly as much support but other star pairs
    # means a repeated pattern (or fixed detector defects), not the sky.
    shared = ((j == j[k]) & hit & hit[k]).sum(axis=1)
    rival = (shared < 0.5 * n_in) & (n_in >= max(VOTE_MIN_INLIERS, RIVAL_SUPPORT * n_in[k]))
    # The best and its rivals (if any), best first: match_stars lets all the stars decide between them.
    rivals = np.flatnonzero(rival)[np.argsort(-n_in[rival], kind="stable")][:MAX_RIVALS]
    out = []
    for i in [k, *rivals.tolist()]:
        aa, tt = a[cand[i]], t[cand[i]]
        out.append((Transform(float(tt.real), float(tt.imag), math.degrees(math.atan2(aa.imag, aa.real)),
                              float(abs(aa)), cx, cy), int(n_in[i])))
    return out
