"""The review desk: the archive, a night's frames and plots, and a keyboard review of one band.

Server-rendered HTML, inline SVG plots and one small script (no build step).
Every verdict is written through :class:`obsdb.Catalog` (``tag`` / ``untag``),
as ``obsdb tag`` does, with the reviewer's name and the time, so it shows at
once in ``obsdb rejected`` and ``obsdb log``; undo retracts, never deletes.

Safety: frames are served by catalog id only (never a path from the request);
state changes are POSTs carrying the page's CSRF token; beyond 127.0.0.1 every
request needs the access token; ``read_only`` refuses every change; the only
files written are the pictures in the cache folder (:mod:`obsdb.web.previews`).
"""

from __future__ import annotations

import contextlib
import functools
import html
import json
import math
import secrets
from pathlib import Path
from urllib.parse import urlencode

REVIEW_TAGS = ("tracking-slight", "tracking-big", "focus-slight", "use-if-must", "reject")
"""The manual verdicts offered by the review keys 1-5 (free text is key 6)."""

STRETCHES = ("zscale", "asinh")

SORT_KEYS = ("number", "time", "fwhm", "background", "elongation", "transparency", "stars", "status")
"""Columns a night's table can be sorted by (``?sort=KEY``, ``?sort=-KEY`` descending)."""

NIGHT_VIEWS = ("table", "grid", "plots")
"""How a night's page shows its frames (``?view=``): a sortable table, thumbnails, or plots against time
(quality with the QA limits, and the shift track), each point a link to the frame's review."""

STATIC = Path(__file__).with_name("static")

REVIEWER_COOKIE = "obsdb_reviewer"
MAX_REVIEWER_NAME = 60

MAX_BODY = 16_384
"""Largest verdict or rename request, bytes: a reason is at most
:data:`obsdb.catalog.tags.MAX_REASON` characters, the rest is a few short fields."""

