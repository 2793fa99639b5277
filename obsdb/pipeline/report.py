"""A static HTML report of the catalog: plots, shift tracks, thumbnails, rejections, stacks.

Everything is read from the catalog in one session, then the PNG files are
drawn (matplotlib's Agg canvas, imported lazily, never pyplot) and the page is
written last, so a reader never sees an ``index.html`` that points at images
not yet written.  Every file is written through a temporary file and a rename.

Layout of the output folder::

    DIR/index.html
    DIR/plots/quality-<i>-<band>.png     background, FWHM, elongation, transparency, stars, airmass vs time,
                                         with the QA rules' thresholds
    DIR/plots/shifts.png                 each frame's current dx, dy vs time, drawn at the size the
                                         page's header shows it (legible there, not shrunk)
    DIR/plots/shifts-full.png            the same, full width, in the shift track section
    DIR/thumbs/<number>-<key>.png        one per light frame (cached by content key)
    DIR/zooms/<number>-<key>.png         a few of its stars enlarged (same read, same key)
    DIR/frames/<label>.html              a page per frame: metrics, tag history, shift steps, links
    DIR/stacks/stack-<i>-<band>.png      previews of the stacks recorded by `obsdb render`
"""

from __future__ import annotations

import hashlib
import html
import io
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from obsdb.catalog.queries import record_label
from obsdb.catalog.status import REJECTING_TAGS

THUMBNAIL_TYPES = ("light", "unknown")
"""Image types shown in the thumbnail grid and the quality plots (as QA judges them)."""

THUMBNAIL_VERSION = "2"
"""Part of each thumbnail's cache key: bump when the thumbnail drawing changes."""

MAX_POINT_LABELS = 30
"""Above this many rejected frames in a band, points carry no number label (the legend still names the tags)."""

MAX_ZOOM_STARS = 4
"""Stars enlarged on a frame's page (the brightest clean ones, spread over the field)."""

ARCSEC_PER_RADIAN = 206264.806

_SUBDIRS = ("plots", "thumbs", "stacks", "zooms", "frames")

_ACCEPTED_COLOUR = "#1f77b4"
_PENDING_COLOUR = "#9e9e9e"
_REJECT_STYLES = [("#d62728", "X"), ("#ff7f0e", "D"), ("#9467bd", "s"), ("#8c564b", "^"),
                  ("#e377c2", "v"), ("#bcbd22", "P"), ("#17becf", "*"), ("#7f7f7f", "h")]


@dataclass
class ReportResult:
    """What :func:`build_report` wrote.

    Attributes
    ----------
    index_path : pathlib.Path
        The page, ``DIR/index.html``.
    n_images : int
        PNG files the page shows (plots, thumbnails, stack previews).
    rejected_numbers : list of int
        Numbers of the rejected frames, all named in the page (frames without
        a number are named by file name and are not listed here).
    n_thumbnails_drawn : int
        Thumbnails drawn now (the others were still valid from an earlier report).
    warnings : list of str
        Problems that did not stop the report (a frame or stack file that could
        not be read); each is also shown in the page.
    n_frame_pages : int
        Pages of single frames, ``DIR/frames/<label>.html``, one per frame.
    """

    index_path: Path
    n_images: int
    rejected_numbers: list[int]
    n_thumbnails_drawn: int = 0
    warnings: list[str] = field(default_factory=list)
    n_frame_pages: int = 0


@dataclass
class _Snapshot:
    """Everything the report needs from the catalog, read in one session."""

    url: str
    """The catalog's URL as shown (a file path; a server URL without its password)."""
    records: list[dict]
    runs: list[dict]
    run_shifts: dict[int, dict[int, tuple[float, float]]]
    stacks: list[dict]
    details: dict = field(default_factory=dict)
    """:meth:`obsdb.Catalog.report_details`: nights, instruments, per-frame extras, histories, QA thresholds."""


def build_report(catalog, out_dir: str | os.PathLike, *, thumbnails: bool = True, workers: int = 1,
                 thumbnail_size: int = 160, progress: Callable[[int, int, str], None] | None = None,
                 now: datetime | None = None, nights=None, executor=None,
                 run_outcome: dict | None = None) -> ReportResult:
    """Write a static report of the catalog into ``out_dir``.

    Parameters
    ----------
    catalog : obsdb.Catalog
        An open catalog (only read).
    out_dir : path-like
        Output folder (created); ``index.html`` and the ``plots/``, ``thumbs/``
        and ``stacks/`` sub-folders are written there.  PNG files in those
        sub-folders that the new page no longer shows are removed.
    thumbnails : bool
        Draw the thumbnail grid of the light frames (reads every frame once).
    workers : int
        Processes for the thumbnails.
    thumbnail_size : int
        Longest side of a thumbnail, pixels.
    progress : callable, optional
        ``progress(done, total, item)`` after each image file.
    now : datetime, optional
        The generation time shown in the page [default: now, UTC].
    nights : str or list of str, optional
        Only these nights' frames, runs and stacks [default: the whole catalog].
    run_outcome : dict, optional
        What `obsdb run` did, shown first: ``steps`` (name, text) pairs,
        ``not_stacked`` (one line per band that gave no stack, saying why),
        ``advice`` (what to do about it), ``stacked`` (whether any stack was
        made) and ``catalog_rule``.

    Returns
    -------
    ReportResult

    Raises
    ------
    ValueError
        ``workers`` or ``thumbnail_size`` below 1.
    """
    from obsdb import __version__
    from obsdb.imaging.fitsio import atomic_write_bytes

    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if thumbnail_size < 16:
        raise ValueError(f"thumbnail size must be at least 16 px, got {thumbnail_size}")
    out = Path(out_dir)
    owned = _ReportFiles(out)
    snapshot = _read_catalog(catalog, nights)
    generated = now or datetime.now(timezone.utc)
    records = snapshot.records
    warnings: list[str] = []

    light = [r for r in records if r["readable"] and r["type"] in THUMBNAIL_TYPES]
    scales = _pixel_scales(light, snapshot.details)
    thumb_jobs = _thumbnail_jobs(light, out, thumbnail_size, snapshot.details) if thumbnails else []
    stack_jobs = _stack_jobs(snapshot.stacks, out)
    bands = _bands(light)
    quality_rels = [f"plots/quality-{index}-{_safe(band or 'none')}.png" for index, band in enumerate(bands)]
    shift_rels = ["plots/shifts-full.png", "plots/shifts.png"]
    pages = _page_names(records)
    # Nothing is written until every file the report would replace is known to be its own.
    owned.refuse_foreign(["index.html", *shift_rels, *quality_rels, *(j["rel"] for j in thumb_jobs),
                          *(j["zoom_rel"] for j in thumb_jobs if j["zoom_rel"]),
                          *(j["rel"] for j in stack_jobs), *pages.values()])
    for job in thumb_jobs:
        job["reuse"] = job["reuse"] and owned.is_own(job["rel"]) and (
            job["zoom_rel"] is None or owned.is_own(job["zoom_rel"]))
    for sub in _SUBDIRS:
        (out / sub).mkdir(parents=True, exist_ok=True)
    total = len(bands) + 1 + len(thumb_jobs) + len(stack_jobs)
    done = 0

    def tick(item: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, item)

    quality_plots = []
    styles = _point_styles(light)
    for index, band in enumerate(bands):
        members = [r for r in light if (r["band"] or "") == band]
        rel = quality_rels[index]
        lines = threshold_lines(members, snapshot.details)
        unit_scale = _band_scale(members, scales)
        owned.wrote(rel, atomic_write_bytes(out / rel, _quality_png(band, members, styles, lines=lines,
                                                                   scale=unit_scale, details=snapshot.details)))
        quality_plots.append((band, rel, members, lines, unit_scale))
        tick(f"quality {band or '-'}")

    shifted = [r for r in (light or records) if r["shift"]]
    shifts_rel = None
    if snapshot.runs and shifted:
        shifts_rel = shift_rels[0]
        owned.wrote(shifts_rel, atomic_write_bytes(out / shifts_rel, _shifts_png(snapshot, shifted)))
        owned.wrote(shift_rels[1], atomic_write_bytes(out / shift_rels[1],
                                                      _shifts_png(snapshot, shifted, small=True)))
    tick("shift track")

    drawn = 0
    thumb_errors: dict[int, str] = {}
    for job, error in _draw_thumbnails(thumb_jobs, workers, executor):
        if error is None and job["drawn"]:
            drawn += 1
        if error is not None:
            thumb_errors[job["id"]] = error
            warnings.append(f"{job['path']}: thumbnail not drawn: {error}")
        tick(job["file_name"])

    for job in stack_jobs:
        job["error"] = _draw_stack(job, out)
        if job["error"]:
            warnings.append(f"{job['path']}: stack preview not drawn: {job['error']}")
        tick(Path(job["path"]).name)

    zooms = {j["id"]: j["zoom_rel"] for j in thumb_jobs
             if j["zoom_rel"] and j["id"] not in thumb_errors and (out / j["zoom_rel"]).is_file()}
    thumbs_shown = {j["id"]: j["rel"] for j in thumb_jobs if j["id"] not in thumb_errors}
    context = _PageContext(snapshot=snapshot, pages=pages, thumbs=thumbs_shown, zooms=zooms, scales=scales,
                           version=__version__)
    for record in records:
        rel = pages[record["id"]]
        payload = _frame_page(record, context).encode("utf-8")
        digest = hashlib.sha256(payload).hexdigest()
        # An unchanged page is not rewritten: a night's hundreds of pages cost no write when nothing changed.
        if not (owned.is_own(rel) and owned.before.get(rel) == digest):
            atomic_write_bytes(out / rel, payload)
        owned.wrote(rel, digest)

    page = _page(snapshot, generated=generated, version=__version__, quality_plots=quality_plots,
                 shifts_rel=shifts_rel, thumbnails=thumbnails, thumb_jobs=thumb_jobs,
                 thumb_errors=thumb_errors, light=light, stack_jobs=stack_jobs, warnings=warnings, pages=pages,
                 run_outcome=run_outcome)
    index = out / "index.html"
    owned.wrote("index.html", atomic_write_bytes(index, page.encode("utf-8")))

    shown = ({rel for _, rel, *_ in quality_plots} | ({shifts_rel, shift_rels[1]} if shifts_rel else set())
             | set(thumbs_shown.values()) | {j["rel"] for j in stack_jobs if not j["error"]})
    for rel in (shown | set(zooms.values())) - set(owned.now):
        owned.wrote(rel)          # drawn in a worker, or kept from the last report
    owned.finish(keep=shown | set(zooms.values()) | set(pages.values()) | {"index.html"})
    rejected = [r["number"] for r in records if r["status"] == "rejected" and r["number"] is not None]
    return ReportResult(index_path=index, n_images=len(shown), rejected_numbers=rejected,
                        n_thumbnails_drawn=drawn, warnings=warnings, n_frame_pages=len(pages))


