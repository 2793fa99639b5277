"""Resampling onto the reference grid: positions, flux, coverage and NaN handling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.special import erf

from obsdb.imaging.resample import INTERPOLATIONS, resample
from obsdb.imaging.transform import Transform

N = 256
BG = 100.0
SIGMA = 1.8


def star_field(xs, ys, flux=5e4, shape=(N, N), sigma=SIGMA, bg=BG):
    """Gaussian stars integrated over each pixel, so the truth is exact."""
    ny, nx = shape
    img = np.full(shape, bg)
    xe = np.arange(nx + 1) - 0.5
    ye = np.arange(ny + 1) - 0.5
    s2 = np.sqrt(2) * sigma
    for x, y in zip(xs, ys):
        px = np.diff(0.5 * erf((xe - x) / s2))
        py = np.diff(0.5 * erf((ye - y) / s2))
        img += flux * np.outer(py, px)
    return img


def moments(img, x, y, r=10):
    """Centroid, flux and rms width of the star near (x, y), background removed."""
    x0, y0 = int(round(x)), int(round(y))
    cut = img[y0 - r:y0 + r + 1, x0 - r:x0 + r + 1] - BG
    yy, xx = np.mgrid[y0 - r:y0 + r + 1, x0 - r:x0 + r + 1]
    f = cut.sum()
    mx, my = (cut * xx).sum() / f, (cut * yy).sum() / f
    width = np.sqrt((cut * ((xx - mx) ** 2 + (yy - my) ** 2)).sum() / f / 2)
    return mx, my, f, width


@pytest.fixture(scope="module")
def stars():
    # A jittered grid keeps the stars 40 px apart, so measuring boxes never overlap.
    rng = np.random.default_rng(7)
    gx, gy = np.meshgrid(np.arange(48, N - 40, 40), np.arange(48, N - 40, 40))
    return (gx.ravel() + rng.uniform(-3, 3, gx.size),
            gy.ravel() + rng.uniform(-3, 3, gy.size))


def _check_positions(aligned, xs, ys, tol_px, tol_flux, reference):
    for x, y in zip(xs, ys):
        mx, my, f, _ = moments(aligned, x, y)
        _, _, fref, _ = moments(reference, x, y)
        assert abs(mx - x) < tol_px and abs(my - y) < tol_px
        assert abs(f / fref - 1) < tol_flux


@pytest.mark.parametrize("interpolation", ["spline3", "fourier"])
def test_subpixel_shift_puts_stars_on_reference(stars, interpolation):
    xs, ys = stars
    dx, dy = 3.37, -5.81
    frame = star_field(xs - dx, ys - dy)
    reference = star_field(xs, ys)
    aligned, coverage = resample(frame, Transform(dx, dy), interpolation=interpolation)
    assert aligned.dtype == np.float32 and coverage.dtype == bool
    _check_positions(aligned, xs, ys, 0.01, 1e-3, reference)


def test_default_is_spline3(stars):
    xs, ys = stars
    frame = star_field(xs - 0.4, ys - 0.3)
    a, _ = resample(frame, Transform(0.4, 0.3))
    b, _ = resample(frame, Transform(0.4, 0.3), interpolation="spline3")
    np.testing.assert_array_equal(a, b)
    assert INTERPOLATIONS[0] == "spline3"


def test_linear_broadens_stars(stars):
    xs, ys = stars
    dx, dy = 0.5, 0.5
    frame = star_field(xs - dx, ys - dy)
    reference = star_field(xs, ys)
    lin, _ = resample(frame, Transform(dx, dy), interpolation="linear")
    spl, _ = resample(frame, Transform(dx, dy), interpolation="spline3")
    _check_positions(lin, xs, ys, 0.01, 1e-3, reference)
    x, y = xs[0], ys[0]
    w_ref = moments(reference, x, y)[3]
    assert moments(lin, x, y)[3] / w_ref - 1 > 0.01
    assert abs(moments(spl, x, y)[3] / w_ref - 1) < 0.002


def test_rotation_about_centre(stars):
    xs, ys = stars
    t = Transform(2.3, -1.7, rotation_deg=0.5, cx=N / 2, cy=N / 2)
    xf, yf = t.inverse_apply(xs, ys)
    frame = star_field(xf, yf)
    aligned, coverage = resample(frame, t)
    _check_positions(aligned, xs, ys, 0.01, 1e-3, star_field(xs, ys))
    # Covered exactly where the source point lies within the frame's pixel centres.
    yy, xx = np.mgrid[0:N, 0:N]
    sx, sy = t.inverse_apply(xx, yy)
    inside = (sx >= 0) & (sx <= N - 1) & (sy >= 0) & (sy <= N - 1)
    np.testing.assert_array_equal(coverage, inside)
    assert np.isnan(aligned[~coverage]).all() and np.isfinite(aligned[coverage]).all()


def test_nearest_integer_shift_matches_scipy_order0():
    rng = np.random.default_rng(3)
    frame = rng.normal(1000, 30, (N, N)).astype(np.float32)
    for dx, dy in [(7, -12), (-30, 4), (0, 0)]:
        aligned, coverage = resample(frame, Transform(dx, dy), interpolation="nearest")
        expected = ndimage.shift(frame, (dy, dx), order=0)
        np.testing.assert_array_equal(aligned[coverage], expected[coverage])
        assert coverage.sum() == (N - abs(dx)) * (N - abs(dy))


def test_coverage_false_and_nan_outside():
    frame = np.ones((N, N), dtype=np.float32)
    aligned, coverage = resample(frame, Transform(10.25, -20.5))
    # Source x = x_out - 10.25 must be >= 0: columns 0..10 uncovered.
    assert not coverage[:, :11].any() and coverage[:, 11:].any()
    # Source y = y_out + 20.5 must be <= N - 1: rows above N - 21.5 uncovered.
    assert not coverage[N - 21:, :].any() and coverage[: N - 21, 11:].all()
    assert np.isnan(aligned[~coverage]).all()
    np.testing.assert_allclose(aligned[coverage], 1.0, rtol=1e-6)
    assert not (aligned == -1000).any()


def test_fill_value_and_output_shape():
    frame = np.ones((64, 80))
    aligned, coverage = resample(frame, Transform(5, 5), shape=(100, 120), fill=0.0)
    assert aligned.shape == (100, 120) and coverage.shape == (100, 120)
    assert coverage.sum() == 64 * 80
    assert (aligned[~coverage] == 0).all()
    fa, fc = resample(frame, Transform(5, 5), shape=(100, 120), interpolation="fourier")
    np.testing.assert_array_equal(fc, coverage)
    np.testing.assert_allclose(fa[fc], 1.0, atol=1e-5)


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_nan_region_stays_local(stars, interpolation):
    xs, ys = stars
    frame = star_field(xs, ys)
    frame[100:104, 150:153] = np.nan
    aligned, coverage = resample(frame, Transform(0.3, -0.6), interpolation=interpolation)
    # Footprint near the hole is uncovered...
    assert not coverage[100:103, 150:153].any()
    uncovered_inside = ~coverage[1:-1, 1:-1]
    rows, cols = np.nonzero(uncovered_inside)
    assert rows.min() + 1 >= 96 and rows.max() + 1 <= 106
    assert cols.min() + 1 >= 147 and cols.max() + 1 <= 157
    # ...and everywhere else the data are finite and unaffected by the hole.
    assert np.isfinite(aligned[coverage]).all()
    clean, _ = resample(star_field(xs, ys), Transform(0.3, -0.6), interpolation=interpolation)
    far = coverage.copy()
    far[90:115, 140:165] = False
    if interpolation == "fourier":
        # A phase shift spreads the fill's mismatch weakly over the frame.
        np.testing.assert_allclose(aligned[far], clean[far], atol=0.5)
    else:
        np.testing.assert_allclose(aligned[far], clean[far], rtol=1e-5)


def test_input_not_modified(stars):
    xs, ys = stars
    frame = star_field(xs, ys).astype(np.float32)
    frame[10:12, 10:12] = np.nan
    before = frame.copy()
    for interpolation in INTERPOLATIONS:
        resample(frame, Transform(1.5, 2.5), interpolation=interpolation)
    np.testing.assert_array_equal(frame, before)


def test_all_nan_input():
    aligned, coverage = resample(np.full((32, 32), np.nan), Transform(1, 1))
    assert not coverage.any() and np.isnan(aligned).all()


def test_fourier_refuses_rotation():
    with pytest.raises(ValueError, match="translations only"):
        resample(np.ones((32, 32)), Transform(1, 1, rotation_deg=0.5), interpolation="fourier")


def test_unknown_interpolation():
    with pytest.raises(ValueError, match="unknown interpolation 'cubic'.*spline3"):
        resample(np.ones((32, 32)), Transform(1, 1), interpolation="cubic")


def _translation(dx, dy, shape=(N, N)):
    return Transform(dx, dy, 0.0, 1.0, (shape[1] - 1) / 2, (shape[0] - 1) / 2)


@pytest.mark.parametrize("dx,dy", [(3.37, -12.81), (-40.0, 7.0), (0.5, 1e-9), (130.2, -0.25)])
def test_spline3_translation_is_ndimage_shift(dx, dy):
    """The separable cubic spline of a translation gives ndimage.shift's pixels wherever there is data."""
    rng = np.random.default_rng(11)
    img = star_field([100.3, 60.8], [90.1, 170.6]) + rng.normal(0, 3, (N, N))
    aligned, coverage = resample(img, _translation(dx, dy))
    expected = ndimage.shift(img, (dy, dx), order=3, mode="nearest", output=np.float32)
    np.testing.assert_allclose(aligned[coverage], expected[coverage], rtol=2e-7, atol=0)
    assert np.isnan(aligned[~coverage]).all()


