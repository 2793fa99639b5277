"""The desk's /photometry page over HTTP: the night's CMD, each point a link to its source's light curve."""

import re
import xml.etree.ElementTree as ET

import pytest

from obsdb import Catalog

NIGHT = dict(seed=24, size=192, n_frames=8, bands=("B", "V"), n_groups=1, cloud_fraction=0.0,
             trail_fraction=0.0, defocus_fraction=0.0)


@pytest.fixture(scope="module")
def client(simulated_nights, tmp_path_factory):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette suggests httpx2 over httpx; both work
        from starlette.testclient import TestClient

    from obsdb.web.app import create_app

    base = tmp_path_factory.mktemp("deskphot")
    simulated_nights.copy(base / "night", **NIGHT)
    Catalog.run(base / "night", base / "out", render_outputs=False, report=False)
    catalog = Catalog.open(base / "out" / "obsdb.sqlite")
    yield TestClient(create_app(catalog, cache_dir=base / "cache", author="ada")), catalog
    catalog.close()


def _svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(s) for s in re.findall(r"<svg class='plot'.*?</svg>", html, re.S)]


def test_the_page_draws_the_cmd_with_a_link_per_source(client):
    http, catalog = client
    page = http.get("/photometry")
    assert page.status_code == 200
    table = catalog.cmd(blue="B", red="V")
    drawn = sum(1 for row in table if row["colour"] == row["colour"] and row["mag_V"] == row["mag_V"])
    (cmd,) = _svgs(page.text)
    ns = "{http://www.w3.org/2000/svg}"
    links = [a.get("href") for a in cmd.iter(f"{ns}a")]
    assert len(links) == drawn >= 10
    assert all(re.fullmatch(r"/photometry\?source=\d+", link) for link in links)
    assert "V (instrumental)" in page.text and "B - V (instrumental)" in page.text
    assert "href='/photometry'" in http.get("/").text     # the desk's header links to it


def test_a_source_adds_its_light_curve(client):
    http, catalog = client
    table = catalog.cmd(blue="B", red="V")
    source = int(table["id"][int(table["n_V"].argmax())])
    page = http.get(f"/photometry?source={source}")
    assert page.status_code == 200
    cmd, curve = _svgs(page.text)
    ns = "{http://www.w3.org/2000/svg}"
    curve_rows = catalog.lightcurve(source)
    assert f"Source {source}" in page.text
    # One point per frame, each a link to its frame's picture (the legend's swatches are not links).
    frame_links = [a.get("href") for a in curve.iter(f"{ns}a")]
    assert sorted(frame_links) == sorted(f"/frame/{fid}.png" for fid in curve_rows["frame_id"])
    # The chosen source is highlighted on the CMD.
    assert any(c.get("fill") != list(cmd.iter(f"{ns}circle"))[0].get("fill") for c in cmd.iter(f"{ns}circle"))


@pytest.mark.parametrize("query, status, text", [
    ("source=999999", 404, "no such source"),
    ("source=abc", 400, "a source id"),
    ("colour=B-R", 400, "band R: no photometry"),
    ("colour=BV", 400, "two bands joined by a dash"),
    ("night=1999-01-01", 404, "no such night"),
])
def test_bad_queries_say_what_is_wrong(client, query, status, text):
    http, _ = client
    page = http.get(f"/photometry?{query}")
    assert page.status_code == status and text in page.text


def test_text_is_escaped(client):
    http, _ = client
    page = http.get("/photometry?colour=%3Cem%3Ex-V")
    assert page.status_code == 400 and "<em>x" not in page.text and "&lt;em&gt;x" in page.text
