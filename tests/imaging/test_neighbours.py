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


def _point_sets():
    local = np.random.default_rng(12)
    stars = local.uniform(0, 2048, (400, 2))
    yield stars, stars + local.normal(0, 1.0, stars.shape)                  # a frame and its reference
    yield stars[:37], local.uniform(0, 2048, (250, 2))
    yield np.round(local.uniform(0, 30, (200, 2))), np.round(local.uniform(0, 30, (150, 2))) + 0.5  # a grid
    yield np.empty((0, 2)), stars[:10]
    yield stars[:10], np.empty((0, 2))


def test_brute_force_searches_are_the_trees_answers(monkeypatch):
    from obsdb.imaging import neighbours

    for points, queries in _point_sets():
        tree = cKDTree(points) if len(points) else None
        for bound in (0.7, 2.0, 6.5):
            distance, index = neighbours.nearest_within(points, queries, bound)
            if tree is not None:
                expected = tree.query(queries, distance_upper_bound=bound)
                np.testing.assert_array_equal(distance, expected[0])
                # Where two points are exactly as near (the grid), either is the nearest.
                differ = np.flatnonzero(index != expected[1])
                assert np.array_equal(np.hypot(*(points[index[differ]] - queries[differ]).T),
                                      np.hypot(*(points[expected[1][differ]] - queries[differ]).T))
                assert differ.size == 0 or np.array_equal(points, np.round(points))
            else:
                assert np.isinf(distance).all() and (index == 0).all()
            i, j = neighbours.pairs_within(queries, points, bound)
            expected_pairs = [(a, b) for a, near in enumerate(tree.query_ball_point(queries, bound, return_sorted=True))
                              for b in near] if tree is not None and len(queries) else []
            assert list(zip(i.tolist(), j.tolist())) == expected_pairs
        if len(points) > 7:
            found = neighbours.k_nearest(points, 7)
            _, expected = tree.query(points, 7)
            # The same neighbours at the same distances (two points exactly as near may swap).
            assert np.array_equal(np.sort(np.hypot(*(points[found] - points[:, None]).T), axis=0),
                                  np.sort(np.hypot(*(points[expected] - points[:, None]).T), axis=0))
            assert (found[:, 0] == np.arange(len(points))).all() or len(np.unique(points, axis=0)) < len(points)
    # Above the brute-force limit the tree itself answers: the same results.
    monkeypatch.setattr(neighbours, "BRUTE_FORCE_PAIRS", 10)
    points, queries = next(_point_sets())
    tree = cKDTree(points)
    np.testing.assert_array_equal(neighbours.nearest_within(points, queries, 2.0)[1],
                                  tree.query(queries, distance_upper_bound=2.0)[1])
    np.testing.assert_array_equal(neighbours.k_nearest(points, 4), tree.query(points, 4)[1])


def _python_lines(code: str) -> list[str]:
    """What a fresh interpreter running ``code`` prints, line by line (it must succeed)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()


def test_registration_imports_no_scipy():
    """align's star matching, verification and fit need nothing from scipy (0.3 s to import)."""
    code = ("import sys, numpy as np\n"
            "from obsdb.imaging.register import register\n"
            "from obsdb.imaging.stars import STAR_DTYPE\n"
            "rng = np.random.default_rng(2)\n"
            "ref = np.zeros(300, STAR_DTYPE)\n"
            "ref['x'], ref['y'] = rng.uniform(0, 1000, (2, 300))\n"
            "ref['flux'] = rng.uniform(1e3, 1e5, 300); ref['a'] = ref['b'] = 1.5; ref['fwhm'] = 3.0\n"
            "frame = ref.copy(); frame['x'] -= 12.3; frame['y'] += 4.56\n"
            "frame['x'] += rng.normal(0, 0.02, 300); frame['y'] += rng.normal(0, 0.02, 300)\n"
            "result = register(None, None, frame_stars=frame, reference_stars=ref, shape=(1000, 1000), use_xcorr=False)\n"
            "print(result.ok, round(result.transform.dx, 2), round(result.transform.dy, 2))\n"
            "print(sorted(m for m in sys.modules if m.startswith('scipy')))\n")
    lines = _python_lines(code)
    assert lines[-1] == "[]", lines
    assert lines[0] == "True 12.3 -4.56", lines


def test_neighbour_counts_are_the_trees():
    """QA's offset vote: how many star-pair differences lie within the tolerance of each, by cells,
    as scipy's KD-tree counts them (integer positions put differences exactly at the radius)."""
    from obsdb.imaging.neighbours import BRUTE_FORCE_PAIRS, counts_within

    local = np.random.default_rng(13)
    for trial in range(12):
        a = local.uniform(0, 2048, (50, 2))
        b = np.r_[a + local.uniform(-300, 300, 2) + local.normal(0, 0.3, a.shape), local.uniform(0, 2048, (50, 2))]
        if trial % 3 == 0:
            a, b = np.round(a), np.round(b)
        if trial % 4 == 0:
            b = np.r_[b, b[:20]]                          # the same star twice
        diffs = (b[None] - a[:, None]).reshape(-1, 2)
        assert len(diffs) ** 2 > BRUTE_FORCE_PAIRS       # the cells, not the brute force
        tree = cKDTree(diffs)
        for radius in (1.0, 2.0, 5.0):
            np.testing.assert_array_equal(counts_within(diffs, radius),
                                          tree.query_ball_point(diffs, radius, return_length=True))
    small = local.uniform(0, 20, (30, 2))
    np.testing.assert_array_equal(counts_within(small, 3.0), cKDTree(small).query_ball_point(small, 3.0, return_length=True))


def test_qa_needs_no_scipy_spatial():
    """The transparency and offset vote of QA run on these searches: no scipy.spatial (0.25 s) to import."""
    code = ("import sys, numpy as np\n"
            "from obsdb.imaging.stars import transparency\n"
            "rng = np.random.default_rng(3)\n"
            "ref = np.column_stack([rng.uniform(0, 2000, (200, 2)), rng.uniform(1e3, 1e5, 200)])\n"
            "frame = ref.copy(); frame[:, :2] -= (150.25, -75.5); frame[:, 2] *= 0.5\n"
            "print(round(transparency(frame, ref), 3))\n"
            "print(sorted(m for m in sys.modules if m.startswith('scipy.spatial')))\n")
    assert _python_lines(code) == ["0.5", "[]"]
