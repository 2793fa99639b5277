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

from collections import defaultdict
from typing import Iterator

from sqlalchemy import and_, func, literal, select, tuple_
from sqlalchemy.orm import Session

from obsdb.text import not_one_of
from obsdb.imaging.header import IMAGE_TYPES, LIGHT_IMAGE_TYPES
from obsdb.catalog.models import (AlignmentRun, Frame, FrameMetrics, FrameStats, GroupMember, Instrument, Night,
                                  PointingGroup, ShiftStep, Tag)
from obsdb.catalog.labels import frame_name
from obsdb.catalog.records import (FrameFilter, FrameRecord, Metrics, Shift, Stats, TagRecord, VerdictSummary,
                                   Weights)
from obsdb.catalog.runs import current_run_ids
from obsdb.catalog.selectors import ALL_NIGHTS, SelectorError, frame_label, night_ids
from obsdb.catalog.status import STATUSES, status_condition, verdict

PAGE_SIZE = 2000
"""Frames per page of a streamed listing: bounded memory, few round trips."""

BATCH_FRAMES = 20_000
"""A listing over many nights reads them in batches of consecutive nights (by name) holding about
this many frames (``night_summary.frames``), each batch paged on its own.  Ordered by night name
across the whole archive, one page query would otherwise read every frame of the selection and sort
it for every page (SQLite chose the band index and sorted 333,000 V frames per page of
`obsdb rejected --band V --night all`, 4.9 s a page); within a batch the night index bounds it."""

MAX_BATCH_NIGHTS = 500
"""At most this many nights per batch (a bounded SQL parameter list)."""

STATS_FIELDS = Stats.FIELDS
METRICS_FIELDS = Metrics.FIELDS


def frame_filter(selection: FrameFilter, *, night_scope: list[int] | None = None, session: Session | None = None):
    """The WHERE clause of a frame listing (over Frame, Night, FrameStats, FrameMetrics) for ``selection``.

    ``night_scope`` is the night ids ``selection.nights`` names (:func:`obsdb.catalog.selectors.night_ids`;
    None: every night).  With ``session``, a band matches whatever its case (``v`` finds ``V``;
    ``=r`` asks for exactly ``r``, where a night holds both Johnson R and SDSS
    r), and a ``--where`` header keyword written as a bare name must be held
    by some frame in scope (a typo or an unquoted string is an error, not an
    empty answer).
    """
    from obsdb.catalog.expr import compile_expression

    band, image_type, status, tag, where = (selection.band, selection.image_type, selection.status, selection.tag,
                                            selection.where)
    target, frame_ids = selection.target, selection.frame_ids
    conditions = []
    if night_scope is not None:
        conditions.append(Frame.night_id.in_(night_scope))
    if band and band.startswith("=") and len(band) > 1:
        conditions.append(Frame.band == band[1:])
    elif band and session is not None:
        conditions.append(Frame.band.in_(band_spellings(session, band, night_scope) or [band]))
    elif band:
        conditions.append(Frame.band == band)
    if image_type:
        if session is not None:
            _check_image_type(session, image_type)
        conditions.append(Frame.image_type == image_type)
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
    if status and status != "any":
        if status not in STATUSES:
            raise SelectorError(not_one_of("--status", status, [*STATUSES, "any"]))
        # The kept column, except for an alignment run's selection, whose rule differs (see status_condition).
        conditions.append(status_condition(status, retry_unregistered=True) if selection.retry_unregistered
                          else Frame.status == status)
    if tag:
        conditions.append(select(Tag.id).where(Tag.frame_id == Frame.id, Tag.retracted_at.is_(None),
                                               Tag.name == tag).exists())
    if where is not None:  # "" is an error (compile_expression says so), never "every frame"
        bare: list = []
        conditions.append(compile_expression(where, bare))
        if bare and session is not None:
            _check_bare_keywords(session, where, bare, night_scope)
    return and_(True, *conditions)


