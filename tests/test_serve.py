"""The review desk (`obsdb serve`) over a simulated night, through Starlette's test client."""

from __future__ import annotations

import re

import pytest

from obsdb import Catalog
from obsdb.simulate import simulate_night

pytest.importorskip("starlette", reason="pip install 'obsdb[web]' for the review desk")
pytest.importorskip("httpx", reason="the test client needs httpx")

SMALL = dict(size=160, bands=("V", "R"), n_groups=1, cloud_fraction=0, trail_fraction=0, defocus_fraction=0)


@pytest.fixture()
def desk(tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette suggests httpx2 over httpx; both work
        from starlette.testclient import TestClient

    from obsdb.web.app import create_app

    simulate_night(tmp_path / "night", seed=101, n_frames=6, **SMALL)
    catalog = Catalog.open(tmp_path / "c.sqlite", create=True)
    catalog.ingest([tmp_path / "night"])
    catalog.qa()

    def client(**options):
        return TestClient(create_app(catalog, cache_dir=tmp_path / "cache", author="ada", **options))

    yield catalog, client, tmp_path
    catalog.close()


def _csrf(page: str) -> str:
    return re.search(r"name='csrf' content='([^']+)'", page).group(1)


def test_a_review_writes_verdicts_the_catalog_shows_with_their_author(desk):
    catalog, client, _ = desk
    web = client()
    night = catalog.nights()[0]["night"]
    assert night in web.get("/").text
    listing = web.get(f"/night/{night}?sort=fwhm")
    assert listing.status_code == 200 and "review V" in listing.text
    review = web.get(f"/review/{night}/V")
    assert review.status_code == 200
    csrf = _csrf(review.text)
    ids = [int(i) for i in re.findall(r'"id": (\d+)', review.text)]
    assert len(ids) >= 2
    image = web.get(f"/frame/{ids[0]}.png")
    assert image.status_code == 200 and image.content[:8] == b"\x89PNG\r\n\x1a\n"
    headers = {"X-CSRF-Token": csrf}
    assert web.post("/verdict", json={"frame_id": ids[0], "action": "accept"}, headers=headers).status_code == 200
    rejected = web.post("/verdict", json={"frame_id": ids[1], "action": "reject", "tag": "tracking-slight",
                                          "reason": "doubled stars"}, headers=headers)
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    [record] = catalog.frame_dicts(frame_ids=[ids[1]])
    tag = next(t for t in record["tags"] if t["name"] == "tracking-slight")
    assert tag["author"] == "ada" and tag["reason"] == "doubled stars" and tag["source"] == "manual"
    assert any(e["command"] == "tag" and e["author"] == "ada" for e in catalog.log())
    # Undo retracts: the history keeps it.
    undone = web.post("/verdict", json={"frame_id": ids[1], "action": "undo", "tag": "tracking-slight"},
                      headers=headers)
    assert undone.status_code == 200 and undone.json()["status"] != "rejected"
    [shown] = catalog.show(record["path"])
    assert any(t["name"] == "tracking-slight" and t["retracted_at"] for t in shown["tag_history"])


def test_the_desk_refuses_what_it_must(desk):
    catalog, client, _ = desk
    web = client()
    night = catalog.nights()[0]["night"]
    frame = catalog.frame_dicts()[0]["id"]
    assert web.post("/verdict", json={"frame_id": frame, "action": "accept"}).status_code == 403   # no CSRF
    for path in ("/frame/../../etc/passwd.png", "/../c.sqlite", "/night/..%2F..%2Fetc", "/frame/999999.png",
                 "/frame/1.png?stretch=../../x"):
        assert web.get(path).status_code == 404, path
    locked = client(read_only=True)
    csrf = _csrf(locked.get(f"/review/{night}/V").text)
    refused = locked.post("/verdict", json={"frame_id": frame, "action": "accept"}, headers={"X-CSRF-Token": csrf})
    assert refused.status_code == 403 and "read-only" in refused.json()["error"]
    guarded = client(token="s3cret")
    assert guarded.get("/").status_code == 403
    assert guarded.get("/?token=s3cret").status_code == 200
    assert guarded.get("/").status_code == 200             # the cookie now carries it


def test_serve_says_when_the_port_is_taken(tmp_path):
    import socket

    from typer.testing import CliRunner

    from obsdb.cli.app import app

    db = str(tmp_path / "c.sqlite")
    runner = CliRunner()
    assert runner.invoke(app, ["--db", db, "init"]).exit_code == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["--db", db, "serve", "--port", str(port)])
    assert result.exit_code == 1 and f"--port {port}: cannot listen there" in result.output, result.output
