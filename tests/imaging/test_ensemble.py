"""Cross-identification and ensemble zero points (obsdb/imaging/ensemble.py) on a night with known truth."""

import numpy as np
import pytest

from obsdb.imaging.ensemble import MATCH_RADIUS, ensemble_zero_points, identify_sources

GAIN, SKY_NOISE_E, AREA, ZP = 1.5, 12.0, 60.0, 24.0


def _errors(mag):
    """Photon and sky noise of an aperture (CCD equation), in magnitudes."""
    electrons = GAIN * 10 ** (-0.4 * (mag - ZP))
    return 1.0857 * np.sqrt(electrons + AREA * SKY_NOISE_E**2) / electrons


@pytest.fixture(scope="module")
def night():
    rng = np.random.default_rng(42)
    n_frames, n_stars = 80, 150
    t = np.linspace(0.0, 4.0 / 24, n_frames)                     # days
    true_mag = rng.uniform(10.0, 17.0, n_stars)
    true_mag[0] = 10.0                                             # the transiting star (S/N 700)
    true_mag[1] = 12.5                                             # a pulsating variable
    transparency = np.cumsum(rng.normal(0, 0.02, n_frames)) + 0.3 * (t / t.max()) ** 2
    light = np.zeros((n_frames, n_stars))
    t0, duration, depth = 2.1 / 24, 1.2 / 24, 0.010              # mid-time, length (days), flux depth
    in_transit = np.abs(t - t0) < duration / 2
    light[in_transit, 0] = -2.5 * np.log10(1 - depth)
    light[:, 1] = 0.25 * np.sin(2 * np.pi * t / (3.0 / 24))
    truth = true_mag[None, :] + transparency[:, None] + light
    err = _errors(truth)
    measured = truth + rng.normal(0, 1, truth.shape) * err
    lost = rng.random(truth.shape) < 0.03                          # cosmic rays, edges: some measurements missing
    lost[:, :2] = False
    measured[lost] = np.nan
    return dict(t=t, mag=measured, err=err, transparency=transparency, true_mag=true_mag,
                t0=t0, duration=duration, depth=depth, in_transit=in_transit)


def test_zero_points_are_recovered_within_5_mmag(night):
    fit = ensemble_zero_points(night["mag"], night["err"])
    relative_truth = night["transparency"] - night["transparency"].mean()
    relative_fit = fit.zero_point - fit.zero_point.mean()
    assert np.max(np.abs(relative_fit - relative_truth)) < 0.005
    assert np.all(fit.zero_point_err < 0.003)


def test_variables_are_found_and_left_out_of_the_ensemble(night):
    fit = ensemble_zero_points(night["mag"], night["err"])
    assert fit.variable[1] and not fit.comparison[1]
    assert fit.variable.sum() <= 3                                  # constant stars are not called variable
    assert fit.comparison.sum() > 120


def test_bright_constant_stars_repeat_within_5_mmag(night):
    fit = ensemble_zero_points(night["mag"], night["err"])
    differential = fit.differential(night["mag"])
    constant = np.arange(night["true_mag"].size) >= 2
    bright = (night["true_mag"] < 12.0) & constant                  # S/N above 290 in every frame
    assert bright.sum() >= 5 and np.all(fit.comparison[bright])
    scatter = np.nanstd(differential[:, bright], axis=0)
    assert np.all(scatter < 0.005), scatter


def test_the_transit_depth_and_mid_time_come_back(night):
    fit = ensemble_zero_points(night["mag"], night["err"], exclude=np.arange(150) == 0)
    lc = fit.differential(night["mag"])[:, 0]
    flux = 10 ** (-0.4 * (lc - np.nanmedian(lc[~night["in_transit"]])))
    t = night["t"]
    best = None
    for t0 in np.arange(t[0], t[-1], 0.5 / 1440):                  # a box of the known length, slid by 30 s
        inside = np.abs(t - t0) < night["duration"] / 2
        if inside.sum() < 5 or (~inside).sum() < 5:
            continue
        depth = np.mean(flux[~inside]) - np.mean(flux[inside])
        residual = np.sum((flux - np.where(inside, 1 - depth, 1)) ** 2)
        if best is None or residual < best[0]:
            best = (residual, t0, depth)
    _, t0, depth = best
    assert abs(t0 - night["t0"]) * 1440 < 2.0                      # minutes
    assert depth == pytest.approx(night["depth"], rel=0.10)


def test_each_star_is_identified_in_every_frame_it_falls_in_and_no_other():
    rng = np.random.default_rng(3)
    truth = rng.uniform(0, 500, (300, 2))
    frames, true_ids = [], []
    for f in range(12):
        offset = rng.uniform(-60, 60, 2)                           # the footprint moves: stars leave and enter
        visible = np.all((truth - offset > 0) & (truth - offset < 440), axis=1) & (rng.random(300) > 0.05)
        ids = np.flatnonzero(visible)
        frames.append(truth[ids] + rng.normal(0, 0.15, (ids.size, 2)))
        true_ids.append(ids)
    sources, members = identify_sources(frames)
    from scipy.spatial import cKDTree

    spacing, _ = cKDTree(truth).query(truth, k=2)
    isolated = spacing[:, 1] > 2 * MATCH_RADIUS                    # a pair closer than that is one blob to anyone
    mapping = {}
    for ids, found in zip(true_ids, members):
        for true_id, source in zip(ids, found):
            if not isolated[true_id]:
                continue
            assert source >= 0                                      # identified in every frame it falls in
            assert mapping.setdefault(true_id, source) == source    # and as the same source each time
    assert len(set(mapping.values())) == len(mapping)              # no two stars share a source
    seen = set().union(*[set(ids) for ids in true_ids])
    assert len(mapping) == len([i for i in seen if isolated[i]])
    assert len(sources) <= len(seen)                               # no star split in two


def test_a_star_never_measured_does_not_poison_the_zero_points():
    from obsdb.imaging.ensemble import ensemble_zero_points

    true = np.array([12.0, 13.0, 14.0, 15.0, 16.0])
    clouds = np.array([0.0, 0.3, 0.1, 0.0])
    mag = true[None, :] + clouds[:, None]
    mag[:, 4] = np.nan                   # measured in no frame (off the frame in this band, say)
    fit = ensemble_zero_points(mag, np.full(mag.shape, 0.01))
    assert np.allclose(fit.zero_point - fit.zero_point[0], clouds, atol=1e-6)
    assert np.isnan(fit.magnitude[4]) and np.allclose(fit.magnitude[:4] - true[:4], fit.magnitude[0] - 12.0)
