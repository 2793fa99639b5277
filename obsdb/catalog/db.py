"""Engine and session setup, and the schema version check.

SQLite is opened with foreign keys on, the WAL journal and a busy timeout.
The schema is owned by Alembic: :func:`upgrade` brings a catalog to head,
:func:`open_database` refuses a catalog that is missing or behind and gives the shared
:class:`Database` handle.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session

from obsdb.catalog.lite import ANALYSIS_LIMIT, BUSY_TIMEOUT_MS, DEFAULT_DB, POSTGRES_OPTIONS  # noqa: F401  (re-exported)
from obsdb.catalog.lite import optimize as _optimize
from obsdb.errors import ObsdbError

SCHEMA_REVISION = "0013"
"""The Alembic head this code expects.  Kept here so that opening a catalog does not
import Alembic (a tenth of a second on every small query); a test checks it against
the migration scripts."""


class CatalogError(ObsdbError):
    """The catalog cannot be used as it is; the message says what to do."""


def database_url(db: str | None) -> str:
    """Turn ``--db`` (a path or an SQLAlchemy URL), ``OBSDB_DB`` or the default into a URL."""
    db = db or os.environ.get("OBSDB_DB") or DEFAULT_DB
    if "://" in db:
        return db
    return f"sqlite:///{Path(db).expanduser().resolve()}"


def make_engine(url: str, *, migrating: bool = False, **kwargs) -> Engine:
    """Create an engine; SQLite connections get foreign keys, WAL and a busy timeout, PostgreSQL ones
    :data:`POSTGRES_OPTIONS`.

    ``migrating``: an engine for :func:`upgrade`.  On SQLite its transactions
    hold DDL too (pysqlite by itself begins a transaction only before INSERT,
    UPDATE and DELETE, so each CREATE or ALTER committed on its own and an
    interrupted upgrade left half a schema behind); foreign keys are off, as
    a table copy-and-rename needs, and checked before the commit.
    """
    if url.startswith("postgresql") and "options=" not in url:
        kwargs["connect_args"] = {"options": POSTGRES_OPTIONS, **kwargs.get("connect_args", {})}
    try:
        engine = create_engine(url, **kwargs)
    except ModuleNotFoundError as exc:
        driver = exc.name or "the database driver"
        extra = " (pip install 'obsdb[postgres]')" if url.startswith("postgresql") else ""
        raise CatalogError(f"{url.split('://')[0]} catalogs need the Python package {driver}{extra}") from None
    except (NoSuchModuleError, ArgumentError):
        raise CatalogError(f"{url.split('://')[0]}: not a kind of database obsdb knows "
                           "(a file path, sqlite:///PATH or postgresql+psycopg://USER@HOST/DB)") from None
    if engine.dialect.name == "postgresql":
        from obsdb.catalog.models import use_postgresql_options

        use_postgresql_options()
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA foreign_keys={'OFF' if migrating else 'ON'}")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            if ":memory:" not in url:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()
            if migrating:
                dbapi_connection.isolation_level = None  # no implicit transactions: ours, below, hold everything

        if not migrating and "immutable=1" not in url and ":memory:" not in url:
            @event.listens_for(engine, "close")
            def _sqlite_optimize(dbapi_connection, _record):  # pragma: no cover - trivial
                _optimize(dbapi_connection)

        if migrating:
            @event.listens_for(engine, "begin")
            def _sqlite_begin(connection):  # pragma: no cover - trivial
                # IMMEDIATE: take the write lock at the start, not halfway through the schema change.
                connection.exec_driver_sql("BEGIN IMMEDIATE")
    return engine


def migrations_dir() -> Path:
    """The Alembic scripts: ``obsdb.migrations`` once installed (a package-dir mapping of the
    top-level ``migrations/``), else that folder beside the package (a source checkout run in place,
    where ``obsdb`` is imported from the tree and has no such subpackage)."""
    from importlib.resources import files

    try:
        return Path(str(files("obsdb.migrations")))
    except ModuleNotFoundError:
        source = Path(__file__).resolve().parents[2] / "migrations"
        if (source / "env.py").is_file():
            return source
        raise CatalogError("obsdb's migrations are missing from this installation: reinstall obsdb") from None


def alembic_config(url: str):
    """Alembic configuration pointing at the migrations shipped in the package."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest migration revision the code knows."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


SERVER_UNREACHABLE = ("connection refused", "could not connect", "server closed the connection",
                      "consuming input failed", "terminating connection", "the database system is shutting down",
                      "the database system is starting up", "timeout expired")
"""How a PostgreSQL server that is down, or stops while the catalog is opened, shows in the driver's message."""


def current_revision(engine: Engine) -> str | None:
    """The revision stored in the catalog, or None for an empty/missing one.

    Raises
    ------
    CatalogError
        When the file or server is not a database obsdb can read.
    """
    from sqlalchemy import text
    from sqlalchemy.exc import DatabaseError, OperationalError

    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (DatabaseError, OperationalError) as exc:
        detail = str(getattr(exc, "orig", exc)).splitlines()[0]
        where = engine.url.render_as_string(hide_password=True)
        if "disk is full" in detail or "disk I/O error" in detail:
            # SQLite's write-ahead log needs room even to read: the catalog itself is fine.
            raise CatalogError(f"{where}: cannot be read: the disk holding it is full ({detail}); "
                               "free some space and run again") from None
        if any(sign in detail.lower() for sign in SERVER_UNREACHABLE):
            # The server is down or went away: the catalog itself is fine.
            raise CatalogError(f"{where}: cannot reach the catalog's database server ({detail}); nothing was "
                               "changed; run the command again when the server answers") from None
        raise CatalogError(f"{where}: not a usable catalog ({detail})") from None


