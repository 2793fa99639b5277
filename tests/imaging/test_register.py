"""Registration: matching, fitting, cross-correlation, the whole register()."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from obsdb import simulate as sim
from obsdb.imaging.fit import fit_transform
from obsdb.imaging.match import MatchError, match_stars
from obsdb.imaging.register import RegistrationOptions, RegistrationResult, detect_registration_stars, register
from obsdb.imaging.xcorr import cross_correlation_shift
from obsdb.imaging.transform import Transform

SIZE = 2048
CENTRE = ((SIZE - 1) / 2.0, (SIZE - 1) / 2.0)


# --------------------------------------------------------------------------- star lists


def star_lists(transform, *, seed=0, n=300, size=SIZE, noise=0.05, missing=0.0, extra=0,
               brightest=None):
    """A reference list and the frame list that ``transform`` maps onto it.

    Returns frame_xy, frame_flux, ref_xy, ref_flux and, for each frame star,
    the index of its reference star (-1 for spurious ones).
    """
    rng = np.random.default_rng(seed)
    ref = rng.uniform(0, size, (n, 2))
    flux = (rng.pareto(1.5, n) + 1) * 100
    fx, fy = transform.inverse_apply(ref[:, 0], ref[:, 1])
    frame = np.column_stack([fx, fy]) + rng.normal(0, noise, (n, 2))
    keep = np.all((frame >= 0) & (frame < size), axis=1) & (rng.random(n) >= missing)
    if brightest is not None:
        keep &= flux >= np.quantile(flux, 1 - brightest)
    idx = np.flatnonzero(keep)
    fxy, fflux = frame[idx], flux[idx] * rng.lognormal(0, 0.1, len(idx))
    if extra:
        fxy = np.vstack([fxy, rng.uniform(0, size, (extra, 2))])
        fflux = np.concatenate([fflux, (rng.pareto(1.5, extra) + 1) * 100])
        idx = np.concatenate([idx, np.full(extra, -1)])
    order = rng.permutation(len(idx))     # detection order is not brightness order
    return fxy[order], fflux[order], ref, flux, idx[order]


def corner_error(found: Transform, truth: Transform, size=SIZE) -> float:
    """Largest distance between the two mappings at the centre and the corners."""
    n = size - 1
    pts = np.array([[n / 2, n / 2], [0, 0], [n, 0], [0, n], [n, n]], dtype=float)
    a = np.column_stack(found.apply(pts[:, 0], pts[:, 1]))
    b = np.column_stack(truth.apply(pts[:, 0], pts[:, 1]))
    return float(np.hypot(*(a - b).T).max())


def match_and_fit(truth, max_offset=500.0, **kw):
    fxy, fflux, rxy, rflux, idx = star_lists(truth, **kw)
    i_f, i_r = match_stars(fxy, rxy, frame_flux=fflux, ref_flux=rflux, max_offset=max_offset,
                           center=CENTRE)
    fit = fit_transform(fxy[i_f], rxy[i_r], center=CENTRE)
    return fit, idx[i_f], i_r, (idx >= 0).sum()


def test_translation_only():
    truth = Transform(12.3, -45.6, cx=CENTRE[0], cy=CENTRE[1])
    fit, true_ref, i_r, n_common = match_and_fit(truth)
    assert np.array_equal(true_ref, i_r)
    assert len(i_r) >= 0.98 * n_common
    assert fit.model == "translation"
    assert fit.transform.rotation_deg == 0.0 and fit.transform.scale == 1.0
    assert fit.transform.dx == pytest.approx(12.3, abs=0.02)
    assert fit.transform.dy == pytest.approx(-45.6, abs=0.02)
    assert fit.residual_rms == pytest.approx(0.05 * np.sqrt(2), rel=0.25)


def test_rotation_1p5_deg():
    truth = Transform(-300.0, 420.0, 1.5, cx=CENTRE[0], cy=CENTRE[1])
    fit, true_ref, i_r, n_common = match_and_fit(truth, seed=1)
    assert np.array_equal(true_ref, i_r)
    assert fit.model in ("rotation", "similarity")
    assert fit.transform.rotation_deg == pytest.approx(1.5, abs=0.002)
    assert corner_error(fit.transform, truth) < 0.03


@pytest.mark.parametrize("dx,dy,rot", [(500, 500, 2.0), (-500, 500, -2.0), (500, -500, 0.0),
                                       (-500, -500, 1.0)])
def test_offsets_500(dx, dy, rot):
    truth = Transform(dx, dy, rot, cx=CENTRE[0], cy=CENTRE[1])
    fit, true_ref, i_r, _ = match_and_fit(truth, seed=2)
    assert np.array_equal(true_ref, i_r)
    assert corner_error(fit.transform, truth) < 0.03


def test_thirty_percent_non_overlap():
    truth = Transform(0.3 * SIZE, 0.0, 0.3, cx=CENTRE[0], cy=CENTRE[1])
    fit, true_ref, i_r, n_common = match_and_fit(truth, max_offset=0.32 * SIZE, seed=3)
    assert np.array_equal(true_ref, i_r)
    assert len(i_r) >= 0.98 * n_common
    assert corner_error(fit.transform, truth) < 0.03


def test_ten_percent_transparency_only_bright_stars():
    # 10 % transparency: only the brightest tenth of the stars is detected.
    truth = Transform(200.0, -100.0, 0.5, cx=CENTRE[0], cy=CENTRE[1])
    fit, true_ref, i_r, n_common = match_and_fit(truth, seed=4, brightest=0.1)
    assert n_common <= 30
    assert np.array_equal(true_ref, i_r)
    assert len(i_r) >= n_common - 1
    assert corner_error(fit.transform, truth) < 0.1


def test_spurious_and_missing_stars():
    truth = Transform(-77.0, 33.0, -1.0, cx=CENTRE[0], cy=CENTRE[1])
    fit, true_ref, i_r, _ = match_and_fit(truth, seed=5, missing=0.3, extra=150)
    assert np.all(true_ref >= 0), "a spurious star was matched"
    assert np.array_equal(true_ref, i_r)
    assert corner_error(fit.transform, truth) < 0.03


def test_unrelated_lists_do_not_match():
    rng = np.random.default_rng(6)
    a = rng.uniform(0, SIZE, (60, 2))
    b = rng.uniform(0, SIZE, (60, 2))
    with pytest.raises(MatchError):
        match_stars(a, b, center=CENTRE)


# --------------------------------------------------------------------------- fitting


def test_fit_rejects_outliers():
    rng = np.random.default_rng(7)
    truth = Transform(3.25, -1.75, 0.2, cx=CENTRE[0], cy=CENTRE[1])
    ref = rng.uniform(0, SIZE, (200, 2))
    frame = np.column_stack(truth.inverse_apply(ref[:, 0], ref[:, 1])) + rng.normal(0, 0.05, (200, 2))
    # 20 pairs off by 1-3 px the same way, as blends with a neighbour on one side
    bad = np.arange(0, 200, 10)
    ref_bad = ref.copy()
    ref_bad[bad] += rng.uniform(1, 3, (len(bad), 2))

    naive = fit_transform(frame, ref_bad, center=CENTRE, clip_sigma=1e9)
    fit = fit_transform(frame, ref_bad, center=CENTRE)
    assert corner_error(naive.transform, truth) > 0.1      # the outliers do matter
    assert fit.n_rejected >= len(bad)
    assert not fit.inliers[bad].any()
    assert fit.n_rejected <= len(bad) + 6
    assert corner_error(fit.transform, truth) < 0.02
    assert fit.residual_rms < 0.1


def test_no_rotation_reported_for_pure_shift():
    for seed in range(10):
        rng = np.random.default_rng(100 + seed)
        ref = rng.uniform(0, SIZE, (150, 2))
        frame = ref - [40.2, -7.7] + rng.normal(0, 0.1, ref.shape)
        fit = fit_transform(frame, ref, center=CENTRE)
        assert fit.model == "translation", (seed, fit.p_rotation)
        assert fit.transform.is_translation
        assert fit.transform.dx == pytest.approx(40.2, abs=0.03)


def test_small_rotation_is_kept():
    # 0.05 deg moves the corners of a 2048 frame by 0.9 px: translation only
    # would be wrong by that much.
    rng = np.random.default_rng(8)
    truth = Transform(5.0, 5.0, 0.05, cx=CENTRE[0], cy=CENTRE[1])
    ref = rng.uniform(0, SIZE, (150, 2))
    frame = np.column_stack(truth.inverse_apply(ref[:, 0], ref[:, 1])) + rng.normal(0, 0.1, (150, 2))
    fit = fit_transform(frame, ref, center=CENTRE)
    assert fit.model == "rotation"
    assert fit.transform.scale == 1.0
    assert fit.transform.rotation_deg == pytest.approx(0.05, abs=0.003)
    assert corner_error(fit.transform, truth) < 0.05
    shift_only = fit_transform(frame, ref, center=CENTRE, fit_rotation=False)
    assert corner_error(shift_only.transform, truth) > 0.7


def test_scale_change_is_fitted():
    rng = np.random.default_rng(9)
    truth = Transform(1.0, 2.0, 0.3, 1.002, cx=CENTRE[0], cy=CENTRE[1])
    ref = rng.uniform(0, SIZE, (150, 2))
    frame = np.column_stack(truth.inverse_apply(ref[:, 0], ref[:, 1])) + rng.normal(0, 0.05, (150, 2))
    fit = fit_transform(frame, ref, center=CENTRE)
    assert fit.model == "similarity"
    assert fit.transform.scale == pytest.approx(1.002, abs=1e-4)


# --------------------------------------------------------------------------- simulated frames

SMALL = 512
SMALL_CENTRE = ((SMALL - 1) / 2.0, (SMALL - 1) / 2.0)


@pytest.fixture(scope="module")
def field():
    """A sky, a detector with many fixed hot pixels, and a reference frame."""
    shape = (SMALL, SMALL)
    sky = sim.make_sky(seed=11, n_stars=700, extent=(800, 800), center=SMALL_CENTRE)
    det = sim.make_detector(seed=12, size=shape, n_hot_pixels=200)
    rng = np.random.default_rng(13)
    ref, _ = sim.simulate_frame(sim.FrameSpec(0, offset=(0.0, 0.0), rotation_deg=0.0), sky, rng=rng,
                                size=shape, detector=det)
    return sky, det, ref, rng


def simulated(field, **spec):
    sky, det, _, rng = field
    frame, truth = sim.simulate_frame(sim.FrameSpec(1, **spec), sky, rng=rng, size=SMALL, detector=det)
    return frame, Transform(truth["dx"], truth["dy"], truth["rotation_deg"], 1.0, *SMALL_CENTRE)


def naive_phase_correlation(frame, reference):
    """Whole-frame phase correlation without any cleaning (what must not be done)."""
    f = np.fft.fft2(reference - reference.mean()) * np.conj(np.fft.fft2(frame - frame.mean()))
    c = np.fft.ifft2(f / np.maximum(np.abs(f), 1e-12)).real
    iy, ix = np.unravel_index(np.argmax(c), c.shape)
    ny, nx = c.shape
    return (ix if ix <= nx // 2 else ix - nx), (iy if iy <= ny // 2 else iy - ny)


def test_xcorr_ignores_fixed_hot_pixels(field):
    frame, truth = simulated(field, kind="good", offset=(7.3, -11.6), rotation_deg=0.0)
    reference = field[2]
    assert naive_phase_correlation(frame, reference) == (0, 0)   # the trap is real
    dx, dy, quality = cross_correlation_shift(frame, reference)
    assert (dx, dy) != pytest.approx((0.0, 0.0), abs=1.0)
    assert dx == pytest.approx(truth.dx, abs=0.1)
    assert dy == pytest.approx(truth.dy, abs=0.1)
    assert quality > 20


def test_xcorr_faint_frame(field):
    # 3 % transparency under a 15,000 ADU sky: too faint for star matching.
    frame, truth = simulated(field, kind="cloud", offset=(-20.0, 31.5), rotation_deg=0.0,
                             transparency=0.03, background=15000.0)
    dx, dy, quality = cross_correlation_shift(frame, field[2], max_shift=100)
    assert quality >= 9
    assert dx == pytest.approx(truth.dx, abs=0.5)
    assert dy == pytest.approx(truth.dy, abs=0.5)


def test_xcorr_trailed_frame(field):
    frame, truth = simulated(field, kind="trail", offset=(5.5, 5.5), rotation_deg=0.0,
                             trail_length=30.0, trail_angle_deg=35.0)
    dx, dy, _ = cross_correlation_shift(frame, field[2])
    assert dx == pytest.approx(truth.dx, abs=0.3)
    assert dy == pytest.approx(truth.dy, abs=0.3)


def test_sign_convention(field):
    reference = field[2]
    # frame(x, y) = reference(x + 6, y - 4): a star at x_ref sits at x_ref - 6
    # in the frame, so dx = x_ref - x_frame = +6 and dy = -4.
    frame = np.roll(reference, (4, -6), axis=(0, 1))
    result = register(frame, reference, saturation=sim.SATURATE)
    assert result.ok and result.method == "stars"
    assert result.dx == pytest.approx(6.0, abs=0.01)
    assert result.dy == pytest.approx(-4.0, abs=0.01)
    dx, dy, _ = cross_correlation_shift(frame, reference)
    assert (dx, dy) == pytest.approx((6.0, -4.0), abs=0.05)


def test_register_rotated_frame(field):
    frame, truth = simulated(field, kind="good", offset=(60.0, -40.0), rotation_deg=1.0)
    result = register(frame, field[2], saturation=sim.SATURATE)
    assert result.ok and result.method == "stars"
    assert result.model in ("rotation", "similarity")
    assert corner_error(result.transform, truth, SMALL) < 0.05


def test_register_trailed_frame(field):
    frame, truth = simulated(field, kind="trail", offset=(-3.3, 2.1), rotation_deg=0.0,
                             trail_length=20.0, trail_angle_deg=60.0)
    result = register(frame, field[2], saturation=sim.SATURATE)
    assert result.ok
    assert corner_error(result.transform, truth, SMALL) < 0.05


def test_register_falls_back_to_xcorr_only_when_the_stars_confirm_it(field):
    frame, truth = simulated(field, kind="cloud", offset=(10.0, -10.0), rotation_deg=0.0,
                             transparency=0.05, background=15000.0)
    stars = detect_registration_stars(frame, saturation=sim.SATURATE)
    # Star matching made to fail (it would need more pairs than there are stars): the shift then comes
    # from the pixels, and is recorded because the frame's stars land on the reference's.
    result = register(frame, field[2], frame_stars=stars, saturation=sim.SATURATE, min_matches=10_000)
    assert result.ok and result.method == "xcorr"
    assert "star matching failed" in result.reason and "confirmed by the stars" in result.reason
    assert result.residual_rms is None and result.quality >= 9
    assert result.verification.ok and result.verification.n_matched >= 4
    assert corner_error(result.transform, truth, SMALL) < 0.3
    # Given two stars, no bright-star method can work: the frame is then registered from its faint stars
    # (found in its pixels), and right; from the star lists alone it is refused.
    few = stars[:2]
    faint = register(frame, field[2], frame_stars=few, saturation=sim.SATURATE)
    assert faint.ok and faint.method == "faint-stars" and "too few stars" in faint.reason
    assert corner_error(faint.transform, truth, SMALL) < 0.3
    alone = register(None, None, frame_stars=few, reference_stars=detect_registration_stars(
        field[2], saturation=sim.SATURATE), use_xcorr=False, shape=(SMALL, SMALL))
    assert not alone.ok and alone.transform is None and "too few stars" in alone.reason


def test_noise_only_frame_is_not_registered(field):
    _, det, reference, _ = field
    rng = np.random.default_rng(14)
    noise = rng.normal(800.0, 25.0, (SMALL, SMALL)).astype(np.float32)
    noise[det.hot_y, det.hot_x] += np.minimum(det.hot_value, 60000)   # the same hot pixels
    result = register(noise, reference, saturation=sim.SATURATE)
    assert not result.ok
    assert result.transform is None and result.dx is None and result.method is None
    assert "star" in result.reason and "cross-correlation" in result.reason
    assert result.as_dict()["transform"] is None


def test_reference_stars_are_reused(field):
    frame, truth = simulated(field, kind="good", offset=(1.5, 2.5), rotation_deg=0.0)
    ref_stars = detect_registration_stars(field[2], saturation=sim.SATURATE)
    # No reference image at all: the star list is all register needs.
    result = register(frame, None, reference_stars=ref_stars, saturation=sim.SATURATE,
                      use_xcorr=False)
    assert result.ok and result.n_reference_stars <= len(ref_stars)
    assert corner_error(result.transform, truth, SMALL) < 0.02


# --------------------------------------------------------------------------- real frames


def read(path):
    from astropy.io import fits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fits.getdata(path).astype(np.float64)


def test_real_dss_pair(real_data):
    one = read(real_data / "pair_dss" / "dss_test1.fits")
    two = read(real_data / "pair_dss" / "dss_test2.fits")
    # Measured (and confirmed by the files' WCS, which puts pixel (88, 88) of
    # test1 at (161, 18) of test2): frame test1 onto reference test2 is
    # dx = +73, dy = -70 in our convention.
    result = register(one, two)
    assert result.ok
    assert result.dx == pytest.approx(73.0, abs=0.5)
    assert result.dy == pytest.approx(-70.0, abs=0.5)
    back = register(two, one)
    assert back.ok
    assert (back.dx, back.dy) == pytest.approx((-result.dx, -result.dy), abs=0.3)


def test_real_m67_crops(real_data):
    plate = read(real_data / "single" / "M67_DSS_POSS1_M6707HH.fits.gz")
    ox, oy = 37, -52
    y0 = x0 = 150
    reference = plate[y0:y0 + 800, x0:x0 + 800]
    frame = plate[y0 + oy:y0 + oy + 800, x0 + ox:x0 + ox + 800]
    # frame(x, y) = reference(x + 37, y - 52): dx = +37, dy = -52
    result = register(frame, reference)
    assert result.ok and result.method == "stars"
    assert result.transform.is_translation
    assert result.dx == pytest.approx(37.0, abs=0.05)
    assert result.dy == pytest.approx(-52.0, abs=0.05)
    dx, dy, _ = cross_correlation_shift(frame, reference)
    assert (dx, dy) == pytest.approx((37.0, -52.0), abs=0.1)


# --------------------------------------------------------------------------- any rotation, scale, parity


def as_stars(xy, flux):
    """A structured star list (x, y, flux, peak) as detection gives it."""
    out = np.zeros(len(xy), dtype=[("x", "f8"), ("y", "f8"), ("flux", "f8"), ("peak", "f8")])
    out["x"], out["y"], out["flux"], out["peak"] = xy[:, 0], xy[:, 1], flux, 0.2 * flux
    return out


def overlap_error(found: Transform, truth: Transform, size=SIZE) -> float:
    """Largest distance between the two mappings over the frame pixels that land in the reference."""
    grid = np.linspace(0, size - 1, 41)
    x, y = (a.ravel() for a in np.meshgrid(grid, grid))
    tx, ty = truth.apply(x, y)
    inside = (tx >= 0) & (tx <= size - 1) & (ty >= 0) & (ty <= size - 1)
    fx, fy = found.apply(x[inside], y[inside])
    return float(np.hypot(fx - tx[inside], fy - ty[inside]).max())


def register_lists(truth, *, seed=3, n=400, noise=0.03, **kw):
    fxy, fflux, rxy, rflux, idx = star_lists(truth, seed=seed, n=n, noise=noise, **kw)
    return register(None, None, frame_stars=as_stars(fxy, fflux), reference_stars=as_stars(rxy, rflux),
                    use_xcorr=False, shape=(SIZE, SIZE)), (idx >= 0).sum()


@pytest.mark.parametrize("rotation", [180.0, 121.5, 90.0, -135.0, 179.2])
def test_any_rotation_with_half_the_field_in_common(rotation):
    # Shifted by half a frame: half of the reference's stars have a counterpart.
    truth = Transform(SIZE / 2, 37.25, rotation, 1.0, cx=CENTRE[0], cy=CENTRE[1])
    result, n_common = register_lists(truth)
    assert n_common < 0.6 * 400
    assert result.ok and result.method == "stars", result.reason
    assert "any rotation" in result.reason
    assert result.verification.ok
    assert overlap_error(result.transform, truth) < 0.01


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_another_binning_or_camera(scale):
    truth = Transform(-120.0, 80.0, 3.0, scale, cx=CENTRE[0], cy=CENTRE[1])
    result, _ = register_lists(truth)
    assert result.ok, result.reason
    assert result.transform.scale == pytest.approx(scale, rel=1e-4)
    # Errors in reference pixels: the frame's centroid noise grows with the scale.
    assert overlap_error(result.transform, truth) < 0.01 * max(1.0, scale)


def test_a_mirrored_frame_is_refused_by_name():
    truth = Transform(40.0, -25.0, 30.0, 1.0, cx=CENTRE[0], cy=CENTRE[1])
    fxy, fflux, rxy, rflux, _ = star_lists(truth, seed=5, n=400, noise=0.03)
    fxy = fxy.copy()
    fxy[:, 0] = 2 * CENTRE[0] - fxy[:, 0]          # the camera's image flipped left to right
    result = register(None, None, frame_stars=as_stars(fxy, fflux), reference_stars=as_stars(rxy, rflux),
                      use_xcorr=False, shape=(SIZE, SIZE))
    assert not result.ok and result.transform is None
    assert result.reason.startswith("mirrored: the frame is a parity flip of the reference")


def test_another_field_and_an_empty_frame_are_refused_with_reasons():
    rng = np.random.default_rng(8)
    one, two = rng.uniform(0, SIZE, (300, 2)), rng.uniform(0, SIZE, (300, 2))
    flux = (rng.pareto(1.5, 300) + 1) * 100
    other = register(None, None, frame_stars=as_stars(one, flux), reference_stars=as_stars(two, flux),
                     use_xcorr=False, shape=(SIZE, SIZE))
    assert not other.ok and other.transform is None
    assert "star matching failed" in other.reason and "at any rotation and scale" in other.reason
    empty = register(None, None, frame_stars=as_stars(one[:0], flux[:0]), reference_stars=as_stars(two, flux),
                     use_xcorr=False, shape=(SIZE, SIZE))
    assert not empty.ok and "too few stars (0 in frame" in empty.reason


def test_no_random_transform_passes_the_verification():
    from obsdb.imaging.verify import verify_transform

    truth = Transform(15.0, -30.0, 0.3, 1.0, cx=CENTRE[0], cy=CENTRE[1])
    fxy, fflux, rxy, rflux, _ = star_lists(truth, seed=11, n=400, noise=0.05)
    frame, reference = as_stars(fxy, fflux), as_stars(rxy, rflux)
    assert verify_transform(frame, reference, truth, (SIZE, SIZE)).ok
    rng = np.random.default_rng(12)
    passed = []
    for _ in range(300):
        wrong = Transform(rng.uniform(-SIZE / 2, SIZE / 2), rng.uniform(-SIZE / 2, SIZE / 2),
                          rng.uniform(-180, 180), rng.uniform(0.5, 2.0), cx=CENTRE[0], cy=CENTRE[1])
        check = verify_transform(frame, reference, wrong, (SIZE, SIZE))
        passed.append(check.ok)
        assert check.expected > 0 or check.n_inside == 0
    assert not any(passed)
    # A transform 3 px off is wrong too: the stars miss by more than the radius.
    off = Transform(truth.dx + 3.0, truth.dy, truth.rotation_deg, 1.0, cx=CENTRE[0], cy=CENTRE[1])
    assert not verify_transform(frame, reference, off, (SIZE, SIZE)).ok


@pytest.mark.parametrize("rotation", [180.0, 121.5])
def test_rotated_frames_with_half_the_field_in_common_are_registered(field, rotation):
    # Pixels, not lists: a frame of the same sky turned by `rotation` and moved by half its width.
    frame, truth = simulated(field, kind="good", offset=(SMALL / 2, 11.4), rotation_deg=rotation)
    result = register(frame, field[2], saturation=sim.SATURATE)
    assert result.ok and result.method == "stars", result.reason
    turn = (result.transform.rotation_deg - truth.rotation_deg + 180.0) % 360.0 - 180.0
    assert abs(turn) < 0.01
    # As precise as at a small rotation with the same overlap (0.02-0.05 px here with ~26 stars in
    # common, as for 0.3 deg; the star-list tests above reach < 0.01 px with 170 stars).
    assert overlap_error(result.transform, truth, SMALL) < 0.06


# --------------------------------------------------------------------------- never a wrong shift


def _fixed_pattern(shape, seed):
    """A sensor's fixed pattern: column offsets, a few warm columns and a vertical gradient."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    pattern = np.tile(rng.normal(0.0, 15.0, nx), (ny, 1))
    for column in rng.choice(nx, 4, replace=False):
        pattern[:, column] += rng.uniform(200, 800)
    return pattern + np.linspace(0, 40, ny)[:, None]


