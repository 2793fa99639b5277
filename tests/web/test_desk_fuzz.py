"""A property-based fuzz of the review desk's routes (`obsdb serve`), through Starlette's test client.

Hypothesis draws requests over the desk's real routes: paths with hostile segments and ids (20 digits,
negative, 0), query strings, headers (Host, Origin, cookies with the reviewer's name and the access
token, the CSRF header with non-ASCII bytes) and bodies for every POST route (``/verdict``: accept,
reject with a tag, undo; ``/reviewer``), with huge, non-Latin-1, control-character and numeric-overflow
values (``1e999``, ``NaN``, 20-digit ids) written into the JSON text itself.  Three desks over one
catalog are driven: open, guarded (token and allowed hosts) and read-only.

Properties, checked on every request and after the run:

* no response is a 5xx (a server exception fails the example with its traceback);
* every 4xx carries a one-line message (plain text, ``{"error": ...}`` or the page's error paragraph);
* no stored text exceeds the limit the code states (:data:`obsdb.catalog.tags.MAX_REASON`,
  :data:`~obsdb.catalog.tags.MAX_AUTHOR`, :data:`~obsdb.catalog.tags.MAX_TAG_NAME`), and the catalog file
  grows by no more than the acknowledged changes can hold;
* no acknowledged verdict is lost: each is in the frame's tag history with its reviewer and reason, and
  each frame's final status is the one the desk last answered for it.

The default suite runs :data:`DEFAULT_EXAMPLES` requests (a few seconds); ``-m slow`` runs
:data:`SLOW_EXAMPLES`.  The number of requests run is printed (``-s``) and recorded as the test's
``requests`` property (``--junitxml``).
"""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from obsdb import Catalog  # noqa: E402
from obsdb.catalog.tags import MAX_AUTHOR, MAX_REASON, MAX_TAG_NAME  # noqa: E402
from obsdb.simulate import simulate_night  # noqa: E402
from obsdb.text import storable  # noqa: E402
from obsdb.web.changes import MAX_BODY  # noqa: E402
from obsdb.web.reviewer import MAX_REVIEWER_NAME  # noqa: E402

