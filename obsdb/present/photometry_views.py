"""What the report, the review desk and ``obsdb cmd --plot`` show of a night's photometry.

Pure functions of the tables :meth:`obsdb.Catalog.cmd` and :meth:`obsdb.Catalog.lightcurve` return (or their
rows as dicts): the colour-magnitude diagram and a light curve as inline SVG
(:mod:`obsdb.present.photometry_figures`), and the choice of the star the report shows.  Standard library
and markupsafe only, so that the desk draws them on any request.
"""

from __future__ import annotations

import math
from pathlib import Path

from markupsafe import Markup

from obsdb.present.photometry_figures import cmd_figure, lightcurve_figure

FIGURES_CSS = Path(__file__).parent / "static" / "figures.css"
"""The figures' stylesheet, embedded in a standalone SVG file so that it looks as on a page."""

def _number(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def cmd_svg(rows: list[dict], *, blue: str, red: str, magnitude: str, calibrated: bool = False,
            href=None, highlight: int | None = None, title: str = "") -> Markup:
    """The CMD of :meth:`obsdb.Catalog.cmd` rows: ``magnitude`` against ``blue - red``.

    Parameters
    ----------
    rows : list of dict
        One per source, with ``id``, ``colour``, ``colour_err``, ``mag_<band>``, ``mag_err_<band>`` (and
        ``cal_mag_<band>``, ``cal_colour`` when ``calibrated``).
    blue, red, magnitude : str
        The bands.
    calibrated : bool
        Draw the calibrated magnitudes and colour (the rows must have them).
    href : callable, optional
        ``href(source_id)``: each point's link (the desk's light curve page).
    highlight : int, optional
        A source id drawn in the highlight colour.
    """
    if calibrated:
        colour = [_number(r.get("cal_colour")) for r in rows]
        mags = [_number(r.get(f"cal_mag_{magnitude}")) for r in rows]
        system = "standard"
    else:
        colour = [_number(r.get("colour")) for r in rows]
        mags = [_number(r.get(f"mag_{magnitude}")) for r in rows]
        system = "instrumental"
    titles = [f"source {r['id']}: {magnitude} {m:.3f}, {blue}-{red} {c:.3f}" for r, m, c in zip(rows, mags, colour)]
    chosen = [i for i, r in enumerate(rows) if highlight is not None and int(r["id"]) == int(highlight)]
    return cmd_figure(colour, mags, colour_err=[_number(r.get("colour_err")) for r in rows],
                      magnitude_err=[_number(r.get(f"mag_err_{magnitude}")) for r in rows], titles=titles,
                      hrefs=[href(int(r["id"])) for r in rows] if href else None, highlight=chosen,
                      x_label=f"{blue} - {red} ({system})", y_label=f"{magnitude} ({system})", title=title)


def lightcurve_svg(rows: list[dict], *, title: str = "", href=None) -> Markup:
    """A light curve of :meth:`obsdb.Catalog.lightcurve` rows (differential magnitude against MJD, bands in
    their colours, rejected frames hollow); ``href(frame_id)`` links each point to its frame."""
    times = [_number(r.get("mjd_utc")) for r in rows]
    known = [t for t in times if math.isfinite(t)]
    origin = math.floor(min(known)) if known else 0.0
    return lightcurve_figure([t - origin for t in times], [_number(r.get("mag")) for r in rows],
                             [_number(r.get("mag_err")) for r in rows], bands=[r.get("band") or "" for r in rows],
                             statuses=[r.get("status") or "" for r in rows],
                             titles=[f"frame {r.get('frame')} ({r.get('band') or 'no band'}, {r.get('status')})"
                                     for r in rows],
                             hrefs=[href(r["frame_id"]) for r in rows] if href else None,
                             time_label=f"MJD (UTC, mid-exposure) - {origin:.0f}", title=title)


def chosen_star(sources: list[dict], bands: list[str]) -> int | None:
    """The star whose light curve the report shows: the brightest variable not saturated, else the source
    measured in most frames (ties: the brighter).

    Parameters
    ----------
    sources : list of dict
        :meth:`obsdb.Catalog.sources` rows (``id``, ``n_frames``, ``variable``, ``mag_<band>``).
    bands : list of str
        The bands in the order their magnitude ranks brightness (the first one measured counts).
    """
    def brightness(row) -> float:
        for band in bands:
            value = _number(row.get(f"mag_{band}"))
            if math.isfinite(value):
                return value
        return math.inf

    # A saturated star has no usable magnitude (its measurements are flagged), so a finite one means unsaturated.
    variables = [r for r in sources if r.get("variable") and math.isfinite(brightness(r))]
    if variables:
        return int(min(variables, key=brightness)["id"])
    if not sources:
        return None
    return int(min(sources, key=lambda r: (-int(r.get("n_frames") or 0), brightness(r)))["id"])


def standalone_svg(figure: Markup) -> str:
    """An inline figure as an SVG file: the figures' stylesheet embedded, with an XML declaration."""
    css = FIGURES_CSS.read_text()
    opening = figure.index(">") + 1
    return ("<?xml version='1.0' encoding='utf-8'?>\n" + str(figure[:opening])
            + f"<style>{css}</style>" + str(figure[opening:]) + "\n")


BAND_ORDER = ("U", "B", "V", "R", "I")
"""Bands from blue to red: a CMD's colour is the bluer of two bands less the redder."""


def cmd_bands(bands) -> tuple[str, str] | None:
    """The colour a night's CMD shows: B - V when both were measured, else the two bluest bands (Johnson
    order, then by name); None with fewer than two."""
    known = sorted(set(b for b in bands if b), key=lambda b: (BAND_ORDER.index(b) if b in BAND_ORDER else 99, b))
    if "B" in known and "V" in known:
        return "B", "V"
    return (known[0], known[1]) if len(known) >= 2 else None
