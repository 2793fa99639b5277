"""One presentation layer for the report and the review desk: what a page shows is escaped by the
templates, a status has one colour in both, the templates and stylesheets ship with the package, and
the desk reaches the catalog through the front door only."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from obsdb import Catalog

PAYLOAD = "<img src=x onerror=alert(1)>"
"""What a hostile header, reason, tag or night name could hold: markup that runs if shown unescaped."""

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """Three frames whose OBJECT and OBSERVER, night name, a tag's name and reasons carry :data:`PAYLOAD`,
    with the report written and the desk open over them."""
    import warnings

    import numpy as np
    from astropy.io import fits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette suggests httpx2 over httpx; both work
        from starlette.testclient import TestClient

    from obsdb.report.build import build_report
    from obsdb.web.app import create_app

    base = tmp_path_factory.mktemp("hostile")
    folder = base / "night"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        header = fits.Header({"IMAGETYP": "Light", "FILTER": "V", "OBJECT": PAYLOAD + "object",
                              "OBSERVER": PAYLOAD + "observer", "DATE-OBS": f"2026-03-14T20:0{i}:00"})
        fits.writeto(folder / f"f_{1001 + i}.fits", rng.normal(100, 5, (32, 32)).astype("f4"), header)
    catalog = Catalog.open(base / "c.sqlite", create=True)
    catalog.ingest([folder], night=PAYLOAD + "night")
    catalog.tag("1001", PAYLOAD + "tag", reason=PAYLOAD + "tag reason", author="ada")
    catalog.tag("1001", "reject", reason=PAYLOAD + "reject reason", author="ada")
    catalog.tag("1002", "accept", reason="looks fine", author="ada")
    report = build_report(catalog, base / "report", thumbnails=False)
    web = TestClient(create_app(catalog, cache_dir=base / "cache", author="ada"))
    yield catalog, report, web
    catalog.close()


def _shows_escaped(page: str, text: str) -> None:
    from markupsafe import escape

    assert PAYLOAD not in page, "the payload is in the page unescaped"
    assert str(escape(text)) in page, f"{text!r} is not shown (escaped) in the page"


def test_a_payload_in_headers_reasons_tags_and_night_names_is_escaped_in_the_report(hostile):
    catalog, report, _ = hostile
    index = report.index_path.read_text(encoding="utf-8")
    for text in (PAYLOAD + "object", PAYLOAD + "observer", PAYLOAD + "night", PAYLOAD + "tag",
                 PAYLOAD + "reject reason"):
        _shows_escaped(index, text)
    rejected = next(r for r in catalog.frame_dicts() if r["number"] == 1001)
    frame_pages = sorted((report.index_path.parent / "frames").glob("*.html"))
    assert len(frame_pages) == 3
    page = next(p for p in frame_pages if p.name.startswith(str(rejected["number"])) or "1001" in p.name)
    text = page.read_text(encoding="utf-8")
    for shown in (PAYLOAD + "object", PAYLOAD + "observer", PAYLOAD + "night", PAYLOAD + "tag",
                  PAYLOAD + "tag reason", PAYLOAD + "reject reason"):
        _shows_escaped(text, shown)


def test_a_payload_in_headers_reasons_tags_and_night_names_is_escaped_in_the_desk(hostile):
    from urllib.parse import quote

    catalog, _, web = hostile
    night = catalog.night_names()[0]
    home = web.get("/")
    assert home.status_code == 200
    _shows_escaped(home.text, PAYLOAD + "night")
    link = f"/night/{quote(night, safe='')}"
    table = web.get(link)
    assert table.status_code == 200
    for text in (PAYLOAD + "night", PAYLOAD + "object", "reject: " + PAYLOAD + "reject reason"):
        _shows_escaped(table.text, text)
    grid = web.get(link + "?view=grid").text
    _shows_escaped(grid, ("reject: " + PAYLOAD + "reject reason")[:60])
    # A tag name typed into the filter comes back in the form, as text; the tagged frame is listed.
    tagged = web.get(link, params={"tag": PAYLOAD + "tag"})
    assert tagged.status_code == 200 and "?frame=" in tagged.text
    _shows_escaped(tagged.text, PAYLOAD + "tag")
    plots = web.get(link + "?view=plots").text
    _shows_escaped(plots, PAYLOAD + "reject reason")
    review = web.get(f"/review/{quote(night, safe='')}/V")
    assert review.status_code == 200
    data = re.search(r"<script id='review-data' type='application/json'>(.*?)</script>", review.text, re.S).group(1)
    assert "<" not in data and PAYLOAD + "night" in __import__("json").loads(data)["night"]
    assert PAYLOAD not in review.text


def test_a_reviewer_name_with_markup_is_shown_as_text(hostile):
    _, _, web = hostile
    csrf = re.search(r"name='csrf' content='([^']+)'", web.get("/").text).group(1)
    assert web.post("/reviewer", json={"name": PAYLOAD}, headers={"X-CSRF-Token": csrf}).status_code == 200
    page = web.get("/").text
    _shows_escaped(page, PAYLOAD)
    web.cookies.clear()


def test_report_and_desk_draw_each_status_in_the_palettes_colour(hostile):
    from obsdb.present.palette import STATUS_COLOURS

    catalog, report, web = hostile
    night = catalog.night_names()[0]
    statuses = {r["label"]: r["status"] for r in catalog.frame_dicts()}
    assert set(statuses.values()) == {"accepted", "rejected", "pending"}
    from urllib.parse import quote

    pages = {"report": report.index_path.read_text(encoding="utf-8"),
             "desk": web.get(f"/night/{quote(night, safe='')}?view=plots").text}
    for name, page in pages.items():
        figure = re.search(r"<figure class='plot' id='quality-V'>(.*?)</figure>", page, re.S).group(1)
        points = re.findall(r"<circle [^>]*fill='([^']+)' stroke='([^']+)'[^>]*><title>[^<]*?· (accepted|rejected|pending)", figure)
        assert points, name
        for fill, stroke, status in points:
            assert stroke == STATUS_COLOURS[status], (name, status, stroke)
            assert fill == ("none" if status == "pending" else STATUS_COLOURS[status]), (name, status, fill)
        assert {status for *_, status in points} == {"accepted", "rejected", "pending"}
        # The stylesheets' status colours are the palette's too (CSS variables written by the page).
        for status, colour in STATUS_COLOURS.items():
            assert f"--{status}: {colour};" in page, (name, status)


def test_the_stylesheets_name_no_status_colour_of_their_own():
    from obsdb.present.palette import STATUS_COLOURS

    static = ROOT / "obsdb" / "present" / "static"
    for sheet in static.glob("*.css"):
        text = sheet.read_text(encoding="utf-8").lower()
        for colour in STATUS_COLOURS.values():
            assert colour not in text, f"{sheet.name} hard-codes {colour}: use the palette's CSS variable"


def test_stylesheets_and_script_are_inlined_as_they_are(hostile):
    _, report, web = hostile
    desk = web.get("/").text
    assert 'document.querySelector("meta[name=csrf]")' in desk
    assert '"Segoe UI"' in report.index_path.read_text(encoding="utf-8")


def test_every_template_and_static_file_ships_with_the_package():
    """A regular (non-editable) install carries only what pyproject's package-data names."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert {"obsdb.present", "obsdb.report", "obsdb.web"} <= set(config["packages"])
    package = ROOT / "obsdb" / "present"
    shipped = {p for pattern in config["package-data"]["obsdb.present"] for p in package.glob(pattern)}
    files = {p for p in package.rglob("*") if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts}
    assert files and files <= shipped, sorted(str(p.relative_to(package)) for p in files - shipped)
    assert "jinja2" in " ".join(config and tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
                                ["dependencies"])


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_desk_imports_nothing_from_the_pipeline_and_nobody_escapes_by_hand():
    for path in sorted((ROOT / "obsdb" / "web").glob("*.py")):
        assert not {m for m in _imports(path) if m.startswith("obsdb.pipeline")}, path.name
    for folder in ("web", "report", "present"):
        for path in sorted((ROOT / "obsdb" / folder).glob("*.py")):
            text = path.read_text(encoding="utf-8")
            assert "html.escape" not in text and "def _e(" not in text, path
