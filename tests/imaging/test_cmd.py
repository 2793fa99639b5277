"""Mean magnitudes, colours, calibration against standard stars and transit fits (obsdb/imaging/cmd.py)."""

import doctest

import numpy as np
import pytest

import obsdb.imaging.cmd as cmd
from obsdb.imaging.cmd import (
    calibrate,
    colour_index,
    fit_calibration,
    fit_transit,
    StandardsFileError,
    match_sky,
    mean_magnitudes,
    read_standards,
    relative_flux,
    trapezoid,
)


def test_the_docstring_examples_hold():
    result = doctest.testmod(cmd, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 9 and result.failed == 0


# --------------------------------------------------------------------------- mean magnitudes


def test_a_weighted_mean_and_its_error_match_the_scatter_of_many_draws():
    rng = np.random.default_rng(1)
    truth = np.array([12.0, 14.5, 16.0])
    err = np.tile([0.005, 0.02, 0.08], (15, 1)) * rng.uniform(0.7, 1.5, (15, 3))
    pulls = []
    for _ in range(300):
        mag = truth + rng.normal(0, 1, err.shape) * err
        mean = mean_magnitudes(mag, err)
        pulls.append((mean.mag - truth) / mean.err)
    spread = np.std(pulls, axis=0)
    # The chi-square scaling only ever widens the error: the pulls' spread sits a little below 1.
    assert np.all((spread > 0.85) & (spread < 1.1)), spread


def test_frames_that_disagree_widen_the_error_and_unused_frames_do_not_count():
    mag = np.array([[12.0], [12.2], [12.0], [12.2]])
    err = np.full(mag.shape, 0.01)
    mean = mean_magnitudes(mag, err)
    assert mean.mag[0] == pytest.approx(12.1)
    assert mean.chi2[0] == pytest.approx(4 * 0.1**2 / 0.01**2 / 3)
    assert mean.err[0] == pytest.approx(0.005 * np.sqrt(mean.chi2[0]))
    kept = mean_magnitudes(mag, err, use=[True, False, True, False])
    assert kept.mag[0] == pytest.approx(12.0) and kept.n[0] == 2 and kept.err[0] == pytest.approx(0.01 / np.sqrt(2))


def test_a_source_measured_nowhere_has_no_mean():
    mean = mean_magnitudes([[np.nan, 12.0]], [[np.nan, 0.01]])
    assert np.isnan(mean.mag[0]) and np.isnan(mean.err[0]) and mean.n[0] == 0
    with pytest.raises(ValueError, match="shape"):
        mean_magnitudes(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="use has 2 entries for 3 frames"):
        mean_magnitudes(np.zeros((3, 2)), np.ones((3, 2)), use=[True, False])


def test_a_colour_carries_both_errors():
    colour, err = colour_index([14.0, 15.0], [0.003, 0.04], [13.2, 15.5], [0.004, 0.03])
    assert colour.tolist() == pytest.approx([0.8, -0.5])
    assert err.tolist() == pytest.approx([0.005, 0.05])


# --------------------------------------------------------------------------- matching and calibration


def test_matching_by_sky_position_is_one_to_one_and_keeps_to_the_radius():
    ref_ra = np.array([359.9999, 120.0, 120.0])
    ref_dec = np.array([0.0, 80.0, 10.0])
    # Across RA = 0, near the pole (1 arcsec is 0.0029 deg of RA at Dec 80), two claimants, one too far.
    ra = np.array([0.0001, 120.0 + 1.0 / 3600 / np.cos(np.radians(80.0)), 120.0, 120.0 + 0.3 / 3600, 120.0])
    dec = np.array([0.0, 80.0, 10.0 + 0.5 / 3600, 10.0, 10.0 + 3.0 / 3600])
    index, separation = match_sky(ra, dec, ref_ra, ref_dec, radius=2.0)
    assert index.tolist() == [0, 1, -1, 2, -1]
    assert separation[0] == pytest.approx(0.72, abs=0.01)
    assert separation[1] == pytest.approx(1.0, abs=0.01)
    assert separation[3] == pytest.approx(0.3, abs=0.01)
    assert np.isnan(separation[[2, 4]]).all()
    empty, _ = match_sky([], [], ref_ra, ref_dec)
    assert empty.size == 0


def test_a_standard_catalogue_is_read_from_csv_with_vizier_names_and_sexagesimal_positions(tmp_path):
    path = tmp_path / "apass.csv"
    path.write_text("\ufeffRAJ2000,DEJ2000,Bmag,e_Bmag,Vmag,e_Vmag,R\n"
                    "10 35 48.0,-58 13 48,11.20,0.02,10.90,0.01,10.7\n"
                    "\n"
                    "158.95,-0:30:00,,,12.5,,\n", encoding="utf-8")
    standards = read_standards(path)
    assert standards.bands == ["B", "V", "R"] and sorted(standards.err) == ["B", "V"]
    assert standards.ra.tolist() == pytest.approx([158.95, 158.95])
    assert standards.dec.tolist() == pytest.approx([-58.23, -0.5])
    assert standards.mag["V"].tolist() == [10.9, 12.5] and np.isnan(standards.mag["B"][1])
    assert standards.err["B"][0] == 0.02 and np.isnan(standards.mag["R"][1])


@pytest.mark.parametrize("content, message", [
    (None, "cannot read the standard catalogue"),
    ("", "empty"),
    ("x,Dec,V\n1,2,3\n", "no RA column in the header (x, Dec, V)"),
    ("RA,Dec\n1,2\n", "no magnitude column"),
    ("RA,Dec,V\n10,20,11.0\n10,20,bright\n", "line 3: V 'bright' is not a number"),
    ("RA,Dec,V\nten,20,11.0\n", "line 2: RA 'ten' or Dec '20' is not a position"),
    ("RA,Dec,V\n400,20,11.0\n", "line 2: RA 400 or Dec 20 degrees is off the sky"),
])
def test_a_bad_standard_catalogue_is_one_line_naming_file_and_line(tmp_path, content, message):
    path = tmp_path / "std.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(StandardsFileError) as caught:
        read_standards(path)
    assert str(caught.value).startswith(str(path)) and message in str(caught.value)
    assert "\n" not in str(caught.value)
    from obsdb.errors import ObsdbError

    assert isinstance(caught.value, ObsdbError)


def _standards(rng, n=60, zero_point=24.3, term=0.07, noise=0.01, outliers=4):
    colour = rng.uniform(-0.3, 1.8, n)
    instrumental = rng.uniform(-12.0, -6.0, n)
    err = np.full(n, noise)
    standard = instrumental + zero_point + term * colour + rng.normal(0, noise, n)
    standard[:outliers] += rng.choice([-1, 1], outliers) * rng.uniform(0.2, 1.0, outliers)   # variables, blends
    return instrumental, standard, colour, err


def test_zero_point_and_colour_term_come_back_with_honest_errors_and_outliers_left_out():
    rng = np.random.default_rng(7)
    zero_pulls, term_pulls, lost = [], [], []
    for _ in range(200):
        instrumental, standard, colour, err = _standards(rng)
        fit = fit_calibration(instrumental, standard, colour=colour, err=err, colour_name="b-v")
        assert not fit.used[:4].any()
        lost.append(56 - fit.used[4:].sum())
        zero_pulls.append((fit.zero_point - 24.3) / fit.zero_point_err)
        term_pulls.append((fit.colour_term - 0.07) / fit.colour_term_err)
    # Good stars clipped: 3 sigma of 56 would lose 0.15 a fit; iterated clipping of a robust spread a few more.
    assert np.mean(lost) < 1.0 and max(lost) <= 6
    assert 0.8 < np.std(zero_pulls) < 1.2 and 0.8 < np.std(term_pulls) < 1.2
    assert abs(np.mean(zero_pulls)) < 0.25 and abs(np.mean(term_pulls)) < 0.25
    assert fit.rms == pytest.approx(0.01, rel=0.3)
    assert np.abs(fit.residuals[:4]).min() > 0.15
    assert fit.colour_name == "b-v"


def test_a_zero_point_alone_and_too_few_stars():
    rng = np.random.default_rng(3)
    instrumental, standard, _, _ = _standards(rng, term=0.0, outliers=0)
    fit = fit_calibration(instrumental, standard)
    assert fit.zero_point == pytest.approx(24.3, abs=0.005) and fit.colour_term == 0.0
    assert fit.apply([-10.0])[0] == pytest.approx(14.3, abs=0.005)
    with pytest.raises(ValueError, match="2 usable standard stars: at least 3"):
        fit_calibration([1.0, 2.0, np.nan], [20.0, 21.0, 22.0], colour=[0.1, 0.2, 0.3])
    with_term = fit_calibration(instrumental, standard, colour=np.zeros_like(standard) + rng.normal(0, 1, 60))
    with pytest.raises(ValueError, match="colour term"):
        with_term.apply([-10.0])


def test_calibrate_matches_a_shuffled_catalogue_with_extra_stars():
    rng = np.random.default_rng(11)
    n = 40
    ra = 158.95 + rng.uniform(-0.05, 0.05, n)
    dec = -58.23 + rng.uniform(-0.05, 0.05, n)
    instrumental, standard, colour, _ = _standards(rng, n=n, outliers=0, noise=0.005)
    order = rng.permutation(n)
    # The catalogue: the stars shuffled, positions good to 0.3 arcsec, and 30 stars beyond the field.
    cat_ra = np.concatenate([ra[order] + rng.normal(0, 0.3 / 3600, n), 160 + rng.uniform(0, 1, 30)])
    cat_dec = np.concatenate([dec[order] + rng.normal(0, 0.3 / 3600, n), -57 + rng.uniform(0, 1, 30)])
    cat_mag = np.concatenate([standard[order], rng.uniform(10, 15, 30)])
    # Ten sources are not in the catalogue.
    extra_ra, extra_dec = 158.95 + rng.uniform(-0.05, 0.05, 10), -58.4 + rng.uniform(-0.01, 0.01, 10)
    fit, matched = calibrate(np.concatenate([ra, extra_ra]), np.concatenate([dec, extra_dec]),
                             np.concatenate([instrumental, np.full(10, -9.0)]), cat_ra, cat_dec, cat_mag,
                             colour=np.concatenate([colour, np.zeros(10)]), radius=1.5)
    assert matched.tolist() == list(range(n))
    assert fit.zero_point == pytest.approx(24.3, abs=0.005) and fit.colour_term == pytest.approx(0.07, abs=0.005)
    assert fit.used.all() and fit.rms < 0.008


# --------------------------------------------------------------------------- transits


def _light_curve(rng, *, depth=0.012, mid=0.35, duration=0.05, ingress=0.01, noise=0.002, cadence=3 / 1440):
    t = np.arange(0.2, 0.5, cadence) + rng.uniform(0, cadence)
    flux = trapezoid(t, mid, depth, duration, ingress) * (1 + rng.normal(0, noise, t.size))
    return t, flux, np.full(t.size, noise)


def test_a_trapezoid_fit_recovers_depth_and_mid_time_within_its_errors():
    rng = np.random.default_rng(5)
    mids, depths = [], []
    for _ in range(60):
        t, flux, err = _light_curve(rng)
        fit = fit_transit(t, flux, err)
        mids.append((fit.mid_time - 0.35) / fit.mid_time_err)
        depths.append((fit.depth - 0.012) / fit.depth_err)
        assert abs(fit.mid_time - 0.35) * 1440 < 3 and abs(fit.depth - 0.012) < 0.002
    assert 0.7 < np.std(mids) < 1.4 and 0.7 < np.std(depths) < 1.4
    assert fit.model == "trapezoid" and fit.ingress == pytest.approx(0.01, abs=0.006)
    assert fit.chi2 == pytest.approx(1.0, abs=0.4)


def test_a_box_fit_and_a_fit_without_errors():
    rng = np.random.default_rng(9)
    t, flux, err = _light_curve(rng, ingress=1e-4, noise=0.001)
    box = fit_transit(t, flux * 3.0, err * 3.0, model="box")
    assert box.model == "box" and box.baseline == pytest.approx(3.0, rel=1e-3)
    assert abs(box.mid_time - 0.35) * 1440 < 2 and box.depth == pytest.approx(0.012, abs=0.001)
    assert 0 < box.mid_time_err * 1440 < 3
    plain = fit_transit(t, flux)
    assert abs(plain.mid_time - 0.35) * 1440 < 2 and plain.depth == pytest.approx(0.012, abs=0.001)
    assert plain.chi2 == pytest.approx(1.0, abs=0.3)


def test_bands_with_baselines_of_their_own_make_one_light_curve():
    rng = np.random.default_rng(2)
    t, flux, err = _light_curve(rng, noise=0.0015)
    bands = np.array(["B", "V", "R"] * t.size)[: t.size]
    level = np.select([bands == "B", bands == "V"], [0.7, 1.0], 1.3)
    fit = fit_transit(t, flux * level, err * level, groups=bands)
    assert abs(fit.mid_time - 0.35) * 1440 < 2 and fit.depth == pytest.approx(0.012, abs=0.0012)
    assert fit.baseline == pytest.approx(1.0, abs=1e-3)
    # Without the groups, the three levels would be read as noise: no transit comes back.
    mixed = fit_transit(t, flux * level, err * level)
    assert abs(mixed.depth - 0.012) > 0.005 or abs(mixed.mid_time - 0.35) * 1440 > 5


def test_transit_fits_refuse_what_they_cannot_do():
    with pytest.raises(ValueError, match="needs at least 10"):
        fit_transit(np.arange(5.0), np.ones(5))
    with pytest.raises(ValueError, match="unknown transit model 'gauss'"):
        fit_transit(np.arange(50.0), np.ones(50), model="gauss")


def test_relative_flux_is_relative_to_the_median():
    assert relative_flux([0.1, 0.1, 0.1]).tolist() == [1.0, 1.0, 1.0]
    assert relative_flux([np.nan, 0.0, 0.0])[1:].tolist() == [1.0, 1.0]