MAX_ID = 2**63 - 1
"""Largest catalog id (a 64-bit integer column): a longer number names no frame (404, not a crash)."""


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison of a token from a request (any characters) with ours."""
    return secrets.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


def _frame_id(value: int) -> int:
    """A frame id from the path, or 0 (no frame) when it is beyond any id the catalog can hold."""
    return value if 0 < value <= MAX_ID else 0


def _host_name(value: str) -> str:
    """``127.0.0.1`` from ``127.0.0.1:8765``, ``::1`` from ``[::1]:8765``; lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def create_app(catalog, *, cache_dir: str | Path, author: str, token: str | None = None,
               read_only: bool = False, allowed_hosts=None):
    """The ASGI application over an open catalog.

    Parameters
    ----------
    catalog : obsdb.Catalog
    cache_dir : path
        Where the frames' pictures are cached (per frame content and kind); nothing else is written.
    author : str
        The reviewer named on every verdict, unless the reviewer gives a name in the page (kept for
        the browser session in a cookie).
    token : str, optional
        Required on every request (``?token=`` once, then a cookie) when given: the server
        listens beyond localhost.
    read_only : bool
        Refuse every change (403).
    allowed_hosts : iterable of str, optional
        Host names the desk answers to (the ``Host`` header, and the ``Origin`` of a change); any
        other gets 403.  A page on another site whose name a DNS server points at 127.0.0.1 ("DNS
        rebinding") then reads nothing and records nothing.  None: no check (tests, a token).

    Returns
    -------
    starlette.applications.Starlette
        The application; ``app.state.previews`` is its :class:`~obsdb.web.previews.PreviewCache`.
    """
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    from obsdb.errors import ObsdbError
    from obsdb.web.previews import PreviewCache

    csrf = secrets.token_urlsafe(24)
    previews = PreviewCache(cache_dir, lambda record: catalog.stored_stars(int(record["id"]), limit=60))

    hosts = None if allowed_hosts is None else {h.lower().strip("[]") for h in allowed_hosts}

    class TokenCheck(BaseHTTPMiddleware):
        async def dispatch(self, request, call_next):
            if hosts is not None and _host_name(request.headers.get("host", "")) not in hosts:
                return PlainTextResponse("this desk answers only to its own address "
                                         f"({', '.join(sorted(hosts))}): open the address obsdb serve printed", 403)
            origin = request.headers.get("origin")
            if request.method != "GET" and origin is not None:
                origin_host = _host_name(origin.split("://", 1)[-1].split("/", 1)[0])
                if origin_host != _host_name(request.headers.get("host", "")) or (
                        hosts is not None and origin_host not in hosts):
                    return PlainTextResponse("a change must come from the desk's own pages", 403)
            if token is not None:
                given = request.query_params.get("token") or request.cookies.get("obsdb_token")
                if not given or not _same(given, token):
                    return PlainTextResponse("a token is needed: open the address obsdb serve printed", 403)
                response = await call_next(request)
                response.set_cookie("obsdb_token", token, httponly=True, samesite="strict")
                return response
            return await call_next(request)

    class MachineFailures(BaseHTTPMiddleware):
        """A full disk or a stopped database server: one line (503), as the CLI says it, never a 500."""

        async def dispatch(self, request, call_next):
            from obsdb.cli.common import known_failure

            try:
                return await call_next(request)
            except Exception as exc:  # noqa: BLE001 - only the machine's failures are answered here
                if (known := known_failure(exc)) is None:
                    raise
                return JSONResponse({"error": known}, 503)

    def reviewer(request) -> str:
        return _clean_name(_unseg(request.cookies.get(REVIEWER_COOKIE, ""))) or author

    def page(request, title: str, body: str, status: int = 200) -> HTMLResponse:
        name = reviewer(request)
        return HTMLResponse(
            f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)} · obsdb</title>"
            f"<meta name='csrf' content='{csrf}'><meta name='viewport' content='width=device-width'>"
            f"<style>{_asset('desk.css')}</style></head><body>"
            f"<header><a href='/'>obsdb review desk</a> <a href='/archive'>archive</a>"
            f"<span class='who'>{'read-only · ' if read_only else ''}reviewer <b id='reviewer'>{_e(name)}</b>"
            f"{'' if read_only else ' <button id=rename type=button>not you?</button>'}</span></header>"
            f"<main>{body}</main><script>{_asset('desk.js')}</script></body></html>", status)

    def not_found(text: str = "not found"):
        return PlainTextResponse(text, 404)

    # -- pages ------------------------------------------------------------------------------------

    def nights(request):
        rows = "".join(
            f"<tr><td><a href='/night/{_seg(n['night'])}'>{_e(n['night'])}</a></td><td>{n['frames']}</td>"
            f"<td>{_e(' '.join(n['bands']))}</td><td>{_e(', '.join(_short(i) for i in n['instruments']))}</td>"
            f"<td class='num'>{n['accepted']}</td><td class='num'>{n['rejected']}</td>"
            f"<td class='num'>{n['pending']}</td><td class='num'>{_fmt(n['median_fwhm'], '.2f')}</td></tr>"
            for n in catalog.nights())
        if not rows:
            return page(request, "nights", "<h1>Nights</h1><p>The catalog has no frames yet: "
                                           "<code>obsdb ingest FOLDER</code> catalogues a night.</p>")
        return page(request, "nights",
                    "<h1>Nights</h1><table class='list'><tr><th>night</th><th>frames</th><th>bands</th>"
                    "<th>instruments</th><th>accepted</th><th>rejected</th><th>pending</th>"
                    f"<th>median FWHM px</th></tr>{rows}</table>")

    def archive(request):
        rows = catalog.archive_quality()
        body = "<h1>Archive</h1>"
        if not rows:
            return page(request, "archive", body + "<p>No light frames yet.</p>")
        body += archive_plots(rows)
        body += ("<table class='list'><tr><th>night</th><th>instrument</th><th>band</th><th>frames</th>"
                 "<th>accepted</th><th>median FWHM px</th><th>median background</th></tr>" + "".join(
                     f"<tr><td><a href='/night/{_seg(r['night'])}'>{_e(r['night'])}</a></td>"
                     f"<td>{_e(_short(r['instrument']))}</td><td>{_e(r['band'] or '-')}</td>"
                     f"<td class='num'>{r['frames']}</td><td class='num'>{r['accepted']}</td>"
                     f"<td class='num'>{_fmt(r['median_fwhm'], '.2f')}</td>"
                     f"<td class='num'>{_fmt(r['median_background'], ',.0f')}</td></tr>" for r in rows)
                 + "</table>")
        return page(request, "archive", body)

    def night(request):
        found = _segments(request, 1)
        name = found[0] if found else None
        if name not in catalog.night_names():
            return not_found("no such night")
        query = request.query_params
        filters = {k: (query.get(k) or "").strip() or None for k in ("band", "status", "tag", "where")}
        view = query.get("view") if query.get("view") in NIGHT_VIEWS else "table"
        sort = query.get("sort", "time")
        if sort.lstrip("-") not in SORT_KEYS:
            sort = "time"
        every = catalog.frame_dicts(night=name, light_only=True)
        bands = sorted({r["band"] for r in every if r["band"]})
        error = None
        try:
            records = list(every) if not any(filters.values()) else catalog.frame_dicts(
                night=name, light_only=True, band=("=" + filters["band"]) if filters["band"] else None,
                status=filters["status"], tag=filters["tag"], where=filters["where"])
        except ObsdbError as exc:
            records, error = [], str(exc)
        records.sort(key=lambda r: _sort_value(r, sort.lstrip("-")), reverse=sort.startswith("-"))
        state = {k: v for k, v in filters.items() if v}

        def link(**change) -> str:
            merged = {**state, "view": view, "sort": sort, **change}
            return "?" + urlencode({k: v for k, v in merged.items() if v})

        review_links = " ".join(
            f"<a class='button' href='/review/{_seg(name)}/{_seg(b)}?{urlencode({k: v for k, v in state.items() if k != 'band'})}'>"
            f"review {_e(b)}</a>" for b in bands)
        body = [f"<h1>{_e(name)}</h1>", _night_facts(every), f"<p class='actions'>{review_links}</p>",
                _filter_form(bands, filters, view, sort)]
        if error:
            body.append(f"<p class='error' id='error'>{_e(error)}</p>")
        views = " · ".join(f"<b>{v}</b>" if v == view else f"<a href='{_e(link(view=v))}'>{v}</a>"
                           for v in NIGHT_VIEWS)
        body.append(f"<p class='count'>{len(records)} of {len(every)} light frames · {views}</p>")
        # The first view of a night starts drawing its pictures, in the order shown: the grid's thumbnails
        # and the review's previews are then files on disk when they are asked for.
        previews.warm([r for r in records if r["readable"]], kinds=("thumb",))
        if view == "grid":
            body.append(_grid(name, records))
        elif view == "table":
            body.append(_table(name, records, sort, link))
        elif records:
            body.append("<h2>Quality through the night</h2>")
            events = catalog.qa_events([name])
            for band in sorted({r["band"] for r in records if r["band"]}) or [None]:
                members = [r for r in records if r["band"] == band]
                body.append(quality_plot(name, band, members, events))
            body.append("<h2>Shift track</h2>" + shift_plot(name, records))
        return page(request, name, "".join(body), 400 if error else 200)

    def review(request):
        found = _segments(request, 2)
        name, band = found if found else (None, None)
        if name not in catalog.night_names():
            return not_found("no such night")
        query = request.query_params
        try:
            records = [r for r in catalog.frame_dicts(
                night=name, band="=" + band, light_only=True, status=query.get("status") or None,
                tag=query.get("tag") or None, where=query.get("where") or None) if r["readable"]]
        except ObsdbError as exc:
            return page(request, "review", f"<p class='error'>{_e(exc)}</p>", 400)
        if not records:
            return not_found("no readable frame of that night and band")
        records.sort(key=lambda r: (r["date_obs"] or "", r["number"] or 0, r["path"]))
        references = catalog.run_references({r["shift"]["run"] for r in records if r["shift"]})
        # A frame the current run could not register is blinked (unaligned) against the newest run's reference.
        newest = references.get(max(references)) if references else None
        frames = [_review_entry(r, references, newest) for r in records]
        # Every reference by id, even one outside this band or filter: the blink shows the real reference.
        wanted = {f["reference"] for f in frames if f["reference"] is not None}
        known = {r["id"]: r for r in records if r["id"] in wanted}
        # Usually the reference is among the frames already read: only the others cost a query.
        missing = sorted(wanted - set(known))
        known.update({r["id"]: r for r in catalog.frame_dicts(frame_ids=missing)} if missing else {})
        reference_facts = {i: {"label": r["label"], "band": r["band"], "shape": r["shape"],
                               "readable": r["readable"]} for i, r in known.items()}
        ids = [f["id"] for f in frames]
        try:
            start = ids.index(int(query.get("frame", "")))
        except ValueError:
            start = 0
        # Draw ahead from where the reviewer starts: the next frames are cached before they are asked for.
        previews.warm(records[start:] + records[:start])
        data = json.dumps({"night": name, "band": band, "frames": frames, "start": start,
                           "references": {str(k): v for k, v in reference_facts.items()},
                           "readOnly": read_only, "tags": REVIEW_TAGS}).replace("<", "\\u003c")
        keys = ("<kbd>→</kbd> <kbd>←</kbd> next / previous · <kbd>n</kbd> next unreviewed · "
                "<kbd>b</kbd> blink with the reference, on its grid · <kbd>p</kbd> blink the previous frame · "
                "<kbd>z</kbd> 1:1 zoom at the cursor · <kbd>Esc</kbd> back to the frame · "
                "<kbd>s</kbd> zscale / asinh · <kbd>a</kbd> accept · "
                + " ".join(f"<kbd>{i}</kbd> {t}" for i, t in enumerate(REVIEW_TAGS, 1))
                + " · <kbd>r</kbd> reject · <kbd>6</kbd> reject in your words · <kbd>u</kbd> undo")
        body = (f"<h1><a href='/night/{_seg(name)}'>{_e(name)}</a> · {_e(band)} · review</h1>"
                f"<p class='keys'>{keys}</p>"
                "<div id='desk'><figure><img id='frame' alt='the frame'><figcaption id='caption'></figcaption>"
                "</figure><aside><div id='facts'></div><img id='stars' alt='star cut-outs'>"
                "<div id='tags'></div><div id='history'></div><p id='message' role='status'></p></aside></div>"
                f"<script id='review-data' type='application/json'>{data}</script>")
        return page(request, f"review {band}", body)

    # -- pictures and data ------------------------------------------------------------------------

    def frame_record(request):
        # Only where the file is: serving a cached picture reads no more of the catalog than that.
        frame_id = _frame_id(request.path_params["frame_id"])
        record = catalog.frame_files([frame_id]).get(frame_id)
        return record if record and record["readable"] else None

    def picture(record, kind):
        if record is None:
            return not_found("no such frame")
        content = previews.read(record, kind)
        if content is None:
            return not_found("the frame cannot be read now" if kind != "stars" else "no stored stars to show")
        return Response(content, media_type="image/png", headers={"Cache-Control": "private, max-age=60"})

    def frame_png(request):
        stretch = request.query_params.get("stretch", "zscale")
        size = request.query_params.get("size", "large")
        if stretch not in STRETCHES or size not in ("large", "thumb"):
            return not_found("unknown stretch or size")
        return picture(frame_record(request), "thumb" if size == "thumb" else stretch)

    def stars_png(request):
        return picture(frame_record(request), "stars")

    def aligned_record(frame_id: int) -> dict | None:
        """The frame's file record with its current run's transform onto that run's reference, as render
        applies it; None when the frame has no current run with steps (no verified transform)."""
        from obsdb.pipeline.render import total_transform

        details = catalog.frame_verdicts(frame_id)
        run = next((r for r in (details or {}).get("alignment", []) if r["current"] and r["steps"]), None)
        if run is None:
            return None
        reference = catalog.run_references([run["run"]]).get(run["run"])
        records = {r["id"]: r for r in catalog.frame_dicts(frame_ids=[frame_id, reference])} if reference else {}
        frame, ref = records.get(frame_id), records.get(reference)
        if not frame or not frame["readable"] or not frame["shape"] or not ref or not ref["shape"]:
            return None
        steps = [{"dx": s["dx"], "dy": s["dy"], "rotation_deg": s["rotation_deg"], "scale": s["scale"],
                  "cx": (s.get("parameters") or {}).get("cx"), "cy": (s.get("parameters") or {}).get("cy")}
                 for s in run["steps"]]
        return {"id": frame_id, "path": frame["path"], "readable": True, "metrics": frame["metrics"],
                "alignment": {"run": run["run"], "reference": reference,
                              "transform": total_transform(steps, tuple(frame["shape"])),
                              "reference_shape": tuple(ref["shape"])}}

    def aligned_png(request):
        stretch = request.query_params.get("stretch", "zscale")
        if stretch not in STRETCHES:
            return not_found("unknown stretch")
        record = aligned_record(_frame_id(request.path_params["frame_id"]))
        if record is None:
            return not_found("no verified transform: this frame has no current alignment run")
        return picture(record, f"aligned-{stretch}")

    def crop_png(request):
        from starlette.responses import Response

        from obsdb.imaging.preview import CROP_MAX_SIDE

        query = request.query_params
        try:
            x, y = float(query["x"]), float(query["y"])
            width, height = int(query.get("w", "800")), int(query.get("h", "600"))
        except (KeyError, ValueError):
            return PlainTextResponse("a crop needs numbers x, y (and w, h)", 400)
        stretch, grid = query.get("stretch", "zscale"), query.get("grid", "own")
        if (stretch not in STRETCHES or grid not in ("own", "reference") or not (math.isfinite(x) and math.isfinite(y))
                or not (1 <= width <= CROP_MAX_SIDE and 1 <= height <= CROP_MAX_SIDE)):
            return PlainTextResponse(f"a crop is 1 to {CROP_MAX_SIDE} px a side, stretch "
                                     f"{' or '.join(STRETCHES)}, grid own or reference", 400)
        transform = None
        if grid == "reference":
            record = aligned_record(_frame_id(request.path_params["frame_id"]))
            if record is None:
                return not_found("no verified transform: this frame has no current alignment run")
            transform = record["alignment"]["transform"]
        else:
            record = frame_record(request)
            if record is None:
                return not_found("no such frame")
        png = previews.crop(record, x, y, width, height, stretch=stretch, transform=transform)
        if png is None:
            return not_found("the frame cannot be read now")
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=60"})

    def frame_json(request):
        details = catalog.frame_verdicts(_frame_id(request.path_params["frame_id"]))
        if details is None:
            return JSONResponse({"error": "no such frame"}, 404)
        return JSONResponse(_frame_facts(details))

    # -- changes ----------------------------------------------------------------------------------

    def too_big(request):
        try:
            size = int(request.headers.get("content-length") or 0)
        except ValueError:
            size = MAX_BODY + 1
        if size > MAX_BODY:
            return JSONResponse({"error": f"request too large ({size:,} bytes; at most {MAX_BODY:,})"}, 413)
        return None

    def refused(request):
        if read_only:
            return JSONResponse({"error": "the review desk is read-only (obsdb serve --read-only)"}, 403)
        if not _same(request.headers.get("x-csrf-token", ""), csrf):
            return JSONResponse({"error": "missing or wrong CSRF token: reload the page"}, 403)
        return None

    async def verdict(request):
        if (answer := refused(request)) is not None:
            return answer
        if (answer := too_big(request)) is not None:
            return answer
        try:
            payload = await request.json()
            frame_id, action = int(payload["frame_id"]), str(payload["action"])[:20]
        except (ValueError, KeyError, TypeError, OverflowError):
            return JSONResponse({"error": "expected frame_id and action"}, 400)
        if not 0 < frame_id <= MAX_ID:
            return JSONResponse({"error": "no such frame"}, 404)
        records = catalog.frame_dicts(frame_ids=[frame_id])
        if not records:
            return JSONResponse({"error": "no such frame"}, 404)
        before = records[0]["status"]
        selector, who = records[0]["path"], reviewer(request)    # a path names exactly that file
        reason = str(payload.get("reason") or "").strip()
        try:
            if action == "accept":
                catalog.tag(selector, "accept", reason=reason or "accepted in the review desk", author=who)
            elif action == "reject":
                tag = str(payload.get("tag") or "reject")
                if tag not in REVIEW_TAGS:
                    return JSONResponse({"error": f"unknown verdict {tag!r}"}, 400)
                catalog.tag(selector, tag, reason=reason or "rejected in the review desk", author=who)
            elif action == "undo":
                if not payload.get("tag"):
                    return JSONResponse({"error": "undo needs the tag to retract"}, 400)
                catalog.untag(selector, str(payload["tag"]), reason="undone in the review desk", author=who)
            else:
                return JSONResponse({"error": f"unknown action {action!r}"}, 400)
        except ObsdbError as exc:
            return JSONResponse({"error": str(exc)}, 409)
        # The frame's status as the catalog computes it after the write (the desk never guesses it).
        after = catalog.frame_dicts(frame_ids=[frame_id])[0]
        return JSONResponse({"status": after["status"], "previous": before, "changed": after["status"] != before,
                             "reasons": after["reasons"], "chain": _chain(after), "reviewed": _reviewed(after),
                             "author": who})

    async def rename(request):
        if (answer := refused(request)) is not None:
            return answer
        if (answer := too_big(request)) is not None:
            return answer
        try:
            name = _clean_name(str((await request.json())["name"]))
        except (ValueError, KeyError, TypeError):
            name = ""
        if not name:
            return JSONResponse({"error": f"a reviewer name is 1 to {MAX_REVIEWER_NAME} printable characters"}, 400)
        response = JSONResponse({"reviewer": name})
        # Quoted: a cookie holds ASCII only, a reviewer may be Łukasz Dvořák.
        from urllib.parse import quote

        response.set_cookie(REVIEWER_COOKIE, quote(name, safe=""), httponly=True, samesite="strict")
        return response

    # -- plots ------------------------------------------------------------------------------------

    def quality_plot(name: str, band: str | None, records: list[dict], events: list[dict]) -> str:
        from obsdb.pipeline.report import threshold_lines

        lines = threshold_lines(records, {"qa_events": events})
        return _quality_svg(name, band, records, lines)

    routes = [Route("/", nights), Route("/archive", archive), Route("/night/{name:path}", night),
              Route("/review/{rest:path}", review),
              Route("/frame/{frame_id:int}.png", frame_png), Route("/frame/{frame_id:int}/stars.png", stars_png),
              Route("/frame/{frame_id:int}/aligned.png", aligned_png),
              Route("/frame/{frame_id:int}/crop.png", crop_png),
              Route("/frame/{frame_id:int}.json", frame_json),
              Route("/verdict", verdict, methods=["POST"]), Route("/reviewer", rename, methods=["POST"])]
    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        previews.stop()

    application = Starlette(routes=routes, middleware=[Middleware(MachineFailures), Middleware(TokenCheck)], lifespan=lifespan)
    application.state.previews = previews
    application.state.csrf = csrf
    return application


