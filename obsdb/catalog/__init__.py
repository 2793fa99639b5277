"""The catalog: SQLAlchemy models, engine and session setup, query helpers."""
