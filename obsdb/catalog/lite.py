"""The fast path of the query commands: a catalog read with the plain database driver, no SQLAlchemy.

Importing SQLAlchemy and the models, configuring the mappers and compiling the statements cost a
query command (``obsdb nights``, ``log``, ``summary``) about 0.4 s on every run, where reading its
few rows takes milliseconds.  :class:`LiteCatalog` answers those reads without any of it, on SQLite
with the stdlib ``sqlite3`` and on PostgreSQL with psycopg2 where it is installed, else psycopg 3
(:data:`POSTGRES_DRIVERS`):

- the SQL it runs is the text of the statements of :mod:`obsdb.catalog.statements`, compiled once
  for each database into the generated :mod:`obsdb.catalog.lite_sql` (SQLite) and
  :mod:`obsdb.catalog.pg_sql` (PostgreSQL, the psycopg dialect: its placeholders and the casts
  SQLAlchemy writes after them) by ``python -m obsdb.catalog.statements``; a test compiles the
  statements afresh and compares, so a changed statement or model without regenerated modules fails
  the tests;
- values come back as SQLAlchemy gives them (aware UTC datetimes, decoded JSON, bools), converted as
  the compiled columns' types say (:data:`CONVERTERS`: on PostgreSQL the driver already decodes JSON and
  booleans, and only the time zone of a ``timestamptz`` is SQLAlchemy's);
- the rows are shaped by the same readers (:mod:`obsdb.catalog.readers`) the SQLAlchemy path runs.

It applies only where nothing can differ: a catalog named by a plain path (or a plain
``sqlite:///PATH``) that exists, that this user may write (an unwritable one is opened immutable by
the normal path), or by a ``postgresql+psycopg://`` (or ``postgresql://``) URL that the driver connects
to; and whose schema revision is the one the SQL was compiled for (one cheap read of
``alembic_version``).  Otherwise :meth:`LiteCatalog.open` returns None and the caller opens the
normal :class:`obsdb.api.Catalog`, which says what is wrong as it always did.  Anything the lite
catalog does not answer itself (another method, a database error halfway) is handed to that normal
catalog, opened on first need.  ``OBSDB_LITE=0`` turns the fast path off (for comparisons).
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

from obsdb.catalog import readers

DEFAULT_DB = "obsdb.sqlite"
"""The catalog when neither ``--db`` nor ``OBSDB_DB`` names one."""

BUSY_TIMEOUT_MS = 30_000
"""How long an SQLite connection waits for another writer's lock before it fails."""

ANALYSIS_LIMIT = 400
"""Rows SQLite's ANALYZE samples per index when :func:`optimize` asks it to (``PRAGMA analysis_limit``):
approximate statistics in milliseconds, where a full ANALYZE of a 1,000,000-frame catalog takes
tens of seconds.  The planner needs the shape of the data, not exact counts."""

DISABLE_ENV = "OBSDB_LITE"
"""Set to ``0`` to answer every query through SQLAlchemy (the comparison of the two paths)."""

POSTGRES_OPTIONS = "-c jit=off -c plan_cache_mode=force_custom_plan"
"""Session settings of every PostgreSQL connection (libpq ``options``; one given in the URL wins).
JIT compilation pays off for long analytical queries, not for a catalog's: PostgreSQL JIT-compiled
`obsdb nights` over a 1,000,000-frame archive (its cost estimate is huge: one status per frame) and
spent 3.0 of its 5.8 s compiling (EXPLAIN ANALYZE, PostgreSQL 15).  Custom plans always: psycopg
prepares a statement run five times, and after five more PostgreSQL may switch to a generic plan,
made without the values; for a listing's page (one per 2,000 frames) it walked all 2,000 nights in
name order and joined each with the batch's frames, instead of starting from the batch's nights.
`rejected --band V --night all --format json` on that archive, before any ANALYZE, took 31.2 s with
generic plans allowed and 18.5 s without, under load (``benchmarks/fast_path.py --generic-plans``);
once analyzed, 9.5 s and 10.9 s: the price of planning every page, kept for an archive whose
statistics are missing or stale (a server without autovacuum)."""