# -- what a page shows ------------------------------------------------------------------------------

def _reviewed(record: dict) -> bool:
    """Whether a person has given this frame a verdict: an active tag from a person (the catalog's
    ``MANUAL_SOURCES``) that accepts or rejects it (``VERDICT_TAGS``); notes and rules' tags are not."""
    from obsdb.catalog.status import MANUAL_SOURCES, VERDICT_TAGS

    return any(t["source"] in MANUAL_SOURCES and t["name"] in VERDICT_TAGS for t in record.get("tags") or [])


def _chain(record: dict) -> str:
    """The catalog's one-line explanation of a frame's status (who decided, what it overrides, what the
    rules say), else the status with its reasons."""
    explain = (record.get("verdict") or {}).get("explain")
    if isinstance(explain, str) and explain:
        return explain
    why = "; ".join(record["reasons"])
    return f"{record['status']}" + (f": {why}" if why else "")


def _review_entry(record: dict, references: dict, newest_reference: int | None = None) -> dict:
    """A frame as the review script needs it: id, label, time, status, whether a person gave a verdict,
    rounded metrics, shape, shift, its reference and whether it has a transform onto it (``aligned``)."""
    from obsdb.pipeline.report import minor_fwhm

    shift = record["shift"]
    reference = references.get(shift["run"]) if shift else None
    return {"id": record["id"], "label": record["label"], "file": record["file_name"],
            "time": (record["date_obs"] or "")[11:19] or None, "status": record["status"],
            "reviewed": _reviewed(record), "chain": _chain(record), "shape": record["shape"],
            "aligned": reference is not None,
            "reasons": record["reasons"], "fwhm": _round(_metric(record, "fwhm"), 2),
            "minor_fwhm": _round(minor_fwhm(record), 2), "background": _round(_background(record), 0),
            "elongation": _round(_metric(record, "elongation"), 2),
            "transparency": _round(_metric(record, "transparency"), 2), "stars": _metric(record, "n_stars"),
            "shift": None if not shift else {"dx": _round(shift["dx"], 2), "dy": _round(shift["dy"], 2),
                                             "run": shift["run"], "method": shift.get("method")},
            "reference": reference if reference is not None else newest_reference}


