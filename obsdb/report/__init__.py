"""The static HTML report of a catalog (``obsdb report``), above the front door.

:mod:`~obsdb.report.build` writes it (:func:`~obsdb.report.build.build_report`), from what
:mod:`~obsdb.report.snapshot` reads through :class:`obsdb.Catalog`; :mod:`~obsdb.report.images` draws the
thumbnails, star zooms and stack previews; :mod:`~obsdb.report.pages` lays out the pages with the templates
and figures of :mod:`obsdb.present`; :mod:`~obsdb.report.files` writes the files and owns only its own.
"""
