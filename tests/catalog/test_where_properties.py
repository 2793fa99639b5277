"""Whatever a user types as ``--where`` or as a frame selector: rows or an ObsdbError, quickly.

Hypothesis draws random text, soups of the grammar's tokens (names, keywords, numbers far beyond
64 bits, strings, operators, brackets), well-formed nested expressions, and random selectors with
``--night`` scopes.  Each is compiled and run against the small real catalog of tests/catalog/test_expr.py
(two nights, odd header types, a registration) on SQLite and, when a server answers, PostgreSQL.
Anything but rows or an :class:`obsdb.errors.ObsdbError` is a failure, and so is an example that
takes more than 3 s (a shared 2-core machine is slow; the bug took 10-26 s) or allocates more
than :data:`PEAK_BYTES` in Python.

The default run keeps this file under 10 s; ``-m slow`` runs many more examples.
"""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from obsdb import Catalog
from obsdb.catalog.expr import ALIGN_COLUMNS, UNPREFIXED
from obsdb.catalog.queries import frame_records
from obsdb.catalog.selectors import select_frames
from obsdb.errors import ObsdbError
from tests.catalog.test_expr import add_frames, add_oddities

PEAK_BYTES = 20 * 2**20
"""Most memory one example may allocate in Python (finding 1 of issue 11 allocated 3 GB)."""

SLOW = pytest.mark.slow

NAMES = sorted({*UNPREFIXED, *ALIGN_COLUMNS}) + [
    "EXPTIME", "FILTER", "OBSERVER", "SIMPLE", "DATE_OBS", 'header["CCD-TEMP"]', "header['DATE-OBS']", "header.FILTER",
    "header['']", "stats.median", "metrics.fwhm", "metrics.background", "frame.band", "stats.nope", "fwhn", "Exptime",
    "header", "__import__", "x.y.z"]
CONSTANTS = ["None", "True", "False", "''", "'V'", "'nico'", "'2026-03-15'", "'2026-13-45'", "'\\x00'", "'\\ud800'",
             "b'x'", "1j", "...", "2026-03-14", "2026-03-15T12:00", "0x7fffffff", "1_000", "1e400", "-1e-30",
             "9223372036854775807", "9223372036854775808", "-9223372036854775808", "0", "0.0"]
KEYWORDS = ["and", "or", "not", "in", "not in", "is", "is not", "if", "else", "lambda", "for", "await", "yield"]
OPERATORS = ["==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "**", "%", "//", "~", "&", "|", "^", "<<", ",",
             ".", ":", ";", "=", ":=", "@", "\\", "'", '"', "#"]
BRACKETS = ["(", ")", "[", "]", "{", "}", "()", "(1,)"]

numbers = st.one_of(st.integers(-10**30, 10**30).map(str), st.integers(-3, 3000).map(str),
                    st.floats(allow_nan=True, allow_infinity=True).map(repr))
strings = st.text(max_size=8).map(repr)
names = st.sampled_from(NAMES)
constants = st.one_of(numbers, strings, st.sampled_from(CONSTANTS))
any_text = st.one_of(
    st.text(max_size=80),
    st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"]) | st.characters(),
            max_size=20),
    st.text("abdeinorstx_ ()[]'\"<>=!+-*/.,0123456789", max_size=120))
token_soup = st.tuples(
    st.lists(st.one_of(names, constants, st.sampled_from(KEYWORDS + OPERATORS + BRACKETS)), max_size=30),
    st.sampled_from([" ", "", "  "])).map(lambda t: t[1].join(t[0]))


def _value(children):
    return st.one_of(st.tuples(children, st.sampled_from("+-*/"), children).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
                     children.map(lambda v: f"-{v}"))


values = st.recursive(st.one_of(names, constants), _value, max_leaves=6)
NUMERIC = ["number", "exptime", "median", "n_saturated", "size", "fwhm", "n_stars", "align_rms", "align_matches",
           "EXPTIME", 'header["CCD-TEMP"]', "FILTER", "stats.median"]
TEXTUAL = ["band", "object", "night", "type", "file_name", "FILTER", "OBSERVER", "header['DATE-OBS']"]
numerics = st.recursive(st.one_of(st.sampled_from(NUMERIC), st.integers(-5, 8000).map(str),
                                  st.floats(-1e4, 1e4).map(repr)), _value, max_leaves=4)
# Comparisons that type-check, so that many examples reach the database rather than stop at an error.
well_typed = st.one_of(
    st.tuples(numerics, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), numerics).map(" ".join),
    st.tuples(st.sampled_from(TEXTUAL), st.sampled_from(["==", "!=", "<", ">="]),
              st.sampled_from(["'V'", "'B'", "'R'", "'nico'", "'2026-03-15'", "''"]) | strings).map(" ".join),
    st.tuples(st.sampled_from(["date_obs", "night"]), st.sampled_from(["<", ">", "=="]),
              st.sampled_from(["2026-03-15", "2026-03-15T21:00", "'2026-03-16T01:00+02:00'"])).map(" ".join),
    st.tuples(st.sampled_from(TEXTUAL), st.sampled_from(["in", "not in"]),
              st.lists(st.sampled_from(["'V'", "'B'", "'nico'"]), max_size=3)).map(
        lambda t: f"{t[0]} {t[1]} ({', '.join(t[2])},)" if t[2] else f"{t[0]} {t[1]} ()"),
    st.sampled_from(["readable", "SIMPLE", "band", "fwhm", "date_obs", "readable == False", "band is None"]))
