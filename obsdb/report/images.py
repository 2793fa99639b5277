"""The report's pictures: a thumbnail and a star zoom per light frame (cached by content), stack previews
with the stacks' own numbers.  Drawn in the executor's workers (thumbnails) through :mod:`obsdb.imaging.preview`.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from obsdb.present.facts import header_scale, number, pixel_scales, record_label, rejecting_names, zoom_stars

THUMBNAIL_VERSION = "2"
"""Part of each thumbnail's cache key: bump when the thumbnail drawing changes."""

ZERO_POINT_KEYWORDS = ("MAGZP", "MAGZPT", "MAGZERO", "ZMAG", "PHOTZP")
"""Header keywords of a photometric zero point (mag of 1 ADU): with one, the stack's depth is a magnitude."""

DEPTH_SIGMA = 5.0
"""The stack's depth is the flux of a point source detected at this signal-to-noise."""


def safe_name(text: str) -> str:
    """A file-name-safe rendering of a band or number (the index in the name keeps it unique)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text))[:40] or "_"


def thumbnail_badge(record: dict) -> str | None:
    """The short text a rejected frame's thumbnail carries (its first two rejecting tags), None otherwise."""
    if record["status"] != "rejected":
        return None
    names = rejecting_names(record)
    # A 160 px thumbnail holds two short names; the page's caption lists all of them.
    return ", ".join(names[:2]) + (f" +{len(names) - 2}" if len(names) > 2 else "")


def thumbnail_jobs(records: list[dict], out: Path, size: int, details: dict | None = None) -> list[dict]:
    """One job per light frame; the file name carries a key so an unchanged thumbnail is reused.

    A frame with stored stars also gets a zoom on a few of them, drawn from the same read (same key).
    """
    extras = (details or {}).get("frames", {})
    scales = pixel_scales(records, details or {})
    jobs = []
    for record in records:
        badge = thumbnail_badge(record)
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
        rel = f"thumbs/{safe_name(record_label(record))}-{key}.png"
        zoom_rel = f"zooms/{safe_name(record_label(record))}-{key}.png" if picks else None
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


def draw_thumbnails(jobs: list[dict], workers: int, executor=None):
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


def stack_jobs(stacks: list[dict], out: Path) -> list[dict]:
    """One job per stack file: where its preview goes (``stacks/stack-<i>-<band>.png``), its error and numbers."""
    return [dict(stack, rel=f"stacks/stack-{i}-{safe_name(stack['band'] or 'none')}.png", error=None, quality={})
            for i, stack in enumerate(stacks)]


def draw_stack(job: dict, out: Path) -> str | None:
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
    job["quality"] = stack_quality(image.data, dict(image.header))
    return None


def stack_quality(data, header: dict) -> dict:
    """FWHM, stars, sky noise, NCOMBINE, exposure and depth of a stack.

    The depth is the flux of a :data:`DEPTH_SIGMA` sigma point source in an aperture of
    radius one FWHM, sky-noise limited: ``DEPTH_SIGMA * rms * sqrt(pi) * FWHM``, in ADU, and
    as a magnitude when the header holds a zero point (:data:`ZERO_POINT_KEYWORDS`).
    """
    import math

    from obsdb.imaging.stars import measure_quality

    quality: dict = {"ncombine": number(header.get("NCOMBINE")),
                     "exptime": number(header.get("EXPTIME")) or number(header.get("EXPOSURE"))}
    scale = header_scale(header)
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
        zero_point = next((number(header[k]) for k in ZERO_POINT_KEYWORDS if number(header.get(k))), None)
        quality["depth_mag"] = zero_point - 2.5 * math.log10(depth) if zero_point and depth > 0 else None
    return quality
