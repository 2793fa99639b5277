"""Night-level decisions and pointing groups: writes and reads.  Callers own the session."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload

from obsdb.catalog.labels import frame_label
from obsdb.catalog.models import Decision, Frame, GroupMember, Night, PointingGroup
from obsdb.errors import ObsdbError

DECISION_KEYS = ("reference_frame", "reference_star", "fine_box")


def set_decision(session: Session, key: str, value: dict, *, source: str, author: str,
                 note: str | None = None, night_id: int | None = None,
                 frame: Frame | None = None) -> Decision | None:
    """Record a night's decision unless the current one is identical; returns the new row or None.

    A ``reference_frame`` decision names its ``frame`` by id (and its night is the frame's).
    """
    if key not in DECISION_KEYS:
        raise ObsdbError(f"unknown decision {key!r}; known: {', '.join(DECISION_KEYS)}")
    if frame is not None:
        night_id = frame.night_id
    current = get_decision(session, key, night_id=night_id)
    if current is not None and current.value == value and current.frame_id == (frame.id if frame else None):
        return None
    row = Decision(key=key, value=value, source=source, author=author, note=note, night_id=night_id,
                   frame_id=frame.id if frame is not None else None)
    session.add(row)
    return row


def get_decision(session: Session, key: str, *, night_id: int | None = None) -> Decision | None:
    """The current (newest) decision for ``key`` in a night (``night_id`` None: the newest of any night)."""
    query = select(Decision).where(Decision.key == key)
    if night_id is not None:
        query = query.where(Decision.night_id == night_id)
    return session.scalars(query.order_by(Decision.id.desc()).limit(1)).first()


def check_box_inside(name: str, box, frames: list[Frame]) -> None:
    """Refuse a centroid box that reaches beyond the smallest of ``frames``."""
    x0, x1, y0, y1 = (int(v) for v in box)
    sizes = [(f.width, f.height) for f in frames if f.width and f.height]
    if sizes and (x1 > min(w for w, _ in sizes) or y1 > min(h for _, h in sizes)):
        width, height = min(w for w, _ in sizes), min(h for _, h in sizes)
        raise ObsdbError(f"group {name!r}: box {x0}:{x1},{y0}:{y1} reaches beyond the frames "
                         f"({width}x{height} px; a box is X0:X1,Y0:Y1, half-open, 0-based)")


def set_group(session: Session, name: str, frames: list[Frame], *, box=None, band: str | None = None,
              reference: Frame | None = None, ref_star: tuple[float, float] | None = None,
              source: str, author: str) -> PointingGroup:
    """Create or redefine a pointing group; its frames leave any other group."""
    if not frames:
        raise ObsdbError(f"group {name!r}: no frames")
    nights = {f.night_id for f in frames}
    if len(nights) > 1:
        raise ObsdbError(f"group {name!r}: its frames are in {len(nights)} nights "
                         f"({', '.join(sorted({f.night.name for f in frames}))}); a pointing group is one night's")
    night_id = nights.pop()
    ids = [f.id for f in frames]
    # A frame that is another group's reference cannot leave that group silently.
    taken = session.execute(select(PointingGroup.name, Frame.number, Frame.file_name, Frame.number_shared)
                            .join(Frame, Frame.id == PointingGroup.reference_frame_id)
                            .where(PointingGroup.night_id == night_id, PointingGroup.name != name,
                                   PointingGroup.reference_frame_id.in_(ids))).first()
    if taken is not None:
        other, number, file_name, shared = taken
        raise ObsdbError(f"group {name!r}: frame {frame_label(None, number, file_name, qualified=False, shared=shared)} "
                         "is the reference "
                         f"of group {other!r}; give {other!r} another reference first "
                         f"(obsdb group set {other} FRAMES --reference N)")
    group = session.scalars(select(PointingGroup).where(PointingGroup.name == name,
                                                        PointingGroup.night_id == night_id)).first()
    if group is None:
        group = PointingGroup(name=name, night_id=night_id, source=source, author=author)
        session.add(group)
    else:
        group.source, group.author = source, author
    group.band = band if band is not None else (frames[0].band if len({f.band for f in frames}) == 1 else None)
    if box is not None:
        group.box_x0, group.box_x1, group.box_y0, group.box_y1 = (int(v) for v in box)
    if reference is not None:
        if reference.id not in set(ids):
            raise ObsdbError(f"group {name!r}: reference frame {reference.label} is not a member")
        group.reference_frame_id = reference.id
    elif group.reference_frame_id is not None and group.reference_frame_id not in set(ids):
        group.reference_frame_id = None  # its old reference is no member now: the group has none
    if ref_star is not None:
        group.ref_star_x, group.ref_star_y = float(ref_star[0]), float(ref_star[1])
    session.flush()
    session.execute(delete(GroupMember).where(GroupMember.frame_id.in_(ids)))
    session.execute(delete(GroupMember).where(GroupMember.group_id == group.id))
    session.flush()
    session.add_all(GroupMember(group_id=group.id, frame_id=i) for i in ids)
    session.flush()
    return group


def list_groups(session: Session, *, night_ids: list[int] | None = None) -> list[dict]:
    """Groups with their members (numbers), box, reference member and reference-star position."""
    query = select(PointingGroup).options(selectinload(PointingGroup.members)).order_by(PointingGroup.id)
    if night_ids is not None:
        query = query.where(PointingGroup.night_id.in_(night_ids))
    groups = session.scalars(query).all()
    night_names = dict(session.execute(select(Night.id, Night.name)).all())
    labels = {i: (n if n is not None else name)
              for i, n, name in session.execute(select(Frame.id, Frame.number, Frame.file_name))}
    result = []
    for g in groups:
        # Numbers first in order, then frames known only by file name.
        members = sorted((labels[m.frame_id] for m in g.members),
                         key=lambda v: (isinstance(v, str), v if isinstance(v, int) else 0, str(v)))
        result.append({
            "name": g.name, "night": night_names.get(g.night_id), "night_id": g.night_id,
            "band": g.band, "members": members,
            "frame_ids": [m.frame_id for m in g.members],
            "box": None if g.box_x0 is None else [g.box_x0, g.box_x1, g.box_y0, g.box_y1],
            "reference": labels.get(g.reference_frame_id), "reference_frame_id": g.reference_frame_id,
            "ref_star": None if g.ref_star_x is None else [g.ref_star_x, g.ref_star_y],
            "source": g.source, "author": g.author, "created_at": g.created_at.isoformat(),
        })
    return result


def parse_box(text: str) -> tuple[int, int, int, int]:
    """``X0:X1,Y0:Y1`` (half-open, 0-based) -> (x0, x1, y0, y1)."""
    try:
        xs, ys = text.split(",")
        x0, x1 = (int(float(v)) for v in xs.split(":"))
        y0, y1 = (int(float(v)) for v in ys.split(":"))
    except (ValueError, OverflowError):  # OverflowError: inf
        raise ObsdbError(f"box {text!r}: expected X0:X1,Y0:Y1, e.g. 437:485,1171:1204") from None
    if x1 <= x0 or y1 <= y0 or min(x0, y0) < 0:
        raise ObsdbError(f"box {text!r}: needs 0 <= X0 < X1 and 0 <= Y0 < Y1")
    if max(x1, y1) > 10 ** 7:
        raise ObsdbError(f"box {text!r}: beyond any detector (at most 10,000,000 px)")
    return x0, x1, y0, y1
