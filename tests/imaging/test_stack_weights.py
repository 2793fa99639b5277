"""The weighted mean stack: inverse-variance weights give the noise sqrt(1 / sum w)."""

import numpy as np
import pytest

from obsdb.imaging.stack import stack_arrays, weighted_mean
from obsdb.imaging.weights import noise_weights


def test_noise_weighted_mean_reaches_the_inverse_variance_noise_and_beats_the_plain_mean():
    rng = np.random.default_rng(7)
    sigmas = np.array([5.0, 8.0, 12.0, 20.0, 40.0, 6.0])
    frames = [1000.0 + rng.normal(0.0, s, (300, 300)).astype(np.float32) for s in sigmas]
    measured = np.array([np.std(f) for f in frames])
    weighted = stack_arrays(frames, method="mean", weights=noise_weights(measured)).data
    plain = stack_arrays(frames, method="mean").data
    expected = np.sqrt(1.0 / np.sum(1.0 / sigmas**2))
    assert np.std(weighted) == pytest.approx(expected, rel=0.03)
    assert np.std(plain) == pytest.approx(np.sqrt(np.sum(sigmas**2)) / len(sigmas), rel=0.03)
    assert np.std(weighted) < 0.5 * np.std(plain)
    assert np.mean(weighted) == pytest.approx(1000.0, abs=0.1)


def test_weighted_mean_skips_missing_pixels_and_refuses_unusable_weights():
    chunk = np.array([[[1.0, np.nan, np.nan]], [[3.0, 2.0, np.nan]]], dtype=np.float32)
    assert weighted_mean(chunk, np.array([3.0, 1.0], np.float32)).tolist()[0][:2] == [1.5, 2.0]
    assert np.isnan(weighted_mean(chunk, np.array([3.0, 1.0], np.float32))[0, 2])
    frames = [np.ones((4, 4)), np.ones((4, 4))]
    for weights, message in (([1.0], "1 weights for 2 frames"), ([1.0, -1.0], "at least 0"),
                             ([0.0, 0.0], "not all 0"), ([1.0, float("nan")], "finite")):
        with pytest.raises(ValueError, match=message):
            stack_arrays(frames, method="mean", weights=weights)
    with pytest.raises(ValueError, match="mean stack"):
        stack_arrays(frames, method="median", weights=[1.0, 1.0])