def _check_image_type(session: Session, image_type: str) -> None:
    """``--type lights`` is a typo, not an empty answer: the type must be a known one or a stored one."""
    if image_type in IMAGE_TYPES:
        return
    stored = {t for t in session.scalars(select(Frame.image_type).distinct()) if t}
    if image_type in stored:
        return
    raise SelectorError(not_one_of("--type", image_type, sorted(set(IMAGE_TYPES) | stored)))


def band_spellings(session: Session, band: str, night_scope: list[int] | None) -> list[str]:
    """The bands stored in scope that are ``band`` whatever the case (``v`` -> ``['V']``)."""
    query = select(Frame.band).where(func.lower(Frame.band) == band.lower()).distinct()
    if night_scope is not None:
        query = query.where(Frame.night_id.in_(night_scope))
    return list(session.scalars(query))


def _check_bare_keywords(session: Session, text: str, bare: list, night_scope: list[int] | None) -> None:
    from obsdb.catalog.expr import check_bare_keywords, header_has

    def scoped(query):
        return query.where(Frame.night_id.in_(night_scope)) if night_scope is not None else query

    def present(key: str) -> bool:
        return session.scalar(scoped(select(Frame.id).where(header_has(key))).limit(1)) is not None

    def known_keys() -> list[str]:
        # The keywords of a few frames: enough to suggest FILTER for FILTR.
        headers = session.scalars(scoped(select(Frame.header).where(Frame.header.is_not(None))).limit(20))
        return [key for header in headers for key in (header or {})]

    check_bare_keywords(text, bare, present, known_keys)


def _base_query(condition):
    return (select(Frame.id).join(Night, Frame.night_id == Night.id)
            .outerjoin(FrameStats, FrameStats.frame_id == Frame.id)
            .outerjoin(FrameMetrics, FrameMetrics.frame_id == Frame.id).where(condition))


ASSESSED = FrameMetrics.assessed_at.is_not(None)
""""QA judged this frame", for a query that outer-joins :class:`FrameMetrics` (see :func:`status_expression`)."""


_FRAME_COLUMNS = (Frame.id, Frame.number, Frame.path, Frame.file_name, Frame.band, Frame.image_type, Frame.object,
                  Frame.exptime, Frame.date_obs, Frame.height, Frame.width, Frame.readable, Frame.error,
                  Frame.number_shared, Frame.keywords)


def iter_frame_records(session: Session, selection: FrameFilter | None = None, *,
                       page_size: int = PAGE_SIZE) -> Iterator[FrameRecord]:
    """The frames ``selection`` picks (None: every frame of the default nights), as typed
    :class:`~obsdb.catalog.records.FrameRecord` records, streamed in pages.

    Ordered by night, number and path in natural order.  Each page
    of :data:`PAGE_SIZE` frames costs four queries, whatever the catalog's
    size: the page itself (keyset-paged, the filter and the status evaluated
    once per frame, plain columns rather than ORM objects), then the page's
    active tags, current shifts and groups, looked up by the page's ids.
    """
    selection = selection if selection is not None else FrameFilter()
    status, frame_ids = selection.status, selection.frame_ids
    scope = night_ids(session, selection.nights)
    condition = frame_filter(selection, night_scope=scope, session=session)
    qualified = session.scalar(select(func.count(Night.id))) > 1
    # Natural order within a number (STAR_FOCUS_2 before STAR_FOCUS_10): frame.sort_key; the path last,
    # so that the key stays unique for the keyset paging below.
    order = (Night.name, func.coalesce(Frame.number, 2**62), func.coalesce(Frame.sort_key, Frame.path), Frame.path)
    stats_columns = [getattr(FrameStats, k) for k in STATS_FIELDS]
    metrics_columns = [getattr(FrameMetrics, k) for k in METRICS_FIELDS]
    page_query = (select(*_FRAME_COLUMNS, Night.name, Instrument.key, FrameStats.frame_id, *stats_columns,
                         FrameMetrics.frame_id, FrameMetrics.assessed_at, *metrics_columns,
                         # A listing of one status knows each frame's: no second evaluation.
                         literal(status) if status in STATUSES else Frame.status, *order)
                  .select_from(Frame).join(Night, Frame.night_id == Night.id)
                  .outerjoin(Instrument, Instrument.id == Frame.instrument_id)
                  .outerjoin(FrameStats, FrameStats.frame_id == Frame.id)
                  .outerjoin(FrameMetrics, FrameMetrics.frame_id == Frame.id)
                  .where(condition).order_by(*order).limit(page_size))
    n_frame, n_stats, n_metrics = len(_FRAME_COLUMNS), len(stats_columns), len(metrics_columns)
    # Columns, not entities: Core rows skip the ORM's loading machinery (half the time per record).
    connection = session.connection()
    # A few frames named by id are found by their ids, whatever the nights.
    for batch in [None] if frame_ids is not None else _night_batches(session, scope):
        batch_query = page_query if batch is None else page_query.where(Frame.night_id.in_(batch))
        yield from _pages(session, connection, batch_query, order, n_frame, n_stats, n_metrics, qualified,
                          page_size)


