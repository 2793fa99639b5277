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
def night(tmp_path_factory):
    """A simulated night through ingest, qa and align, in a catalog file `obsdb serve` opens."""
    from obsdb import Catalog
    from obsdb.simulate import simulate_night

    root = tmp_path_factory.mktemp("desk")
    simulate_night(root / "night", seed=11, n_frames=8, size=256, bands=("V", "R"), n_groups=1,
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
        page.keyboard.press("b")
        assert "BLINK" not in page.locator("#caption").text_content()
        page.keyboard.press("a")                       # accept the first, move on
        facts_say("accepted by ada")
        page.keyboard.press("6")                       # reject the second in the reviewer's words
        facts_say("rejected by ada")
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