def upgrade(url: str) -> tuple[str | None, str]:
    """Create or upgrade the catalog at ``url`` to the head revision.

    Returns
    -------
    (before, after) : tuple
        Revisions before and after the upgrade.
    """
    from alembic import command

    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url, migrating=True)
    try:
        before = current_revision(engine)
        config = alembic_config(url)
        with engine.connect() as connection:
            # SQLite ALTERs copy a table, drop it and rename the copy: with foreign keys on, the drop
            # would cascade into every child table.  The migrating engine has them off (it cannot
            # change inside a transaction); they are checked before the commit.  The whole upgrade,
            # DDL included, is this one transaction: interrupted, it leaves the catalog as it was.
            sqlite = engine.dialect.name == "sqlite"
            with connection.begin():
                config.attributes["connection"] = connection
                if before is None and not inspect(connection).get_table_names():
                    # A new catalog is built from the models and stamped at the head: the same schema as
                    # replaying every migration (a test compares them), in a tenth of the time.
                    from obsdb.catalog.models import Base

                    Base.metadata.create_all(connection)
                    command.stamp(config, "head")
                else:
                    command.upgrade(config, "head")
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise CatalogError(f"upgrade left {len(broken)} rows pointing at missing rows "
                                           f"(first: {broken[0]}); the catalog was not changed")
        return before, current_revision(engine)
    finally:
        engine.dispose()


def _writable(path: Path) -> bool:
    """True when this user may write the catalog file and its folder (SQLite's -wal and -shm files)."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)


def open_database(db: str | None = None) -> "Database":
    """Open an existing catalog database that is at the code's schema revision.

    Raises
    ------
    CatalogError
        When the catalog is missing or its schema is not at head.
    """
    url = database_url(db)
    if url.startswith("sqlite:///"):
        name = url[len("sqlite:///"):]
        if name.startswith("file:"):  # an SQLite URI, e.g. file:/data/obsdb.sqlite?mode=ro&uri=true
            name = name[len("file:"):].split("?")[0]
        path = Path(name)
        if not path.exists():
            raise CatalogError(f"no catalog at {path}: run `obsdb init` first")
        if not url.startswith("sqlite:///file:") and not _writable(path):
            # A shared archive this user may only read: SQLite would need to write its lock and
            # write-ahead files beside it.  Opened immutable, it is read as it stands on disk.
            url = f"sqlite:///file:{path}?mode=ro&immutable=1&uri=true"
    engine = make_engine(url)
    current = current_revision(engine)
    head = SCHEMA_REVISION
    if current != head:
        engine.dispose()
        state = "empty" if current is None else f"at revision {current}, code expects {head}"
        raise CatalogError(f"catalog {url} is {state}: run `obsdb init` to create or upgrade it")
    return Database(url, engine)


class Database:
    """One open catalog database: its engine, a session factory and retry-on-conflict.

    The one handle that the front door (:class:`obsdb.api.Catalog`) and every store
    (:mod:`obsdb.catalog.stores`) share; made by :func:`open_database`.
    """

    def __init__(self, url: str, engine: Engine):
        from sqlalchemy.orm import sessionmaker

        self.url = url
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        from obsdb.catalog.maintained import install

        install(self._sessions)

    def close(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()

    @property
    def display_url(self) -> str:
        """The catalog as shown to people: a file's path, or a server URL without its password."""
        if self.engine.url.drivername.startswith("sqlite") and self.engine.url.database:
            return self.engine.url.database
        return self.engine.url.render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"Database({self.engine.url.render_as_string(hide_password=True)!r})"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error."""
        session: Session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def read(self, query, *args, **kwargs):
        """Run ``query(session, *args, **kwargs)`` in a session and return its result."""
        with self.session() as session:
            return query(session, *args, **kwargs)

    def retry_on_conflict(self, write, attempts: int = 5):
        """Run ``write(session)`` in a transaction, again when a concurrent writer got there first.

        Two ingests of the same files both see a path as new and both insert it:
        the second commit fails on the unique path.  Run again, the write sees the
        other's row and verifies it (an identical record is left as it is, a
        different one is updated), as daf_butler's ``sync`` does.  SQLite reports
        a writer that started from an outdated snapshot as "database is locked".
        """
        import random
        import time

        from sqlalchemy.exc import IntegrityError, OperationalError

        for attempt in range(attempts):
            try:
                with self.session() as session:
                    return write(session)
            except (IntegrityError, OperationalError) as exc:
                retriable = isinstance(exc, IntegrityError) or "locked" in str(exc) or "serializ" in str(exc)
                if not retriable or attempt == attempts - 1:
                    raise
                time.sleep(random.uniform(0.05, 0.2) * (attempt + 1))
