"""Neighbour searches among star positions: brute force in numpy for star lists, scipy's KD-tree beyond.

Registration compares lists of a few hundred stars.  Every distance between two such lists is a
few hundred thousand numbers, computed in about a millisecond; scipy's ``cKDTree`` answers as fast
but importing ``scipy.spatial`` (which imports ``scipy.sparse`` and ``scipy.special``) took 0.2 s,
a fifth of ``obsdb align`` as a command.  So below :data:`BRUTE_FORCE_PAIRS` distances the searches
are done here, and above it by the tree.  Both give the same answers, compared by
``tests/imaging/test_neighbours.py``: distances are computed as the tree does (``sqrt(dx*dx +
dy*dy)``), a nearest neighbour must be strictly closer than the bound and a ball holds the points at
its radius too, as the tree's.  Between two points exactly as near as each other (which star
positions measured to 1e-3 px rarely are) the lower index wins here; the tree may take either.
"""

from __future__ import annotations

import numpy as np

BRUTE_FORCE_PAIRS = 1 << 20
"""Largest number of point pairs whose distances are all computed (8 MiB of them); more go to the tree."""


def _squared_distances(queries: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``(len(queries), len(points))`` squared distances, summed x first as the KD-tree sums them."""
    return _summed_squares(queries[:, 0, None] - points[None, :, 0], queries[:, 1, None] - points[None, :, 1])


def _summed_squares(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """``dx * dx + dy * dy``, in ``dx``'s memory (both are fresh differences)."""
    dx *= dx
    dy *= dy
    dx += dy
    return dx


def _positions(values) -> np.ndarray:
    """``(n, 2)`` float positions from any array-like of them (an empty one included)."""
    return np.asarray(values, dtype=float).reshape(-1, 2)


def _small(queries: np.ndarray, points: np.ndarray) -> bool:
    return len(queries) * len(points) <= BRUTE_FORCE_PAIRS


def nearest_within(points, queries, bound: float) -> tuple[np.ndarray, np.ndarray]:
    """Each query's nearest point strictly closer than ``bound``.

    Parameters
    ----------
    points, queries : array_like
        ``(n, 2)`` and ``(m, 2)`` positions.
    bound : float
        Points at this distance or beyond are not neighbours.

    Returns
    -------
    distance : numpy.ndarray
        ``(m,)``; ``inf`` where there is none.
    index : numpy.ndarray
        ``(m,)`` indices into ``points``; ``len(points)`` where there is none
        (``cKDTree.query``'s conventions).
    """
    points, queries = _positions(points), _positions(queries)
    if not _small(queries, points):
        from scipy.spatial import cKDTree

        return cKDTree(points).query(queries, distance_upper_bound=bound)
    distance = np.full(len(queries), np.inf)
    index = np.full(len(queries), len(points), dtype=np.intp)
    if len(points) and len(queries):
        squared = _squared_distances(queries, points)
        best = np.argmin(squared, axis=1)
        closest = squared[np.arange(len(queries)), best]
        found = closest < bound * bound
        distance[found] = np.sqrt(closest[found])
        index[found] = best[found]
    return distance, index


def k_nearest(points, k: int) -> np.ndarray:
    """Indices of each point's ``k`` nearest points (itself first), nearest first.

    Parameters
    ----------
    points : array_like
        ``(n, 2)`` positions, ``n >= k``.
    k : int
        Neighbours per point, the point itself included.

    Returns
    -------
    numpy.ndarray
        ``(n, k)`` indices.
    """
    points = _positions(points)
    if not _small(points, points):
        from scipy.spatial import cKDTree

        _, index = cKDTree(points).query(points, k)
        return np.asarray(index).reshape(len(points), k)
    squared = _squared_distances(points, points)
    return np.argsort(squared, axis=1, kind="stable")[:, :k]


def pairs_within(a, b, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """All index pairs ``(i, j)`` with ``|a[i] - b[j]| <= radius``, ordered by ``i`` then ``j``.

    Parameters
    ----------
    a, b : array_like
        ``(n, 2)`` and ``(m, 2)`` positions.
    radius : float
        Largest distance of a pair (inclusive).

    Returns
    -------
    i, j : numpy.ndarray
        Indices into ``a`` and ``b``.
    """
    a, b = _positions(a), _positions(b)
    if not _small(a, b):
        from scipy.spatial import cKDTree

        neighbours = cKDTree(b).query_ball_point(a, radius, return_sorted=True)
        i = np.repeat(np.arange(len(a)), [len(js) for js in neighbours])
        j = np.fromiter((j for js in neighbours for j in js), dtype=np.intp, count=len(i))
        return i, j
    if not len(a) or not len(b):
        return np.empty(0, np.intp), np.empty(0, np.intp)
    return np.nonzero(_squared_distances(a, b) <= radius * radius)


def counts_within(points, radius: float) -> np.ndarray:
    """How many of ``points`` lie within ``radius`` of each point (itself included).

    Beyond :data:`BRUTE_FORCE_PAIRS` the points are hashed into square cells a little wider than
    ``radius`` (a neighbour is then in the same cell or one of the eight around it) and only those
    pairs are measured: the offset vote of QA compares 5,000 star-pair differences a frame, 25
    million pairs, of which the cells leave a few tens of thousands.

    Parameters
    ----------
    points : array_like
        ``(n, 2)`` positions.
    radius : float
        Largest distance counted (inclusive), positive.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` counts, as ``cKDTree.query_ball_point(points, radius, return_length=True)``.
    """
    points = _positions(points)
    n = len(points)
    limit = radius * radius
    if _small(points, points):
        return (_squared_distances(points, points) <= limit).sum(axis=1)
    # Cells a hair wider than the radius: two points within it never have cell indices two apart,
    # whatever the rounding of the divisions.
    cells = np.floor(points / (radius * (1.0 + 1e-9))).astype(np.int64)
    cells -= cells.min(axis=0) - 1
    height = int(cells[:, 1].max()) + 2
    key = cells[:, 0] * height + cells[:, 1]
    # Worked in the order of the keys: the searches' needles are then sorted too, which numpy's
    # binary search is much quicker at, and a column of three cells is one run of keys.
    order = np.argsort(key, kind="stable")
    key = key[order]
    ordered = points[order]
    counts = np.zeros(n, dtype=np.intp)
    for step_x in (-1, 0, 1):
        centre = key + step_x * height
        first = np.searchsorted(key, centre - 1, side="left")
        many = np.searchsorted(key, centre + 2, side="left") - first
        total = int(many.sum())
        if not total:
            continue
        i = np.repeat(np.arange(n), many)
        # Each point's run of candidates: its first index in the sorted keys, counted up.
        j = np.repeat(first - (np.cumsum(many) - many), many) + np.arange(total)
        squared = _summed_squares(ordered[i, 0] - ordered[j, 0], ordered[i, 1] - ordered[j, 1])
        counts += np.bincount(i[squared <= limit], minlength=n)
    found = np.empty(n, dtype=np.intp)
    found[order] = counts
    return found
