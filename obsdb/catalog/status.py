"""What tags mean: which reject a frame, which accept it, and the resulting status.

A frame is rejected when any active tag rejects it; an active ``accept``
overrides, and its reason is kept.  Free-text tags neither reject nor accept.
"""

from __future__ import annotations

AUTOMATIC_TAGS = ("cloud", "trail", "focus", "few-stars", "unregistered")
"""Tags written by rules (`obsdb qa`, `obsdb align`)."""

MANUAL_VOCABULARY = ("tracking-slight", "tracking-big", "focus-slight", "great", "okay",
                     "use-if-must", "reject", "accept")
"""The known manual tags (free text is allowed too)."""

REJECTING_TAGS = frozenset(AUTOMATIC_TAGS) | {
    "reject", "tracking-big", "tracking-slight", "focus-slight", "use-if-must"}
"""Tags that reject a frame.  The seed notebook dropped every frame it marked with
slight or big tracking errors, slight focus errors or "use if must"."""

ACCEPTING_TAGS = frozenset({"accept"})
"""Tags that override every rejection."""

POSITIVE_TAGS = frozenset({"great", "okay"})
"""Tags that mark a frame as inspected and fine (accepted unless something rejects it)."""


def frame_status(active_tags, *, assessed: bool) -> tuple[str, list[str]]:
    """Status of a frame from its active tags.

    Parameters
    ----------
    active_tags : iterable
        Objects with ``name`` and ``reason`` (not retracted).
    assessed : bool
        True when quality metrics exist (the frame went through QA).

    Returns
    -------
    status : str
        ``accepted``, ``rejected`` or ``pending``.
    reasons : list of str
        ``"<tag>: <reason>"`` for each rejecting tag, then for each ``accept``.
    """
    tags = list(active_tags)
    rejecting = [_labelled(t) for t in tags if t.name in REJECTING_TAGS]
    accepting = [_labelled(t) for t in tags if t.name in ACCEPTING_TAGS]
    if accepting:
        return "accepted", rejecting + accepting
    if rejecting:
        return "rejected", rejecting
    if assessed or any(t.name in POSITIVE_TAGS for t in tags):
        return "accepted", []
    return "pending", []


def _labelled(tag) -> str:
    """``"<tag>: <reason>"``; rule reasons already start with their tag name."""
    return tag.reason if tag.reason.startswith(f"{tag.name}:") else f"{tag.name}: {tag.reason}"


STATUSES = ("accepted", "rejected", "pending")
"""A frame's status; ``any`` (in options) means no restriction."""


def _status_terms(assessed=None):
    """The EXISTS terms of the status rules, correlated to the enclosing query's frame (``assessed``:
    see :func:`status_expression`)."""
    from sqlalchemy import and_, exists, select
    from sqlalchemy.orm import aliased

    from obsdb.catalog.models import Frame, FrameMetrics, Tag

    # Aliases, correlated to the frame only: the enclosing query may join the same tables.
    def active(names):
        tag = aliased(Tag)
        return exists(select(tag.id).where(tag.frame_id == Frame.id, tag.retracted_at.is_(None),
                                           tag.name.in_(sorted(names))).correlate(Frame))

    if assessed is None:
        metrics = aliased(FrameMetrics)
        assessed = exists(select(metrics.frame_id).where(
            and_(metrics.frame_id == Frame.id, metrics.assessed_at.is_not(None))).correlate(Frame))
    return Frame.readable.is_(False), active(ACCEPTING_TAGS), active(REJECTING_TAGS), \
        assessed | active(POSITIVE_TAGS)


def status_expression(assessed=None):
    """A frame's status as one SQL expression (CASE over EXISTS on its active tags).

    The same rules as :func:`frame_status`: an unreadable file is rejected;
    an ``accept`` overrides every rejection; any rejecting tag rejects; a
    frame judged by QA, or tagged ``great``/``okay``, is accepted; the rest
    is pending.  Evaluated in the database, so listing the rejected frames
    of an archive never loads the others.

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

    unreadable, accepting, rejecting, judged = _status_terms(assessed)
    return case((unreadable, "rejected"), (accepting, "accepted"), (rejecting, "rejected"),
                (judged, "accepted"), else_="pending")


def status_condition(status: str):
    """``status_expression() == status`` as a plain condition, the same rules spelled out.

    A filter on one status then probes only the terms it needs (rejected: the
    accept and rejecting tags), where the CASE is evaluated to its end for
    every frame it does not select.  A test checks both agree on every frame.
    """
    from sqlalchemy import and_, not_, or_

    unreadable, accepting, rejecting, judged = _status_terms()
    if status == "rejected":
        return or_(unreadable, and_(not_(accepting), rejecting))
    if status == "accepted":
        return and_(not_(unreadable), or_(accepting, and_(not_(rejecting), judged)))
    if status == "pending":
        return and_(not_(unreadable), not_(accepting), not_(rejecting), not_(judged))
    raise ValueError(f"status {status!r}: expected one of {', '.join(STATUSES)}")