# -- reading the catalog -------------------------------------------------------------------------

def _read_catalog(catalog, nights=None) -> _Snapshot:
    facts = catalog.report_facts(nights=nights)
    details = catalog.report_details(nights=nights)
    return _Snapshot(url=catalog.display_url, records=facts["records"], runs=facts["runs"],
                     run_shifts=facts["run_shifts"], stacks=_newest_per_path(facts["stacks"]), details=details)


def _newest_per_path(stacks: list[dict]) -> list[dict]:
    """One entry per stack file: a re-render overwrites the file, so only its newest row describes it."""
    newest: dict[str, dict] = {}
    for stack in stacks:
        newest[stack["path"]] = stack
    return sorted(newest.values(), key=lambda s: ((s["band"] or ""), s["id"]))


def _bands(records: list[dict]) -> list[str]:
    return sorted({r["band"] or "" for r in records})


# -- small helpers --------------------------------------------------------------------------------

def _safe(text: str) -> str:
    """A file-name-safe rendering of a band or number (the index in the name keeps it unique)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text))[:40] or "_"


def parse_time(value: str | None) -> datetime | None:
    """An ISO time from the catalog's JSON as a datetime (None when absent or not a time)."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _rejecting_names(record: dict) -> list[str]:
    """Names of the tags that reject a rejected frame (or 'unreadable')."""
    if not record["readable"]:
        return ["unreadable"]
    names = []
    for tag in record["tags"]:
        if tag["name"] in REJECTING_TAGS and tag["name"] not in names:
            names.append(tag["name"])
    return names or ["rejected"]


def _badge(record: dict) -> str | None:
    if record["status"] != "rejected":
        return None
    names = _rejecting_names(record)
    # A 160 px thumbnail holds two short names; the page's caption lists all of them.
    return ", ".join(names[:2]) + (f" +{len(names) - 2}" if len(names) > 2 else "")


def _frames(count: int) -> str:
    return f"{count} frame" if count == 1 else f"{count} frames"


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _time_axis(records: list[dict]):
    """x values per record (date_obs, or frame number when no frame has a time) and whether they are times."""
    times = [parse_time(r["date_obs"]) for r in records]
    if any(t is not None for t in times):
        return times, True
    return [r["number"] if r["number"] is not None else None for r in records], False


def _format_time_axis(ax, is_time: bool, xs=()) -> None:
    if is_time:
        import matplotlib.dates as mdates

        times = [x for x in xs if x is not None]
        if times and max(times) - min(times) < timedelta(minutes=2):
            # One frame, or a burst within a minute: the locator finds no interval in a point.
            ax.set_xlim(min(times) - timedelta(minutes=5), max(times) + timedelta(minutes=5))
        locator = mdates.AutoDateLocator(maxticks=8)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_xlabel("DATE-OBS (UTC)")
    else:
        ax.set_xlabel("frame number (no DATE-OBS)")


# -- pixel scale and thresholds -------------------------------------------------------------------

def _number(value) -> float | None:
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            return None
    value = float(value)
    return value if math.isfinite(value) else None


def _header_scale(header: dict, pixel_size: float | None = None) -> float | None:
    """Arcseconds per pixel from a header: PIXSCALE/SECPIX/SCALE, else the WCS (CDELT, CD), else FOCALLEN (mm)
    with XPIXSZ (micron, as binned: MaxIm DL's convention) or the instrument's pixel size; None if unknown."""
    import math

    for key in ("PIXSCALE", "SECPIX", "SECPIX1", "SCALE"):
        value = _number(header.get(key))
        if value:
            return _plausible(abs(value))
    cd11, cd12 = _number(header.get("CD1_1")), _number(header.get("CD1_2"))
    if cd11 is not None or cd12 is not None:
        return _plausible(math.hypot(cd11 or 0.0, cd12 or 0.0) * 3600.0)
    cdelt = _number(header.get("CDELT1"))
    if cdelt:
        return _plausible(abs(cdelt) * 3600.0)
    focal = _number(header.get("FOCALLEN"))
    pixel = _number(header.get("XPIXSZ")) or _number(header.get("PIXSIZE1")) or pixel_size
    if focal and pixel and focal > 0:
        return _plausible(ARCSEC_PER_RADIAN * pixel * 1e-3 / focal)
    return None


def _plausible(scale: float) -> float | None:
    # A WCS of 1 degree per pixel or a focal length in metres gives nonsense: no conversion rather than wrong.
    return scale if 0.01 <= scale <= 120.0 else None


def _pixel_scales(records: list[dict], details: dict) -> dict[int, float | None]:
    """Arcseconds per pixel of each frame, or None."""
    frames, instruments = details.get("frames", {}), details.get("instruments", {})
    scales = {}
    for record in records:
        extra = frames.get(record["id"], {})
        instrument = instruments.get(extra.get("instrument") or "", {})
        scales[record["id"]] = _header_scale(extra.get("header") or {}, instrument.get("pixel_size"))
    return scales


def _band_scale(records: list[dict], scales: dict[int, float | None]) -> dict[int, float] | None:
    """Each frame's scale when every frame of the band has one (the FWHM is then drawn in arcsec), else None."""
    known = {r["id"]: scales.get(r["id"]) for r in records}
    return known if known and all(known.values()) else None


def _qa_thresholds(details: dict, night: str, band: str | None):
    """The thresholds of the newest QA run that judged this night and band (None: no QA run recorded)."""
    from dataclasses import fields

    from obsdb.pipeline.qa_rules import QaThresholds

    known = {f.name for f in fields(QaThresholds)}
    for event in details.get("qa_events", []):
        if night not in event["nights"]:
            continue
        if event["band"] and (band or "").lower() != str(event["band"]).lower():
            continue
        try:
            return QaThresholds.from_mapping({k: v for k, v in event["thresholds"].items() if k in known})
        except ValueError:
            return QaThresholds()
    return None


def threshold_lines(records: list[dict], details: dict) -> list[dict]:
    """The QA rules' limits for the frames of one band, per judged group (night, instrument, target).

    Each line: ``panel`` (metric key), ``value`` (in the panel's unit; the FWHM in px), ``rule`` (its name
    in :mod:`obsdb.pipeline.qa_rules`), ``text`` (how it was set) and ``ids`` (the frames it applies to).
    The yardsticks (clear background, best FWHM) are recomputed with the rules' own function from the
    metrics the catalog holds, so the lines are where the rules put them.
    """
    from obsdb.pipeline.qa_rules import FrameMetricsInput, band_statistics

    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in records:
        if record["metrics"]:
            groups[(record["night"], record["instrument"], record["object"])].append(record)
    lines = []
    for (night, _, _), members in sorted(groups.items(), key=lambda item: tuple(str(v) for v in item[0])):
        limits = _qa_thresholds(details, night, members[0]["band"])
        if limits is None:
            continue
        ids = [r["id"] for r in members]
        inputs = [FrameMetricsInput(key=r["id"], band=None, n_stars=r["metrics"].get("n_stars"),
                                    fwhm=r["metrics"].get("fwhm"), elongation=r["metrics"].get("elongation"),
                                    background=r["metrics"].get("background")) for r in members]
        stats = band_statistics(inputs, limits)[None]
        if stats.clear_background == stats.clear_background and stats.clear_background > 0:
            value = limits.cloud_background_ratio * stats.clear_background
            lines.append({"panel": "background", "value": value, "rule": "cloud-background", "ids": ids,
                          "text": f"{limits.cloud_background_ratio:g} x {stats.clear_background:,.0f} clear"})
        if limits.cloud_background_max is not None:
            lines.append({"panel": "background", "value": float(limits.cloud_background_max), "ids": ids,
                          "rule": "cloud-background-max", "text": "absolute limit"})
        if stats.best_fwhm == stats.best_fwhm:
            lines.append({"panel": "fwhm", "value": limits.focus_fwhm_ratio * stats.best_fwhm, "rule": "focus-fwhm",
                          "ids": ids, "text": f"{limits.focus_fwhm_ratio:g} x {stats.best_fwhm:.2f} px best"})
        if limits.focus_fwhm_max is not None:
            lines.append({"panel": "fwhm", "value": float(limits.focus_fwhm_max), "rule": "focus-fwhm-max",
                          "ids": ids, "text": "absolute limit"})
        lines.append({"panel": "elongation", "value": float(limits.trail_elongation), "rule": "trail-elongation",
                      "ids": ids, "text": ""})
        lines.append({"panel": "transparency", "value": float(limits.cloud_transparency), "ids": ids,
                      "rule": "cloud-transparency", "text": ""})
        if stats.typical_stars == stats.typical_stars:
            lines.append({"panel": "n_stars", "value": limits.few_stars_ratio * stats.typical_stars,
                          "rule": "few-stars", "ids": ids,
                          "text": f"{limits.few_stars_ratio:g} x {stats.typical_stars:.0f} typical"})
    return lines


# -- quality plots ---------------------------------------------------------------------------------

_QUALITY_PANELS = (("background", "background\n(ADU)"), ("fwhm", "FWHM, minor\naxis (px)"),
                   ("elongation", "elongation\n(a/b)"), ("transparency", "transparency"),
                   ("n_stars", "stars"), ("airmass", "airmass"))
"""The quality plot's panels, top to bottom: metric key and axis label."""

_THRESHOLD_COLOUR = "#b71c1c"


