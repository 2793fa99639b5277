"""obsdb's version, in a module of its own: any layer may read it without importing the package
(whose ``obsdb.Catalog`` is the front door above every step)."""

__version__ = "0.3.0"