def _faint_pair(seed, *, n_stars, flux, offset):
    """A 5 s frame and reference of a faint sky, a sensor's fixed pattern and 400 hot pixels on both."""
    shape = (SMALL, SMALL)
    sky = sim.make_sky(seed=seed, n_stars=n_stars, extent=(700, 700), center=SMALL_CENTRE, flux_min=flux[0],
                       flux_max=flux[1])
    det = sim.make_detector(seed=seed + 100, size=shape, n_hot_pixels=400)
    rng = np.random.default_rng(seed + 200)
    pattern = _fixed_pattern(shape, seed + 300)
    spec = dict(kind="good", exptime=5.0, rotation_deg=0.0, background=800.0)
    reference, _ = sim.simulate_frame(sim.FrameSpec(0, offset=(0.0, 0.0), **spec), sky, rng=rng, size=shape,
                                      detector=det)
    frame, truth = sim.simulate_frame(sim.FrameSpec(1, offset=offset, **spec), sky, rng=rng, size=shape,
                                      detector=det)
    return frame + pattern, reference + pattern, truth


@pytest.mark.parametrize("seed", [21, 22, 23, 24])
def test_a_faint_frame_with_fixed_pattern_is_registered_right_or_refused(seed):
    frame, reference, truth = _faint_pair(seed, n_stars=40, flux=(300.0, 2.0e4), offset=(20.0, -13.0))
    result = register(frame, reference, saturation=sim.SATURATE)
    if result.ok:
        assert result.dx == pytest.approx(truth["dx"], abs=0.5)
        assert result.dy == pytest.approx(truth["dy"], abs=0.5)
        assert result.verification.ok
    else:
        assert result.transform is None and result.reason
    # Never the fixed pattern's zero shift.
    assert not (result.ok and abs(result.dx) < 5 and abs(result.dy) < 5)


