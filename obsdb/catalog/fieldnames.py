"""The names of a frame's statistics and metrics, in the order records, statements and readers use.

Apart from :mod:`obsdb.catalog.records` so that a reader that builds no record (``obsdb nights``,
``summary``, ``log``) need not define the record classes to know a listing's columns.
"""

STATS_FIELDS = ("min", "max", "mean", "median", "std", "background", "background_rms", "n_nan", "n_saturated",
                "saturation")
"""The fields of :class:`obsdb.catalog.records.Stats`, in order."""

METRICS_FIELDS = ("n_stars", "fwhm", "hfd", "elongation", "background", "background_rms", "background_gradient",
                  "transparency", "n_streaks")
"""The fields of :class:`obsdb.catalog.records.Metrics`, in order."""
