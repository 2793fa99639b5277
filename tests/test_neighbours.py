"""The numpy neighbour searches and F distribution answer exactly as scipy's."""

import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.special import fdtrc

from obsdb.imaging import neighbours as nb

rng = np.random.default_rng(0)
POINTS, QUERIES = rng.uniform(0, 2048, (400, 2)), rng.uniform(0, 2048, (500, 2))
A, B = rng.uniform(0, 1, (3000, 2)), rng.uniform(0, 1, (4000, 2))


def test_nearest_within_a_bound_is_the_kd_trees():
    d1, j1 = cKDTree(POINTS).query(QUERIES, distance_upper_bound=30)
    d2, j2 = nb.nearest(POINTS, QUERIES, upper_bound=30)
    assert np.array_equal(j1, j2) and np.array_equal(np.isinf(d1), np.isinf(d2))
    assert np.allclose(d1[np.isfinite(d1)], d2[np.isfinite(d2)])
    assert np.isinf(d1).any() and np.isfinite(d1).any()


def test_k_nearest_is_the_kd_trees():
    assert np.array_equal(cKDTree(POINTS).query(POINTS, k=7)[1], nb.k_nearest(POINTS, 7))


def test_pairs_and_counts_within_a_radius_are_the_kd_trees():
    found = cKDTree(A).sparse_distance_matrix(cKDTree(B), 0.02, output_type="ndarray")
    i, j = nb.pairs_within(A, B, 0.02)
    assert set(zip(found["i"].tolist(), found["j"].tolist())) == set(zip(i.tolist(), j.tolist())) and len(i) > 1000
    assert np.array_equal(cKDTree(A).query_ball_point(A, 0.02, return_length=True), nb.count_within(A, A, 0.02))
    pairs = {tuple(p) for p in cKDTree(A).query_pairs(0.02, output_type="ndarray").tolist()}
    assert pairs == {tuple(p) for p in nb.pairs_within_self(A, 0.02).tolist()}


@pytest.mark.parametrize("d1", [1, 2, 3, 10, 200])
@pytest.mark.parametrize("d2", [1, 6, 100, 1000])
def test_f_survival_is_fdtrc(d1, d2):
    for x in (0.001, 0.1, 1.0, 2.0, 10.0, 1000.0):
        assert nb.f_survival(d1, d2, x) == pytest.approx(fdtrc(d1, d2, x), rel=1e-10, abs=1e-300)


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