POSTGRES_SCHEMES = ("postgresql+psycopg://", "postgresql://")
"""The URLs of catalogs the fast path reads (SQLAlchemy's driver for both is psycopg 3)."""

POSTGRES_DRIVERS = ("psycopg2", "psycopg")
"""The DB-API drivers the fast path reads a PostgreSQL catalog with: the first one installed.  Both
are libpq underneath, take the same SQL text (``%(name)s`` placeholders) and give the same values
(the tests compare each with SQLAlchemy's).  psycopg2 comes first because a query command is mostly
its start-up: ``import psycopg2`` takes about 0.05 s, ``import psycopg`` about 0.15 s (it imports
asyncio, ``importlib.metadata`` and ``ctypes.util`` on the way; the reference rows of
``benchmarks/startup.py`` time both).
The ``postgres`` extra installs both: SQLAlchemy's path keeps psycopg 3."""


def optimize(dbapi_connection) -> None:
    """``PRAGMA optimize`` as a connection closes, as SQLite recommends: it runs ANALYZE (sampled,
    :data:`ANALYSIS_LIMIT`) only on the tables this connection's queries used whose statistics are
    missing or stale, so a catalog keeps the planner statistics it needs without anyone running
    ANALYZE.  (PostgreSQL's autovacuum does the same there.)  A failure here never fails a command."""
    try:
        if dbapi_connection.in_transaction:
            return
        dbapi_connection.execute(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
        dbapi_connection.execute("PRAGMA optimize")
    except sqlite3.Error:
        pass


def _utc(value):
    # SQLAlchemy's SQLite DateTime stores naive UTC text; UtcDateTime gives it back aware (with
    # timezone.utc itself; parsed with its offset, faster than replacing the tzinfo).
    return None if value is None else datetime.fromisoformat(value + "+00:00")


def _in_utc(value):
    # psycopg2 and psycopg 3 give a timestamptz in the session's time zone; UtcDateTime gives it in UTC.
    return None if value is None else value.astimezone(timezone.utc)


def _json(value):
    return None if value is None else json.loads(value)


def _bool(value):
    return None if value is None else bool(value)


_REPEATING = frozenset({"utc"})
"""Kinds of column whose values repeat (the tags one QA run wrote share its time) and convert to
values that cannot be changed (a datetime, not a dict): converted once per distinct value."""

CONVERTERS = {"sqlite": {"utc": _utc, "json": _json, "bool": _bool}, "postgresql": {"utc": _in_utc}}
"""For each database, how a result column of each kind its generated module names becomes the value
SQLAlchemy gives."""

SQL_MODULES = {"sqlite": "lite_sql", "postgresql": "pg_sql"}
"""The generated module (in :mod:`obsdb.catalog`) holding each database's SQL text."""

_TEXT: dict[tuple[str, str], str] = {}
"""The SQL text of each database's statement variants run so far (joined from its pieces once)."""

_LIST_OF = {"sqlite": lambda placeholder, cast: f"SELECT value FROM json_each({placeholder})",
            "postgresql": lambda placeholder, cast: f"SELECT unnest({placeholder}{cast}[])"}
"""How a list parameter (an ``IN`` of ids, nights, bands) is written in each database's SQL text: one
parameter holding the whole list, not one per item.  A statement's text is then the same whatever
the list's length, so it is prepared once (sqlite3 keeps it in its statement cache), and SQLite
parses no long list of named parameters (it looks each name up among those before it: a page's
lookup by 1,300 ids took 9.2 ms so, and 2.2 ms now, ``benchmarks/listing_costs.py``).  An empty
list selects nothing, as SQLAlchemy's empty ``IN`` does."""

_LIST_VALUE = {"sqlite": lambda items: json.dumps(list(items)), "postgresql": list}
"""A list parameter's value for each database (a JSON array for SQLite's ``json_each``)."""


def lite_path(db: str | None) -> Path | None:
    """The SQLite file the fast path may read for ``--db`` (or ``OBSDB_DB``, or the default), or None
    when the catalog is named some other way (a server, an SQLite URI with options)."""
    db = db or os.environ.get("OBSDB_DB") or DEFAULT_DB
    if db.startswith("sqlite:///"):
        db = db[len("sqlite:///"):]
        if db.startswith("file:") or "?" in db:
            return None
    elif "://" in db:
        return None
    return Path(db).expanduser().resolve()


def postgres_uri(db: str | None) -> str | None:
    """The libpq URI of the PostgreSQL catalog ``--db`` names (a ``postgresql+psycopg://`` or
    ``postgresql://`` URL), or None when it names another kind of catalog."""
    db = db or os.environ.get("OBSDB_DB") or DEFAULT_DB
    for scheme in POSTGRES_SCHEMES:
        if db.startswith(scheme):
            return "postgresql://" + db[len(scheme):]
    return None


def _open_sqlite(path: Path):
    """A connection to the SQLite catalog at ``path``, in a read transaction, or None where only the
    normal path applies (missing, not writable, not a database)."""
    if not path.is_file() or not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)):
        return None
    try:
        connection = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error:
        return None
    try:
        connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        connection.execute("BEGIN")
    except sqlite3.Error:  # not a database at all: the normal path says so
        connection.close()
        return None
    return connection


