"""Header normalisation: image types, dates, frame numbers, JSON."""

from datetime import datetime

import pytest
from astropy.io import fits

from obsdb.imaging.header import (frame_columns, frame_number, header_to_json, normalise_image_type,
                                  parse_date_obs, suggest_number_pattern)


@pytest.mark.parametrize("value, expected", [
    ("Light Frame", "light"), ("LIGHT", "light"), ("object", "light"), ("Bias Frame", "bias"),
    ("ZERO", "bias"), ("Dark Frame", "dark"), ("FLAT", "flat"), ("Flat Field", "flat"),
    ("weird", "unknown"),
])
def test_imagetyp(value, expected):
    assert normalise_image_type({"IMAGETYP": value}) == expected


def test_picttype_sbig_and_configurable():
    assert normalise_image_type({"PICTTYPE": 1}) == "light"
    assert normalise_image_type({"PICTTYPE": 3}) == "dark"
    assert normalise_image_type({"PICTTYPE": 9}) == "unknown"
    assert normalise_image_type({"PICTTYPE": 9}, picttypes={9: "flat"}) == "flat"
    assert normalise_image_type({}) == "unknown"


@pytest.mark.parametrize("header, expected", [
    ({"DATE-OBS": "2026-03-14T20:01:02.5"}, datetime(2026, 3, 14, 20, 1, 2, 500000)),
    ({"DATE-OBS": "2013-07-13", "TIME-OBS": "00:57:33"}, datetime(2013, 7, 13, 0, 57, 33)),
    ({"DATE-OBS": "26/10/92"}, datetime(1992, 10, 26)),
    ({"DATE-OBS": "2026-03-14T20:00:00+02:00"}, datetime(2026, 3, 14, 18, 0, 0)),
    ({"DATE-OBS": "garbage"}, None),
    ({}, None),
])
def test_date_obs(header, expected):
    assert parse_date_obs(header) == expected


@pytest.mark.parametrize("name, expected", [
    ("proc_NGC_3293_V_3862.fits", 3862), ("NGC3293_B_0042.fit.gz", 42), ("a12b345c6789.fts", 6789),
    ("flat.fits", None), ("img_12.fits", None),
])
def test_frame_number(name, expected):
    assert frame_number(name) == expected


def test_frame_number_custom_pattern():
    assert frame_number("m94_set1_212046_bin2_crop512.fits", r"set1_(\d+)") == 212046


def test_header_json_keeps_repeats_and_types():
    header = fits.Header()
    header["EXPTIME"] = 30.0
    header["FILTER"] = "V "
    header["FLAG"] = True
    header.add_history("step one")
    header.add_history("step two")
    result = header_to_json(header)
    assert result["EXPTIME"] == 30.0 and result["FILTER"] == "V" and result["FLAG"] is True
    assert result["HISTORY"] == ["step one", "step two"]
    columns = frame_columns(result)
    assert columns["band"] == "V" and columns["exptime"] == 30.0 and columns["image_type"] == "unknown"


@pytest.mark.parametrize("names, pattern", [
    (["m94_set1_212046_bin2_crop512.fits", "m94_set1_212249_bin2_crop512.fits"], r"set1_(\d+)"),
    (["a_001_x512.fits", "b_002_x512.fits.gz"], r"_(\d+)"),   # no common token: the separator
    (["light_512.fits", "light_512.fit"], None),               # nothing tells them apart
    (["only_512.fits"], None),
])
def test_suggested_number_pattern_tells_the_files_apart(names, pattern):
    assert suggest_number_pattern(names) == pattern
    if pattern:
        numbers = [frame_number(name, pattern) for name in names]
        assert None not in numbers and len(set(numbers)) == len(names)


@pytest.mark.parametrize("header, fragment", [
    ({"DATE-OBS": "9999-12-31T23:59:59"}, "DATE-OBS '9999-12-31T23:59:59' is in the future, implausible"),
    ({"DATE-OBS": "1899-12-31T23:00:00"}, "DATE-OBS '1899-12-31T23:00:00' is before 1900, implausible"),
    ({"DATE-OBS": "0001-01-01"}, "before 1900"),
    ({"DATE-OBS": "2013-07-13", "TIME-OBS": "99:99:99"}, "TIME-OBS '99:99:99' is not a time of day"),
    ({"DATE-OBS": "2013-07-13", "UT": "12h30"}, "UT '12h30' is not a time of day"),
    ({"DATE-OBS": "2026-02-30T10:00:00"}, "DATE-OBS '2026-02-30T10:00:00' is not a date"),
    ({"DATE-OBS": 20260314}, "DATE-OBS 20260314 is not a date"),
])
def test_implausible_dates_are_unknown_with_a_reason(header, fragment):
    """A DATE-OBS of 9999-12-31 broke the report's date axis; TIME-OBS 99:99:99 moved the date by four days."""
    problems = []
    assert parse_date_obs(header, problems) is None
    [problem] = problems
    assert fragment in problem and problem.endswith("date recorded as unknown")


def test_a_date_just_ahead_of_the_clock_is_kept():
    now = datetime(2026, 3, 14, 12, 0, 0)
    problems = []
    assert parse_date_obs({"DATE-OBS": "2026-03-15T06:00:00"}, problems, now=now) == datetime(2026, 3, 15, 6)
    assert parse_date_obs({"DATE-OBS": "2026-03-16T06:00:00"}, problems, now=now) is None
    assert len(problems) == 1
    # A leap second is a time of day.
    assert parse_date_obs({"DATE-OBS": "2016-12-31", "TIME-OBS": "23:59:60.5"}) == datetime(2017, 1, 1, 0, 0, 0, 500000)


def test_duplicated_cards_count_by_the_first_with_a_warning():
    from astropy.io import fits

    header = fits.Header()
    header.append(("FILTER", "V"))
    header.append(("EXPTIME", 30.0))
    header.append(("FILTER", "B"))
    header.append(("EXPTIME", 60.0))
    header.append(("TELESCOP", "T1"))
    header.append(("TELESCOP", "T2"))
    problems = []
    columns = frame_columns(header_to_json(header), problems=problems)
    assert columns["band"] == "V" and columns["exptime"] == 30.0
    assert problems == ["FILTER is given 2 times ('V', 'B'): the first is used",
                        "EXPTIME is given 2 times (30.0, 60.0): the first is used"]
    from obsdb.imaging.header import instrument_identity

    assert instrument_identity(header_to_json(header), 10, 10)["telescope"] == "T1"
