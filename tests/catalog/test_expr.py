"""The --where expression language and frame selectors: compiled to SQL, errors point at the problem.

The typed examples and the refusals (issue 11) run on SQLite and, where a server answers, PostgreSQL.
"""

import ast
import json
import re
import time
from datetime import datetime, timezone

import pytest
from typer.testing import CliRunner

from obsdb import Catalog
from obsdb.catalog.expr import MAX_DEPTH, ExpressionError, _measure, compile_expression
from obsdb.catalog.models import AlignmentRun, Frame, FrameMetrics, FrameStats, Night, ShiftStep
from obsdb.catalog.queries import frame_records
from obsdb.catalog.selectors import SelectorError, parse_selector, select_frames
from obsdb.cli.app import app


@pytest.fixture()
def filled(catalog):
    add_frames(catalog)
    return catalog


def add_frames(catalog):
    """Frames 1-4 of night 2026-03-14, the examples' catalog."""
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


def numbers(catalog, where):
    with catalog.session() as session:
        return [r.number for r in frame_records(session, where=where)]


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


# ---------------------------------------------------------------- typed, bounded, on every backend (issue 11)

def add_oddities(catalog):
    """Beside :func:`add_frames`: what typing must survive.  An unreadable frame 5 whose header has
    text where numbers belong, a number where text belongs and a boolean; night 2026-03-15 with
    another frame 1 and a frame 1005 of zero exposure, dates, metrics, many saturated pixels, a shift."""
    with catalog.session() as session:
        first = session.query(Night).filter_by(name="2026-03-14").one()
        session.add(Frame(path="/x/f5.fits", file_name="f5.fits", size=1, mtime=0.0, number=5, readable=False,
                          header={"EXPTIME": "thirty", "CCD-TEMP": "N/A", "FILTER": 3, "SIMPLE": True,
                                  "OBSERVER": None}, night_id=first.id))
        night = Night(name="2026-03-15", source="date-obs")
        session.add(night)
        session.flush()
        frames = []
        for number, exptime, hour, saturated, simple in [(1, 30.0, 20, 3000, True), (1005, 0.0, 26, 0, False)]:
            date_obs = datetime(2026, 3, 15, tzinfo=timezone.utc).replace(day=15 + hour // 24, hour=hour % 24)
            frame = Frame(path=f"/y/g{number}.fits", file_name=f"g{number}.fits", size=2, mtime=0.0, number=number,
                          band="V", exptime=exptime, date_obs=date_obs, readable=True, night_id=night.id,
                          header={"EXPTIME": exptime, "FILTER": "V", "SIMPLE": simple,
                                  "DATE-OBS": date_obs.replace(tzinfo=None).isoformat()})
            frame.stats = FrameStats(min=0, max=1, mean=800.0, median=800.0 - number % 1000 * 0.1, std=1,
                                     background=800.0, background_rms=1, n_nan=0, n_saturated=saturated,
                                     algorithm="t")
            if number == 1:
                frame.metrics = FrameMetrics(n_stars=40, fwhm=2.5, algorithm="t")
            session.add(frame)
            frames.append(frame)
        session.flush()
        run = AlignmentRun(method="auto", software_version="t", author="t", night_id=night.id)
        session.add(run)
        session.flush()
        session.add(ShiftStep(run_id=run.id, frame_id=frames[1].id, stage=1, kind="auto", method="stars", dx=1.0,
                              dy=2.0, n_matched=12, residual_rms=0.05))


@pytest.fixture()
def archive(catalog_url):
    """:func:`add_frames` and :func:`add_oddities` on each backend."""
    with Catalog.open(catalog_url, create=True) as catalog:
        add_frames(catalog)
        add_oddities(catalog)
        yield catalog


def labels(catalog, where):
    """The frames ``where`` selects, as ``DD:NUMBER`` (the night's day)."""
    with catalog.session() as session:
        return sorted(f"{r.night[-2:]}:{r.number}" for r in frame_records(session, where=where))


EVERY = ["14:1", "14:2", "14:3", "14:4", "14:5", "15:1", "15:1005"]
_NESTED = "align_rms < 1 or number > 0"
for _ in range(9):
    _NESTED = f"(id > 0 and (id < 0 or {_NESTED}))"
TYPED_EXAMPLES = [
    # A header value of another type is NULL: no failed cast on PostgreSQL, no 'thirty' read as 0 on SQLite.
    ("EXPTIME < 1", ["15:1005"]),
    ('header["CCD-TEMP"] > -100', ["14:1", "14:2", "14:3"]),
    ("FILTER == 3", ["14:5"]),
    ("FILTER == 'V'", ["14:1", "14:4", "15:1", "15:1005"]),
    ("OBSERVER > 'a'", ["14:1", "14:2", "14:3", "14:4"]),
    ("SIMPLE", ["14:5", "15:1"]),
    ("SIMPLE == False", ["15:1005"]),
    ("not SIMPLE", ["15:1005"]),
    ("header['DATE-OBS'] > '2026-03-16'", ["15:1005"]),
    # Division by zero in the data is unknown, never an error; integer arithmetic cannot overflow.
    ("median / exptime > 25", ["14:1", "14:2", "14:3", "14:4", "15:1"]),
    ("n_saturated * 1000000 > 1000000000", ["15:1"]),
    ("number * 9000000000000000000 > 0", EVERY),
    ("number == 3000000000", []),
    ("number in (3000000000, 1005)", ["15:1005"]),
    ("-" * 17 + "number < 0", EVERY),
    ("number > " + "-" * 18 + "0", EVERY),
    ("not " * 17 + "readable", ["14:5"]),
    # Dates, nights and the current registration.
    ("date_obs > 2026-03-15T12:00", ["15:1", "15:1005"]),
    ("date_obs < '2026-03-16'", ["15:1"]),
    ("date_obs in ('2026-03-15T20:00:00+00:00',)", ["15:1"]),
    ("night == 2026-03-15", ["15:1", "15:1005"]),
    ("night == '2026-03-15T23:00'", ["15:1", "15:1005"]),
    ("align_matches > 10 and align_rms < 0.1", ["15:1005"]),
    # Truth of a column alone, empty and negated lists, booleans.
    ("band", ["14:1", "14:2", "14:3", "14:4", "15:1", "15:1005"]),
    ("fwhm", ["15:1"]),
    ("date_obs", ["15:1", "15:1005"]),
    ("band in ()", []),
    ("band not in ('V', 'B')", ["14:3"]),
    ("readable == False", ["14:5"]),
    # Long chains and the deepest nesting allowed: SQLite's expression depth and Python's stack both hold.
    ("number == 1005 and " + " and ".join(["id"] * 1390), ["15:1005"]),
    ("number == 1005 or " + " or ".join(["id < 0"] * 600), ["15:1005"]),
    (_NESTED, EVERY),
]


def test_typed_expressions_select_the_same_frames_on_each_backend(archive):
    assert _measure(ast.parse(_NESTED, mode="eval").body)[1] == MAX_DEPTH
    wrong = {}
    for where, expected in TYPED_EXAMPLES:
        got = labels(archive, where)
        if got != expected:
            wrong[where[:60]] = (got, expected)
    assert not wrong


def _deepest(leaf: str, wrap: str, chain: bool = False) -> str:
    """``leaf`` under as many alternating and/or (``wrap`` "not": under not too) as :data:`MAX_DEPTH` allows,
    if ``chain`` as the last term of a 1,300-term chain (bracketed halves): the most SQLite's parser must
    hold for an allowed expression."""
    def build(levels):
        where = leaf
        for i in range(levels):
            where = f"{'not ' if wrap == 'not' else ''}(id > 0 {'and' if i % 2 else 'or'} {where})"
        return " or ".join(["id"] * 1300) + " or " + where if chain else where

    levels = 0
    while _measure(ast.parse(build(levels + 1), mode="eval").body)[1] <= MAX_DEPTH:
        levels += 1
    return build(levels)


def test_the_deepest_allowed_expressions_run_in_every_query_that_takes_where(archive):
    """render's plan holds the filter two subqueries deep, align's one, the listing none."""
    from obsdb.catalog.stores import AlignStore, RenderStore

    chained = _deepest("align_rms < 1", "and/or", chain=True)
    assert len(labels(archive, chained)) == 7
    RenderStore(archive.db).render_plan(where=chained, status="any")
    for where in (_deepest("header['CCD-TEMP'] > -100", "not"),
                  _deepest("median / (align_rms + (align_dx * (align_dy - 1))) > -1e18", "and/or")):
        AlignStore(archive.db).align_frames(where=where, status="any")
        RenderStore(archive.db).render_plan(where=where, status="any")


REFUSED = [
    # 1. Constant arithmetic is bounded: no 3 GB string, no MemoryError.
    ("band == 'x' * 1500000000", "numbers only"),
    ("'ab' * 99999999999 == band", "numbers only"),
    ("band == 'x' * -1", "numbers only"),
    ("band + 'x' == 'Vx'", "numbers only"),
    ("number == 99999999 * 99999999 * 99999999", "beyond the 64-bit range"),
    ("number == 2 ** 4000", "unsupported expression"),
    ("median > 1e300 * 1e300", "beyond the 64-bit range"),
    ("median > 1e-10 * 1e-10", "closer to 0"),
    ("median > 1 / 0", "division by zero"),
    ("median / 0 > 1", "division by zero"),
    ("median" + " * 2" * 11 + " > 1", "more than 10 arithmetic operators"),
    # 2. Length, parts and nesting.
    ("not " * 1000 + "readable", "nests 1001 levels deep; the limit is 20"),
    ("number > 0 and " * 2 + "(id > 0 or " * 19 + "id < 0" + ")" * 19, "levels deep; the limit is 20"),
    ("-" * 9990 + "1 < number", "nests too deeply"),
    ("(" * 300 + "readable" + ")" * 300, "too many nested parentheses"),
    ("number in (" + "1," * 3000 + ")", "parts; the limit is 2,000"),
    (" and ".join(["readable"] * 1100), "characters long; the limit is 10,000"),
    ("readable and " + "x" * 20000, "characters long; the limit is 10,000"),
    # 3. Empty.
    ("", "empty expression"),
    ("   \t\n ", "empty expression"),
    # 4. Constants only.
    ("'a' in ('a',)", "compares constants only"),
    ("1 == None", "compares constants only"),
    ("1 < 2", "compares constants only"),
    ("None is None", "compares constants only"),
    ("1 < 2 < number", "compares constants only"),
    ("True", "is a constant"),
    ("2026-03-14", "is a constant"),
    # 5. Numbers beyond int64, written or parsed.
    ("median > 99999999999999999999999", "beyond the 64-bit range"),
    ("EXPTIME > -99999999999999999999999", "beyond the 64-bit range"),
    ("number in (1, 9223372036854775808)", "beyond the 64-bit range"),
    ("median > 1e400", "beyond the 64-bit range"),
    ("number == " + "9" * 5000, "beyond the 64-bit range"),
    # Types: what PostgreSQL would refuse mid-query, refused here with both sides named.
    ("readable == 1", "cannot compare readable (True/False) with 1 (a number)"),
    ("band > 3", "cannot compare band (text) with 3 (a number)"),
    ("band == exptime", "cannot compare band (text) with exptime (a number)"),
    ("date_obs > 'yesterday'", "'yesterday' is not a date"),
    ("date_obs > 2026-13-45", "is not a date"),
    ("date_obs == 5", "cannot compare date_obs (a date) with 5 (a number)"),
    ("header['DATE-OBS'] < date_obs", "compare DATE-OBS with a date in quotes"),
    ("readable < True", "only be compared with == or !="),
    ("band in ('V', 3)", "cannot compare band (text) with 3 (a number)"),
    ("band in ('V', None)", "is None"),
    ("band in ('V', band)", "holds numbers, strings"),
    ("-band < 0", "numbers only"),
    ("band == '\\x00'", "NUL"),
    ("band == '\\ud800'", "surrogate"),
    ("band == 'V'\x00", "U+0000"),
    ("band == '\x1b[31m'", "U+001B"),
    ("band == '\udcff'", "U+DCFF"),
    ("header[''] == 1", "1 to 72 characters"),
    ('header["A\\"B"] == 1', "1 to 72 characters"),
]


@pytest.mark.parametrize("where, message", REFUSED, ids=[w[:40] for w, _ in REFUSED])
def test_refused_expressions_say_why_on_one_line_at_once(where, message):
    # CPU time, not wall: "at once" means no runaway parse; a busy machine must not fail it.  One
    # accepted expression first, so that the modules a first compilation imports are not counted.
    compile_expression("band == 'V'")
    start = time.thread_time()
    with pytest.raises(ExpressionError) as info:
        compile_expression(where)
    assert time.thread_time() - start < 0.5
    assert message in str(info.value)
    assert "\n" not in str(info.value) and len(str(info.value)) < MAX_DEPTH * 120


def test_newlines_and_tabs_are_spaces_and_columns_stay_right():
    with pytest.raises(ExpressionError, match="unknown name 'fwhn'") as info:
        compile_expression("exptime > 1 and\n\tfwhn > 3")
    assert info.value.column == 17


# ---------------------------------------------------------------- frame selectors

def test_a_range_is_one_query_with_two_parameters_whatever_its_length(filled):
    from sqlalchemy import event

    statements = []

    def listener(conn, cursor, statement, parameters, context, many):
        statements.append(parameters)

    with filled.session() as session:
        event.listen(session.get_bind(), "before_cursor_execute", listener)
        try:
            frames = select_frames(session, "1-1000000")
        finally:
            event.remove(session.get_bind(), "before_cursor_execute", listener)
    assert [f.number for f in frames] == [1, 2, 3, 4]
    assert max(len(p) for p in statements) <= 4


@pytest.mark.parametrize("selector, message", [
    ("99999999999", "frame numbers go up to 2147483647"),
    ("1-" + "9" * 5000, "frame numbers go up to"),
    ("2147483648-2147483650", "frame numbers go up to"),
    ("1-1000002", "implausibly long"),
    ("5-1", "runs backwards"),
    ("1\n2", "U+000A"),
    ("\udcff.fits", "U+DCFF"),
    (",".join(["1"] * 1001), "the limit is 1,000"),
    ("", "empty frame selector"),
])
def test_malformed_selectors_are_explained(selector, message):
    with pytest.raises(SelectorError, match=re.escape(message)):
        parse_selector(selector)


def test_selectors_beyond_the_columns_range_or_not_paths_fail_cleanly_on_each_backend(archive):
    for selector in ("99999999999", "2147483647", "2147483640-2147483647", "~nobody_at_all/x.fits",
                     "/x/" + "y" * 5000, " , ", "2026-03-15:1005,2026-03-14:1-3"):
        with archive.session() as session:
            try:
                frames = select_frames(session, selector)
            except SelectorError:
                continue
        assert selector.startswith("2026-03-15:1005") and len(frames) == 4


# ---------------------------------------------------------------- the command line: one line, never "unexpected"

runner = CliRunner()


@pytest.fixture(scope="module")
def cli_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("where") / "obsdb.sqlite"
    with Catalog.open(str(db), create=True) as catalog:
        add_frames(catalog)
        add_oddities(catalog)
    return db


def _one_clean_line(result):
    assert "unexpected" not in result.output and "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.parametrize("where", [
    "band == 'x' * 1500000000", "'ab' * 99999999999 == band", "not " * 1000 + "readable",
    " and ".join(["readable"] * 1100), "   ", "'a' in ('a',)", "1 == None",
    "1 < 2", "median > 99999999999999999999999", "number in (1, 99999999999999999999999)", "date_obs > 'soon'",
    "band == 'a\nb' and fwhn > 1", "band == '\udcff'",
], ids=lambda w: repr(w[:30]))
def test_frames_where_refusals_are_one_clean_line(cli_db, where):
    start = time.perf_counter()
    result = runner.invoke(app, ["--db", str(cli_db), "frames", "--where", where], catch_exceptions=False)
    assert time.perf_counter() - start < 5
    assert result.exit_code == 1, result.output
    _one_clean_line(result)