def _postgres_driver():
    """The first of :data:`POSTGRES_DRIVERS` that is installed (the module), or None."""
    import importlib

    for name in POSTGRES_DRIVERS:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def _driver_error(connection) -> type[Exception]:
    """The base class of the errors of the driver ``connection`` belongs to."""
    if isinstance(connection, sqlite3.Connection):
        return sqlite3.Error
    import sys

    return sys.modules[type(connection).__module__.partition(".")[0]].Error


def _open_postgresql(uri: str):
    """A connection to the PostgreSQL catalog at ``uri`` (:func:`_postgres_driver`), set for a read-only
    repeatable-read transaction (one snapshot for the whole command, as on SQLite), or None where only
    the normal path applies (no driver, no server, no such database, a URL libpq reads otherwise)."""
    driver = _postgres_driver()
    if driver is None:  # the normal path says which package is missing
        return None
    settings = {} if "options=" in uri else {"options": POSTGRES_OPTIONS}
    try:
        connection = driver.connect(uri, **settings)
    except driver.Error:  # the normal path words it (server down, no such database, ...)
        return None
    if driver.__name__ == "psycopg2":
        connection.set_session(isolation_level="REPEATABLE READ", readonly=True)
    else:
        connection.isolation_level = driver.IsolationLevel.REPEATABLE_READ
        connection.read_only = True
    return connection


def _fetch(connection, sql: str, values: dict | None = None) -> list[tuple]:
    """All rows of ``sql`` for ``values``, through a cursor (the DB-API way, which all three drivers
    share; psycopg2's connections have no ``execute``)."""
    cursor = connection.cursor()
    try:
        if values is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql, values)
        return cursor.fetchall()
    finally:
        cursor.close()


def _at_revision(connection, error: type[Exception], revision: str):
    """``connection`` if its catalog is at schema ``revision``; else None, the connection closed."""
    try:
        found = _fetch(connection, "SELECT version_num FROM alembic_version")
    except error:  # not a catalog: the normal path says what to do
        found = None
    if found != [(revision,)]:
        connection.close()
        return None
    return connection