DEFAULT_EXAMPLES = 200
SLOW_EXAMPLES = 2_500
HOST = "testserver"
"""The host name Starlette's test client sends; the guarded desk allows it and 127.0.0.1."""
TOKEN = "s3cret-tøken"
MAX_URL = 60_000
"""Longest path and query sent: a request line beyond 64 KiB never reaches the desk (h11 and httpx refuse it)."""


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    """One small simulated night (two bands, six 96x96 frames) through ingest, qa and align, and
    three desks over its catalog: open, guarded (token, allowed hosts) and read-only."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette suggests httpx2 over httpx; both work
        from starlette.testclient import TestClient

    from obsdb.web.app import create_app

    root = tmp_path_factory.mktemp("fuzz")
    simulate_night(root / "night", seed=404, size=96, n_frames=6, bands=("V", "R"), n_groups=1,
                   cloud_fraction=0.2, trail_fraction=0, defocus_fraction=0)
    db = root / "c.sqlite"
    catalog = Catalog.open(db, create=True)
    catalog.ingest([root / "night"])
    catalog.qa()
    catalog.align()
    apps = {"open": create_app(catalog, cache_dir=root / "cache", author="ada"),
            "guarded": create_app(catalog, cache_dir=root / "cache", author="ada", token=TOKEN,
                                  allowed_hosts={HOST, "127.0.0.1"}),
            "read-only": create_app(catalog, cache_dir=root / "cache", author="ada", read_only=True)}
    clients = {name: TestClient(app, raise_server_exceptions=True) for name, app in apps.items()}
    for client in clients.values():
        client.__enter__()
    try:
        yield catalog, clients, apps, db
    finally:
        for client in clients.values():
            client.__exit__(None, None, None)
        catalog.close()


# -- strategies ----------------------------------------------------------------------------------------

HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=300),          # any code point
    st.sampled_from(["", " ", "\x00", "\r\n", "\u202e", "ä", "Łukasz Dvořák", "星", "\ud800", "..", "../..",
                     "%2F", "%00", "%ZZ", "%C3%28", "1e999", "NaN", "-Infinity", "12345678901234567890",
                     "-1", "0", "'; DROP TABLE tag; --", "<script>alert(1)</script>", "a,b"]),
    # Each limit the code states, at the limit and one past it, and beyond the largest body the desk reads.
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "é", "\x07", "💥", "\n"]),
              st.sampled_from(sorted({n + d for n in (MAX_REASON, MAX_AUTHOR, MAX_TAG_NAME, MAX_REVIEWER_NAME)
                                      for d in (0, 1)} | {MAX_BODY + 1}))),
)

ID_TEXT = st.one_of(st.sampled_from(["0", "1", "2", "3", "7", "-1", "12345678901234567890",
                                     "9223372036854775807", "9223372036854775808", "1" * 40]),
                    st.integers(min_value=0, max_value=10**25).map(str))


def _path(frame: str, night: str, band: str, tail: str) -> st.SearchStrategy:
    return st.sampled_from([
        "/", "/archive", f"/night/{night}", f"/night/{night}", f"/review/{night}/{band}",
        f"/review/{night}/{band}", f"/review/{night}",
        f"/frame/{frame}.png", f"/frame/{frame}/stars.png", f"/frame/{frame}/aligned.png",
        f"/frame/{frame}/crop.png", f"/frame/{frame}.json", f"/{tail}", f"/night/{tail}/{tail}",
        "/verdict", "/reviewer"])


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text.encode("utf-8", "surrogatepass"), safe="")


QUERY_KEYS = ["sort", "view", "band", "status", "tag", "where", "frame", "stretch", "size", "x", "y", "w", "h",
              "grid", "token"]
QUERY_VALUES = st.one_of(HOSTILE_TEXT, ID_TEXT,
                         st.sampled_from(["fwhm", "-fwhm", "grid", "plots", "table", "V", "R", "accepted",
                                          "rejected", "cloud", "fwhm > 1", "asinh", "zscale", "thumb",
                                          "reference", "own", "48", "1e308", "inf", TOKEN]))


@st.composite
def get_requests(draw, night: str, frame_ids: list[int]):
    frame = draw(st.one_of(st.sampled_from([str(i) for i in frame_ids]), ID_TEXT))
    night_seg = draw(st.one_of(st.just(night), st.just(night), HOSTILE_TEXT.map(_quote)))
    band_seg = draw(st.one_of(st.sampled_from(["V", "R"]), st.sampled_from(["V", "R"]), HOSTILE_TEXT.map(_quote)))
    tail = draw(HOSTILE_TEXT.map(_quote))
    path = draw(_path(frame, night_seg, band_seg, tail))[:MAX_URL // 2]
    params = draw(st.lists(st.tuples(st.sampled_from(QUERY_KEYS), QUERY_VALUES), max_size=4))
    query = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in params)
    return "GET", (path + ("?" + query if query else ""))[:MAX_URL], None, False


def _json_token(draw, real: list) -> str:
    """A JSON value as text: real values, and what Python's json module would never write."""
    return draw(st.one_of(
        st.sampled_from([json.dumps(v) for v in real]),
        st.sampled_from(["1e999", "-1e999", "NaN", "Infinity", "12345678901234567890", "-5", "0", "1.5",
                         "true", "null", "[]", "{}", '"١٢"', '"3"', "9223372036854775808"]),
        HOSTILE_TEXT.map(lambda t: json.dumps(t, ensure_ascii=False).replace("\\ud800", "\ud800")),
    ))


