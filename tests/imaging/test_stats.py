"""Pixel statistics against numpy and astropy references."""

import math
from fractions import Fraction

import numpy as np
import pytest

from obsdb.imaging.stats import EmptyImageError, exact_median, pixel_stats, saturation_level


@pytest.fixture()
def star_field():
    rng = np.random.default_rng(1)
    data = rng.normal(1000.0, 12.0, (300, 280)).astype(np.float32)
    ys, xs = rng.integers(5, 275, (2, 60))
    data[ys, xs] += rng.uniform(2000, 70000, 60).astype(np.float32)
    return data


def test_stats_match_numpy(star_field):
    stats = pixel_stats(star_field, saturation=65535.0)
    assert stats.min == pytest.approx(float(star_field.min()))
    assert stats.max == pytest.approx(float(star_field.max()))
    assert stats.mean == pytest.approx(float(star_field.astype(np.float64).mean()), rel=1e-9)
    assert stats.median == pytest.approx(float(np.median(star_field)), abs=0)
    assert stats.std == pytest.approx(float(star_field.astype(np.float64).std()), rel=1e-9)
    assert stats.n_saturated == int((star_field >= 65535).sum())
    assert stats.n_nan == 0


def test_clipped_background_close_to_astropy(star_field):
    from astropy.stats import sigma_clipped_stats

    _, ref_median, ref_std = sigma_clipped_stats(star_field, sigma=3.0, maxiters=5)
    stats = pixel_stats(star_field)
    # The sample estimate must agree to a small fraction of the rms.
    assert abs(stats.background - ref_median) < 0.1 * ref_std
    assert stats.background_rms == pytest.approx(ref_std, rel=0.05)
    # and be far from the unclipped std, which the stars inflate
    assert stats.std > 5 * stats.background_rms


@pytest.mark.parametrize("size", [65_536, 4_001])
def test_clipped_background_is_astropys_sigma_clip_exactly(size):
    """The median of each clipping pass comes from one partition: the same numbers as astropy's
    sigma_clip about its own median (even and odd counts)."""
    from astropy.stats import sigma_clip

    from obsdb.imaging.stats import clipped_background

    rng = np.random.default_rng(3)
    sample = np.round(rng.normal(480.0, 19.0, size))
    sample[rng.integers(0, size, size // 20)] += rng.uniform(100, 30_000, size // 20)
    kept = sigma_clip(sample, sigma=3.0, maxiters=5, cenfunc="median", stdfunc="std", masked=False)
    assert clipped_background(sample) == (float(np.median(kept)), float(kept.std()))


@pytest.mark.parametrize("nan", [False, True])
def test_stats_from_given_extremes_are_the_same(star_field, nan):
    """Ingest takes a frame's min and max once: pixel_stats given them gives what it finds itself."""
    data = star_field.copy()
    if nan:
        data[3:5] = np.nan
    extremes = (float(data.min()), float(data.max()))
    assert pixel_stats(data, saturation=65535.0, extremes=extremes) == pixel_stats(data, saturation=65535.0)


def test_nan_pixels_excluded(star_field):
    data = star_field.copy()
    data[10:20, :] = np.nan
    stats = pixel_stats(data)
    finite = data[np.isfinite(data)]
    assert stats.n_nan == 10 * data.shape[1]
    assert stats.median == float(np.median(finite))
    assert stats.mean == pytest.approx(float(finite.astype(np.float64).mean()), rel=1e-9)


def test_input_not_modified(star_field):
    copy = star_field.copy()
    pixel_stats(star_field)
    np.testing.assert_array_equal(copy, star_field)


def test_all_nan_raises():
    with pytest.raises(EmptyImageError):
        pixel_stats(np.full((8, 8), np.nan, dtype=np.float32))


@pytest.mark.parametrize("n", [1, 2, 7, 10])
def test_exact_median_even_and_odd(n):
    values = np.random.default_rng(n).normal(size=n)
    assert exact_median(values) == pytest.approx(float(np.median(values)))


def test_saturation_level_rules():
    assert saturation_level({"SATURATE": 50000}, -32) == 50000.0
    assert saturation_level({"BZERO": 32768}, 16) == 65535.0
    assert saturation_level({}, 16) == 32767.0
    assert saturation_level({}, -32) == 65535.0
    assert saturation_level({}, -32, default_float=None) is None


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 4097])
def test_the_histogram_median_of_integer_data_is_numpys(n):
    from obsdb.imaging.stats import integer_median, pixel_stats

    rng = np.random.default_rng(n)
    values = (rng.integers(0, 65536, n) - 32768).astype(np.float32)
    assert integer_median(values, float(values.min()), float(values.max())) == float(np.median(values))
    frame = rng.poisson(900, (64, 65)).astype(np.float32)
    frame[3, 4] = np.nan                              # a BLANK pixel
    in_place = pixel_stats(frame.copy(), overwrite_input=True)
    copied = pixel_stats(frame.copy())
    assert in_place.median == copied.median == float(np.nanmedian(frame))


