"""The simulated cluster night's answer key agrees with its pixels and headers (obsdb/simulate/cluster.py)."""

import numpy as np
import pytest

from obsdb.simulate.cluster import (
    BANDS,
    COLOUR_TERMS,
    ClusterTruth,
    simulate_cluster_night,
    system_magnitudes,
    transit_flux,
)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster")
    return simulate_cluster_night(folder, seed=8, size=384, n_frames=6), folder


def test_the_truth_reloads_and_the_files_are_where_it_says(small):
    truth, folder = small
    again = ClusterTruth.load(folder)
    assert again.stars == truth.stars and again.frames == truth.frames and again.transit == truth.transit
    assert all(again.path(i).is_file() for i in range(6))
    assert [f["band"] for f in truth.frames] == list(BANDS) * 2
    assert (folder / "truth.json").is_file()


def test_headers_carry_time_band_pointing_and_a_wcs_that_finds_every_star(small):
    from astropy.io import fits
    from astropy.time import Time
    from astropy.wcs import WCS

    truth, _ = small
    for index, frame in enumerate(truth.frames):
        header = fits.getheader(truth.path(index))
        assert header["FILTER"] == frame["band"] and header["OBJECT"] == "NGC3293"
        assert header["EXPTIME"] == frame["exptime"] and header["AIRMASS"] == pytest.approx(frame["airmass"], abs=1e-4)
        start = Time(header["DATE-OBS"], scale="utc").mjd
        assert header["MJD-OBS"] == pytest.approx(start, abs=1e-8)
        assert frame["mjd_mid"] == pytest.approx(start + frame["exptime"] / 2 / 86400, abs=1e-8)
        # BJD_TDB - JD_UTC: TDB - UTC is 69.2 s in 2026; the light time to the barycentre at most 8.3 min.
        difference = (frame["bjd_tdb_mid"] - 2400000.5 - frame["mjd_mid"]) * 86400
        assert abs(difference - 69.2) < 500
        assert header["RA"] == pytest.approx(158.95) and header["DEC"] == pytest.approx(-58.23)
        x, y = WCS(header).all_world2pix(truth.array("ra"), truth.array("dec"), 0)
        fx, fy = truth.frame_positions(index)
        assert np.max(np.hypot(x - fx, y - fy)) < 1e-3


def test_the_instrument_system_and_the_transit_shape():
    stars = {"B": np.array([12.0]), "V": np.array([11.5]), "R": np.array([11.2])}
    system = system_magnitudes(stars)
    assert system["b"][0] == pytest.approx(12.0 + COLOUR_TERMS["B"] * 0.5)
    assert system["v"][0] == pytest.approx(11.5 + COLOUR_TERMS["V"] * 0.5)
    assert system["r"][0] == pytest.approx(11.2 + COLOUR_TERMS["R"] * 0.3)
    flux = transit_flux([0.0, 0.375, 0.4, 0.5, 0.625, 0.7], 0.5, 0.015, 0.25, 0.05)
    assert flux.tolist() == pytest.approx([1.0, 1.0, 0.9925, 0.985, 1.0, 1.0])


def test_a_transit_host_is_in_the_night_and_dims_by_the_depth(small):
    truth, _ = small
    host = truth.transit["star"]
    assert truth.stars["V"][host] == pytest.approx(11.8)
    lows = [f["transit_flux"] for f in truth.frames]
    assert min(lows) >= 1 - truth.transit["depth"] - 1e-12


def test_frames_too_small_are_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 256 px"):
        simulate_cluster_night(tmp_path / "c", size=128)
    with pytest.raises(ValueError, match="n_frames must be at least 1"):
        simulate_cluster_night(tmp_path / "c", n_frames=0)
