"""Real headers read right (issue 20, item 6): time, filter, binning, site and numbers written as text,
each with the card(s) it came from; on made-up headers with known answers and on the real frames."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pytest

from obsdb.imaging.header import (binning_and_source, date_obs_and_source, filter_and_source, frame_columns,
                                  instrument_identity, night_name, site_location)
from tests.conftest import write_fits


# -- time ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("header, expected, source", [
    # LOIS (Lowell): the date in DATE-OBS, the time in UTCSTART / UTC-OBS.
    ({"DATE-OBS": "2019-03-26", "UTCSTART": "03:39:37.61", "UTC-OBS": "03:39:37.61"},
     datetime(2019, 3, 26, 3, 39, 37, 610000), "DATE-OBS+UTCSTART"),
    ({"DATE-OBS": "2019-03-26", "UTC-OBS": "01:05:01.16"}, datetime(2019, 3, 26, 1, 5, 1, 160000),
     "DATE-OBS+UTC-OBS"),
    ({"DATE-OBS": "2013-07-13", "UT": "00:57:33"}, datetime(2013, 7, 13, 0, 57, 33), "DATE-OBS+UT"),
    ({"DATE-OBS": "2019-03-26", "UTCSTART": "04:00:6.04"}, datetime(2019, 3, 26, 4, 0, 6, 40000),
     "DATE-OBS+UTCSTART"),                                          # LOIS's one-digit seconds
    ({"DATE-OBS": "2018-08-23T08:49:30", "UT": "01:00:00"}, datetime(2018, 8, 23, 8, 49, 30), "DATE-OBS"),
    # ESO EMMI: a date alone, the time of day in MJD-OBS (same day).
    ({"DATE-OBS": "26/10/92", "MJD-OBS": 48921.62787}, datetime(1992, 10, 26, 15, 4, 7, 968000),
     "DATE-OBS+MJD-OBS"),
    ({"DATE-OBS": "2013-07-13", "MJD-OBS": 56486.0}, datetime(2013, 7, 13), "DATE-OBS (date only)"),
    ({"DATE-OBS": "2013-07-14", "MJD-OBS": 56486.5}, datetime(2013, 7, 14), "DATE-OBS (date only)"),
    # No DATE-OBS: the Julian dates, then DATE.
    ({"MJD-OBS": "58353.367708333"}, datetime(2018, 8, 23, 8, 49, 30), "MJD-OBS"),
    ({"JD": 2457855.6449074075}, datetime(2017, 4, 12, 3, 28, 40), "JD"),
    ({"MJD": 58353.5, "JD": 2457855.6449074075}, datetime(2018, 8, 23, 12), "MJD"),
    ({"DATE": "2019-03-26", "UTCSTART": "03:39:37"}, datetime(2019, 3, 26, 3, 39, 37), "DATE+UTCSTART"),
    ({}, None, None),
])
def test_the_time_and_its_cards(header, expected, source):
    got, got_source = date_obs_and_source(header)
    if expected is None:
        assert got is None and got_source is None
    else:
        assert abs((got - expected).total_seconds()) < 0.001 and got_source == source


def test_a_time_from_date_says_it_may_be_the_files_time():
    problems = []
    assert date_obs_and_source({"DATE": "2020-01-02T03:04:05"}, problems)[1] == "DATE"
    assert len(problems) == 1 and "when the file was written" in problems[0]


def test_a_wrong_date_obs_is_not_replaced_by_a_guess():
    problems = []
    assert date_obs_and_source({"DATE-OBS": "2019-03-26", "UTCSTART": "99:99:99", "MJD-OBS": 58568.1},
                               problems) == (None, None)
    assert problems == ["UTCSTART '99:99:99' is not a time of day: date recorded as unknown"]


# -- filter ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("header, band, source", [
    ({"FILTER": "V", "FILTNAME": "B"}, "V", "FILTER"),
    ({"FILTNAME": "VR"}, "VR", "FILTNAME"),
    ({"FILTER": "", "FILTNAME": "R"}, "R", "FILTNAME"),
    ({"FILTER1": "open", "FILTER2": "B"}, "B", "FILTER2"),
    ({"FILTER1": "B", "FILTER2": "Clear"}, "B", "FILTER1"),
    ({"FILTER1": "B", "FILTER2": "GG385"}, "B+GG385", "FILTER1+FILTER2"),
    ({"FILTER1": "OPEN", "FILTER2": "empty"}, "OPEN", "FILTER1"),
    ({"INSFLNAM": "Ha"}, "Ha", "INSFLNAM"),
    ({"FILTNAM": "F555W"}, "F555W", "FILTNAM"),
    ({}, None, None),
])
def test_the_filter_and_its_cards(header, band, source):
    assert filter_and_source(header) == (band, source)


# -- binning ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("header, expected", [
    ({"CCDSUM": "3 3"}, (3, 3, "CCDSUM")),
    ({"CCDSUM": "2 1 "}, (2, 1, "CCDSUM")),
    ({"XBINNING": 2, "YBINNING": 2, "CCDSUM": "3 3"}, (2, 2, "XBINNING/YBINNING")),
    ({"BINX": "2", "BINY": "4"}, (2, 4, "BINX/BINY")),
    ({"XBINNING": 2}, (2, 2, "XBINNING")),
    ({"BINNING": "2x2"}, (2, 2, "BINNING")),
    ({"CCDSUM": "three"}, (None, None, None)),
    ({"XBINNING": 1e30}, (None, None, None)),
])
def test_the_binning_and_its_cards(header, expected):
    assert binning_and_source(header) == expected


def test_the_binning_is_part_of_the_instrument():
    binned = instrument_identity({"TELESCOP": "hall", "CCDSUM": "3 3"}, 1432, 1370)
    unbinned = instrument_identity({"TELESCOP": "hall", "CCDSUM": "1 1"}, 1432, 1370)
    assert (binned["binning_x"], binned["binning_y"]) == (3, 3) and binned["key"].endswith("|3x3")
    assert binned["key"] != unbinned["key"] and binned["keywords"]["binning"] == "CCDSUM"


# -- site ------------------------------------------------------------------------------------------

def test_a_site_from_text_and_numbers():
    site = site_location({"SITELAT": "+34:44:37", "SITELONG": "-116 27 12", "SITEELEV": "1706"})
    assert site["latitude"] == pytest.approx(34 + 44 / 60 + 37 / 3600)
    assert site["longitude"] == pytest.approx(-(116 + 27 / 60 + 12 / 3600))
    assert site["elevation"] == 1706.0
    assert site["keywords"] == {"latitude": "SITELAT", "longitude": "SITELONG", "elevation": "SITEELEV"}


def test_latitude_and_longitude_come_from_one_pair():
    # MaxIm DL's header of the Feder observatory: SITELONG says -96.45, LONG-OBS -98.45.
    header = {"SITELAT": "46 52 00", "SITELONG": "-96 27 12", "LAT-OBS": 46.8667833333, "LONG-OBS": -98.453275}
    site = site_location(header)
    assert site["longitude"] == pytest.approx(-96.4533, abs=1e-4)
    assert site["keywords"]["latitude"] == "SITELAT" and site["keywords"]["longitude"] == "SITELONG"
    # A pair with both wins over a first card alone.
    site = site_location({"SITELAT": "46 52 00", "LAT-OBS": 10.0, "LONG-OBS": 20.0})
    assert (site["latitude"], site["longitude"]) == (10.0, 20.0)


def test_a_site_from_geocentric_cards():
    from astropy.coordinates import EarthLocation
    import astropy.units as u

    where = EarthLocation.from_geodetic(lon=-111.5355 * u.deg, lat=35.09675 * u.deg, height=2206 * u.m)
    header = {"OBSGEO-X": float(where.x.to_value(u.m)), "OBSGEO-Y": float(where.y.to_value(u.m)),
              "OBSGEO-Z": str(float(where.z.to_value(u.m)))}
    site = site_location(header)
    assert site["latitude"] == pytest.approx(35.09675, abs=1e-7)
    assert site["longitude"] == pytest.approx(-111.5355, abs=1e-7)
    assert site["elevation"] == pytest.approx(2206, abs=0.01)
    assert set(site["keywords"].values()) == {"OBSGEO-X/Y/Z"}
    assert site_location({"OBSGEO-X": 1.0, "OBSGEO-Y": 1.0, "OBSGEO-Z": 1.0})["latitude"] is None


def test_altitude_is_a_height_only_when_it_cannot_be_an_angle():
    assert site_location({"LATITUDE": 35.1, "LONGITUD": -111.5, "ALTITUDE": 2206.0})["elevation"] == 2206.0
    assert site_location({"ALTITUDE": 45.3})["elevation"] is None


def test_the_site_table_fills_what_the_header_lacks():
    fallback = {"latitude": 48.1, "longitude": 11.6, "elevation": 520.0}
    site = site_location({"SITELAT": 10.0, "SITELONG": 20.0}, fallback)
    assert (site["latitude"], site["longitude"], site["elevation"]) == (10.0, 20.0, 520.0)
    assert site["keywords"] == {"latitude": "SITELAT", "longitude": "SITELONG", "elevation": "obsdb.toml [site]"}
    assert site_location({}, fallback)["keywords"]["longitude"] == "obsdb.toml [site]"


def test_the_site_table_of_obsdb_toml(tmp_path):
    from obsdb.config import ConfigError, load_config

    path = tmp_path / "obsdb.toml"
    path.write_text('[site]\nlatitude = "+35:05:48.3"\nlongitude = -111.5355\nelevation = 2206\nname = "Lowell"\n')
    site = load_config(path).ingest.site
    assert site["latitude"] == pytest.approx(35.09675) and site["longitude"] == -111.5355
    assert site["elevation"] == 2206.0 and site["site"] == "Lowell"
    path.write_text("[site]\nlatitude = 135\n")
    with pytest.raises(ConfigError, match="site.latitude 135"):
        load_config(path)
    path.write_text("[site]\nheight = 1\n")
    with pytest.raises(ConfigError, match="unknown key site.height"):
        load_config(path)


# -- numbers as text, and the record of cards ---------------------------------------------------------

def test_numbers_written_as_text_are_numbers():
    columns = frame_columns({"EXPTIME": "300.0", "AIRMASS": " 1.02 ", "IMAGETYP": "OBJECT", "OBJECT": "5945"})
    assert columns["exptime"] == 300.0 and columns["airmass"] == 1.02 and columns["object"] == "5945"
    from obsdb.imaging.stats import saturation_level

    assert saturation_level({"SATURATE": "60000"}, 16) == 60000.0


def test_each_column_names_its_cards():
    columns = frame_columns({"DATE-OBS": "2019-03-26", "UTCSTART": "03:39:37.61", "FILTNAME": "VR",
                             "EXPOSURE": "300", "IMAGETYP": "SKYFLAT", "OBJECT": "VR twil flat"})
    assert columns["keywords"] == {"date_obs": "DATE-OBS+UTCSTART", "band": "FILTNAME", "exptime": "EXPOSURE",
                                   "image_type": "IMAGETYP", "object": "OBJECT"}
    assert columns["image_type"] == "flat" and columns["exptime"] == 300.0


def test_string_wcs_cards_give_a_wcs():
    from astropy.io import fits

    from obsdb.imaging.wcs import celestial_wcs_cards

    header = fits.Header()
    for key, value in (("CTYPE1", "RA---TAN"), ("CTYPE2", "DEC--TAN"), ("CRVAL1", "124.6187765596"),
                       ("CRVAL2", "25.3287968489"), ("CRPIX1", "716.0"), ("CRPIX2", "685.0"),
                       ("CD1_1", "-0.0003073756284804"), ("CD1_2", "0"), ("CD2_1", "0"),
                       ("CD2_2", "0.0003073756284804")):
        header[key] = value
    cards = dict((k, v) for k, v, _ in celestial_wcs_cards(header))
    assert cards["CRVAL1"] == 124.6187765596 and cards["CTYPE1"] == "RA---TAN"


# -- the real frames -------------------------------------------------------------------------------

def _read(path):
    import warnings

    from astropy.io import fits

    from obsdb.imaging.header import header_to_json

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return header_to_json(fits.getheader(path))


def test_the_lowell_night_is_in_time_order(real_data):
    """LOIS frames: the date in DATE-OBS, the time in UTCSTART; the filter of flats only in FILTNAME;
    binning in CCDSUM; numbers (the TPV WCS) as text."""
    files = sorted((real_data / "lowell42_raw_night").glob("*.fits.gz"))
    assert len(files) == 15
    times, bands = [], {}
    for path in files:
        header = _read(path)
        columns = frame_columns(header)
        # What the cards say, read here on their own.
        expected = datetime.fromisoformat(f"{header['DATE-OBS']}T00:00:00")
        h, m, s = header["UTCSTART"].split(":")
        expected = expected.replace(hour=int(h), minute=int(m), second=int(float(s)),
                                    microsecond=round(float(s) % 1 * 1e6))
        assert columns["date_obs"] == expected and columns["keywords"]["date_obs"] == "DATE-OBS+UTCSTART"
        times.append(columns["date_obs"])
        bands[path.name.split(".")[1]] = (columns["band"], columns["keywords"]["band"], columns["image_type"])
        identity = instrument_identity(header, 1432, 1370)
        assert (identity["binning_x"], identity["binning_y"]) == (3, 3)
        site = site_location(header)
        assert (site["latitude"], site["longitude"], site["elevation"]) == (35.09675, -111.5355, 2206.0)
        assert night_name(columns["date_obs"], site["longitude"]) == "2019-03-25"
    # Time order is file order, and no two frames share a time (they did: all at midnight).
    assert times == sorted(times) and len(set(times)) == 15
    assert times[0] == datetime(2019, 3, 26, 1, 4, 52, 120000)
    assert times[-1] == datetime(2019, 3, 26, 3, 55, 4, 570000)
    assert bands["0100"] == ("V", "FILTNAME", "flat")
    assert all(bands[n] == ("VR", "FILTNAME", "flat") for n in ("0101", "0113", "0114", "0115"))
    assert all(bands[n] == ("VR", "FILTER", "light") for n in ("0140", "0141", "0142", "0143"))
    assert all(bands[f"000{i}"][2] == "bias" for i in range(4, 10))


@pytest.mark.parametrize("name, date_obs, date_source, band, binning, site", [
    ("calib_headers/msumastro_maximdl_6_18_header.fit", datetime(2018, 8, 23, 8, 49, 30), "DATE-OBS", "r",
     (1, 1), (46 + 52 / 60, -(96 + 27 / 60 + 12 / 3600))),
    ("calib_headers/stellarphot_cutout_for_fwhm_test.fits", datetime(2018, 8, 23, 5, 55, 39), "DATE-OBS", "r",
     (1, 1), (46 + 52 / 60 + 0.408 / 3600, -(96 + 27 / 60 + 11.8008 / 3600))),
    ("calib_headers/msumastro_aspen_trimmed.fit", datetime(2017, 4, 12, 3, 28, 40), "DATE-OBS", "R", (1, 1),
     (None, None)),
    ("seestar_m94_crops/m94_set1_212046_bin2_crop512.fits", datetime(2025, 3, 27, 1, 20, 32, 955368), "DATE-OBS",
     "IRCUT", (2, 2), (32.8965, -79.7625)),
    ("single/ccdproc_SAAO1m_a8280271.fits.gz", datetime(2013, 7, 13, 0, 57, 33), "DATE-OBS+UT", None,
     (None, None), (None, None)),
    ("single/sep_NTT_EMMI_image.fits", datetime(1992, 10, 26, 15, 4, 7, 968000), "DATE-OBS+MJD-OBS", None,
     (None, None), (None, None)),
    ("single/M67_DSS_POSS1_M6707HH.fits.gz", datetime(1951, 11, 29, 12, 7), "DATE-OBS+UT", None, (None, None),
     (33 + 24 / 60 + 24 / 3600, -(116 + 51 / 60 + 48 / 3600))),
])
def test_real_headers(real_data, name, date_obs, date_source, band, binning, site):
    header = _read(real_data / name)
    columns = frame_columns(header)
    assert abs((columns["date_obs"] - date_obs).total_seconds()) < 0.01
    assert columns["keywords"]["date_obs"] == date_source
    assert columns["band"] == band
    identity = instrument_identity(header, 10, 10)
    assert (identity["binning_x"], identity["binning_y"]) == binning
    where = site_location(header)
    for got, want in zip((where["latitude"], where["longitude"]), site):
        assert (got is None and want is None) or math.isclose(got, want, abs_tol=1e-6)


def test_exposure_written_as_text_on_a_real_frame(real_data):
    columns = frame_columns(_read(real_data / "allsky_iceact" / "iceact_cloudy.fits"))
    assert columns["exptime"] == 120.0 and columns["keywords"]["exptime"] == "EXPOSURE"


def test_the_real_tpv_wcs_is_read(real_data):
    import warnings

    from astropy.io import fits
    from astropy.wcs import WCS

    from obsdb.imaging.wcs import celestial_wcs_cards

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cards = celestial_wcs_cards(fits.getheader(real_data / "lowell42_raw_night" / "20190326.0140.fits.gz"))
        header = fits.Header()
        for key, value, _ in cards:
            header[key] = value
        centre = WCS(header).pixel_to_world(715, 684)
    # The reference pixel (CRPIX 716, 685, one-based) is at CRVAL, give or take the TPV terms.
    assert centre.ra.deg == pytest.approx(124.6188, abs=2e-3) and centre.dec.deg == pytest.approx(25.3288, abs=2e-3)


# -- through ingest, on both backends ----------------------------------------------------------------

def test_ingest_stores_the_cards_the_site_and_no_star_metrics_on_calibration(real_data, catalog_url):
    from sqlalchemy import select

    from obsdb.api import Catalog
    from obsdb.catalog.models import Frame, FrameMetrics, Instrument, Night, StarList

    with Catalog.open(catalog_url, create=True) as catalog:
        catalog.ingest([real_data / "lowell42_raw_night"])
        report = catalog.qa()
        with catalog.session() as session:
            frames = {f.number: f for f in session.scalars(select(Frame))}
            night = session.scalars(select(Night)).one()
            assert (night.name, night.latitude, night.longitude, night.elevation) == \
                ("2019-03-25", 35.09675, -111.5355, 2206.0)
            instrument = session.scalars(select(Instrument)).one()
            assert (instrument.binning_x, instrument.binning_y) == (3, 3)
            assert frames[100].keywords["band"] == "FILTNAME" and frames[100].band == "V"
            assert frames[140].keywords["date_obs"] == "DATE-OBS+UTCSTART"
            assert frames[140].keywords["binning"] == "CCDSUM" and frames[140].keywords["latitude"] == "LATITUDE"
            measured = set(session.scalars(select(FrameMetrics.frame_id)))
            listed = set(session.scalars(select(StarList.frame_id)))
            lights = {f.id for f in frames.values() if f.image_type == "light"}
            assert measured == lights and listed == lights       # no stars measured on 6 bias and 5 flats
        # The calibration checks find nothing wrong with this night (docs/calibration-frames.md).
        assert not [a for a in report.added if a[1].startswith(("calib", "flat"))]
        summary = {(r["band"], r["type"]): r for r in catalog.summary()}
        assert summary[("VR", "bias")]["median_fwhm"] is None and summary[("VR", "light")]["median_fwhm"] > 1
        shown = catalog.show("140")[0]
        assert shown["keywords"]["date_obs"] == "DATE-OBS+UTCSTART"


def test_the_cli_shows_the_cards(real_data, tmp_path):
    from typer.testing import CliRunner

    from obsdb.cli.app import app

    runner = CliRunner()
    db = str(tmp_path / "c.sqlite")
    assert runner.invoke(app, ["--db", db, "init"]).exit_code == 0
    runner.invoke(app, ["--db", db, "ingest", str(real_data / "lowell42_raw_night")])
    shown = runner.invoke(app, ["--db", db, "show", "100"], terminal_width=200).output
    assert "from cards" in shown and "band=FILTNAME" in shown and "date_obs=DATE-OBS+UTCSTART" in shown
    listed = runner.invoke(app, ["--db", db, "frames", "--columns", "number,band,date_obs,cards"],
                           terminal_width=200).output
    line = next(row for row in listed.splitlines() if row.startswith("100 "))
    assert "band=FILTNAME date_obs=DATE-OBS+UTCSTART" in line and "binning" not in line


def test_run_names_the_object_of_a_single_target_run(tmp_path):
    """`run` said "target no OBJECT" for a night of one target, whose run is not restricted to it."""
    from obsdb.pipeline.align import AlignReport
    from obsdb.pipeline.run import _target_name

    path = write_fits(tmp_path / "a.fits", np.zeros((4, 4), dtype=np.uint16), {"OBJECT": "M 94"})
    assert _target_name(AlignReport(1, "auto", 1, reference_path=str(path))) == "M 94"
    assert _target_name(AlignReport(1, "auto", 1, reference_path=str(path), target="M 51")) == "M 51"
    bare = write_fits(tmp_path / "b.fits", np.zeros((4, 4), dtype=np.uint16))
    assert _target_name(AlignReport(1, "auto", 1, reference_path=str(bare))) == "no OBJECT"
    assert _target_name(AlignReport(1, "auto", 1, reference_path=str(tmp_path / "gone.fits"))) == "no OBJECT"
