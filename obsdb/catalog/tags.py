"""Tag writes: append-only.  Adding an identical active tag is a no-op; untagging retracts."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from obsdb.catalog.models import Frame, Tag, utcnow
from obsdb.errors import ObsdbError


MAX_REASON = 2_000
"""Longest reason a tag or a retraction keeps, characters: a paragraph, never a file's worth (one
desk request once stored 30 MiB)."""

MAX_AUTHOR = 64
"""Longest author name, characters."""

MAX_TAG_NAME = 64
"""Longest tag name, characters."""

ID_CHUNK = 500
"""Frame ids per query when a write touches many frames (bounded SQL parameter lists)."""


@dataclass
class TagSummary:
    """What a tag write did, as plain data: (frame id, tag, reason) triples."""

    added: list[tuple[int, str, str]] = field(default_factory=list)
    retracted: list[tuple[int, str, str]] = field(default_factory=list)


@dataclass
class TagChange:
    """What a tag write did."""

    added: list[Tag] = field(default_factory=list)
    retracted: list[Tag] = field(default_factory=list)
    kept: list[Tag] = field(default_factory=list)
    missing: list[Frame] = field(default_factory=list)

    def summary(self) -> TagSummary:
        """The change as plain data (usable after the session is closed)."""
        return TagSummary([(t.frame_id, t.name, t.reason) for t in self.added],
                          [(t.frame_id, t.name, t.reason) for t in self.retracted])


def validate_tag_name(name: str) -> str:
    """A tag name: non-empty, no whitespace at the ends, no commas."""
    cleaned = (name or "").strip()
    if not cleaned or "," in cleaned or len(cleaned) > MAX_TAG_NAME:
        raise ObsdbError(f"tag name {name!r}: must be 1-{MAX_TAG_NAME} characters without commas")
    return cleaned


TAG_TYPO_CUTOFF = 0.8
"""How alike (difflib's ratio) a person's tag must be to a known one to be taken for a typo of it:
``tracking-slite`` (0.90 to ``tracking-slight``) and ``rejct`` (0.91) are; ``ok`` (0.67 to ``okay``) is not."""


def check_tag_vocabulary(name: str, *, free_text: bool = False) -> None:
    """Refuse a tag that is a near miss of a known verdict or automatic tag, unless ``free_text``.

    A free-text tag neither rejects nor accepts, so ``tracking-slite`` would
    silently leave the frame in the stack; the person is asked instead.

    Raises
    ------
    ObsdbError
        ``tag 'tracking-slite': did you mean tracking-slight? (free text is allowed: --free-text)``.
    """
    from obsdb.catalog.status import AUTOMATIC_TAGS, CALIBRATION_TAGS, MANUAL_VOCABULARY, VERDICT_TAGS
    from obsdb.text import closest

    known = {*VERDICT_TAGS, *MANUAL_VOCABULARY, *AUTOMATIC_TAGS, *CALIBRATION_TAGS}
    if free_text or name in known:
        return
    match = closest(name, known, cutoff=TAG_TYPO_CUTOFF)
    if match:
        raise ObsdbError(f"tag {name!r}: did you mean {match}? (free text is allowed: --free-text)")


def add_tags(session: Session, frames: list[Frame], name: str, *, reason: str, source: str,
             author: str, run_id: int | None = None, evidence: dict | None = None,
             free_text: bool = False) -> TagChange:
    """Tag frames.  An active tag with the same name, source and reason is kept as is;
    the same name and source with a new reason is retracted and replaced (the history keeps both).

    A verdict given again on the command line or the desk is added anew when a later verdict stands
    between (accept, reject, accept again): its time is what makes it the latest word (see
    :mod:`obsdb.catalog.status`).  A plan re-applied never re-adds: applying a plan twice changes nothing.
    ``run_id`` ties a run-bound tag (``unregistered``) to its alignment run; ``evidence`` keeps a
    rule's numbers and yardstick.  A person's tag that is a near miss of a known one is refused
    unless ``free_text`` (:func:`check_tag_vocabulary`).
    """
    from obsdb.catalog.status import VERDICT_TAGS, is_manual

    name = validate_tag_name(name)
    if is_manual(source):
        check_tag_vocabulary(name, free_text=free_text)
    if not reason or not reason.strip():
        raise ObsdbError("a tag needs a reason (--reason)")
    _check_text(reason, author)
    change = TagChange()
    ids = [f.id for f in frames]
    active = _active(session, ids, name)
    latest = _latest_verdicts(session, ids) if is_manual(source) and name in VERDICT_TAGS else {}
    now = utcnow()
    for frame in frames:
        same = [t for t in active.get(frame.id, []) if t.source == source]
        repeat = source != "plan" and is_manual(source) and name in VERDICT_TAGS and any(
            t.id < latest.get(frame.id, 0) for t in same)
        if not repeat and any(t.reason == reason.strip() for t in same):
            change.kept.extend(t for t in same if t.reason == reason.strip())
            continue
        for old in same:
            _retract(old, author, f"superseded: {reason}", now)
            change.retracted.append(old)
        tag = Tag(frame_id=frame.id, name=name, source=source, reason=reason.strip(), author=author,
                  created_at=now, run_id=run_id, evidence=evidence)
        session.add(tag)
        change.added.append(tag)
    return change


def retract_tags(session: Session, frames: list[Frame], name: str, *, reason: str, author: str,
                 source: str | None = None) -> TagChange:
    """Retract the active tags ``name`` on frames (optionally only those from ``source``)."""
    if not reason or not reason.strip():
        raise ObsdbError("untag needs a reason (--reason)")
    _check_text(reason, author)
    change = TagChange()
    active = _active(session, [f.id for f in frames], name)
    now = utcnow()
    for frame in frames:
        tags = [t for t in active.get(frame.id, []) if source is None or t.source == source]
        if not tags:
            change.missing.append(frame)
        for tag in tags:
            _retract(tag, author, reason.strip(), now)
            change.retracted.append(tag)
    return change


def _check_text(reason: str, author: str) -> None:
    if len(reason) > MAX_REASON:
        raise ObsdbError(f"a reason is at most {MAX_REASON:,} characters (this one has {len(reason):,})")
    if len(author or "") > MAX_AUTHOR:
        raise ObsdbError(f"an author name is at most {MAX_AUTHOR} characters")


def _retract(tag: Tag, author: str, reason: str, when) -> None:
    tag.retracted_at = when
    tag.retracted_by = author
    # "superseded: <the new reason>" may pass the limit by its prefix; the new tag keeps the whole reason.
    tag.retract_reason = reason if len(reason) <= MAX_REASON else reason[:MAX_REASON - 1] + "…"


def _latest_verdicts(session: Session, frame_ids: list[int]) -> dict[int, int]:
    """Tag id of each frame's latest active verdict from a person."""
    from sqlalchemy import func

    from obsdb.catalog.status import MANUAL_SOURCES, VERDICT_TAGS

    out: dict[int, int] = {}
    for start in range(0, len(frame_ids), ID_CHUNK):
        out.update(session.execute(
            select(Tag.frame_id, func.max(Tag.id)).where(
                Tag.frame_id.in_(frame_ids[start:start + ID_CHUNK]), Tag.retracted_at.is_(None),
                Tag.source.in_(MANUAL_SOURCES), Tag.name.in_(sorted(VERDICT_TAGS)))
            .group_by(Tag.frame_id)).all())
    return out


def _active(session: Session, frame_ids: list[int], name: str) -> dict[int, list[Tag]]:
    result: dict[int, list[Tag]] = {}
    query = select(Tag).where(Tag.frame_id.in_(frame_ids), Tag.name == name, Tag.retracted_at.is_(None))
    for tag in session.scalars(query):
        result.setdefault(tag.frame_id, []).append(tag)
    return result


def sync_rule_tags(session: Session, frame_ids, wanted: dict[tuple[int, str], str], *,
                   names: tuple[str, ...], author: str, retract_reason: str,
                   evidence: dict[tuple[int, str], dict] | None = None, run_id: int | None = None) -> TagChange:
    """Make the active automatic tags ``names`` on the frames ``frame_ids`` exactly ``wanted``.

    ``wanted`` maps (frame id, tag name) to the reason.  A tag that still holds
    with the same reason is kept; with a new reason it is retracted and
    re-added; one that no longer holds is retracted with ``retract_reason``.
    Tags of other names, manual tags and other frames are left alone.
    ``evidence`` (optional, same keys) is stored in :attr:`Tag.evidence` of the tags added, ``run_id``
    ties them to an alignment run.

    The new tags are inserted in one statement per :data:`ID_CHUNK` rows (no ORM flush per tag);
    :attr:`TagChange.added` holds them as transient :class:`Tag` objects, without their ids.
    """
    from sqlalchemy import insert

    change = TagChange()
    sources = [f"rule:{name}" for name in names]
    active: dict[tuple[int, str], Tag] = {}
    ids = list(frame_ids)
    for start in range(0, len(ids), ID_CHUNK):
        for tag in session.scalars(select(Tag).where(Tag.frame_id.in_(ids[start:start + ID_CHUNK]),
                                                     Tag.retracted_at.is_(None), Tag.source.in_(sources))):
            active[(tag.frame_id, tag.name)] = tag
    now = utcnow()
    for key, tag in active.items():
        reason = wanted.get(key)
        if reason == tag.reason:
            change.kept.append(tag)
        else:
            _retract(tag, author, retract_reason if reason is None else f"superseded: {reason}", now)
            change.retracted.append(tag)
    rows = []
    for (frame_id, name), reason in sorted(wanted.items()):
        if (frame_id, name) in active and active[(frame_id, name)].reason == reason:
            continue
        row = {"frame_id": frame_id, "name": validate_tag_name(name), "source": f"rule:{name}", "reason": reason,
               "author": author, "created_at": now, "run_id": run_id,
               "evidence": (evidence or {}).get((frame_id, name))}
        rows.append(row)
        change.added.append(Tag(**row))
    session.flush()  # the retractions first, as the ORM ordered them before
    for start in range(0, len(rows), ID_CHUNK):
        session.execute(insert(Tag), rows[start:start + ID_CHUNK])
    return change
