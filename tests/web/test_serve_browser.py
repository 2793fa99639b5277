"""The review desk in a real browser: `obsdb serve` as a user starts it, reviewed with the keyboard.

Headless Debian Chromium driven by Playwright (see ``tests/conftest.py::browser``); slow-marked, run
by ``.ci/run`` with ``OBSDB_REQUIRE_BROWSER=1`` so a missing browser fails there instead of skipping.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


REASON = "satellite trail across the field"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(db: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """``obsdb --db DB serve ARGS`` in a child process; its printed address once it answers."""
    port = _free_port()
    child = subprocess.Popen([sys.executable, "-m", "obsdb.cli.app", "--db", str(db), "serve", "--port", str(port), *args],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env={**os.environ, "COLUMNS": "200"})
    line = child.stdout.readline()
    match = re.search(r"review desk at (\S+)", line)
    assert match, f"obsdb serve printed {line!r}"
    deadline = time.time() + 30
    while time.time() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return child, match.group(1)
        assert child.poll() is None, child.stdout.read()
        time.sleep(0.1)
    child.kill()
    raise AssertionError("obsdb serve did not start listening in 30 s")


def _stop(child: subprocess.Popen) -> None:
    child.terminate()
    try:
        child.wait(10)
    except subprocess.TimeoutExpired:
        child.kill()


@pytest.fixture(scope="module")
def night(tmp_path_factory, simulated_nights):
    """A simulated night through ingest, qa and align, in a catalog file `obsdb serve` opens."""
    from obsdb import Catalog

    root = tmp_path_factory.mktemp("desk")
    simulated_nights.copy(root / "night", seed=11, n_frames=8, size=256, bands=("V", "R"), n_groups=1,
                          cloud_fraction=0.0, trail_fraction=0.0, defocus_fraction=0.0)
    db = root / "obsdb.sqlite"
    catalog = Catalog.open(db, create=True)
    catalog.ingest([root / "night"])
    catalog.qa()
    catalog.align()
    name = catalog.night_names()[0]
    catalog.close()
    return db, name


@pytest.fixture(scope="module")
def desk(night):
    db, _ = night
    child, address = _start(db, "--author", "ada")
    yield address.rstrip("/")
    _stop(child)


def _raw_status(address: str, path: str) -> int:
    """The status of a GET of ``path`` exactly as written, dots and all."""
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(address)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def _cli_json(db: Path, *args: str):
    result = subprocess.run([sys.executable, "-m", "obsdb.cli.app", "--db", str(db), *args, "--format", "json"],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def test_three_frames_reviewed_with_the_keyboard_are_in_the_catalog(browser, night, desk):
    from obsdb import Catalog

    db, name = night
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("dialog", lambda dialog: dialog.accept(REASON))
    try:
        page.goto(f"{desk}/review/{name}/V")
        page.wait_for_function("document.getElementById('frame').complete && "
                               "document.getElementById('frame').naturalWidth > 0")
        data = json.loads(page.locator("#review-data").text_content())
        first, second, third = (f["id"] for f in data["frames"][:3])

        def facts_say(text):
            page.wait_for_function("t => document.getElementById('message').textContent.includes(t)", arg=text)

        # The reference is a key away, and back.
        page.keyboard.press("b")
        assert "BLINK" in page.locator("#caption").text_content()
        reference = data["frames"][0]["reference"]
        assert page.locator("#frame").get_attribute("src").startswith(f"/frame/{reference}.png")
        page.keyboard.press("b")                       # the frame on the reference's grid
        assert "BLINK" not in page.locator("#caption").text_content()
        page.keyboard.press("Escape")
        page.keyboard.press("a")                       # accept the first, move on
        facts_say("accept by ada")
        page.keyboard.press("6")                       # reject the second in the reviewer's words
        facts_say("reject by ada")
        page.keyboard.press("2")                       # tracking-big on the third...
        facts_say("tracking-big by ada")
        page.keyboard.press("u")                       # ...and undo it
        facts_say("tracking-big undone by ada")
        assert page.locator("#frame").get_attribute("src").startswith(f"/frame/{third}.png")
        page.wait_for_function("document.getElementById('stars').complete")
        assert page.evaluate("document.getElementById('stars').naturalWidth") > 0
    finally:
        page.close()

    catalog = Catalog.open(db)
    try:
        by_id = {r["id"]: r for r in catalog.frame_dicts(frame_ids=[first, second, third])}
        [accepted] = [t for t in by_id[first]["tags"] if t["name"] == "accept"]
        assert accepted["author"] == "ada" and by_id[first]["status"] == "accepted"
        [rejected] = [t for t in by_id[second]["tags"] if t["name"] == "reject"]
        assert rejected["author"] == "ada" and rejected["reason"] == REASON and by_id[second]["status"] == "rejected"
        assert not any(t["name"] == "tracking-big" for t in by_id[third]["tags"])
        [history] = catalog.show(by_id[third]["path"])
        [undone] = [t for t in history["tag_history"] if t["name"] == "tracking-big"]
        assert undone["author"] == "ada" and undone["retracted_by"] == "ada"
    finally:
        catalog.close()
    # What the CLI shows at once.
    listed = _cli_json(db, "rejected", "--night", name)
    row = next(r for r in listed if r["id"] == second)
    assert any(REASON in reason for reason in row["reasons"]), row
    events = _cli_json(db, "log", "--night", name)
    assert sum(1 for e in events if e["command"] in ("tag", "untag") and e["author"] == "ada") >= 4


def test_the_desk_refuses_requests_it_must_refuse(browser, night, desk):
    db, name = night
    page = browser.new_page()
    try:
        page.goto(f"{desk}/")
        frame = json.loads(json.dumps(_cli_json(db, "frames", "--night", name)))[0]["id"]
        status = page.evaluate("""async (id) => (await fetch('/verdict', {method: 'POST',
            headers: {'Content-Type': 'application/json'}, body: JSON.stringify({frame_id: id, action: 'accept'})}))
            .status""", frame)
        assert status == 403                                   # no CSRF token
        # Sent as written (a browser would resolve the dots before sending them).
        for path in ("/../obsdb.sqlite", "/frame/../../etc/passwd", "/static/../app.py", "/static/..%2Fapp.py",
                     f"/night/{name}/../../..", "/frame/1.png/../../../obsdb.sqlite", "/static/%2e%2e/app.py",
                     f"/review/{name}/..%2F..%2F"):
            assert _raw_status(desk, path) == 404, path
    finally:
        page.close()
    child, address = _start(db, "--host", "0.0.0.0", "--read-only")
    try:
        local = re.sub(r"//[^/:]+:", "//127.0.0.1:", address)
        assert "?token=" in local
        page = browser.new_page()
        try:
            assert page.request.get(local.split("?")[0]).status == 403          # no token
            assert page.request.get(local.split("?")[0] + "?token=wrong").status == 403
            page.goto(local)
            assert "read-only" in page.content()
            assert page.request.get(local.split("?")[0] + "archive").status == 200   # the cookie carries it
        finally:
            page.close()
    finally:
        _stop(child)


def _wait_picture(page):
    page.wait_for_function("document.getElementById('frame').complete && "
                           "document.getElementById('frame').naturalWidth > 0")


def _open_review(browser, address: str, url: str, **viewport):
    page = browser.new_page(viewport=viewport or {"width": 1400, "height": 1000})
    page.goto(address + url)
    _wait_picture(page)
    return page, json.loads(page.locator("#review-data").text_content())


def test_accept_then_reject_then_accept_shows_the_catalogs_status_each_time(browser, night, desk):
    """The issue's keyboard sequence on one frame: what the desk shows is what the catalog says, and a
    reviewer's latest verdict wins (accepted, rejected, accepted)."""
    from obsdb import Catalog

    db, name = night
    catalog = Catalog.open(db)
    try:
        frame = next(r for r in catalog.frame_dicts(night=name, band="=R", light_only=True)
                     if not r["tags"] and r["status"] == "accepted")
    finally:
        catalog.close()
    page, _ = _open_review(browser, desk, f"/review/{name}/R?frame={frame['id']}")
    shown, stored, messages = [], [], []
    try:
        for key in ("a", "r", "a"):
            page.keyboard.press(key)
            page.wait_for_function("n => document.getElementById('message').dataset.count === String(n)",
                                   arg=len(shown) + 1)
            message = page.locator("#message")
            assert message.get_attribute("data-frame") == str(frame["id"])
            shown.append(message.get_attribute("data-status"))
            messages.append(message.text_content())
            page.keyboard.press("ArrowLeft")            # back to the frame: its panel shows the same status
            page.wait_for_function("id => document.getElementById('desk').dataset.shown === String(id)",
                                   arg=frame["id"])
            assert page.locator("#facts .status").text_content().split(" ")[0] == shown[-1]
            catalog = Catalog.open(db)
            try:
                stored.append(catalog.frame_dicts(frame_ids=[frame["id"]])[0]["status"])
            finally:
                catalog.close()
    finally:
        page.close()
    assert shown == stored, (shown, stored, messages)
    for before, after, text in zip(["accepted", *stored], stored, messages):
        assert ("status unchanged" in text) == (before == after), text
    assert stored == ["accepted", "rejected", "accepted"], messages


