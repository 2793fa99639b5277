"""Plate solving (obsdb.imaging.astrometry): a simulated wide field made from the installed index's own
stars is solved within 1 arcsec of its true WCS; wrong solutions, wrong star lists and perturbed header
WCSs are refused; a missing solver is one line saying what to install."""

from __future__ import annotations

import numpy as np
import pytest

from obsdb.imaging import astrometry
from obsdb.imaging.astrometry import SolveHints, verify_wcs
from tests.solve_helpers import (FIELD_CENTRE, FIELD_SCALE, FIELD_SHAPE, require_solver, simulated_stars,
                                 simulation_index, true_wcs)

CHECK_POINTS = [(0, 0), (FIELD_SHAPE[1] - 1, 0), (0, FIELD_SHAPE[0] - 1), (FIELD_SHAPE[1] - 1, FIELD_SHAPE[0] - 1),
                ((FIELD_SHAPE[1] - 1) / 2, (FIELD_SHAPE[0] - 1) / 2), (300, 1500), (1700, 600)]
"""The corners, the centre and two points between: the solution must hold over the whole frame."""


def _offsets_arcsec(solved, truth, points=CHECK_POINTS) -> np.ndarray:
    a = solved.all_pix2world(np.array(points, float), 0)
    b = truth.all_pix2world(np.array(points, float), 0)
    return astrometry._separation_arcsec(a[:, 0], a[:, 1], b[:, 0], b[:, 1])


def _perturbed(wcs, *, shift_pixels=(0.0, 0.0), rotation_deg=0.0):
    """A copy of a TAN ``wcs`` moved by whole pixels and/or turned about its reference pixel."""
    out = wcs.deepcopy()
    out.wcs.crpix = [out.wcs.crpix[0] + shift_pixels[0], out.wcs.crpix[1] + shift_pixels[1]]
    if rotation_deg:
        t = np.radians(rotation_deg)
        turn = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        out.wcs.cd = out.wcs.cd @ turn if out.wcs.has_cd() else out.pixel_scale_matrix @ turn
    return out


@pytest.fixture(scope="module")
def field():
    require_solver()
    truth = true_wcs()
    return truth, simulated_stars(truth)


@pytest.fixture(scope="module")
def hinted(field):
    truth, stars = field
    hints = SolveHints(ra=FIELD_CENTRE[0] + 0.3, dec=FIELD_CENTRE[1] - 0.2, radius=3.0,
                       scale_low=FIELD_SCALE * 0.9, scale_high=FIELD_SCALE * 1.1)
    return astrometry.solve_stars(stars, FIELD_SHAPE, hints=hints, cpulimit=30)


def test_the_simulated_field_is_solved_within_an_arcsecond_everywhere(field, hinted):
    truth, _ = field
    assert hinted.verified, hinted.verification.reason
    offsets = _offsets_arcsec(hinted.wcs, truth)
    print(f"simulated 2-degree field: {hinted.index}, {hinted.verification.n_matched}/"
          f"{hinted.verification.n_reference} matched, residual {hinted.verification.residual_arcsec:.2f}\", "
          f"worst of {len(offsets)} points {offsets.max():.2f}\", solver CPU {hinted.cpu_seconds:.2f} s")
    assert offsets.max() < 1.0, offsets
    assert hinted.verification.n_matched >= 10
    assert hinted.verification.residual_arcsec < 0.5          # 0.1 px of centroid noise at 3.5"/px
    assert abs(hinted.verification.pixel_scale - FIELD_SCALE) < 0.01
    assert hinted.solver == "astrometry.net" and hinted.solver_version not in ("", "unknown")
    assert hinted.index.startswith("index-tycho2-"), hinted.index
    assert hinted.hints.scale_low == pytest.approx(FIELD_SCALE * 0.9)


def test_a_blind_solve_finds_the_same_field(field):
    truth, stars = field
    blind = astrometry.solve_stars(stars, FIELD_SHAPE, cpulimit=60)
    assert blind.verified, blind.verification.reason
    print(f"blind: {blind.index}, solver CPU {blind.cpu_seconds:.2f} s")
    assert _offsets_arcsec(blind.wcs, truth).max() < 1.0


def test_the_stored_text_gives_back_the_same_wcs(field, hinted):
    again = astrometry.wcs_from_text(hinted.header_text)
    assert _offsets_arcsec(again, hinted.wcs).max() < 1e-6


