"""Aperture photometry (obsdb/imaging/photometry.py) on star fields with known fluxes, and on real frames."""

import math
from pathlib import Path

import numpy as np
import pytest

from obsdb.imaging import photometry as ph

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"

GAIN = 2.0          # e-/ADU
READ_NOISE = 5.0    # e-
SKY = 400.0         # ADU
FWHM = 3.0


def gaussian_field(shape, x, y, flux, fwhm=FWHM, sky=SKY):
    """Noise-free frame: Gaussian stars of the given total fluxes, sampled at pixel centres, on a flat sky."""
    sigma = fwhm / 2.3548
    image = np.full(shape, sky, dtype=float)
    half = int(6 * sigma) + 2
    for xi, yi, fi in zip(x, y, flux):
        x0, y0 = int(round(xi)), int(round(yi))
        ys = slice(max(y0 - half, 0), min(y0 + half + 1, shape[0]))
        xs = slice(max(x0 - half, 0), min(x0 + half + 1, shape[1]))
        yy, xx = np.mgrid[ys, xs]
        image[ys, xs] += fi * np.exp(-((xx - xi) ** 2 + (yy - yi) ** 2) / (2 * sigma**2)) / (2 * np.pi * sigma**2)
    return image


def noisy(image, rng):
    """Photon noise at GAIN and read noise: what a CCD gives."""
    electrons = rng.poisson(image * GAIN).astype(float) + rng.normal(0.0, READ_NOISE, image.shape)
    return electrons / GAIN


@pytest.fixture(scope="module")
def grid_field():
    """100 well separated stars over 7 magnitudes, 40 px apart."""
    rng = np.random.default_rng(7)
    xs, ys = np.meshgrid(np.arange(30, 430, 40.0), np.arange(30, 430, 40.0))
    x = xs.ravel() + rng.uniform(-0.5, 0.5, xs.size)
    y = ys.ravel() + rng.uniform(-0.5, 0.5, ys.size)
    flux = 10 ** rng.uniform(2.5, 5.3, x.size)
    return x, y, flux, gaussian_field((460, 460), x, y, flux)


def test_noise_free_fluxes_are_the_gaussian_enclosed_fraction(grid_field):
    x, y, flux, image = grid_field
    phot = ph.aperture_photometry(image, x, y, fwhm=FWHM, gain=GAIN)
    r = phot.radius
    enclosed = 1 - math.exp(-(r * 2.3548 / FWHM) ** 2 / 2)
    ratio = phot.stars["flux"] / (flux * enclosed)
    # Pixel-centre sampling of a 3-px FWHM star against a continuous circle: 0.1 % at most.
    assert np.all(np.abs(ratio - 1) < 2e-3), np.abs(ratio - 1).max()
    assert np.allclose(phot.stars["sky"], SKY, rtol=1e-7)
    assert not phot.stars["flags"].any()


def test_errors_from_the_ccd_equation_match_the_scatter(grid_field):
    """The stated 1-sigma errors are the real scatter over 40 noise draws: pulls have unit spread."""
    x, y, flux, image = grid_field
    truth = ph.aperture_photometry(image, x, y, fwhm=FWHM, gain=GAIN).stars["flux"]
    rng = np.random.default_rng(11)
    pulls = []
    for _ in range(40):
        phot = ph.aperture_photometry(noisy(image, rng), x, y, fwhm=FWHM, gain=GAIN)
        pulls.append((phot.stars["flux"] - truth) / phot.stars["flux_err"])
    pulls = np.concatenate(pulls)
    assert abs(np.mean(pulls)) < 0.05
    assert 0.93 < np.std(pulls) < 1.07, np.std(pulls)


