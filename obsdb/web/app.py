"""The review desk: nights, a night's frames, and a keyboard review of one band, frame by frame.

Server-rendered HTML and a little JavaScript (no build step).  Every verdict is
written through :class:`obsdb.Catalog` (``tag`` / ``untag``), as ``obsdb tag``
does, with the reviewer's name and the time, so it shows at once in ``obsdb
rejected`` and ``obsdb log``; undo retracts, never deletes.

Safety: frames are served by catalog id only (never a path from the request);
state changes are POSTs carrying the page's CSRF token; beyond 127.0.0.1 every
request needs the access token; ``read_only`` refuses every change; the only
files written are the preview PNGs in the cache folder.
"""

from __future__ import annotations

import html
import json
import secrets
from pathlib import Path

REVIEW_TAGS = ("tracking-slight", "tracking-big", "focus-slight", "use-if-must", "reject")
"""The manual verdicts offered by the review keys 1-5 (free text is key 6)."""

STRETCHES = ("zscale", "asinh")


def create_app(catalog, *, cache_dir: str | Path, author: str, token: str | None = None,
               read_only: bool = False):
    """The ASGI application over an open catalog.

    Parameters
    ----------
    catalog : obsdb.Catalog
    cache_dir : path
        Where preview PNGs are cached (per frame content and stretch); nothing else is written.
    author : str
        The reviewer named on every verdict.
    token : str, optional
        Required on every request (``?token=`` once, then a cookie) when given: the server
        listens beyond localhost.
    read_only : bool
        Refuse every change (403).
    """
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
    from starlette.routing import Route

    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    csrf = secrets.token_urlsafe(24)

    class TokenCheck(BaseHTTPMiddleware):
        async def dispatch(self, request, call_next):
            if token is not None:
                given = request.query_params.get("token") or request.cookies.get("obsdb_token")
                if not given or not secrets.compare_digest(given, token):
                    return PlainTextResponse("a token is needed: open the address obsdb serve printed", 403)
                response = await call_next(request)
                response.set_cookie("obsdb_token", token, httponly=True, samesite="strict")
                return response
            return await call_next(request)

    def page(title: str, body: str) -> HTMLResponse:
        return HTMLResponse(f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
                            f"<meta name='csrf' content='{csrf}'><style>{_CSS}</style></head><body>"
                            f"<header><a href='/'>obsdb review desk</a>"
                            f"{' · read-only' if read_only else ''} · reviewer {_e(author)}</header>"
                            f"<main>{body}</main></body></html>")

    def nights(request):
        rows = "".join(f"<tr><td><a href='/night/{_e(n['night'])}'>{_e(n['night'])}</a></td><td>{n['frames']}</td>"
                       f"<td>{_e(' '.join(n['bands']))}</td><td>{n['accepted']}</td><td>{n['rejected']}</td>"
                       f"<td>{n['pending']}</td></tr>" for n in catalog.nights())
        return page("nights", "<h1>Nights</h1><table><tr><th>night</th><th>frames</th><th>bands</th>"
                              f"<th>accepted</th><th>rejected</th><th>pending</th></tr>{rows}</table>")

    def night(request):
        name = request.path_params["name"]
        if name not in catalog.night_names():
            return PlainTextResponse("no such night", 404)
        band = request.query_params.get("band") or None
        records = catalog.frame_dicts(night=name, band=band, light_only=True)
        key = request.query_params.get("sort", "number")
        if key not in _SORT_KEYS:
            key = "number"
        records.sort(key=lambda r: _sort_value(r, key))
        bands = sorted({r["band"] for r in catalog.frame_dicts(night=name, light_only=True) if r["band"]})
        links = " ".join(f"<a href='/review/{_e(name)}/{_e(b)}'>review {_e(b)}</a>" for b in bands)
        heads = "".join(f"<th><a href='?sort={k}{'&band=' + _e(band) if band else ''}'>{k}</a></th>"
                        for k in _SORT_KEYS)
        rows = "".join(
            f"<tr class='{r['status']}'><td>{_e(r['label'])}</td><td>{_e(r['band'] or '-')}</td>"
            f"<td>{_e((r['date_obs'] or '-')[:19])}</td><td>{_fmt(_metric(r, 'fwhm'))}</td>"
            f"<td>{_fmt(_stat(r, 'background'))}</td><td>{_fmt(_metric(r, 'elongation'))}</td>"
            f"<td>{_fmt(_metric(r, 'transparency'))}</td><td>{r['status']}</td>"
            f"<td>{_e('; '.join(r['reasons']))}</td></tr>" for r in records)
        return page(name, f"<h1>{_e(name)}</h1><p>{links}</p><table><tr>{heads}<th>reasons</th></tr>{rows}</table>")

    def review(request):
        name, band = request.path_params["name"], request.path_params["band"]
        records = [r for r in catalog.frame_dicts(night=name, band="=" + band, light_only=True) if r["readable"]]
        if not records:
            return PlainTextResponse("no readable frame of that night and band", 404)
        records.sort(key=lambda r: (r["date_obs"] or "", r["number"] or 0))
        frames = [{"id": r["id"], "label": r["label"], "status": r["status"], "reasons": r["reasons"],
                   "fwhm": _metric(r, "fwhm"), "background": _stat(r, "background"),
                   "elongation": _metric(r, "elongation"), "shift": r["shift"]} for r in records]
        reference = next((r["shift"]["run"] for r in records if r["shift"]), None)
        body = (f"<h1>{_e(name)} · {_e(band)}: review</h1><div id='desk'><img id='frame' alt='frame'>"
                f"<aside id='facts'></aside></div>"
                f"<p class='keys'>← → previous/next · b blink the first frame · a accept · 1-5 reject as "
                f"{', '.join(REVIEW_TAGS)} · 6 reject with your words · u undo</p>"
                f"<script>const FRAMES = {json.dumps(frames)}; const READ_ONLY = {json.dumps(read_only)};"
                f"const RUN = {json.dumps(reference)}; const TAGS = {json.dumps(REVIEW_TAGS)};</script>"
                f"<script>{_JS}</script>")
        return page(f"review {band}", body)

    def frame_png(request):
        frame_id = request.path_params["frame_id"]
        stretch = request.query_params.get("stretch", "zscale")
        if stretch not in STRETCHES:
            return PlainTextResponse("unknown stretch", 404)
        records = catalog.frame_dicts(frame_ids=[frame_id])
        if not records or not records[0]["readable"]:
            return PlainTextResponse("no such frame", 404)
        path = _cached_preview(cache, records[0], stretch)
        if path is None:
            return PlainTextResponse("the frame cannot be read now", 404)
        return FileResponse(path, media_type="image/png")

    async def verdict(request):
        if read_only:
            return JSONResponse({"error": "the review desk is read-only (obsdb serve --read-only)"}, 403)
        if not secrets.compare_digest(request.headers.get("x-csrf-token", ""), csrf):
            return JSONResponse({"error": "missing or wrong CSRF token: reload the page"}, 403)
        try:
            payload = await request.json()
            frame_id, action = int(payload["frame_id"]), str(payload["action"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "expected frame_id and action"}, 400)
        records = catalog.frame_dicts(frame_ids=[frame_id])
        if not records:
            return JSONResponse({"error": "no such frame"}, 404)
        selector = records[0]["path"]                # a path names exactly that file
        from obsdb.errors import ObsdbError

        try:
            if action == "accept":
                catalog.tag(selector, "accept", reason=str(payload.get("reason") or "accepted in the review desk"),
                            author=author)
            elif action == "reject":
                tag = str(payload.get("tag") or "reject")
                reason = str(payload.get("reason") or "").strip() or f"{tag} (review desk)"
                catalog.tag(selector, tag, reason=reason, author=author)
            elif action == "undo":
                catalog.untag(selector, str(payload["tag"]), reason="undone in the review desk", author=author)
            else:
                return JSONResponse({"error": f"unknown action {action!r}"}, 400)
        except ObsdbError as exc:
            return JSONResponse({"error": str(exc)}, 409)
        after = catalog.frame_dicts(frame_ids=[frame_id])[0]
        return JSONResponse({"status": after["status"], "reasons": after["reasons"]})

    def root_redirect(request):
        return RedirectResponse("/")

    routes = [Route("/", nights), Route("/night/{name}", night), Route("/review/{name}/{band}", review),
              Route("/frame/{frame_id:int}.png", frame_png), Route("/verdict", verdict, methods=["POST"]),
              Route("/index.html", root_redirect)]
    return Starlette(routes=routes, middleware=[Middleware(TokenCheck)])