@pytest.mark.parametrize("shift, rotation", [((2.0, 0.0), 0.0), ((0.0, -6.0), 0.0), ((0.0, 0.0), 0.3),
                                             ((0.0, 0.0), 180.0), ((400.0, 300.0), 0.0)])
def test_a_perturbed_wcs_is_refused(field, hinted, shift, rotation):
    truth, stars = field
    ra, dec = truth.all_pix2world(stars["x"][:40], stars["y"][:40], 0)   # the index stars, brightest
    assert verify_wcs(truth, stars, ra, dec, shape=FIELD_SHAPE).passed
    wrong = verify_wcs(_perturbed(truth, shift_pixels=shift, rotation_deg=rotation), stars, ra, dec,
                       shape=FIELD_SHAPE)
    assert not wrong.passed
    assert wrong.reason


def test_a_star_list_of_another_field_is_refused(field, hinted):
    truth, _ = field
    other = simulated_stars(true_wcs(centre=(40.0, -20.0)), seed=7)
    ra, dec, _ = astrometry.index_stars(*FIELD_CENTRE, 1.4, index=simulation_index())
    assert verify_wcs(hinted.wcs, simulated_stars(truth), ra, dec, shape=FIELD_SHAPE).passed
    verdict = verify_wcs(hinted.wcs, other, ra, dec, shape=FIELD_SHAPE)
    assert not verdict.passed
    assert "reference stars matched" in verdict.reason


def test_a_wrong_solution_from_the_solver_is_refused(field, monkeypatch):
    """The solver's own answer is checked: a .wcs written 8 px off is refused, not returned as verified."""
    truth, stars = field
    run = astrometry._run_solve_field

    def run_and_spoil(program, folder, *args):
        log = run(program, folder, *args)
        from astropy.io import fits

        with fits.open(folder / "stars.wcs", mode="update") as hdus:
            hdus[0].header["CRPIX1"] += 8.0
        return log

    monkeypatch.setattr(astrometry, "_run_solve_field", run_and_spoil)
    monkeypatch.setattr(astrometry, "SIP_MIN_MATCHES", 0)     # keep the spoiled WCS as the solver wrote it
    spoiled = astrometry.solve_stars(stars, FIELD_SHAPE, hints=SolveHints(*FIELD_CENTRE, 3.0, 3.2, 3.8))
    assert not spoiled.verified
    assert "matched" in spoiled.verification.reason or "residual" in spoiled.verification.reason


def test_random_points_do_not_solve(field):
    # 40 points: the solver tries every index on each batch of ten, so 200 would cost ~30 s of CPU
    rng = np.random.default_rng(3)
    stars = np.zeros(40, dtype=[("x", "f8"), ("y", "f8"), ("flux", "f8")])
    stars["x"], stars["y"] = rng.uniform(0, 2047, 40), rng.uniform(0, 2047, 40)
    stars["flux"] = rng.uniform(1, 100, 40)
    with pytest.raises(astrometry.NotSolved, match="no solution"):
        astrometry.solve_stars(stars, FIELD_SHAPE, hints=SolveHints(*FIELD_CENTRE, 3.0, 3.2, 3.8), cpulimit=5)


def test_a_missing_solver_says_what_to_install(monkeypatch):
    monkeypatch.setattr(astrometry.shutil, "which", lambda name: None)
    stars = np.zeros(20, dtype=[("x", "f8"), ("y", "f8"), ("flux", "f8")])
    with pytest.raises(astrometry.SolverMissing) as caught:
        astrometry.solve_stars(stars, (100, 100))
    message = str(caught.value)
    assert "\n" not in message
    assert "apt-get install astrometry.net astrometry-data-tycho2-" in message


def test_hints_come_from_the_header_pointing_and_scale():
    header = {"OBJCTRA": "10 00 24.0", "OBJCTDEC": "+29 54 00", "FOCALLEN": 530.0, "XPIXSZ": 9.0}
    hints = astrometry.hints_from_header(header, (2048, 2048))
    assert hints.ra == pytest.approx(150.1) and hints.dec == pytest.approx(29.9)
    scale = 206264.806 * 9e-3 / 530.0
    assert hints.scale_low == pytest.approx(scale * (1 - astrometry.SCALE_TOLERANCE))
    assert hints.scale_high == pytest.approx(scale * (1 + astrometry.SCALE_TOLERANCE))
    assert hints.radius >= astrometry.MIN_HINT_RADIUS
    assert "--ra" in hints.arguments() and "--scale-low" in hints.arguments()
    dss = astrometry.hints_from_header({"PLTSCALE": 67.2, "XPIXELSZ": 25.284, "RA": 12.5, "DEC": -3.0}, (100, 100))
    assert dss.scale_low < 67.2 * 25.284e-3 < dss.scale_high
    assert astrometry.hints_from_header({}, (100, 100)) == SolveHints()
    assert SolveHints().arguments() == []