def _night_batches(session: Session, scope: list[int] | None) -> Iterator[list[int] | None]:
    """Batches of nights in name order for a listing over ``scope`` (None: all), each about
    :data:`BATCH_FRAMES` frames by the kept night summaries; ``[None]`` when the scope is small."""
    from obsdb.catalog.models import NightSummary

    if scope is not None and len(scope) <= 1:
        yield None
        return
    query = (select(Night.id, func.coalesce(NightSummary.frames, 0))
             .outerjoin(NightSummary, NightSummary.night_id == Night.id).order_by(Night.name))
    nights = session.execute(query if scope is None else query.where(Night.id.in_(scope))).all()
    batch, frames = [], 0
    for night_id, n in nights:
        batch.append(night_id)
        frames += n
        if frames >= BATCH_FRAMES or len(batch) >= MAX_BATCH_NIGHTS:
            yield batch
            batch, frames = [], 0
    if batch:
        yield batch


def _pages(session, connection, page_query, order, n_frame, n_stats, n_metrics, qualified,
           page_size) -> Iterator[FrameRecord]:
    """The records of one keyset-paged listing query (see :func:`iter_frame_records`)."""
    last = None
    while True:
        # The night bound is implied by the row comparison, and it is what lets the next page start at
        # its night through the night index: PostgreSQL takes no index bound from a row comparison across
        # two tables, and walked every earlier night again on every page (page k read k pages; 36 s
        # for the 63,000 rejected V frames of a 1,000,000-frame archive).
        query = page_query if last is None else page_query.where(Night.name >= last[0],
                                                                 tuple_(*order) > tuple_(*last))
        rows = connection.execute(query).all()
        if not rows:
            return
        # One page's ids (at most PAGE_SIZE): bounded lists, never the whole selection's.
        ids = [row[0] for row in rows]
        tags = defaultdict(list)
        for t in connection.execute(select(Tag.frame_id, Tag.id, Tag.name, Tag.source, Tag.reason, Tag.author,
                                           Tag.created_at, Tag.evidence)
                                 .where(Tag.frame_id.in_(ids), Tag.retracted_at.is_(None)).order_by(Tag.id)):
            tags[t.frame_id].append(t)
        shifts = _current_shifts(session, ids)
        groups = dict(connection.execute(select(GroupMember.frame_id, PointingGroup.name).join(PointingGroup)
                                      .where(GroupMember.frame_id.in_(ids))).all())
        weights = _page_weights(connection, ids)
        for row in rows:
            (frame_id, number, path, file_name, band_, kind, target_, exptime, date_obs, height, width, readable,
             error, shared, keywords) = row[:n_frame]
            night_name, instrument, stats_id = row[n_frame:n_frame + 3]
            stats = row[n_frame + 3:n_frame + 3 + n_stats]
            at = n_frame + 3 + n_stats
            metrics_id, assessed_at = row[at:at + 2]
            metrics = row[at + 2:at + 2 + n_metrics]
            state = row[at + 2 + n_metrics]
            frame_tags = tags.get(frame_id, [])
            judged = verdict(frame_tags, assessed=metrics_id is not None and assessed_at is not None,
                             registered=frame_id in shifts, readable=readable, error=error)
            yield FrameRecord(
                id=frame_id, night=night_name,
                label=frame_label(night_name, number, file_name, qualified=qualified, shared=shared),
                number=number, path=path, file_name=file_name, band=band_, type=kind, object=target_,
                instrument=instrument, exptime=exptime, date_obs=date_obs.isoformat() if date_obs else None,
                shape=[height, width] if width else None, readable=readable, error=error, keywords=keywords,
                status=state, reasons=judged.reasons,
                verdict=VerdictSummary(judged.decided_by, judged.explain(), judged.disagreeing),
                tags=[TagRecord(t.name, t.source, t.reason, t.author, t.created_at.isoformat(), t.evidence)
                      for t in frame_tags],
                stats=None if stats_id is None else Stats(*stats),
                metrics=None if metrics_id is None else Metrics(*metrics),
                group=groups.get(frame_id), shift=shifts.get(frame_id), weights=weights.get(frame_id))
        last = tuple(rows[-1][-len(order):])
        if len(rows) < page_size:
            return


