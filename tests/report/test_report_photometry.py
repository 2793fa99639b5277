"""The report's photometry section: the night's CMD (with two bands) and the light curve of the chosen star."""

import re
import xml.etree.ElementTree as ET

import pytest

from obsdb import Catalog
from obsdb.present.photometry_views import chosen_star, cmd_bands

NIGHT = dict(seed=24, size=192, n_frames=8, bands=("B", "V"), n_groups=1, cloud_fraction=0.0,
             trail_fraction=0.0, defocus_fraction=0.0)
NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def report(simulated_nights, tmp_path_factory):
    from obsdb.report.build import build_report

    base = tmp_path_factory.mktemp("reportphot")
    simulated_nights.copy(base / "night", **NIGHT)
    Catalog.run(base / "night", base / "out", render_outputs=False, report=False)
    with Catalog.open(base / "out" / "obsdb.sqlite") as catalog:
        build_report(catalog, base / "report", thumbnails=False)
        yield (base / "report" / "index.html").read_text(), catalog


def _section(html: str) -> str:
    return re.search(r"<section id=\"photometry\">.*?</section>", html, re.S).group(0)


def test_the_report_shows_the_cmd_and_a_light_curve(report):
    html, catalog = report
    assert "<a href=\"#photometry\">photometry</a>" in html
    section = _section(html)
    cmd, curve = [ET.fromstring(s) for s in re.findall(r"<svg class='plot'.*?</svg>", section, re.S)]
    table = catalog.cmd(blue="B", red="V")
    drawn = sum(1 for row in table if row["colour"] == row["colour"] and row["mag_V"] == row["mag_V"])
    assert len([c for c in cmd.iter(f"{NS}circle")]) == drawn >= 10
    star = int(re.search(r"Source (\d+) ", section).group(1))
    sources = catalog.sources()
    rows = [dict(zip(table.colnames, (r[n] for n in table.colnames))) for r in table]
    variable = {int(r["id"]): bool(r["variable"]) for r in sources}
    expected = chosen_star([dict(r, variable=variable[int(r["id"])], n_frames=int(r["n_B"] + r["n_V"]))
                            for r in rows], ["V", "B"])
    assert star == expected
    # Every point of the light curve links to its frame's page in the report.
    links = [a.get("href") for a in curve.iter(f"{NS}a")]
    assert len(links) == len(catalog.lightcurve(star)) and all(link.startswith("frames/") for link in links)


def test_the_star_is_the_brightest_unsaturated_variable_else_the_most_measured():
    rows = [{"id": 1, "variable": True, "n_frames": 5, "mag_V": float("nan")},     # saturated: no magnitude
            {"id": 2, "variable": True, "n_frames": 5, "mag_V": 14.0},
            {"id": 3, "variable": True, "n_frames": 9, "mag_V": 13.0},
            {"id": 4, "variable": False, "n_frames": 20, "mag_V": 10.0}]
    assert chosen_star(rows, ["V"]) == 3
    for r in rows:
        r["variable"] = False
    assert chosen_star(rows, ["V"]) == 4
    rows[3].update(n_frames=9, mag_V=15.0)
    assert chosen_star(rows, ["V"]) == 3          # a tie on frames: the brighter
    assert chosen_star([], ["V"]) is None


def test_the_colour_is_b_minus_v_else_the_two_bluest():
    assert cmd_bands(["R", "V", "B"]) == ("B", "V")
    assert cmd_bands(["R", "V"]) == ("V", "R")
    assert cmd_bands(["I", "Ha", "R"]) == ("R", "I")
    assert cmd_bands(["V"]) is None


def test_one_band_gives_a_note_and_still_a_light_curve(simulated_nights, tmp_path):
    from obsdb.report.build import build_report

    simulated_nights.copy(tmp_path / "night", **dict(NIGHT, bands=("V",)))
    Catalog.run(tmp_path / "night", tmp_path / "out", render_outputs=False, report=False)
    with Catalog.open(tmp_path / "out" / "obsdb.sqlite") as catalog:
        build_report(catalog, tmp_path / "report", thumbnails=False)
    section = _section((tmp_path / "report" / "index.html").read_text())
    assert "One band measured (V): a colour-magnitude diagram needs two." in section
    assert section.count("<svg class='plot'") == 1 and "(obsdb lightcurve " in section