def _frame_facts(details: dict) -> dict:
    """One frame's verdicts and shift history for the review panel (``/frame/ID.json``), from
    :meth:`obsdb.Catalog.frame_verdicts`."""
    from obsdb.text import without_tag

    runs = []
    for run in details.get("alignment", []):
        total = run.get("total") or {}
        runs.append({"run": run["run"], "method": run["method"], "current": run["current"],
                     "reference": run.get("reference"), "author": run.get("author"),
                     "created_at": (run.get("created_at") or "")[:19].replace("T", " "),
                     "dx": _round(total.get("dx"), 3), "dy": _round(total.get("dy"), 3),
                     "steps": [{"stage": s["stage"], "kind": s["kind"], "method": s.get("method"),
                                "dx": _round(s.get("dx"), 3), "dy": _round(s.get("dy"), 3),
                                "matched": s.get("n_matched"), "rms": _round(s.get("residual_rms"), 3)}
                               for s in run.get("steps", [])]})
    tags = [{"name": t["name"], "source": t["source"], "reason": without_tag(t["name"], t["reason"]), "author": t["author"],
             "at": t["created_at"][:19].replace("T", " "), "active": not t["retracted_at"],
             "retracted": (t["retracted_at"] or "")[:19].replace("T", " ") or None,
             "retracted_by": t["retracted_by"]} for t in details.get("tag_history", [])]
    return {"id": details["id"], "tags": tags, "runs": runs}


