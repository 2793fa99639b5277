"""Neighbour searches on scipy's KD-tree: the pointing groups they make are scipy's connected components."""

import numpy as np
from scipy.spatial import cKDTree

rng = np.random.default_rng(0)


def test_pointing_groups_are_scipys_connected_components():
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from obsdb.pipeline.groups import cluster_offsets

    points = np.vstack([rng.normal(c, 3, (20, 2)) for c in ((0, 0), (100, 0), (0, 100), (300, 300), (320, 300))])
    rng.shuffle(points)
    pairs = cKDTree(points).query_pairs(20, output_type="ndarray")
    n = len(points)
    _, labels = connected_components(coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n)),
                                     directed=False)
    order = {}
    expected = np.array([order.setdefault(label, len(order)) for label in labels])
    assert np.array_equal(cluster_offsets(points, 20), expected) and expected.max() + 1 == 4