def test_blink_shows_the_reference_and_the_frame_on_its_grid(browser, night, desk):
    _, name = night
    page, data = _open_review(browser, desk, f"/review/{name}/R")
    try:
        index = next(i for i, f in enumerate(data["frames"]) if f["aligned"] and f["id"] != f["reference"])
        frame = data["frames"][index]
        for _ in range(index):
            page.keyboard.press("ArrowRight")
        page.keyboard.press("b")
        _wait_picture(page)
        assert page.locator("#frame").get_attribute("src") == f"/frame/{frame['reference']}.png"
        reference = data["references"][str(frame["reference"])]
        assert f"reference {reference['label']}" in page.locator("#caption").text_content()
        ref_size = page.evaluate("[document.getElementById('frame').naturalWidth, "
                                 "document.getElementById('frame').naturalHeight]")
        page.keyboard.press("b")
        _wait_picture(page)
        assert page.locator("#frame").get_attribute("src") == f"/frame/{frame['id']}/aligned.png"
        assert "resampled onto the grid of reference" in page.locator("#caption").text_content()
        assert page.evaluate("[document.getElementById('frame').naturalWidth, "
                             "document.getElementById('frame').naturalHeight]") == ref_size
        page.keyboard.press("Escape")
        assert page.locator("#frame").get_attribute("src") == f"/frame/{frame['id']}.png"
    finally:
        page.close()


