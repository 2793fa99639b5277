"""obsdb: a database-backed observation manager for a night of CCD frames."""

__version__ = "0.1.0"
