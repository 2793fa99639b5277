"""Regions of a mask found in numpy: scipy's partition and numbering, without importing scipy."""

import subprocess
import sys

import numpy as np
from scipy import ndimage

from obsdb.imaging.regions import components, label


def test_components_are_scipys_connected_components():
    """The hook-and-jump labelling gives scipy's partition on random graphs and on the long chains a
    bad column makes; each label is its component's smallest node."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(4)
    graphs = [(2000, np.arange(1999), np.arange(1, 2000)),                  # a chain
              (2000, np.arange(1, 2000)[::-1], np.arange(1999)[::-1]),      # the same, edges reversed
              (5, np.empty(0, np.intp), np.empty(0, np.intp))]              # no edges
    for n in (10, 300, 5000):
        edges = rng.integers(0, n, (2, n // 2))
        graphs.append((n, edges[0], edges[1]))
    for n, i, j in graphs:
        count, expected = connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)), directed=False)
        found = components(n, i, j)
        _, renumbered = np.unique(found, return_inverse=True)
        assert np.array_equal(renumbered, expected) and renumbered.max() + 1 == count
        # Each label is a member labelled by itself, and no larger than any member: the smallest.
        assert np.array_equal(found[found], found) and (found <= np.arange(n)).all()


def test_labels_are_ndimages():
    """The same labels as ndimage.label, numbers included, with side and with corner connectivity,
    on sparse and dense random masks, spirals and the frame's edges."""
    rng = np.random.default_rng(9)
    masks = [rng.random((64, 80)) < density for density in (0.02, 0.2, 0.45, 0.6)]
    masks.append(np.zeros((5, 7), bool))
    masks.append(np.ones((6, 3), bool))
    spiral = np.zeros((21, 21), bool)
    spiral[1, 1:20] = spiral[1:20, 19] = spiral[19, 1:20] = spiral[3:20, 1] = spiral[3, 1:18] = True
    masks.append(spiral)
    diagonal = np.eye(12, dtype=bool) | np.fliplr(np.eye(12, dtype=bool))
    masks.append(diagonal)
    for mask in masks:
        for corners in (False, True):
            structure = np.ones((3, 3), bool) if corners else None
            expected, count = ndimage.label(mask, structure=structure)
            found, found_count = label(mask, diagonal=corners)
            assert found_count == count and np.array_equal(found, expected), (mask.shape, corners)


def test_streak_search_and_ingest_detection_import_no_scipy():
    """The streak search (ingest's only scipy user) runs on numpy alone now."""
    code = ("import sys, numpy as np\n"
            "from obsdb.imaging.streaks import find_streaks\n"
            "rng = np.random.default_rng(1)\n"
            "img = rng.normal(1000, 10, (1024, 1024)).astype(np.float32)\n"
            "img[np.arange(1024), np.arange(1024)] += 40; img[np.arange(1, 1024), np.arange(1023)] += 40\n"
            "found = find_streaks(img)\n"
            "print(len(found), round(found[0].angle_deg) if found else None)\n"
            "print(sorted(m for m in sys.modules if m.startswith('scipy')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["1 45", "[]"], out.stdout