@pytest.mark.parametrize("interpolation", ["linear", "nearest"])
@pytest.mark.parametrize("rotation", [0.0, 1.7])
def test_values_at_are_the_whole_frames_pixels(interpolation, rotation):
    from obsdb.imaging.resample import PreparedFrame

    rng = np.random.default_rng(3)
    img = star_field([100.3], [90.1]) + rng.normal(0, 3, (N, N))
    img[rng.integers(0, N, 40), rng.integers(0, N, 40)] = np.nan
    transform = Transform(4.3, -7.6, rotation, 1.0, (N - 1) / 2, (N - 1) / 2)
    prepared = PreparedFrame(img, transform)
    whole, _ = prepared.resample(interpolation)
    rows, cols = np.divmod(np.arange(N * N), N)
    np.testing.assert_array_equal(prepared.values_at(rows, cols, interpolation).reshape(N, N), whole)
    assert (whole == resample(img, transform, interpolation=interpolation)[0])[np.isfinite(whole)].all()


@pytest.mark.parametrize("interpolation", ["linear", "nearest"])
@pytest.mark.parametrize("rotation,scale", [(0.0, 1.0), (2.5, 1.01)])
def test_sparse_mask_resampling_is_the_whole_pass(interpolation, rotation, scale):
    from obsdb.imaging.resample import _geometric_coverage, _spline_resample, resampled_mask

    rng = np.random.default_rng(5)
    mask = np.zeros((N, N), dtype=bool)
    mask[rng.integers(0, N, 60), rng.integers(0, N, 60)] = True
    mask[0, 17] = mask[N - 1, N - 1] = True
    transform = Transform(11.3, -5.6, rotation, scale, (N - 1) / 2, (N - 1) / 2)
    threshold = 0.5 if interpolation == "nearest" else 1e-6
    order = 0 if interpolation == "nearest" else 1
    sparse = resampled_mask(mask, transform, interpolation=interpolation, threshold=threshold)
    whole = _spline_resample(mask.astype(np.float32), transform, (N, N), order) > threshold
    covered = _geometric_coverage((N, N), transform, (N, N))
    np.testing.assert_array_equal(sparse & covered, whole & covered)