class LiteCatalog:
    """A catalog read with the plain driver (see the module docstring); made by :meth:`open`.

    Parameters
    ----------
    connection : sqlite3.Connection, or a psycopg2 or psycopg connection
        Open on the catalog, inside a read transaction (one snapshot for the whole command).
    fallback : callable
        Opens the normal catalog, for whatever this one does not answer.
    database : str
        ``sqlite`` or ``postgresql``: which generated SQL (:data:`SQL_MODULES`) and conversions to use.
    """

    def __init__(self, connection, fallback, database: str = "sqlite"):
        import importlib

        self._connection = connection
        self._fallback = fallback
        self._full = None
        self._database = database
        self._sql = importlib.import_module(f"obsdb.catalog.{SQL_MODULES[database]}")
        self._converters = CONVERTERS[database]
        self._error = _driver_error(connection)

    @classmethod
    def open(cls, db: str | None, fallback) -> "LiteCatalog | None":
        """The catalog ``db`` on the fast path, or None where only the normal path applies.

        Parameters
        ----------
        db : str or None
            ``--db``: a path or a URL (None: ``OBSDB_DB`` or the default).
        fallback : callable
            No arguments; returns the normal catalog (:meth:`obsdb.api.Catalog.open`).
        """
        if os.environ.get(DISABLE_ENV, "1") == "0":
            return None
        path, uri = lite_path(db), postgres_uri(db)
        if path is not None:
            database, connection = "sqlite", _open_sqlite(path)
        elif uri is not None:
            database, connection = "postgresql", _open_postgresql(uri)
        else:
            return None
        if connection is None:
            return None
        catalog = cls(connection, fallback, database)
        if _at_revision(connection, catalog._error, catalog._sql.SCHEMA_REVISION) is None:
            return None
        return catalog

    def run(self, name: str, /, **params) -> list[tuple]:
        """Rows of statement ``name`` (:mod:`obsdb.catalog.statements`) for ``params``, as tuples of
        the values SQLAlchemy would give; a parameter that is None is not given (its flag is unset)."""
        generated = self._sql
        given = {k: v for k, v in params.items() if v is not None}
        if any(k.startswith("sa_") for k in given):  # only SQLAlchemy runs these: never silently left out
            raise NotImplementedError("the fast path takes no SQLAlchemy condition")
        flags = readers.flags_given(generated.FLAGS.get(name, ()), given)
        where_sql, where_values = given.pop("where", ("", {}))
        key = f"{name}[{','.join(flags)}]" if flags else name
        expanding = generated.EXPANDING.get(key, {})
        sql = _TEXT.get((self._database, key))
        if sql is None:
            sql = "".join(generated.PIECES[i] for i in generated.SQL[key])
            for listed, cast in expanding.items():
                sql = sql.replace(f"__[POSTCOMPILE_{listed}]", _LIST_OF[self._database](
                    generated.PLACEHOLDER.format(listed), cast))
            _TEXT[self._database, key] = sql
        if where_sql:  # a --where expression's text (obsdb.catalog.where_text), in its place
            sql = sql.replace(generated.WHERE_MARK, f"({where_sql})")
        values = {**generated.PARAMS.get(key, {}), **given, **where_values}
        if expanding:
            as_list = _LIST_VALUE[self._database]
            for listed in expanding:
                values[listed] = as_list(values[listed])
        rows = _fetch(self._connection, sql, values)
        kinds = generated.CONVERT.get(name, ())
        if not rows or not any(kinds):
            return rows
        # Column by column (an archive's listing has 100,000s of rows): the rows turned into columns
        # once, each column to convert mapped whole, and the columns back into rows once.
        columns = list(zip(*rows))
        for i, kind in enumerate(kinds):
            if kind:
                convert = self._converters[kind]
                if kind in _REPEATING:
                    convert = lru_cache(maxsize=4096)(convert)
                columns[i] = map(convert, columns[i])
        return list(zip(*columns))

    def _answer(self, fast, normal):
        """``fast()``; on a database error, ``normal(catalog)`` with the normal catalog instead (it waits
        for locks, retries and words the errors as every other command does)."""
        try:
            return fast()
        except self._error:
            self._rollback()
            return normal(self._normal())

    def _rollback(self) -> None:
        """End the failed read transaction (a connection that broke: the normal path says so)."""
        try:
            self._connection.rollback()
        except self._error:
            pass

    def nights(self) -> list[dict]:
        """:meth:`obsdb.api.Catalog.nights`."""
        return self._answer(lambda: readers.night_summaries(self.run), lambda catalog: catalog.nights())

    def summary(self, *, night=None) -> list[dict]:
        """:meth:`obsdb.api.Catalog.summary`."""
        return self._answer(lambda: readers.band_summary(self.run, nights=night),
                            lambda catalog: catalog.summary(night=night))

    def log(self, *, limit: int = 50, command: str | None = None, night=None) -> list[dict]:
        """:meth:`obsdb.api.Catalog.log`."""
        return self._answer(lambda: readers.event_log(self.run, limit=limit, command=command, nights=night),
                            lambda catalog: catalog.log(limit=limit, command=command, night=night))

    def rejected_reasons(self, *, night=None, band: str | None = None) -> list[dict]:
        """:meth:`obsdb.api.Catalog.rejected_reasons`."""
        return self._answer(lambda: readers.rejected_reasons(self.run, nights=night, band=band),
                            lambda catalog: catalog.rejected_reasons(night=night, band=band))

    def rejected_reason_rows(self, *, night=None, band: str | None = None) -> list[tuple]:
        """:meth:`obsdb.api.Catalog.rejected_reason_rows`."""
        return self._answer(lambda: readers.rejected_reason_rows(self.run, nights=night, band=band),
                            lambda catalog: catalog.rejected_reason_rows(night=night, band=band))

    def show(self, selector: str, *, night=None) -> list[dict]:
        """:meth:`obsdb.api.Catalog.show`."""
        return self._answer(lambda: readers.frames_details(self.run, selector, nights=night),
                            lambda catalog: catalog.show(selector, night=night))

    def history(self, selector: str, *, night=None) -> list[dict]:
        """:meth:`obsdb.api.Catalog.history`."""
        return self._answer(lambda: readers.frame_histories(self.run, selector, nights=night),
                            lambda catalog: catalog.history(selector, night=night))

    def iter_frames(self, selection=None, **filters):
        """:meth:`obsdb.api.Catalog.iter_frames`, streamed; a selection with filters only SQLAlchemy
        can express (``light_only``, ``target``, ...) is listed by the normal catalog.  A ``where``
        expression is written as SQL text by :mod:`obsdb.catalog.where_text`."""
        from obsdb.catalog.records import FrameFilter

        selection = FrameFilter.of(selection, **filters)
        if FrameFilter.of(selection, nights=None, band=None, image_type=None, image_types=None, status=None,
                          tag=None, frame_ids=None, where=None) != FrameFilter() or (
                selection.where is not None and selection.frame_ids is not None):
            yield from self._normal().iter_frames(selection)
            return
        text_where = None
        if selection.where is not None:
            def text_where(scope):
                from obsdb.catalog.where_text import compile_where

                sql, values, bare = compile_where(selection.where, self._database, self._sql)
                if bare:
                    readers.check_bare_keywords(self.run, selection.where, bare, scope)
                return sql, values
        records = readers.iter_frame_records(self.run, selection, text_where=text_where)
        try:
            first = next(records, None)
        except self._error:
            # As _answer does: the normal catalog answers (waits for a lock, words the error), while no
            # record has been given yet.  Later pages' errors reach the caller: rows are out already.
            self._rollback()
            yield from self._normal().iter_frames(selection)
            return
        if first is not None:
            yield first
            yield from records

    def iter_frame_dicts(self, selection=None, **filters):
        """:meth:`obsdb.api.Catalog.iter_frame_dicts`, streamed."""
        for record in self.iter_frames(selection, **filters):
            yield record.to_json()

    def frame_dicts(self, selection=None, **filters) -> list[dict]:
        """:meth:`obsdb.api.Catalog.frame_dicts`."""
        return list(self.iter_frame_dicts(selection, **filters))

    def known_values(self, kinds=readers.KNOWN_KINDS) -> dict[str, list[str]]:
        """:meth:`obsdb.api.Catalog.known_values`."""
        return self._answer(lambda: readers.known_values(self.run, kinds), lambda catalog: catalog.known_values(kinds))

    def _normal(self):
        if self._full is None:
            self._full = self._fallback()
        return self._full

    def __getattr__(self, name: str):
        # Whatever the fast path does not answer, the normal catalog does.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._normal(), name)

    def close(self) -> None:
        """End the read transaction, let SQLite refresh its planner statistics, close; and the normal
        catalog if one was opened."""
        try:
            try:
                self._connection.rollback()
            except self._error:  # a broken PostgreSQL connection: closing is all that is left
                pass
            if self._database == "sqlite":
                optimize(self._connection)
            self._connection.close()
        finally:
            if self._full is not None:
                self._full.close()

    def __enter__(self) -> "LiteCatalog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