def _night_facts(records: list[dict]) -> str:
    counts = {s: sum(r["status"] == s for r in records) for s in ("accepted", "rejected", "pending")}
    targets = sorted({r["object"] for r in records if r["object"]})
    instruments = sorted({_short(r["instrument"]) for r in records if r["instrument"]})
    return (f"<p class='facts'>{len(records)} light frames · {counts['accepted']} accepted · "
            f"{counts['rejected']} rejected · {counts['pending']} pending · "
            f"{_e(', '.join(targets) or 'no OBJECT')} · {_e(', '.join(instruments) or 'no instrument')}</p>")


def _filter_form(bands: list[str], filters: dict, view: str, sort: str) -> str:
    def options(values, chosen):
        return "".join(f"<option value='{_e(v)}'{' selected' if v == chosen else ''}>{_e(v or 'all')}</option>"
                       for v in ["", *values])

    return ("<form class='filters' method='get'>"
            f"<label>band <select name='band'>{options(bands, filters['band'] or '')}</select></label> "
            f"<label>status <select name='status'>{options(['accepted', 'rejected', 'pending'], filters['status'] or '')}"
            "</select></label> "
            f"<label>tag <input name='tag' size='12' value='{_e(filters['tag'] or '')}'></label> "
            f"<label>where <input name='where' size='34' placeholder='fwhm &gt; 3 and EXPTIME &gt;= 30' "
            f"value='{_e(filters['where'] or '')}'></label>"
            f"<input type='hidden' name='view' value='{_e(view)}'><input type='hidden' name='sort' value='{_e(sort)}'>"
            " <button type='submit'>filter</button></form>")