def test_next_unreviewed_and_the_one_to_one_zoom(browser, night, desk):
    _, name = night
    page, data = _open_review(browser, desk, f"/review/{name}/V")
    try:
        frames = data["frames"]
        start = next(i for i, f in enumerate(frames) if f["reviewed"]) if any(f["reviewed"] for f in frames) else 0
        for _ in range(start):
            page.keyboard.press("ArrowRight")
        page.keyboard.press("n")
        wanted = next(frames[(start + k) % len(frames)] for k in range(1, len(frames) + 1)
                      if not frames[(start + k) % len(frames)]["reviewed"])
        assert page.locator("#facts p").first.text_content().startswith(f"frame {wanted['label']} ")
        assert page.locator("#frame").get_attribute("src") == f"/frame/{wanted['id']}.png"
        # z: one screen pixel per detector pixel, centred where the cursor is (here the middle).
        box = page.locator("#frame").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.keyboard.press("z")
        _wait_picture(page)
        src = page.locator("#frame").get_attribute("src")
        assert src.startswith(f"/frame/{wanted['id']}/crop.png?"), src
        natural = page.evaluate("[document.getElementById('frame').naturalWidth, "
                                "document.getElementById('frame').naturalHeight]")
        shown = page.locator("#frame").bounding_box()
        assert natural == [round(shown["width"]), round(shown["height"])]
        ny, nx = wanted["shape"]
        assert f"x={round(nx / 2 - 0.5)}" in src or f"x={round(nx / 2 - 0.5) + 1}" in src or \
            f"x={round(nx / 2 - 0.5) - 1}" in src, src
        assert "1:1 at x" in page.locator("#caption").text_content()
        page.keyboard.press("z")
        assert page.locator("#frame").get_attribute("src") == f"/frame/{wanted['id']}.png"
    finally:
        page.close()


