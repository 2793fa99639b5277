"""Manual decisions: tags, retractions and pointing groups set by hand, and plans applied.

Each call is one transaction that also appends an event, so the catalog can
say who decided what, when and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from obsdb.text import plural, storable
from obsdb.catalog.decisions import check_box_inside, parse_box, set_group
from obsdb.catalog.selectors import SelectorError, select_frames
from obsdb.catalog.tags import add_tags, retract_tags
from obsdb.catalog.writes import record_event
from obsdb.config import login_name
from obsdb.errors import ObsdbError

if TYPE_CHECKING:
    from obsdb.catalog.records import FrameRecord


@dataclass
class Outcome:
    """A frame's status before and after a verdict, and why it is what it is now."""

    label: int | str
    before: str
    after: str
    explain: str

    @property
    def changed(self) -> bool:
        """True when the decision changed the frame's status."""
        return self.before != self.after


@dataclass
class Decision:
    """What a manual decision changed."""

    changed: int = 0
    unchanged: list[int | str] = field(default_factory=list)
    frames: list[int | str] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    """Each frame's resulting status (tag and untag): every command reports it."""


def _statuses(session, frames) -> dict[int, "FrameRecord"]:
    from obsdb.catalog.queries import _records_for_ids

    session.flush()
    return {r.id: r for r in _records_for_ids(session, [f.id for f in frames])}


def _outcomes(before: dict[int, "FrameRecord"], after: dict[int, "FrameRecord"]) -> list[Outcome]:
    return [Outcome(record.label, before[frame_id].status, record.status, record.verdict.explain)
            for frame_id, record in after.items()]


def tag_frames(db, selector: str, name: str, *, reason: str | None, author: str | None = None,
               nights=None, free_text: bool = False) -> Decision:
    """Tag the frames named by ``selector`` by hand (source ``manual``); ``free_text`` lets a near miss
    of a known tag through (:func:`obsdb.catalog.tags.check_tag_vocabulary`)."""

    if not reason or not reason.strip():
        raise ObsdbError("a tag needs a reason (--reason)")
    name, reason = storable(name), storable(reason)
    who = author or login_name()
    with db.session() as session:
        frames = select_frames(session, selector, nights=nights)
        before = _statuses(session, frames)
        change = add_tags(session, frames, name, reason=reason, source="manual", author=who, free_text=free_text)
        outcomes = _outcomes(before, _statuses(session, frames))
        record_event(session, who, "tag", f"{name} on {_frames(len(change.added))}: {reason}",
                     frame_id=frames[0].id if len(frames) == 1 else None,
                     details={"frames": [f.night_label for f in frames], "tag": name,
                              "status": {str(o.label): [o.before, o.after] for o in outcomes}})
        kept = {t.frame_id for t in change.kept}
        return Decision(len(change.added), [f.label for f in frames if f.id in kept],
                        [f.label for f in frames], outcomes)


def untag_frames(db, selector: str, name: str, *, reason: str | None, author: str | None = None,
                 nights=None) -> Decision:
    """Retract the active tag ``name`` on the frames named by ``selector``."""

    if not reason or not reason.strip():
        raise ObsdbError("untag needs a reason (--reason)")
    # The name as a tag of it was stored (an undecodable byte kept as its escape): a lone surrogate
    # cannot be sent to the database at all.
    name, reason = storable(name), storable(reason)
    who = author or login_name()
    with db.session() as session:
        frames = select_frames(session, selector, nights=nights)
        before = _statuses(session, frames)
        change = retract_tags(session, frames, name, reason=reason, author=who)
        if not change.retracted:
            raise ObsdbError(f"no active {name!r} tag on {selector}: nothing retracted "
                             f"(`obsdb show {selector}` lists its tags)")
        outcomes = _outcomes(before, _statuses(session, frames))
        record_event(session, who, "untag", f"{name} retracted on {_frames(len(change.retracted))}: {reason}",
                     frame_id=frames[0].id if len(frames) == 1 else None,
                     details={"frames": [f.night_label for f in frames], "tag": name,
                              "status": {str(o.label): [o.before, o.after] for o in outcomes}})
        return Decision(len(change.retracted), [f.label for f in change.missing], [f.label for f in frames],
                        outcomes)


def _frames(count: int) -> str:
    return plural(count, "frame")


