"""The colour-magnitude diagram and the light curve as SVG (obsdb/present/photometry_figures.py): valid
markup, every point where its values put it, text escaped, one palette."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from obsdb.present.palette import SERIES_COLOURS, STATUS_COLOURS
from obsdb.present.photometry_figures import HIGHLIGHT_COLOUR, cmd_figure, lightcurve_figure

SVG = "{http://www.w3.org/2000/svg}"


def _parse(markup) -> ET.Element:
    root = ET.fromstring(str(markup))
    assert root.tag == f"{SVG}svg"
    return root


def _points(root):
    return [c for c in root.iter(f"{SVG}circle") if c.get("class") == "point"]


def _ticks(root):
    """Tick labels: (x, y, text) of every text with class 'tick'."""
    return [(float(t.get("x")), float(t.get("y")), t.text) for t in root.iter(f"{SVG}text") if t.get("class") == "tick"]


def _assert_affine(values, pixels):
    """pixels = a + b * values for every point (to the 0.1 px the markup rounds to)."""
    (v0, p0), (v1, p1) = (values[0], pixels[0]), (values[-1], pixels[-1])
    slope = (p1 - p0) / (v1 - v0)
    for v, p in zip(values, pixels):
        assert p == pytest.approx(p0 + slope * (v - v0), abs=0.25)
    return slope


def test_a_cmd_places_each_star_by_colour_and_magnitude_brighter_higher():
    colour = [-0.2, 0.0, 0.3, 0.8, 1.4]
    magnitude = [10.0, 11.5, 13.0, 15.5, 17.0]
    root = _parse(cmd_figure(colour, magnitude, titles=[f"star {i}" for i in range(5)],
                             hrefs=[f"/source/{i}" for i in range(5)], highlight=2))
    points = _points(root)
    assert len(points) == 5
    # Drawn in order, the highlighted one last (on top).
    by_title = {p.find(f"{SVG}title").text: p for p in points}
    cx = [float(by_title[f"star {i}"].get("cx")) for i in range(5)]
    cy = [float(by_title[f"star {i}"].get("cy")) for i in range(5)]
    assert _assert_affine(colour, cx) > 0
    assert _assert_affine(magnitude, cy) > 0          # SVG y grows downwards: fainter is lower
    assert points[-1].find(f"{SVG}title").text == "star 2" and points[-1].get("fill") == HIGHLIGHT_COLOUR
    assert {p.get("fill") for p in points[:-1]} == {SERIES_COLOURS[0]}
    links = [a.get("href") for a in root.iter(f"{SVG}a")]
    assert sorted(links) == [f"/source/{i}" for i in range(5)]


def test_a_cmd_tick_stands_where_a_star_of_that_value_would():
    colour = [0.0, 0.4, 1.0]
    magnitude = [12.0, 14.0, 16.0]
    root = _parse(cmd_figure(colour, magnitude))
    points = _points(root)
    cx = [float(p.get("cx")) for p in points]
    cy = [float(p.get("cy")) for p in points]
    ticks = _ticks(root)
    # The y tick labelled 14 sits (3 px lower, at its text baseline) on the middle star's row; the x tick 0.4
    # below the middle star.
    y_tick = [y for x, y, text in ticks if text == "14"]
    x_tick = [x for x, y, text in ticks if text == "0.4"]
    assert y_tick and y_tick[0] - 3 == pytest.approx(cy[1], abs=0.11)
    assert x_tick and x_tick[0] == pytest.approx(cx[1], abs=0.11)


def test_a_cmd_leaves_out_what_it_cannot_place_and_escapes_its_text():
    root = _parse(cmd_figure([0.1, math.nan, 0.5], [12.0, 13.0, None], titles=["<b>one</b>", "two", "three"],
                             x_label="B-V <i>", title="NGC 3293 & friends"))
    points = _points(root)
    assert len(points) == 1 and points[0].find(f"{SVG}title").text == "<b>one</b>"
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "B-V <i>" in texts and "NGC 3293 & friends" in texts          # parsed back: it was escaped
    empty = _parse(cmd_figure([], []))
    assert not _points(empty) and "no data" in " ".join(t.text or "" for t in empty.iter(f"{SVG}text"))
    with pytest.raises(ValueError, match="2 colours but 1 magnitudes"):
        cmd_figure([0.1, 0.2], [12.0])


def test_a_cmd_draws_error_bars_of_the_given_length():
    root = _parse(cmd_figure([0.0, 1.0, 2.0], [10.0, 12.0, 14.0], colour_err=[0.0, 0.1, 0.0],
                             magnitude_err=[0.0, 0.5, 0.0]))
    cx = [float(p.get("cx")) for p in _points(root)]
    cy = [float(p.get("cy")) for p in _points(root)]
    bars = [b for b in root.iter(f"{SVG}line") if b.get("class") == "error"]
    assert len(bars) == 2
    horizontal = next(b for b in bars if b.get("y1") == b.get("y2"))
    vertical = next(b for b in bars if b.get("x1") == b.get("x2"))
    per_colour = (cx[2] - cx[0]) / 2.0
    per_mag = (cy[2] - cy[0]) / 4.0
    assert float(horizontal.get("x2")) - float(horizontal.get("x1")) == pytest.approx(0.2 * per_colour, abs=0.2)
    assert abs(float(vertical.get("y1")) - float(vertical.get("y2"))) == pytest.approx(1.0 * per_mag, abs=0.2)


def test_a_light_curve_places_frames_by_time_colours_bands_and_rings_rejected_frames():
    times = [0.80, 0.81, 0.82, 0.83, 0.84, 0.85]
    mags = [0.000, 0.002, 0.015, 0.016, 0.001, -0.001]
    errors = [0.002] * 6
    bands = ["B", "V", "R", "B", "V", "R"]
    statuses = ["accepted", "accepted", "accepted", "rejected", "accepted", "pending"]
    root = _parse(lightcurve_figure(times, mags, errors, bands=bands, statuses=statuses,
                                    hrefs=[f"/frame/{i}" for i in range(6)],
                                    model=([0.80, 0.815, 0.82, 0.835, 0.84, 0.85], [0, 0, 0.015, 0.015, 0, 0]),
                                    time_label="BJD_TDB - 2461114"))
    points = _points(root)
    assert len(points) == 6
    cx = [float(p.get("cx")) for p in points]
    cy = [float(p.get("cy")) for p in points]
    assert _assert_affine(times, cx) > 0
    assert _assert_affine(mags, cy) > 0                      # the transit's deeper points lower down
    colours = {"B": SERIES_COLOURS[0], "V": SERIES_COLOURS[1], "R": SERIES_COLOURS[2]}
    for point, band, status in zip(points, bands, statuses):
        if status == "rejected":
            assert point.get("fill") == "none" and point.get("stroke") == STATUS_COLOURS["rejected"]
        else:
            assert point.get("fill") == colours[band]
    legend = [t.text for t in root.iter(f"{SVG}text") if t.text in colours]
    assert legend == ["B", "V", "R"]
    assert len([b for b in root.iter(f"{SVG}line") if b.get("class") == "error"]) == 6
    assert len(list(root.iter(f"{SVG}polyline"))) == 1
    assert [a.get("href") for a in root.iter(f"{SVG}a")] == [f"/frame/{i}" for i in range(6)]


def test_a_light_curve_without_bands_takes_the_status_colours():
    root = _parse(lightcurve_figure([1.0, 2.0, 3.0], [0.0, 0.01, math.nan],
                                    statuses=["accepted", "pending", "accepted"]))
    points = _points(root)
    assert [p.get("fill") for p in points] == [STATUS_COLOURS["accepted"], STATUS_COLOURS["pending"]]
    with pytest.raises(ValueError, match="3 times but 2 magnitudes"):
        lightcurve_figure([1.0, 2.0, 3.0], [0.0, 0.1])


def test_the_figures_import_nothing_heavy():
    import subprocess
    import sys

    code = ("import sys; import obsdb.present.photometry_figures; "
            "print(sorted(m for m in ('numpy', 'matplotlib', 'astropy', 'sqlalchemy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
