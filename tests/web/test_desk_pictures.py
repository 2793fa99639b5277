"""The review desk's pictures as pure functions: a frame on its reference's preview grid, and 1:1 crops."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

from obsdb.imaging.preview import _reduced, aligned_preview, crop_png_bytes, crop_window
from obsdb.imaging.resample import resample
from obsdb.imaging.transform import Transform

SHAPE = (600, 900)
CENTRE = ((SHAPE[1] - 1) / 2, (SHAPE[0] - 1) / 2)
STARS = [(120.3, 80.6), (455.2, 300.1), (700.7, 510.4), (300.0, 420.9), (820.5, 150.2)]


def _field(positions, shape=SHAPE, sigma=2.5):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    image = np.full(shape, 50.0)
    for x, y in positions:
        image += 2000 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2))
    return image


def _peaks(image, positions, factor, half=4):
    """Centroids near each expected (coarse) position."""
    found = []
    for x, y in positions:
        cx, cy = int(round(x)), int(round(y))
        box = np.nan_to_num(image[cy - half:cy + half + 1, cx - half:cx + half + 1] - np.nanmedian(image))
        box = np.clip(box, 0, None)
        yy, xx = np.mgrid[cy - half:cy + half + 1, cx - half:cx + half + 1]
        found.append(((box * xx).sum() / box.sum(), (box * yy).sum() / box.sum()))
    return np.array(found)


@pytest.mark.parametrize("rotation, scale", [(0.0, 1.0), (1.5, 1.0), (-0.8, 1.002)])
def test_a_frame_on_its_references_preview_grid_puts_each_star_where_the_reference_has_it(rotation, scale):
    truth = Transform(23.6, -17.3, rotation, scale, *CENTRE)
    # The frame holds the stars where the inverse transform puts them: aligned onto the reference they coincide.
    frame_positions = [tuple(float(v) for v in truth.inverse_apply(x, y)) for x, y in STARS]
    frame, reference = _field(frame_positions), _field(STARS)
    max_size = 300                                     # block factor 3, as a 2700 px frame has in the desk
    factor = math.ceil(max(SHAPE) / max_size)
    aligned = aligned_preview(frame, truth, SHAPE, max_size=max_size)
    ref_small = _reduced(reference, max_size)
    assert aligned.shape == ref_small.shape == (200, 300)
    coarse = [((x - (factor - 1) / 2) / factor, (y - (factor - 1) / 2) / factor) for x, y in STARS]
    got, want = _peaks(aligned, coarse, factor), _peaks(ref_small, coarse, factor)
    # Within a tenth of a preview pixel; the frame's own preview is 8 preview pixels away.
    assert np.abs(got - want).max() < 0.1, got - want
    own = _peaks(_reduced(frame, max_size), coarse, factor)
    assert np.abs(own - want).max() > 3


def test_a_frame_without_data_at_the_edge_shows_no_data_there():
    aligned = aligned_preview(_field(STARS), Transform(60.0, 0.0, 0.0, 1.0, *CENTRE), SHAPE, max_size=300)
    assert np.isnan(aligned[:, :19]).all() and np.isfinite(aligned[:, 25:]).all()


def test_an_aligned_preview_refuses_what_it_cannot_draw():
    with pytest.raises(ValueError, match="reference shape"):
        aligned_preview(np.ones((4, 4)), Transform(0, 0), (0, 4))
    with pytest.raises(ValueError, match="2-D"):
        aligned_preview(np.ones(4), Transform(0, 0), (4, 4))


def test_a_crop_is_the_frames_own_pixels_one_for_one():
    frame = np.arange(SHAPE[0] * SHAPE[1], dtype=float).reshape(SHAPE)
    window = crop_window(frame, 100, 50, 40, 30)
    assert window.shape == (30, 40)
    assert np.array_equal(window, frame[35:65, 80:120])
    corner = crop_window(frame, 3, 2, 10, 8)          # beyond the frame: no data, never wrapped
    assert np.isnan(corner[:2]).all() and np.isnan(corner[:, :2]).all()
    assert np.array_equal(corner[2:, 2:], frame[:6, :8])


def test_a_crop_on_the_references_grid_is_the_resampled_frame_cut_there():
    truth = Transform(12.4, -7.7, 0.9, 1.0, *CENTRE)
    frame = _field(STARS) + np.random.default_rng(3).normal(0, 5, SHAPE)
    whole, _ = resample(frame, truth, interpolation="linear")
    window = crop_window(frame, 450, 300, 64, 48, transform=truth)
    assert np.allclose(window, whole[276:324, 418:482], atol=1e-3, equal_nan=True)


def test_a_crop_png_is_one_pixel_per_pixel_with_row_zero_at_the_bottom():
    from PIL import Image

    frame = _field(STARS)
    png = crop_png_bytes(frame, 455, 300, 81, 61)
    picture = np.asarray(Image.open(io.BytesIO(png)))
    assert picture.shape[:2] == (61, 81)
    rows, cols = np.nonzero(picture == picture.max())   # the star's core, white under zscale
    # The star at (455.2, 300.1) is the window's centre; shown with row 0 at the bottom.
    assert abs(cols.mean() - 40.2) < 0.3 and abs((60 - rows.mean()) - 30.1) < 0.3
    with pytest.raises(ValueError, match="crop size"):
        crop_png_bytes(frame, 1, 1, 0, 10)
    with pytest.raises(ValueError, match="stretch"):
        crop_png_bytes(frame, 1, 1, 10, 10, stretch="log")
