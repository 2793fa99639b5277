"""The review desk's pages: the nights, the archive, a night's frames, the review of one band.

Each route reads the catalog through its public methods and renders a template of
:mod:`obsdb.present` (``desk/*.html``, autoescape on).
"""

from __future__ import annotations

from urllib.parse import urlencode

from obsdb.catalog.status import MANUAL_REJECTING, STATUSES

REVIEW_TAGS = MANUAL_REJECTING
"""The manual verdicts offered by the review keys 1-5 (free text is key 6)."""

SORT_KEYS = ("number", "time", "fwhm", "background", "elongation", "transparency", "stars", "status")
"""Columns a night's table can be sorted by (``?sort=KEY``, ``?sort=-KEY`` descending)."""

NIGHT_VIEWS = ("table", "grid", "plots")
"""How a night's page shows its frames (``?view=``): a sortable table, thumbnails, or plots against time
(quality with the QA limits, and the shift track), each point a link to the frame's review."""

FILTERS = ("band", "status", "tag", "where")
"""A night's page's filters (``?band=``, ...), as ``obsdb frames`` takes them."""

TABLE_COLUMNS = (("number", "frame"), ("band", "band"), ("time", "time UTC"), ("fwhm", "FWHM px"),
                 ("background", "background"), ("elongation", "elongation"), ("transparency", "transparency"),
                 ("stars", "stars"), ("status", "status"))


def page(request, template: str, status: int = 200, **context):
    """A desk page: the template with the reviewer, the CSRF token and whether the desk is read-only."""
    from starlette.responses import HTMLResponse

    from obsdb.present.facts import background, metric
    from obsdb.present.pages import render

    desk = request.app.state.desk
    return HTMLResponse(render(template, csrf=desk.csrf, read_only=desk.read_only, reviewer=desk.reviewer(request),
                               metric=metric, background=background, **context), status)


def not_found(text: str = "not found"):
    """A one-line 404."""
    from starlette.responses import PlainTextResponse

    return PlainTextResponse(text, 404)


def nights(request):
    """``/``: every night with its counts."""
    return page(request, "desk/nights.html", nights=request.app.state.desk.catalog.nights())


def archive(request):
    """``/archive``: median FWHM and background per night, instrument and band."""
    from obsdb.present.figures import archive_figure
    from obsdb.present.pages import segment

    rows = request.app.state.desk.catalog.archive_quality()
    figure = archive_figure(rows, href=lambda night: f"/night/{segment(night)}") if rows else None
    return page(request, "desk/archive.html", rows=rows, figure=figure)


def archive_targets(request):
    """``/archive/targets``: light frames and hours per target, filter and night (``?total=1``: over all nights)."""
    per_night = request.query_params.get("total") not in ("1", "yes", "true")
    rows = request.app.state.desk.catalog.targets(per_night=per_night)
    return page(request, "desk/targets.html", rows=rows, per_night=per_night)


def archive_trends(request):
    """``/archive/trends``: each instrument's nights, medians and flags (``obsdb trends``)."""
    from obsdb.catalog.archive_stats import TREND_K, TREND_MIN_NIGHTS

    found = request.app.state.desk.catalog.trends()
    return page(request, "desk/trends.html", rows=found["rows"], source=found["transparency_source"],
                k=f"{TREND_K:g}", min_nights=TREND_MIN_NIGHTS)


