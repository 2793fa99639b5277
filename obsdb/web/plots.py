"""Plots for the review desk, drawn as inline SVG on the server.

SVG rather than PNG so that every point is a link to its frame and carries a
tooltip, the page stays sharp at any zoom, and nothing heavier than the
standard library is imported to draw it (a 500-frame night's plots take a few
milliseconds).  The functions here are pure: data in, markup out.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from datetime import datetime

WIDTH = 880
"""Width of every plot in CSS pixels (the page's main column)."""

LEFT, RIGHT, TOP, BOTTOM = 64, 12, 18, 26
"""Margins of a panel: room for the y tick labels on the left, the title on top and the x labels below."""

COLOURS = {"accepted": "#2e7d32", "rejected": "#c62828", "pending": "#78909c"}
"""Point colour by frame status."""

SERIES_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
THRESHOLD_COLOUR = "#b71c1c"


@dataclass
class Point:
    """One frame (or night) in a panel: position, how it is drawn, where it links and what its tooltip says."""

    x: float
    y: float
    colour: str
    title: str
    href: str | None = None
    hollow: bool = False


@dataclass
class Panel:
    """One plot panel: a y-axis label, its points, and horizontal lines (value, label) such as QA limits."""

    label: str
    points: list[Point] = field(default_factory=list)
    lines: list[tuple[float, str]] = field(default_factory=list)
    joined: bool = False


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """About ``count`` round tick values (1, 2 or 5 times a power of ten apart) covering [low, high].

    Parameters
    ----------
    low, high : float
        The data range; ``low == high`` gets ticks around the value.
    count : int
        Roughly how many ticks are wanted.

    Returns
    -------
    list of float
        Increasing tick values inside ``[low, high]`` (at least one).
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        return [low]
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks or [low]


def format_tick(value: float) -> str:
    """A tick label: thousands separated, no needless decimals."""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value else "0"


def panels_svg(panels: list[Panel], *, x_ticks: list[tuple[float, str]], x_range: tuple[float, float],
               panel_height: int = 96, title: str = "", caption: str = "") -> str:
    """Stacked panels sharing one x axis, as one ``<svg>`` element.

    Parameters
    ----------
    panels : list of Panel
        Drawn top to bottom; a panel without points says "no data".
    x_ticks : list of (float, str)
        Positions and labels on the shared x axis (drawn under the last panel).
    x_range : (float, float)
        The x values at the left and right edges (a 3 % margin is added).
    panel_height : int
        Height of each panel's plotting area in CSS pixels.
    title, caption : str
        Text above the first panel and under the x axis.

    Returns
    -------
    str
        SVG markup; every point with an ``href`` is a link, every point has a ``<title>`` tooltip.
    """
    x0, x1 = x_range
    if not x1 > x0:
        x0, x1 = x0 - 0.5, x0 + 0.5
    pad = 0.03 * (x1 - x0)
    x0, x1 = x0 - pad, x1 + pad
    inner = WIDTH - LEFT - RIGHT
    height = TOP + len(panels) * (panel_height + 12) + BOTTOM + (16 if caption else 0)

    def sx(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * inner

    out = [f"<svg class='plot' xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {WIDTH} {height}' "
           f"width='{WIDTH}' height='{height}' role='img' aria-label='{_e(title or 'plot')}'>"]
    if title:
        out.append(f"<text x='{LEFT}' y='12' class='title'>{_e(title)}</text>")
    top = TOP
    for panel in panels:
        values = [p.y for p in panel.points] + [v for v, _ in panel.lines]
        low, high = (min(values), max(values)) if values else (0.0, 1.0)
        span = high - low or max(abs(high), 1.0) * 0.1
        low, high = low - 0.08 * span, high + 0.08 * span

        def sy(y: float, low=low, high=high, top=top) -> float:
            return top + panel_height - (y - low) / (high - low) * panel_height

        out.append(f"<rect x='{LEFT}' y='{top}' width='{inner}' height='{panel_height}' class='frame'/>")
        for tick in nice_ticks(low, high, 3):
            y = sy(tick)
            out.append(f"<line x1='{LEFT}' x2='{LEFT + inner}' y1='{y:.1f}' y2='{y:.1f}' class='grid'/>"
                       f"<text x='{LEFT - 4}' y='{y + 3:.1f}' class='tick' text-anchor='end'>"
                       f"{_e(format_tick(tick))}</text>")
        for x, _ in x_ticks:
            out.append(f"<line x1='{sx(x):.1f}' x2='{sx(x):.1f}' y1='{top}' y2='{top + panel_height}' "
                       f"class='grid'/>")
        out.append(f"<text x='{LEFT + 4}' y='{top + 12}' class='label'>{_e(panel.label)}</text>")
        for value, label in panel.lines:
            y = sy(value)
            out.append(f"<line x1='{LEFT}' x2='{LEFT + inner}' y1='{y:.1f}' y2='{y:.1f}' class='limit'>"
                       f"<title>{_e(label)}</title></line>"
                       f"<text x='{LEFT + inner - 4}' y='{y - 3:.1f}' class='limit-label' text-anchor='end'>"
                       f"{_e(label)}</text>")
        if panel.joined and len(panel.points) > 1:
            by_colour: dict[str, list[Point]] = {}
            for point in sorted(panel.points, key=lambda p: p.x):
                by_colour.setdefault(point.colour, []).append(point)
            for colour, points in by_colour.items():
                path = " ".join(f"{sx(p.x):.1f},{sy(p.y):.1f}" for p in points)
                out.append(f"<polyline points='{path}' fill='none' stroke='{colour}' stroke-width='1' "
                           f"opacity='0.6'/>")
        if not panel.points:
            out.append(f"<text x='{LEFT + inner / 2}' y='{top + panel_height / 2}' class='tick' "
                       f"text-anchor='middle'>no data</text>")
        for point in panel.points:
            fill = "none" if point.hollow else point.colour
            dot = (f"<circle cx='{sx(point.x):.1f}' cy='{sy(point.y):.1f}' r='3.6' fill='{fill}' "
                   f"stroke='{point.colour}' stroke-width='1.4'><title>{_e(point.title)}</title></circle>")
            out.append(f"<a href='{_e(point.href)}'>{dot}</a>" if point.href else dot)
        top += panel_height + 12
    for x, label in x_ticks:
        out.append(f"<text x='{sx(x):.1f}' y='{top + 4}' class='tick' text-anchor='middle'>{_e(label)}</text>")
    if caption:
        out.append(f"<text x='{LEFT}' y='{top + 20}' class='tick'>{_e(caption)}</text>")
    out.append("</svg>")
    return "".join(out)


def time_axis(times: list[datetime | None]) -> tuple[list[float | None], list[tuple[float, str]], str]:
    """x values (seconds since the first time), tick marks labelled HH:MM, and the axis caption.

    Frames without a time get None (the caller leaves them out of time plots).
    """
    known = [t for t in times if t is not None]
    if not known:
        return [None] * len(times), [], "no DATE-OBS"
    start = min(known)
    xs = [(t - start).total_seconds() if t is not None else None for t in times]
    end = max(x for x in xs if x is not None)
    # Ticks on whole multiples of the step in clock time (20:05, 20:10), not counted from the first frame.
    step = time_step(end)
    first = math.ceil(start.timestamp() / step) * step - start.timestamp()
    ticks = []
    offset = first
    while offset <= end + 1e-6:
        moment = datetime.fromtimestamp(start.timestamp() + offset, tz=start.tzinfo)
        ticks.append((offset, moment.strftime("%H:%M")))
        offset += step
    zone = start.strftime("%Z") or "UTC"
    return xs, ticks, f"time ({zone}), from {start:%Y-%m-%d %H:%M}"


def time_step(span_seconds: float, count: int = 6) -> int:
    """A round tick step (seconds: 1, 2, 5, 10, 15 or 30 minutes, or 1-6 hours) for about ``count`` ticks."""
    steps = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)
    return next((s for s in steps if span_seconds / s <= count), steps[-1])


def index_axis(labels: list[str], count: int = 8) -> list[tuple[float, str]]:
    """Ticks for a categorical axis (nights): at most ``count`` of the labels, evenly spaced."""
    if not labels:
        return []
    every = max(1, math.ceil(len(labels) / count))
    return [(float(i), label) for i, label in enumerate(labels) if i % every == 0]


def legend_html(entries: list[tuple[str, str]]) -> str:
    """A one-line legend (colour, text) to sit under a plot."""
    return "<p class='legend'>" + " ".join(
        f"<span><i style='background:{_e(colour)}'></i>{_e(text)}</span>" for colour, text in entries) + "</p>"


def _e(text) -> str:
    return html.escape(str(text), quote=True)