def _cached_preview(cache: Path, record: dict, stretch: str) -> Path | None:
    """The frame's preview PNG in the cache (drawn on first request; keyed by content and stretch)."""
    import warnings

    from obsdb.imaging.fitsio import FitsReadError, read_fits_image
    from obsdb.imaging.preview import write_preview_png

    import os

    try:
        st = os.stat(record["path"])
    except OSError:
        return None
    # A frame rewritten since (size or time changed) gets a new preview; the old one is simply unused.
    target = cache / f"{record['id']}-{st.st_size}-{st.st_mtime_ns}-{stretch}.png"
    if target.is_file():
        return target
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = read_fits_image(record["path"], hash_mode="none")
        write_preview_png(target, image.data, max_size=1024, stretch=stretch)
    except (FitsReadError, OSError, ValueError):
        return None
    return target


_SORT_KEYS = ("number", "band", "time", "fwhm", "background", "elongation", "transparency", "status")


def _metric(record: dict, key: str):
    return (record.get("metrics") or {}).get(key)


def _stat(record: dict, key: str):
    return (record.get("stats") or {}).get(key)


def _sort_value(record: dict, key: str):
    value = {"number": record["number"], "band": record["band"], "time": record["date_obs"],
             "fwhm": _metric(record, "fwhm"), "background": _stat(record, "background"),
             "elongation": _metric(record, "elongation"), "transparency": _metric(record, "transparency"),
             "status": record["status"]}[key]
    return (value is None, value if value is not None else 0)


