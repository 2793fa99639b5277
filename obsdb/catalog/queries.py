"""Read-side queries: frame records in the CLI's JSON shape and their filters, render's plan.

Set-based throughout: a frame's status is its ``status`` column, which
:mod:`obsdb.catalog.maintained` keeps equal to the rule (:func:`status_expression`) in every write's
transaction; listings are streamed page by page (keyset paging; each page's tags, shifts
and groups are looked up by that page's ids, at most :data:`PAGE_SIZE`, never
by a list of the whole selection).  Summaries live in :mod:`obsdb.catalog.summaries`,
one frame's details and history in :mod:`obsdb.catalog.details`, the report's reads in
:mod:`obsdb.catalog.report_queries`.
"""

from __future__ import annotations

from typing import Iterator

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from obsdb.imaging.header import LIGHT_IMAGE_TYPES
from obsdb.catalog.models import AlignmentRun, Frame, FrameMetrics, FrameStats, Night, ShiftStep, Tag
from obsdb.catalog.labels import frame_name
from obsdb.catalog.readers import (BATCH_FRAMES, MAX_BATCH_NIGHTS, METRICS_FIELDS, PAGE_SIZE,  # noqa: F401
                                   STATS_FIELDS)  # (re-exported)
from obsdb.catalog.records import FrameFilter, FrameRecord
from obsdb.catalog.runs import current_run_ids
from obsdb.catalog.selectors import ALL_NIGHTS, night_ids
from obsdb.catalog.status import STATUSES, check_status, status_condition


def frame_filter(selection: FrameFilter, *, night_scope: list[int] | None = None, session: Session | None = None):
    """The WHERE clause of a frame listing (over Frame, Night, FrameStats, FrameMetrics) for ``selection``.

    ``night_scope`` is the night ids ``selection.nights`` names (:func:`obsdb.catalog.selectors.night_ids`;
    None: every night).  With ``session``, a band matches whatever its case (``v`` finds ``V``;
    ``=r`` asks for exactly ``r``, where a night holds both Johnson R and SDSS
    r), and a ``--where`` header keyword written as a bare name must be held
    by some frame in scope (a typo or an unquoted string is an error, not an
    empty answer).
    """
    band, image_type, status, tag, where = (selection.band, selection.image_type, selection.status, selection.tag,
                                            selection.where)
    target, frame_ids = selection.target, selection.frame_ids
    conditions = []
    if night_scope is not None:
        conditions.append(Frame.night_id.in_(night_scope))
    if band and session is not None:
        from obsdb.catalog import readers
        from obsdb.catalog.statements import session_runner

        conditions.append(Frame.band.in_(readers.bands_matching(session_runner(session), band, night_scope)))
    elif band:
        conditions.append(Frame.band == (band[1:] if band.startswith("=") and len(band) > 1 else band))
    if image_type:
        if session is not None:
            _check_image_type(session, image_type)
        conditions.append(Frame.image_type == image_type)
    if selection.image_types is not None:
        conditions.append(Frame.image_type.in_(selection.image_types))
    if selection.light_only:
        conditions.append(Frame.image_type.in_(LIGHT_IMAGE_TYPES))
    if target is not None:
        conditions.append(Frame.object.is_(None) if target == "" else Frame.object == target)
    if selection.instrument_id is not None:
        conditions.append(Frame.instrument_id == selection.instrument_id)
    if not selection.include_unreadable:
        conditions.append(Frame.readable.is_(True))
    if frame_ids is not None:
        # Only for a handful of frames named by the caller (a selector's, a run's): listings filter in SQL.
        conditions.append(Frame.id.in_(list(frame_ids)))
    if check_status(status or None):
        # The kept column, except for an alignment run's selection, whose rule differs (see status_condition).
        conditions.append(status_condition(status, retry_unregistered=True) if selection.retry_unregistered
                          else Frame.status == status)
    if tag:
        conditions.append(select(Tag.id).where(Tag.frame_id == Frame.id, Tag.retracted_at.is_(None),
                                               Tag.name == tag).exists())
    if where is not None:  # "" is an error (compile_expression says so), never "every frame"
        from obsdb.catalog.expr import compile_expression  # the --where compiler: only for a --where

        bare: list = []
        conditions.append(compile_expression(where, bare))
        if bare and session is not None:
            _check_bare_keywords(session, where, bare, night_scope)
    return and_(True, *conditions)


