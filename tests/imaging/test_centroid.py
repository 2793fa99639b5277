"""Centroid in a box: accuracy, the raw-box bias, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import erf

from obsdb.imaging.centroid import centroid_in_box, clip_box

X, Y, FLUX, FWHM, SKY = 61.37, 70.81, 50_000.0, 3.0, 1000.0
BOX = (50, 80, 58, 84)   # the star sits 3 px left of the box centre (64.5, 70.5)


def _frame(x=X, y=Y, flux=FLUX, fwhm=FWHM, sky=SKY, noise=10.0, shape=(128, 128), seed=0):
    ny, nx = shape
    s = fwhm / 2.3548200450309493
    ex, ey = np.arange(nx + 1) - 0.5, np.arange(ny + 1) - 0.5
    gx = np.diff(erf((ex - x) / (np.sqrt(2) * s))) / 2
    gy = np.diff(erf((ey - y) / (np.sqrt(2) * s))) / 2
    img = sky + flux * np.outer(gy, gx)
    return (img + np.random.default_rng(seed).normal(0, noise, shape)).astype(np.float32)


@pytest.mark.parametrize("method, tol", [("2dg", 0.02), ("com", 0.2), ("quadratic", 0.15)])
def test_accuracy_with_background_subtracted(method, tol):
    errors = []
    for seed in range(5):
        x, y, flux = centroid_in_box(_frame(seed=seed), BOX, method=method)
        errors.append(np.hypot(x - X, y - Y))
        assert flux == pytest.approx(FLUX, rel=0.03)
    assert max(errors) < tol


def test_raw_box_bias_without_subtraction():
    img = _frame()
    x_raw, y_raw, _ = centroid_in_box(img, BOX, method="2dg", background=None)
    x_sub, _, _ = centroid_in_box(img, BOX, method="2dg")
    # The sky pulls the raw fit towards the box centre (x = 64.5) by > 1 px.
    assert x_raw - X > 1.0
    assert abs(x_sub - X) < 0.02
    x_com, _, _ = centroid_in_box(img, BOX, method="com", background=None)
    assert x_com - X > 2.0
    # A known level works like the median.
    x_given, _, _ = centroid_in_box(img, BOX, method="2dg", background=SKY)
    assert x_given == pytest.approx(X, abs=0.02)


def test_full_frame_coordinates_and_clipping():
    img = _frame(x=3.4, y=5.6)
    x, y, _ = centroid_in_box(img, (-10, 14, -10, 16))
    assert (x, y) == pytest.approx((3.4, 5.6), abs=0.03)
    assert clip_box((-10, 14, -10, 16), img.shape) == (0, 14, 0, 16)
    assert clip_box((120.4, 200, 100, 130), img.shape) == (120, 128, 100, 128)


def test_nan_pixels_in_box():
    img = _frame()
    img[65:67, 52:56] = np.nan
    x, y, _ = centroid_in_box(img, BOX)
    assert (x, y) == pytest.approx((X, Y), abs=0.03)


def test_errors():
    img = _frame()
    with pytest.raises(ValueError, match="empty or outside"):
        centroid_in_box(img, (200, 220, 10, 20))
    with pytest.raises(ValueError, match="empty or outside"):
        centroid_in_box(img, (30, 30, 10, 20))
    img[10:20, 10:20] = np.nan
    with pytest.raises(ValueError, match="no finite pixel"):
        centroid_in_box(img, (10, 20, 10, 20))
    with pytest.raises(ValueError, match="unknown centroid method"):
        centroid_in_box(img, BOX, method="peak")
    with pytest.raises(ValueError, match="four numbers"):
        centroid_in_box(img, (1, 2, 3))
    with pytest.raises(ValueError, match="background must be"):
        centroid_in_box(img, BOX, background="mean")