def test_frames_where_with_a_thousand_terms_lists_frames(cli_db):
    where = " and ".join(["id"] * 1100) + " and " + " and ".join(["readable"] * 100)
    result = runner.invoke(app, ["--db", str(cli_db), "frames", "--where", where, "--format", "json"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 6


def test_frames_where_empty_is_an_error(cli_db):
    result = runner.invoke(app, ["--db", str(cli_db), "frames", "--where", ""], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    _one_clean_line(result)


@pytest.mark.parametrize("arguments, code", [
    (["1-1000000", "--night", "all"], 0), (["2026-03-15:1-1000000"], 0), (["1-1000000"], 1),
    (["99999999999"], 1), (["1-" + "9" * 5000], 1), (["~nobody_at_all/x.fits"], 1), (["1,1\n"], 1),
], ids=lambda a: repr(a)[:30])
def test_show_selectors_exit_cleanly(cli_db, arguments, code):
    result = runner.invoke(app, ["--db", str(cli_db), "show", *arguments, "--format", "json"],
                           catch_exceptions=False)
    assert result.exit_code == code, result.output
    assert "unexpected" not in result.output and "Traceback" not in result.output
    if code:
        _one_clean_line(result)


@pytest.mark.parametrize("where, message", [
    ("band == V", "no catalogued frame has a header keyword V (to compare with the text V, quote it: 'V')"),
    ("FILTR == 'V'", "no catalogued frame has a header keyword FILTR (did you mean FILTER?)"),
    ("fwhn > 3", "unknown name 'fwhn' (did you mean fwhm?"),
])
def test_silent_empty_answers_are_errors_with_a_did_you_mean(cli_db, where, message):
    result = runner.invoke(app, ["--db", str(cli_db), "frames", "--where", where], catch_exceptions=False)
    assert result.exit_code == 1 and message in result.output, result.output
    _one_clean_line(result)


def test_a_band_matches_whatever_its_case_unless_asked_exactly(cli_db):
    every = json.loads(runner.invoke(app, ["--db", str(cli_db), "frames", "--format", "json"]).stdout)
    band = next(r["band"] for r in every if r["band"])
    def numbers(option):
        result = runner.invoke(app, ["--db", str(cli_db), "frames", "--band", option, "--format", "json"])
        assert result.exit_code == 0, result.output
        return sorted(r["id"] for r in json.loads(result.stdout))
    exact = numbers(band)
    assert exact and numbers(band.swapcase()) == exact and numbers("=" + band) == exact
    assert numbers("=" + band.swapcase()) == []


def test_a_missing_keyword_after_a_newline_is_still_one_line(cli_db):
    result = runner.invoke(app, ["--db", str(cli_db), "frames", "--where", "A\n"], catch_exceptions=False)
    assert result.exit_code == 1 and "header keyword A" in result.output
    _one_clean_line(result)