def _fmt(value) -> str:
    return "-" if value is None else (f"{value:,.2f}" if isinstance(value, float) else str(value))


def _e(text) -> str:
    return html.escape(str(text), quote=True)


_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d232b; }
header { background: #1d232b; color: #fff; padding: 6px 12px; } header a { color: #fff; }
main { padding: 12px; } table { border-collapse: collapse; } td, th { padding: 2px 8px; text-align: left; }
tr.rejected td { color: #c62828; } tr.accepted td { color: #2e7d32; }
#desk { display: flex; gap: 16px; } #frame { max-width: 75vw; max-height: 80vh; background: #000; }
#facts { min-width: 240px; } .keys { color: #5b6573; }
"""

_JS = """
let index = 0, blink = false;
const csrf = document.querySelector("meta[name=csrf]").content;
const undo = [];
function show() {
  const f = FRAMES[index], shown = blink ? FRAMES[0] : f;
  document.getElementById("frame").src = "/frame/" + shown.id + ".png";
  const facts = document.getElementById("facts");
  facts.textContent = "";
  const lines = [(blink ? "BLINK: " + FRAMES[0].label + " | " : "") + "frame " + f.label +
                 " (" + (index + 1) + " of " + FRAMES.length + ")", "status: " + f.status,
                 "FWHM " + f.fwhm + " px, sky " + f.background + ", elongation " + f.elongation]
                .concat(f.reasons.map(r => "reason: " + r));
  for (const line of lines) { const p = document.createElement("p"); p.textContent = line; facts.appendChild(p); }
}
async function send(body) {
  if (READ_ONLY) { alert("read-only"); return; }
  const r = await fetch("/verdict", {method: "POST", headers: {"Content-Type": "application/json",
                        "X-CSRF-Token": csrf}, body: JSON.stringify(body)});
  const answer = await r.json();
  if (!r.ok) { alert(answer.error); return false; }
  FRAMES[index].status = answer.status; FRAMES[index].reasons = answer.reasons; show(); return true;
}
document.addEventListener("keydown", async (event) => {
  const f = FRAMES[index];
  if (event.key === "ArrowRight" || event.key === "j") { index = Math.min(index + 1, FRAMES.length - 1); }
  else if (event.key === "ArrowLeft" || event.key === "k") { index = Math.max(index - 1, 0); }
  else if (event.key === "b") { blink = !blink; }
  else if (event.key === "a") { if (await send({frame_id: f.id, action: "accept"})) undo.push([f.id, "accept"]); }
  else if (event.key >= "1" && event.key <= "5") {
    const tag = TAGS[Number(event.key) - 1];
    if (await send({frame_id: f.id, action: "reject", tag: tag})) undo.push([f.id, tag]);
  } else if (event.key === "6") {
    const reason = prompt("Why is this frame rejected?");
    if (reason && await send({frame_id: f.id, action: "reject", tag: "reject", reason: reason}))
      undo.push([f.id, "reject"]);
  } else if (event.key === "u" && undo.length) {
    const [id, tag] = undo.pop(); index = FRAMES.findIndex(x => x.id === id);
    await send({frame_id: id, action: "undo", tag: tag});
  } else { return; }
  show();
});
show();
"""