# Every caption's box and its text against every element that is neither inside it nor around it.
_OVERLAPS = """(selector) => {
  const found = [];
  const all = [...document.querySelectorAll('body *')].filter(e => {
    const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden';
  });
  for (const caption of document.querySelectorAll(selector)) {
    const range = document.createRange(); range.selectNodeContents(caption);
    const boxes = [caption.getBoundingClientRect(), ...range.getClientRects()];
    if (caption.scrollWidth > caption.clientWidth + 1) found.push([caption.textContent.slice(0, 40), 'overflows its box']);
    for (const other of all) {
      if (other === caption || other.contains(caption) || caption.contains(other)) continue;
      const o = other.getBoundingClientRect();
      for (const b of boxes) {
        const w = Math.min(b.right, o.right) - Math.max(b.left, o.left);
        const h = Math.min(b.bottom, o.bottom) - Math.max(b.top, o.top);
        if (w > 0.5 && h > 0.5) { found.push([caption.textContent.slice(0, 40), other.tagName + '#' + other.id + '.' + other.className]); break; }
      }
    }
  }
  return found;
}"""


@pytest.fixture(scope="module")
def long_night(tmp_path_factory, simulated_nights):
    """A small night with a very long file name (no number: the label is the name) and a long reason."""
    from obsdb import Catalog

    root = tmp_path_factory.mktemp("long")
    simulated_nights.copy(root / "night", seed=5, n_frames=6, size=128, bands=("V",), n_groups=1,
                          cloud_fraction=0.0, trail_fraction=0.0, defocus_fraction=0.0)
    first = sorted((root / "night").rglob("*.fits"))[0]
    long_name = first.with_name("Orion_nebula_mosaic_panel_north_east_through_thin_cirrus_and_moonlight_"
                                "taken_with_the_small_refractor_and_the_cooled_camera.fits")
    first.rename(long_name)
    db = root / "obsdb.sqlite"
    catalog = Catalog.open(db, create=True)
    catalog.ingest([root / "night"])
    catalog.qa()
    catalog.tag(str(long_name), "reject", author="ada",
                reason="Satellite_trail_crossing_the_whole_field_from_the_north_east_corner_to_the_south_west "
                       "and a second fainter one parallel to it near the top edge")
    name = catalog.night_names()[0]
    catalog.close()
    return db, name


@pytest.mark.parametrize("width", [800, 1280, 1920])
def test_captions_never_overlap_at_any_width(browser, long_night, width):
    db, name = long_night
    child, address = _start(db, "--author", "ada")
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        page.goto(address.rstrip("/") + f"/night/{name}?view=grid")
        page.wait_for_function("[...document.querySelectorAll('.grid img')].every(i => i.complete)")
        assert page.locator(".grid figcaption").count() == 6
        assert page.evaluate(_OVERLAPS, ".grid figcaption") == []
        data = json.loads(json.dumps(_cli_json(db, "frames", "--night", name)))
        long_id = next(r["id"] for r in data if r["file_name"].startswith("Orion"))
        page.goto(address.rstrip("/") + f"/review/{name}/V?frame={long_id}")
        _wait_picture(page)
        assert page.locator("#caption").text_content().startswith("Orion_nebula")
        assert page.evaluate(_OVERLAPS, "#caption") == []
        page.keyboard.press("b")                        # the blink's captions are long too
        page.keyboard.press("b")
        assert page.evaluate(_OVERLAPS, "#caption") == []
    finally:
        page.close()
        _stop(child)