_TABLE_COLUMNS = (("number", "frame"), ("band", "band"), ("time", "time UTC"), ("fwhm", "FWHM px"),
                  ("background", "background"), ("elongation", "elongation"), ("transparency", "transparency"),
                  ("stars", "stars"), ("status", "status"))


def _table(name: str, records: list[dict], sort: str, link) -> str:
    heads = []
    for key, title in _TABLE_COLUMNS:
        if key in SORT_KEYS:
            order = f"-{key}" if sort == key else key
            mark = " ▲" if sort == key else (" ▼" if sort == f"-{key}" else "")
            heads.append(f"<th><a href='{_e(link(sort=order))}'>{title}{mark}</a></th>")
        else:
            heads.append(f"<th>{title}</th>")
    rows = []
    for r in records:
        review = f"/review/{_seg(name)}/{_seg(r['band'])}?frame={r['id']}" if r["band"] and r["readable"] else None
        label = f"<a href='{review}'>{_e(r['label'])}</a>" if review else _e(r["label"])
        rows.append(f"<tr class='{r['status']}'><td>{label}</td><td>{_e(r['band'] or '-')}</td>"
                    f"<td>{_e((r['date_obs'] or '-')[11:19] or '-')}</td>"
                    f"<td class='num'>{_fmt(_metric(r, 'fwhm'), '.2f')}</td>"
                    f"<td class='num'>{_fmt(_background(r), ',.0f')}</td>"
                    f"<td class='num'>{_fmt(_metric(r, 'elongation'), '.2f')}</td>"
                    f"<td class='num'>{_fmt(_metric(r, 'transparency'), '.2f')}</td>"
                    f"<td class='num'>{_fmt(_metric(r, 'n_stars'), 'd')}</td><td>{r['status']}</td>"
                    f"<td>{_e('; '.join(r['reasons']))}</td></tr>")
    return f"<table class='list' id='frames'><tr>{''.join(heads)}<th>reasons</th></tr>{''.join(rows)}</table>"


