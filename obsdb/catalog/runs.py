"""A frame's *current run*, defined once: the newest alignment run with steps for it.

The SQL forms of the one rule: :func:`current_run_ids` (one row per frame, to join),
:func:`current_run_of_frame` (a scalar subquery correlated with ``frame``, for ``--where``) and
:func:`current_run_of` (one frame's, by id).
"""

from __future__ import annotations


def current_run_ids(chosen=None, *, frame_ids=None):
    """For each frame, its current run: a subquery of ``frame_id`` and ``run_id``.

    ``chosen`` restricts it to a subquery's frames (a column ``id``); ``frame_ids`` to a list of ids.
    """
    from sqlalchemy import func, select

    from obsdb.catalog.models import ShiftStep

    query = select(ShiftStep.frame_id, func.max(ShiftStep.run_id).label("run_id")).group_by(ShiftStep.frame_id)
    if chosen is not None:
        query = query.join(chosen, chosen.c.id == ShiftStep.frame_id)
    if frame_ids is not None:
        query = query.where(ShiftStep.frame_id.in_(frame_ids))
    return query.subquery()


def current_run_of_frame():
    """The current run of the frame of the enclosing query (``frame.id``), as a correlated scalar."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import aliased

    from obsdb.catalog.models import Frame, ShiftStep

    latest = aliased(ShiftStep)
    return select(func.max(latest.run_id)).where(latest.frame_id == Frame.id).correlate(Frame).scalar_subquery()


def current_run_of(session, frame_id: int) -> int | None:
    """One frame's current run id (None: never aligned)."""
    from sqlalchemy import func, select

    from obsdb.catalog.models import ShiftStep

    return session.scalar(select(func.max(ShiftStep.run_id)).where(ShiftStep.frame_id == frame_id))
