"""Alembic environment wired to obsdb's metadata (all models imported)."""

from alembic import context
from sqlalchemy import pool

from obsdb.catalog import models  # noqa: F401  (registers every table)
from obsdb.catalog.db import make_engine

config = context.config
target_metadata = models.Base.metadata


def run_migrations_offline() -> None:
    """Emit SQL for the migrations without a database (alembic --sql)."""
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def _run(connection) -> None:
    dialect = connection.dialect.name

    def include_object(schema_object, name, type_, reflected, compare_to):
        # An index made on one database only (ddl_if) is not missing from the others.
        return reflected or models.made_on(schema_object, dialect)

    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True, compare_type=True, include_object=include_object)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the connection obsdb passes in, or on a fresh engine."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