def _grid(name: str, records: list[dict]) -> str:
    cells = []
    for r in records:
        inner = (f"<img loading='lazy' decoding='async' width='200' height='200' alt='{_e(r['label'])}' "
                 f"src='/frame/{r['id']}.png?size=thumb'>" if r["readable"] else "<span>unreadable</span>")
        caption = f"{_e(r['label'])} {_e(r['band'] or '')} · {_e(r['status'])}"
        if r["reasons"]:
            caption += f"<br><small>{_e(r['reasons'][0][:60])}</small>"
        href = f"/review/{_seg(name)}/{_seg(r['band'])}?frame={r['id']}" if r["band"] and r["readable"] else None
        body = f"{inner}<figcaption>{caption}</figcaption>"
        cells.append(f"<figure class='cell {r['status']}'>"
                     + (f"<a href='{href}'>{body}</a>" if href else body) + "</figure>")
    return f"<div class='grid' id='grid'>{''.join(cells)}</div>"


def _quality_svg(name: str, band: str | None, records: list[dict], lines: list[dict]) -> str:
    """Background, minor-axis FWHM, elongation, transparency and star count against time, one band."""
    from obsdb.pipeline.report import minor_fwhm, parse_time
    from obsdb.web.plots import COLOURS, Panel, Point, format_tick, legend_html, panels_svg, time_axis

    records = sorted(records, key=lambda r: r["date_obs"] or "")
    xs, ticks, caption = time_axis([parse_time(r["date_obs"]) for r in records])
    values = {"background": _background, "fwhm": minor_fwhm,
              "elongation": lambda r: _metric(r, "elongation"),
              "transparency": lambda r: _metric(r, "transparency"), "n_stars": lambda r: _metric(r, "n_stars")}
    labels = {"background": "background ADU", "fwhm": "FWHM minor axis px", "elongation": "elongation a/b",
              "transparency": "transparency", "n_stars": "stars"}
    panels = []
    for key, value_of in values.items():
        panel = Panel(labels[key])
        for x, record in zip(xs, records):
            value = value_of(record)
            if x is None or value is None:
                continue
            why = "; ".join(record["reasons"])
            panel.points.append(Point(
                x, float(value), COLOURS.get(record["status"], COLOURS["pending"]),
                f"{record['label']} {record['band'] or ''}: {labels[key]} {value:,.3g} · {record['status']}"
                + (f" · {why}" if why else ""),
                href=f"/review/{_seg(name)}/{_seg(record['band'])}?frame={record['id']}" if record["band"] else None,
                hollow=record["status"] == "pending"))
        seen = set()
        for line in lines:
            if line["panel"] == key and (line["rule"], round(line["value"], 6)) not in seen:
                seen.add((line["rule"], round(line["value"], 6)))
                panel.lines.append((line["value"], f"{line['rule']} {format_tick(line['value'])}"
                                    + (f" ({line['text']})" if line["text"] else "")))
        panels.append(panel)
    known = [x for x in xs if x is not None]
    if not known:
        return f"<p class='facts'>band {_e(band or '-')}: no DATE-OBS, no time plot</p>"
    svg = panels_svg(panels, x_ticks=ticks, x_range=(min(known), max(known)), panel_height=70,
                     title=f"band {band or '-'}: {len(records)} frames", caption=caption)
    legend = legend_html([(COLOURS["accepted"], "accepted"), (COLOURS["rejected"], "rejected"),
                          (COLOURS["pending"], "pending (hollow)"), ("#b71c1c", "QA limit (dashed)")])
    return f"<figure class='plot' id='quality-{_e(band or 'none')}'>{svg}{legend}</figure>"


def shift_plot(name: str, records: list[dict]) -> str:
    """Each frame's current shift, dx above dy, against time, coloured by band; rejected frames ringed."""
    from obsdb.pipeline.report import parse_time
    from obsdb.web.plots import SERIES_COLOURS, Panel, Point, legend_html, panels_svg, time_axis

    shifted = sorted((r for r in records if r["shift"]), key=lambda r: r["date_obs"] or "")
    if not shifted:
        return "<p class='facts'>No frame has a shift yet (<code>obsdb align</code>).</p>"
    xs, ticks, caption = time_axis([parse_time(r["date_obs"]) for r in shifted])
    bands = sorted({r["band"] or "-" for r in shifted})
    colour = {b: SERIES_COLOURS[i % len(SERIES_COLOURS)] for i, b in enumerate(bands)}
    panels = [Panel("dx px", joined=True), Panel("dy px", joined=True)]
    for x, record in zip(xs, shifted):
        if x is None:
            continue
        for panel, axis in zip(panels, ("dx", "dy")):
            value = record["shift"][axis]
            panel.points.append(Point(
                x, value, colour[record["band"] or "-"],
                f"{record['label']} {record['band'] or ''}: {axis} {value:+.2f} px, run {record['shift']['run']}"
                f" · {record['status']}",
                href=f"/review/{_seg(name)}/{_seg(record['band'])}?frame={record['id']}" if record["band"] else None,
                hollow=record["status"] == "rejected"))
    known = [x for x in xs if x is not None]
    if not known:
        return "<p class='facts'>No DATE-OBS: no shift track.</p>"
    svg = panels_svg(panels, x_ticks=ticks, x_range=(min(known), max(known)), panel_height=90,
                     title="current shift of each frame (what render applies)", caption=caption)
    legend = legend_html([(colour[b], f"band {b}") for b in bands] + [("#888", "hollow: rejected")])
    return f"<figure class='plot' id='shifts'>{svg}{legend}</figure>"


