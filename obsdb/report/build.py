"""``obsdb report``: a static HTML report of the catalog: figures, shift tracks, thumbnails, rejections, stacks.

Everything is read from the catalog in one go (:mod:`obsdb.report.snapshot`), then the PNG pictures are
drawn (thumbnails, star zooms, stack previews) and the pages are written last, so a reader never sees an
``index.html`` that points at images not yet written.  Every file is written through a temporary file and
a rename, and only files the report wrote itself are replaced (:mod:`obsdb.report.files`).  The quality
plots and the shift track are the review desk's SVG figures (:mod:`obsdb.present.figures`), inline in
the page, every point a link to its frame's page.

Layout of the output folder::

    DIR/index.html
    DIR/thumbs/<number>-<key>.png        one per light frame (cached by content key)
    DIR/zooms/<number>-<key>.png         a few of its stars enlarged (same read, same key)
    DIR/frames/<label>.html              a page per frame: metrics, tag history, shift steps, links
    DIR/stacks/stack-<i>-<band>.png      previews of the stacks recorded by `obsdb render`
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from obsdb.report import pages as report_pages
from obsdb.report.files import ReportFiles
from obsdb.report.images import draw_stack, draw_thumbnails, stack_jobs, thumbnail_jobs
from obsdb.report.snapshot import read_snapshot

PICTURE_DIRS = ("thumbs", "stacks", "zooms", "frames")
"""The sub-folders a report writes into (created)."""


@dataclass
class ReportResult:
    """What :func:`build_report` wrote.

    Attributes
    ----------
    index_path : pathlib.Path
        The page, ``DIR/index.html``.
    n_images : int
        PNG files the page shows (thumbnails, stack previews; the plots are SVG in the page).
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
        Output folder (created); ``index.html`` and the ``thumbs/``, ``zooms/``, ``stacks/`` and
        ``frames/`` sub-folders are written there.  Files an earlier report wrote there that the new
        one no longer shows are removed.
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
    executor : optional
        Where the thumbnails are drawn (:func:`obsdb.pipeline.executors.executor_for`).
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
        ``workers`` below 1 or ``thumbnail_size`` below 16.
    """
    from obsdb.version import __version__
    from obsdb.present.facts import pixel_scales

    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if thumbnail_size < 16:
        raise ValueError(f"thumbnail size must be at least 16 px, got {thumbnail_size}")
    out = Path(out_dir)
    owned = ReportFiles(out)
    snapshot = read_snapshot(catalog, nights)
    records, light = snapshot.records, snapshot.light
    thumb_jobs = thumbnail_jobs(light, out, thumbnail_size, snapshot.details) if thumbnails else []
    stacks = stack_jobs(snapshot.stacks, out)
    pages = report_pages.page_names(records)
    # Nothing is written until every file the report would replace is known to be its own.
    owned.refuse_foreign(["index.html", *(j["rel"] for j in thumb_jobs),
                          *(j["zoom_rel"] for j in thumb_jobs if j["zoom_rel"]),
                          *(j["rel"] for j in stacks), *pages.values()])
    for job in thumb_jobs:
        job["reuse"] = job["reuse"] and owned.is_own(job["rel"]) and (
            job["zoom_rel"] is None or owned.is_own(job["zoom_rel"]))
    for sub in PICTURE_DIRS:
        (out / sub).mkdir(parents=True, exist_ok=True)
    warnings: list[str] = []
    thumb_errors = _draw_pictures(thumb_jobs, stacks, out, workers, executor, progress, warnings)
    drawn = sum(1 for job in thumb_jobs if job["drawn"])

    zooms = {j["id"]: j["zoom_rel"] for j in thumb_jobs
             if j["zoom_rel"] and j["id"] not in thumb_errors and (out / j["zoom_rel"]).is_file()}
    thumbs_shown = {j["id"]: j["rel"] for j in thumb_jobs if j["id"] not in thumb_errors}
    frame_pages = report_pages.FramePages(snapshot=snapshot, pages=pages, thumbs=thumbs_shown, zooms=zooms,
                                          scales=pixel_scales(light, snapshot.details), version=__version__)
    for record in records:
        _write_page(owned, pages[record["id"]], report_pages.frame_page(record, frame_pages))
    from obsdb.report.photometry import photometry_section

    index = _write_index(owned, snapshot, now=now, version=__version__, thumbnails=thumbnails, thumb_jobs=thumb_jobs,
                         thumb_errors=thumb_errors, stacks=stacks, warnings=warnings, pages=pages,
                         run_outcome=run_outcome, photometry=photometry_section(catalog, nights, pages))

    shown = set(thumbs_shown.values()) | {j["rel"] for j in stacks if not j["error"]}
    for rel in (shown | set(zooms.values())) - set(owned.now):
        owned.wrote(rel)          # drawn in a worker, or kept from the last report
    owned.finish(keep=shown | set(zooms.values()) | set(pages.values()) | {"index.html"})
    rejected = [r["number"] for r in records if r["status"] == "rejected" and r["number"] is not None]
    return ReportResult(index_path=index, n_images=len(shown), rejected_numbers=rejected,
                        n_thumbnails_drawn=drawn, warnings=warnings, n_frame_pages=len(pages))


def _write_index(owned: ReportFiles, snapshot, *, now, version: str, thumbnails: bool, thumb_jobs, thumb_errors,
                 stacks, warnings, pages, run_outcome, photometry=None) -> Path:
    """Draw the figures and write ``index.html``, the last file: its pictures and pages exist by then."""
    from obsdb.imaging.fitsio import atomic_write_bytes

    light = snapshot.light
    shifts, shifts_small = report_pages.shift_figures(snapshot, light or snapshot.records, pages)
    page = report_pages.index_page(
        snapshot, generated=now or datetime.now(timezone.utc), version=version,
        quality=report_pages.quality_figures(snapshot, light, pages), shifts=shifts, shifts_small=shifts_small,
        thumbnails=thumbnails, thumb_jobs=thumb_jobs, thumb_errors=thumb_errors, light=light, stack_jobs=stacks,
        warnings=warnings, pages=pages, run_outcome=run_outcome, photometry=photometry)
    index = owned.out / "index.html"
    owned.wrote("index.html", atomic_write_bytes(index, page.encode("utf-8")))
    return index


def _draw_pictures(thumb_jobs: list[dict], stacks: list[dict], out: Path, workers: int, executor, progress,
                   warnings: list[str]) -> dict[int, str]:
    """Draw the thumbnails (in the executor) and the stack previews; the thumbnails' errors by frame id.

    Problems go to ``warnings``; ``progress(done, total, item)`` after each picture.
    """
    total, done = len(thumb_jobs) + len(stacks), 0
    errors: dict[int, str] = {}
    for job, error in draw_thumbnails(thumb_jobs, workers, executor):
        if error is not None:
            errors[job["id"]] = error
            warnings.append(f"{job['path']}: thumbnail not drawn: {error}")
        done += 1
        if progress is not None:
            progress(done, total, job["file_name"])
    for job in stacks:
        job["error"] = draw_stack(job, out)
        if job["error"]:
            warnings.append(f"{job['path']}: stack preview not drawn: {job['error']}")
        done += 1
        if progress is not None:
            progress(done, total, Path(job["path"]).name)
    return errors


def _write_page(owned: ReportFiles, rel: str, text: str) -> None:
    """Write a frame's page unless it is unchanged: a night's hundreds of pages cost no write then."""
    from obsdb.imaging.fitsio import atomic_write_bytes

    payload = text.encode("utf-8")
    digest = hashlib.sha256(payload).hexdigest()
    if not (owned.is_own(rel) and owned.before.get(rel) == digest):
        atomic_write_bytes(owned.out / rel, payload)
    owned.wrote(rel, digest)