def _page_weights(connection, ids: list[int]) -> dict[int, Weights]:
    """The stored weights of a page's frames (:class:`obsdb.catalog.models.FrameWeight`), by frame id."""
    from obsdb.catalog.models import FrameWeight

    rows = connection.execute(select(FrameWeight.frame_id, FrameWeight.noise, FrameWeight.fwhm, FrameWeight.stars,
                                     FrameWeight.snr, FrameWeight.snr_value, FrameWeight.set_size,
                                     FrameWeight.algorithm).where(FrameWeight.frame_id.in_(ids)))
    return {row[0]: Weights(*row[1:]) for row in rows}


def frame_records(session: Session, selection: FrameFilter | None = None, **filters) -> list[FrameRecord]:
    """:func:`iter_frame_records` as a list, of ``selection`` with ``filters`` laid over it
    (:meth:`FrameFilter.of`)."""
    return list(iter_frame_records(session, FrameFilter.of(selection, **filters)))



def _records_for_ids(session: Session, ids: list[int]) -> list[FrameRecord]:
    """Records of a few frames named by id (one frame's details, a run's frames)."""
    return list(iter_frame_records(session, FrameFilter(nights=ALL_NIGHTS, frame_ids=ids)))


def _current_shifts(session: Session, ids: list[int] | None) -> dict[int, Shift]:
    """The current shift of the frames ``ids`` (a page's; None: every frame)."""
    current = current_run_ids(frame_ids=ids)
    query = (select(ShiftStep.frame_id, ShiftStep.run_id, func.sum(ShiftStep.dx), func.sum(ShiftStep.dy),
                    func.sum(ShiftStep.rotation_deg), func.count(), func.max(ShiftStep.n_matched),
                    func.max(ShiftStep.residual_rms), func.max(ShiftStep.method))
             .join(current, and_(current.c.frame_id == ShiftStep.frame_id, current.c.run_id == ShiftStep.run_id))
             .group_by(ShiftStep.frame_id, ShiftStep.run_id))
    # The registration's confidence travels with the shift: star pairs kept, fit residual, method
    # (the staged method's three steps have no pairs: None).
    return {frame_id: Shift(dx, dy, rot, run_id, n, matches, rms, method if n == 1 else "staged")
            for frame_id, run_id, dx, dy, rot, n, matches, rms, method in session.connection().execute(query)}


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
