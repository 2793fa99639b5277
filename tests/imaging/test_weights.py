"""Frame weights (obsdb/imaging/weights.py): the formulas, and what a weighted stack gains by them."""

import numpy as np
import pytest

from obsdb.imaging import weights as wt


def test_a_noise_weighted_mean_has_the_noise_its_weights_promise():
    """Frames of known noise: the inverse-variance mean's noise is sqrt(1 / sum(1/sigma^2)) within 3 %,
    and beats the plain mean's."""
    rng = np.random.default_rng(2)
    sigmas = np.array([5.0, 5.0, 7.0, 10.0, 14.0, 20.0, 30.0])
    frames = rng.normal(0.0, sigmas[:, None, None], (sigmas.size, 256, 256))
    w = wt.noise_weights(sigmas)
    assert np.mean(w) == pytest.approx(1.0)
    weighted = np.tensordot(w, frames, axes=1) / w.sum()
    expected = np.sqrt(1.0 / np.sum(1.0 / sigmas**2))
    assert np.std(weighted) == pytest.approx(expected, rel=0.03)
    assert np.std(weighted) < 0.8 * np.std(frames.mean(axis=0))


def test_a_frame_through_cloud_weighs_less_once_scaled():
    w = wt.noise_weights([10.0, 10.0], scale=[1.0, 2.0])
    assert w[0] == pytest.approx(4 * w[1])


def test_missing_inputs_give_nan_not_a_weight():
    assert np.isnan(wt.noise_weights([10.0, float("nan"), 0.0])[1:]).all()
    assert np.isnan(wt.fwhm_weights([float("nan")])).all()
    assert np.isnan(wt.snr_weights([0.0, 5.0])[0])


def test_siril_weighted_fwhm_penalises_lost_stars_and_ranks_frames():
    fwhm = np.array([2.5, 2.5, 3.0, 4.0])
    matched = np.array([200, 100, 200, 200])
    wf = wt.weighted_fwhm(fwhm, matched, 200)
    assert wf.tolist() == [2.5, 5.0, 3.0, 4.0]
    w = wt.fwhm_weights(wf)
    assert np.argmax(w) == 0 and w[1] == 0.0          # the worst frame adds nothing, as in Siril
    assert w[0] > w[2] > w[3] > w[1]
    assert np.mean(w) == pytest.approx(1.0)


def test_equal_frames_weigh_the_same():
    assert wt.fwhm_weights([3.0, 3.0]).tolist() == [1.0, 1.0]
    assert wt.star_count_weights([50, 50, 50]).tolist() == [1.0, 1.0, 1.0]