def _check_image_type(session: Session, image_type: str) -> None:
    """``--type lights`` is a typo, not an empty answer (:func:`obsdb.catalog.readers.check_image_type`)."""
    from obsdb.catalog import readers
    from obsdb.catalog.statements import session_runner

    readers.check_image_type(session_runner(session), image_type)


def _check_bare_keywords(session: Session, text: str, bare: list, night_scope: list[int] | None) -> None:
    from obsdb.catalog import readers
    from obsdb.catalog.statements import session_runner

    readers.check_bare_keywords(session_runner(session), text, bare, night_scope)


def _base_query(condition):
    return (select(Frame.id).join(Night, Frame.night_id == Night.id)
            .outerjoin(FrameStats, FrameStats.frame_id == Frame.id)
            .outerjoin(FrameMetrics, FrameMetrics.frame_id == Frame.id).where(condition))


ASSESSED = FrameMetrics.assessed_at.is_not(None)
""""QA judged this frame", for a query that outer-joins :class:`FrameMetrics` (see :func:`status_expression`)."""


def iter_frame_records(session: Session, selection: FrameFilter | None = None, *,
                       page_size: int = PAGE_SIZE) -> Iterator[FrameRecord]:
    """The frames ``selection`` picks (None: every frame of the default nights), as typed
    :class:`~obsdb.catalog.records.FrameRecord` records, streamed in pages: see
    :func:`obsdb.catalog.readers.iter_frame_records`, run over the session, with the filters only
    SQLAlchemy can express (``where``, ``light_only``, ``target``, ``instrument_id``,
    ``include_unreadable``, ``retry_unregistered``) as one further condition."""
    from obsdb.catalog import readers
    from obsdb.catalog.statements import session_runner

    selection = selection if selection is not None else FrameFilter()

    def sa_conditions(scope):
        # The filters of `selection` the reader leaves to SQLAlchemy: one further condition, and the
        # status rule of an alignment run's selection in place of the kept status column.
        rest = FrameFilter(where=selection.where, include_unreadable=selection.include_unreadable,
                           light_only=selection.light_only, target=selection.target,
                           instrument_id=selection.instrument_id)
        extra = None if rest == FrameFilter() else frame_filter(rest, night_scope=scope, session=session)
        rule = (status_condition(selection.status, retry_unregistered=True)
                if selection.retry_unregistered and selection.status in STATUSES else None)
        return extra, rule

    yield from readers.iter_frame_records(session_runner(session), selection, sa_conditions=sa_conditions,
                                          page_size=page_size)


def frame_records(session: Session, selection: FrameFilter | None = None, **filters) -> list[FrameRecord]:
    """:func:`iter_frame_records` as a list, of ``selection`` with ``filters`` laid over it
    (:meth:`FrameFilter.of`)."""
    return list(iter_frame_records(session, FrameFilter.of(selection, **filters)))



def _records_for_ids(session: Session, ids: list[int]) -> list[FrameRecord]:
    """Records of a few frames named by id (one frame's details, a run's frames)."""
    return list(iter_frame_records(session, FrameFilter(nights=ALL_NIGHTS, frame_ids=ids)))


