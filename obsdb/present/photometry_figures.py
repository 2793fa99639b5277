"""The photometry figures of the report and the review desk: a colour-magnitude diagram and a light curve.

Inline SVG drawn on the server, like :mod:`obsdb.present.figures` (whose axes, ticks and CSS classes
these share): pure functions, data in and :class:`markupsafe.Markup` out, every text escaped, nothing
heavier than the standard library imported, so that the desk can draw them on any request.  Colours
come from :mod:`obsdb.present.palette`: bands in :data:`SERIES_COLOURS` order, frame verdicts in the
status colours.

Magnitudes grow downwards on both figures (a brighter star is higher), as astronomers read them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from markupsafe import Markup, escape

from obsdb.present.figures import WIDTH, nice_ticks, tick_labels
from obsdb.present.palette import SERIES_COLOURS, STATUS_COLOURS, status_colour

CMD_HEIGHT = 520
"""Height of the colour-magnitude diagram in CSS pixels (taller than wide panels: magnitudes span more)."""

LIGHTCURVE_HEIGHT = 300
"""Height of a light curve in CSS pixels."""

MARGINS = (64, 12, 24, 40)
"""Left, right, top and bottom margins: room for tick labels left and below, the title above."""

RADIUS = 3.0
"""Radius of a point, CSS pixels."""

HIGHLIGHT_COLOUR = SERIES_COLOURS[1]
"""The chosen star on a CMD (the desk's selection, the star whose light curve is shown)."""


@dataclass(frozen=True)
class Axis:
    """A linear map from data values to SVG coordinates: ``low`` at ``start``, ``high`` at ``end``.

    SVG's y grows downwards, so a magnitude axis (bright at the top) runs from the plot's top to its bottom.
    """

    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        return self.start + (value - self.low) / (self.high - self.low) * (self.end - self.start)


def _finite(*values) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def _range(values, pad: float = 0.05) -> tuple[float, float]:
    known = [v for v in values if _finite(v)]
    if not known:
        return 0.0, 1.0
    low, high = min(known), max(known)
    span = high - low or max(abs(high), 1.0) * 0.1
    return low - pad * span, high + pad * span


def _frame(width: int, height: int, x: Axis, y: Axis, *, x_label: str, y_label: str, title: str,
           x_ticks=None) -> list[str]:
    """The plot's box, grid, ticks and labels (y ticks are data values; ``x_ticks`` (value, label) pairs or
    round values)."""
    left, right, top, bottom = MARGINS
    inner_bottom = height - bottom
    parts = [f"<rect x='{left}' y='{top}' width='{width - left - right}' height='{inner_bottom - top}' "
             f"class='frame'/>"]
    if title:
        parts.append(f"<text x='{left}' y='14' class='title'>{escape(title)}</text>")
    y_values = nice_ticks(min(y.low, y.high), max(y.low, y.high), 6)
    for value, label in zip(y_values, tick_labels(y_values)):
        at = y(value)
        parts.append(f"<line x1='{left}' x2='{width - right}' y1='{at:.1f}' y2='{at:.1f}' class='grid'/>"
                     f"<text x='{left - 4}' y='{at + 3:.1f}' class='tick' text-anchor='end'>"
                     f"{escape(label)}</text>")
    x_values = nice_ticks(x.low, x.high, 7)
    ticks = x_ticks if x_ticks is not None else list(zip(x_values, tick_labels(x_values)))
    for value, label in ticks:
        at = x(value)
        parts.append(f"<line x1='{at:.1f}' x2='{at:.1f}' y1='{top}' y2='{inner_bottom}' class='grid'/>"
                     f"<text x='{at:.1f}' y='{inner_bottom + 14}' class='tick' text-anchor='middle'>"
                     f"{escape(label)}</text>")
    parts.append(f"<text x='{(left + width - right) / 2:.1f}' y='{height - 6}' class='label' "
                 f"text-anchor='middle'>{escape(x_label)}</text>")
    parts.append(f"<text x='14' y='{(top + inner_bottom) / 2:.1f}' class='label' text-anchor='middle' "
                 f"transform='rotate(-90 14 {(top + inner_bottom) / 2:.1f})'>{escape(y_label)}</text>")
    return parts


def _point(cx: float, cy: float, *, fill: str, stroke: str, title: str, href: str | None,
           error: float | None = None, y: Axis | None = None, value: float | None = None) -> str:
    bar = ""
    if error is not None and y is not None and _finite(error, value) and error > 0:
        bar = (f"<line x1='{cx:.1f}' x2='{cx:.1f}' y1='{y(value - error):.1f}' y2='{y(value + error):.1f}' "
               f"stroke='{stroke}' stroke-width='1' opacity='0.7' class='error'/>")
    circle = (f"<circle cx='{cx:.1f}' cy='{cy:.1f}' r='{RADIUS}' fill='{fill}' stroke='{stroke}' class='point' "
              f"stroke-width='1.2'><title>{escape(title)}</title></circle>")
    if href:
        return f"{bar}<a href='{escape(href)}'>{circle}</a>"
    return bar + circle


def _svg(width: int, height: int, title: str, parts: list[str]) -> Markup:
    return Markup(f"<svg class='plot' xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' "
                  f"width='{width}' height='{height}' role='img' aria-label='{escape(title or 'plot')}'>"
                  + "".join(parts) + "</svg>")


def cmd_figure(colour, magnitude, *, colour_err=None, magnitude_err=None, titles=None, hrefs=None,
               highlight=None, x_label: str = "B - V (instrumental)", y_label: str = "V (instrumental)",
               title: str = "", width: int = WIDTH, height: int = CMD_HEIGHT) -> Markup:
    """A colour-magnitude diagram: one point per source, magnitudes growing downwards.

    Parameters
    ----------
    colour, magnitude : sequence of float
        Per source; a source with a non-finite value is left out.
    colour_err, magnitude_err : sequence of float, optional
        Drawn as error bars (horizontal and vertical).
    titles : sequence of str, optional
        Each point's tooltip (default: its values).
    hrefs : sequence of str or None, optional
        Each point's link (the source's light curve).
    highlight : int or sequence of int, optional
        Indices of sources drawn in :data:`HIGHLIGHT_COLOUR`, on top.
    x_label, y_label, title : str
    width, height : int
        CSS pixels.

    Returns
    -------
    markupsafe.Markup
        One ``<svg>`` element; each drawn source is a ``<circle>`` with a ``<title>``.
    """
    colour, magnitude = list(colour), list(magnitude)
    if len(colour) != len(magnitude):
        raise ValueError(f"{len(colour)} colours but {len(magnitude)} magnitudes")
    chosen = {highlight} if isinstance(highlight, int) else set(highlight or ())
    left, right, top, bottom = MARGINS
    x = Axis(*_range(colour), left, width - right)
    y = Axis(*_range(magnitude), top, height - bottom)
    parts = _frame(width, height, x, y, x_label=x_label, y_label=y_label, title=title)
    drawn = [i for i in range(len(colour)) if _finite(colour[i], magnitude[i])]
    if not drawn:
        parts.append(f"<text x='{width / 2:.1f}' y='{height / 2:.1f}' class='tick' text-anchor='middle'>"
                     "no data</text>")
    for i in sorted(drawn, key=lambda i: i in chosen):
        tip = titles[i] if titles is not None else f"{x_label} {colour[i]:.3f}, {y_label} {magnitude[i]:.3f}"
        paint = HIGHLIGHT_COLOUR if i in chosen else SERIES_COLOURS[0]
        cx, cy = x(colour[i]), y(magnitude[i])
        if colour_err is not None and _finite(colour_err[i]) and colour_err[i] > 0:
            # A faint star's colour error can be wider than the plot: the bar stops at the frame.
            x1, x2 = (min(max(x(colour[i] + sign * colour_err[i]), left), width - right) for sign in (-1, 1))
            parts.append(f"<line x1='{x1:.1f}' x2='{x2:.1f}' "
                         f"y1='{cy:.1f}' y2='{cy:.1f}' stroke='{paint}' stroke-width='1' opacity='0.7' "
                         "class='error'/>")
        parts.append(_point(cx, cy, fill=paint, stroke=paint, title=tip, href=hrefs[i] if hrefs else None,
                            error=None if magnitude_err is None else magnitude_err[i], y=y, value=magnitude[i]))
    return _svg(width, height, title, parts)


def lightcurve_figure(times, magnitudes, errors=None, *, bands=None, statuses=None, titles=None, hrefs=None,
                      model=None, time_label: str = "time (d)", y_label: str = "differential magnitude",
                      title: str = "", width: int = WIDTH, height: int = LIGHTCURVE_HEIGHT) -> Markup:
    """A light curve: magnitude (growing downwards) against time, one point per frame.

    Parameters
    ----------
    times, magnitudes : sequence of float
        Per frame (time in days, e.g. BJD_TDB - 2461114, stated in ``time_label``); non-finite points are
        left out.
    errors : sequence of float, optional
        Error bars.
    bands : sequence of str, optional
        Each frame's band: points coloured by band (:data:`SERIES_COLOURS` in order of first use), with a
        legend; without, by ``statuses``.
    statuses : sequence of str, optional
        Each frame's verdict (``accepted``, ``rejected``, ``pending``): a rejected frame is drawn hollow,
        its ring in the status colour.
    titles, hrefs : sequence, optional
        Tooltips and links (to the frame).
    model : (sequence of float, sequence of float), optional
        A fitted curve (times, magnitudes) drawn as a line, e.g. a transit model.
    time_label, y_label, title : str
    width, height : int

    Returns
    -------
    markupsafe.Markup
    """
    times, magnitudes = list(times), list(magnitudes)
    if len(times) != len(magnitudes):
        raise ValueError(f"{len(times)} times but {len(magnitudes)} magnitudes")
    left, right, top, bottom = MARGINS
    model_t, model_m = (list(model[0]), list(model[1])) if model is not None else ([], [])
    spread = [m + s * (errors[i] if errors is not None and _finite(errors[i]) else 0.0)
              for i, m in enumerate(magnitudes) for s in (-1, 1) if _finite(m)]
    x = Axis(*_range(times + model_t, 0.02), left, width - right)
    y = Axis(*_range(spread + model_m), top, height - bottom)
    parts = _frame(width, height, x, y, x_label=time_label, y_label=y_label, title=title)
    if model is not None and len(model_t) > 1:
        path = " ".join(f"{x(t):.1f},{y(m):.1f}" for t, m in zip(model_t, model_m) if _finite(t, m))
        parts.append(f"<polyline points='{path}' fill='none' stroke='{STATUS_COLOURS['pending']}' "
                     "stroke-width='1.5' class='model'/>")
    palette: dict[str, str] = {}
    drawn = 0
    for i, (t, m) in enumerate(zip(times, magnitudes)):
        if not _finite(t, m):
            continue
        status = statuses[i] if statuses is not None else "accepted"
        if bands is not None:
            paint = palette.setdefault(bands[i], SERIES_COLOURS[len(palette) % len(SERIES_COLOURS)])
        else:
            paint = status_colour(status)
        stroke = status_colour("rejected") if status == "rejected" else paint
        fill = "none" if status == "rejected" else paint
        tip = titles[i] if titles is not None else f"t {t:.5f}, {m:.4f} mag" + (
            f" +- {errors[i]:.4f}" if errors is not None and _finite(errors[i]) else "")
        parts.append(_point(x(t), y(m), fill=fill, stroke=stroke, title=tip, href=hrefs[i] if hrefs else None,
                            error=None if errors is None else errors[i], y=y, value=m))
        drawn += 1
    if not drawn:
        parts.append(f"<text x='{width / 2:.1f}' y='{height / 2:.1f}' class='tick' text-anchor='middle'>"
                     "no data</text>")
    for k, (band, paint) in enumerate(palette.items()):
        parts.append(f"<circle cx='{width - right - 60 + 0:.1f}' cy='{top + 10 + 14 * k}' r='{RADIUS}' "
                     f"fill='{paint}' class='legend'/><text x='{width - right - 52}' y='{top + 14 + 14 * k}' "
                     f"class='tick'>{escape(band)}</text>")
    return _svg(width, height, title, parts)
