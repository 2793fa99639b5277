"""Read-side helpers: frame selectors, frame records in the CLI's JSON shape."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from obsdb.catalog.models import (AlignmentRun, Centroid, Frame, FrameMetrics, FrameStats, GroupMember,
                                  PointingGroup,
                                  ShiftStep, Tag)
from obsdb.catalog.status import frame_status
from obsdb.errors import ObsdbError


class SelectorError(ObsdbError, ValueError):
    """A frame selector is malformed or matches nothing."""


_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+))?\s*$")


def parse_selector(text: str) -> tuple[set[int], set[int], list[str]]:
    """Split a selector like ``3852-3861,3885,/data/a.fits`` into all numbers, the
    numbers given singly (not by a range), and paths."""
    numbers: set[int] = set()
    singles: set[int] = set()
    paths: list[str] = []
    if not text or not text.strip():
        raise SelectorError("empty frame selector")
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        match = _RANGE.match(part)
        if match:
            first = int(match.group(1))
            last = int(match.group(2) or first)
            if last < first:
                raise SelectorError(f"range {part!r} runs backwards")
            if last - first > 1_000_000:
                raise SelectorError(f"range {part!r} is implausibly long")
            numbers.update(range(first, last + 1))
            if match.group(2) is None:
                singles.add(first)
        else:
            paths.append(part)
    return numbers, singles, paths


def select_frames(session: Session, selector: str, *, readable_only: bool = False,
                  strict: bool = True) -> list[Frame]:
    """Frames named by a selector (numbers, ranges, paths or file names).

    Ranges may have gaps; a single number that matches no frame is an error
    when ``strict`` (a typo must not silently shrink a selection).

    Raises
    ------
    SelectorError
        When nothing matches, a path names no catalogued frame, or (strict) a
        single number names no frame.
    """
    numbers, singles, paths = parse_selector(selector)
    found: dict[int, Frame] = {}
    if numbers:
        for frame in session.scalars(select(Frame).where(Frame.number.in_(sorted(numbers)))):
            found[frame.id] = frame
        missing = sorted(singles - {f.number for f in found.values()})
        if strict and missing and found:
            raise SelectorError(f"no frame numbered {', '.join(map(str, missing))} in the catalog "
                                f"(selector {selector!r})")
    for path in paths:
        resolved = str(Path(path).expanduser().resolve())
        matches = session.scalars(select(Frame).where(
            (Frame.path == resolved) | (Frame.file_name == Path(path).name))).all()
        if not matches:
            raise SelectorError(f"{path}: not in the catalog")
        for frame in matches:
            found[frame.id] = frame
    if not found:
        raise SelectorError(f"no frame in the catalog matches {selector!r}")
    frames = [f for f in found.values() if f.readable or not readable_only]
    return sorted(frames, key=lambda f: (f.number if f.number is not None else 10**12, f.path))


def active_tags_by_frame(session: Session, frame_ids=None) -> dict[int, list[Tag]]:
    """Active (not retracted) tags per frame id, oldest first."""
    query = select(Tag).where(Tag.retracted_at.is_(None)).order_by(Tag.id)
    if frame_ids is not None:
        query = query.where(Tag.frame_id.in_(list(frame_ids)))
    tags: dict[int, list[Tag]] = defaultdict(list)
    for tag in session.scalars(query):
        tags[tag.frame_id].append(tag)
    return tags


def current_shifts(session: Session, frame_ids=None) -> dict[int, dict]:
    """The current shift of each frame: the sum of its steps in its newest run."""
    query = (select(ShiftStep.frame_id, ShiftStep.run_id, func.sum(ShiftStep.dx), func.sum(ShiftStep.dy),
                    func.sum(ShiftStep.rotation_deg), func.count())
             .group_by(ShiftStep.frame_id, ShiftStep.run_id))
    if frame_ids is not None:
        query = query.where(ShiftStep.frame_id.in_(list(frame_ids)))
    shifts: dict[int, dict] = {}
    for frame_id, run_id, dx, dy, rot, n in session.execute(query):
        if frame_id not in shifts or run_id > shifts[frame_id]["run"]:
            shifts[frame_id] = {"dx": dx, "dy": dy, "rotation_deg": rot, "run": run_id, "steps": n}
    return shifts


def groups_by_frame(session: Session, frame_ids=None) -> dict[int, str]:
    """Pointing group name per frame id."""
    query = select(GroupMember.frame_id, PointingGroup.name).join(PointingGroup)
    if frame_ids is not None:
        query = query.where(GroupMember.frame_id.in_(list(frame_ids)))
    return dict(session.execute(query).all())


def _stats_dict(stats: FrameStats | None) -> dict | None:
    if stats is None:
        return None
    return {k: getattr(stats, k) for k in ("min", "max", "mean", "median", "std", "background",
                                            "background_rms", "n_nan", "n_saturated", "saturation")}


def _metrics_dict(metrics: FrameMetrics | None) -> dict | None:
    if metrics is None:
        return None
    return {k: getattr(metrics, k) for k in ("n_stars", "fwhm", "hfd", "elongation", "background",
                                              "background_rms", "background_gradient", "transparency")}


def record_label(record: dict) -> str:
    """How the user names the frame of a :func:`frame_records` row: its number, else its file name."""
    return str(record["number"]) if record.get("number") is not None else str(record.get("file_name") or "-")


def frame_records(session: Session, *, band: str | None = None, image_type: str | None = None,
                  status: str | None = None, tag: str | None = None, where: str | None = None,
                  frame_ids=None, include_unreadable: bool = True) -> list[dict]:
    """Frames as plain dicts in the CLI's JSON shape (see DESIGN.md).

    Each record has number, path, file_name, band, type, object, exptime,
    date_obs, status, reasons, tags, stats, metrics, group and shift.
    A handful of queries in all, whatever the number of frames.
    """
    from obsdb.catalog.expr import compile_expression

    query = (select(Frame).outerjoin(FrameStats).outerjoin(FrameMetrics)
             .options(selectinload(Frame.stats), selectinload(Frame.metrics)))
    if band:
        query = query.where(Frame.band == band)
    if image_type:
        query = query.where(Frame.image_type == image_type)
    if where:
        query = query.where(compile_expression(where))
    if frame_ids is not None:
        query = query.where(Frame.id.in_(list(frame_ids)))
    if not include_unreadable:
        query = query.where(Frame.readable.is_(True))
    frames = session.scalars(query.order_by(Frame.number, Frame.path)).unique().all()
    ids = [f.id for f in frames]
    tags = active_tags_by_frame(session, ids)
    shifts = current_shifts(session, ids)
    groups = groups_by_frame(session, ids)
    records = []
    for frame in frames:
        frame_tags = tags.get(frame.id, [])
        state, reasons = frame_status(
            frame_tags, assessed=frame.metrics is not None and frame.metrics.assessed_at is not None)
        if not frame.readable:
            state, reasons = "rejected", [f"unreadable: {frame.error}"]
        if status and state != status:
            continue
        if tag and not any(t.name == tag for t in frame_tags):
            continue
        records.append({
            "id": frame.id,
            "number": frame.number,
            "path": frame.path,
            "file_name": frame.file_name,
            "band": frame.band,
            "type": frame.image_type,
            "object": frame.object,
            "exptime": frame.exptime,
            "date_obs": frame.date_obs.isoformat() if frame.date_obs else None,
            "shape": [frame.height, frame.width] if frame.width else None,
            "readable": frame.readable,
            "error": frame.error,
            "status": state,
            "reasons": reasons,
            "tags": [{"name": t.name, "source": t.source, "reason": t.reason, "author": t.author,
                      "created_at": t.created_at.isoformat()} for t in frame_tags],
            "stats": _stats_dict(frame.stats),
            "metrics": _metrics_dict(frame.metrics),
            "group": groups.get(frame.id),
            "shift": shifts.get(frame.id),
        })
    return records


def band_summary(session: Session) -> list[dict]:
    """Per band and image type: frame counts by status, median background and FWHM, total exposure."""
    import statistics

    records = frame_records(session)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in records:
        groups[(record["band"] or "", record["type"] or "")].append(record)
    rows = []
    for (band, kind), members in sorted(groups.items()):
        backgrounds = [r["stats"]["background"] for r in members if r["stats"]]
        fwhms = [r["metrics"]["fwhm"] for r in members if r["metrics"] and r["metrics"]["fwhm"] is not None]
        rows.append({
            "band": band or None, "type": kind or None, "frames": len(members),
            "unreadable": sum(not r["readable"] for r in members),
            "accepted": sum(r["status"] == "accepted" for r in members),
            "rejected": sum(r["status"] == "rejected" and r["readable"] for r in members),
            "pending": sum(r["status"] == "pending" for r in members),
            "median_background": statistics.median(backgrounds) if backgrounds else None,
            "median_fwhm": statistics.median(fwhms) if fwhms else None,
            "exptime": sum(r["exptime"] or 0.0 for r in members),
        })
    return rows


def frame_details(session: Session, frame: Frame) -> dict:
    """Everything known about one frame: its record plus header, tag history, events,
    every alignment run with its steps, and the files rendered from it."""
    from obsdb.catalog.models import Event

    from obsdb.catalog.models import RenderOutput

    record = frame_records(session, frame_ids=[frame.id])[0]
    history = session.scalars(select(Tag).where(Tag.frame_id == frame.id).order_by(Tag.id)).all()
    renders = session.scalars(select(RenderOutput).where(RenderOutput.frame_id == frame.id)
                              .order_by(RenderOutput.id)).all()
    events = session.scalars(select(Event).where(Event.frame_id == frame.id).order_by(Event.id)).all()
    record.update({
        "size": frame.size, "sha256": frame.sha256, "airmass": frame.airmass, "bitpix": frame.bitpix,
        "ingested_at": frame.ingested_at.isoformat(), "measured_at": frame.measured_at.isoformat(),
        "header": frame.header,
        "tag_history": [{
            "name": t.name, "source": t.source, "reason": t.reason, "author": t.author,
            "created_at": t.created_at.isoformat(),
            "retracted_at": t.retracted_at.isoformat() if t.retracted_at else None,
            "retracted_by": t.retracted_by, "retract_reason": t.retract_reason} for t in history],
        "events": [{"at": e.at.isoformat(), "user": e.user, "command": e.command, "summary": e.summary,
                    "details": e.details} for e in events],
        "alignment": frame_history(session, frame)["runs"],
        "renders": [{"path": r.path, "sha256": r.sha256, "run": r.run_id, "interpolation": r.interpolation,
                     "created_at": r.created_at.isoformat()} for r in renders],
    })
    return record


def frames_details(session: Session, selector: str) -> list[dict]:
    """:func:`frame_details` of every frame named by a selector."""
    return [frame_details(session, frame) for frame in select_frames(session, selector)]


def event_log(session: Session, *, limit: int = 50, command: str | None = None) -> list[dict]:
    """The newest events (every command that changed the catalog), newest first."""
    from obsdb.catalog.models import Event

    query = select(Event).order_by(Event.id.desc()).limit(limit)
    if command:
        query = query.where(Event.command == command)
    numbers = dict(session.execute(select(Frame.id, Frame.number)).all())
    return [{"id": e.id, "at": e.at.isoformat(), "user": e.user, "command": e.command, "summary": e.summary,
             "frame": numbers.get(e.frame_id), "details": e.details} for e in session.scalars(query)]



def frame_histories(session, selector: str) -> list[dict]:
    """:func:`frame_history` of every frame named by a selector."""
    from obsdb.catalog.queries import select_frames

    return [frame_history(session, frame) for frame in select_frames(session, selector)]


def frame_history(session, frame: Frame) -> dict:
    """Every run and step for a frame, the sum per run, and which run is current."""
    steps = session.scalars(select(ShiftStep).where(ShiftStep.frame_id == frame.id)
                            .order_by(ShiftStep.run_id, ShiftStep.stage, ShiftStep.id)).all()
    run_ids = sorted({s.run_id for s in steps})
    runs = {r.id: r for r in session.scalars(select(AlignmentRun).where(AlignmentRun.id.in_(run_ids)))}
    centroid_ids = {s.centroid_id for s in steps} | {s.reference_centroid_id for s in steps}
    centroids = {c.id: c for c in session.scalars(select(Centroid).where(Centroid.id.in_(
        [i for i in centroid_ids if i is not None])))}
    frame_ids = {s.reference_frame_id for s in steps} | {r.reference_frame_id for r in runs.values()}
    # Frames are named by number, or by file name when they have none.
    numbers = {i: (n if n is not None else name) for i, n, name in session.execute(
        select(Frame.id, Frame.number, Frame.file_name).where(Frame.id.in_([i for i in frame_ids if i is not None])))}
    current = max(run_ids) if run_ids else None

    def centroid(cid):
        c = centroids.get(cid)
        if c is None:
            return None
        box = None if c.box_x0 is None else [c.box_x0, c.box_x1, c.box_y0, c.box_y1]
        return {"x": c.x, "y": c.y, "flux": c.flux, "method": c.method, "box": box, "frame_id": c.frame_id}

    history = []
    for run_id in run_ids:
        run = runs[run_id]
        run_steps = [s for s in steps if s.run_id == run_id]
        history.append({
            "run": run_id, "method": run.method, "created_at": run.created_at.isoformat(),
            "author": run.author, "software_version": run.software_version,
            "reference": numbers.get(run.reference_frame_id), "parameters": run.parameters,
            "current": run_id == current,
            "steps": [{"stage": s.stage, "kind": s.kind, "method": s.method, "dx": s.dx, "dy": s.dy,
                       "rotation_deg": s.rotation_deg, "scale": s.scale,
                       "reference": numbers.get(s.reference_frame_id), "n_matched": s.n_matched,
                       "residual_rms": s.residual_rms, "centroid": centroid(s.centroid_id),
                       "reference_centroid": centroid(s.reference_centroid_id), "parameters": s.parameters}
                      for s in run_steps],
            "total": {"dx": math.fsum(s.dx for s in run_steps), "dy": math.fsum(s.dy for s in run_steps),
                      "rotation_deg": math.fsum(s.rotation_deg for s in run_steps)},
        })
    return {"number": frame.number, "file_name": frame.file_name, "current_run": current, "runs": history}