def render_plan(session: Session, *, run: int | None = None, status: str = "accepted", band: str | None = None,
                where: str | None = None, nights=None) -> list[dict]:
    """What ``obsdb render`` resamples: each selected frame with the steps of one run.

    The run is ``run`` when given, else each frame's current run (:func:`current_run_ids`).
    A frame without steps in that run is left out.  Reference frames are named by
    number, or by file name when they have none.  Ordered by number, then path.
    """
    from sqlalchemy.orm import aliased

    from obsdb.errors import ObsdbError

    if run is not None and session.get(AlignmentRun, run) is None:
        raise ObsdbError(f"--run {run}: no such alignment run")
    condition = frame_filter(FrameFilter(band=band, where=where, status=None if status == "any" else status,
                                         include_unreadable=False),
                             night_scope=night_ids(session, nights), session=session)
    chosen = _base_query(condition).subquery()
    run_reference, step_reference = aliased(Frame), aliased(Frame)
    query = (select(ShiftStep, Frame, FrameStats.background, FrameStats.saturation, FrameMetrics.fwhm,
                    AlignmentRun.method,
                    run_reference.number, run_reference.file_name, run_reference.path,
                    step_reference.number, step_reference.file_name, run_reference.number_shared,
                    step_reference.number_shared)
             .join(chosen, chosen.c.id == ShiftStep.frame_id)
             .join(Frame, Frame.id == ShiftStep.frame_id)
             .join(AlignmentRun, AlignmentRun.id == ShiftStep.run_id)
             .outerjoin(FrameStats, FrameStats.frame_id == Frame.id)
             .outerjoin(FrameMetrics, FrameMetrics.frame_id == Frame.id)
             .outerjoin(run_reference, run_reference.id == AlignmentRun.reference_frame_id)
             .outerjoin(step_reference, step_reference.id == ShiftStep.reference_frame_id)
             .order_by(ShiftStep.frame_id, ShiftStep.stage, ShiftStep.id))
    if run is not None:
        query = query.where(ShiftStep.run_id == run)
    else:
        current = current_run_ids(chosen)
        query = query.join(current, and_(current.c.frame_id == ShiftStep.frame_id,
                                         current.c.run_id == ShiftStep.run_id))

    tasks: dict[int, dict] = {}
    for (step, frame, sky, saturation, fwhm, method, run_number, run_name, run_path, step_number, step_name,
         run_shared, step_shared) in session.execute(query):
        task = tasks.get(frame.id)
        if task is None:
            task = tasks[frame.id] = {
                "frame_id": frame.id, "number": frame.number, "path": frame.path, "band": frame.band,
                "night_id": frame.night_id, "instrument_id": frame.instrument_id,
                "shape": (frame.height, frame.width), "object": frame.object, "exptime": frame.exptime, "sky": sky, "fwhm": fwhm, "saturation": saturation,
                "run": step.run_id,
                "reference": frame_name(run_number, run_name, run_shared), "reference_path": run_path, "method": method,
                "date_obs": frame.date_obs.isoformat() if frame.date_obs else None, "airmass": frame.airmass,
                "steps": []}
        parameters = step.parameters or {}
        task["steps"].append({"stage": step.stage, "kind": step.kind, "method": step.method, "dx": step.dx,
                              "dy": step.dy, "rotation_deg": step.rotation_deg, "scale": step.scale,
                              "cx": parameters.get("cx"), "cy": parameters.get("cy"),
                              "reference": frame_name(step_number, step_name, step_shared)})
    return sorted(tasks.values(), key=lambda t: (t["number"] is None, t["number"], t["path"]))


def catalogued_among(session: Session, paths: list[str]) -> set[str]:
    """Which of ``paths`` are catalogued input frames (compared with :func:`os.path.normcase`)."""
    import os

    wanted = {os.path.normcase(p): p for p in paths}
    found = set()
    keys = list(wanted)
    for start in range(0, len(keys), 500):  # bounded IN lists: a render's outputs, not the catalog
        found.update(session.scalars(select(Frame.path).where(Frame.path.in_(keys[start:start + 500]))))
    return {wanted[os.path.normcase(p)] for p in found if os.path.normcase(p) in wanted}
