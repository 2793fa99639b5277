"""What the report and the review desk show, and how: one palette, one set of SVG figures, the templates.

Above the front door (:class:`obsdb.Catalog`), beside ``cli/``: the static report (:mod:`obsdb.report`) and
the review desk (:mod:`obsdb.web`) both draw from here, so a status has one colour, a plot one look and a
page one way of escaping what it shows (Jinja2 with autoescape; no hand-written escaping).

Modules: :mod:`~obsdb.present.palette` (colours), :mod:`~obsdb.present.facts` (what a number on a page
means: minor-axis FWHM, QA limits, pixel scale, times, zoom stars), :mod:`~obsdb.present.figures` (SVG
plots), :mod:`~obsdb.present.pages` (the templates and static files).
"""