@st.composite
def post_requests(draw, frame_ids: list[int]):
    from obsdb.web.pages import REVIEW_TAGS

    route = draw(st.sampled_from(["/verdict", "/verdict", "/verdict", "/reviewer"]))
    if route == "/verdict" and draw(st.integers(0, 3)) > 0:
        # A verdict the desk should take, mostly: a real frame, a real action, a hostile reason; now and
        # then one field left out.
        action = draw(st.sampled_from(["accept", "reject", "undo"]))
        fields = {"frame_id": json.dumps(draw(st.sampled_from(frame_ids))), "action": json.dumps(action),
                  "tag": draw(st.one_of(st.sampled_from([json.dumps(t) for t in (*REVIEW_TAGS, "accept")]),
                                        st.just(_json_token(draw, ["reject"])))),
                  "reason": draw(st.one_of(st.sampled_from(['""', '"sharp"']), st.text(max_size=30).map(json.dumps),
                                           st.just(_json_token(draw, ["doubled stars"]))))}
        if draw(st.integers(0, 3)) == 0:
            del fields[draw(st.sampled_from(sorted(fields)))]
        return "POST", route, ("{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}").encode(
            "utf-8", "surrogatepass"), True
    if route == "/verdict":
        fields = {"frame_id": _json_token(draw, frame_ids),
                  "action": _json_token(draw, ["accept", "reject", "undo", "undo", "tag"]),
                  "tag": _json_token(draw, [*REVIEW_TAGS, "accept", "cloud"]),
                  "reason": _json_token(draw, ["", "sharp", "doubled stars"])}
        chosen = draw(st.lists(st.sampled_from(list(fields)), unique=True, min_size=0, max_size=4))
        body = "{" + ", ".join(f'"{k}": {fields[k]}' for k in chosen) + "}"
    else:
        body = '{"name": ' + _json_token(draw, ["Ada", "Łukasz Dvořák", "x" * 61]) + "}"
    body = draw(st.one_of(st.just(body), st.just(body), st.just(body), HOSTILE_TEXT,
                          st.just(body[: max(1, len(body) // 2)]), st.just("[" + body + "]")))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-16", "latin-1"]))
    return "POST", route, body.encode(encoding, "surrogatepass" if encoding.startswith("utf") else "replace"), False


@st.composite
def header_sets(draw, csrf: str):
    headers: list[tuple[bytes, bytes]] = []

    def raw(text: str) -> bytes:
        # Header bytes as a browser or a script could send them: UTF-8, never a line break (httpx refuses those).
        return text.encode("utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b"")

    csrf_value = draw(st.one_of(st.just(csrf), st.just(csrf), HOSTILE_TEXT, st.just(csrf + "é")))
    if draw(st.booleans()):
        headers.append((b"x-csrf-token", raw(csrf_value)))
    if draw(st.integers(0, 3)) == 0:
        headers.append((b"host", raw(draw(st.one_of(
            st.sampled_from([HOST, "127.0.0.1:8765", "[::1]:8765", "evil.example", "[", ":", "testserver:x:y"]),
            HOSTILE_TEXT)))))
    if draw(st.integers(0, 2)) == 0:
        headers.append((b"origin", raw(draw(st.one_of(
            st.sampled_from([f"http://{HOST}", "http://evil.example", "null", "http://[::1", "://"]),
            HOSTILE_TEXT)))))
    cookies = []
    if draw(st.booleans()):
        name = draw(st.one_of(st.sampled_from(["Łukasz Dvořák", "x" * 70, "ada\x00", " "]), HOSTILE_TEXT))
        cookies.append("obsdb_reviewer=" + (_quote(name) if draw(st.booleans()) else name))
    if draw(st.booleans()):
        cookies.append("obsdb_token=" + draw(st.sampled_from([_quote(TOKEN), TOKEN, "wrong", ""])))
    if cookies:
        headers.append((b"cookie", raw("; ".join(cookies))))
    if draw(st.integers(0, 4)) == 0:
        headers.append((b"content-type", raw(draw(st.sampled_from(
            ["application/json", "application/x-www-form-urlencoded", "text/plain; charset=utf-16", "é"])))))
    return headers


# -- what every answer must be --------------------------------------------------------------------------

def _message(response) -> str:
    """The one message a refusal carries: plain text, a JSON error, or the HTML page's error paragraph."""
    kind = response.headers.get("content-type", "")
    if kind.startswith("application/json"):
        return str(response.json().get("error", ""))
    if kind.startswith("text/html"):
        found = re.search(r"<p class='error'[^>]*>(.*?)</p>", response.text, re.S)
        return found.group(1) if found else ""
    return response.text


def _check_answer(method: str, path: str, response) -> None:
    assert response.status_code < 500, (method, path, response.status_code, response.text[:300])
    if 400 <= response.status_code < 500:
        message = _message(response)
        assert message.strip(), (method, path, response.status_code, response.text[:300])
        assert "\n" not in message.strip() and "Traceback" not in message, (method, path, message[:300])


def _send(client, method: str, path: str, body: bytes | None, headers):
    import httpx

    request = client.build_request(method, path, content=body)
    # Raw header bytes: httpx would refuse non-ASCII text, a real client sends whatever it likes.
    request.headers = httpx.Headers([(k, v) for k, v in request.headers.raw
                                     if k.lower() not in {h for h, _ in headers}] + headers)
    return client.send(request)


# -- the fuzz --------------------------------------------------------------------------------------------

def _fuzz(desk, examples: int, record_property) -> None:
    catalog, clients, apps, db = desk
    night = catalog.night_names()[0]
    frame_ids = sorted(r["id"] for r in catalog.frame_dicts())
    size_before = _stored_size(db)
    acknowledged: list[dict] = []
    counts = {"requests": 0}
    statuses: dict[str, int] = {}

    @settings(max_examples=examples, deadline=None, derandomize=False, database=None,
              suppress_health_check=list(HealthCheck))
    @given(which=st.sampled_from(["open", "open", "open", "guarded", "read-only"]),
           request=st.one_of(get_requests(night, frame_ids), post_requests(frame_ids)),
           data=st.data())
    def one(which, request, data):
        method, path, body, well_formed = request
        if well_formed:
            which = data.draw(st.sampled_from(["open", "open", "open", "open", "guarded", "read-only"]))
        csrf = apps[which].state.csrf
        headers = data.draw(header_sets(csrf))
        if well_formed and data.draw(st.integers(0, 5)) > 0:
            # Most well-formed changes come from the desk's own page: its CSRF token, no foreign Host or Origin.
            headers = [(k, v) for k, v in headers if k not in (b"x-csrf-token", b"host", b"origin")]
            headers.append((b"x-csrf-token", csrf.encode()))
        if which == "guarded" and (well_formed or data.draw(st.booleans())):
            path += ("&" if "?" in path else "?") + "token=" + _quote(TOKEN)
        response = _send(clients[which], method, path, body, headers)
        route = path.split("?")[0]
        counts["requests"] += 1
        statuses[f"{method} {response.status_code}"] = statuses.get(f"{method} {response.status_code}", 0) + 1
        _check_answer(method, path, response)
        if method == "POST" and route == "/verdict" and response.status_code == 200:
            # The payload as the desk read it (json.loads detects UTF-8 or UTF-16, as Starlette's does).
            acknowledged.append({**json.loads(body), "answer": response.json()})

    one()
    print(f"\n{counts['requests']:,} desk requests, {len(acknowledged)} verdicts acknowledged")
    print("answers: " + ", ".join(f"{key} x{n}" for key, n in sorted(statuses.items())))
    record_property("requests", counts["requests"])
    record_property("acknowledged", len(acknowledged))
    assert counts["requests"] >= examples * 0.9

    # No stored text beyond its stated limit.
    limits = {"tag.reason": MAX_REASON, "tag.retract_reason": MAX_REASON, "tag.author": MAX_AUTHOR,
              "tag.retracted_by": MAX_AUTHOR, "tag.name": MAX_TAG_NAME, "event.author": MAX_AUTHOR}
    with sqlite3.connect(db) as connection:
        for column, limit in limits.items():
            table, field = column.split(".")
            longest = connection.execute(f"SELECT max(length({field})) FROM {table}").fetchone()[0] or 0
            assert longest <= limit, f"{column}: {longest} characters stored, the limit is {limit}"
        authors = {a for (a,) in connection.execute("SELECT DISTINCT author FROM tag WHERE source = 'manual'")}
    assert all(0 < len(a) <= MAX_REVIEWER_NAME and a.isprintable() for a in authors), authors

    # The file grows by what the acknowledged changes can hold, no more: each writes one tag (reason,
    # name, author), retracts a few, and appends one event naming the reason (4 bytes a character at most).
    per_change = 4 * (3 * MAX_REASON + 2 * MAX_AUTHOR + MAX_TAG_NAME) + 8_192
    grown = _stored_size(db) - size_before
    assert grown <= len(acknowledged) * per_change + 256 * 1024, (grown, len(acknowledged))

    # No acknowledged verdict lost.
    logged = {(e["author"], e["summary"].split(" on ", 1)[0], e["summary"].split(": ", 1)[-1])
              for e in catalog.log(limit=None, command="tag")}
    last = {}
    for verdict in acknowledged:
        frame_id = int(verdict["frame_id"])
        last[frame_id] = verdict["answer"]["status"]
        [shown] = catalog.show(catalog.frame_dicts(frame_ids=[frame_id])[0]["path"])
        history = shown["tag_history"]
        who = verdict["answer"]["author"]
        action = verdict["action"]
        if action == "undo":
            assert any(t["name"] == str(verdict["tag"]) and t["retracted_by"] == who for t in history), verdict
        else:
            name = "accept" if action == "accept" else str(verdict.get("tag") or "reject")
            # Stored as the catalog can hold it: a lone surrogate from the body is kept as its escape.
            reason = storable(str(verdict.get("reason") or "").strip()) or (
                "accepted in the review desk" if action == "accept" else "rejected in the review desk")
            same = [t for t in history if t["name"] == name and t["reason"] == reason and t["source"] == "manual"]
            # The same verdict with the same reason, already standing, is kept as it is (tags are append-only
            # and an identical active tag is a no-op): the second reviewer's word is then in the event log.
            assert same, (verdict, history)
            assert any(t["author"] == who for t in same) or (who, name, reason) in logged, (verdict, same)
    for frame_id, status in last.items():
        assert catalog.frame_dicts(frame_ids=[frame_id])[0]["status"] == status, frame_id


def _stored_size(db) -> int:
    """The catalog's bytes once its write-ahead log is folded in (what stays on disk)."""
    with sqlite3.connect(db) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db.stat().st_size


def test_desk_fuzz(desk, record_property):
    _fuzz(desk, DEFAULT_EXAMPLES, record_property)


@pytest.mark.slow
def test_desk_fuzz_many_more(desk, record_property):
    _fuzz(desk, SLOW_EXAMPLES, record_property)


# -- what the fuzz found, kept as plain regression tests ---------------------------------------------------

def test_an_undo_without_its_tag_is_a_400_not_a_crash(desk):
    """Found by the fuzz: ``{"frame_id": 1, "action": "undo"}`` was a KeyError, a 500."""
    catalog, clients, apps, _ = desk
    frame = catalog.frame_dicts()[0]["id"]
    answer = clients["open"].post("/verdict", json={"frame_id": frame, "action": "undo"},
                                  headers={"X-CSRF-Token": apps["open"].state.csrf})
    assert answer.status_code == 400 and answer.json() == {"error": "undo needs the tag to retract"}


def test_an_undo_of_an_undecodable_tag_name_is_a_409_not_a_crash(desk):
    """Found by the fuzz (CI, 2026-12-06): undoing the tag ``"\\ud800"`` (a lone surrogate, as a
    JSON body may carry it) sent the name to the database as it was, which no driver can encode: a
    500.  The name is taken as the catalog stores it, so there is simply no such active tag."""
    catalog, clients, apps, _ = desk
    frame = catalog.frame_dicts()[0]["id"]
    answer = clients["open"].post("/verdict", content=b'{"frame_id": %d, "action": "undo", "tag": "\xed\xa0\x80"}' % frame,
                                  headers={"X-CSRF-Token": apps["open"].state.csrf,
                                           "Content-Type": "application/json"})
    assert answer.status_code == 409, answer.text
    assert "no active" in answer.json()["error"] and "\\ud800" in answer.json()["error"]


def test_a_superseding_reason_at_the_limit_keeps_the_retraction_within_it(desk):
    """Found by the fuzz: a verdict given again with a reason of MAX_REASON characters retracted the old
    tag with "superseded: " + that reason, 12 characters past the limit."""
    catalog, clients, apps, db = desk
    frame = catalog.frame_dicts()[1]["id"]
    headers = {"X-CSRF-Token": apps["open"].state.csrf}
    for reason in ("short", "é" * MAX_REASON):
        answer = clients["open"].post("/verdict", json={"frame_id": frame, "action": "accept", "reason": reason},
                                      headers=headers)
        assert answer.status_code == 200, answer.text
    with sqlite3.connect(db) as connection:
        [(stored,)] = connection.execute("SELECT retract_reason FROM tag WHERE frame_id = ? AND reason = 'short'",
                                         (frame,)).fetchall()
    assert len(stored) == MAX_REASON and stored.startswith("superseded: éé") and stored.endswith("…")


@pytest.mark.parametrize("failure, sentence", [
    ("database or disk is full", "the disk holding the catalog is full: nothing was changed"),
    ("server closed the connection unexpectedly", "the catalog's database server stopped during the command"),
])
def test_a_full_disk_or_a_stopped_server_under_the_desk_is_one_line_not_a_500(desk, monkeypatch, failure, sentence):
    """Found by tests/pipeline/test_fault_injection.py: a verdict on a full disk was a bare 500."""
    import sqlite3 as driver

    from sqlalchemy.exc import OperationalError

    catalog, clients, apps, _ = desk

    def broken(*args, **kwargs):
        raise OperationalError("INSERT INTO tag ...", {}, driver.OperationalError(failure))

    monkeypatch.setattr(catalog, "tag", broken)
    monkeypatch.setattr(catalog, "frame_verdicts", broken)
    frame = catalog.frame_dicts()[0]["id"]
    answer = clients["open"].post("/verdict", json={"frame_id": frame, "action": "accept"},
                                  headers={"X-CSRF-Token": apps["open"].state.csrf})
    assert answer.status_code == 503 and answer.json()["error"].startswith(sentence), answer.text
    page = clients["open"].get(f"/frame/{frame}.json")
    assert page.status_code == 503 and "\n" not in page.json()["error"]