def _point_kind(record: dict) -> str:
    if record["status"] == "rejected":
        return "rejected: " + ", ".join(_rejecting_names(record))
    return record["status"]


def _point_styles(records: list[dict]) -> dict[str, tuple[str, str]]:
    """Colour and marker per kind of point, shared by all bands so a tag looks the same in every plot."""
    styles = {"accepted": (_ACCEPTED_COLOUR, "o"), "pending": (_PENDING_COLOUR, "o")}
    reject_kinds = sorted({_point_kind(r) for r in records if r["status"] == "rejected"})
    for i, kind in enumerate(reject_kinds):
        styles[kind] = _REJECT_STYLES[i % len(_REJECT_STYLES)]
    return styles


def _quality_png(band: str, records: list[dict], styles: dict[str, tuple[str, str]], *,
                 lines: list[dict] = (), scale: dict[int, float] | None = None, details: dict | None = None) -> bytes:
    """Six panels against time, each with the QA rules' thresholds and their names; rejected frames get a
    colour and marker per set of rejecting tags.  The FWHM is the minor-axis one (what the focus rule
    compares), in arcsec when ``scale`` gives every frame's pixel scale."""
    import matplotlib.dates as mdates

    xs, is_time = _time_axis(records)
    kinds = [_point_kind(r) for r in records]
    reject_kinds = sorted({k for k in kinds if k.startswith("rejected")})
    label_points = sum(k.startswith("rejected") for k in kinds) <= MAX_POINT_LABELS
    extras = (details or {}).get("frames", {})
    x_by_id = {r["id"]: x for r, x in zip(records, xs)}
    numeric = [mdates.date2num(x) if is_time else x for x in xs if x is not None]
    x_lo, x_hi = (min(numeric), max(numeric)) if numeric else (0.0, 1.0)

    def value(record, key):
        if key == "airmass":
            return _number(extras.get(record["id"], {}).get("airmass"))
        if key == "fwhm":
            width = minor_fwhm(record)
            return None if width is None else width * (scale[record["id"]] if scale else 1.0)
        return _metric(record, key)

    fig = _figure(12.0, 1.0 + 1.5 * len(_QUALITY_PANELS))
    axes = fig.subplots(len(_QUALITY_PANELS), 1, sharex=True)
    for ax, (key, ylabel) in zip(axes, _QUALITY_PANELS):
        if key == "fwhm" and scale:
            ylabel = "FWHM, minor\naxis (arcsec)"
        ax.set_ylabel(ylabel, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=9.5)
        values = []
        for kind in ["accepted", "pending", *reject_kinds]:
            points = [(x, value(r, key), r) for x, r, k in zip(xs, records, kinds)
                      if k == kind and x is not None and value(r, key) is not None]
            if not points:
                continue
            values.extend(p[1] for p in points)
            colour, marker = styles[kind]
            rejected = kind.startswith("rejected")
            ax.scatter([p[0] for p in points], [p[1] for p in points], s=46 if rejected else 22,
                       marker=marker, label=kind, zorder=3 if rejected else 2,
                       facecolors="none" if kind == "pending" else colour,
                       edgecolors=colour, linewidths=0.8 if kind == "pending" else 0.5)
            if rejected and label_points:
                for x, y, record in points:
                    at = mdates.date2num(x) if is_time else x
                    # Labels near the right edge go to the left of their point, so none is cut off.
                    right = x_hi > x_lo and (at - x_lo) / (x_hi - x_lo) > 0.88
                    ax.annotate(record_label(record), (x, y), xytext=(-5 if right else 5, 3),
                                textcoords="offset points", fontsize=8.5, color=colour,
                                ha="right" if right else "left")
        drawn_rules = set()
        for line in (ln for ln in lines if ln["panel"] == key):
            level = line["value"] * (_median([scale[i] for i in line["ids"]]) if key == "fwhm" and scale else 1.0)
            group_x = [x_by_id[i] for i in line["ids"] if x_by_id.get(i) is not None]
            if not group_x:
                continue
            values.append(level)
            if len({ln_id for ln in lines for ln_id in ln["ids"]}) == len(line["ids"]):
                ax.axhline(level, color=_THRESHOLD_COLOUR, linestyle="--", linewidth=1.1, zorder=1)
            else:     # several judged groups in the band (nights, targets): each its own segment
                ax.hlines(level, min(group_x), max(group_x), color=_THRESHOLD_COLOUR, linestyle="--",
                          linewidth=1.1, zorder=1)
            if line["rule"] in drawn_rules:
                continue
            drawn_rules.add(line["rule"])
            shown = f"{level:,.0f}" if abs(level) >= 100 else f"{level:.3g}"
            # Named in the right margin, beside the axis: never over a point, never cut off.
            how = line["text"]
            if how and key == "fwhm" and scale:
                how = how.split(" x ")[0] + " x best"      # the yardstick is in px, the axis in arcsec
            ax.annotate(f"{line['rule']}\n{shown}" + (f" = {how}" if how else ""),
                        (1.0, level), xycoords=("axes fraction", "data"), xytext=(6, 0),
                        textcoords="offset points", ha="left", va="center", fontsize=8.5,
                        color=_THRESHOLD_COLOUR, annotation_clip=False)
        if values:
            low, high = min(values), max(values)
            pad = (high - low) * 0.14 or abs(high) * 0.1 or 1.0
            # Room above for the thresholds' names and below for the lowest markers.
            ax.set_ylim(low - pad, high + pad * 1.6)
        else:
            ax.text(0.5, 0.5, "no values", transform=ax.transAxes, ha="center", va="center",
                    color="#888888", fontsize=10)
    axes[-1].margins(x=0.03)
    _format_time_axis(axes[-1], is_time, xs)
    axes[-1].xaxis.label.set_fontsize(10)
    _figure_legend(fig, axes, columns=4)
    fig.suptitle(f"band {band or '(none)'}: {_frames(len(records))}", x=0.01, ha="left", fontsize=12)
    top = 1 - 0.55 / fig.get_figheight()
    fig.subplots_adjust(left=0.1, right=0.84, top=top, bottom=0.6 / fig.get_figheight(), hspace=0.14)
    return _png_bytes(fig)


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values) if values else 1.0


def minor_fwhm(record: dict) -> float | None:
    """The FWHM across the major axis, as the focus rule measures it (trails leave it unchanged)."""
    from obsdb.pipeline.qa_rules import across_fwhm

    metrics = record["metrics"] or {}
    width = across_fwhm(metrics.get("fwhm"), metrics.get("elongation"))
    return width if width == width else None


def _metric(record: dict, key: str):
    import math

    value = (record["metrics"] or {}).get(key)
    if value is None and key == "background" and record["stats"]:
        # Frames without metrics (not yet through QA) still have the ingest's background.
        value = record["stats"].get("background")
    if value is None or not math.isfinite(value):
        return None
    return value


# -- shift track ------------------------------------------------------------------------------------

_RUN_MARKERS = ("o", "s", "^", "D", "v", "P")


def _shifts_png(snapshot: _Snapshot, records: list[dict], *, small: bool = False) -> bytes:
    """Each frame's current shift (what ``obsdb render`` applies): dx above dy against time, coloured by
    pointing group (or band), one marker per run when frames' current runs differ.

    One figure of two wide panels whatever the number of runs (older runs are in the table and on the frames'
    pages): a grid of a panel pair per run was illegible once shrunk to the page.  ``small`` draws it at the
    size the page's header shows it, so its text is not scaled down.
    """
    from matplotlib import colormaps

    records = [r for r in records if r["shift"]]
    xs, is_time = _time_axis(records)
    # Without pointing groups (an automatic run needs none) the band is the next best
    # colouring: each band's track is then one continuous series.
    use_groups = any(r["group"] for r in records)
    series = [(r["group"] if use_groups else f"band {r['band'] or '-'}") for r in records]
    groups = sorted({name for name in series if name})
    # Groups are per band, so a night easily has more than ten; tab20 keeps them apart.
    palette = colormaps["tab10" if len(groups) <= 10 else "tab20"].colors
    colours = {g: palette[i % len(palette)] for i, g in enumerate(groups)}
    colours[None] = _PENDING_COLOUR
    run_ids = sorted({r["shift"]["run"] for r in records}, reverse=True)
    markers = {run: _RUN_MARKERS[i % len(_RUN_MARKERS)] for i, run in enumerate(run_ids)}
    runs = {run["id"]: run for run in snapshot.runs}
    font = 8.5 if small else 10.5
    fig = _figure(5.6, 3.3) if small else _figure(12.0, 5.6)
    axes = fig.subplots(2, 1, sharex=True)
    for ax, name in zip(axes, ("dx", "dy")):
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=font - 1)
        ax.set_ylabel(f"{name} (px)", fontsize=font)
        for group in [*groups, None]:
            for run in run_ids:
                points = sorted(((x, r["shift"][name], r) for x, r, g in zip(xs, records, series)
                                 if g == group and r["shift"]["run"] == run and x is not None),
                                key=lambda p: p[0])
                if not points:
                    continue
                label = group or "no group"
                if len(run_ids) > 1:
                    label += f", run {run}"
                ax.plot([p[0] for p in points], [p[1] for p in points], color=colours[group],
                        marker=markers[run], markersize=3.5 if small else 5, linewidth=0.8, label=label,
                        # A band's frames span several pointings: a line would draw jumps that are not drift.
                        linestyle="-" if use_groups else "none")
                # Rejected frames may still carry a shift: ring them so the track explains outliers.
                bad = [p for p in points if p[2]["status"] == "rejected"]
                if bad:
                    ax.scatter([p[0] for p in bad], [p[1] for p in bad], s=40 if small else 80,
                               facecolors="none", edgecolors="#d62728", linewidths=1.1, zorder=4,
                               label="rejected frame")
        ax.margins(x=0.03, y=0.15)
    _format_time_axis(axes[-1], is_time, xs)
    axes[-1].xaxis.label.set_fontsize(font)
    if len(run_ids) == 1:
        run = runs.get(run_ids[0], {})
        title = (f"current shift, run {run_ids[0]} ({run.get('method', '?')}, "
                 f"reference {run.get('reference') or '-'})")
    else:
        title = "current shift of each frame, runs " + ", ".join(str(r) for r in run_ids)
    axes[0].set_title(title, fontsize=font, loc="left")
    if not small:
        _figure_legend(fig, axes, columns=5)
        fig.subplots_adjust(left=0.07, right=0.985, top=1 - 0.75 / fig.get_figheight(),
                            bottom=0.6 / fig.get_figheight(), hspace=0.1)
    else:
        fig.subplots_adjust(left=0.14, right=0.97, top=0.9, bottom=0.17, hspace=0.12)
    return _png_bytes(fig)


