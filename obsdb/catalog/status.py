"""What tags mean: who decides a frame's status, and the status itself.

The rule, written once here (in Python, as an SQL CASE and as plain SQL
conditions; a test checks the three agree on every frame):

1. An unreadable file is rejected.
2. A person's latest verdict wins.  A verdict is an active tag from a person
   (source ``manual``, ``plan`` or ``web``) that rejects (``reject``,
   ``tracking-big``, ...) or accepts (``accept``).  The newest one decides,
   whoever made it: an accept after a reject accepts, a reject after an
   accept rejects.  Retracting it gives the word back to the one before.
3. Without a person's verdict, any active automatic tag that rejects
   rejects.  ``unregistered`` speaks only for the alignment run that failed:
   a frame that another run registered (it has a current shift) is not
   rejected by it.
4. Otherwise a frame QA judged, or tagged ``great``/``okay``, is accepted;
   the rest is pending.

Automatic tags never overturn a person's verdict: they stay recorded and are
shown as disagreeing (:attr:`Verdict.disagreeing`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

QA_TAGS = ("cloud", "bright-sky", "trail", "focus", "seeing", "soft", "few-stars", "unknown")
"""Tags the QA rules give light frames (:mod:`obsdb.pipeline.qa_rules`)."""

AUTOMATIC_TAGS = (*QA_TAGS, "satellite", "unregistered")
"""Tags written by rules on light frames (`obsdb qa`, `obsdb align`)."""

MASTER_COMPARISON_TAG = "calib-unlike-master"
"""The tag `obsdb calibrate` gives a raw bias, dark or flat frame that is unlike the previous master
of its kind (BANZAI's check, :func:`obsdb.imaging.calibration.unlike_master`)."""

CALIBRATION_TAGS = ("calib-level", "calib-noise", "calib-saturated", "flat-nonlinear", "flat-faint",
                    MASTER_COMPARISON_TAG)
"""Tags written by the checks of bias, dark and flat frames (`obsdb qa` from their statistics,
`obsdb calibrate` against the previous master); each rejects the frame, so that no master is made
from it."""

MANUAL_REJECTING = ("tracking-slight", "tracking-big", "focus-slight", "use-if-must", "reject")
"""A person's rejecting verdicts, in the order the review desk offers them (keys 1-5).  The seed
notebook dropped every frame it marked with slight or big tracking errors, slight focus errors or
"use if must"."""

MANUAL_VOCABULARY = ("tracking-slight", "tracking-big", "focus-slight", "great", "okay",
                     "use-if-must", "reject", "accept")
"""The known manual tags (free text is allowed too)."""

MANUAL_SOURCES = ("manual", "plan", "web")
"""Tag sources that are a person's word: the command line, a plan file, the review desk."""

AUTOMATIC_REJECTING = frozenset({"cloud", "bright-sky", "seeing", "focus", "soft", "unknown", "trail",
                                 "few-stars", "unregistered"})
"""Automatic tags that reject a frame by default.  ``bright-sky`` and ``seeing`` reject too: the
stack is better without a sky three times brighter or stars half again as wide, and an observer
who wants them (photometry of a bright star, say) accepts them by hand.  ``satellite`` does not:
render masks the streak."""

REJECTING_TAGS = AUTOMATIC_REJECTING | set(CALIBRATION_TAGS) | set(MANUAL_REJECTING)
"""Tags that reject a frame."""

ACCEPTING_TAGS = frozenset({"accept"})
"""Tags that accept a frame whatever the rules say."""

VERDICT_TAGS = REJECTING_TAGS | ACCEPTING_TAGS
"""Tags that, from a person, are a verdict (the newest one decides)."""

POSITIVE_TAGS = frozenset({"great", "okay"})
"""Tags that mark a frame as inspected and fine (accepted unless something rejects it)."""

RUN_BOUND_TAGS = frozenset({"unregistered"})
"""Automatic tags that speak for one alignment run: they reject only a frame no run registered."""

STATUSES = ("accepted", "rejected", "pending")
"""A frame's status; ``any`` (in options) means no restriction."""


def check_status(status: str | None) -> str | None:
    """``status`` as a filter takes it: one of :data:`STATUSES`, or None / ``any`` (no restriction, given
    back as None); anything else is an error with a did-you-mean."""
    if status is None or status == "any":
        return None
    if status not in STATUSES:
        from obsdb.errors import SelectorError
        from obsdb.text import not_one_of

        raise SelectorError(not_one_of("--status", status, [*STATUSES, "any"]))
    return status


def is_manual(source: str) -> bool:
    """True when a tag of this source is a person's word."""
    return source in MANUAL_SOURCES


@dataclass
class Verdict:
    """A frame's status and why.

    Attributes
    ----------
    status : str
        ``accepted``, ``rejected`` or ``pending``.
    reasons : list of str
        ``"<tag>: <reason>"``: for a rejected frame its rejecting tags (the
        deciding one first); for a frame a person accepted, the rules'
        rejections it overrides, then the accept.
    decided_by : str
        ``person``, ``rules`` (automatic tags), ``qa`` (judged, nothing
        against it), ``unreadable`` or ``none`` (pending).
    deciding : object or None
        The tag that decided (a person's latest verdict), if one did.
    overruled : list
        A person's earlier verdicts that the deciding one overrides, newest first.
    disagreeing : list of str
        Automatic reasons that say otherwise than a person's verdict.
    agreeing : list of str
        Automatic reasons that say the same as a person's reject.
    """

    status: str
    reasons: list[str] = field(default_factory=list)
    decided_by: str = "none"
    deciding: object | None = None
    overruled: list = field(default_factory=list)
    disagreeing: list[str] = field(default_factory=list)
    agreeing: list[str] = field(default_factory=list)

    def explain(self) -> str:
        """One line: the status, who decided when, what it overrides, and what the rules say.

        E.g. ``rejected: tracking-big by ana 2026-12-06 21:04, after accept by ana 21:02;
        qa says: focus: ...``.
        """
        if self.deciding is None:
            if self.status == "rejected" and self.reasons:
                return f"rejected by the rules: {'; '.join(self.reasons)}"
            return {"accepted": "accepted: judged by QA, nothing rejects it",
                    "pending": "pending: not judged yet"}.get(self.status, self.status)
        text = f"{self.status}: {_by(self.deciding, full=True)}"
        if self.overruled:
            text += ", after " + ", ".join(_by(t, full=False) for t in self.overruled)
        if self.disagreeing:
            text += "; the rules say otherwise: " + "; ".join(self.disagreeing)
        if self.agreeing:
            text += "; the rules agree: " + "; ".join(self.agreeing)
        return text


def _by(tag, *, full: bool) -> str:
    when = getattr(tag, "created_at", None)
    stamp = "" if when is None else " " + when.strftime("%Y-%m-%d %H:%M" if full else "%H:%M")
    return f"{tag.name} by {tag.author}{stamp}"


def verdict(active_tags, *, assessed: bool, registered: bool = False, readable: bool = True,
            error: str | None = None) -> Verdict:
    """A frame's :class:`Verdict` from its active tags (the rule in the module docstring).

    Parameters
    ----------
    active_tags : iterable
        Objects with ``name``, ``source``, ``reason`` (``author`` and
        ``created_at`` for the explanation), not retracted, in the order they
        were made (tag id).
    assessed : bool
        True when QA judged the frame.
    registered : bool
        True when an alignment run registered the frame (it has a current shift).
    readable : bool
        False for a file that could not be read.
    error : str, optional
        Why it could not be read.
    """
    tags = list(active_tags)
    if not readable:
        return Verdict("rejected", [f"unreadable: {error or 'the file could not be read'}"], "unreadable")
    automatic = [t for t in tags if not is_manual(t.source) and t.name in REJECTING_TAGS
                 and not (registered and t.name in RUN_BOUND_TAGS)]
    people = [t for t in tags if is_manual(t.source) and t.name in VERDICT_TAGS]
    if people:
        deciding, earlier = people[-1], people[-2::-1]
        rejected = deciding.name in REJECTING_TAGS
        rules = [labelled(t) for t in automatic]
        if rejected:
            others = [t for t in people[:-1] if t.name in REJECTING_TAGS]
            reasons = [labelled(deciding)] + [labelled(t) for t in others] + rules
            return Verdict("rejected", reasons, "person", deciding, earlier, agreeing=rules)
        return Verdict("accepted", rules + [labelled(deciding)], "person", deciding, earlier, disagreeing=rules)
    if automatic:
        return Verdict("rejected", [labelled(t) for t in automatic], "rules")
    if assessed or any(t.name in POSITIVE_TAGS for t in tags):
        return Verdict("accepted", [], "qa")
    return Verdict("pending", [], "none")


def labelled(tag) -> str:
    """``"<tag>: <reason>"``; rule reasons already start with their tag name."""
    return tag.reason if tag.reason.startswith(f"{tag.name}:") else f"{tag.name}: {tag.reason}"


def _status_terms(assessed=None, *, retry_unregistered: bool = False):
    """The EXISTS terms of the status rule, correlated to the enclosing query's frame (``assessed``:
    see :func:`status_expression`): unreadable, a person's latest verdict rejects, a person's latest
    verdict accepts, the rules reject, judged.  ``retry_unregistered``: run-bound tags count for
    nothing (a new alignment run tries those frames again)."""
    from sqlalchemy import and_, exists, not_, select
    from sqlalchemy.orm import aliased

    from obsdb.catalog.models import Frame, FrameMetrics, ShiftStep, Tag

    # Aliases, correlated to the frame only: the enclosing query may join the same tables.
    def active(names, *, manual=None, extra=()):
        tag = aliased(Tag)
        where = [tag.frame_id == Frame.id, tag.retracted_at.is_(None), tag.name.in_(sorted(names)), *extra]
        if manual is True:
            where.append(tag.source.in_(MANUAL_SOURCES))
        elif manual is False:
            where.append(tag.source.not_in(MANUAL_SOURCES))
        return tag, where

    def latest_person_verdict(names):
        tag, where = active(names, manual=True)
        newer, newer_where = active(VERDICT_TAGS, manual=True)
        newer_where.append(newer.id > tag.id)
        later = exists(select(newer.id).where(*newer_where).correlate(Frame, tag))
        return exists(select(tag.id).where(*where, not_(later)).correlate(Frame))

    def rules_reject():
        tag, where = active(REJECTING_TAGS - RUN_BOUND_TAGS, manual=False)
        plain = exists(select(tag.id).where(*where).correlate(Frame))
        if retry_unregistered:
            return plain
        bound, bound_where = active(RUN_BOUND_TAGS, manual=False)
        step = aliased(ShiftStep)
        registered = exists(select(step.id).where(step.frame_id == Frame.id).correlate(Frame))
        return plain | (exists(select(bound.id).where(*bound_where).correlate(Frame)) & not_(registered))

    if assessed is None:
        metrics = aliased(FrameMetrics)
        assessed = exists(select(metrics.frame_id).where(
            and_(metrics.frame_id == Frame.id, metrics.assessed_at.is_not(None))).correlate(Frame))
    positive_tag, positive_where = active(POSITIVE_TAGS)
    positive = exists(select(positive_tag.id).where(*positive_where).correlate(Frame))
    return (Frame.readable.is_(False), latest_person_verdict(REJECTING_TAGS), latest_person_verdict(ACCEPTING_TAGS),
            rules_reject(), assessed | positive)


def status_expression(assessed=None):
    """A frame's status as one SQL expression (CASE over EXISTS on its active tags).

    The same rule as :func:`verdict`, evaluated in the database, so listing
    the rejected frames of an archive never loads the others.

    Parameters
    ----------
    assessed : SQL condition, optional
        "QA judged this frame" for a query that already outer-joins
        ``frame_metrics`` (``FrameMetrics.assessed_at.is_not(None)``); by
        default an EXISTS on it.  PostgreSQL runs that EXISTS as one probe
        per frame, 800,000 of them for `obsdb nights` over an archive,
        where the join is one hash join; SQLite probes the key either way.
    """
    from sqlalchemy import case

    unreadable, person_rejects, person_accepts, rules_reject, judged = _status_terms(assessed)
    return case((unreadable, "rejected"), (person_rejects, "rejected"), (person_accepts, "accepted"),
                (rules_reject, "rejected"), (judged, "accepted"), else_="pending")


def status_condition(status: str, *, retry_unregistered: bool = False):
    """``status_expression() == status`` as a plain condition, the same rule spelled out.

    A filter on one status then probes only the terms it needs, where the
    CASE is evaluated to its end for every frame it does not select.  A test
    checks both agree on every frame.

    ``retry_unregistered=True`` is the status an alignment run selects by: a
    frame rejected only because an earlier run could not register it counts
    as accepted, so a failed attempt (another reference, another night)
    never keeps a frame out of the next one.
    """
    from sqlalchemy import and_, not_, or_

    unreadable, person_rejects, person_accepts, rules_reject, judged = _status_terms(
        retry_unregistered=retry_unregistered)
    if status == "rejected":
        return or_(unreadable, person_rejects, and_(not_(person_accepts), rules_reject))
    if status == "accepted":
        return and_(not_(unreadable), not_(person_rejects), or_(person_accepts, and_(not_(rules_reject), judged)))
    if status == "pending":
        return and_(not_(unreadable), not_(person_rejects), not_(person_accepts), not_(rules_reject), not_(judged))
    raise ValueError(f"status {status!r}: expected one of {', '.join(STATUSES)}")
