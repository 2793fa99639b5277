"""One frame in full: its record, header, tags (retracted ones too), events and rendered files
(``obsdb show``), its alignment history (``obsdb history``), the event log (``obsdb log``) and
the facts of a ds9 region file (``obsdb regions``)."""

from __future__ import annotations


from sqlalchemy import select
from sqlalchemy.orm import Session

from obsdb.catalog.models import Centroid, Frame, GroupMember, PointingGroup, Tag
from obsdb.catalog.selectors import SelectorError, select_frames


def tag_dict(tag: Tag) -> dict:
    """A tag as ``obsdb show`` lists it in the tag history (:func:`obsdb.catalog.readers.tag_dict`)."""
    from obsdb.catalog.readers import tag_dict as shaped

    return shaped(tag.name, tag.source, tag.reason, tag.author, tag.created_at, tag.retracted_at, tag.retracted_by,
                  tag.retract_reason)


def frame_details(session: Session, frame: Frame) -> dict:
    """Everything known about one frame: its record plus header, tag history, events,
    every alignment run with its steps, and the files rendered from it
    (:func:`obsdb.catalog.readers.frame_details`)."""
    from obsdb.catalog import readers
    from obsdb.catalog.statements import session_runner

    return readers.frame_details(session_runner(session), frame_id=frame.id, sha256=frame.sha256,
                                 number=frame.number, file_name=frame.file_name, night=frame.night.name)


def frames_details(session: Session, selector: str, *, nights=None) -> list[dict]:
    """:func:`frame_details` of every frame named by a selector (:func:`obsdb.catalog.readers.frames_details`)."""
    from obsdb.catalog import readers
    from obsdb.catalog.statements import session_runner

    return readers.frames_details(session_runner(session), selector, nights=nights)


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