# -- thumbnails -------------------------------------------------------------------------------------

_BAD_STAR_FLAGS = 0x1 | 0x2 | 0x8 | 0x100 | 0x200
"""Stored star flags that disqualify a star from the zoom: blended, cut by the edge, singular, saturated,
aperture off the frame (see :mod:`obsdb.imaging.stars`)."""


def zoom_stars(stars: list[tuple], shape, fwhm: float | None) -> tuple[int, list[tuple]]:
    """Half-size of the cut-outs and up to :data:`MAX_ZOOM_STARS` stars to enlarge: the brightest clean
    ones, each a quarter of the frame away from the others where possible (PSF across the field)."""
    import math

    half = int(min(24, max(8, math.ceil(3.0 * (fwhm or 3.0)))))
    height, width = shape if shape else (None, None)
    clean = [s for s in stars if not (s[4] & _BAD_STAR_FLAGS) and all(math.isfinite(v) for v in s[:3])
             and (width is None or (half <= s[0] < width - half and half <= s[1] < height - half))]
    spread = max(width or 0, height or 0) / 4.0
    picks: list[tuple] = []
    for minimum in (spread, 2.0 * half):
        for star in clean:
            if len(picks) == MAX_ZOOM_STARS:
                break
            if star not in picks and all(math.hypot(star[0] - p[0], star[1] - p[1]) >= minimum for p in picks):
                picks.append(star)
    return half, picks


def _thumbnail_jobs(records: list[dict], out: Path, size: int, details: dict | None = None) -> list[dict]:
    """One job per light frame; the file name carries a key so an unchanged thumbnail is reused.

    A frame with stored stars also gets a zoom on a few of them, drawn from the same read (same key).
    """
    extras = (details or {}).get("frames", {})
    scales = _pixel_scales(records, details or {})
    jobs = []
    for record in records:
        badge = _badge(record)
        try:
            st = os.stat(record["path"])
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        half, picks = zoom_stars(extras.get(record["id"], {}).get("stars") or [], record["shape"],
                                  (record["metrics"] or {}).get("fwhm"))
        scale = scales.get(record["id"])
        labels = [f"x {s[0] + 1:.0f}, y {s[1] + 1:.0f}\nFWHM {s[3]:.2f} px"
                  + (f" {s[3] * scale:.1f}\"" if scale else "") for s in picks]
        key = hashlib.sha1("|".join([record["path"], stamp, badge or "", str(size), THUMBNAIL_VERSION,
                                     str(half), *labels]).encode("utf-8")).hexdigest()[:12]
        rel = f"thumbs/{_safe(record_label(record))}-{key}.png"
        zoom_rel = f"zooms/{_safe(record_label(record))}-{key}.png" if picks else None
        jobs.append({"id": record["id"], "path": record["path"], "file_name": record["file_name"],
                     "rel": rel, "dest": str(out / rel), "badge": badge, "size": size,
                     "zoom_rel": zoom_rel, "zoom_dest": str(out / zoom_rel) if zoom_rel else None,
                     "zoom_stars": [(s[0], s[1]) for s in picks], "zoom_half": half, "zoom_labels": labels,
                     "reuse": stamp != "missing" and (out / rel).exists()
                     and (zoom_rel is None or (out / zoom_rel).exists()), "drawn": False})
    return jobs


def _draw_thumbnail(job: dict) -> str | None:
    """Read the frame once and write its thumbnail (and its star zoom); the thumbnail's error text, or None."""
    from obsdb.imaging.fitsio import FitsReadError, read_fits_image
    from obsdb.imaging.preview import thumbnail_png, write_star_zooms_png

    try:
        image = read_fits_image(job["path"], hash_mode="none")
        thumbnail_png(job["dest"], image.data, size=job["size"], badge=job["badge"])
    except (FitsReadError, ValueError, OSError) as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if job.get("zoom_dest"):
        try:
            write_star_zooms_png(job["zoom_dest"], image.data, job["zoom_stars"], half=job["zoom_half"],
                                 labels=job["zoom_labels"])
        except (ValueError, OSError):
            pass  # the frame's page then shows no zoom; the thumbnail is what the report needs
    return None



def _draw_thumbnails(jobs: list[dict], workers: int, executor=None):
    """Yield (job, error) for every job, drawing the ones not reusable, in the executor's workers."""
    from obsdb.pipeline.executors import TaskFailed, executor_for
    from obsdb.pipeline.pool import ChildCrashed

    todo = []
    for job in jobs:
        if job["reuse"]:
            yield job, None
        else:
            todo.append(job)
    executor = executor_for(executor, workers if len(todo) > 1 else 1)
    by_dest = {job["dest"]: job for job in todo}
    for sent, error in executor.map(_draw_thumbnail, todo):
        job = by_dest[sent["dest"]]  # the executor may hand back a copy of the job
        if isinstance(error, (ChildCrashed, TaskFailed)):
            error = f"drawing it could not run: {error}"
        job["drawn"] = error is None
        yield job, error


# -- stacks -----------------------------------------------------------------------------------------

def _figure_legend(fig, axes, *, columns: int) -> None:
    """One legend for the figure, each label once, from all its panels."""
    handles, labels = [], []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, loc="upper right", fontsize=9.5, ncol=min(columns, len(labels)), frameon=False)


def _stack_jobs(stacks: list[dict], out: Path) -> list[dict]:
    return [dict(stack, rel=f"stacks/stack-{i}-{_safe(stack['band'] or 'none')}.png", error=None, quality={})
            for i, stack in enumerate(stacks)]


def _draw_stack(job: dict, out: Path) -> str | None:
    """Draw a stack's preview (asinh stretch) and measure it: ``job["quality"]`` gets its numbers."""
    from obsdb.imaging.fitsio import FitsReadError, read_fits_image
    from obsdb.imaging.preview import write_preview_png

    if not Path(job["path"]).exists():
        return "file not found"
    try:
        image = read_fits_image(job["path"], hash_mode="none")
        write_preview_png(out / job["rel"], image.data, max_size=1024, stretch="asinh")
    except (FitsReadError, ValueError, OSError) as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    job["quality"] = _stack_quality(image.data, dict(image.header))
    return None


ZERO_POINT_KEYWORDS = ("MAGZP", "MAGZPT", "MAGZERO", "ZMAG", "PHOTZP")
"""Header keywords of a photometric zero point (mag of 1 ADU): with one, the stack's depth is a magnitude."""

DEPTH_SIGMA = 5.0
"""The stack's depth is the flux of a point source detected at this signal-to-noise."""


