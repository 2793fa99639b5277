"""A frame's pictures (PNG from the cache, 1:1 crops) and its verdict history (JSON), by catalog id only."""

from __future__ import annotations

import math

STRETCHES = ("zscale", "asinh")

MAX_ID = 2**63 - 1
"""Largest catalog id (a 64-bit integer column): a longer number names no frame (404, not a crash)."""

PNG_HEADERS = {"Cache-Control": "private, max-age=60"}


def frame_id_of(request) -> int:
    """The frame id from the path, or 0 (no frame) when it is beyond any id the catalog can hold."""
    value = request.path_params["frame_id"]
    return value if 0 < value <= MAX_ID else 0


def frame_record(request) -> dict | None:
    """The frame's file record (only where the file is: serving a cached picture reads no more), or None."""
    frame_id = frame_id_of(request)
    record = request.app.state.desk.catalog.frame_files([frame_id]).get(frame_id)
    return record if record and record["readable"] else None


def picture(request, record: dict | None, kind: str):
    """The cached picture of that kind as a PNG response, or a one-line 404."""
    from starlette.responses import Response

    from obsdb.web.pages import not_found

    if record is None:
        return not_found("no such frame")
    content = request.app.state.desk.previews.read(record, kind)
    if content is None:
        return not_found("the frame cannot be read now" if kind != "stars" else "no stored stars to show")
    return Response(content, media_type="image/png", headers=PNG_HEADERS)


def frame_png(request):
    """``/frame/ID.png?stretch=&size=``: the large preview (zscale or asinh) or the grid's thumbnail."""
    from obsdb.web.pages import not_found

    stretch = request.query_params.get("stretch", "zscale")
    size = request.query_params.get("size", "large")
    if stretch not in STRETCHES or size not in ("large", "thumb"):
        return not_found("unknown stretch or size")
    return picture(request, frame_record(request), "thumb" if size == "thumb" else stretch)


def stars_png(request):
    """``/frame/ID/stars.png``: a few of the frame's stars, enlarged."""
    return picture(request, frame_record(request), "stars")


def aligned_png(request):
    """``/frame/ID/aligned.png``: the frame resampled onto its current run's reference (the blink)."""
    from obsdb.present.alignment import aligned_record
    from obsdb.web.pages import not_found

    stretch = request.query_params.get("stretch", "zscale")
    if stretch not in STRETCHES:
        return not_found("unknown stretch")
    record = aligned_record(request.app.state.desk.catalog, frame_id_of(request))
    if record is None:
        return not_found("no verified transform: this frame has no current alignment run")
    return picture(request, record, f"aligned-{stretch}")


def crop_png(request):
    """``/frame/ID/crop.png?x=&y=&w=&h=&stretch=&grid=``: a 1:1 crop, on the frame's grid or its reference's."""
    from starlette.responses import PlainTextResponse, Response

    from obsdb.imaging.preview import CROP_MAX_SIDE
    from obsdb.present.alignment import aligned_record
    from obsdb.web.pages import not_found

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
        record = aligned_record(request.app.state.desk.catalog, frame_id_of(request))
        if record is None:
            return not_found("no verified transform: this frame has no current alignment run")
        transform = record["alignment"]["transform"]
    else:
        record = frame_record(request)
        if record is None:
            return not_found("no such frame")
    png = request.app.state.desk.previews.crop(record, x, y, width, height, stretch=stretch, transform=transform)
    if png is None:
        return not_found("the frame cannot be read now")
    return Response(png, media_type="image/png", headers=PNG_HEADERS)


def frame_json(request):
    """``/frame/ID.json``: the frame's verdicts and shift history for the review panel."""
    from starlette.responses import JSONResponse

    details = request.app.state.desk.catalog.frame_verdicts(frame_id_of(request))
    if details is None:
        return JSONResponse({"error": "no such frame"}, 404)
    return JSONResponse(frame_facts(details))


def frame_facts(details: dict) -> dict:
    """One frame's verdicts and shift history for the review panel, from :meth:`obsdb.Catalog.frame_verdicts`."""
    from obsdb.text import without_tag
    from obsdb.web.pages import rounded

    runs = []
    for run in details.get("alignment", []):
        total = run.get("total") or {}
        runs.append({"run": run["run"], "method": run["method"], "current": run["current"],
                     "reference": run.get("reference"), "author": run.get("author"),
                     "created_at": (run.get("created_at") or "")[:19].replace("T", " "),
                     "dx": rounded(total.get("dx"), 3), "dy": rounded(total.get("dy"), 3),
                     "steps": [{"stage": s["stage"], "kind": s["kind"], "method": s.get("method"),
                                "dx": rounded(s.get("dx"), 3), "dy": rounded(s.get("dy"), 3),
                                "matched": s.get("n_matched"), "rms": rounded(s.get("residual_rms"), 3)}
                               for s in run.get("steps", [])]})
    tags = [{"name": t["name"], "source": t["source"], "reason": without_tag(t["name"], t["reason"]),
             "author": t["author"], "at": t["created_at"][:19].replace("T", " "), "active": not t["retracted_at"],
             "retracted": (t["retracted_at"] or "")[:19].replace("T", " ") or None,
             "retracted_by": t["retracted_by"]} for t in details.get("tag_history", [])]
    return {"id": details["id"], "tags": tags, "runs": runs}
