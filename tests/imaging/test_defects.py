"""Hot pixels and cosmic-ray hits: found in one frame, never a star, and no ring through the resampling."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from obsdb import simulate as sim
from obsdb.imaging.defects import sharp_defects

SIZE = 512
CENTRE = ((SIZE - 1) / 2.0, (SIZE - 1) / 2.0)


@pytest.mark.parametrize("fwhm", [1.5, 2.5, 4.0])
def test_hot_pixels_are_found_and_no_star_is_taken_for_one(fwhm):
    sky = sim.make_sky(seed=11, n_stars=700, extent=(800, 800), center=CENTRE)
    det = sim.make_detector(seed=12, size=(SIZE, SIZE), n_hot_pixels=200)
    image, _ = sim.simulate_frame(sim.FrameSpec(0, offset=(0.0, 0.0), rotation_deg=0.0, kind="good", fwhm=fwhm),
                                  sky, rng=np.random.default_rng(13), size=(SIZE, SIZE), detector=det,
                                  n_cosmic_rays=0)
    hot = np.zeros((SIZE, SIZE), dtype=bool)
    hot[det.hot_y, det.hot_x] = True
    found = sharp_defects(image, fwhm=fwhm)
    assert (found & hot).sum() >= 0.95 * hot.sum()
    assert not (found & ~hot).any()          # 700 stars, bright and faint: none masked


def _frame_file(tmp_path, data, name="frame.fits"):
    path = tmp_path / name
    fits.PrimaryHDU(data.astype(np.float32)).writeto(path)
    return path


@pytest.mark.parametrize("interpolation", ["spline3", "fourier"])
def test_a_single_hot_pixel_leaves_no_ring_in_the_aligned_frame(tmp_path, interpolation):
    from obsdb.imaging.resample import resample
    from obsdb.pipeline.render import render_frame, total_transform

    rng = np.random.default_rng(4)
    sky, sigma = 1000.0, 30.0
    data = rng.normal(sky, sigma, (128, 128))
    data[60, 70] = 65535.0
    step = {"stage": 1, "kind": "auto", "method": "stars", "dx": 0.37, "dy": 0.61, "rotation_deg": 0.0,
            "scale": 1.0, "cx": None, "cy": None, "reference": 1}
    task = {"frame_id": 1, "number": 1, "path": str(_frame_file(tmp_path, data)), "steps": [step], "run": 1,
            "reference": 1, "fwhm": 2.5, "output": "aligned.fits"}
    result = render_frame(task, str(tmp_path / "out"), interpolation, False)
    with fits.open(result["path"]) as hdul:
        aligned, header = hdul[0].data.astype(float), hdul[0].header
    near = (slice(60 + 0 - 3, 60 + 1 + 4), slice(70 + 0 - 3, 70 + 1 + 4))
    values = aligned[near]
    assert header["OBSDB_NDEFECT"] == 1
    assert np.nanmin(values) >= sky - 6 * sigma and np.isnan(values).any()
    # Resampled as it was, the same pixel does ring: the test can tell.
    raw, _ = resample(data, total_transform([step], data.shape), interpolation=interpolation)
    assert np.nanmin(raw[near]) < sky - 6 * sigma


def test_a_saturated_star_leaves_no_dark_halo_in_the_aligned_frame(tmp_path):
    from obsdb.imaging.resample import resample
    from obsdb.pipeline.render import render_frame, total_transform

    rng = np.random.default_rng(5)
    sky, sigma = 1000.0, 30.0
    yy, xx = np.mgrid[0:128, 0:128]
    star = 2.0e7 / (2 * np.pi * 1.3 ** 2) * np.exp(-((xx - 64.3) ** 2 + (yy - 60.6) ** 2) / (2 * 1.3 ** 2))
    data = np.minimum(rng.normal(sky, sigma, (128, 128)) + star, 65535.0)
    assert (data >= 65535).sum() >= 9          # a clipped, flat-topped core
    step = {"stage": 1, "kind": "auto", "method": "stars", "dx": 0.41, "dy": -0.27, "rotation_deg": 0.0,
            "scale": 1.0, "cx": None, "cy": None, "reference": 1}
    task = {"frame_id": 1, "number": 1, "path": str(_frame_file(tmp_path, data)), "steps": [step], "run": 1,
            "reference": 1, "fwhm": 3.0, "saturation": 65535.0, "output": "aligned.fits"}
    result = render_frame(task, str(tmp_path / "out"), "spline3", False)
    with fits.open(result["path"]) as hdul:
        aligned, header = hdul[0].data.astype(float), hdul[0].header
    near = (slice(48, 74), slice(52, 78))
    assert header["OBSDB_NLINEAR"] > 0
    assert np.nanmin(aligned[near]) >= sky - 6 * sigma
    # The spline alone rings around the clipped core: the test can tell.
    raw, _ = resample(data, total_transform([step], data.shape), interpolation="spline3")
    assert np.nanmin(raw[near]) < sky - 6 * sigma


def test_cosmic_ray_hits_are_found():
    sky = sim.make_sky(seed=31, n_stars=700, extent=(800, 800), center=CENTRE)
    det = sim.make_detector(seed=32, size=(SIZE, SIZE), n_hot_pixels=0)
    image, truth = sim.simulate_frame(sim.FrameSpec(0, offset=(0.0, 0.0), rotation_deg=0.0, kind="good", fwhm=2.5),
                                      sky, rng=np.random.default_rng(33), size=(SIZE, SIZE), detector=det,
                                      n_cosmic_rays=60)
    found = sharp_defects(image, fwhm=2.5)
    hits = truth["cosmic_rays"]
    # A hit's brightest pixel is its first; a hit on a bright star may hide in it.
    caught = sum(bool(found[max(0, y - 1):y + 2, max(0, x - 1):x + 2].any()) for x, y in hits)
    assert caught >= 0.85 * len(hits), (caught, len(hits))
    # What was masked is near a hit: nothing else in a field of 700 stars.
    near = np.zeros_like(found)
    for x, y in hits:
        near[max(0, y - 3):y + 4, max(0, x - 3):x + 4] = True
    assert not (found & ~near).any()


def test_warm_pixels_too_faint_for_one_frame_are_found_in_the_nights_median():
    from obsdb.imaging.defects import detector_defects

    sky = sim.make_sky(seed=41, n_stars=500, extent=(800, 800), center=CENTRE)
    rng = np.random.default_rng(42)
    probe, _ = sim.simulate_frame(sim.FrameSpec(0, offset=(0.0, 0.0), rotation_deg=0.0, kind="good", fwhm=2.5),
                                  sky, rng=np.random.default_rng(1), size=(SIZE, SIZE),
                                  detector=sim.make_detector(seed=2, size=(SIZE, SIZE), n_hot_pixels=0),
                                  n_cosmic_rays=0)
    sigma = 1.4826 * np.median(np.abs(probe - np.median(probe)))
    flat = rng.choice(SIZE * SIZE, size=150, replace=False)
    warm_y, warm_x = np.divmod(flat, SIZE)
    # Four sky sigmas: below the six a single frame needs, far above the median's noise.
    detector = sim.Detector((SIZE, SIZE), warm_x, warm_y, np.full(150, 4.0 * sigma))
    frames = []
    for i in range(9):
        offset = tuple(rng.uniform(-6, 6, 2))
        image, _ = sim.simulate_frame(sim.FrameSpec(i, offset=offset, rotation_deg=0.0, kind="good", fwhm=2.5),
                                      sky, rng=np.random.default_rng(100 + i), size=(SIZE, SIZE),
                                      detector=detector, n_cosmic_rays=20)
        frames.append(image)
    warm = np.zeros((SIZE, SIZE), dtype=bool)
    warm[warm_y, warm_x] = True
    found = detector_defects(frames, fwhm=2.5)
    assert (found & warm).sum() >= 0.8 * warm.sum(), (found & warm).sum()
    assert (found & ~warm).sum() <= 2          # no star, no cosmic ray of any one frame
    # One frame alone cannot see them: the night's median is what finds them.
    assert (sharp_defects(frames[0], fwhm=2.5) & warm).sum() < 0.3 * warm.sum()
    # Too few frames, or frames that disagree in size: no mask rather than a wrong one.
    assert not detector_defects(frames[:2], fwhm=2.5).any()


def test_sharp_defects_noise_is_astropys_mad_std():
    """The noise is mad_std's, taken from the median already in hand: the same bits, so the same mask."""
    from astropy.stats import mad_std

    from obsdb.imaging.stats import MAD_TO_STD

    rng = np.random.default_rng(5)
    for sample in (rng.normal(1000.0, 25.0, 600_001).astype(np.float32),
                   np.round(rng.normal(300.0, 9.0, 40_000)).astype(np.float32),
                   rng.lognormal(2.0, 1.0, 9_999).astype(np.float32)):
        median = np.median(sample)
        assert float(np.median(np.abs(sample - median)) * MAD_TO_STD) == float(mad_std(sample))