def _stack_quality(data, header: dict) -> dict:
    """FWHM, stars, sky noise, NCOMBINE, exposure and depth of a stack.

    The depth is the flux of a :data:`DEPTH_SIGMA` sigma point source in an aperture of
    radius one FWHM, sky-noise limited: ``DEPTH_SIGMA * rms * sqrt(pi) * FWHM``, in ADU, and
    as a magnitude when the header holds a zero point (:data:`ZERO_POINT_KEYWORDS`).
    """
    import math

    from obsdb.imaging.stars import measure_quality

    quality: dict = {"ncombine": _number(header.get("NCOMBINE")),
                     "exptime": _number(header.get("EXPTIME")) or _number(header.get("EXPOSURE"))}
    scale = _header_scale(header)
    quality["scale"] = scale
    try:
        measured = measure_quality(data)
    except (ValueError, MemoryError) as exc:
        quality["error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return quality
    fwhm = measured.fwhm if math.isfinite(measured.fwhm) else None
    rms = measured.background_rms if math.isfinite(measured.background_rms) else None
    quality.update(n_stars=measured.n_stars, fwhm=fwhm, fwhm_arcsec=fwhm * scale if fwhm and scale else None,
                   elongation=measured.elongation if math.isfinite(measured.elongation) else None,
                   background=measured.background, rms=rms)
    if fwhm and rms:
        depth = DEPTH_SIGMA * rms * math.sqrt(math.pi) * fwhm
        quality["depth_adu"] = depth
        zero_point = next((_number(header[k]) for k in ZERO_POINT_KEYWORDS if _number(header.get(k))), None)
        quality["depth_mag"] = zero_point - 2.5 * math.log10(depth) if zero_point and depth > 0 else None
    return quality



CLAIMED = "claimed"
"""The manifest's digest for a file a report was about to write when it stopped (killed, a full disk)."""

MANIFEST = ".obsdb-report.json"
"""The report's list of the files it wrote, with their SHA-256, in the output folder."""


class _ReportFiles:
    """The files an earlier report wrote in ``out`` (its manifest): the only ones it may replace or delete.

    A report written before the manifest existed is recognised by its page's
    footer; the images that page shows are then taken as the report's own.
    An output folder, or one of its ``plots/``, ``thumbs/``, ``stacks/``, ``zooms/``,
    ``frames/`` (:data:`_SUBDIRS`), that is a symbolic link is refused: the report
    writes only inside ``--out``.
    """

    def __init__(self, out: Path):
        import json

        from obsdb.errors import ObsdbError

        self.out = out
        if out.exists() and not out.is_dir():
            raise ObsdbError(f"--out {out}: is a file, not a folder")
        for sub in _SUBDIRS:
            if (out / sub).is_symlink():
                raise ObsdbError(f"{out / sub}: is a symbolic link; the report writes only inside --out "
                                 "(remove the link, or choose another --out)")
        self.before: dict[str, str] = {}
        self.now: dict[str, str] = {}
        manifest = out / MANIFEST
        if manifest.is_file():
            try:
                files = json.loads(manifest.read_text(encoding="utf-8"))["files"]
                self.before = {str(rel): str(digest) for rel, digest in files.items()}
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                raise ObsdbError(f"{manifest}: is not the report's list of its files; remove it to write "
                                 "the report here") from None
        elif (out / "index.html").is_file():
            self.before = self._adopt_old_report()

    def _adopt_old_report(self) -> dict[str, str]:
        import re

        from obsdb.pipeline.outputs import file_sha256

        try:
            page = (self.out / "index.html").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return {}
        if "<footer>Written by obsdb " not in page:
            return {}
        rels = {"index.html"} | {rel for rel in re.findall(r'(?:src|href)="([^"]+\.(?:png|html))"', page)
                                 if rel.split("/")[0] in _SUBDIRS and ".." not in rel}
        # A frame's page (linked from the index) shows its own images, e.g. its star zoom: its own too.
        for rel in [r for r in rels if r.startswith("frames/") and r.endswith(".html")]:
            try:
                text = (self.out / rel).read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            rels |= {ref[3:] for ref in re.findall(r'src="(\.\./[^"]+\.png)"', text)
                     if ref[3:].split("/")[0] in _SUBDIRS and ".." not in ref[3:]}
        return {rel: file_sha256(self.out / rel) for rel in rels if (self.out / rel).is_file()}

    def _changed(self, rel: str) -> bool:
        from obsdb.pipeline.outputs import file_sha256

        return self.before[rel] != CLAIMED and file_sha256(self.out / rel) != self.before[rel]

    def is_own(self, rel: str) -> bool:
        """Whether ``rel`` exists as the earlier report left it."""
        path = self.out / rel
        return rel in self.before and path.is_file() and not path.is_symlink() and not self._changed(rel)

    def refuse_foreign(self, rels) -> None:
        """Raise for the first of ``rels`` that exists and is not the report's own unchanged file;
        then remove the temporary files an interrupted report left beside them."""
        from obsdb.errors import ObsdbError
        from obsdb.pipeline.outputs import remove_own_leftovers

        rels = list(rels)
        for rel in rels:
            path = self.out / rel
            if not (path.exists() or path.is_symlink()):
                continue
            if rel not in self.before:
                raise ObsdbError(f"{path}: exists and was not written by obsdb report; refusing to replace it "
                                 "(move it, or choose another --out)")
            if not self.is_own(rel):
                raise ObsdbError(f"{path}: was written by obsdb report but changed since; refusing to "
                                 "replace it (move it, or choose another --out)")
        remove_own_leftovers([self.out / rel for rel in [*rels, MANIFEST]])
        self._claim(rels)

    def _claim(self, rels: list[str]) -> None:
        """Record the files about to be written before writing them: a report killed half-way has
        claimed what it left, so the next one may replace it (see :data:`CLAIMED`)."""
        import json

        from obsdb.imaging.fitsio import atomic_write_bytes

        new = [rel for rel in rels if rel not in self.before]
        if not new:
            return
        self.before.update({rel: CLAIMED for rel in new})
        self.out.mkdir(parents=True, exist_ok=True)
        payload = {"written_by": "obsdb report", "files": dict(sorted(self.before.items()))}
        atomic_write_bytes(self.out / MANIFEST, json.dumps(payload, indent=1).encode("utf-8"))

    def wrote(self, rel: str, digest: str | None = None) -> None:
        """Note a file of this report (its digest, or read from disk)."""
        from obsdb.pipeline.outputs import file_sha256

        self.now[rel] = digest or file_sha256(self.out / rel)

    def finish(self, keep: set[str]) -> None:
        """Delete what the earlier report wrote and this one no longer shows (if unchanged); save the list."""
        import json

        from obsdb.imaging.fitsio import atomic_write_bytes

        for rel in sorted(set(self.before) - keep):
            path = self.out / rel
            if path.is_file() and not path.is_symlink() and not self._changed(rel):
                try:
                    path.unlink()
                except OSError:
                    pass
        payload = {"written_by": "obsdb report", "files": dict(sorted(self.now.items()))}
        atomic_write_bytes(self.out / MANIFEST, json.dumps(payload, indent=1).encode("utf-8"))


# -- the page -----------------------------------------------------------------------------------------

_CSS = """
:root { --fg: #1d232b; --muted: #5b6573; --line: #d9dee5; --bg: #ffffff; --soft: #f4f6f9;
        --bad: #c62828; --ok: #2e7d32; --pend: #8a8f98; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: var(--bg); }
header, main { max-width: 1200px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 20px; border-bottom: 1px solid var(--line); }
h1 { font-size: 22px; margin: 0 0 6px; }
h2 { font-size: 18px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 8px; }
.overview { display: flex; flex-wrap: wrap; gap: 12px 48px; align-items: flex-start; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 8px 0 12px; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px;
             overflow-wrap: anywhere; }
nav { margin: 10px 0 14px; }
nav a { margin-right: 14px; color: #1f5fa8; text-decoration: none; }
nav a:hover { text-decoration: underline; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.rejected td.reason { max-width: 520px; }
td.nw { white-space: nowrap; }
tr.first td { border-top: 2px solid var(--line); }
.rej { color: var(--bad); font-weight: 600; }
.acc { color: var(--ok); }
.pen { color: var(--pend); }
.note { color: var(--muted); background: var(--soft); padding: 8px 12px; border-radius: 4px; }
.warn { color: var(--bad); }
figure { margin: 8px 0 18px; min-width: 0; }
figcaption code, ul.files code, td.reason { overflow-wrap: anywhere; }
figure img.plot { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 10px; }
.thumb { margin: 0; padding: 4px; border: 1px solid var(--line); border-radius: 4px; background: var(--soft); }
.thumb.rejected { border-color: var(--bad); }
.thumb img { display: block; width: 100%; height: auto; image-rendering: pixelated; }
.thumb .missing { height: 120px; display: flex; align-items: center; justify-content: center;
                  color: var(--bad); font-size: 12px; text-align: center; padding: 6px; }
.thumb figcaption { margin-top: 3px; overflow-wrap: anywhere; }
.glance { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0 4px; }
.glance figure { margin: 0; }
.glance img { height: 200px; width: auto; max-width: 100%; border: 1px solid var(--line); display: block; }
.glance img.natural { height: auto; }
img.natural { max-width: 100%; height: auto; display: block; }
.stacks { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(520px, 100%), 1fr)); gap: 20px; }
.stacks figure { margin: 0; min-width: 0; }
.stacks img { width: 100%; height: auto; border: 1px solid var(--line); display: block; }
table.stackq th { background: none; font-weight: normal; color: var(--muted); }
table.facts th { background: none; font-weight: normal; color: var(--muted); white-space: nowrap; }
.scroll { max-width: 100%; overflow-x: auto; }
.pair { display: flex; flex-wrap: wrap; gap: 16px; }
.pair figure { margin: 0; flex: 0 1 340px; min-width: 0; }
.pair img { width: 100%; height: auto; image-rendering: pixelated; border: 1px solid var(--line); display: block; }
tr.retracted td { color: var(--muted); text-decoration: line-through; }
tr.retracted td:last-child { text-decoration: none; }
nav.crumbs a { margin-right: 16px; }
ul.files { padding-left: 18px; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12.5px; }
footer { max-width: 1200px; margin: 30px auto; padding: 10px 24px; color: var(--muted);
         font-size: 12px; border-top: 1px solid var(--line); }
"""


def _e(value) -> str:
    """Escaped text for HTML content and attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def _when(value) -> str:
    """A time to the second, ISO-like, whatever form it comes in."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.replace(microsecond=0).isoformat(sep=" ")
    return str(value).replace("T", " ")[:19]


def _status_class(status: str) -> str:
    return {"rejected": "rej", "accepted": "acc"}.get(status, "pen")


def _page(snapshot: _Snapshot, *, generated: datetime, version: str, quality_plots, shifts_rel,
          thumbnails: bool, thumb_jobs, thumb_errors, light, stack_jobs, warnings, pages=None,
          run_outcome: dict | None = None) -> str:
    records = snapshot.records
    pages = pages or {}
    rejected = [r for r in records if r["status"] == "rejected"]
    objects = sorted({r["object"] for r in records if r.get("object")})
    title = "obsdb report" + (f": {', '.join(objects)}" if objects else "")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{_e(title)}</h1>",
        '<div class="overview">',
        '<dl class="meta">',
        *_observation_facts(snapshot),
        f"<dt>frames</dt><dd>{len(records)} ({sum(r['status'] == 'accepted' for r in records)} accepted, "
        f"{len(rejected)} rejected, {sum(r['status'] == 'pending' for r in records)} pending)</dd>",
        f"<dt>catalog</dt><dd>{_e(snapshot.url)}</dd>",
        f"<dt>report generated</dt><dd>{_e(_when(generated.astimezone(timezone.utc).replace(tzinfo=None)))} "
        f"UTC by obsdb {_e(version)}</dd>",
        "</dl>",
        _counts_table(records),
        "</div>",
        _glance(stack_jobs, shifts_rel),
        '<nav><a href="#rejected">rejected frames</a><a href="#quality">quality</a>'
        '<a href="#shifts">shift track</a><a href="#stacks">stacks</a><a href="#frames">frames</a></nav>',
        "</header>",
        "<main>",
    ]
    if run_outcome:
        parts.append(_run_section(run_outcome))
    if warnings:
        parts.append('<section id="warnings"><h2>Warnings</h2><ul>')
        parts.extend(f'<li class="warn">{_e(w)}</li>' for w in warnings)
        parts.append("</ul></section>")
    # The rejections come first: they are what a reader of the report most often looks for.
    parts.append(_rejected_section(rejected, records, pages))
    parts.append(_quality_section(quality_plots))
    parts.append(_shift_section(snapshot, shifts_rel))
    parts.append(_stack_section(stack_jobs))
    parts.append(_thumbnail_section(thumbnails, thumb_jobs, thumb_errors, light, records, pages))
    parts.append("</main>")
    parts.append(f"<footer>Written by obsdb {_e(version)} from the catalog; every rejection above is "
                 "a tag in the catalog (<code>obsdb show NUMBER</code> gives its full history).</footer>")
    parts.append("</body>")
    parts.append("</html>")
    return "\n".join(parts) + "\n"