def test_the_sky_is_not_dragged_up_by_a_star_in_the_annulus():
    x = np.array([100.0, 100.0 + 4 * FWHM])       # the second star sits in the first one's annulus
    y = np.array([100.0, 100.0])
    image = gaussian_field((200, 200), x, y, np.array([1e4, 3e5]))
    rng = np.random.default_rng(3)
    phot = ph.aperture_photometry(noisy(image, rng), x[:1], y[:1], fwhm=FWHM, gain=GAIN)
    sky_rms_expected = math.sqrt(SKY * GAIN + READ_NOISE**2) / GAIN
    assert abs(phot.stars["sky"][0] - SKY) < 0.5 * sky_rms_expected
    assert phot.stars["sky_rms"][0] == pytest.approx(sky_rms_expected, rel=0.15)
    # The same annulus averaged (what sep's bkgann does) would be biased far more.
    import sep

    total_mean, _, _ = sep.sum_circann(image, x[:1], y[:1], *phot.annulus)
    area = math.pi * (phot.annulus[1] ** 2 - phot.annulus[0] ** 2)
    assert total_mean[0] / area - SKY > 5 * sky_rms_expected


def test_flags_name_what_is_wrong():
    x = np.array([60.0, 2.0, 150.0, 60.0, 66.0, 200.0])
    y = np.array([60.0, 90.0, 60.0, 160.0, 160.0, 200.0])
    flux = np.array([1e4, 1e4, 4e5, 1e4, 2e3, 1e4])
    image = gaussian_field((260, 260), x, y, flux)
    saturation = 10_000.0
    image = np.minimum(image, saturation)
    mask = np.zeros(image.shape, dtype=bool)
    mask[200, 201] = True                        # a dead pixel beside the last star
    phot = ph.aperture_photometry(image, x, y, fwhm=FWHM, gain=GAIN, saturation=saturation, mask=mask)
    names = [ph.flag_names(int(f)) for f in phot.stars["flags"]]
    assert names == [[], ["edge"], ["saturated"], ["blended"], ["blended"], ["defect"]]


def test_a_star_in_a_corner_has_no_sky_and_says_so():
    image = gaussian_field((20, 20), [1.0], [1.0], [1e4])   # no pixel of the annulus is on the frame
    phot = ph.aperture_photometry(image, [1.0], [1.0], fwhm=FWHM, annulus=(30.0, 34.0))
    assert ph.flag_names(int(phot.stars["flags"][0])) == ["edge", "sky"]
    assert math.isnan(phot.stars["flux"][0])


def test_the_gain_comes_from_the_header_or_is_stated_as_assumed():
    image = gaussian_field((64, 64), [32.0], [32.0], [1e4])
    from_header = ph.aperture_photometry(image, [32.0], [32.0], fwhm=FWHM, header={"EGAIN": 1.5})
    assert (from_header.gain, from_header.gain_source) == (1.5, "EGAIN")
    assumed = ph.aperture_photometry(image, [32.0], [32.0], fwhm=FWHM, header={"GAIN": "n/a"})
    assert (assumed.gain, assumed.gain_source) == (ph.ASSUMED_GAIN, "assumed")
    with pytest.raises(ValueError, match="gain -1"):
        ph.aperture_photometry(image, [32.0], [32.0], fwhm=FWHM, gain=-1)
    with pytest.raises(ValueError, match="FWHM"):
        ph.aperture_photometry(image, [32.0], [32.0], fwhm=float("nan"))


def test_magnitudes_and_their_errors():
    image = gaussian_field((64, 64), [32.0], [32.0], [1e4])
    phot = ph.aperture_photometry(noisy(image, np.random.default_rng(1)), [32.0], [32.0], fwhm=FWHM, gain=GAIN)
    mag, err = phot.magnitudes(zero_point=25.0)
    assert mag[0] == pytest.approx(25.0 - 2.5 * math.log10(phot.stars["flux"][0]))
    assert err[0] == pytest.approx(1.0857 * phot.stars["flux_err"][0] / phot.stars["flux"][0], rel=1e-3)


def test_sep_and_photutils_sum_the_same_apertures(grid_field):
    """The exact circle-pixel overlap of sep (used) and photutils (the other choice) agree."""
    from photutils.aperture import CircularAperture, aperture_photometry

    x, y, flux, image = grid_field
    image = noisy(image, np.random.default_rng(5))
    import sep

    ours, _, _ = sep.sum_circle(image, x, y, 4.5, subpix=0)
    theirs = aperture_photometry(image, CircularAperture(np.column_stack([x, y]), r=4.5), method="exact")
    assert np.allclose(ours, np.asarray(theirs["aperture_sum"]), rtol=1e-7)


