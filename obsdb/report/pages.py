"""The report's pages: what each shows, laid out by the templates in ``obsdb/present/templates/report/``.

The functions here gather the facts of a page into plain values (rows, captions, figures); the templates
place them and escape every text (Jinja2 autoescape).  Figures are the shared SVG ones of
:mod:`obsdb.present.figures`, drawn inline so each point links to its frame's page.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from obsdb.catalog.status import REJECTING_TAGS, STATUSES
from obsdb.present.facts import (band_scale, distinct, minor_fwhm, number, parse_time, pixel_scales,
                                 record_label, rejecting_names, threshold_lines, when)
from obsdb.present.pages import frames_text, render
from obsdb.report.images import DEPTH_SIGMA, safe_name
from obsdb.report.snapshot import Snapshot

MAX_GLANCE_STACKS = 4
"""Stack previews shown small at the top of the page (all of them are in the Stacks section)."""

GLANCE_WIDTH = 560
"""Width of the shift track at a glance, CSS pixels: drawn at the size the header shows it, text not shrunk."""


# -- figures ----------------------------------------------------------------------------------------

def quality_figures(snapshot: Snapshot, light: list[dict], pages: dict[int, str]) -> list[dict]:
    """Per band: the quality figure (points linked to the frames' pages) and its caption."""
    from obsdb.present.figures import quality_figure

    scales = pixel_scales(light, snapshot.details)
    extras = snapshot.details.get("frames", {})
    airmass = {r["id"]: number(extras.get(r["id"], {}).get("airmass")) for r in light}
    entries = []
    for band in sorted({r["band"] or "" for r in light}):
        members = [r for r in light if (r["band"] or "") == band]
        lines = threshold_lines(members, snapshot.details)
        scale = band_scale(members, scales)
        figure = quality_figure(members, lines, band=band or None, scale=scale, airmass=airmass,
                                href=lambda r: pages.get(r["id"]), number_axis_without_time=True)
        entries.append({"band": band, "figure": figure, "caption": _quality_caption(band, members, lines, scale)})
    return entries


def _quality_caption(band: str, members: list[dict], lines: list[dict], scale) -> str:
    n_rejected = sum(r["status"] == "rejected" for r in members)
    no_time = sum(r["date_obs"] is None for r in members)
    caption = (f"Band {band or '(none)'}: {len(members)} light frames, {n_rejected} rejected; "
               "accepted in green, rejected in red, pending hollow; each point names its frame and reasons "
               "and links to the frame's page.")
    if lines:
        rules = ", ".join(distinct(line["rule"] for line in lines))
        caption += (f" Dashed red lines: the thresholds of the newest QA run ({rules}); a frame beyond one "
                    "is tagged by that rule.")
    else:
        caption += " No QA run is recorded for these frames: no thresholds drawn (run obsdb qa)."
    caption += (" FWHM across the major axis, as the focus rule measures it, "
                + ("in arcsec (pixel scale from the headers)." if scale else "in pixels (no pixel scale "
                   "in the headers: PIXSCALE, SECPIX, CDELT or FOCALLEN with XPIXSZ)."))
    if no_time and no_time < len(members):
        caption += f" {no_time} frames without DATE-OBS are not drawn."
    return caption


def shift_figures(snapshot: Snapshot, records: list[dict], pages: dict[int, str]) -> tuple:
    """The shift track, full width and at a glance, coloured by pointing group (or band); (None, None)
    when no frame has a shift."""
    from obsdb.present.figures import shift_figure

    shifted = [r for r in records if r["shift"]]
    if not (snapshot.runs and shifted):
        return None, None
    # Without pointing groups (an automatic run needs none) the band is the next best colouring;
    # a band's frames span several pointings, so its points are not joined (a line would draw jumps).
    use_groups = any(r["group"] for r in shifted)
    series = (lambda r: r["group"] or "no group") if use_groups else (lambda r: f"band {r['band'] or '-'}")
    run_ids = sorted({r["shift"]["run"] for r in shifted}, reverse=True)
    runs = {run["id"]: run for run in snapshot.runs}
    if len(run_ids) == 1:
        run = runs.get(run_ids[0], {})
        title = (f"current shift, run {run_ids[0]} ({run.get('method', '?')}, "
                 f"reference {run.get('reference') or '-'})")
    else:
        title = "current shift of each frame, runs " + ", ".join(str(r) for r in run_ids)
    href = lambda r: pages.get(r["id"])  # noqa: E731
    full = shift_figure(shifted, href=href, series=series, title=title, joined=use_groups,
                        element_id="shift-track")
    small = shift_figure(shifted, href=href, series=series, title=title, joined=use_groups,
                         width=GLANCE_WIDTH, element_id="shifts-glance")
    return full, small


# -- the index page ---------------------------------------------------------------------------------

def index_page(snapshot: Snapshot, *, generated: datetime, version: str, quality: list[dict], shifts,
               shifts_small, thumbnails: bool, thumb_jobs, thumb_errors, light, stack_jobs, warnings, pages,
               run_outcome: dict | None = None, photometry: dict | None = None) -> str:
    """``index.html``: the night's facts, rejections first, quality, shift track, stacks, photometry (see
    :func:`obsdb.report.photometry.photometry_section`), thumbnails."""
    records = snapshot.records
    objects = sorted({r["object"] for r in records if r.get("object")})
    rejected = [r for r in records if r["status"] == "rejected"]
    overridden = [r for r in records if r["status"] == "accepted"
                  and any(t["name"] in REJECTING_TAGS for t in r["tags"])]
    current = Counter(r["shift"]["run"] for r in records if r["shift"])
    return render(
        "report/index.html", title="obsdb report" + (f": {', '.join(objects)}" if objects else ""),
        snapshot=snapshot, version=version, facts=observation_facts(snapshot),
        generated=when(generated.astimezone(timezone.utc).replace(tzinfo=None)),
        totals={s: sum(r["status"] == s for r in records) for s in STATUSES},
        counts=count_rows(records), glance_stacks=glance_stacks(stack_jobs), shifts_small=shifts_small,
        run_outcome=run_outcome or {}, warnings=warnings, photometry=photometry,
        rejected=[row for r in rejected for row in tag_rows(r, pages)], n_rejected=len(rejected),
        overridden=[row for r in overridden for row in tag_rows(r, pages)], n_overridden=len(overridden),
        quality=quality, shifts=shifts, runs=[dict(run, frames=len(snapshot.run_shifts.get(run["id"], {})),
                                                  current_for=current.get(run["id"], 0))
                                             for run in reversed(snapshot.runs)],
        colouring=("pointing group" if any(r["group"] for r in records) else "band (no pointing groups defined)"),
        stacks=[stack_entry(job) for job in stack_jobs], thumbnails=thumbnails,
        thumbnail_groups=thumbnail_groups(thumb_jobs, thumb_errors, light, records, pages))


def observation_facts(snapshot: Snapshot) -> list[tuple[str, str]]:
    """The header's first lines: night(s) with their time span, site, telescope and camera, pixel scale,
    observer(s), as the catalog and the frames' headers give them."""
    details = snapshot.details
    frames = details.get("frames", {})
    headers = [frames.get(r["id"], {}).get("header") or {} for r in snapshot.records]
    rows = []
    nights = [n for n in details.get("nights", []) if any(r["night"] == n["name"] for r in snapshot.records)]
    if nights:
        rows.append(("night" if len(nights) == 1 else "nights", "; ".join(_night_span(n) for n in nights)))
    sites = distinct([n["site"] for n in nights] + [h.get(k) for h in headers for k in ("SITENAME", "OBSERVAT", "SITE")])
    longitudes = distinct(f"{n['longitude']:.3f} deg E" for n in nights if n.get("longitude") is not None)
    if sites or longitudes:
        rows.append(("site", ", ".join(sites) + (" " if sites and longitudes else "")
                     + (f"(longitude {', '.join(longitudes)})" if longitudes else "")))
    instruments = details.get("instruments", {})
    described = [_instrument_text(key, instruments.get(key, {})) for key in distinct(r["instrument"] for r in snapshot.records)]
    if described:
        rows.append(("telescope / camera", "; ".join(described)))
    scales = [s for s in pixel_scales(snapshot.records, details).values() if s]
    if scales:
        low, high = min(scales), max(scales)
        rows.append(("pixel scale", f"{low:.3g} arcsec/px" if f"{low:.3g}" == f"{high:.3g}"
                     else f"{low:.3g} to {high:.3g} arcsec/px"))
    observers = distinct(h.get("OBSERVER") for h in headers)
    rows.append(("observer", ", ".join(observers) if observers else "not in the headers (OBSERVER)"))
    return rows


def _night_span(night: dict) -> str:
    first, last = parse_time(night["first_date_obs"]), parse_time(night["last_date_obs"])
    span = f"{night['name']}"
    if first and last:
        span += f" ({first:%Y-%m-%d %H:%M} to {last:%H:%M} UTC)" if first.date() == last.date() else \
            f" ({first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC)"
    return span


def _instrument_text(key: str, instrument: dict) -> str:
    text = " / ".join(distinct([instrument.get("telescope"), instrument.get("camera")])) or key
    if instrument.get("width"):
        text += f", {instrument['width']}x{instrument['height']} px"
    if (instrument.get("binning_x") or 1) > 1:
        text += f", binned {instrument['binning_x']}x{instrument.get('binning_y') or instrument['binning_x']}"
    if instrument.get("pixel_size"):
        text += f", {instrument['pixel_size']:.3g} um pixels"
    return text


def count_rows(records: list[dict]) -> list[dict]:
    """Frames per band and image type, by status, and the unreadable ones."""
    counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for record in records:
        key = (record["band"] or "-", record["type"] or "-")
        counts[key]["frames"] += 1
        counts[key][record["status"]] += 1
        if not record["readable"]:
            counts[key]["unreadable"] += 1
    columns = ("frames", "accepted", "rejected", "pending", "unreadable")
    return [{"band": band, "type": kind, **{column: c[column] for column in columns}}
            for (band, kind), c in sorted(counts.items())]


def _tag_class(name: str) -> str:
    if name in REJECTING_TAGS or name == "unreadable":
        return "nw rej"
    return "nw acc" if name == "accept" else "nw"


def tag_rows(record: dict, pages: dict[int, str]) -> list[dict]:
    """One row per active tag of a frame (every reason), the frame named on the first."""
    tags = list(record["tags"])
    if not record["readable"]:
        tags = [{"name": "unreadable", "source": "ingest", "author": "-", "created_at": None,
                 "reason": record.get("error") or "could not be read"}] + tags
    if not tags:
        tags = [{"name": "-", "source": "-", "author": "-", "created_at": None,
                 "reason": "; ".join(record["reasons"]) or "-"}]
    # The file column names a frame that has no number; the frame column would only repeat it.
    frame = {"id": record["id"], "number": "-" if record["number"] is None else str(record["number"]),
             "page": pages.get(record["id"]), "band": record["band"] or "-", "file_name": record["file_name"]}
    return [{"frame": frame if i == 0 else None, "name": tag["name"], "name_class": _tag_class(tag["name"]),
             "source": tag["source"], "author": tag["author"], "created_at": when(tag["created_at"]),
             "reason": without_tag(tag)} for i, tag in enumerate(tags)]


def without_tag(tag: dict) -> str:
    """A tag's reason as the table shows it, beside the tag's own column (:func:`obsdb.text.without_tag`)."""
    from obsdb.text import without_tag as strip

    return strip(tag["name"], tag.get("reason"))


def glance_stacks(stack_jobs: list[dict]) -> list[dict]:
    """The first stacks, small, under the header: their preview and a caption."""
    entries = []
    for job in [j for j in stack_jobs if not j["error"]][:MAX_GLANCE_STACKS]:
        params = job["parameters"] if isinstance(job["parameters"], dict) else {}
        label = " ".join(str(x) for x in (params.get("target"), job["band"] or "-") if x)
        frames = params.get("frames")
        entries.append({"rel": job["rel"], "caption": f"stack {label}" + (
            f", {frames_text(len(frames))}" if isinstance(frames, list) else "")})
    return entries


def stack_entry(job: dict) -> dict:
    """A stack in the Stacks section: preview (or why not), caption, path and its numbers."""
    params = job["parameters"] if isinstance(job["parameters"], dict) else {}
    method = params.get("method") or params.get("stack")
    caption = (f"{params['target']}, " if params.get("target") else "") + f"band {job['band'] or '-'}" + (
        f", {method}" if method else "")
    if isinstance(params.get("frames"), list):
        caption += f" of {frames_text(len(params['frames']))}"
    if isinstance(params.get("exptime"), (int, float)):
        caption += f", {params['exptime']:g} s in all"
    caption += (f", run {job['run']}" if job["run"] else "") + f", {when(job['created_at'])} UTC"
    return {"rel": job["rel"], "error": job["error"], "band": job["band"] or "", "caption": caption,
            "path": job["path"], "numbers": stack_numbers(job.get("quality") or {})}


def stack_numbers(quality: dict) -> list[tuple[str, str]]:
    """The stack's quality as rows: FWHM, stars, sky noise, depth, NCOMBINE, exposure."""
    rows = []
    if quality.get("ncombine") is not None:
        rows.append(("NCOMBINE", f"{quality['ncombine']:g}"))
    if quality.get("exptime") is not None:
        rows.append(("exposure", f"{quality['exptime']:g} s"))
    if quality.get("fwhm") is not None:
        rows.append(("FWHM", f"{quality['fwhm']:.2f} px" + (f" = {quality['fwhm_arcsec']:.2f} arcsec"
                                                            if quality.get("fwhm_arcsec") else "")))
    if quality.get("elongation") is not None:
        rows.append(("elongation", f"{quality['elongation']:.2f}"))
    if quality.get("n_stars") is not None:
        rows.append(("stars detected", f"{quality['n_stars']}"))
    if quality.get("rms") is not None:
        rows.append(("sky", f"{quality['background']:,.1f} ADU, rms {quality['rms']:.3g} ADU"))
    if quality.get("depth_adu") is not None:
        depth = f"{quality['depth_adu']:,.0f} ADU"
        if quality.get("depth_mag") is not None:
            depth = f"{quality['depth_mag']:.2f} mag ({depth})"
        rows.append((f"depth ({DEPTH_SIGMA:g} sigma point source)", depth))
    if quality.get("error"):
        rows.append(("not measured", quality["error"]))
    return rows


def thumbnail_groups(jobs: list[dict], errors: dict[int, str], light: list[dict], records: list[dict],
                     pages: dict[int, str]) -> list[dict]:
    """The thumbnail grid per band (and the unreadable frames): each cell's picture or why there is none."""
    job_by_id = {j["id"]: j for j in jobs}
    by_band: dict[str, list[dict]] = defaultdict(list)
    for record in light:
        by_band[record["band"] or "-"].append(record)
    unreadable = [r for r in records if not r["readable"]]
    if unreadable:
        by_band["unreadable"] = unreadable
    groups = []
    for band in sorted(by_band):
        members = sorted(by_band[band], key=lambda r: (r["date_obs"] or "", r["number"] or 0, r["path"]))
        cells = []
        for record in members:
            job = job_by_id.get(record["id"])
            shown = job is not None and record["id"] not in errors
            cells.append({"record": record, "label": record_label(record), "page": pages.get(record["id"]),
                          "rel": job["rel"] if shown else None,
                          "why": None if shown else (errors.get(record["id"]) or record.get("error") or "no thumbnail"),
                          "rejecting": ", ".join(rejecting_names(record)) if record["status"] == "rejected" else None})
        groups.append({"title": band if band == "unreadable" else "band " + band, "cells": cells,
                       "n_rejected": sum(r["status"] == "rejected" for r in members)})
    return groups


# -- a page per frame ---------------------------------------------------------------------------------

def page_names(records: list[dict]) -> dict[int, str]:
    """``frames/<label>.html`` per frame id; labels that two frames share (the same number from files of
    different names) get the file name, and the id if still not unique."""
    stems = {r["id"]: safe_name(r["label"]) for r in records}
    counts = Counter(stems.values())
    for r in records:
        if counts[stems[r["id"]]] > 1:
            stems[r["id"]] = safe_name(f"{r['label']}-{Path(r['file_name']).stem}")[:80]
    counts = Counter(stems.values())
    return {r["id"]: "frames/" + (stems[r["id"]] if counts[stems[r["id"]]] == 1 else f"{stems[r['id']]}-{r['id']}")
            + ".html" for r in records}


@dataclass
class FramePages:
    """What every frame's page needs besides its record."""

    snapshot: Snapshot
    pages: dict[int, str]
    thumbs: dict[int, str]
    zooms: dict[int, str]
    scales: dict[int, float | None]
    version: str
    order: list[int] = field(default_factory=list)

    def __post_init__(self):
        self.order = [r["id"] for r in self.snapshot.records]
        self.position = {frame_id: i for i, frame_id in enumerate(self.order)}
        self.by_id = {r["id"]: r for r in self.snapshot.records}


def frame_page(record: dict, ctx: FramePages) -> str:
    """One frame's page: its images beside the reference's, a zoom on its stars, every measurement,
    every tag (retracted ones too), every shift step of every run, and links to its files."""
    details = ctx.snapshot.details
    i = ctx.position[record["id"]]
    previous = ctx.by_id[ctx.order[i - 1]] if i > 0 else None
    following = ctx.by_id[ctx.order[i + 1]] if i + 1 < len(ctx.order) else None
    run = (record["shift"] or {}).get("run")
    reference = ctx.by_id.get(details.get("run_references", {}).get(run))
    history = details.get("tag_history", {}).get(record["id"], [])
    return render(
        "report/frame.html", record=record, version=ctx.version, pages=ctx.pages,
        previous=previous, following=following,
        rejecting=", ".join(rejecting_names(record)) if record["status"] == "rejected" else None,
        thumb=ctx.thumbs.get(record["id"]), zoom=ctx.zooms.get(record["id"]), run=run, reference=reference,
        reference_thumb=ctx.thumbs.get(reference["id"]) if reference else None,
        measurements=measurements(record, details.get("frames", {}).get(record["id"], {}),
                                  ctx.scales.get(record["id"])),
        tags=[dict(tag, name_class=_tag_class(tag["name"]),
                   reason_shown=without_tag(tag), retracted=_retracted(tag)) for tag in history],
        step_runs=step_runs(record, details.get("steps", {}).get(record["id"], []), ctx.snapshot.runs),
        files=[_file_link(record["path"])], renders=[dict(render_row, link=_file_link(render_row["path"]))
                                                     for render_row in details.get("renders", {}).get(record["id"], [])])


def _retracted(tag: dict) -> str | None:
    if tag["retracted_at"] is None:
        return None
    return f"{when(tag['retracted_at'])} by {tag['retracted_by'] or '-'}: {tag['retract_reason'] or '-'}"


def _file_link(path: str) -> dict:
    """A file's path and its ``file://`` address (None when the path cannot be one)."""
    try:
        uri = Path(path).resolve().as_uri()
    except ValueError:
        uri = None
    return {"path": path, "uri": uri}


def measurements(record: dict, extra: dict, scale: float | None) -> list[tuple[str, str]]:
    """The frame's facts and metrics as (name, value) rows, and a few header keywords it has."""
    from obsdb.present.pages import fmt

    metrics, stats = record["metrics"] or {}, record["stats"] or {}
    header = extra.get("header") or {}
    minor = minor_fwhm(record)

    def arcsec(px):
        return f" = {px * scale:.2f} arcsec" if px is not None and scale else ""

    rows = [("DATE-OBS (UTC)", when(record["date_obs"])), ("exposure", fmt(record["exptime"], "g", "s")),
            ("airmass", fmt(extra.get("airmass"), ".3f")), ("band", record["band"] or "-"),
            ("object", record["object"] or "-"), ("instrument", record["instrument"] or "-"),
            ("pixel scale", fmt(scale, ".3g", "arcsec/px")),
            ("shape", "x".join(str(v) for v in reversed(record["shape"])) + " px" if record["shape"] else "-"),
            ("stars", fmt(metrics.get("n_stars"), "d")),
            ("FWHM (round-equivalent)", fmt(metrics.get("fwhm"), ".2f", "px") + arcsec(metrics.get("fwhm"))),
            ("FWHM, minor axis", fmt(minor, ".2f", "px") + arcsec(minor)),
            ("HFD", fmt(metrics.get("hfd"), ".2f", "px")), ("elongation", fmt(metrics.get("elongation"), ".2f")),
            ("transparency", fmt(metrics.get("transparency"), ".2f")),
            ("background", fmt(metrics.get("background", stats.get("background")), ",.1f", "ADU")),
            ("background rms", fmt(metrics.get("background_rms", stats.get("background_rms")), ",.2f", "ADU")),
            ("background gradient", fmt(metrics.get("background_gradient"), ",.1f", "ADU")),
            ("pixel median / min / max", " / ".join(fmt(stats.get(k), ",.1f") for k in ("median", "min", "max"))),
            ("saturated pixels", fmt(stats.get("n_saturated"), "d")), ("NaN pixels", fmt(stats.get("n_nan"), "d"))]
    rows.extend((key, str(header[key])) for key in ("OBSERVER", "TELESCOP", "INSTRUME", "FOCALLEN", "XPIXSZ",
                                                      "XBINNING", "GAIN", "CCD-TEMP", "FOCUSPOS") if key in header)
    return rows


def step_runs(record: dict, steps: list[dict], runs: list[dict]) -> list[dict]:
    """The frame's shift steps per run, newest run first, each with its sum and whether it is current."""
    known = {run["id"]: run for run in runs}
    current = (record["shift"] or {}).get("run")
    by_run: dict[int, list[dict]] = defaultdict(list)
    for step in steps:
        by_run[step["run"]].append(step)
    return [{"id": run_id, "run": known.get(run_id, {}), "steps": by_run[run_id], "current": run_id == current,
             "dx": sum(s["dx"] for s in by_run[run_id]), "dy": sum(s["dy"] for s in by_run[run_id])}
            for run_id in sorted(by_run, reverse=True)]