def define_group(db, name: str, selector: str, *, box: str | None = None, reference: int | None = None,
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
    with db.session() as session:
        members = select_frames(session, selector, readable_only=True, nights=nights)
        if parsed_box is not None:
            check_box_inside(name, parsed_box, members)
        group_ref = None
        if reference is not None:
            group_ref = next((f for f in members if f.number == reference), None)
            if group_ref is None:
                raise ObsdbError(f"--reference {reference}: not among the group's frames")
        set_group(session, name, members, box=parsed_box, reference=group_ref, ref_star=star, source="manual",
                  author=who)
        record_event(session, who, "group set", f"{name}: {plural(len(members), 'frame')}, box {box}")
        return Decision(len(members), [], [f.label for f in members])


@dataclass
class ApplyReport:
    """What applying a plan changed."""

    tags_added: int = 0
    tags_kept: int = 0
    groups: int = 0
    decisions: list[str] = field(default_factory=list)
    missing_frames: list[str] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    """The resulting status of each frame the plan tagged."""


def apply_plan(db, plan, *, user: str | None = None, night=None) -> ApplyReport:
    """Record a plan's decisions in the catalog in one transaction.

    Frames named in the plan but absent from the catalog are reported, not fatal
    (a plan may cover more of the night than was ingested); a plan whose
    reference frame is absent is an error.
    """
    from obsdb.catalog.decisions import set_decision

    user = user or login_name()
    report = ApplyReport()
    note = f"plan {Path(plan.path).name}"

    def frames_for(selector: str):
        try:
            return select_frames(session, selector, readable_only=True, strict=False, nights=night)
        except SelectorError:
            report.missing_frames.append(selector)
            return []

    with db.session() as session:
        night_id = None
        if plan.reference is not None:
            reference = frames_for(str(plan.reference))
            if not reference:
                raise ObsdbError(f"{plan.path}: reference frame {plan.reference} is not in the catalog")
            night_id = reference[0].night_id
            if set_decision(session, "reference_frame", {"frame": plan.reference}, source="plan",
                            author=plan.author, note=note, frame=reference[0]):
                report.decisions.append(f"reference frame {plan.reference}")
            if plan.reference_star is not None:
                value = {"frame": plan.reference, "x": plan.reference_star[0], "y": plan.reference_star[1]}
                if set_decision(session, "reference_star", value, source="plan", author=plan.author, note=note,
                                night_id=night_id):
                    report.decisions.append(f"reference star at {plan.reference_star} in {plan.reference}")
        if plan.fine_box is not None:
            value = {"box": list(plan.fine_box), "method": plan.fine_method}
            if plan.fine_reference is not None:
                value["reference"] = plan.fine_reference
            if plan.fine_background is not None:
                value["background"] = plan.fine_background
            if set_decision(session, "fine_box", value, source="plan", author=plan.author, note=note,
                            night_id=night_id):
                report.decisions.append(f"fine box {plan.fine_box}")
        before: dict[int, dict] = {}
        tagged: dict[int, object] = {}
        for entry in plan.tags:
            frames = frames_for(entry.frames)
            if frames:
                fresh = [f for f in frames if f.id not in before]
                if fresh:
                    before.update(_statuses(session, fresh))
                tagged.update((f.id, f) for f in frames)
                change = add_tags(session, frames, entry.tag, reason=entry.reason, source="plan",
                                  author=entry.author, free_text=entry.free_text)
                report.tags_added += len(change.added)
                report.tags_kept += len(change.kept)
        for entry in plan.groups:
            frames = frames_for(entry.frames)
            if not frames:
                continue
            group_reference = None
            if entry.reference is not None:
                group_reference = next((f for f in frames if f.number == entry.reference), None)
            set_group(session, entry.name, frames, box=entry.box, band=entry.band, reference=group_reference,
                      ref_star=entry.reference_star, source="plan", author=plan.author)
            report.groups += 1
        if tagged:
            report.outcomes = _outcomes(before, _statuses(session, list(tagged.values())))
        record_event(session, user, "apply",
                     f"{note}: {plural(report.tags_added, 'tag')}, {plural(report.groups, 'group')}, "
                     f"{plural(len(report.decisions), 'decision')}",
                     details={"plan": plan.path, "missing": report.missing_frames})
    return report