def _run_section(outcome: dict) -> str:
    """`obsdb run`'s steps, and first, when a band gave no stack, why (one line per band)."""
    parts = ['<section id="run">']
    missing = outcome.get("not_stacked") or []
    if missing:
        heading = "Why nothing was stacked" if not outcome.get("stacked") else "Bands not stacked"
        parts.append(f"<h2>{heading}</h2><ul>")
        parts.extend(f'<li class="warn">{_e(line)}</li>' for line in missing)
        parts.append("</ul>")
        parts.extend(f'<p class="note">{_e(line)}</p>' for line in outcome.get("advice") or [])
    parts.append("<h2>This run</h2><ul>")
    parts.extend(f"<li><b>{_e(name)}</b>: {_e(text)}</li>" for name, text in outcome.get("steps") or [])
    parts.append("</ul>")
    if outcome.get("catalog_rule"):
        parts.append(f'<p class="note">{_e(outcome["catalog_rule"])}</p>')
    parts.append("</section>")
    return "\n".join(parts)


MAX_GLANCE_STACKS = 4
"""Stack previews shown small at the top of the page (all of them are in the Stacks section)."""


def _glance(stack_jobs: list[dict], shifts_rel: str | None) -> str:
    """The night at a glance under the header: small stacks and the shift track, linked to their sections."""
    figures = []
    for job in [j for j in stack_jobs if not j["error"]][:MAX_GLANCE_STACKS]:
        params = job["parameters"] if isinstance(job["parameters"], dict) else {}
        label = " ".join(str(x) for x in (params.get("target"), job["band"] or "-") if x)
        frames = params.get("frames")
        caption = f"stack {label}" + (f", {_frames(len(frames))}" if isinstance(frames, list) else "")
        figures.append(f'<figure><a href="#stacks"><img src="{_e(job["rel"])}" alt="{_e(caption)}"></a>'
                       f"<figcaption>{_e(caption)}</figcaption></figure>")
    if shifts_rel:
        small = shifts_rel.replace("shifts-full.png", "shifts.png")
        figures.append(f'<figure><a href="#shifts"><img src="{_e(small)}" class="natural" alt="shift track" '
                       'width="560" height="330"></a>'
                       "<figcaption>shift track (each frame's current dx, dy against time)</figcaption></figure>")
    if not figures:
        return ""
    return '<div class="glance">' + "".join(figures) + "</div>"


def _distinct(values) -> list[str]:
    seen = []
    for value in values:
        text = None if value is None else str(value).strip()
        if text and text not in seen:
            seen.append(text)
    return seen


def _observation_facts(snapshot: _Snapshot) -> list[str]:
    """The header's first lines: night(s) with their time span, site, telescope and camera, pixel scale,
    observer(s), as the catalog and the frames' headers give them."""
    details = snapshot.details
    frames = details.get("frames", {})
    headers = [frames.get(r["id"], {}).get("header") or {} for r in snapshot.records]
    rows = []
    nights = [n for n in details.get("nights", []) if any(r["night"] == n["name"] for r in snapshot.records)]
    if nights:
        spans = []
        for night in nights:
            first, last = parse_time(night["first_date_obs"]), parse_time(night["last_date_obs"])
            span = f"{night['name']}"
            if first and last:
                span += f" ({first:%Y-%m-%d %H:%M} to {last:%H:%M} UTC)" if first.date() == last.date() else \
                    f" ({first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC)"
            spans.append(span)
        rows.append(("night" if len(nights) == 1 else "nights", "; ".join(spans)))
    sites = _distinct([n["site"] for n in nights]
                      + [h.get(k) for h in headers for k in ("SITENAME", "OBSERVAT", "SITE")])
    longitudes = _distinct(f"{n['longitude']:.3f} deg E" for n in nights if n.get("longitude") is not None)
    if sites or longitudes:
        rows.append(("site", ", ".join(sites) + (" " if sites and longitudes else "")
                     + (f"(longitude {', '.join(longitudes)})" if longitudes else "")))
    instruments = details.get("instruments", {})
    used = _distinct(r["instrument"] for r in snapshot.records)
    described = []
    for key in used:
        i = instruments.get(key, {})
        text = " / ".join(_distinct([i.get("telescope"), i.get("camera")])) or key
        if i.get("width"):
            text += f", {i['width']}x{i['height']} px"
        if (i.get("binning_x") or 1) > 1:
            text += f", binned {i['binning_x']}x{i.get('binning_y') or i['binning_x']}"
        if i.get("pixel_size"):
            text += f", {i['pixel_size']:.3g} um pixels"
        described.append(text)
    if described:
        rows.append(("telescope / camera", "; ".join(described)))
    scales = [s for s in _pixel_scales(snapshot.records, details).values() if s]
    if scales:
        low, high = min(scales), max(scales)
        rows.append(("pixel scale", f"{low:.3g} arcsec/px" if f"{low:.3g}" == f"{high:.3g}"
                     else f"{low:.3g} to {high:.3g} arcsec/px"))
    observers = _distinct(h.get("OBSERVER") for h in headers)
    rows.append(("observer", ", ".join(observers) if observers else "not in the headers (OBSERVER)"))
    return [f"<dt>{_e(name)}</dt><dd>{_e(value)}</dd>" for name, value in rows]


def _counts_table(records: list[dict]) -> str:
    counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for record in records:
        key = (record["band"] or "-", record["type"] or "-")
        counts[key]["frames"] += 1
        counts[key][record["status"]] += 1
        if not record["readable"]:
            counts[key]["unreadable"] += 1
    if not counts:
        return '<p class="note">The catalog has no frames yet: run <code>obsdb ingest</code>.</p>'
    rows = ['<table class="counts"><thead><tr><th>band</th><th>type</th><th class="num">frames</th>'
            '<th class="num">accepted</th><th class="num">rejected</th><th class="num">pending</th>'
            '<th class="num">unreadable</th></tr></thead><tbody>']
    for (band, kind), c in sorted(counts.items()):
        rows.append(f"<tr><td>{_e(band)}</td><td>{_e(kind)}</td><td class=\"num\">{c['frames']}</td>"
                    f"<td class=\"num\">{c['accepted']}</td><td class=\"num\">{c['rejected']}</td>"
                    f"<td class=\"num\">{c['pending']}</td><td class=\"num\">{c['unreadable']}</td></tr>")
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _quality_section(quality_plots) -> str:
    parts = ['<section id="quality"><h2>Quality against time</h2>']
    if not quality_plots:
        parts.append('<p class="note">No light frames in the catalog.</p>')
    for band, rel, members, lines, scale in quality_plots:
        n_rejected = sum(r["status"] == "rejected" for r in members)
        no_time = sum(r["date_obs"] is None for r in members)
        labelled = "labelled by frame number; " if n_rejected <= MAX_POINT_LABELS else ""
        caption = (f"Band {band or '(none)'}: {len(members)} light frames, {n_rejected} rejected "
                   f"(coloured markers, {labelled}the legend names their tags); "
                   "accepted in blue, pending as open grey circles.")
        if lines:
            rules = ", ".join(_distinct(line["rule"] for line in lines))
            caption += (f" Dashed red lines: the thresholds of the newest QA run ({rules}); a frame beyond one "
                        "is tagged by that rule.")
        else:
            caption += " No QA run is recorded for these frames: no thresholds drawn (run obsdb qa)."
        caption += (" FWHM across the major axis, as the focus rule measures it, "
                    + ("in arcsec (pixel scale from the headers)." if scale else "in pixels (no pixel scale "
                       "in the headers: PIXSCALE, SECPIX, CDELT or FOCALLEN with XPIXSZ)."))
        if no_time and no_time < len(members):
            caption += f" {no_time} frames without DATE-OBS are not drawn."
        alt = "quality of band " + (band or "none")
        parts.append(f'<figure><img class="plot" src="{_e(rel)}" alt="{_e(alt)}">'
                     f"<figcaption>{_e(caption)}</figcaption></figure>")
    parts.append("</section>")
    return "\n".join(parts)


def _rejected_section(rejected: list[dict], records: list[dict], pages=None) -> str:
    parts = [f'<section id="rejected"><h2>Rejected frames ({len(rejected)})</h2>']
    if not rejected:
        parts.append('<p class="note">No frame is rejected.</p>')
    else:
        parts.append('<div class="scroll"><table class="rejected"><thead><tr><th>frame</th><th>band</th><th>file</th>'
                     "<th>tag</th><th>source</th><th>author</th><th>time (UTC)</th><th>reason</th>"
                     "</tr></thead><tbody>")
        for record in rejected:
            parts.extend(_tag_rows(record, pages))
        parts.append("</tbody></table></div>")
    overridden = [r for r in records if r["status"] == "accepted"
                  and any(t["name"] in REJECTING_TAGS for t in r["tags"])]
    if overridden:
        parts.append(f"<h3>Accepted despite a rejecting tag ({len(overridden)})</h3>"
                     '<div class="scroll"><table class="rejected"><thead><tr><th>frame</th><th>band</th><th>file</th>'
                     "<th>tag</th><th>source</th><th>author</th><th>time (UTC)</th><th>reason</th>"
                     "</tr></thead><tbody>")
        for record in overridden:
            parts.extend(_tag_rows(record, pages))
        parts.append("</tbody></table></div>")
    parts.append("</section>")
    return "\n".join(parts)