def test_grow_mask_is_the_iterated_dilation():
    from obsdb.imaging.resample import grow_mask

    rng = np.random.default_rng(9)
    for density in (0.001, 0.3):
        mask = rng.random((120, 90)) < density
        for radius in (0, 1, 8):
            expected = ndimage.binary_dilation(mask, iterations=radius) if radius else mask
            np.testing.assert_array_equal(grow_mask(mask, radius), expected)


def test_single_masked_pixels_get_the_median_of_their_box_at_once():
    """The vectorised fill of one-pixel regions gives each the median of the good pixels of its
    7 x 7 box cut to the frame (what the per-region loop gives), edges and crowded boxes included."""
    from obsdb.imaging.resample import _fill_local_median

    rng = np.random.default_rng(25)
    work = rng.normal(1000.0, 20.0, (300, 300))
    bad = rng.random(work.shape) < 0.003
    bad[0, 0] = bad[299, 150] = bad[150, 299] = True
    bad[100, 97:104:2] = True  # single pixels whose boxes hold other masked pixels
    work[bad] = np.nan
    original = work.copy()
    _fill_local_median(work, bad)
    for y, x in zip(*np.nonzero(bad)):
        box = (slice(max(y - 3, 0), y + 4), slice(max(x - 3, 0), x + 4))
        good = original[box][~bad[box]]
        assert work[y, x] == np.median(good)
    assert np.array_equal(work[~bad], original[~bad])


def test_masked_regions_found_from_coordinates_equal_the_labelled_ones():
    """The NaN fill's two ways of finding 4-connected regions (sparse masks from their pixels'
    coordinates, dense ones by labelling the frame) fill every pixel with the same value."""
    from scipy import ndimage

    from obsdb.imaging import resample as rs

    rng = np.random.default_rng(3)
    for trial in range(12):
        ny, nx = rng.integers(20, 200, 2)
        work = rng.normal(1000, 20, (ny, nx)).astype(np.float32)
        bad = rng.random((ny, nx)) < (0.002, 0.02, 0.2)[trial % 3]
        bad[5:9, 3:12] = True            # a cluster
        bad[:, :2] = trial % 2 == 0      # a NaN border
        bad[ny - 1, nx - 1] = True       # a corner pixel
        filled = []
        for find in (rs._sparse_regions, rs._labelled_regions):
            ys, xs, rest = find(bad)
            labels, count = ndimage.label(bad)
            assert len(ys) + len(rest) == count
            for (y0, y1, x0, x1), (ry, rx) in rest:
                assert (ry.min(), ry.max() + 1, rx.min(), rx.max() + 1) == (y0, y1, x0, x1)
                assert len(set(labels[ry, rx])) == 1 and (labels == labels[ry[0], rx[0]]).sum() == ry.size
            w = np.where(bad, np.float32(np.nan), work)
            original = rs._SPARSE_FILL
            try:
                rs._SPARSE_FILL = 1.0 if find is rs._sparse_regions else 0.0
                rs._fill_local_median(w, bad)
            finally:
                rs._SPARSE_FILL = original
            assert np.isfinite(w).all() and np.array_equal(w[~bad], work[~bad])
            filled.append(w)
        assert np.array_equal(filled[0], filled[1]), trial
