"""obsdb: a database-backed observation manager for nights of CCD frames.

The front door is :class:`Catalog`::

    from obsdb import Catalog, FrameFilter

    with Catalog.open("obsdb.sqlite") as cat:
        table = cat.frames(band="V", status="rejected").to_table()
        worst = cat.frames(FrameFilter(band="V", where="fwhm > 3"))
"""

from obsdb.version import __version__

__all__ = ["Catalog", "CatalogError", "FrameFilter", "FrameList", "FrameRecord", "ObsdbError", "__version__"]


def __getattr__(name):
    # Lazy, so that `import obsdb` (and `obsdb --help`) does not load SQLAlchemy.
    if name == "Catalog":
        from obsdb.api import Catalog

        return Catalog
    if name in ("FrameFilter", "FrameRecord", "FrameList"):
        from obsdb.catalog import records

        return getattr(records, name)
    if name == "CatalogError":
        from obsdb.catalog.db import CatalogError

        return CatalogError
    if name == "ObsdbError":
        from obsdb.errors import ObsdbError

        return ObsdbError
    raise AttributeError(f"module 'obsdb' has no attribute {name!r}")
