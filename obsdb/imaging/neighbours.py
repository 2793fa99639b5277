"""Nearest neighbours and the F distribution, for star lists of a few hundred, in numpy alone.

Registration and QA compare short lists (at most a few hundred stars, a few
thousand triangle invariants).  Brute force in chunks answers those queries
in milliseconds, and it keeps ``scipy.spatial`` (0.17 s to import, most of
it scipy parsing docstrings) out of every ``obsdb align`` and ``obsdb qa``.
"""

from __future__ import annotations

import math

import numpy as np

_CHUNK_ELEMENTS = 4_000_000
"""Distances computed per block (32 MB of float64)."""


def _blocks(n_queries: int, n_points: int):
    step = max(1, _CHUNK_ELEMENTS // max(n_points, 1))
    for start in range(0, n_queries, step):
        yield start, min(start + step, n_queries)


def _distances(queries: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.sqrt(((queries[:, None, :] - points[None, :, :]) ** 2).sum(axis=2))


def nearest(points, queries, *, upper_bound: float = math.inf) -> tuple[np.ndarray, np.ndarray]:
    """Each query's nearest point: ``(distance, index)``, as ``scipy.spatial.cKDTree.query`` gives them.

    A query with no point within ``upper_bound`` gets distance ``inf`` and index ``len(points)``.
    With a finite bound only the points within it are measured (see :func:`pairs_within`).
    """
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    queries = np.asarray(queries, dtype=float).reshape(-1, 2)
    dist = np.full(len(queries), np.inf)
    index = np.full(len(queries), len(points), dtype=np.intp)
    if len(points) == 0 or len(queries) == 0:
        return dist, index
    if math.isfinite(upper_bound):
        i, j = pairs_within(queries, points, upper_bound)
        if len(i):
            d = np.hypot(queries[i, 0] - points[j, 0], queries[i, 1] - points[j, 1])
            order = np.lexsort((j, d, i))            # per query: nearest first (ties: lower index)
            i, j, d = i[order], j[order], d[order]
            first = np.concatenate([[True], i[1:] != i[:-1]])
            dist[i[first]], index[i[first]] = d[first], j[first]
        return dist, index
    px, py = points[:, 0], points[:, 1]
    for start, stop in _blocks(len(queries), len(points)):
        q = queries[start:stop]
        d2 = (q[:, 0, None] - px[None, :]) ** 2 + (q[:, 1, None] - py[None, :]) ** 2
        j = np.argmin(d2, axis=1)
        dist[start:stop] = np.sqrt(d2[np.arange(len(j)), j])
        index[start:stop] = j
    return dist, index


def k_nearest(points, k: int) -> np.ndarray:
    """Indices (n, k) of each point's ``k`` nearest points, nearest first (the point itself first)."""
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    k = min(k, len(points))
    out = np.empty((len(points), k), dtype=np.intp)
    for start, stop in _blocks(len(points), len(points)):
        d = _distances(points[start:stop], points)
        part = np.argpartition(d, k - 1, axis=1)[:, :k] if k < len(points) else np.tile(
            np.arange(len(points)), (stop - start, 1))
        order = np.argsort(np.take_along_axis(d, part, axis=1), axis=1, kind="stable")
        out[start:stop] = np.take_along_axis(part, order, axis=1)
    return out


def pairs_within(a, b, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """All pairs ``(i, j)`` with ``|a[i] - b[j]| <= radius`` (sorted on the first coordinate, so only
    nearby candidates are measured)."""
    a = np.asarray(a, dtype=float).reshape(-1, 2)
    b = np.asarray(b, dtype=float).reshape(-1, 2)
    if len(a) == 0 or len(b) == 0:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    order = np.argsort(b[:, 0], kind="stable")
    bx = b[order, 0]
    lo = np.searchsorted(bx, a[:, 0] - radius, side="left")
    hi = np.searchsorted(bx, a[:, 0] + radius, side="right")
    counts = hi - lo
    total = int(counts.sum())
    if total == 0:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    i = np.repeat(np.arange(len(a)), counts)
    starts = np.repeat(lo - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    j = order[np.arange(total) + starts]
    keep = np.hypot(a[i, 0] - b[j, 0], a[i, 1] - b[j, 1]) <= radius
    return i[keep], j[keep]


def count_within(points, queries, radius: float) -> np.ndarray:
    """How many points lie within ``radius`` of each query."""
    i, _ = pairs_within(queries, points, radius)
    return np.bincount(i, minlength=len(np.asarray(queries).reshape(-1, 2)))


def pairs_within_self(points, radius: float) -> np.ndarray:
    """Pairs ``(i, j)``, ``i < j``, of points within ``radius`` of each other, as an (m, 2) array."""
    i, j = pairs_within(points, points, radius)
    keep = i < j
    return np.column_stack([i[keep], j[keep]])


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def f_survival(d1: float, d2: float, x: float) -> float:
    """P(F > x) for an F distribution with ``(d1, d2)`` degrees of freedom (``scipy.special.fdtrc``)."""
    if x <= 0.0:
        return 1.0
    return regularized_beta(d2 / 2.0, d1 / 2.0, d2 / (d2 + d1 * x))
