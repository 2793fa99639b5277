"""The --where expression language: compiled to SQL expressions, errors point at the problem."""

import pytest

from obsdb.catalog.expr import ExpressionError, compile_expression
from obsdb.catalog.models import Frame, FrameStats, Night
from obsdb.catalog.queries import frame_records


@pytest.fixture()
def filled(catalog):
    with catalog.session() as session:
        night = Night(name="2026-03-14", source="date-obs")
        session.add(night)
        session.flush()
        for number, band, exptime, median, temp in [
                (1, "V", 30.0, 900.0, -10.0), (2, "B", 60.0, 6000.0, -20.0), (3, "R", 10.0, 7000.0, -20.0),
                (4, "V", 60.0, 5500.0, None)]:
            header = {"EXPTIME": exptime, "FILTER": band, "OBSERVER": "nico" if number % 2 else "cedric"}
            if temp is not None:
                header["CCD-TEMP"] = temp
            frame = Frame(path=f"/x/f{number}.fits", file_name=f"f{number}.fits", size=1, mtime=0.0,
                          number=number, band=band, exptime=exptime, header=header, readable=True,
                          night_id=night.id)
            frame.stats = FrameStats(min=0, max=1, mean=median, median=median, std=1, background=median,
                                     background_rms=1, n_nan=0, n_saturated=0, algorithm="t")
            session.add(frame)
    return catalog


def numbers(catalog, where):
    with catalog.session() as session:
        return [r["number"] for r in frame_records(session, where=where)]


@pytest.mark.parametrize("where, expected", [
    ("EXPTIME >= 30 and band in ('V','B') and median > 5000", [2, 4]),
    ("exptime == 60", [2, 4]),
    ("band not in ('V',)", [2, 3]),
    ("OBSERVER == 'nico'", [1, 3]),
    ('header["CCD-TEMP"] < -15', [2, 3]),
    ('header["CCD-TEMP"] == None', [4]),
    ("not (median > 1000) or number == 3", [1, 3]),
    ("median / exptime > 100", [3]),
    ("10 < exptime < 60", [1]),
    ("stats.median >= 7000", [3]),
])
def test_expressions_select_the_right_frames(filled, where, expected):
    assert numbers(filled, where) == expected


@pytest.mark.parametrize("where, message, column", [
    ("EXPTIME >= 3o", "invalid syntax", None),
    ("fwhn > 3", "unknown name 'fwhn'", 0),
    ("band in 'V'", "list of values", 8),
    ("__import__('os').system('x')", "expected a comparison", 0),
    ("__import__('os') == 1", "unsupported", 0),
    ("median > 5000; drop", "invalid syntax", None),
    ("fwhm >", "ends too early", 6),
    ("fwhm > > 3", "invalid syntax", 7),
    ("exptime", None, None),
    ("", "empty", None),
])
def test_malformed_expressions_are_explained(where, message, column):
    if message is None:
        compile_expression(where)  # a bare numeric column is allowed (truthiness)
        return
    with pytest.raises(ExpressionError, match=message) as info:
        compile_expression(where)
    if column is not None:
        assert info.value.column == column
        assert f"column {column + 1}" in str(info.value)
