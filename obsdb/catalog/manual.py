"""Manual decisions: tags, retractions and pointing groups set by hand.

Each call is one transaction that also appends an event, so the catalog can
say who decided what, when and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from obsdb.catalog.decisions import parse_box, set_group
from obsdb.catalog.queries import select_frames
from obsdb.catalog.tags import add_tags, retract_tags
from obsdb.catalog.writes import record_event
from obsdb.config import login_name
from obsdb.errors import ObsdbError


@dataclass
class Decision:
    """What a manual decision changed."""

    changed: int = 0
    unchanged: list[int | str] = field(default_factory=list)
    frames: list[int | str] = field(default_factory=list)


def tag_frames(catalog, selector: str, name: str, *, reason: str | None, author: str | None = None,
               nights=None) -> Decision:
    """Tag the frames named by ``selector`` by hand (source ``manual``)."""

    if not reason or not reason.strip():
        raise ObsdbError("a tag needs a reason (--reason)")
    who = author or login_name()
    with catalog.session() as session:
        frames = select_frames(session, selector, nights=nights)
        change = add_tags(session, frames, name, reason=reason, source="manual", author=who)
        record_event(session, who, "tag", f"{name} on {_frames(len(change.added))}: {reason}",
                     frame_id=frames[0].id if len(frames) == 1 else None,
                     details={"frames": [f.night_label for f in frames], "tag": name})
        kept = {t.frame_id for t in change.kept}
        return Decision(len(change.added), [f.label for f in frames if f.id in kept],
                        [f.label for f in frames])


def untag_frames(catalog, selector: str, name: str, *, reason: str | None, author: str | None = None,
                 nights=None) -> Decision:
    """Retract the active tag ``name`` on the frames named by ``selector``."""

    if not reason or not reason.strip():
        raise ObsdbError("untag needs a reason (--reason)")
    who = author or login_name()
    with catalog.session() as session:
        frames = select_frames(session, selector, nights=nights)
        change = retract_tags(session, frames, name, reason=reason, author=who)
        record_event(session, who, "untag", f"{name} retracted on {_frames(len(change.retracted))}: {reason}",
                     frame_id=frames[0].id if len(frames) == 1 else None,
                     details={"frames": [f.night_label for f in frames], "tag": name})
        return Decision(len(change.retracted), [f.label for f in change.missing], [f.label for f in frames])


def _frames(count: int) -> str:
    return "1 frame" if count == 1 else f"{count} frames"


def define_group(catalog, name: str, selector: str, *, box: str | None = None, reference: int | None = None,
                 ref_star: str | None = None, author: str | None = None, nights=None) -> Decision:
    """Create or redefine a pointing group by hand (its frames leave any other group)."""

    who = author or login_name()
    parsed_box = parse_box(box) if box else None
    star = None
    if ref_star:
        try:
            star = tuple(float(v) for v in ref_star.split(","))
        except ValueError:
            star = ()
        if len(star) != 2:
            raise ObsdbError(f"--ref-star {ref_star!r}: expected X,Y")
    with catalog.session() as session:
        members = select_frames(session, selector, readable_only=True, nights=nights)
        group_ref = None
        if reference is not None:
            group_ref = next((f for f in members if f.number == reference), None)
            if group_ref is None:
                raise ObsdbError(f"--reference {reference}: not among the group's frames")
        set_group(session, name, members, box=parsed_box, reference=group_ref, ref_star=star, source="manual",
                  author=who)
        record_event(session, who, "group set", f"{name}: {len(members)} frames, box {box}")
        return Decision(len(members), [], [f.label for f in members])
