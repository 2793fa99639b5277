"""The schema: migrations build exactly the models, the chain is linear, old catalogs are refused."""

import sqlite3

import pytest
from sqlalchemy import text

from obsdb.api import Catalog
from obsdb.catalog.db import CatalogError, alembic_config, database_url, head_revision, make_engine, upgrade
from obsdb.catalog.models import Base, made_on


def _migrated(url):
    """A catalog built by replaying every migration (``upgrade`` builds a new one from the models)."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")
    return url


def test_migrations_match_models(catalog_url):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    url = _migrated(catalog_url)
    engine = make_engine(url)
    with engine.connect() as connection:
        dialect = connection.dialect.name
        context = MigrationContext.configure(connection, opts={
            "compare_type": True,
            # As the migrations' environment compares: an index made on PostgreSQL only is not missing on SQLite.
            "include_object": lambda obj, name, type_, reflected, compare_to: reflected or made_on(obj, dialect)})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"


def _schema(url):
    from sqlalchemy import inspect

    engine = make_engine(url)
    inspector = inspect(engine)
    schema = {}
    for table in inspector.get_table_names():
        schema[table] = {
            "columns": sorted((c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)),
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in inspector.get_indexes(table)),
            "uniques": sorted((u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(table)),
            "foreign_keys": sorted((f["name"], tuple(f["constrained_columns"]), f["referred_table"])
                                   for f in inspector.get_foreign_keys(table)),
            "checks": sorted(c["name"] for c in inspector.get_check_constraints(table)),
        }
    with engine.connect() as connection:
        revision = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    engine.dispose()
    return schema, revision


def test_a_new_catalog_has_the_schema_the_migrations_build(database_factory):
    fresh = database_factory()
    assert upgrade(fresh) == (None, head_revision())
    assert _schema(fresh) == _schema(_migrated(database_factory()))


def test_schema_revision_constant_is_the_head():
    from obsdb.catalog.db import SCHEMA_REVISION

    assert SCHEMA_REVISION == head_revision()


def test_revision_chain_is_linear():
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    heads = script.get_heads()
    assert len(heads) == 1
    revisions = list(script.walk_revisions())
    assert revisions[-1].down_revision is None
    assert all(len(r._all_down_revisions) <= 1 for r in revisions)


def test_init_is_idempotent_and_sets_pragmas(tmp_path):
    path = tmp_path / "c.sqlite"
    url = database_url(str(path))
    assert upgrade(url) == (None, head_revision())
    assert upgrade(url) == (head_revision(), head_revision())
    catalog = Catalog.open(str(path))
    with catalog.engine.connect() as connection:
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() > 0
    catalog.close()


def test_missing_catalog_says_run_init(tmp_path):
    with pytest.raises(CatalogError, match="obsdb init"):
        Catalog.open(str(tmp_path / "absent.sqlite"))


def test_catalog_behind_head_is_refused(tmp_path):
    path = tmp_path / "c.sqlite"
    upgrade(database_url(str(path)))
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'older'")
    with pytest.raises(CatalogError, match="obsdb init"):
        Catalog.open(str(path))


def test_empty_database_file_is_refused(tmp_path):
    path = tmp_path / "empty.sqlite"
    sqlite3.connect(path).close()
    with pytest.raises(CatalogError, match="empty"):
        Catalog.open(str(path))


def test_a_file_that_is_not_a_database_is_refused_and_left_alone(tmp_path):
    from obsdb.catalog.db import CatalogError, database_url, upgrade
    from obsdb.api import Catalog

    path = tmp_path / "notes.txt"
    path.write_text("observing log, not a catalog\n" * 200)
    before = path.read_bytes()
    for attempt in (lambda: Catalog.open(str(path)), lambda: upgrade(database_url(str(path)))):
        with pytest.raises(CatalogError, match="not a usable catalog .file is not a database."):
            attempt()
    assert path.read_bytes() == before


def test_a_catalog_of_the_previous_release_upgrades_without_loss(tmp_path):
    """A 0001 catalog (one night, its tags, decisions, groups, events) keeps every answer at head,
    and gains nights from DATE-OBS and decisions that name their frame by id."""
    import json

    from obsdb import Catalog
    from tests.old_catalogs import catalog_at_0001

    path = tmp_path / "old.sqlite"
    url = database_url(str(path))
    catalog_at_0001(url)
    # What the fault suite's 0001 catalog lacks: stored stars, a decision, a group.
    engine = make_engine(url)
    with engine.begin() as c:
        for i in (1, 2):
            c.execute(text(
                "INSERT INTO frame_metrics (frame_id, n_stars, fwhm, stars, algorithm, measured_at, assessed_at) "
                "VALUES (:id, 2, 2.5, :stars, 'metrics-2', '2026-03-15 08:00:00', '2026-03-15 08:01:00')"),
                {"id": i, "stars": json.dumps([[10.0, 12.0, 500.0], [30.5, 40.25, 300.0]])})
        c.execute(text("INSERT INTO decision (key, value, source, author, created_at) VALUES "
                       "('reference_frame', '{\"frame\": 1001}', 'plan', 'nico', '2026-03-15 08:02:00')"))
        c.execute(text("INSERT INTO pointing_group (id, name, source, author, created_at) VALUES "
                       "(1, 'g1', 'plan', 'nico', '2026-03-15 08:02:00')"))
        c.execute(text("INSERT INTO group_member (group_id, frame_id) VALUES (1, 1), (1, 2)"))
    engine.dispose()

    assert upgrade(url) == ("0001", head_revision())
    with Catalog.open(path) as cat:
        frames = cat.frames()
        assert [(f.night, f.number, f.status) for f in frames] == [
            ("2026-03-14", 1001, "accepted"), ("2026-03-14", 1002, "rejected")]
        assert frames[1].reasons == ["cloud: background 9,000 ADU > 3 x band V"]
        assert frames[0].instrument == "T|C|64x64|1x1"
        assert [n["night"] for n in cat.nights()] == ["2026-03-14"]
        assert cat.log()[0]["author"] == "nico"
        from obsdb.catalog.decisions import get_decision, list_groups
        from obsdb.imaging.stars import decode_stars

        with cat.session() as session:
            decided = get_decision(session, "reference_frame")
            assert decided.frame_id == 1 and decided.night_id is not None
            assert [g["members"] for g in list_groups(session)] == [[1001, 1002]]
            from obsdb.catalog.models import StarList

            stars = decode_stars(session.get(StarList, 1).data)
            assert stars["x"].tolist() == [10.0, 30.5] and stars["flux"].tolist() == [500.0, 300.0]


def test_an_upgrade_interrupted_by_a_full_disk_leaves_the_catalog_as_it_was(tmp_path):
    """SQLite: the whole upgrade, DDL included, is one transaction.  A disk that fills halfway (here a
    page limit on the upgrading connection) leaves the catalog at its old revision with its old tables,
    and the next `init` on a disk with room upgrades it."""
    from alembic import command
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    path = tmp_path / "old.sqlite"
    url = database_url(str(path))
    command.upgrade(alembic_config(url), "0001")
    tables_before = set(sqlite3.connect(path).execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'").fetchall())
    pages = sqlite3.connect(path).execute("PRAGMA page_count").fetchone()[0]
    for room in (1, 3, 6):
        def full_disk(dbapi_connection, _record, room=room):
            dbapi_connection.execute(f"PRAGMA max_page_count={pages + room}")

        event.listen(Engine, "connect", full_disk)
        try:
            with pytest.raises(Exception, match="full"):
                upgrade(url)
        finally:
            event.remove(Engine, "connect", full_disk)
        check = sqlite3.connect(path)
        assert check.execute("SELECT version_num FROM alembic_version").fetchone() == ("0001",)
        assert set(check.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()) == tables_before
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        check.close()
    assert upgrade(url) == ("0001", head_revision())


def test_a_catalog_this_user_may_only_read_opens_read_only(tmp_path, monkeypatch):
    """An observatory's shared archive in a folder this user cannot write: reading works (the catalog is
    opened immutable, read-only), and a change gets one line saying why, not a traceback."""
    import os

    from obsdb import Catalog
    from obsdb.catalog import db as db_module

    path = tmp_path / "archive.sqlite"
    with Catalog.open(path, create=True):
        pass
    real_access = os.access

    def no_write(target, mode, *args, **kwargs):
        if mode & os.W_OK and str(target).startswith(str(tmp_path)):
            return False
        return real_access(target, mode, *args, **kwargs)

    monkeypatch.setattr(db_module.os, "access", no_write)
    catalog = Catalog.open(str(path))
    try:
        assert "mode=ro" in catalog.url and len(catalog.frames()) == 0
        assert catalog.nights() == []
    finally:
        catalog.close()
    from typer.testing import CliRunner

    from obsdb.cli.app import app

    runner = CliRunner()
    assert runner.invoke(app, ["--db", str(path), "frames", "--format", "json"]).exit_code == 0
    refused = runner.invoke(app, ["--db", str(path), "log"])
    assert refused.exit_code == 0
    written = runner.invoke(app, ["--db", str(path), "qa"])
    assert written.exit_code == 1 and "is read-only for you: nothing was changed" in written.output
    assert len(written.output.strip().splitlines()) == 1


def test_the_rejected_frames_index_is_made_on_postgresql_only(catalog_url):
    """`ix_frame_rejected` (index-only `obsdb rejected`) needs PostgreSQL's INCLUDE; SQLite, where a
    covering index gained nothing, does not get an index that nothing would use."""
    from sqlalchemy import inspect

    with Catalog.open(catalog_url, create=True):
        pass
    engine = make_engine(database_url(catalog_url))
    try:
        names = {index["name"] for index in inspect(engine).get_indexes("frame")}
    finally:
        engine.dispose()
    assert ("ix_frame_rejected" in names) == catalog_url.startswith("postgresql"), names
    assert "ix_frame_night_status_band" in names


def test_partial_indexes_have_their_postgresql_options_and_sqlite_never_imports_that_dialect(tmp_path):
    """The indexes' PostgreSQL WHERE and INCLUDE are given when a PostgreSQL engine is made, not where
    they are declared: a SQLite catalog's commands never import SQLAlchemy's PostgreSQL dialect."""
    import subprocess
    import sys

    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex

    with Catalog.open(tmp_path / "c.sqlite", create=True):  # creating it runs Alembic, which imports them all
        pass
    script = ("import sys\nfrom obsdb.api import Catalog\n"
              f"with Catalog.open({str(tmp_path / 'c.sqlite')!r}) as catalog:\n"
              "    catalog.frames()\n"
              "    from obsdb.catalog import models\n"
              "print('sqlalchemy.dialects.postgresql' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "False", out.stdout
    make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none").dispose()  # no connection is made
    ddl = {index.name: str(CreateIndex(index).compile(dialect=postgresql.dialect()))
           for table in ("frame", "tag") for index in Base.metadata.tables[table].indexes}
    assert ddl["ix_frame_rejected"].endswith(
        "INCLUDE (id, number, number_shared, image_type, readable, sort_key, path, file_name) "
        "WHERE status = 'rejected'"), ddl["ix_frame_rejected"]
    assert ddl["ix_tag_active_frame"].endswith("WHERE retracted_at IS NULL"), ddl["ix_tag_active_frame"]