# -- the real frames ---------------------------------------------------------------------------------

def _header_wcs_and_stars(path):
    import warnings

    from astropy.io import fits
    from astropy.io.fits.verify import VerifyWarning
    from astropy.wcs import WCS, FITSFixedWarning

    from obsdb.imaging.stars import detect_stars

    with fits.open(path) as hdus:
        header, data = hdus[0].header, hdus[0].data.astype(float)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FITSFixedWarning)
        warnings.filterwarnings("ignore", category=VerifyWarning)     # DSS's two-number SKEW card
        wcs = WCS(header)
    # 3 sigma: the cutouts are 177 px and share a 100-px corner; at 5 sigma only five stars fall in it
    return wcs, detect_stars(data, nsigma=3.0), data.shape


def test_the_dss_pairs_header_wcs_passes_and_a_perturbed_one_fails(real_data):
    """Each DSS cutout's own WCS (a DSS plate solution) puts the other's stars, through the other's WCS,
    on its own stars; moved by 2 px, it does not."""
    first, first_stars, shape = _header_wcs_and_stars(real_data / "pair_dss" / "dss_test1.fits")
    second, second_stars, _ = _header_wcs_and_stars(real_data / "pair_dss" / "dss_test2.fits")
    ra, dec = second.all_pix2world(second_stars["x"], second_stars["y"], 0)
    good = verify_wcs(first, first_stars, ra, dec, shape=shape)
    assert good.passed, good.reason
    assert good.residual_pixels < 0.5
    print(f"DSS pair: {good.n_matched} of {good.n_reference} matched, median residual "
          f"{good.residual_arcsec:.2f}\" ({good.residual_pixels:.2f} px)")
    # astropy applies the DSS plate solution (AMDX/AMDY) rather than the CD matrix, so only a move of
    # the reference pixel perturbs it; rotations are tested on the simulated field above.
    for shift in [(2.0, 0.0), (-1.5, 1.5), (0.0, 40.0)]:
        wrong = verify_wcs(_perturbed(first, shift_pixels=shift), first_stars, ra, dec, shape=shape)
        assert not wrong.passed, (shift, wrong)


def test_the_m67_scans_header_wcs_passes_against_the_index_stars_and_a_moved_one_fails(real_data):
    """The real sky: the M 67 DSS scan's plate solution (1059 x 1059 at 1.70"/px, 30') puts the installed
    index's Tycho-2 stars on its detected stars; moved by 3 px or 1.5 px it does not."""
    require_solver()
    from astropy.io import fits

    path = real_data / "single" / "M67_DSS_POSS1_M6707HH.fits.gz"
    _, stars, shape = _header_wcs_and_stars(path)
    wcs = astrometry.header_wcs(fits.getheader(path))          # the DSS plate solution (PLTRAH, AMDX, ...)
    assert wcs is not None
    centre = wcs.all_pix2world([[(shape[1] - 1) / 2, (shape[0] - 1) / 2]], 0)[0]
    index = astrometry.installed_indexes()[0]          # the densest installed
    ra, dec, _ = astrometry.index_stars(float(centre[0]), float(centre[1]), 0.4, index=index)
    good = verify_wcs(wcs, stars, ra, dec, shape=shape)
    print(f"M 67 DSS header WCS vs {index.name}: {good.n_matched} of {good.n_reference} matched, median "
          f"residual {good.residual_arcsec:.2f}\" ({good.residual_pixels:.2f} px)")
    assert good.passed, good.reason
    assert good.residual_arcsec < 1.0
    for shift in [(3.0, 0.0), (1.2, -1.2), (0.0, 25.0)]:
        wrong = verify_wcs(_perturbed(wcs, shift_pixels=shift), stars, ra, dec, shape=shape)
        assert not wrong.passed, (shift, wrong)