def _tag_rows(record: dict, pages=None) -> list[str]:
    """One row per active tag of a frame (every reason), the frame named on the first."""
    tags = list(record["tags"])
    if not record["readable"]:
        tags = [{"name": "unreadable", "source": "ingest", "author": "-", "created_at": None,
                 "reason": record.get("error") or "could not be read"}] + tags
    if not tags:
        tags = [{"name": "-", "source": "-", "author": "-", "created_at": None,
                 "reason": "; ".join(record["reasons"]) or "-"}]
    rows = []
    for i, tag in enumerate(tags):
        first = i == 0
        if tag["name"] in REJECTING_TAGS or tag["name"] == "unreadable":
            name_class = "nw rej"
        else:
            name_class = "nw acc" if tag["name"] == "accept" else "nw"
        if first:
            # The file column names a frame that has no number; the frame column would only repeat it.
            number = "-" if record["number"] is None else str(record["number"])
            page = (pages or {}).get(record["id"])
            shown = f'<a href="{_e(page)}">{_e(number)}</a>' if page else _e(number)
            frame_cells = (f'<td id="frame-{record["id"]}"><b>{shown}</b></td>'
                           f'<td>{_e(record["band"] or "-")}</td><td><code>{_e(record["file_name"])}</code></td>')
        else:
            frame_cells = "<td></td><td></td><td></td>"
        row_class = ' class="first"' if first else ""
        rows.append(f'<tr{row_class}>{frame_cells}<td class="{name_class}">{_e(tag["name"])}</td>'
                    f'<td class="nw">{_e(tag["source"])}</td><td class="nw">{_e(tag["author"])}</td>'
                    f'<td class="nw">{_e(_when(tag["created_at"]))}</td>'
                    f'<td class="reason">{_e(_without_tag(tag))}</td></tr>')
    return rows


def _without_tag(tag: dict) -> str:
    """A tag's reason as the table shows it, beside the tag's own column (:func:`obsdb.text.without_tag`)."""
    from obsdb.text import without_tag

    return without_tag(tag["name"], tag.get("reason"))


def _shift_section(snapshot: _Snapshot, shifts_rel: str | None) -> str:
    parts = ['<section id="shifts"><h2>Shift track</h2>']
    if not snapshot.runs:
        parts.append('<p class="note">No alignment run yet: run <code>obsdb align</code> to measure the '
                     "shifts; the track of dx and dy per pointing group will appear here.</p>")
        parts.append("</section>")
        return "\n".join(parts)
    current = Counter(r["shift"]["run"] for r in snapshot.records if r["shift"])
    parts.append('<div class="scroll"><table><thead><tr><th class="num">run</th><th>created (UTC)</th><th>method</th>'
                 '<th class="num">reference</th><th>author</th><th class="num">frames</th>'
                 '<th class="num">current for</th><th>obsdb</th></tr></thead><tbody>')
    for run in reversed(snapshot.runs):
        parts.append(f"<tr><td class=\"num\">{run['id']}</td><td>{_e(_when(run['created_at']))}</td>"
                     f"<td>{_e(run['method'])}</td><td class=\"num\">{_e(run['reference'] or '-')}</td>"
                     f"<td>{_e(run['author'])}</td>"
                     f"<td class=\"num\">{len(snapshot.run_shifts.get(run['id'], {}))}</td>"
                     f"<td class=\"num\">{current.get(run['id'], 0)}</td>"
                     f"<td>{_e(run['software_version'])}</td></tr>")
    parts.append("</tbody></table></div>")
    if not shifts_rel:
        parts.append('<p class="note">No frame has a shift in these runs.</p></section>')
        return "\n".join(parts)
    colouring = ("pointing group" if any(r["group"] for r in snapshot.records)
                 else "band (no pointing groups defined)")
    caption = ("Each frame's current shift (the sum of its steps in its newest run, what obsdb render applies; "
               f"dx = x_reference - x_frame) against time, coloured by {colouring}; rejected frames are ringed "
               "in red. Older runs' steps are on each frame's page.")
    parts.append(f'<figure><img class="plot" src="{_e(shifts_rel)}" alt="shift track">'
                 f"<figcaption>{_e(caption)}</figcaption></figure>")
    parts.append("</section>")
    return "\n".join(parts)


def _stack_numbers(quality: dict) -> str:
    """The stack's quality as a small table: FWHM, stars, sky noise, depth, NCOMBINE, exposure."""
    if not quality:
        return ""
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
    return ('<table class="stackq"><tbody>' + "".join(f"<tr><th>{_e(k)}</th><td class=\"num\">{_e(v)}</td></tr>"
                                                   for k, v in rows) + "</tbody></table>")


def _stack_section(stack_jobs: list[dict]) -> str:
    parts = ['<section id="stacks"><h2>Stacks</h2>']
    if not stack_jobs:
        parts.append('<p class="note">No stack recorded yet: <code>obsdb render --out DIR</code> writes '
                     "one per band.</p>")
    else:
        parts.append('<div class="stacks">')
        for job in stack_jobs:
            params = job["parameters"] or {}
            method = (params.get("method") or params.get("stack")) if isinstance(params, dict) else None
            target = params.get("target") if isinstance(params, dict) else None
            caption = (f"{target}, " if target else "") + f"band {job['band'] or '-'}" + (
                f", {method}" if method else "")
            if isinstance(params.get("frames"), list):
                caption += f" of {_frames(len(params['frames']))}"
            if isinstance(params.get("exptime"), (int, float)):
                caption += f", {params['exptime']:g} s in all"
            caption += (f", run {job['run']}" if job["run"] else "") + f", {_when(job['created_at'])} UTC"
            if job["error"]:
                body = f'<p class="warn">{_e(job["error"])}</p>'
            else:
                body = f'<img src="{_e(job["rel"])}" alt="{_e("stack " + (job["band"] or ""))}">'
            parts.append(f"<figure>{body}<figcaption>{_e(caption)}<br><code>{_e(job['path'])}</code>"
                         f"</figcaption>{_stack_numbers(job.get('quality') or {})}</figure>")
        parts.append("</div>")
    parts.append("</section>")
    return "\n".join(parts)


def _thumbnail_section(thumbnails: bool, jobs: list[dict], errors: dict[int, str], light: list[dict],
                       records: list[dict], pages=None) -> str:
    parts = ['<section id="frames"><h2>Frames</h2>']
    unreadable = [r for r in records if not r["readable"]]
    if not thumbnails:
        parts.append('<p class="note">Thumbnails were not drawn (<code>--no-thumbnails</code>).</p>')
    elif not light and not unreadable:
        parts.append('<p class="note">No light frames in the catalog.</p>')
    else:
        job_by_id = {j["id"]: j for j in jobs}
        by_band: dict[str, list[dict]] = defaultdict(list)
        for record in light:
            by_band[record["band"] or "-"].append(record)
        if unreadable:
            by_band["unreadable"] = unreadable
        for band in sorted(by_band):
            members = sorted(by_band[band], key=lambda r: (r["date_obs"] or "", r["number"] or 0, r["path"]))
            n_rejected = sum(r["status"] == "rejected" for r in members)
            parts.append(f"<h3>{_e(band if band == 'unreadable' else 'band ' + band)}: {len(members)} frames, "
                         f"{n_rejected} rejected</h3>")
            parts.append('<div class="grid">')
            for record in members:
                job = job_by_id.get(record["id"])
                status = record["status"]
                if job is not None and record["id"] not in errors:
                    body = f'<img src="{_e(job["rel"])}" alt="{_e(record["file_name"])}" loading="lazy">'
                else:
                    why = errors.get(record["id"]) or record.get("error") or "no thumbnail"
                    body = f'<div class="missing">{_e(why)}</div>'
                caption = f"<b>{_e(record_label(record))}</b> {_e(record['band'] or '')} " \
                          f"<span class=\"{_status_class(status)}\">{_e(status)}</span>"
                if status == "rejected":
                    caption += f"<br><span class=\"rej\">{_e(', '.join(_rejecting_names(record)))}</span>"
                cls = "thumb rejected" if status == "rejected" else "thumb"
                page = (pages or {}).get(record["id"])
                if page:
                    body = f'<a href="{_e(page)}">{body}</a>'
                parts.append(f'<figure class="{cls}" title="{_e(record["file_name"])}">{body}'
                             f"<figcaption>{caption}</figcaption></figure>")
            parts.append("</div>")
    parts.append("</section>")
    return "\n".join(parts)


# -- a page per frame ---------------------------------------------------------------------------------

def _page_names(records: list[dict]) -> dict[int, str]:
    """``frames/<label>.html`` per frame id; labels that two frames share (the same number from files of
    different names) get the file name, and the id if still not unique."""
    stems = {r["id"]: _safe(r["label"]) for r in records}
    counts = Counter(stems.values())
    for r in records:
        if counts[stems[r["id"]]] > 1:
            stems[r["id"]] = _safe(f"{r['label']}-{Path(r['file_name']).stem}")[:80]
    counts = Counter(stems.values())
    return {r["id"]: "frames/" + (stems[r["id"]] if counts[stems[r["id"]]] == 1 else f"{stems[r['id']]}-{r['id']}")
            + ".html" for r in records}


@dataclass
class _PageContext:
    """What every frame's page needs besides its record."""

    snapshot: _Snapshot
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


def _up(rel: str | None) -> str | None:
    """A path relative to the output folder, as seen from ``frames/``."""
    return None if rel is None else "../" + rel


def _fmt(value, spec: str = ".2f", unit: str = "") -> str:
    number = _number(value) if value is not None else None
    if number is None:
        return "-"
    if spec == "d":
        spec, number = ",d", int(round(number))
    return f"{number:{spec}}" + (f" {unit}" if unit else "")


def _file_link(path: str) -> str:
    try:
        uri = Path(path).resolve().as_uri()
    except ValueError:
        return f"<code>{_e(path)}</code>"
    return f'<a href="{_e(uri)}"><code>{_e(path)}</code></a>'


