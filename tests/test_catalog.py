"""The schema: migrations build exactly the models, the chain is linear, old catalogs are refused."""

import sqlite3

import pytest
from sqlalchemy import text

from obsdb.catalog.db import (CatalogError, alembic_config, database_url, head_revision, make_engine,
                              open_catalog, upgrade)
from obsdb.catalog.models import Base


def test_migrations_match_models(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    url = database_url(str(tmp_path / "c.sqlite"))
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"


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
    catalog = open_catalog(str(path))
    with catalog.engine.connect() as connection:
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() > 0
    catalog.close()


def test_missing_catalog_says_run_init(tmp_path):
    with pytest.raises(CatalogError, match="obsdb init"):
        open_catalog(str(tmp_path / "absent.sqlite"))


def test_catalog_behind_head_is_refused(tmp_path):
    path = tmp_path / "c.sqlite"
    upgrade(database_url(str(path)))
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'older'")
    with pytest.raises(CatalogError, match="obsdb init"):
        open_catalog(str(path))


def test_empty_database_file_is_refused(tmp_path):
    path = tmp_path / "empty.sqlite"
    sqlite3.connect(path).close()
    with pytest.raises(CatalogError, match="empty"):
        open_catalog(str(path))


def test_a_file_that_is_not_a_database_is_refused_and_left_alone(tmp_path):
    from obsdb.catalog.db import CatalogError, database_url, open_catalog, upgrade

    path = tmp_path / "notes.txt"
    path.write_text("observing log, not a catalog\n" * 200)
    before = path.read_bytes()
    for attempt in (lambda: open_catalog(str(path)), lambda: upgrade(database_url(str(path)))):
        with pytest.raises(CatalogError, match="not a usable catalog .file is not a database."):
            attempt()
    assert path.read_bytes() == before
