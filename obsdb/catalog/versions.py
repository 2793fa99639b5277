"""Versions of the measurements that storage keeps with its rows.

Storage must tell a current measurement from a stale one without importing the steps
that make them (nothing in :mod:`obsdb.catalog` imports :mod:`obsdb.pipeline`); this small
module, free of SQLAlchemy, is also cheap for the worker processes that stamp results.
"""

METRICS_VERSION = "metrics-7"
"""Identifies the metric algorithm (:mod:`obsdb.pipeline.metrics`); stored with each result.
metrics-4: light frames are searched for satellite streaks in the same pass (``n_streaks`` and
the ``streak`` rows).  metrics-5: the detection of ``stars-4`` (:data:`obsdb.imaging.stars.STARS_VERSION`:
the background of frames of 2048 px and more measured on a 2 x 2 subsample).  metrics-6: the
detection of ``stars-5`` (that background on a 4 x 4 subsample; frames under 2048 px unchanged).
metrics-7: the detection of ``stars-6`` (8 deblending levels instead of 32)."""
