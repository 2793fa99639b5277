"""Connected regions of a mask, in numpy: the partition and numbering of scipy's, without importing scipy.

Render labels the masked pixels it fills and the streak search the groups of bright blocks it
judges.  scipy's ``ndimage.label`` and ``csgraph.connected_components`` do both, but importing
``scipy.sparse`` (0.2 s) or ``scipy.ndimage`` (0.24 s) cost more than the work: ingest needs nothing
else from scipy, and render nothing else from ``scipy.sparse``.  The regions here are found from
the set pixels alone by a union-find (:func:`components`); ``tests/imaging/test_regions.py``
compares the labels with ``ndimage.label`` and the components with ``connected_components``.
"""

from __future__ import annotations

import numpy as np


def components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected components of the graph on ``n`` nodes with edges ``(i[k], j[k])``.

    Each round hooks every edge's larger root under its smaller one and then follows the pointers
    until each node points at its root, so a long chain (a bad column) takes a few rounds, not one
    per node.

    Parameters
    ----------
    n : int
        Nodes, numbered from 0.
    i, j : numpy.ndarray
        The edges' ends (undirected).

    Returns
    -------
    numpy.ndarray
        ``(n,)``: each node's label, the smallest node of its component.
    """
    parent = np.arange(n)
    while True:
        root_i, root_j = parent[i], parent[j]
        apart = root_i != root_j
        if not apart.any():
            return parent
        np.minimum.at(parent, np.maximum(root_i, root_j)[apart], np.minimum(root_i, root_j)[apart])
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand


def adjacent_pairs(flat: np.ndarray, shape: tuple[int, int], *, diagonal: bool = False
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of set pixels that touch, as positions ``(i, j)`` in ``flat``.

    Parameters
    ----------
    flat : numpy.ndarray
        The set pixels' row-major indices, sorted (``np.flatnonzero(mask)``).
    shape : (ny, nx)
        The mask's shape.
    diagonal : bool
        Pixels touching at a corner count too.

    Returns
    -------
    i, j : numpy.ndarray
        Each pair once, ``flat[j]`` one step right, down (or diagonally down) of ``flat[i]``.
    """
    ny, nx = shape
    ys, xs = np.divmod(flat, nx)
    steps = ((0, 1), (1, 0), (1, 1), (1, -1)) if diagonal else ((0, 1), (1, 0))
    first_ends, second_ends = [], []
    for dy, dx in steps:
        # Each set pixel's neighbour one step on, when it is set too (flat is sorted: a binary search).
        allowed = np.flatnonzero((ys + dy < ny) & (xs + dx >= 0) & (xs + dx < nx))
        target = flat[allowed] + dy * nx + dx
        where = np.searchsorted(flat, target)
        hit = where < flat.size
        hit[hit] = flat[where[hit]] == target[hit]
        first_ends.append(allowed[hit])
        second_ends.append(where[hit])
    return np.concatenate(first_ends), np.concatenate(second_ends)


def label(mask, *, diagonal: bool = False) -> tuple[np.ndarray, int]:
    """The connected regions of a 2-D mask, numbered as ``scipy.ndimage.label`` numbers them.

    Parameters
    ----------
    mask : array_like of bool, 2-D
        The set pixels.
    diagonal : bool
        Pixels touching at a corner are connected too (ndimage's 3 x 3 structure of ones);
        otherwise only through a side.

    Returns
    -------
    labels : numpy.ndarray of int32
        0 outside the mask; 1 ... count for the regions, in the order of each region's first pixel
        in row-major order.
    count : int
        Regions.
    """
    mask = np.asarray(mask, dtype=bool)
    flat = np.flatnonzero(mask)
    labels = np.zeros(mask.shape, dtype=np.int32)
    if not flat.size:
        return labels, 0
    i, j = adjacent_pairs(flat, mask.shape, diagonal=diagonal)
    root = components(flat.size, i, j)
    # A region's root is its first pixel in row-major order: numbering the roots in that order is ndimage's.
    is_root = root == np.arange(flat.size)
    number = np.cumsum(is_root, dtype=np.int32)
    labels.reshape(-1)[flat] = number[root]
    return labels, int(number[-1])
