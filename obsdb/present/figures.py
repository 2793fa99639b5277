"""The figures of the report and the review desk, drawn as inline SVG on the server.

SVG rather than PNG so that every point is a link to its frame and carries a
tooltip, the page stays sharp at any zoom, and nothing heavier than the
standard library is imported to draw it (a 500-frame night's plots take a few
milliseconds).  The functions here are pure: data in, markup out; every text
that comes from the catalog goes through :func:`markupsafe.escape`, and the
result is :class:`markupsafe.Markup`, which the templates insert as it is.

One set of figures for both: :func:`quality_figure` (metrics against time with the QA
limits), :func:`shift_figure` (each frame's current shift) and :func:`archive_figure`
(nights side by side), each point coloured by :mod:`obsdb.present.palette`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from markupsafe import Markup

from obsdb.present.facts import background, metric, minor_fwhm, parse_time
from obsdb.present.palette import SERIES_COLOURS, STATUS_COLOURS, THRESHOLD_COLOUR, status_colour

WIDTH = 880
"""Width of every plot in CSS pixels (the page's main column)."""

LEFT, RIGHT, TOP, BOTTOM = 64, 12, 18, 26
"""Margins of a panel: room for the y tick labels on the left, the title on top and the x labels below."""



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


def format_tick(value: float, step: float | None = None) -> str:
    """A tick label: thousands separated, no needless decimals, and enough digits to tell it from its
    neighbour ``step`` away (three significant digits print 14.62 and 14.63 alike as 14.6).

    Examples
    --------
    >>> format_tick(14.62), format_tick(14.62, step=0.01), format_tick(1.0, step=0.5), format_tick(2500)
    ('14.6', '14.62', '1', '2,500')
    """
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if not value:
        return "0"
    digits = 3
    if step:
        digits = max(digits, math.floor(math.log10(abs(value))) - math.floor(math.log10(abs(step))) + 1)
    return f"{value:.{digits}g}"


def tick_labels(values: list[float]) -> list[str]:
    """:func:`format_tick` of evenly spaced ticks, each with the digits their spacing needs."""
    step = abs(values[1] - values[0]) if len(values) > 1 else None
    return [format_tick(v, step) for v in values]


def panels_svg(panels: list[Panel], *, x_ticks: list[tuple[float, str]], x_range: tuple[float, float],
               panel_height: int = 96, title: str = "", caption: str = "", width: int = WIDTH) -> Markup:
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
    width : int
        Width of the figure in CSS pixels (the height follows from the panels).

    Returns
    -------
    markupsafe.Markup
        SVG markup; every point with an ``href`` is a link, every point has a ``<title>`` tooltip.
    """
    from obsdb.present.pages import render

    x0, x1 = x_range
    if not x1 > x0:
        x0, x1 = x0 - 0.5, x0 + 0.5
    pad = 0.03 * (x1 - x0)
    x0, x1 = x0 - pad, x1 + pad
    inner = width - LEFT - RIGHT

    def sx(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * inner

    layouts, top = [], TOP
    for panel in panels:
        layouts.append(_panel_layout(panel, top, panel_height, sx))
        top += panel_height + 12
    svg = render("figures/panels.svg", width=width, inner=inner, left=LEFT, right=LEFT + inner,
                 height=TOP + len(panels) * (panel_height + 12) + BOTTOM + (16 if caption else 0),
                 panel_height=panel_height, title=title, caption=caption, panels=layouts, bottom=top,
                 x_grid=[f"{sx(x):.1f}" for x, _ in x_ticks], x_ticks=[(f"{sx(x):.1f}", label) for x, label in x_ticks])
    return Markup(svg.strip())


def _panel_layout(panel: Panel, top: int, panel_height: int, sx) -> dict:
    """Where one panel's ticks, limits, lines and points go (SVG coordinates, formatted as drawn)."""
    values = [p.y for p in panel.points] + [v for v, _ in panel.lines]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    span = high - low or max(abs(high), 1.0) * 0.1
    low, high = low - 0.08 * span, high + 0.08 * span

    def sy(y: float) -> float:
        return top + panel_height - (y - low) / (high - low) * panel_height

    polylines = []
    if panel.joined and len(panel.points) > 1:
        by_colour: dict[str, list[Point]] = {}
        for point in sorted(panel.points, key=lambda p: p.x):
            by_colour.setdefault(point.colour, []).append(point)
        polylines = [(colour, " ".join(f"{sx(p.x):.1f},{sy(p.y):.1f}" for p in points))
                     for colour, points in by_colour.items()]
    ticks = nice_ticks(low, high, 3)
    return {"top": top, "label": panel.label, "polylines": polylines,
            "y_ticks": [(f"{sy(t):.1f}", f"{sy(t) + 3:.1f}", label) for t, label in zip(ticks, tick_labels(ticks))],
            "lines": [(f"{sy(v):.1f}", f"{sy(v) - 3:.1f}", label) for v, label in panel.lines],
            "points": [{"cx": f"{sx(p.x):.1f}", "cy": f"{sy(p.y):.1f}", "fill": "none" if p.hollow else p.colour,
                        "stroke": p.colour, "title": p.title, "href": p.href} for p in panel.points]}


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


def legend_html(entries: list[tuple[str, str]]) -> Markup:
    """A one-line legend (colour, text) to sit under a plot."""
    return Markup("<p class='legend'>") + Markup(" ").join(
        Markup("<span><i style='background:{}'></i>{}</span>").format(colour, text) for colour, text in entries) \
        + Markup("</p>")


def number_axis(numbers: list[float | None]) -> tuple[list[float | None], list[tuple[float, str]], str]:
    """x values, round ticks and the caption for frames placed by their number (no frame has a DATE-OBS)."""
    known = [n for n in numbers if n is not None]
    if not known:
        return list(numbers), [], "frame number (no DATE-OBS)"
    ticks = [(t, f"{t:g}") for t in nice_ticks(min(known), max(known), 6)]
    return [None if n is None else float(n) for n in numbers], ticks, "frame number (no DATE-OBS)"


QUALITY_PANELS = (("background", "background ADU"), ("fwhm", "FWHM minor axis px"),
                  ("elongation", "elongation a/b"), ("transparency", "transparency"), ("n_stars", "stars"))
"""The quality figure's panels, top to bottom: metric key and label (an airmass panel follows when known)."""


def _quality_value(record: dict, key: str):
    if key == "background":
        return background(record)
    if key == "fwhm":
        return minor_fwhm(record)
    return metric(record, key)


def _limit_label(line: dict, level: float, how: str) -> str:
    return f"{line['rule']} {format_tick(level)}" + (f" ({how})" if how else "")


def _quality_panel(key: str, label: str, records: list[dict], xs: list, lines: list[dict], *,
                   href: Callable[[dict], str | None], scale: dict[int, float] | None,
                   airmass: dict[int, float] | None) -> Panel:
    """One panel of :func:`quality_figure`: a point per frame, a line per QA limit (each value once)."""
    import statistics

    panel = Panel(label)
    for x, record in zip(xs, records):
        value = (airmass or {}).get(record["id"]) if key == "airmass" else _quality_value(record, key)
        if x is None or value is None:
            continue
        if key == "fwhm" and scale:
            value *= scale[record["id"]]
        why = "; ".join(record["reasons"])
        panel.points.append(Point(
            x, float(value), status_colour(record["status"]),
            f"{record['label']} {record['band'] or ''}: {label} {value:,.3g} · {record['status']}"
            + (f" · {why}" if why else ""), href=href(record), hollow=record["status"] == "pending"))
    seen = set()
    for line in (ln for ln in lines if ln["panel"] == key):
        level, how = line["value"], line["text"]
        if key == "fwhm" and scale:
            # The yardstick is in px, the axis in arcsec: the level at the frames' median scale.
            level *= statistics.median(scale[i] for i in line["ids"] if i in scale) if any(
                i in scale for i in line["ids"]) else 1.0
            how = how.split(" x ")[0] + " x best" if how else how
        if (line["rule"], round(level, 6)) not in seen:
            seen.add((line["rule"], round(level, 6)))
            panel.lines.append((level, _limit_label(line, level, how)))
    return panel


def quality_figure(records: list[dict], lines: list[dict], *, band: str | None,
                   href: Callable[[dict], str | None], scale: dict[int, float] | None = None,
                   airmass: dict[int, float] | None = None, number_axis_without_time: bool = False) -> Markup:
    """Background, minor-axis FWHM, elongation, transparency and star count against time, one band.

    Parameters
    ----------
    records : list of dict
        The band's frames.
    lines : list of dict
        The QA limits (:func:`obsdb.present.facts.threshold_lines`), drawn dashed with their rule's name.
    band : str or None
        Named in the title and the figure's id (``quality-<band>``).
    href : callable
        ``href(record)``: where a point links (the desk's review, the report's frame page), or None.
    scale : dict, optional
        Arcsec per pixel of every frame: the FWHM is then drawn in arcsec.
    airmass : dict, optional
        Airmass per frame id: a sixth panel when any is known.
    number_axis_without_time : bool
        Without any DATE-OBS, place frames by number (the report) instead of saying there is no time plot.

    Returns
    -------
    markupsafe.Markup
        ``<figure class='plot' id='quality-<band>'>`` with the SVG and its legend.
    """
    records = sorted(records, key=lambda r: (r["date_obs"] or "", r["number"] or 0))
    xs, ticks, caption = time_axis([parse_time(r["date_obs"]) for r in records])
    if not any(x is not None for x in xs) and number_axis_without_time:
        xs, ticks, caption = number_axis([r["number"] for r in records])
    known = [x for x in xs if x is not None]
    if not known:
        return Markup("<p class='facts'>band {}: no DATE-OBS, no time plot</p>").format(band or "-")
    panels_wanted = list(QUALITY_PANELS)
    if scale:
        panels_wanted[1] = ("fwhm", "FWHM minor axis arcsec")
    if airmass and any(airmass.get(r["id"]) is not None for r in records):
        panels_wanted.append(("airmass", "airmass"))
    panels = [_quality_panel(key, label, records, xs, lines, href=href, scale=scale, airmass=airmass)
              for key, label in panels_wanted]
    svg = panels_svg(panels, x_ticks=ticks, x_range=(min(known), max(known)), panel_height=70,
                     title=f"band {band or '-'}: {len(records)} frames", caption=caption)
    legend = legend_html([(STATUS_COLOURS["accepted"], "accepted"), (STATUS_COLOURS["rejected"], "rejected"),
                          (STATUS_COLOURS["pending"], "pending (hollow)"), (THRESHOLD_COLOUR, "QA limit (dashed)")])
    return Markup("<figure class='plot' id='quality-{}'>{}{}</figure>").format(band or "none", svg, legend)


def shift_figure(records: list[dict], *, href: Callable[[dict], str | None],
                 series: Callable[[dict], str] = lambda r: f"band {r['band'] or '-'}",
                 title: str = "current shift of each frame (what render applies)", width: int = WIDTH,
                 element_id: str = "shifts", joined: bool = True) -> Markup:
    """Each frame's current shift, dx above dy, against time, one colour per series; rejected frames hollow.

    Parameters
    ----------
    records : list of dict
        Frames; those without a shift are left out.
    href : callable
        ``href(record)``: where a point links, or None.
    series : callable
        ``series(record)``: the name a point's colour stands for (band, pointing group).
    title : str
        Text above the panels.
    width : int
        Width in CSS pixels (the report's header shows a small one).
    element_id : str
        The figure's id.
    joined : bool
        Join each series' points in time order (a pointing group's drift); not across a band's pointings.

    Returns
    -------
    markupsafe.Markup
        ``<figure class='plot' id='...'>`` with the SVG and its legend, or a line saying why there is none.
    """
    shifted = sorted((r for r in records if r["shift"]), key=lambda r: (r["date_obs"] or "", r["number"] or 0))
    if not shifted:
        return Markup("<p class='facts'>No frame has a shift yet (<code>obsdb align</code>).</p>")
    xs, ticks, caption = time_axis([parse_time(r["date_obs"]) for r in shifted])
    known = [x for x in xs if x is not None]
    if not known:
        return Markup("<p class='facts'>No DATE-OBS: no shift track.</p>")
    names = sorted({series(r) for r in shifted})
    colour = {name: SERIES_COLOURS[i % len(SERIES_COLOURS)] for i, name in enumerate(names)}
    panels = [Panel("dx px", joined=joined), Panel("dy px", joined=joined)]
    for x, record in zip(xs, shifted):
        if x is None:
            continue
        for panel, axis in zip(panels, ("dx", "dy")):
            value = record["shift"][axis]
            panel.points.append(Point(
                x, value, colour[series(record)],
                f"{record['label']} {record['band'] or ''}: {axis} {value:+.2f} px, run {record['shift']['run']}"
                f" · {record['status']}", href=href(record), hollow=record["status"] == "rejected"))
    svg = panels_svg(panels, x_ticks=ticks, x_range=(min(known), max(known)), panel_height=90,
                     title=title, caption=caption, width=width)
    legend = legend_html([(colour[name], name) for name in names] + [("#888", "hollow: rejected")])
    return Markup("<figure class='plot' id='{}'>{}{}</figure>").format(element_id, svg, legend)


def archive_figure(rows: list[dict], *, href: Callable[[str], str]) -> Markup:
    """Median FWHM and background per night, one series per instrument and band (the archive view).

    Parameters
    ----------
    rows : list of dict
        :meth:`obsdb.Catalog.archive_quality`.
    href : callable
        ``href(night)``: where a night's point links.

    Returns
    -------
    markupsafe.Markup
        ``<figure class='plot' id='archive'>`` with the SVG and its legend.
    """
    from obsdb.present.facts import short_instrument

    nights = sorted({r["night"] for r in rows})
    position = {n: float(i) for i, n in enumerate(nights)}
    names = sorted({(short_instrument(r["instrument"]), r["band"] or "-") for r in rows})
    colour = {s: SERIES_COLOURS[i % len(SERIES_COLOURS)] for i, s in enumerate(names)}
    panels = [Panel("median FWHM px", joined=True), Panel("median background ADU", joined=True)]
    for r in rows:
        key = (short_instrument(r["instrument"]), r["band"] or "-")
        for panel, column, spec in ((panels[0], "median_fwhm", ".2f"), (panels[1], "median_background", ",.0f")):
            if r[column] is not None:
                panel.points.append(Point(position[r["night"]], r[column], colour[key],
                                          f"{r['night']} {key[0]} {key[1]}: {format(r[column], spec)} "
                                          f"({r['frames']} frames)", href=href(r["night"])))
    svg = panels_svg(panels, x_ticks=index_axis(nights), x_range=(0.0, float(len(nights) - 1)),
                     panel_height=110, title=f"{len(nights)} nights", caption="night")
    legend = legend_html([(colour[s], f"{s[0]} {s[1]}") for s in names])
    return Markup("<figure class='plot' id='archive'>{}{}</figure>").format(svg, legend)