@pytest.mark.parametrize("low, high", [(0, 65536), (-32768, 32768), (100, 160), (-5, 3), (1e7, 1e7 + 4000)])
@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (32, 33), (32, 32)])
def test_integer_frames_get_the_partitions_median_from_a_histogram(low, high, shape):
    rng = np.random.default_rng(abs(int(low)) + shape[1])
    frame = rng.integers(int(low), int(high), shape).astype(np.float32)
    if frame.size > 6:
        frame[0, 1] = np.nan                             # a BLANK pixel
    saturation = float(np.nanmax(frame)) - 1.0          # the brightest pixels saturated, a count to check
    by_histogram = pixel_stats(frame.copy(), overwrite_input=True, integers=True, saturation=saturation).as_dict()
    by_partition = pixel_stats(frame.copy(), overwrite_input=True, saturation=saturation).as_dict()
    exact = [Fraction(int(v)) for v in frame[np.isfinite(frame)]]
    mean = sum(exact) / len(exact)
    variance = sum((v - mean) ** 2 for v in exact) / len(exact)
    # The histogram's mean and standard deviation are the exact values, rounded once.
    assert by_histogram.pop("mean") == float(mean)
    assert by_histogram.pop("std") == pytest.approx(math.sqrt(variance), rel=1e-15, abs=0)
    assert by_partition.pop("mean") == pytest.approx(float(mean), rel=1e-12)
    assert by_partition.pop("std") == pytest.approx(math.sqrt(variance), rel=1e-12, abs=1e-12)
    assert by_histogram.pop("background_rms") == pytest.approx(by_partition.pop("background_rms"), rel=1e-12)
    assert by_histogram == by_partition
    assert by_histogram["median"] == float(np.nanmedian(frame))
    assert by_histogram["n_saturated"] == int(np.count_nonzero(frame >= saturation)) > 0


def test_a_span_too_wide_for_the_histogram_is_partitioned():
    from obsdb.imaging.stats import integer_median

    frame = np.array([[0.0, 70000.0, 3.0]], dtype=np.float32)
    assert pixel_stats(frame, integers=True).median == 3.0
    with pytest.raises(ValueError, match="span"):
        integer_median(frame.ravel(), 0.0, 70000.0)


def test_which_frames_are_stored_as_integers():
    from obsdb.imaging.stats import stored_as_integers

    assert stored_as_integers({"BZERO": 32768}, 16)
    assert stored_as_integers({}, 8)
    assert stored_as_integers({"BZERO": 32768.0, "BSCALE": 1.0}, 16)
    assert not stored_as_integers({"BSCALE": 0.5}, 16)
    assert not stored_as_integers({"BZERO": 0.25}, 16)
    assert not stored_as_integers({"BZERO": "32768"}, 16)
    assert not stored_as_integers({}, -32)


@pytest.mark.parametrize("seed", range(6))
def test_the_histograms_clipped_background_is_astropys(seed):
    from obsdb.imaging.stats import clipped_background, histogram_clipped

    rng = np.random.default_rng(seed)
    sky = rng.poisson(rng.uniform(5, 3000), 65536).astype(np.float32)
    stars = rng.integers(0, sky.size, 3000)
    sky[stars] += rng.integers(10, 20000, stars.size)         # bright outliers to clip
    sky[:200] = rng.integers(0, 3, 200)                       # and a few dead pixels
    base = float(sky.min())
    counts = np.bincount((sky - base).astype(np.int64))
    median, rms = histogram_clipped(base, counts)
    expected_median, expected_rms = clipped_background(sky)
    assert median == expected_median
    assert rms == pytest.approx(expected_rms, rel=1e-12)
    assert rms < np.std(sky) / 2                              # the outliers were clipped


def test_a_constant_sample_clips_to_itself():
    from obsdb.imaging.stats import histogram_clipped

    assert histogram_clipped(7.0, np.array([5])) == (7.0, 0.0)
    assert histogram_clipped(7.0, np.array([0, 0])) == (pytest.approx(float("nan"), nan_ok=True),) * 2