def _frame_page(record: dict, ctx: _PageContext) -> str:
    """One frame's page: its images beside the reference's, a zoom on its stars, every measurement,
    every tag (retracted ones too), every shift step of every run, and links to its files."""
    details = ctx.snapshot.details
    extra = details.get("frames", {}).get(record["id"], {})
    label = record["label"]
    i = ctx.position[record["id"]]
    nav = ['<a href="../index.html">report</a>',
           '<a href="../index.html#frames">all frames</a>']
    if i > 0:
        prev = ctx.by_id[ctx.order[i - 1]]
        nav.append(f'<a href="../{_e(ctx.pages[prev["id"]])}" rel="prev">previous: {_e(prev["label"])}</a>')
    if i + 1 < len(ctx.order):
        nxt = ctx.by_id[ctx.order[i + 1]]
        nav.append(f'<a href="../{_e(ctx.pages[nxt["id"]])}" rel="next">next: {_e(nxt["label"])}</a>')
    status = record["status"]
    title = f"Frame {label}"
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{_e(title)} - obsdb report</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
             "<header>", f'<nav class="crumbs">{" ".join(nav)}</nav>',
             f'<h1>{_e(title)} <span class="{_status_class(status)}">{_e(status)}</span></h1>',
             f"<p><code>{_e(record['file_name'])}</code>, band {_e(record['band'] or '-')}, "
             f"{_e(record['type'] or '-')}, {_e(record['object'] or 'no OBJECT')}, night {_e(record['night'])}</p>"]
    if status == "rejected":
        parts.append(f'<p class="rej">rejected by: {_e(", ".join(_rejecting_names(record)))}</p>')
    parts.extend(["</header>", "<main>"])
    parts.append(_frame_images(record, ctx))
    parts.append(_frame_measurements(record, extra, ctx.scales.get(record["id"])))
    parts.append(_frame_tags(record, details.get("tag_history", {}).get(record["id"], [])))
    parts.append(_frame_steps(record, details.get("steps", {}).get(record["id"], []), ctx))
    parts.append(_frame_files(record, details.get("renders", {}).get(record["id"], [])))
    parts.extend(["</main>", f"<footer>Written by obsdb {_e(ctx.version)} from the catalog; "
                  f"<code>obsdb show {_e(label)}</code> and <code>obsdb history {_e(label)}</code> "
                  "give the same facts on the command line.</footer>", "</body>", "</html>"])
    return "\n".join(parts) + "\n"


def _frame_images(record: dict, ctx: _PageContext) -> str:
    parts = ['<section id="images"><h2>Images</h2>', '<div class="pair">']
    thumb = ctx.thumbs.get(record["id"])
    if thumb:
        parts.append(f'<figure><img src="{_e(_up(thumb))}" alt="frame {_e(record["label"])}">'
                     "<figcaption>this frame (zscale)</figcaption></figure>")
    else:
        why = record.get("error") or "no thumbnail (not a light frame, unreadable, or --no-thumbnails)"
        parts.append(f'<p class="note">{_e(why)}</p>')
    run = (record["shift"] or {}).get("run")
    reference_id = ctx.snapshot.details.get("run_references", {}).get(run)
    reference = ctx.by_id.get(reference_id)
    if reference is not None and reference["id"] != record["id"] and ctx.thumbs.get(reference["id"]):
        parts.append(f'<figure><a href="../{_e(ctx.pages[reference["id"]])}">'
                     f'<img src="{_e(_up(ctx.thumbs[reference["id"]]))}" '
                     f'alt="reference frame {_e(reference["label"])}"></a>'
                     f"<figcaption>reference of run {run}: frame {_e(reference['label'])}</figcaption></figure>")
    elif reference is not None and reference["id"] == record["id"]:
        parts.append(f'<p class="note">This frame is the reference of run {run}.</p>')
    parts.append("</div>")
    zoom = ctx.zooms.get(record["id"])
    if zoom:
        parts.append(f'<figure><img class="natural" src="{_e(_up(zoom))}" alt="stars of frame {_e(record["label"])}">'
                     "<figcaption>A few of the brightest clean stars, enlarged (asinh stretch per cut-out, "
                     "1-based FITS pixel positions): round cores mean good focus and tracking; a smear "
                     "along one direction is a trail.</figcaption></figure>")
    parts.append("</section>")
    return "\n".join(parts)


def _frame_measurements(record: dict, extra: dict, scale: float | None) -> str:
    metrics, stats = record["metrics"] or {}, record["stats"] or {}
    header = extra.get("header") or {}
    minor = minor_fwhm(record)

    def arcsec(px):
        return f" = {px * scale:.2f} arcsec" if px is not None and scale else ""

    rows = [("DATE-OBS (UTC)", _when(record["date_obs"])), ("exposure", _fmt(record["exptime"], "g", "s")),
            ("airmass", _fmt(extra.get("airmass"), ".3f")), ("band", record["band"] or "-"),
            ("object", record["object"] or "-"), ("instrument", record["instrument"] or "-"),
            ("pixel scale", _fmt(scale, ".3g", "arcsec/px")),
            ("shape", "x".join(str(v) for v in reversed(record["shape"])) + " px" if record["shape"] else "-"),
            ("stars", _fmt(metrics.get("n_stars"), "d")),
            ("FWHM (round-equivalent)", _fmt(metrics.get("fwhm"), ".2f", "px") + arcsec(metrics.get("fwhm"))),
            ("FWHM, minor axis", _fmt(minor, ".2f", "px") + arcsec(minor)),
            ("HFD", _fmt(metrics.get("hfd"), ".2f", "px")), ("elongation", _fmt(metrics.get("elongation"), ".2f")),
            ("transparency", _fmt(metrics.get("transparency"), ".2f")),
            ("background", _fmt(metrics.get("background", stats.get("background")), ",.1f", "ADU")),
            ("background rms", _fmt(metrics.get("background_rms", stats.get("background_rms")), ",.2f", "ADU")),
            ("background gradient", _fmt(metrics.get("background_gradient"), ",.1f", "ADU")),
            ("pixel median / min / max", " / ".join(_fmt(stats.get(k), ",.1f") for k in ("median", "min", "max"))),
            ("saturated pixels", _fmt(stats.get("n_saturated"), "d")), ("NaN pixels", _fmt(stats.get("n_nan"), "d"))]
    rows.extend((key, str(header[key])) for key in ("OBSERVER", "TELESCOP", "INSTRUME", "FOCALLEN", "XPIXSZ",
                                                      "XBINNING", "GAIN", "CCD-TEMP", "FOCUSPOS") if key in header)
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return (f'<section id="metrics"><h2>Measurements</h2><table class="facts"><tbody>{body}</tbody></table>'
            "</section>")


def _frame_tags(record: dict, history: list[dict]) -> str:
    parts = [f'<section id="tags"><h2>Tags ({len(history)}, with their history)</h2>']
    if not history:
        parts.append('<p class="note">No tag, ever.</p></section>')
        return "\n".join(parts)
    parts.append('<div class="scroll"><table class="rejected"><thead><tr><th>tag</th><th>source</th><th>author</th>'
                 "<th>tagged (UTC)</th><th>reason</th><th>retracted</th></tr></thead><tbody>")
    for tag in history:
        active = tag["retracted_at"] is None
        if tag["name"] in REJECTING_TAGS:
            name_class = "nw rej"
        else:
            name_class = "nw acc" if tag["name"] == "accept" else "nw"
        retracted = "active" if active else (f"{_when(tag['retracted_at'])} by {tag['retracted_by'] or '-'}: "
                                             f"{tag['retract_reason'] or '-'}")
        row_class = "" if active else ' class="retracted"'
        parts.append(f'<tr{row_class}><td class="{name_class}">{_e(tag["name"])}</td>'
                     f'<td class="nw">{_e(tag["source"])}</td>'
                     f'<td class="nw">{_e(tag["author"])}</td><td class="nw">{_e(_when(tag["created_at"]))}</td>'
                     f'<td class="reason">{_e(_without_tag(tag))}</td><td class="reason">{_e(retracted)}</td></tr>')
    parts.append("</tbody></table></div></section>")
    return "\n".join(parts)


def _frame_steps(record: dict, steps: list[dict], ctx: _PageContext) -> str:
    parts = ['<section id="steps"><h2>Shift steps</h2>']
    if not steps:
        parts.append('<p class="note">No alignment run has measured this frame.</p></section>')
        return "\n".join(parts)
    runs = {run["id"]: run for run in ctx.snapshot.runs}
    current = (record["shift"] or {}).get("run")
    by_run: dict[int, list[dict]] = defaultdict(list)
    for step in steps:
        by_run[step["run"]].append(step)
    for run_id in sorted(by_run, reverse=True):
        run = runs.get(run_id, {})
        run_steps = by_run[run_id]
        dx, dy = sum(s["dx"] for s in run_steps), sum(s["dy"] for s in run_steps)
        mark = " (current: what obsdb render applies)" if run_id == current else ""
        parts.append(f"<h3>Run {run_id}, {_e(run.get('method', '?'))}, {_e(_when(run.get('created_at')))} UTC"
                     f"{_e(mark)}: dx {dx:+.3f}, dy {dy:+.3f} px</h3>")
        parts.append('<div class="scroll"><table><thead><tr><th class="num">stage</th><th>kind</th><th>method</th>'
                     '<th class="num">dx (px)</th><th class="num">dy (px)</th><th class="num">rotation (deg)</th>'
                     '<th>reference</th><th class="num">stars matched</th><th class="num">residual rms (px)</th>'
                     "</tr></thead><tbody>")
        for s in run_steps:
            parts.append(f'<tr><td class="num">{s["stage"]}</td><td>{_e(s["kind"])}</td><td>{_e(s["method"])}</td>'
                         f'<td class="num">{s["dx"]:+.3f}</td><td class="num">{s["dy"]:+.3f}</td>'
                         f'<td class="num">{_fmt(s["rotation_deg"], "+.4f")}</td><td>{_e(s["reference"] or "-")}</td>'
                         f'<td class="num">{_e(s["n_matched"] if s["n_matched"] is not None else "-")}</td>'
                         f'<td class="num">{_fmt(s["residual_rms"], ".3f")}</td></tr>')
        parts.append("</tbody></table></div>")
    parts.append("</section>")
    return "\n".join(parts)


def _frame_files(record: dict, renders: list[dict]) -> str:
    parts = ['<section id="files"><h2>Files</h2><ul class="files">',
             f"<li>catalogued file: {_file_link(record['path'])}</li>"]
    for render in renders:
        parts.append(f"<li>aligned by run {_e(render['run'] or '-')} ({_e(_when(render['created_at']))} UTC): "
                     f"{_file_link(render['path'])}</li>")
    if not renders:
        parts.append("<li>no aligned file yet (<code>obsdb render --out DIR</code>)</li>")
    parts.append("</ul></section>")
    return "\n".join(parts)