comparisons = st.one_of(
    well_typed, well_typed, well_typed,
    st.tuples(values, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), values).map(" ".join),
    st.tuples(values, st.sampled_from(["in", "not in"]), st.lists(constants, max_size=4)).map(
        lambda t: f"{t[0]} {t[1]} ({', '.join(t[2])}{',' if len(t[2]) == 1 else ''})"),
    st.tuples(values, st.sampled_from(["is None", "is not None", "is 1"])).map(" ".join),
    st.tuples(values, values, values).map(lambda t: f"{t[0]} < {t[1]} <= {t[2]}"),
    values)


def _condition(children):
    return st.one_of(st.tuples(children, st.sampled_from(["and", "or"]), children).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})"), children.map(lambda c: f"not {c}"),
        st.tuples(st.lists(children, min_size=2, max_size=5), st.sampled_from([" and ", " or "])).map(
            lambda t: t[1].join(t[0])))


conditions = st.recursive(comparisons, _condition, max_leaves=40)
wheres = st.one_of(any_text, token_soup, conditions, conditions)

NIGHTS = ["2026-03-14", "2026-03-15", "2026-03-15", "2026-03-16", "2026", "x"]
numerals = st.one_of(st.integers(0, 6), st.integers(0, 6), st.integers(0, 2000), st.integers(0, 10**25),
                     st.just(1005)).map(str)
ranges = st.tuples(numerals, numerals).map("-".join)
selector_parts = st.one_of(
    numerals, ranges, ranges, st.sampled_from(["1-1000000", "1000-1010", "2-4"]),
    st.tuples(st.sampled_from(NIGHTS), st.one_of(numerals, st.tuples(numerals, numerals).map("-".join))).map(
        ":".join),
    st.sampled_from(["/x/f1.fits", "f1.fits", "g1.fits", "/y/g1005.fits", "~/x.fits", "~nobody_at_all/x", "../x",
                     ".", "", " ", "1 - 3", "-1", "1-", "2026-03-15:", "2026-03-15:1005"]),
    st.text(max_size=12))
fair_parts = st.one_of(st.integers(1, 5).map(str), st.sampled_from(["1-5", "2-4", "1-1000000", "1000-1010"]),
                       st.sampled_from(["2026-03-15:1005", "2026-03-15:1-1005", "2026-03-14:1-3", "/x/f1.fits",
                                        "g1005.fits"]))
selectors = st.one_of(st.lists(fair_parts, min_size=1, max_size=3).map(",".join),
                      st.lists(selector_parts, min_size=1, max_size=4).map(",".join), st.text(max_size=40))
scopes = st.sampled_from([None, "all", "all", "2026-03-15", "2026-03-14", ["2026-03-14", "2026-03-15"], "2026-03-17",
                          ""])


@pytest.fixture()
def archive(catalog_url):
    """tests/catalog/test_expr.py's catalog (two nights, odd headers, a registration) on each backend."""
    with Catalog.open(catalog_url, create=True) as catalog:
        add_frames(catalog)
        add_oddities(catalog)
        # Warm up (connection, first compilations) so that the first example is timed like the others.
        with catalog.session() as session:
            frame_records(session, where="align_rms < 1 or EXPTIME > 0 or SIMPLE or date_obs > 2026-03-15")
            select_frames(session, "1", nights="all")
        yield catalog


def _rows_or_obsdb_error(catalog, where, selector, nights) -> None:
    """Run both; anything but a result or an ObsdbError propagates, and so fails the example."""
    tracemalloc.start()
    try:
        try:
            with catalog.session() as session:
                event(f"--where: {len(frame_records(session, where=where))} rows")
        except ObsdbError as exc:
            assert "\n" not in str(exc)
            event(f"--where: {type(exc).__name__}")
        try:
            with catalog.session() as session:
                event(f"selector: {len(select_frames(session, selector, nights=nights))} frames")
        except ObsdbError as exc:
            assert "\n" not in str(exc)
            event(f"selector: {type(exc).__name__}")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BYTES, f"{peak / 2**20:.0f} MiB allocated"


EXAMPLE = dict(deadline=3000, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])


@settings(max_examples=60, **EXAMPLE)
@given(where=wheres, selector=selectors, nights=scopes)
def test_any_where_and_selector_give_rows_or_an_obsdb_error(archive, where, selector, nights):
    _rows_or_obsdb_error(archive, where, selector, nights)


@SLOW
@settings(max_examples=3000, **EXAMPLE)
@given(where=wheres, selector=selectors, nights=scopes)
def test_many_wheres_and_selectors_give_rows_or_an_obsdb_error(archive, where, selector, nights):
    _rows_or_obsdb_error(archive, where, selector, nights)
