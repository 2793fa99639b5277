"""The one status palette: the report's and the review desk's points, captions, borders and legends.

The colours reach the stylesheets as CSS variables (``--accepted``, ``--rejected``, ``--pending``,
``--limit``) written by each page's template from :func:`css_variables`, and the SVG figures use them
directly, so a status cannot be blue on one page and green on the other.
"""

from __future__ import annotations

STATUS_COLOURS = {"accepted": "#2e7d32", "rejected": "#c62828", "pending": "#78909c"}
"""Colour of a frame's status: points, captions, borders, legends."""

THRESHOLD_COLOUR = "#b71c1c"
"""The QA rules' limits (dashed lines) and their names."""

SERIES_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
                  "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#c49c94", "#f7b6d2", "#9edae5", "#dbdb8d")
"""Colours of series that are not statuses (bands, pointing groups, instruments), in order of use."""

STATUS_CLASSES = {"accepted": "acc", "rejected": "rej", "pending": "pen"}
"""The report's CSS class of a status word."""


def status_colour(status: str) -> str:
    """The colour of a status (``pending``'s for anything unknown)."""
    return STATUS_COLOURS.get(status, STATUS_COLOURS["pending"])


def status_class(status: str) -> str:
    """The CSS class the report gives a status word (``pen`` for anything unknown)."""
    return STATUS_CLASSES.get(status, "pen")


def css_variables() -> str:
    """``:root { --accepted: ...; ... }``: the palette as CSS variables, for a page's ``<style>``."""
    pairs = {**STATUS_COLOURS, "limit": THRESHOLD_COLOUR}
    return ":root { " + " ".join(f"--{name}: {colour};" for name, colour in pairs.items()) + " }"