def night(request):
    """``/night/NAME``: the night's light frames, filtered, as a table, a grid or plots."""
    from obsdb.errors import ObsdbError
    from obsdb.present.facts import short_instrument

    desk = request.app.state.desk
    found = path_names(request, 1)
    name = found[0] if found else None
    if name not in desk.catalog.night_names():
        return not_found("no such night")
    query = request.query_params
    filters = {k: (query.get(k) or "").strip() or None for k in FILTERS}
    view = query.get("view") if query.get("view") in NIGHT_VIEWS else "table"
    sort = query.get("sort", "time")
    if sort.lstrip("-") not in SORT_KEYS:
        sort = "time"
    every = desk.catalog.frame_dicts(night=name, light_only=True)
    error = None
    try:
        records = list(every) if not any(filters.values()) else desk.catalog.frame_dicts(
            night=name, light_only=True, band=("=" + filters["band"]) if filters["band"] else None,
            status=filters["status"], tag=filters["tag"], where=filters["where"])
    except ObsdbError as exc:
        records, error = [], str(exc)
    records.sort(key=lambda r: sort_value(r, sort.lstrip("-")), reverse=sort.startswith("-"))
    state = {k: v for k, v in filters.items() if v}

    def link(**change) -> str:
        merged = {**state, "view": view, "sort": sort, **change}
        return "?" + urlencode({k: v for k, v in merged.items() if v})

    # The first view of a night starts drawing its pictures, in the order shown: the grid's thumbnails
    # and the review's previews are then files on disk when they are asked for.
    desk.previews.warm([r for r in records if r["readable"]], kinds=("thumb",))
    return page(request, "desk/night.html", 400 if error else 200, name=name, every=every, records=records,
                statuses=list(STATUSES),
                counts={s: sum(r["status"] == s for r in every) for s in STATUSES},
                targets=sorted({r["object"] for r in every if r["object"]}),
                instruments=sorted({short_instrument(r["instrument"]) for r in every if r["instrument"]}),
                bands=sorted({r["band"] for r in every if r["band"]}), filters=filters, view=view, sort=sort,
                state_without_band=urlencode({k: v for k, v in state.items() if k != "band"}), error=error,
                views=[(v, None if v == view else link(view=v)) for v in NIGHT_VIEWS],
                heads=table_heads(sort, link), **night_plots(desk, name, records, view))


def table_heads(sort: str, link) -> list[dict]:
    """The night table's column heads: each a link that sorts by it (again: the other way)."""
    heads = []
    for key, title in TABLE_COLUMNS:
        mark = " ▲" if sort == key else (" ▼" if sort == f"-{key}" else "")
        heads.append({"title": title, "mark": mark,
                      "href": link(sort=f"-{key}" if sort == key else key) if key in SORT_KEYS else None})
    return heads


def night_plots(desk, name: str, records: list[dict], view: str) -> dict:
    """The plots view's figures: quality per band with the QA limits, and the shift track."""
    from obsdb.present.facts import threshold_lines
    from obsdb.present.figures import quality_figure, shift_figure
    from obsdb.present.pages import segment

    if view != "plots" or not records:
        return {"quality": [], "shifts": None}

    def href(record):
        return f"/review/{segment(name)}/{segment(record['band'])}?frame={record['id']}" if record["band"] else None

    events = desk.catalog.qa_events([name])
    quality = []
    for band in sorted({r["band"] for r in records if r["band"]}) or [None]:
        members = [r for r in records if r["band"] == band]
        quality.append(quality_figure(members, threshold_lines(members, {"qa_events": events}), band=band,
                                      href=href))
    return {"quality": quality, "shifts": shift_figure(records, href=href)}


def review(request):
    """``/review/NIGHT/BAND``: the keyboard review of one band's readable frames (the script does the rest)."""
    from obsdb.errors import ObsdbError

    desk = request.app.state.desk
    found = path_names(request, 2)
    name, band = found if found else (None, None)
    if name not in desk.catalog.night_names():
        return not_found("no such night")
    query = request.query_params
    try:
        records = [r for r in desk.catalog.frame_dicts(
            night=name, band="=" + band, light_only=True, status=query.get("status") or None,
            tag=query.get("tag") or None, where=query.get("where") or None) if r["readable"]]
    except ObsdbError as exc:
        return page(request, "desk/error.html", 400, title="review", error=str(exc))
    if not records:
        return not_found("no readable frame of that night and band")
    records.sort(key=lambda r: (r["date_obs"] or "", r["number"] or 0, r["path"]))
    frames, references = review_frames(desk.catalog, records)
    ids = [f["id"] for f in frames]
    try:
        start = ids.index(int(query.get("frame", "")))
    except ValueError:
        start = 0
    # Draw ahead from where the reviewer starts: the next frames are cached before they are asked for.
    desk.previews.warm(records[start:] + records[:start])
    data = {"night": name, "band": band, "frames": frames, "start": start,
            "references": {str(k): v for k, v in references.items()}, "readOnly": desk.read_only,
            "tags": REVIEW_TAGS}
    return page(request, "desk/review.html", name=name, band=band, tags=REVIEW_TAGS, data=data)


