"""The review desk's changes: a verdict (accept, reject, undo) and the reviewer's name.

Each is a POST carrying the page's CSRF token, refused on a read-only desk and above :data:`MAX_BODY`
bytes; a verdict is written through :meth:`obsdb.Catalog.tag` / :meth:`~obsdb.Catalog.untag`, and the
answer gives the status the catalog computes afterwards (the desk never guesses it).
"""

from __future__ import annotations

MAX_BODY = 16_384
"""Largest verdict or rename request, bytes: a reason is at most
:data:`obsdb.catalog.tags.MAX_REASON` characters, the rest is a few short fields."""


def refused(request):
    """A 403 when the desk is read-only or the request lacks the page's CSRF token; a 413 when too large;
    else None."""
    from starlette.responses import JSONResponse

    from obsdb.web.guard import same_secret

    desk = request.app.state.desk
    if desk.read_only:
        return JSONResponse({"error": "the review desk is read-only (obsdb serve --read-only)"}, 403)
    if not same_secret(request.headers.get("x-csrf-token", ""), desk.csrf):
        return JSONResponse({"error": "missing or wrong CSRF token: reload the page"}, 403)
    try:
        size = int(request.headers.get("content-length") or 0)
    except ValueError:
        size = MAX_BODY + 1
    if size > MAX_BODY:
        return JSONResponse({"error": f"request too large ({size:,} bytes; at most {MAX_BODY:,})"}, 413)
    return None


async def verdict(request):
    """``POST /verdict`` ``{frame_id, action: accept|reject|undo, tag?, reason?}``: the frame's new status."""
    from starlette.responses import JSONResponse

    from obsdb.web.pages import chain, reviewed
    from obsdb.web.pictures import MAX_ID

    if (answer := refused(request)) is not None:
        return answer
    try:
        payload = await request.json()
        frame_id, action = int(payload["frame_id"]), str(payload["action"])[:20]
    except (ValueError, KeyError, TypeError, OverflowError):
        return JSONResponse({"error": "expected frame_id and action"}, 400)
    catalog = request.app.state.desk.catalog
    records = catalog.frame_dicts(frame_ids=[frame_id]) if 0 < frame_id <= MAX_ID else []
    if not records:
        return JSONResponse({"error": "no such frame"}, 404)
    who = request.app.state.desk.reviewer(request)
    failure = _record_verdict(catalog, records[0]["path"], action, payload, who)   # a path names exactly that file
    if failure is not None:
        return failure
    after = catalog.frame_dicts(frame_ids=[frame_id])[0]
    before = records[0]["status"]
    return JSONResponse({"status": after["status"], "previous": before, "changed": after["status"] != before,
                         "reasons": after["reasons"], "chain": chain(after), "reviewed": reviewed(after),
                         "author": who})


def _record_verdict(catalog, selector: str, action: str, payload: dict, who: str):
    """Tag or untag the frame as the action says; an error response, or None when it was recorded."""
    from starlette.responses import JSONResponse

    from obsdb.errors import ObsdbError
    from obsdb.web.pages import REVIEW_TAGS

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
    return None


async def rename(request):
    """``POST /reviewer`` ``{name}``: the reviewer's name for this browser (a cookie)."""
    from urllib.parse import quote

    from starlette.responses import JSONResponse

    from obsdb.web.reviewer import MAX_REVIEWER_NAME, REVIEWER_COOKIE, clean_name

    if (answer := refused(request)) is not None:
        return answer
    try:
        name = clean_name(str((await request.json())["name"]))
    except (ValueError, KeyError, TypeError):
        name = ""
    if not name:
        return JSONResponse({"error": f"a reviewer name is 1 to {MAX_REVIEWER_NAME} printable characters"}, 400)
    response = JSONResponse({"reviewer": name})
    # Quoted: a cookie holds ASCII only, a reviewer may be Łukasz Dvořák.
    response.set_cookie(REVIEWER_COOKIE, quote(name, safe=""), httponly=True, samesite="strict")
    return response
