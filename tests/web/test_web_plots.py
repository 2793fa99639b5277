"""The review desk's SVG plots: round ticks, every point drawn and linked, limits labelled."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from obsdb.present.figures import Panel, Point, nice_ticks, panels_svg, time_axis


@pytest.mark.parametrize("low, high", [(0.0, 1.0), (612.3, 18_940.0), (1.02, 1.07), (-3.5, 2.25), (2.8, 2.8)])
def test_ticks_are_round_and_cover_the_range(low, high):
    ticks = nice_ticks(low, high, 4)
    assert ticks and all(low - 1e-9 <= t <= high + 1e-9 for t in ticks)
    if high > low:
        steps = {round(b - a, 10) for a, b in zip(ticks, ticks[1:])}
        assert len(steps) <= 1
        if steps:
            step = steps.pop()
            mantissa = step / 10 ** __import__("math").floor(__import__("math").log10(step))
            assert round(mantissa, 6) in (1, 2, 5, 10)
            assert (high - low) / step <= 8


def test_time_ticks_fall_on_whole_minutes_of_the_clock():
    start = datetime(2026, 3, 14, 20, 2, 9, tzinfo=timezone.utc)
    xs, ticks, caption = time_axis([start, None, start + timedelta(minutes=25)])
    assert xs == [0.0, None, 1500.0]
    assert [label for _, label in ticks] == ["20:05", "20:10", "20:15", "20:20", "20:25"]
    assert ticks[0][0] == pytest.approx(171.0)
    assert "UTC" in caption
    assert time_axis([None, None]) == ([None, None], [], "no DATE-OBS")


def test_every_point_is_drawn_with_its_link_and_tooltip_and_limits_are_labelled():
    points = [Point(float(i), 1.0 + 0.1 * i, "#2e7d32", f"frame {i} <b>", href=f"/review/n/V?frame={i}",
                    hollow=i == 2) for i in range(5)]
    svg = panels_svg([Panel("FWHM px", points, lines=[(1.25, "focus-fwhm 1.25")]), Panel("empty")],
                     x_ticks=[(0.0, "20:00")], x_range=(0.0, 4.0), title="band V")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert len(re.findall(r"<a href='/review/n/V\?frame=\d'><circle", svg)) == 5
    assert svg.count("fill='none' stroke='#2e7d32'") == 1                       # the hollow one
    assert "frame 1 &lt;b&gt;" in svg and "<b>" not in svg                        # tooltips escaped
    assert "focus-fwhm 1.25" in svg and "class='limit'" in svg
    assert "no data" in svg                                                       # the empty panel says so
    # Higher values are drawn higher (smaller y).
    ys = [float(y) for y in re.findall(r"<circle cx='[\d.]+' cy='([\d.]+)'", svg)]
    assert ys == sorted(ys, reverse=True)