def review_frames(catalog, records: list[dict]) -> tuple[list[dict], dict]:
    """The review's frames (:func:`review_entry`) and the facts of every reference they blink against."""
    references = catalog.run_references({r["shift"]["run"] for r in records if r["shift"]})
    # A frame the current run could not register is blinked (unaligned) against the newest run's reference.
    newest = references.get(max(references)) if references else None
    frames = [review_entry(r, references, newest) for r in records]
    # Every reference by id, even one outside this band or filter: the blink shows the real reference.
    wanted = {f["reference"] for f in frames if f["reference"] is not None}
    known = {r["id"]: r for r in records if r["id"] in wanted}
    # Usually the reference is among the frames already read: only the others cost a query.
    missing = sorted(wanted - set(known))
    known.update({r["id"]: r for r in catalog.frame_dicts(frame_ids=missing)} if missing else {})
    return frames, {i: {"label": r["label"], "band": r["band"], "shape": r["shape"], "readable": r["readable"]}
                    for i, r in known.items()}


# -- what a page shows ------------------------------------------------------------------------------

def reviewed(record: dict) -> bool:
    """Whether a person has given this frame a verdict: an active tag from a person (the catalog's
    ``MANUAL_SOURCES``) that accepts or rejects it (``VERDICT_TAGS``); notes and rules' tags are not."""
    from obsdb.catalog.status import MANUAL_SOURCES, VERDICT_TAGS

    return any(t["source"] in MANUAL_SOURCES and t["name"] in VERDICT_TAGS for t in record.get("tags") or [])


def chain(record: dict) -> str:
    """The catalog's one-line explanation of a frame's status (who decided, what it overrides, what the
    rules say), else the status with its reasons."""
    explain = (record.get("verdict") or {}).get("explain")
    if isinstance(explain, str) and explain:
        return explain
    why = "; ".join(record["reasons"])
    return f"{record['status']}" + (f": {why}" if why else "")


def review_entry(record: dict, references: dict, newest_reference: int | None = None) -> dict:
    """A frame as the review script needs it: id, label, time, status, whether a person gave a verdict,
    rounded metrics, shape, shift, its reference and whether it has a transform onto it (``aligned``)."""
    from obsdb.present.facts import background, metric, minor_fwhm

    shift = record["shift"]
    reference = references.get(shift["run"]) if shift else None
    return {"id": record["id"], "label": record["label"], "file": record["file_name"],
            "time": (record["date_obs"] or "")[11:19] or None, "status": record["status"],
            "reviewed": reviewed(record), "chain": chain(record), "shape": record["shape"],
            "aligned": reference is not None,
            "reasons": record["reasons"], "fwhm": rounded(metric(record, "fwhm"), 2),
            "minor_fwhm": rounded(minor_fwhm(record), 2), "background": rounded(background(record), 0),
            "elongation": rounded(metric(record, "elongation"), 2),
            "transparency": rounded(metric(record, "transparency"), 2), "stars": metric(record, "n_stars"),
            "shift": None if not shift else {"dx": rounded(shift["dx"], 2), "dy": rounded(shift["dy"], 2),
                                             "run": shift["run"], "method": shift.get("method")},
            "reference": reference if reference is not None else newest_reference}


def sort_value(record: dict, key: str):
    """The key a night's table sorts by: missing values last either way; ties keep the night's order."""
    from obsdb.present.facts import background, metric

    value = {"number": record["number"], "time": record["date_obs"], "fwhm": metric(record, "fwhm"),
             "background": background(record), "elongation": metric(record, "elongation"),
             "transparency": metric(record, "transparency"), "stars": metric(record, "n_stars"),
             "status": record["status"]}[key]
    return (value is None, value if value is not None else 0, record["date_obs"] or "", record["number"] or 0)


def rounded(value, digits: int):
    """A number rounded for the page's script (None for none or NaN)."""
    if value is None or value != value:
        return None
    return round(float(value), digits) if digits else int(round(float(value)))


def path_names(request, count: int) -> list[str] | None:
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