def test_noise_and_a_flat_field_are_refused_with_reasons(field):
    _, det, reference, _ = field
    rng = np.random.default_rng(31)
    noise = rng.normal(1000.0, 30.0, reference.shape)
    flat = np.full(reference.shape, 20000.0) + np.linspace(0, 500, reference.shape[1])[None, :]
    for image in (noise, flat):
        result = register(image, reference, saturation=sim.SATURATE)
        assert not result.ok and result.transform is None
        assert (result.reason.startswith(("too few stars", "no stars can be detected"))
                or "not confirmed" in result.reason or "significance" in result.reason), result.reason


def test_twice_the_scale_with_most_of_the_frame_outside_the_reference():
    # Another camera with twice the pixel scale: the reference covers a quarter of the frame, whose
    # other stars (brighter ones too) have no counterpart.
    truth = Transform(300.0, -250.0, 12.0, 2.0, cx=CENTRE[0], cy=CENTRE[1])
    fxy, fflux, rxy, rflux, idx = star_lists(truth, seed=9, n=300, noise=0.02)
    rng = np.random.default_rng(10)
    outside = rng.uniform(0, SIZE, (2000, 2))
    mapped = np.column_stack(truth.apply(outside[:, 0], outside[:, 1]))
    outside = outside[~np.all((mapped >= 0) & (mapped < SIZE), axis=1)][:1000]
    frame = as_stars(np.vstack([fxy, outside]), np.concatenate([fflux, (rng.pareto(1.5, len(outside)) + 1) * 100]))
    assert len(fxy) < 0.25 * len(frame)
    result = register(None, None, frame_stars=frame, reference_stars=as_stars(rxy, rflux), use_xcorr=False,
                      shape=(SIZE, SIZE))
    assert result.ok, result.reason
    assert "on the frame's" in result.reason
    assert overlap_error(result.transform, truth) < 0.02


