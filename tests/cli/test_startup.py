"""Query commands that start at once: the lean one-command app and the fast path (stdlib ``sqlite3``
on SQLite, plain psycopg on PostgreSQL).

The fast path (:mod:`obsdb.catalog.lite`) must give byte for byte what the SQLAlchemy path gives, on
both databases, and must really be taken (no SQLAlchemy imported); the lean app must print the full
app's help and errors.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from obsdb.cli.app import app
from tests.conftest import postgres_databases, write_fits
from obsdb.catalog.statements import WHERE_MARK

runner = CliRunner()

NIGHT_1, NIGHT_2 = "2026-03-14", "2026-03-15"


PGTZ = "America/Santiago"
"""The PostgreSQL session's time zone in these tests (libpq reads ``PGTZ``): not UTC, so that a
timestamp the fast path failed to give in UTC shows in the output."""


def invoke(db, *args, lite: bool = True):
    env = {"OBSDB_LITE": "1" if lite else "0", "PGTZ": PGTZ}
    return runner.invoke(app, ["--db", str(db), *args], catch_exceptions=False, env=env)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def rich_catalog(request, tmp_path_factory, simulated_nights):
    """Two nights: QA verdicts (accepted and rejected frames), a pending night, a person's reject, an
    accept that overrules the rules, a retracted tag, a free tag, a pointing group and an alignment run;
    an SQLite file (a Path) or a PostgreSQL database (its URL)."""
    if request.param == "sqlite":
        yield _build_rich_catalog(tmp_path_factory, simulated_nights, None)
        return
    with postgres_databases() as make:
        yield _build_rich_catalog(tmp_path_factory, simulated_nights, make())


SQLITE_ONLY = pytest.mark.parametrize("rich_catalog", ["sqlite"], indirect=True)
"""For a test of what only an SQLite file has (copied, opened with sqlite3)."""

POSTGRES_ONLY = pytest.mark.parametrize("rich_catalog", ["postgresql"], indirect=True)


def _build_rich_catalog(tmp_path_factory, simulated_nights, url):
    root = tmp_path_factory.mktemp("startup")
    one, two = root / "one", root / "two"
    simulated_nights.copy(one, seed=5, size=128, n_frames=8, bands=("V", "R"), n_groups=2)
    simulated_nights.copy(two, seed=6, size=128, n_frames=5, bands=("B",), n_groups=1, first_number=2001)
    # A bias frame, rejected by hand: the calibration section of `summary` and `rejected`.
    write_fits(two / "bias_0001.fits", np.full((32, 32), 1000, dtype=np.float32),
               {"IMAGETYP": "Bias Frame", "DATE-OBS": "2026-03-15T19:00:00", "EXPTIME": 0.0})
    db = url or root / "obsdb.sqlite"
    steps = [("init",), ("ingest", str(one), "--night", NIGHT_1), ("ingest", str(two), "--night", NIGHT_2),
             ("qa", "--night", NIGHT_1),
             ("tag", "1002", "reject", "-m", "a plane"), ("tag", "1003", "great", "-m", "lovely"),
             ("tag", "1004", "tracking-slight", "-m", "wobbly"), ("untag", "1004", "tracking-slight", "-m", "fine"),
             ("tag", "2002", "accept", "-m", "keep it"), ("tag", "bias_0001.fits", "reject", "-m", "light leak"), ("tag", "2003", "reject", "-m", "[see ds9] cloud"),
             ("group", "set", "pair", "1005,1006", "--night", NIGHT_1),
             ("align", "--night", NIGHT_1)]
    for step in steps:
        result = invoke(db, *step, lite=False)
        assert result.exit_code in (0, 1), (step, result.output)
    return db


QUERIES = [("frames",), ("frames", "--night", "all", "--wide"), ("frames", "--band", "v", "--night", NIGHT_1),
           ("frames", "--band", "=v", "--night", NIGHT_1), ("frames", "--status", "rejected", "--night", "all"),
           ("frames", "--status", "accepted", "--night", NIGHT_1, "--format", "csv"),
           ("frames", "--tag", "great", "--night", "all"), ("frames", "--tag", "clod", "--night", "all"),
           ("frames", "--type", "lights", "--night", "all"), ("frames", "--night", NIGHT_2, "--columns", "number,cards"),
           ("frames", "--where", "fwhm > 2", "--night", NIGHT_1),
           ("rejected",), ("rejected", "--night", "all", "--wide"), ("rejected", "--band", "b", "--night", NIGHT_2),
           ("rejected", "--night", "all", "--columns", "frame,tag,reason"),
           ("rejected", "--night", "all", "--columns", "frame,when", "--format", "json"),
           ("show", "1001"), ("show", "1002-1004", "--wide"), ("show", "2026-03-15:2003"),
           ("show", "bias_0001.fits"), ("show", "7777"), ("show", "1001", "--night", "nope"),
           ("history", "1001"), ("history", "1001-1003,2002"), ("history", "1005", "--wide"),
           ("history", "1"), ("history", "2026-03-15:2001"), ("history", "nope.fits"), ("nights",), ("nights", "--wide"), ("nights", "--format", "csv"), ("summary",),
           ("summary", "--night", NIGHT_1), ("summary", "--night", "all", "--format", "csv"),
           ("log",), ("log", "-n", "3", "--wide"), ("log", "--command", "tag"), ("log", "--night", NIGHT_2),
           ("log", "--night", "2026-01-01")]


@pytest.mark.parametrize("args", QUERIES, ids=" ".join)
@pytest.mark.parametrize("fmt", ["table", "json"])
def test_fast_and_normal_paths_print_the_same(rich_catalog, args, fmt, monkeypatch):
    if fmt == "json" and ("--format" in args or "--wide" in args):
        pytest.skip("one format per run")
    from obsdb.catalog import lite

    extra = () if fmt == "table" else ("--format", "json")
    normal = invoke(rich_catalog, *args, *extra, lite=False)
    # On PostgreSQL, each driver the fast path can read with (psycopg2 first, else psycopg 3).
    drivers = lite.POSTGRES_DRIVERS if str(rich_catalog).startswith("postgresql") else (None,)
    for driver in drivers:
        if driver is not None:
            monkeypatch.setattr(lite, "POSTGRES_DRIVERS", (driver,))
        fast = invoke(rich_catalog, *args, *extra)
        assert (fast.exit_code, fast.stdout, fast.stderr) == (normal.exit_code, normal.stdout, normal.stderr), driver


def test_the_catalog_has_what_the_comparison_needs(rich_catalog):
    nights = json.loads(invoke(rich_catalog, "nights", "--format", "json").stdout)
    assert [n["night"] for n in nights] == [NIGHT_1, NIGHT_2]
    assert {k for n in nights for k in ("accepted", "rejected", "pending") if n[k]} == {"accepted", "rejected",
                                                                                      "pending"}
    events = json.loads(invoke(rich_catalog, "log", "--format", "json").stdout)
    assert {"ingest", "qa", "tag", "untag", "align"} <= {e["command"] for e in events}
    assert any(e["frame"] and ":" in str(e["frame"]) for e in events)  # labels qualified by night
    assert "calibration frames with problems (1)" in invoke(rich_catalog, "summary").stdout
    history = json.loads(invoke(rich_catalog, "history", "1003", "--format", "json").stdout)
    assert history["runs"] and history["runs"][0]["steps"] and history["current_run"] is not None


def _run_main(db, *args, env=None):
    """``obsdb ARGS`` in a fresh interpreter; the modules it imported, one per line after a marker."""
    script = ("import sys\nfrom obsdb.cli.app import main\nsys.argv = ['obsdb', *sys.argv[1:]]\n"
              "try:\n    main()\nexcept SystemExit as stop:\n    code = stop.code\n"
              "print('@@modules', ' '.join(sorted(sys.modules)), file=sys.stderr)\n")
    return subprocess.run([sys.executable, "-c", script, "--db", str(db), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_json_answers_import_no_rich(rich_catalog):
    done = _run_main(rich_catalog, "frames", "--night", "all", "--format", "json")
    modules = done.stderr.split("@@modules", 1)[1].split()
    assert json.loads(done.stdout) and "rich" not in modules and "sqlalchemy" not in modules


@pytest.mark.parametrize("args", [("nights",), ("history", "1003"), ("show", "1002"), ("rejected", "--night", "all"), ("summary",), ("frames", "--night", "all"),
                                  ("frames", "--night", NIGHT_1, "--format", "json", "--band", "V"), ("log", "--format", "json"), ("summary", "--format", "json"),
                                  ("log", "--night", NIGHT_1)])
def test_the_fast_path_is_taken_without_sqlalchemy(rich_catalog, args):
    done = _run_main(rich_catalog, *args)
    modules = done.stderr.split("@@modules", 1)[1].split()
    assert done.stdout
    for heavy in ("sqlalchemy", "alembic", "obsdb.catalog.models", "obsdb.api", "numpy"):
        assert heavy not in modules, heavy
    # Off a terminal rich's console is not made: tables, show's facts and rules are written plain (a
    # long path may borrow rich's line-breaking function, no more).  A table whose title is wider than
    # its columns is rich's to draw (history's runs, here).
    if args[0] != "history":
        assert "rich.console" not in modules and "rich.table" not in modules
    on_postgresql = str(rich_catalog).startswith("postgresql")
    assert ("obsdb.catalog.pg_sql" in modules) == on_postgresql and ("psycopg2" in modules) == on_postgresql
    assert "psycopg" not in modules  # psycopg 3, SQLAlchemy's driver: the slower import (lite.POSTGRES_DRIVERS)
    # Only the command asked for is built: no other command module is imported.
    assert "obsdb.cli.pipeline_cmds" not in modules and "obsdb.cli.render_cmds" not in modules


@SQLITE_ONLY
@pytest.mark.parametrize("columns", ["80", "44", "200"])
def test_show_and_history_write_what_rich_draws(rich_catalog, columns):
    """Off a terminal `show` and `history` are written without rich; asked to decide (``TTY_COMPATIBLE``
    set, rich then finds no terminal and draws without styles), rich draws the same bytes."""
    for args in (("show", "1001-1003,2001"), ("show", "bias_0001.fits", "--wide"), ("history", "1001-1005")):
        plain = _run_main(rich_catalog, *args, env={"COLUMNS": columns})
        drawn = _run_main(rich_catalog, *args, env={"COLUMNS": columns, "TTY_COMPATIBLE": "0"})
        assert plain.stdout and plain.stdout == drawn.stdout, args
        assert "rich.console" in drawn.stderr.split("@@modules", 1)[1].split()
        if args[0] == "show":
            assert "rich.console" not in plain.stderr.split("@@modules", 1)[1].split()


@SQLITE_ONLY
def test_the_normal_path_is_taken_where_the_fast_one_does_not_apply(rich_catalog, tmp_path):
    # Switched off: the same answer through SQLAlchemy.
    done = _run_main(rich_catalog, "nights", env={"OBSDB_LITE": "0"})
    assert "sqlalchemy" in done.stderr.split("@@modules", 1)[1].split()
    # A catalog at another schema revision: the normal path's one-line error, not a wrong answer.
    import shutil
    import sqlite3

    old = tmp_path / "old.sqlite"
    shutil.copy(rich_catalog, old)
    with sqlite3.connect(old) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0009'")
    done = subprocess.run([sys.executable, "-m", "obsdb", "--db", str(old), "nights"], capture_output=True, text=True)
    assert done.returncode == 1
    assert "at revision 0009" in done.stderr and "obsdb init" in done.stderr
    # Not a catalog at all, and no catalog: the usual errors.
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database")
    for db, words in ((junk, "not a usable catalog"), (tmp_path / "none.sqlite", "obsdb init")):
        done = subprocess.run([sys.executable, "-m", "obsdb", "--db", str(db), "log"], capture_output=True, text=True)
        assert done.returncode == 1 and words in done.stderr, done.stderr


@POSTGRES_ONLY
def test_the_normal_path_is_taken_where_the_fast_one_does_not_apply_on_postgresql(rich_catalog):
    # Switched off: the same answer through SQLAlchemy.
    done = _run_main(rich_catalog, "nights", env={"OBSDB_LITE": "0"})
    assert "sqlalchemy" in done.stderr.split("@@modules", 1)[1].split()
    with postgres_databases() as make:
        # A catalog at another schema revision, and an empty database: the normal path's one-line errors.
        old, empty = make(), make()
        assert invoke(old, "init", lite=False).exit_code == 0
        import psycopg

        with psycopg.connect(old.replace("+psycopg", "")) as connection:
            connection.execute("UPDATE alembic_version SET version_num = '0009'")
        for db, words in ((old, "at revision 0009"), (empty, "obsdb init")):
            done = _run_main(db, "nights")
            assert "sqlalchemy" in done.stderr and words in done.stderr, done.stderr
            assert "Traceback" not in done.stderr
    # No server answers: the normal path's message, not a traceback.
    done = subprocess.run([sys.executable, "-m", "obsdb", "--db", "postgresql+psycopg://postgres@127.0.0.1:1/none",
                           "log"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "cannot reach the catalog's database server" in done.stderr, done.stderr


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_the_generated_sql_is_fresh(database):
    """``obsdb/catalog/lite_sql.py`` and ``pg_sql.py`` are what ``python -m obsdb.catalog.statements``
    writes today."""
    from obsdb.catalog.statements import GENERATED, generate

    path = Path(__file__).resolve().parents[2] / GENERATED[database]
    assert path.read_text() == generate(database), "run: python -m obsdb.catalog.statements"


def test_lean_app_prints_the_full_apps_help_and_errors():
    from obsdb.cli.app import LEAN_COMMANDS, lean_app, load_commands

    full = load_commands()
    for command in LEAN_COMMANDS:
        lean = lean_app(command)
        for args in ([command, "--help"], [command, "--no-such-option"], [command, "--format", "xml"]):
            a, b = runner.invoke(lean, args), runner.invoke(full, args)
            assert (a.exit_code, a.output) == (b.exit_code, b.output), args


def test_lean_commands_name_the_module_that_defines_them():
    from typer.main import get_command_name

    from obsdb.cli.app import LEAN_COMMANDS, load_commands

    defined = {(info.name or get_command_name(info.callback.__name__)): info.callback.__module__
               for info in load_commands().registered_commands}
    for command, module in LEAN_COMMANDS.items():
        assert defined[command] == f"obsdb.cli.{module}"


@pytest.mark.parametrize("argv, word", [(["frames"], "frames"), (["--db", "x.sqlite", "-v", "log", "-n", "2"], "log"),
                                        (["--db=x", "--config", "c.toml", "show", "1"], "show"),
                                        (["--help"], None), (["--version"], None), ([], None),
                                        (["--db", "x", "--help", "frames"], None)])
def test_command_word(argv, word):
    from obsdb.cli.app import command_word

    assert command_word(argv) == word


def test_python_m_obsdb_runs_the_command():
    done = subprocess.run([sys.executable, "-m", "obsdb", "frames", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "obsdb frames [OPTIONS]" in done.stdout.splitlines()[0]


def test_the_catalog_front_doors_agree_on_every_event(rich_catalog):
    """``Catalog.log(limit=None)`` (every event, as the desk reads them) on both paths."""
    from obsdb.api import Catalog
    from obsdb.catalog.lite import LiteCatalog

    with Catalog.open(str(rich_catalog)) as normal:
        expected = normal.log(limit=None, command="tag")
        assert expected and all(event["at"].endswith("+00:00") for event in expected)
        lite = LiteCatalog.open(str(rich_catalog), lambda: pytest.fail("the fast path applies here"))
        try:
            assert lite.log(limit=None, command="tag") == expected
            assert len(expected) >= 5 and lite.log(limit=2) == normal.log(limit=2)
        finally:
            lite.close()


def test_known_values_reads_only_the_kinds_asked_for(rich_catalog, monkeypatch):
    """Both front doors list the bands and active tags, or one of them without reading the other (a
    ``--band`` hint must not scan an archive's tags)."""
    from obsdb.api import Catalog
    from obsdb.catalog import lite

    ran = []
    real_fetch = lite._fetch
    monkeypatch.setattr(lite, "_fetch", lambda c, sql, values=None: ran.append(sql) or real_fetch(c, sql, values))
    with Catalog.open(str(rich_catalog)) as normal:
        both = normal.known_values()
        assert both["bands"] == ["B", "R", "V"] and {"great", "reject"} <= set(both["tags"])
        assert "tracking-slight" not in both["tags"]  # retracted
        fast = lite.LiteCatalog.open(str(rich_catalog), lambda: pytest.fail("the fast path applies here"))
        try:
            for kinds in (("bands",), ("tags",), ("bands", "tags"), ()):
                expected = {kind: both[kind] for kind in kinds}
                assert normal.known_values(kinds) == expected
                ran.clear()
                assert fast.known_values(kinds) == expected
                assert len(ran) == len(kinds), ran  # one statement per kind asked for, none for the others
                assert any("FROM tag" in sql for sql in ran) == ("tags" in kinds), ran
            with pytest.raises(ValueError, match="not stars"):
                fast.known_values(("bands", "stars"))
        finally:
            fast.close()


def test_the_listing_reader_reads_the_columns_the_statement_selects():
    from obsdb.catalog import readers, statements

    page = statements.STATEMENTS["frame_page"]()
    assert readers.N_FRAME == len(statements.FRAME_COLUMNS) and readers.N_ORDER == len(statements.FRAME_ORDER)
    assert len(page.selected_columns) == readers.N_FRAME + 3 + readers.N_STATS + 2 + readers.N_METRICS + 1 + \
        readers.N_ORDER


@SQLITE_ONLY
def test_every_generated_statement_runs_and_converts_as_sqlalchemy_does(rich_catalog):
    """Each variant's text is valid SQL on a real catalog, and its value conversions are known ones; the
    text of every name a ``--where`` can use is valid in a listing."""
    import sqlite3

    from obsdb.catalog import lite_sql
    from obsdb.catalog.lite import CONVERTERS

    assert {kind for kinds in lite_sql.CONVERT.values() for kind in kinds if kind} <= set(CONVERTERS["sqlite"])
    with sqlite3.connect(rich_catalog) as connection:
        for key, pieces in lite_sql.SQL.items():
            text = "".join(lite_sql.PIECES[i] for i in pieces)
            for name in lite_sql.EXPANDING.get(key, ()):
                text = text.replace(f"__[POSTCOMPILE_{name}]", f":{name}")
            text = text.replace(WHERE_MARK, _every_where_name(lite_sql))
            connection.execute(f"EXPLAIN {text}", {n: None for n in _names(text)})


@POSTGRES_ONLY
def test_every_generated_statement_runs_on_postgresql(rich_catalog):
    """Each PostgreSQL variant's text is valid SQL on a real catalog (lists of two values), with known
    value conversions."""
    import re

    import psycopg

    from obsdb.catalog import pg_sql
    from obsdb.catalog.lite import CONVERTERS

    assert {kind for kinds in pg_sql.CONVERT.values() for kind in kinds if kind} == {"utc"} <= \
        set(CONVERTERS["postgresql"])
    with psycopg.connect(rich_catalog.replace("+psycopg", "")) as connection:
        for key, pieces in pg_sql.SQL.items():
            text = "".join(pg_sql.PIECES[i] for i in pieces)
            for name, cast in pg_sql.EXPANDING.get(key, {}).items():
                text = text.replace(f"__[POSTCOMPILE_{name}]", f"%({name}_0)s{cast}, %({name}_1)s{cast}")
            text = text.replace(WHERE_MARK, _every_where_name(pg_sql))
            connection.execute(f"EXPLAIN {text}", {n: None for n in re.findall(r"%\((\w+)\)s", text)})


def _every_where_name(generated) -> str:
    """A ``--where`` condition naming every name of the language, in the place the fast path writes one."""
    return "(" + " AND ".join(f"{sql} IS NULL" for sql, _, _ in generated.WHERE_NAMES.values()) + ")"


def _names(text: str) -> set[str]:
    import re

    return set(re.findall(r":([A-Za-z_][A-Za-z0-9_]*)", text))


@pytest.mark.parametrize("db, uri", [("postgresql+psycopg://u:p%40ss@host:5433/cat?sslmode=require",
                                      "postgresql://u:p%40ss@host:5433/cat?sslmode=require"),
                                     ("postgresql://u@host/cat", "postgresql://u@host/cat"),
                                     ("postgresql+psycopg2://u@host/cat", None), ("sqlite:///x.sqlite", None),
                                     ("x.sqlite", None)])
def test_the_postgresql_fast_path_reads_the_catalogs_of_psycopg_urls(db, uri):
    from obsdb.catalog.lite import postgres_uri

    assert postgres_uri(db) == uri


@pytest.mark.parametrize("drivers", [("psycopg2",), ("psycopg",)])
def test_a_postgresql_url_that_reaches_no_catalog_takes_the_normal_path(drivers, monkeypatch):
    from obsdb.catalog import lite

    monkeypatch.setattr(lite, "POSTGRES_DRIVERS", drivers)
    for db in ("postgresql+psycopg://postgres@127.0.0.1:1/none", "postgresql://u@host/cat?no_such_option=1"):
        assert lite.LiteCatalog.open(db, lambda: pytest.fail("only opened by a fast catalog")) is None


@POSTGRES_ONLY
def test_without_a_postgresql_driver_the_normal_path_answers(rich_catalog, monkeypatch):
    from obsdb.catalog import lite

    monkeypatch.setattr(lite, "POSTGRES_DRIVERS", ("no_such_driver_module",))
    assert lite.LiteCatalog.open(rich_catalog, lambda: pytest.fail("only opened by a fast catalog")) is None
    fast, normal = invoke(rich_catalog, "nights"), invoke(rich_catalog, "nights", lite=False)
    assert fast.exit_code == 0 and fast.stdout == normal.stdout


@POSTGRES_ONLY
@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_each_postgresql_driver_reads_one_read_only_snapshot(rich_catalog, driver, monkeypatch):
    from obsdb.catalog import lite

    monkeypatch.setattr(lite, "POSTGRES_DRIVERS", (driver,))
    catalog = lite.LiteCatalog.open(rich_catalog, lambda: pytest.fail("the fast path applies here"))
    try:
        assert type(catalog._connection).__module__.partition(".")[0] == driver
        settings = catalog.nights() and lite._fetch(
            catalog._connection, "SELECT current_setting('transaction_isolation'), "
            "current_setting('transaction_read_only')")
        assert settings == [("repeatable read", "on")]
    finally:
        catalog.close()


PLAIN_LINES = [("wrote 6 aligned frames to /tmp/out",), ("  stack R: 6 frames, 180 s -> /a b/stack_R.fits",),
               ("[bold]not a style[/bold] :smile: not an emoji, http://x.org/y 1.5e3 0x1f",),
               ("trailing spaces   ",), ("",), ("two\nlines\n",), ("déjà vu, 東京, ≤ 2x",), ("a", "b", "c"),
               ("x" * 300,)]


@pytest.mark.parametrize("stderr", [False, True])
@pytest.mark.parametrize("options", [{}, {"style": "yellow"}, {"sep": ", ", "end": "!\n"}, {"soft_wrap": True}])
def test_a_plain_line_off_a_terminal_is_written_as_rich_writes_it(monkeypatch, stderr, options):
    """The console writes plain text itself, without importing rich, when rich would write the same bytes."""
    import io

    from rich.console import Console

    from obsdb.cli.common import LazyConsole, _plain_text

    settings = dict(stderr=stderr, highlight=False, markup=False, emoji=False, soft_wrap=True)
    for objects in PLAIN_LINES:
        streams = []
        for make in (lambda: LazyConsole(**settings), lambda: Console(**settings)):
            stream = io.StringIO()
            monkeypatch.setattr(sys, "stderr" if stderr else "stdout", stream)
            made = make()
            made.print(*objects, **options)
            streams.append(stream.getvalue())
            if isinstance(made, LazyConsole):
                assert object.__getattribute__(made, "_made") is None  # written without rich
        assert streams[0] == streams[1], objects
    # What rich alters, and a terminal, go through rich.
    lazy = LazyConsole(**settings)
    assert _plain_text(lazy, ("a\tb",), " ", "\n", {}) is None
    assert _plain_text(lazy, ("bell\a",), " ", "\n", {}) is None
    assert _plain_text(lazy, ("a",), " ", "\n", {"justify": "right"}) is None
    assert _plain_text(LazyConsole(**dict(settings, markup=True)), ("a",), " ", "\n", {}) is None
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert _plain_text(lazy, ("a",), " ", "\n", {}) is None


def test_align_and_render_print_their_lines_without_importing_rich(tmp_path):
    """Off a terminal, `obsdb align` and `obsdb render` print plain lines: rich is not imported."""
    code = ("import sys\nfrom obsdb.cli.common import console, err_console\n"
            "console.print('registered by stars: 6; unregistered: 0')\n"
            "err_console.print('2 frames unregistered', style='yellow')\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == ["registered by stars: 6; unregistered: 0", "[]"]
    assert done.stderr == "2 frames unregistered\n"


def test_is_terminal_is_richs_answer(monkeypatch):
    """Off a terminal the console says so without being made; a terminal, or one forced by the environment,
    is rich's to judge."""
    import io

    from rich.console import Console

    from obsdb.cli.common import LazyConsole

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for stream_type in (io.StringIO, Terminal):
        for env in ({}, {"FORCE_COLOR": "1"}, {"FORCE_COLOR": ""}, {"TTY_COMPATIBLE": "0"}, {"TTY_COMPATIBLE": "1"}):
            for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
                monkeypatch.delenv(name, raising=False)
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            for stderr in (False, True):
                monkeypatch.setattr(sys, "stderr" if stderr else "stdout", stream_type())
                lazy = LazyConsole(stderr=stderr, highlight=False, markup=False, emoji=False, soft_wrap=True)
                expected = Console(stderr=stderr, highlight=False, markup=False, emoji=False, soft_wrap=True).is_terminal
                assert lazy.is_terminal == expected, (stream_type, env, stderr)
                made = object.__getattribute__(lazy, "_made") is not None
                assert made == (stream_type is Terminal or bool(env)), (stream_type, env)


def test_the_lazy_consoles_width_is_riches(monkeypatch):
    """Off a terminal the width is answered without rich, and is what rich answers: COLUMNS when a
    number (0 included), else the first standard stream that is a terminal, else 80; on a terminal,
    or with the size given, rich is asked."""
    import io

    from rich.console import Console

    from obsdb.cli.common import LazyConsole

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    def sizes(by_descriptor):
        def get_terminal_size(descriptor=1):
            if descriptor not in by_descriptor:
                raise OSError("not a terminal")
            return os.terminal_size(by_descriptor[descriptor])
        return get_terminal_size

    options = dict(highlight=False, markup=False, emoji=False, soft_wrap=True)
    for stream_type in (io.StringIO, Terminal):
        for env in ({}, {"COLUMNS": "100"}, {"COLUMNS": "0"}, {"COLUMNS": "wide"}, {"COLUMNS": "100", "LINES": "30"},
                    {"LINES": "30"}):
            for terminals in ({}, {0: (132, 40)}, {2: (97, 30)}, {0: (0, 0)}, {1: (61, 20), 2: (97, 30)}):
                for name in ("COLUMNS", "LINES"):
                    monkeypatch.delenv(name, raising=False)
                for name, value in env.items():
                    monkeypatch.setenv(name, value)
                monkeypatch.setattr(os, "get_terminal_size", sizes(terminals))
                monkeypatch.setattr(sys, "stdout", stream_type())
                lazy = LazyConsole(**options)
                assert lazy.width == Console(**options).width, (stream_type, env, terminals)
                made = object.__getattribute__(lazy, "_made") is not None
                assert made == (stream_type is Terminal), (stream_type, env, terminals)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert LazyConsole(width=57, **options).width == 57


def test_the_lazy_consoles_file_is_riches(monkeypatch):
    """The stream a table is written to, without rich unless a file was given."""
    import io

    from rich.console import Console

    from obsdb.cli.common import LazyConsole

    options = dict(highlight=False, markup=False, emoji=False, soft_wrap=True)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    for stderr in (False, True):
        lazy = LazyConsole(stderr=stderr, **options)
        assert lazy.file is Console(stderr=stderr, **options).file is (sys.stderr if stderr else sys.stdout)
        assert object.__getattribute__(lazy, "_made") is None
    own = io.StringIO()
    lazy = LazyConsole(**options)
    lazy.file = own
    assert lazy.file is own


def test_a_plain_line_into_a_closed_pipe_calls_the_consoles_handler(monkeypatch):
    """As rich does: the broken-pipe handler set on the console (quiet exit 141 in obsdb) is called."""
    from obsdb.cli.common import LazyConsole

    class Closed:
        def isatty(self):
            return False

        def write(self, text):
            raise BrokenPipeError

    called = []
    lazy = LazyConsole(highlight=False, markup=False, emoji=False, soft_wrap=True)
    lazy.on_broken_pipe = lambda: called.append(True)
    monkeypatch.setattr(sys, "stdout", Closed())
    lazy.print("a line")
    assert called == [True] and object.__getattribute__(lazy, "_made") is None


NOT_FOR_ALIGN_OR_RENDER = ("obsdb.catalog.expr", "obsdb.cli.quality_cmds", "obsdb.cli.report_cmds")
"""What `obsdb align` and `obsdb render --stack median` imported without using (issue 25's fixed costs);
render prints no table, so it needs no rich either (align's table asks rich for the page width)."""

NOT_FOR_ALIGN = ("astropy.visualization", "matplotlib", "astropy.time", "scipy.sparse.csgraph")
"""Align draws no picture and fills no masked pixels (render does both, with astropy's ZScale and
asinh stretch and scipy's connected components: libraries, not copies, whatever their import costs)."""


def test_align_and_render_commands_import_only_what_they_use(tmp_path, small_night):
    from obsdb.api import Catalog

    folder, _ = small_night
    db = tmp_path / "obsdb.sqlite"
    with Catalog.open(str(db), create=True) as catalog:
        catalog.ingest([folder])
        catalog.qa()
    # The command in a fresh interpreter, as the console script runs it; its modules listed at exit.
    code = ("import atexit, sys\n"
            f"atexit.register(lambda: sys.stderr.write(repr(sorted(m for m in sys.modules if m.startswith("
            f"{NOT_FOR_ALIGN_OR_RENDER!r}))) + '\\n'))\n"
            "sys.argv = ['obsdb'] + sys.argv[1:]\nfrom obsdb.cli.app import main\nmain()\n")
    for args in (["align", "--band", "V"], ["render", "--out", str(tmp_path / "out"), "--band", "V", "--stack", "median"]):
        unused = NOT_FOR_ALIGN_OR_RENDER + (("rich",) if args[0] == "render" else NOT_FOR_ALIGN)
        done = subprocess.run([sys.executable, "-c", code.replace(repr(NOT_FOR_ALIGN_OR_RENDER), repr(unused)),
                               "--db", str(db), *args], capture_output=True, text=True,
                              env={k: v for k, v in os.environ.items() if k not in ("OBSDB_DB", "OBSDB_CONFIG")})
        assert done.returncode == 0, done.stderr
        assert done.stderr.splitlines()[-1] == "[]", (args, done.stderr[-500:])
    assert (tmp_path / "out" / "stack_V.fits").is_file() and (tmp_path / "out" / "stack_V.png").is_file()
