"""Storage: SQLAlchemy models, the shared database handle (:mod:`obsdb.catalog.db`), set-based queries,
and one small store per pipeline step (:mod:`obsdb.catalog.stores`).  Nothing here imports a step."""