def archive_plots(rows: list[dict]) -> str:
    """Median FWHM and background per night, one series per instrument and band (the archive view)."""
    from obsdb.web.plots import SERIES_COLOURS, Panel, Point, index_axis, legend_html, panels_svg

    nights = sorted({r["night"] for r in rows})
    position = {n: float(i) for i, n in enumerate(nights)}
    series = sorted({(_short(r["instrument"]), r["band"] or "-") for r in rows})
    colour = {s: SERIES_COLOURS[i % len(SERIES_COLOURS)] for i, s in enumerate(series)}
    panels = [Panel("median FWHM px", joined=True), Panel("median background ADU", joined=True)]
    for r in rows:
        key = (_short(r["instrument"]), r["band"] or "-")
        for panel, field, spec in ((panels[0], "median_fwhm", ".2f"), (panels[1], "median_background", ",.0f")):
            if r[field] is not None:
                panel.points.append(Point(position[r["night"]], r[field], colour[key],
                                          f"{r['night']} {key[0]} {key[1]}: {format(r[field], spec)} "
                                          f"({r['frames']} frames)", href=f"/night/{_seg(r['night'])}"))
    svg = panels_svg(panels, x_ticks=index_axis(nights), x_range=(0.0, float(len(nights) - 1)),
                     panel_height=110, title=f"{len(nights)} nights", caption="night")
    legend = legend_html([(colour[s], f"{s[0]} {s[1]}") for s in series])
    return f"<figure class='plot' id='archive'>{svg}{legend}</figure>"


# -- small helpers ----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _asset(name: str) -> str:
    """The page's stylesheet or script, inlined: a page then needs no further request before it shows."""
    return (STATIC / name).read_text(encoding="utf-8")


def _metric(record: dict, key: str):
    value = (record.get("metrics") or {}).get(key)
    return value if value is None or value == value else None


def _background(record: dict):
    """The QA metrics' background, else the ingest's (frames not yet through QA)."""
    value = _metric(record, "background")
    return value if value is not None else (record.get("stats") or {}).get("background")


def _sort_value(record: dict, key: str):
    value = {"number": record["number"], "time": record["date_obs"], "fwhm": _metric(record, "fwhm"),
             "background": _background(record), "elongation": _metric(record, "elongation"),
             "transparency": _metric(record, "transparency"), "stars": _metric(record, "n_stars"),
             "status": record["status"]}[key]
    # Missing values sort last either way; ties keep the night's order.
    return (value is None, value if value is not None else 0, record["date_obs"] or "", record["number"] or 0)


def _round(value, digits: int):
    if value is None or value != value:
        return None
    return round(float(value), digits) if digits else int(round(float(value)))


def _fmt(value, spec: str) -> str:
    if value is None or value != value:
        return "-"
    return format(int(value), spec) if spec == "d" else format(value, spec)


def _short(instrument: str | None) -> str:
    """An instrument key (telescope|camera|size|binning) without its size and binning, for narrow columns."""
    if not instrument:
        return "-"
    parts = instrument.split("|")
    return " / ".join(p for p in parts[:2] if p) or instrument


def _seg(text) -> str:
    """One path segment of a link, for any night or band name ("M31 #2", "Ha/OIII")."""
    from urllib.parse import quote

    return quote(str(text), safe="")


def _unseg(text: str) -> str:
    """The text a percent-quoted cookie carries (the reviewer's name)."""
    from urllib.parse import unquote

    return unquote(text)


def _segments(request, count: int) -> list[str] | None:
    """The ``count`` names after the route's first segment, read from the path as the browser sent it.

    The decoded path cannot tell a "/" inside a name (``Ha/OIII``, sent as ``%2F``) from a separator;
    the raw path can.  None when the path does not hold exactly that many.
    """
    from urllib.parse import unquote

    raw = request.scope.get("raw_path") or request.url.path.encode()
    parts = raw.decode("latin-1").split("?", 1)[0].split("/")[2:]
    if len(parts) != count or not all(parts):
        return None
    return [unquote(part, encoding="utf-8", errors="replace") for part in parts]


def _clean_name(name: str) -> str:
    name = " ".join(name.split())
    return name if 0 < len(name) <= MAX_REVIEWER_NAME and name.isprintable() else ""


def _e(text) -> str:
    return html.escape(str(text), quote=True)
