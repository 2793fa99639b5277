"""One frame in full: its record, header, tags (retracted ones too), events and rendered files
(``obsdb show``), its alignment history (``obsdb history``), the event log (``obsdb log``) and
the facts of a ds9 region file (``obsdb regions``)."""

from __future__ import annotations


from sqlalchemy import select
from sqlalchemy.orm import Session

from obsdb.catalog.models import (Centroid, Event, Frame, GroupMember, PENDING_DIGEST,
                                  PointingGroup, RenderOutput, Tag)
from obsdb.catalog.queries import _records_for_ids
from obsdb.catalog.selectors import SelectorError, select_frames


def tag_dict(tag: Tag) -> dict:
    """A tag as ``obsdb show`` lists it in the tag history (retracted ones too)."""
    return {"name": tag.name, "source": tag.source, "reason": tag.reason, "author": tag.author,
            "created_at": tag.created_at.isoformat(),
            "retracted_at": tag.retracted_at.isoformat() if tag.retracted_at else None,
            "retracted_by": tag.retracted_by, "retract_reason": tag.retract_reason}


def _calibration_details(session: Session, frame_id: int) -> dict:
    """``calibration`` (one line: the masters a light uses, or why none) and ``calibration_rows``."""
    from obsdb.catalog.masters import calibration_line, frame_calibration

    rows = frame_calibration(session, frame_id)
    return {"calibration": calibration_line(rows), "calibration_rows": rows}


def frame_details(session: Session, frame: Frame) -> dict:
    """Everything known about one frame: its record plus header, tag history, events,
    every alignment run with its steps, and the files rendered from it."""
    record = _records_for_ids(session, [frame.id])[0].to_json()
    frame = session.get(Frame, frame.id)
    history = session.scalars(select(Tag).where(Tag.frame_id == frame.id).order_by(Tag.id)).all()
    renders = session.scalars(select(RenderOutput).where(RenderOutput.frame_id == frame.id,
                                                         RenderOutput.sha256 != PENDING_DIGEST)
                              .order_by(RenderOutput.id)).all()
    events = session.scalars(select(Event).where(Event.frame_id == frame.id).order_by(Event.id)).all()
    star_list = frame.star_list
    record.update({
        "size": frame.size, "sha256": frame.sha256, "airmass": frame.airmass, "bitpix": frame.bitpix,
        "ingested_at": frame.ingested_at.isoformat(), "measured_at": frame.measured_at.isoformat(),
        "versions": {"stats": frame.stats.algorithm if frame.stats else None,
                     "metrics": frame.metrics.algorithm if frame.metrics else None,
                     "stars": star_list.algorithm if star_list else None},
        "stored_stars": star_list.n_stars if star_list else 0,
        "header": frame.header,
        "tag_history": [tag_dict(t) for t in history],
        "events": [{"at": e.at.isoformat(), "author": e.author, "command": e.command, "summary": e.summary,
                    "details": e.details} for e in events],
        "alignment": frame_history(session, frame)["runs"],
        "renders": [{"path": r.path, "sha256": r.sha256, "run": r.run_id, "interpolation": r.interpolation,
                     "created_at": r.created_at.isoformat()} for r in renders],
        **_calibration_details(session, frame.id),
    })
    return record


def frames_details(session: Session, selector: str, *, nights=None) -> list[dict]:
    """:func:`frame_details` of every frame named by a selector."""
    return [frame_details(session, frame) for frame in select_frames(session, selector, nights=nights)]


def event_log(session: Session, *, limit: int = 50, command: str | None = None, nights=None) -> list[dict]:
    """The newest events (every command that changed the catalog), newest first
    (:func:`obsdb.catalog.readers.event_log`)."""
    from obsdb.catalog import readers
    from obsdb.catalog.statements import session_runner

    return readers.event_log(session_runner(session), limit=limit, command=command, nights=nights)


def frame_histories(session, selector: str, *, nights=None) -> list[dict]:
    """:func:`frame_history` of every frame named by a selector (:func:`obsdb.catalog.readers.frame_histories`)."""
    from obsdb.catalog import readers
    from obsdb.catalog.statements import session_runner

    return readers.frame_histories(session_runner(session), selector, nights=nights)


def frame_history(session, frame: Frame) -> dict:
    """Every run and step for a frame, the sum per run, and which run is current
    (:func:`obsdb.catalog.readers.frame_history`)."""
    from obsdb.catalog import readers
    from obsdb.catalog.statements import session_runner

    return readers.frame_history(session_runner(session), frame_id=frame.id, sha256=frame.sha256,
                                 number=frame.number, file_name=frame.file_name, night=frame.night.name)


def region_facts(session: Session, selector: str, *, nights=None) -> dict:
    """What a ds9 region file of one frame shows: its group box and its current run's centroids."""

    selected = select_frames(session, selector, nights=nights)
    if len(selected) != 1:
        raise SelectorError(f"{selector!r} names {len(selected)} frames; give one")
    frame = selected[0]
    group = session.execute(select(PointingGroup).join(GroupMember)
                            .where(GroupMember.frame_id == frame.id)).scalar()
    from obsdb.catalog.runs import current_run_of

    run_id = current_run_of(session, frame.id)
    centroids = [] if run_id is None else [
        {"source": c.source, "method": c.method, "x": c.x, "y": c.y, "matched": c.matched_x is not None,
         "star_index": c.star_index,
         "box": (c.box_x0, c.box_x1, c.box_y0, c.box_y1) if c.box_x0 is not None else None}
        for c in session.scalars(select(Centroid).where(Centroid.frame_id == frame.id, Centroid.run_id == run_id)
                                 .order_by(Centroid.id))]
    return {
        "number": frame.number, "file_name": frame.file_name, "path": frame.path, "run_id": run_id,
        "group": None if group is None else {
            "name": group.name,
            "box": (group.box_x0, group.box_x1, group.box_y0, group.box_y1) if group.box_x0 is not None else None},
        "centroids": centroids,
        "star_list": frame.star_list.data if run_id is not None and frame.star_list is not None else None,
    }