def _real(path: Path):
    if not path.exists():
        if __import__("os").environ.get("OBSDB_REQUIRE_REAL_DATA"):
            pytest.fail(f"{path} is missing (OBSDB_REQUIRE_REAL_DATA is set)")
        pytest.skip(f"{path} is not here")
    from astropy.io import fits

    with fits.open(path) as hdul:
        return hdul[0].data.astype(float), hdul[0].header


def test_real_plate_flags_saturated_cores_edges_and_blends():
    """M 67 on a POSS-I plate (1,059^2, about 1,300 stars, a crowded cluster): the flags say what is so."""
    from obsdb.imaging.stars import measure_quality
    from obsdb.imaging.stats import saturation_level

    data, header = _real(REAL / "single" / "M67_DSS_POSS1_M6707HH.fits.gz")
    saturation = saturation_level(header, header["BITPIX"])
    found = measure_quality(data, saturation=saturation)
    stars = found.stars
    phot = ph.aperture_photometry(data, stars["x"], stars["y"], fwhm=found.fwhm, header=header,
                                  saturation=saturation)
    flags, peak = phot.stars["flags"], phot.stars["peak"]
    assert phot.gain_source == "assumed"                     # the plate scan gives no gain
    assert np.array_equal(flags & ph.SATURATED != 0, peak >= saturation)
    assert np.all(flags[stars["saturated"]] & ph.SATURATED)  # detection's saturated stars are flagged here too
    r = phot.radius
    on_edge = ((stars["x"] < r - 0.5) | (stars["y"] < r - 0.5)
               | (stars["x"] > data.shape[1] - r - 0.5) | (stars["y"] > data.shape[0] - r - 0.5))
    assert on_edge.any() and np.all(flags[on_edge] & ph.EDGE)
    assert np.all(phot.stars["area"][on_edge] < math.pi * r * r)
    # Blends are a pair property: every flagged star has a flagged or brighter star within reach.
    blended = flags & ph.BLENDED != 0
    assert 0 < blended.sum() < len(stars)
    good = flags == 0
    assert good.sum() >= 300
    assert np.all(phot.stars["flux_err"][good] > 0)
    # A faint detection in a bright star's halo may measure below its sky, but not beyond its error.
    assert np.mean(phot.stars["flux"][good] > 0) > 0.98
    assert np.all(phot.stars["flux"][good] > -5 * phot.stars["flux_err"][good])


def test_real_seestar_frames_read_the_electrons_per_adu_not_the_gain_setting():
    """The Seestar writes GAIN = 80 (a setting): it is not taken for 80 e-/ADU."""
    from obsdb.imaging.stars import measure_quality

    frames = sorted((REAL / "seestar_m94_crops").glob("*.fits"))
    data, header = _real(frames[0] if frames else REAL / "seestar_m94_crops" / "(no frames)")
    assert float(header["GAIN"]) > ph.MAX_GAIN
    found = measure_quality(data, saturation=65535.0)
    phot = ph.aperture_photometry(data, found.stars["x"], found.stars["y"], fwhm=found.fwhm, header=header)
    assert phot.gain_source == "assumed"
    good = phot.stars["flags"] == 0
    assert good.sum() >= 5 and np.all(phot.stars["flux"][good] > 10 * phot.stars["flux_err"][good])


def test_the_photometry_page_example_runs_and_prints_what_it_says(capsys):
    """docs/photometry.md's example, run as written; its comments state what it prints."""
    import re

    page = (Path(__file__).resolve().parents[2] / "docs" / "photometry.md").read_text()
    code = re.search(r"```python\n(.*?)```", page, re.S).group(1)
    exec(compile(code, "docs/photometry.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    promised = [c.split("#", 1)[1].strip() for c in code.splitlines() if c.startswith("print(") and "#" in c]
    assert printed == promised