@pytest.mark.parametrize("seed", [41, 42, 43, 44])
def test_a_faint_crowded_frame_is_registered_from_its_faint_stars(seed):
    # A cluster of 3000 faint stars, 5 s: a handful reach the usual detection, the rest a careful eye
    # (or a matched filter) still sees; the sensor's column pattern and 400 hot pixels on top.
    true = (10.0 + 7.5 * (seed % 4), -13.0 - 4.0 * (seed % 3))
    frame, reference, truth = _faint_pair(seed, n_stars=3000, flux=(200.0, 6000.0), offset=true)
    assert len(detect_registration_stars(frame, saturation=sim.SATURATE)) < 15
    result = register(frame, reference, saturation=sim.SATURATE)
    assert result.ok and result.method == "faint-stars", result.reason
    assert result.dx == pytest.approx(truth["dx"], abs=0.5) and result.dy == pytest.approx(truth["dy"], abs=0.5)
    assert result.verification.ok and result.verification.n_matched > 20 * max(result.verification.expected, 1)


# --------------------------------------------------------------------------- options, results, the Poisson tail


def test_options_and_keyword_overrides_register_alike():
    truth = Transform(-120.0, 80.0, 0.5, 1.0, cx=CENTRE[0], cy=CENTRE[1])
    fxy, fflux, rxy, rflux, _ = star_lists(truth, seed=13, n=300, noise=0.03)
    lists = dict(frame_stars=as_stars(fxy, fflux), reference_stars=as_stars(rxy, rflux), shape=(SIZE, SIZE))
    options = RegistrationOptions(use_xcorr=False, min_matches=8)
    by_options = register(None, None, options=options, **lists)
    by_keywords = register(None, None, use_xcorr=False, min_matches=8, **lists)
    assert by_options.ok and by_options == by_keywords
    assert corner_error(by_options.transform, truth) < 0.02
    # A refusal from the options is the options': far more pairs than stars.
    assert not register(None, None, options=options, min_matches=10_000, **lists).ok
    with pytest.raises(TypeError):
        register(None, None, use_xcor=False, **lists)          # a misspelt option is no option
    with pytest.raises(TypeError):
        RegistrationResult(True, "stars", truth)               # built by keyword only
    with pytest.raises(AttributeError):
        options.max_rms = 2.0                                  # frozen


def test_poisson_tail_is_the_sum_of_the_poisson_terms():
    import math

    from obsdb.imaging.verify import poisson_tail

    for lam in (0.003, 0.5, 4.0, 30.0):
        for k in (0, 1, 3, 10, 40):
            direct = 1.0 - sum(math.exp(-lam) * lam ** i / math.factorial(i) for i in range(k))
            tail = sum(math.exp(-lam + i * math.log(lam) - math.lgamma(i + 1)) for i in range(k, k + 400))
            assert poisson_tail(k, lam) == pytest.approx(tail if k > lam else direct, rel=1e-9, abs=1e-300)
    assert poisson_tail(5, 0.0) == 0.0 and poisson_tail(0, 0.0) == 1.0
