"""The review desk (`obsdb serve`) over a simulated night, through Starlette's test client."""

from __future__ import annotations

import re

import pytest

from obsdb import Catalog


SMALL = dict(size=160, bands=("V", "R"), n_groups=1, cloud_fraction=0, trail_fraction=0, defocus_fraction=0)


@pytest.fixture()
def desk(tmp_path, copy_night):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette suggests httpx2 over httpx; both work
        from starlette.testclient import TestClient

    from obsdb.web.app import create_app

    copy_night(tmp_path / "night", seed=101, n_frames=6, **SMALL)
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


@pytest.fixture(scope="module")
def aligned_desk(tmp_path_factory, simulated_nights):
    """A night of two bands through ingest, qa and align, with one frame made cloudy by the simulation."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from obsdb.web.app import create_app

    root = tmp_path_factory.mktemp("aligned")
    simulated_nights.copy(root / "night", seed=7, n_frames=8, size=256, bands=("V", "R"), n_groups=1,
                          cloud_fraction=0.25, trail_fraction=0.0, defocus_fraction=0.0)
    catalog = Catalog.open(root / "c.sqlite", create=True)
    catalog.ingest([root / "night"])
    catalog.qa()
    catalog.align()
    app = create_app(catalog, cache_dir=root / "cache", author="ada")
    yield catalog, TestClient(app), app, root
    catalog.close()


def test_a_nights_table_filters_and_sorts_as_the_cli_does(aligned_desk):
    catalog, web, _, _ = aligned_desk
    night = catalog.night_names()[0]
    every = catalog.frame_dicts(night=night, light_only=True)
    page = web.get(f"/night/{night}?sort=-fwhm")
    rows = re.findall(r"<tr class='(\w+)'><td><a href='/review/[^']+\?frame=(\d+)'", page.text)
    assert len(rows) == len(every)
    fwhm = {r["id"]: r["metrics"]["fwhm"] for r in every}
    shown = [fwhm[int(i)] for _, i in rows]
    assert shown == sorted(shown, reverse=True)
    # Each filter narrows the table to what `obsdb frames` would list.
    for query, expected in (("band=R", catalog.frame_dicts(night=night, band="=R", light_only=True)),
                            ("status=rejected", catalog.frame_dicts(night=night, status="rejected", light_only=True)),
                            ("where=fwhm+%3E+0+and+band+%3D%3D+%27V%27",
                             catalog.frame_dicts(night=night, where="fwhm > 0 and band == 'V'", light_only=True))):
        table = re.search(r"<table class='list' id='frames'>(.*?)</table>", web.get(f"/night/{night}?{query}").text)
        listed = re.findall(r"\?frame=(\d+)'>", table.group(1))
        assert sorted(map(int, listed)) == sorted(r["id"] for r in expected), query
    assert 0 < len(catalog.frame_dicts(night=night, band="=R", light_only=True)) < len(every)
    bad = web.get(f"/night/{night}?where=fwhm+%3E")
    assert bad.status_code == 400 and "class='error'" in bad.text and "fwhm" in bad.text


def test_a_nights_grid_and_plots_link_every_frame_to_its_review(aligned_desk):
    catalog, web, _, _ = aligned_desk
    night = catalog.night_names()[0]
    every = catalog.frame_dicts(night=night, light_only=True)
    grid = web.get(f"/night/{night}?view=grid").text
    thumbs = re.findall(r"src='/frame/(\d+)\.png\?size=thumb'", grid)
    assert "<svg" not in grid
    plots = web.get(f"/night/{night}?view=plots").text
    assert sorted(map(int, thumbs)) == sorted(r["id"] for r in every)
    thumb = web.get(f"/frame/{thumbs[0]}.png?size=thumb")
    assert thumb.status_code == 200 and thumb.content[:4] == b"\x89PNG"
    # The quality plot: five panels per band, one linked point per frame and panel, the QA limits drawn.
    for band in ("V", "R"):
        figure = re.search(rf"<figure class='plot' id='quality-{band}'>(.*?)</figure>", plots, re.S).group(1)
        members = [r for r in every if r["band"] == band]
        points = re.findall(r"<a href='/review/[^/]+/(\w+)\?frame=(\d+)'><circle", figure)
        assert {b for b, _ in points} == {band}
        assert len(points) == 5 * len(members)
        assert "trail-elongation 1.6" in figure and "cloud-transparency 0.5" in figure
        rejected = [r for r in members if r["status"] == "rejected"]
        assert figure.count("fill='#c62828'") == 5 * len(rejected)
    track = re.search(r"<figure class='plot' id='shifts'>(.*?)</figure>", plots, re.S).group(1)
    assert len(re.findall(r"<circle", track)) == 2 * sum(1 for r in every if r["shift"])


def test_the_archive_view_shows_each_nights_medians(aligned_desk):
    catalog, web, _, _ = aligned_desk
    import statistics

    page = web.get("/archive").text
    [row] = [r for r in catalog.archive_quality() if r["band"] == "V"]
    v_frames = [r for r in catalog.frame_dicts(band="=V", light_only=True)]
    assert row["frames"] == len(v_frames)
    assert row["median_fwhm"] == pytest.approx(statistics.median(r["metrics"]["fwhm"] for r in v_frames))
    assert row["median_background"] == pytest.approx(statistics.median(r["stats"]["background"] for r in v_frames))
    assert f"{row['median_fwhm']:.2f}" in page and "<svg" in page
    assert len(re.findall(r"<a href='/night/[^']+'><circle", page)) == 2 * len(catalog.archive_quality())


def test_the_review_offers_the_reference_the_stars_and_the_shift_history(aligned_desk):
    catalog, web, app, root = aligned_desk
    import json

    night = catalog.night_names()[0]
    before = {p for p in root.rglob("*") if "cache" not in p.parts}
    page = web.get(f"/review/{night}/V").text
    data = json.loads(re.search(r"<script id='review-data' type='application/json'>(.*?)</script>", page).group(1))
    frames = data["frames"]
    assert [f["id"] for f in frames] == [r["id"] for r in sorted(
        (r for r in catalog.frame_dicts(night=night, band="=V", light_only=True)),
        key=lambda r: (r["date_obs"], r["number"]))]
    shifted = [f for f in frames if f["shift"]]
    assert shifted and all(f["reference"] in {x["id"] for x in catalog.frame_dicts()} for f in shifted)
    assert all(isinstance(f["fwhm"], float) and len(str(f["fwhm"]).split(".")[1]) <= 2 for f in frames)
    stars = web.get(f"/frame/{shifted[0]['id']}/stars.png")
    assert stars.status_code == 200 and stars.content[:4] == b"\x89PNG"
    facts = web.get(f"/frame/{shifted[0]['id']}.json").json()
    [run] = [r for r in facts["runs"] if r["current"]]
    assert run["dx"] == pytest.approx(shifted[0]["shift"]["dx"], abs=0.01)
    assert run["steps"] and run["steps"][0]["matched"] > 0
    # The pictures of the band are drawn ahead, in the cache folder only.
    assert app.state.previews.wait(60)
    cached = {p.name for p in (root / "cache").iterdir()}
    for f in frames:
        assert any(name.startswith(f"{f['id']}-") and name.endswith("-zscale.png") for name in cached), f["id"]
    assert all(re.fullmatch(r"\d+-\d+-\d+-(zscale|asinh|thumb|stars|aligned-(zscale|asinh)-run\d+)\.png", n) for n in cached)
    assert {p for p in root.rglob("*") if "cache" not in p.parts} == before


def test_a_reviewer_names_themself_once_and_every_verdict_carries_the_name(aligned_desk):
    catalog, web, _, _ = aligned_desk
    night = catalog.night_names()[0]
    csrf = _csrf(web.get(f"/review/{night}/R").text)
    headers = {"X-CSRF-Token": csrf}
    assert web.post("/reviewer", json={"name": "Grace H."}).status_code == 403          # no CSRF token
    assert web.post("/reviewer", json={"name": "\x00bad"}, headers=headers).status_code == 400
    assert web.post("/reviewer", json={"name": "x" * 61}, headers=headers).status_code == 400
    assert web.post("/reviewer", json={"name": "  Grace   H. "}, headers=headers).json() == {"reviewer": "Grace H."}
    assert "reviewer <b id='reviewer'>Grace H.</b>" in web.get("/").text
    frame = catalog.frame_dicts(night=night, band="=R", light_only=True)[0]
    answer = web.post("/verdict", json={"frame_id": frame["id"], "action": "reject", "tag": "focus-slight"},
                      headers=headers)
    assert answer.status_code == 200 and answer.json()["author"] == "Grace H."
    [tag] = [t for t in catalog.frame_dicts(frame_ids=[frame["id"]])[0]["tags"] if t["name"] == "focus-slight"]
    assert tag["author"] == "Grace H." and tag["reason"] == "rejected in the review desk"
    facts = web.get(f"/frame/{frame['id']}.json").json()
    [shown] = [t for t in facts["tags"] if t["name"] == "focus-slight"]
    assert shown["active"] and shown["author"] == "Grace H." and shown["reason"] == "rejected in the review desk"
    assert any(r["id"] == frame["id"] for r in catalog.frame_dicts(status="rejected"))
    unknown = web.post("/verdict", json={"frame_id": frame["id"], "action": "reject", "tag": "great"},
                       headers=headers)
    assert unknown.status_code == 400 and "great" in unknown.json()["error"]
    web.cookies.clear()


def test_every_page_and_verdict_of_the_desk_works_on_both_backends(catalog_url, tmp_path, copy_night):
    """The desk's catalog calls (archive medians, frame files, verdicts, stored stars, run references, QA
    events) on SQLite and PostgreSQL alike."""
    import json
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from obsdb.web.app import create_app

    copy_night(tmp_path / "night", seed=23, n_frames=6, size=256, bands=("V",), n_groups=1,
               cloud_fraction=0.2, trail_fraction=0.0, defocus_fraction=0.0)
    catalog = Catalog.open(catalog_url, create=True)
    try:
        catalog.ingest([tmp_path / "night"])
        catalog.qa()
        catalog.align()
        web = TestClient(create_app(catalog, cache_dir=tmp_path / "cache", author="ada"))
        night = catalog.night_names()[0]
        for url in ("/", "/archive", f"/night/{night}", f"/night/{night}?view=grid",
                    f"/night/{night}?view=plots&where=fwhm+%3E+0"):
            assert web.get(url).status_code == 200, url
        page = web.get(f"/review/{night}/V").text
        data = json.loads(re.search(r"<script id='review-data' type='application/json'>(.*?)</script>",
                                    page).group(1))
        shifted = [f for f in data["frames"] if f["shift"]]
        assert shifted and all(f["reference"] is not None for f in shifted)
        frame = shifted[0]["id"]
        for url in (f"/frame/{frame}.png", f"/frame/{frame}/stars.png", f"/frame/{frame}.png?size=thumb",
                    f"/frame/{frame}/aligned.png", f"/frame/{frame}/crop.png?x=20&y=30&w=16&h=8&grid=reference"):
            response = web.get(url)
            assert response.status_code == 200 and response.content[:4] == b"\x89PNG", url
        answer = web.post("/verdict", json={"frame_id": frame, "action": "reject", "tag": "use-if-must",
                                            "reason": "a satellite"}, headers={"X-CSRF-Token": _csrf(page)})
        assert answer.status_code == 200 and answer.json()["status"] == "rejected"
        assert answer.json()["changed"] is True and answer.json()["reviewed"] is True
        assert str(shifted[0]["reference"]) in data["references"]
        facts = web.get(f"/frame/{frame}.json").json()
        assert [t["reason"] for t in facts["tags"] if t["name"] == "use-if-must"] == ["a satellite"]
        assert any(run["current"] for run in facts["runs"])
        [row] = catalog.archive_quality()
        assert row["frames"] == 6 and row["rejected"] >= 1 and row["median_fwhm"] > 0
    finally:
        catalog.close()


def _review_data(web, url: str) -> dict:
    import json

    page = web.get(url).text
    return json.loads(re.search(r"<script id='review-data' type='application/json'>(.*?)</script>", page).group(1))


def _png(content: bytes):
    import io

    import numpy as np
    from PIL import Image

    assert content[:4] == b"\x89PNG"
    return np.asarray(Image.open(io.BytesIO(content)).convert("L"), dtype=float)


def _offset(picture, reference) -> tuple[int, int]:
    """The whole-pixel (dx, dy) that best lays ``picture`` on ``reference`` (circular cross-correlation of
    their stars: hot pixels, gradients and the frames' edges left out, which would pin the peak at 0)."""
    import numpy as np
    from scipy import ndimage

    def stars(image):
        smooth = ndimage.median_filter(image, 3)
        found = np.clip(smooth - ndimage.gaussian_filter(smooth, 8), 0, None)[24:-24, 24:-24]
        return found - found.mean()

    a, b = stars(picture), stars(reference)
    peak = np.unravel_index(np.argmax(np.fft.ifft2(np.fft.fft2(b) * np.conj(np.fft.fft2(a))).real), a.shape)
    dy, dx = ((p + n // 2) % n - n // 2 for p, n in zip(peak, a.shape))
    return int(dx), int(-dy)                       # rows of the PNG go down; y goes up


def test_blink_shows_the_frame_on_its_references_grid_whatever_band_and_filter(aligned_desk):
    catalog, web, _, _ = aligned_desk
    night = catalog.night_names()[0]
    data = _review_data(web, f"/review/{night}/R")
    shifted = [f for f in data["frames"] if f["aligned"] and f["id"] != f["reference"]]
    assert shifted
    frame = max(shifted, key=lambda f: abs(f["shift"]["dx"]) + abs(f["shift"]["dy"]))
    reference = data["references"][str(frame["reference"])]
    [ref_record] = catalog.frame_dicts(frame_ids=[frame["reference"]])
    assert reference["label"] == ref_record["label"] and reference["band"] == ref_record["band"]
    own, ref = _png(web.get(f"/frame/{frame['id']}.png").content), _png(web.get(f"/frame/{frame['reference']}.png").content)
    aligned = web.get(f"/frame/{frame['id']}/aligned.png")
    assert aligned.status_code == 200
    on_grid = _png(aligned.content)
    assert on_grid.shape == ref.shape
    # On the reference's grid the stars coincide; the frame's own pixels are off by its shift.
    assert _offset(on_grid, ref) == (0, 0)
    dx, dy = frame["shift"]["dx"], frame["shift"]["dy"]
    assert abs(dx) + abs(dy) >= 2, "the simulation must shift a frame for this test to mean something"
    got = _offset(own, ref)
    assert abs(got[0] - dx) <= 1 and abs(got[1] - dy) <= 1, (got, dx, dy)
    # A list filtered down to frames the reference is not among still names the reference by id.
    rejected = _review_data(web, f"/review/{night}/R?status=rejected") if any(
        f["status"] == "rejected" for f in data["frames"]) else None
    if rejected:
        ids = {f["id"] for f in rejected["frames"]}
        for f in rejected["frames"]:
            if f["reference"] is not None:
                assert str(f["reference"]) in rejected["references"]
                assert f["reference"] not in ids or f["reference"] == f["id"]


def test_a_frame_without_a_transform_is_blinked_unaligned_and_said_so(aligned_desk):
    catalog, web, _, _ = aligned_desk
    night = catalog.night_names()[0]
    frames = _review_data(web, f"/review/{night}/V")["frames"] + _review_data(web, f"/review/{night}/R")["frames"]
    unaligned = [f for f in frames if not f["aligned"]]
    assert unaligned, "the simulation's cloudy frames are not aligned"
    for f in unaligned:
        # Still a reference to blink against: the night's newest run's.
        assert f["reference"] is not None and f["shift"] is None
        answer = web.get(f"/frame/{f['id']}/aligned.png")
        assert answer.status_code == 404 and "no verified transform" in answer.text
        assert web.get(f"/frame/{f['id']}/crop.png?x=10&y=10&grid=reference").status_code == 404


def test_a_one_to_one_crop_is_served_at_the_size_asked(aligned_desk):
    catalog, web, _, _ = aligned_desk
    import numpy as np

    from obsdb.imaging.fitsio import read_fits_image

    night = catalog.night_names()[0]
    frame = next(f for f in _review_data(web, f"/review/{night}/V")["frames"] if f["aligned"])
    crop = web.get(f"/frame/{frame['id']}/crop.png?x=128&y=100&w=64&h=40")
    assert crop.status_code == 200
    picture = _png(crop.content)
    assert picture.shape == (40, 64)
    # The brightest pixel of the file in that window is the brightest of the crop (row 0 at the bottom).
    [record] = catalog.frame_dicts(frame_ids=[frame["id"]])
    window = read_fits_image(record["path"], hash_mode="none").data[80:120, 96:160]
    assert picture[::-1][np.unravel_index(np.argmax(window), window.shape)] == picture.max()
    on_grid = web.get(f"/frame/{frame['id']}/crop.png?x=128&y=100&w=64&h=40&grid=reference&stretch=asinh")
    assert on_grid.status_code == 200 and _png(on_grid.content).shape == (40, 64)
    for bad in ("x=1", "x=a&y=1", "x=1&y=1&w=0", "x=1&y=1&w=5000", "x=1&y=1&grid=sky", "x=nan&y=1", "x=inf&y=1"):
        assert web.get(f"/frame/{frame['id']}/crop.png?{bad}").status_code == 400, bad
    assert web.get("/frame/999999/crop.png?x=1&y=1").status_code == 404


def test_each_verdict_answers_with_the_status_the_catalog_computes_and_whether_it_changed(aligned_desk):
    catalog, web, _, _ = aligned_desk
    night = catalog.night_names()[0]
    data = _review_data(web, f"/review/{night}/V")
    headers = {"X-CSRF-Token": _csrf(web.get(f"/review/{night}/V").text)}
    frame = next(f for f in data["frames"] if not f["reviewed"] and f["status"] == "accepted")

    def status_in_catalog():
        return catalog.frame_dicts(frame_ids=[frame["id"]])[0]["status"]

    accepted = web.post("/verdict", json={"frame_id": frame["id"], "action": "accept"}, headers=headers).json()
    assert accepted["status"] == status_in_catalog() == "accepted"
    assert accepted["changed"] is False and accepted["previous"] == "accepted" and accepted["reviewed"] is True
    assert "accept" in accepted["chain"]
    after = {f["id"]: f for f in _review_data(web, f"/review/{night}/V")["frames"]}
    assert after[frame["id"]]["reviewed"] is True
    undone = web.post("/verdict", json={"frame_id": frame["id"], "action": "undo", "tag": "accept"},
                      headers=headers).json()
    assert undone["status"] == status_in_catalog() and undone["reviewed"] is False
    rejected = web.post("/verdict", json={"frame_id": frame["id"], "action": "reject", "tag": "reject"},
                        headers=headers).json()
    assert rejected["status"] == status_in_catalog() == "rejected" and rejected["changed"] is True
    assert rejected["previous"] == "accepted"
    web.post("/verdict", json={"frame_id": frame["id"], "action": "undo", "tag": "reject"}, headers=headers)


def test_blink_lays_a_real_dithered_frame_on_its_reference(real_data, tmp_path):
    """Five real Seestar frames of M 94 dithered by up to 17 px: on the reference's grid each one's picture
    coincides with the reference's, where its own picture is off by the measured shift."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from obsdb.config import IngestConfig
    from obsdb.pipeline.align import align_auto
    from obsdb.web.app import create_app

    catalog = Catalog.open(tmp_path / "c.sqlite", create=True)
    try:
        catalog.ingest([real_data / "seestar_m94_crops"], config=IngestConfig(number_pattern=r"set1_(\d+)"))
        catalog.qa()
        aligned = align_auto(catalog.db, status="any", reference="212046")
        assert not aligned.failures
        web = TestClient(create_app(catalog, cache_dir=tmp_path / "cache", author="ada"))
        records = catalog.frame_dicts()
        [reference] = [r["id"] for r in records if r["number"] == 212046]
        ref = _png(web.get(f"/frame/{reference}.png").content)
        moved = 0
        for r in records:
            if r["id"] == reference:
                continue
            on_grid = _png(web.get(f"/frame/{r['id']}/aligned.png").content)
            assert _offset(on_grid, ref) == (0, 0), r["number"]
            own = _offset(_png(web.get(f"/frame/{r['id']}.png").content), ref)
            assert abs(own[0] - r["shift"]["dx"]) <= 1 and abs(own[1] - r["shift"]["dy"]) <= 1, (own, r["shift"])
            moved += own != (0, 0)
        assert moved >= 3
    finally:
        catalog.close()


def test_a_rebound_name_reaches_nothing_and_a_foreign_page_changes_nothing(desk):
    """DNS rebinding: a site whose name resolves to 127.0.0.1 sends its own Host; the desk answers only to
    its own names.  A change whose Origin is another site is refused even with the right CSRF token."""
    from starlette.testclient import TestClient

    from obsdb.web.app import create_app

    catalog, _, tmp_path = desk
    app = create_app(catalog, cache_dir=tmp_path / "cache", author="ada",
                     allowed_hosts={"127.0.0.1", "localhost", "::1"})
    own = TestClient(app, base_url="http://127.0.0.1:8765")
    rebound = TestClient(app, base_url="http://evil.example:8765")
    night = catalog.nights()[0]["night"]
    assert rebound.get("/").status_code == 403
    refused = rebound.get(f"/review/{night}/V")
    assert refused.status_code == 403 and "name='csrf'" not in refused.text
    review = own.get(f"/review/{night}/V")
    assert review.status_code == 200
    csrf = _csrf(review.text)
    frame_id = int(re.findall(r'"id": (\d+)', review.text)[0])
    before = catalog.frame_dicts(frame_ids=[frame_id])[0]["tags"]
    foreign = own.post("/verdict", json={"frame_id": frame_id, "action": "reject"},
                       headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example:8765"})
    assert foreign.status_code == 403
    assert catalog.frame_dicts(frame_ids=[frame_id])[0]["tags"] == before
    mine = own.post("/verdict", json={"frame_id": frame_id, "action": "reject"},
                    headers={"X-CSRF-Token": csrf, "Origin": "http://127.0.0.1:8765"})
    assert mine.status_code == 200 and mine.json()["status"] == "rejected"
    assert TestClient(app, base_url="http://[::1]:8765").get("/").status_code == 200


def test_malformed_requests_get_a_4xx_and_one_line_never_a_500(desk):
    """The five requests that crashed the desk: a reviewer outside Latin-1, a 20-digit frame id, frame_id
    1e999, a non-ASCII CSRF header, a non-ASCII token; and a 30 MiB reason is refused, storing nothing."""
    catalog, client, _ = desk
    web = client()
    night = catalog.nights()[0]["night"]
    csrf = _csrf(web.get(f"/review/{night}/V").text)
    headers = {"X-CSRF-Token": csrf}
    renamed = web.post("/reviewer", json={"name": "Łukasz Dvořák"}, headers=headers)
    assert renamed.status_code == 200
    assert "Łukasz Dvořák" in web.get(f"/review/{night}/V").text
    assert web.get("/frame/12345678901234567890.png").status_code == 404
    assert web.get("/frame/12345678901234567890.json").status_code == 404
    big = web.post("/verdict", content=b'{"frame_id": 1e999, "action": "accept"}',
                   headers={**headers, "content-type": "application/json"})
    assert big.status_code == 400 and "frame_id" in big.json()["error"]
    huge = web.post("/verdict", json={"frame_id": 10**20, "action": "accept"}, headers=headers)
    assert huge.status_code == 404
    foreign = web.post("/verdict", json={"frame_id": 1, "action": "accept"},
                       headers={"X-CSRF-Token": "ü".encode() * 10})
    assert foreign.status_code == 403
    frame_id = catalog.frames()[0].id
    before = catalog.frame_verdicts(frame_id)["tag_history"]
    essay = web.post("/verdict", json={"frame_id": frame_id, "action": "reject", "reason": "x" * (30 << 20)},
                     headers=headers)
    assert essay.status_code == 413
    long_reason = web.post("/verdict", json={"frame_id": frame_id, "action": "reject", "reason": "x" * 5000},
                           headers=headers)
    assert long_reason.status_code == 409 and "at most 2,000 characters" in long_reason.json()["error"]
    assert catalog.frame_verdicts(frame_id)["tag_history"] == before
    tokened = client(token="s3cret")
    assert tokened.get("/?token=é").status_code == 403


def test_every_night_and_band_name_is_reachable_by_its_link(tmp_path):
    """Night "M31 #2" (an undated folder's name), a night with "/", a band "Ha/OIII": each page opens
    from the link the desk itself prints."""
    import numpy as np
    from astropy.io import fits
    from starlette.testclient import TestClient

    from obsdb.web.app import create_app

    folder = tmp_path / "M31 #2"
    folder.mkdir()
    for i in range(2):
        fits.writeto(folder / f"m31_{1001 + i}.fits", np.full((24, 24), 100.0 + i, "f4"),
                     fits.Header({"IMAGETYP": "Light", "FILTER": "Ha/OIII"}))
    catalog = Catalog.open(tmp_path / "c.sqlite", create=True)
    catalog.ingest([folder])
    other = tmp_path / "other"
    other.mkdir()
    for i in range(2):
        fits.writeto(other / f"m33_{2001 + i}.fits", np.full((24, 24), 100.0 + i, "f4"),
                     fits.Header({"IMAGETYP": "Light", "FILTER": "V"}))
    catalog.ingest([other], night="run 3/4")
    web = TestClient(create_app(catalog, cache_dir=tmp_path / "cache", author="ada"))
    home = web.get("/").text
    for night in ("M31 #2", "run 3/4"):
        link = next(h for h in re.findall(r"href='(/night/[^']+)'", home) if web.get(h).status_code == 200
                    and f"<h1>{night}</h1>" in web.get(h).text)
        page = web.get(link)
        review = re.search(r"href='(/review/[^']+)'", page.text).group(1).replace("&amp;", "&")
        opened = web.get(review)
        assert opened.status_code == 200 and night in opened.text
    assert "Ha/OIII" in web.get(re.search(r"href='(/review/[^']+Ha[^']+)'", web.get(
        re.search(r"href='(/night/M31[^']+)'", home).group(1)).text).group(1).replace("&amp;", "&")).text
    catalog.close()


def test_a_link_planted_in_the_cache_is_never_followed(desk):
    """Anyone who could write the cache folder could plant a link under a picture's predictable name;
    the desk removes it, draws the picture anew and serves that, never the link's target.  The cache is
    private (0700)."""
    import os
    import stat

    catalog, client, tmp_path = desk
    web = client()
    secret = tmp_path / "secret.txt"
    secret.write_text("the server user's private key")
    os.chmod(secret, 0o600)
    frame_id = catalog.frames()[0].id
    first = web.get(f"/frame/{frame_id}.png")
    assert first.status_code == 200
    cache = tmp_path / "cache"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    (picture,) = [p for p in cache.iterdir() if p.name.startswith(f"{frame_id}-") and p.name.endswith("zscale.png")]
    picture.unlink()
    picture.symlink_to(secret)
    again = web.get(f"/frame/{frame_id}.png")
    assert again.status_code == 200 and again.content.startswith(b"\x89PNG")
    assert b"private key" not in again.content
    assert not picture.is_symlink() and secret.read_text() == "the server user's private key"
