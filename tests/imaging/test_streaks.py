"""The streak detector (obsdb.imaging.streaks): satellites found, star fields and defects left alone."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from obsdb.imaging.streaks import MASK_MARGIN, find_streaks, streak_mask
from obsdb.simulate import FrameSpec, make_detector, make_sky, render_streak, simulate_frame


def _frame(size=1024, seed=1, *, streaks=None, n_stars=None, n_cosmic_rays=None, **spec):
    """A simulated light frame (stars, sky, noise, hot pixels, cosmic rays) and its truth."""
    rng = np.random.default_rng(seed)
    n = n_stars if n_stars is not None else int(300 * size * size / 512**2)
    sky = make_sky(seed=rng, n_stars=n, extent=(size + 200, size + 200), center=(size / 2, size / 2))
    detector = make_detector(seed=rng, size=(size, size))
    spec = FrameSpec(number=1, offset=(0.0, 0.0), rotation_deg=0.0, fwhm=spec.pop("fwhm", 3.0),
                     background=spec.pop("background", 800.0), transparency=1.0,
                     trail_length=spec.pop("trail_length", 0.0), trail_angle_deg=spec.pop("trail_angle_deg", 0.0),
                     streaks=streaks, **spec)
    return simulate_frame(spec, sky, rng=rng, size=(size, size), detector=detector, n_cosmic_rays=n_cosmic_rays)


def _noise(data) -> float:
    sample = np.asarray(data, float)[::4, ::4]
    return float(1.4826 * np.median(np.abs(sample - np.median(sample))))


def _angle(x0, y0, x1, y1) -> float:
    return math.degrees(math.atan2(y1 - y0, x1 - x0)) % 180.0


def _angle_diff(a, b) -> float:
    d = abs(a - b) % 180.0
    return min(d, 180.0 - d)


def _distance_to_line(px, py, x0, y0, x1, y1) -> float:
    length = math.hypot(x1 - x0, y1 - y0)
    return abs((px - x0) * (y1 - y0) - (py - y0) * (x1 - x0)) / length


def _assert_matches(found, x0, y0, x1, y1, *, ends_tol=6.0, angle_tol=1.0):
    """The streak found lies on the true line (both end points within ``ends_tol`` px of it, and of the
    true end points along it when those are inside the frame) and has its direction."""
    assert _angle_diff(found.angle_deg, _angle(x0, y0, x1, y1)) < angle_tol
    for px, py in ((found.x0, found.y0), (found.x1, found.y1)):
        assert _distance_to_line(px, py, x0, y0, x1, y1) < ends_tol
    truth_ends = sorted([(x0, y0), (x1, y1)])
    got_ends = sorted([(found.x0, found.y0), (found.x1, found.y1)])
    for (tx, ty), (gx, gy) in zip(truth_ends, got_ends):
        assert math.hypot(tx - gx, ty - gy) < max(ends_tol, 1.5 * 32), (truth_ends, got_ends)


# --------------------------------------------------------------------------- found


@pytest.mark.parametrize("snr", [1.0, 2.0, 8.0, 200.0])
def test_streak_across_a_star_field_is_found(snr):
    """From a faint streak (1 sigma per pixel on its centre line) to a saturating one."""
    size = 1024
    clean, _ = _frame(size, seed=3)
    sigma = _noise(clean)
    x0, y0, x1, y1 = 0.0, 700.0, 1023.0, 130.0
    data = clean + render_streak(clean.shape, x0, y0, x1, y1, 3.0, snr * sigma).astype(np.float32)
    streaks = find_streaks(data)
    assert len(streaks) == 1, streaks
    s = streaks[0]
    _assert_matches(s, x0, y0, x1, y1)
    assert 2.0 < s.width < 6.0
    # The reported significance is the mean over the central 3 px: 0.82 of the peak for FWHM 3.
    assert s.significance == pytest.approx(0.82 * snr, rel=0.35)


def test_streak_ending_inside_the_frame_reports_its_end():
    size = 1024
    clean, _ = _frame(size, seed=4)
    sigma = _noise(clean)
    x0, y0, x1, y1 = 60.0, 1023.0, 600.0, 250.0   # enters at the top edge, fades out in the field
    data = clean + render_streak(clean.shape, x0, y0, x1, y1, 4.0, 3.0 * sigma).astype(np.float32)
    (s,) = find_streaks(data)
    _assert_matches(s, x0, y0, x1, y1, ends_tol=6.0)


def test_two_crossing_streaks_are_two():
    size = 1024
    clean, _ = _frame(size, seed=5)
    sigma = _noise(clean)
    lines = [(0.0, 100.0, 1023.0, 900.0), (0.0, 950.0, 1023.0, 300.0)]
    data = clean.copy()
    for line in lines:
        data += render_streak(clean.shape, *line, 3.0, 4.0 * sigma).astype(np.float32)
    streaks = find_streaks(data)
    assert len(streaks) == 2
    for line in lines:
        assert any(_angle_diff(s.angle_deg, _angle(*line)) < 1.0 for s in streaks)


def test_simulated_frame_records_its_streak_truth():
    line = {"x0": 10.0, "y0": 20.0, "x1": 500.0, "y1": 480.0, "width": 3.0, "brightness": 40.0}
    data, truth = _frame(512, seed=6, streaks=[line])
    assert truth["streaks"] == [line]
    (s,) = find_streaks(data)
    _assert_matches(s, 10.0, 20.0, 500.0, 480.0)


def test_streak_mask_covers_the_line_and_only_it():
    size = 256
    line = (0.0, 40.0, 255.0, 200.0, 3.0)
    mask = streak_mask((size, size), [dict(zip(("x0", "y0", "x1", "y1", "width"), line))])
    model = render_streak((size, size), *line[:4], 3.0, 100.0)
    # Everything above 1 % of the peak is masked (MASK_MARGIN 3 px beyond the half width), and the band
    # is no wider than the width, the margins and a pixel.
    assert mask[model > 1.0].all()
    assert mask.sum() < (3.0 + 2 * MASK_MARGIN + 1.0) * math.hypot(255, 160)


# --------------------------------------------------------------------------- left alone


def test_noise_and_plain_star_fields_show_no_streak():
    for seed in range(3):
        data, _ = _frame(1024, seed=10 + seed)
        assert find_streaks(data) == []


def test_dense_field_with_gradient_shows_no_streak():
    data, _ = _frame(1024, seed=20, n_stars=6000)
    yy, xx = np.mgrid[0:1024, 0:1024]
    data = data + (0.6 * xx + 0.3 * yy).astype(np.float32)   # 900 ADU across: a strong twilight gradient
    assert find_streaks(data) == []


@pytest.mark.parametrize("trail_length, angle", [(6.0, 30.0), (9.0, 0.0), (25.0, 75.0)])
def test_trailed_stars_are_not_streaks(trail_length, angle):
    """Elongation 3 (a 6-9 px trail of a 3 px star) and a long 25 px trail: many short parallel lines."""
    data, _ = _frame(1024, seed=30, trail_length=trail_length, trail_angle_deg=angle, n_stars=2000)
    assert find_streaks(data) == []


def test_saturated_stars_bleeds_spikes_hot_columns_and_cosmic_rays_are_not_streaks():
    data, _ = _frame(1024, seed=40, n_cosmic_rays=300)
    sigma = _noise(data)
    rng = np.random.default_rng(41)
    for _ in range(6):
        x, y = rng.uniform(100, 900, 2)
        star = render_streak(data.shape, x - 0.01, y, x + 0.01, y, 6.0, 60000.0)
        data = np.minimum(data + star.astype(np.float32), 65535.0)
        xi, yi = int(x), int(y)
        data[max(0, yi - 120):yi + 120, xi - 1:xi + 2] = 65535.0                  # bleed column
        for dx, dy in ((1, 1), (1, -1), (-1, 1), (-1, -1)):                          # diffraction spikes
            for r in range(0, 150, 10):   # fading out from the star, 150 px long
                data += render_streak(data.shape, x + r * dx / 1.414, y + r * dy / 1.414, x + (r + 10) * dx / 1.414,
                                      y + (r + 10) * dy / 1.414, 2.0,
                                      100 * sigma * math.exp(-r / 50)).astype(np.float32)
    data[:, 517] += 8 * sigma                                                       # hot column
    data[300, :] += 5 * sigma                                                       # hot row
    data[:, 700] += 2 * sigma                                                       # warm column
    assert find_streaks(data) == []


# --------------------------------------------------------------------------- real frames

REAL_LIGHTS = ["single/M67_DSS_POSS1_M6707HH.fits.gz", "single/sep_NTT_EMMI_image.fits",
               "single/ccdproc_SAAO1m_a8280271.fits.gz", "pair_dss/dss_test1.fits", "pair_dss/dss_test2.fits",
               "allsky_iceact/iceact_cloudy.fits", "allsky_iceact/iceact_starry.fits"]


def _real_frames(root):
    names = list(REAL_LIGHTS)
    names += sorted(str(p.relative_to(root)) for p in (root / "seestar_m94_crops").glob("*.fits"))
    names += sorted(str(p.relative_to(root)) for p in (root / "lowell42_raw_night").glob("*.fits.gz"))
    names += sorted(str(p.relative_to(root)) for p in (root / "calib_headers").glob("*.fit*"))
    names += sorted(str(p.relative_to(root)) for p in (root / "focus_seq").glob("*.fits"))
    return names


def _read(path):
    from obsdb.imaging.fitsio import read_fits_image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_fits_image(path, hash_mode="none").data


def test_no_streak_on_any_real_frame(real_data):
    """Every real frame of the shared set (star fields, all-sky, raw frames with prescan, bias and
    flats, the focus sequence) shows none: none of them has a satellite."""
    fired = {}
    for name in _real_frames(real_data):
        found = find_streaks(_read(real_data / name))
        if found:
            fired[name] = found
    assert fired == {}


@pytest.mark.parametrize("snr", [2.0, 4.0])
def test_faint_streak_injected_into_m67_is_found(real_data, snr):
    data = _read(real_data / "single" / "M67_DSS_POSS1_M6707HH.fits.gz").astype(np.float32)
    sigma = _noise(data)
    x0, y0, x1, y1 = 0.0, 180.0, 1058.0, 905.0
    injected = data + render_streak(data.shape, x0, y0, x1, y1, 3.0, snr * sigma).astype(np.float32)
    streaks = find_streaks(injected)
    assert len(streaks) == 1, streaks
    _assert_matches(streaks[0], x0, y0, x1, y1)


# --------------------------------------------------------------------------- the satellite rule


def test_satellite_rule_names_end_points_width_and_snr():
    from obsdb.pipeline.streak_rules import satellite_decisions

    frames = [
        {"id": 1, "width": 2048, "height": 2048, "streaks": []},
        {"id": 2, "width": 2048, "height": 2048,
         "streaks": [{"x0": 12.2, "y0": 830.0, "x1": 2040.0, "y1": 95.4, "width": 5.1, "significance": 4.14}]},
        {"id": 3, "width": 512, "height": 512,
         "streaks": [{"x0": 0.0, "y0": 0.0, "x1": 511.0, "y1": 511.0, "width": 20.0, "significance": 80.0},
                     {"x0": 0.0, "y0": 511.0, "x1": 511.0, "y1": 0.0, "width": 20.0, "significance": 80.0}]},
    ]
    decisions = {d[0]: d for d in satellite_decisions(frames)}
    assert sorted(decisions) == [2, 3]
    _, tag, reason, evidence = decisions[2]
    assert tag == "satellite"
    assert reason == ("satellite: streak from (12, 830) to (2040, 95), 5 px wide, S/N 4.1 per px; "
                      "masked in the stack")
    assert evidence["streaks"][0]["width"] == 5.1 and 0 < evidence["masked_fraction"] < 0.01
    # Two wide streaks across a small frame: the reason says how much of it the masks take.
    reason3 = decisions[3][2]
    assert reason3.startswith("satellite: 2 streaks: streak from (0, 0)") and "% of the frame)" in reason3


def test_mask_grows_with_the_streaks_brightness():
    from obsdb.imaging.streaks import mask_half_width

    assert mask_half_width(3.0, 0.5) == pytest.approx(1.5 + MASK_MARGIN)
    assert mask_half_width(3.0, 100.0) == pytest.approx(1.5 + 3 * MASK_MARGIN)
    # A bright streak's Gaussian wings are below half a sigma of noise at the mask's edge.
    for snr in (2.0, 20.0, 200.0, 2000.0):
        half = mask_half_width(3.0, snr)
        assert snr * math.exp(-0.5 * (half / (3.0 / 2.3548)) ** 2) < 0.5


@pytest.mark.parametrize("length", [32, 31, 2])
def test_segment_medians_are_numpys_median(length):
    """The segment medians come from one partition: the same numbers as np.median (ties, huge fill
    values, even and odd lengths, float32 and float64)."""
    from obsdb.imaging.streaks import _median_last_axis

    rng = np.random.default_rng(length)
    for dtype in (np.float32, np.float64):
        values = rng.normal(0.0, 10.0, (9, 5, length)).astype(dtype)
        values[..., ::3] = np.round(values[..., ::3])
        values[0, 0, :] = 3e38
        values[1, 1, ::2] = -3e38
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # 3e38 + 3e38 overflows in both
            expected, found = np.median(values, axis=-1), _median_last_axis(values)
        assert found.dtype == expected.dtype and np.array_equal(found, expected)


def test_grown_mask_is_scipys_iterated_dilation():
    """The shifted-OR growth is binary_dilation with ``iterations`` steps, edges included."""
    from scipy import ndimage

    from obsdb.imaging.streaks import _grow

    rng = np.random.default_rng(7)
    for shape, steps in (((64, 80), 2), ((31, 17), 4), ((5, 5), 3), ((40, 40), 0)):
        mask = rng.random(shape) > 0.97
        mask[0, 0] = mask[-1, -1] = True                  # growth clipped at the corners
        expected = ndimage.binary_dilation(mask, iterations=steps) if steps else mask
        assert np.array_equal(_grow(mask, steps), expected)


def test_background_map_interpolates_as_map_coordinates():
    """The separable interpolation of the box medians gives scipy's order-1 map_coordinates values."""
    from scipy import ndimage

    from obsdb.imaging.streaks import _background_map

    rng = np.random.default_rng(8)
    for shape in ((256, 256), (200, 256), (37, 90)):
        binned = (rng.normal(100.0, 5.0, shape) + np.linspace(0, 40, shape[1])[None, :]).astype(np.float32)
        full, grid = _background_map(binned)
        box = max(4, min(16, min(shape) // 4))
        yy = np.clip((np.arange(shape[0]) + 0.5) / box - 0.5, 0, grid.shape[0] - 1)
        xx = np.clip((np.arange(shape[1]) + 0.5) / box - 0.5, 0, grid.shape[1] - 1)
        expected = ndimage.map_coordinates(grid.astype(np.float32), np.meshgrid(yy, xx, indexing="ij"),
                                           order=1, mode="nearest")
        np.testing.assert_allclose(full, expected, rtol=1e-6, atol=1e-4)
