"""Read-side queries: frame records in the CLI's JSON shape, summaries, histories, the event log.

Set-based throughout: status is computed in SQL (:func:`status_expression`),
listings are streamed page by page (keyset paging; each page's tags, shifts
and groups are looked up by that page's ids, at most :data:`PAGE_SIZE`, never
by a list of the whole selection), and summaries are GROUP BY queries.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterator

from sqlalchemy import and_, func, literal, select, tuple_
from sqlalchemy.orm import Session

from obsdb.text import not_one_of
from obsdb.catalog.models import (AlignmentRun, Centroid, Event, Frame, FrameMetrics, FrameStats, GroupMember,
                                  Instrument, Night, PENDING_DIGEST, PointingGroup, RenderOutput, ShiftStep,
                                  Tag)
from obsdb.catalog.selectors import (ALL_NIGHTS, SelectorError, frame_label, night_ids, parse_selector,  # noqa: F401
                                     select_frames)
from obsdb.catalog.status import STATUSES, status_condition, status_expression, verdict

PAGE_SIZE = 2000
"""Frames per page of a streamed listing: bounded memory, few round trips."""

STATS_FIELDS = ("min", "max", "mean", "median", "std", "background", "background_rms", "n_nan", "n_saturated",
                "saturation")
METRICS_FIELDS = ("n_stars", "fwhm", "hfd", "elongation", "background", "background_rms", "background_gradient",
                  "transparency", "n_streaks")
LIGHT_TYPES = ("light", "unknown")
"""Image types that hold stars to judge and align ("light or unknown", defined once)."""


def record_label(record: dict) -> str:
    """How the user names the frame of a :func:`frame_records` row: its number, else its file name."""
    return str(record["number"]) if record.get("number") is not None else str(record.get("file_name") or "-")


def frame_filter(*, nights=None, night_scope: list[int] | None = None, band: str | None = None,
                 image_type: str | None = None, status: str | None = None, tag: str | None = None,
                 where: str | None = None, include_unreadable: bool = True, light_only: bool = False,
                 target=None, instrument_id: int | None = None, frame_ids=None, session: Session | None = None,
                 retry_unregistered: bool = False):
    """The WHERE clause of a frame listing (over Frame, Night, FrameStats, FrameMetrics).

    ``retry_unregistered``: the status as an alignment run selects by (see
    :func:`obsdb.catalog.status.status_condition`).

    With ``session``, a band matches whatever its case (``v`` finds ``V``;
    ``=r`` asks for exactly ``r``, where a night holds both Johnson R and SDSS
    r), and a ``--where`` header keyword written as a bare name must be held
    by some frame in scope (a typo or an unquoted string is an error, not an
    empty answer).
    """
    from obsdb.catalog.expr import compile_expression

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
    if light_only:
        conditions.append(Frame.image_type.in_(LIGHT_TYPES))
    if target is not None:
        conditions.append(Frame.object.is_(None) if target == "" else Frame.object == target)
    if instrument_id is not None:
        conditions.append(Frame.instrument_id == instrument_id)
    if not include_unreadable:
        conditions.append(Frame.readable.is_(True))
    if frame_ids is not None:
        # Only for a handful of frames named by the caller (a selector's, a run's): listings filter in SQL.
        conditions.append(Frame.id.in_(list(frame_ids)))
    if status and status != "any":
        if status not in STATUSES:
            raise SelectorError(not_one_of("--status", status, [*STATUSES, "any"]))
        conditions.append(status_condition(status, retry_unregistered=retry_unregistered))
    if tag:
        conditions.append(select(Tag.id).where(Tag.frame_id == Frame.id, Tag.retracted_at.is_(None),
                                               Tag.name == tag).exists())
    if where is not None:  # "" is an error (compile_expression says so), never "every frame"
        bare: list = []
        conditions.append(compile_expression(where, bare))
        if bare and session is not None:
            _check_bare_keywords(session, where, bare, night_scope)
    return and_(True, *conditions)


KNOWN_IMAGE_TYPES = ("light", "bias", "dark", "flat", "unknown")


def _check_image_type(session: Session, image_type: str) -> None:
    """``--type lights`` is a typo, not an empty answer: the type must be a known one or a stored one."""
    if image_type in KNOWN_IMAGE_TYPES:
        return
    stored = {t for t in session.scalars(select(Frame.image_type).distinct()) if t}
    if image_type in stored:
        return
    raise SelectorError(not_one_of("--type", image_type, sorted(set(KNOWN_IMAGE_TYPES) | stored)))


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


_FRAME_COLUMNS = (Frame.id, Frame.number, Frame.path, Frame.file_name, Frame.band, Frame.image_type, Frame.object,
                  Frame.exptime, Frame.date_obs, Frame.height, Frame.width, Frame.readable, Frame.error,
                  Frame.number_shared, Frame.keywords)


def iter_frame_records(session: Session, *, nights=None, band: str | None = None, image_type: str | None = None,
                       status: str | None = None, tag: str | None = None, where: str | None = None,
                       include_unreadable: bool = True, light_only: bool = False, target=None,
                       instrument_id: int | None = None, frame_ids=None,
                       page_size: int = PAGE_SIZE) -> Iterator[dict]:
    """Frames as plain dicts in the CLI's JSON shape (see DESIGN.md), streamed in pages.

    Each record has id, night, label, number, path, file_name, band, type,
    object, instrument, exptime, date_obs, status, reasons, tags, stats,
    metrics, group and shift.  Ordered by night, number and path.  Each page
    of :data:`PAGE_SIZE` frames costs four queries, whatever the catalog's
    size: the page itself (keyset-paged, the filter and the status evaluated
    once per frame, plain columns rather than ORM objects), then the page's
    active tags, current shifts and groups, looked up by the page's ids.
    """
    scope = night_ids(session, nights)
    condition = frame_filter(night_scope=scope, band=band, image_type=image_type, status=status, tag=tag,
                             where=where, include_unreadable=include_unreadable, light_only=light_only,
                             target=target, instrument_id=instrument_id, frame_ids=frame_ids, session=session)
    qualified = session.scalar(select(func.count(Night.id))) > 1
    order = (Night.name, func.coalesce(Frame.number, 2**62), Frame.path)
    stats_columns = [getattr(FrameStats, k) for k in STATS_FIELDS]
    metrics_columns = [getattr(FrameMetrics, k) for k in METRICS_FIELDS]
    page_query = (select(*_FRAME_COLUMNS, Night.name, Instrument.key, FrameStats.frame_id, *stats_columns,
                         FrameMetrics.frame_id, FrameMetrics.assessed_at, *metrics_columns,
                         # A listing of one status knows each frame's: no second evaluation.
                         literal(status) if status in STATUSES else status_expression(assessed=_ASSESSED), *order)
                  .select_from(Frame).join(Night, Frame.night_id == Night.id)
                  .outerjoin(Instrument, Instrument.id == Frame.instrument_id)
                  .outerjoin(FrameStats, FrameStats.frame_id == Frame.id)
                  .outerjoin(FrameMetrics, FrameMetrics.frame_id == Frame.id)
                  .where(condition).order_by(*order).limit(page_size))
    n_frame, n_stats, n_metrics = len(_FRAME_COLUMNS), len(stats_columns), len(metrics_columns)
    # Columns, not entities: Core rows skip the ORM's loading machinery (half the time per record).
    connection = session.connection()
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
            yield {
                "id": frame_id,
                "night": night_name,
                "label": frame_label(night_name, number, file_name, qualified=qualified, shared=shared),
                "number": number,
                "path": path,
                "file_name": file_name,
                "band": band_,
                "type": kind,
                "object": target_,
                "instrument": instrument,
                "exptime": exptime,
                "date_obs": date_obs.isoformat() if date_obs else None,
                "shape": [height, width] if width else None,
                "readable": readable,
                "error": error,
                "keywords": keywords,
                "status": state,
                "reasons": judged.reasons,
                "verdict": {"decided_by": judged.decided_by, "explain": judged.explain(),
                            "disagreeing": judged.disagreeing},
                "tags": [{"name": t.name, "source": t.source, "reason": t.reason, "author": t.author,
                          "created_at": t.created_at.isoformat(), "evidence": t.evidence} for t in frame_tags],
                "stats": None if stats_id is None else dict(zip(STATS_FIELDS, stats)),
                "metrics": None if metrics_id is None else dict(zip(METRICS_FIELDS, metrics)),
                "group": groups.get(frame_id),
                "shift": shifts.get(frame_id),
            }
        last = tuple(rows[-1][-3:])
        if len(rows) < page_size:
            return


def frame_records(session: Session, **filters) -> list[dict]:
    """:func:`iter_frame_records` as a list (for the pipeline's smaller selections)."""
    return list(iter_frame_records(session, **filters))


def _records_for_ids(session: Session, ids: list[int]) -> list[dict]:
    """Records of a few frames named by id (one frame's details, a run's frames)."""
    return list(iter_frame_records(session, nights=ALL_NIGHTS, frame_ids=ids))


def current_run_ids(chosen=None):
    """For each frame, its current run: the newest run with steps for it ("current run", defined once).

    ``chosen`` restricts it to a subquery's frames (a column ``id``).
    """
    query = select(ShiftStep.frame_id, func.max(ShiftStep.run_id).label("run_id")).group_by(ShiftStep.frame_id)
    if chosen is not None:
        query = query.join(chosen, chosen.c.id == ShiftStep.frame_id)
    return query.subquery()


def _current_shifts(session: Session, ids: list[int] | None) -> dict[int, dict]:
    """The current shift of the frames ``ids`` (a page's; None: every frame)."""
    current = select(ShiftStep.frame_id, func.max(ShiftStep.run_id).label("run_id")).group_by(ShiftStep.frame_id)
    if ids is not None:
        current = current.where(ShiftStep.frame_id.in_(ids))
    current = current.subquery()
    query = (select(ShiftStep.frame_id, ShiftStep.run_id, func.sum(ShiftStep.dx), func.sum(ShiftStep.dy),
                    func.sum(ShiftStep.rotation_deg), func.count(), func.max(ShiftStep.n_matched),
                    func.max(ShiftStep.residual_rms), func.max(ShiftStep.method))
             .join(current, and_(current.c.frame_id == ShiftStep.frame_id, current.c.run_id == ShiftStep.run_id))
             .group_by(ShiftStep.frame_id, ShiftStep.run_id))
    # The registration's confidence travels with the shift: star pairs kept, fit residual, method
    # (the staged method's three steps have no pairs: None).
    return {frame_id: {"dx": dx, "dy": dy, "rotation_deg": rot, "run": run_id, "steps": n, "matches": matches,
                       "rms": rms, "method": method if n == 1 else "staged"}
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
    condition = frame_filter(night_scope=night_ids(session, nights), band=band, where=where,
                             status=None if status == "any" else status, include_unreadable=False,
                             session=session)
    chosen = _base_query(condition).subquery()
    run_reference, step_reference = aliased(Frame), aliased(Frame)
    query = (select(ShiftStep, Frame, FrameStats.background, FrameStats.saturation, FrameMetrics.fwhm,
                    AlignmentRun.method,
                    run_reference.number, run_reference.file_name, run_reference.path,
                    step_reference.number, step_reference.file_name)
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

    def named(number, file_name):
        return number if number is not None else file_name

    tasks: dict[int, dict] = {}
    for step, frame, sky, saturation, fwhm, method, run_number, run_name, run_path, step_number, step_name in \
            session.execute(query):
        task = tasks.get(frame.id)
        if task is None:
            task = tasks[frame.id] = {
                "frame_id": frame.id, "number": frame.number, "path": frame.path, "band": frame.band,
                "night_id": frame.night_id, "instrument_id": frame.instrument_id,
                "shape": (frame.height, frame.width), "object": frame.object, "exptime": frame.exptime, "sky": sky, "fwhm": fwhm, "saturation": saturation,
                "run": step.run_id,
                "reference": named(run_number, run_name), "reference_path": run_path, "method": method,
                "date_obs": frame.date_obs.isoformat() if frame.date_obs else None, "airmass": frame.airmass,
                "steps": []}
        parameters = step.parameters or {}
        task["steps"].append({"stage": step.stage, "kind": step.kind, "method": step.method, "dx": step.dx,
                              "dy": step.dy, "rotation_deg": step.rotation_deg, "scale": step.scale,
                              "cx": parameters.get("cx"), "cy": parameters.get("cy"),
                              "reference": named(step_number, step_name)})
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


def report_facts(session: Session, *, nights=None) -> dict:
    """What ``obsdb report`` shows: the frames, the runs, each frame's shift per run, the stacks.

    With ``nights``, only those nights' frames and the runs made on them (a run across nights
    counts when its reference frame is of one of them), and the stacks of those runs.
    """
    scope = night_ids(session, nights)
    run_query = select(AlignmentRun, Frame.number).outerjoin(Frame, Frame.id == AlignmentRun.reference_frame_id)
    if scope is not None:
        run_query = run_query.where(Frame.night_id.in_(scope))
    runs = [{"id": run.id, "created_at": run.created_at, "method": run.method, "reference": number,
             "author": run.author, "software_version": run.software_version}
            for run, number in session.execute(run_query.order_by(AlignmentRun.id))]
    run_ids = [run["id"] for run in runs]
    run_shifts: dict[int, dict[int, tuple[float, float]]] = defaultdict(dict)
    # A frame's shift in a run is the sum of its steps (design card).
    shift_query = (select(ShiftStep.run_id, ShiftStep.frame_id, func.sum(ShiftStep.dx), func.sum(ShiftStep.dy))
                   .group_by(ShiftStep.run_id, ShiftStep.frame_id))
    stack_query = select(RenderOutput).where(RenderOutput.kind == "stack", RenderOutput.sha256 != PENDING_DIGEST
                                             ).order_by(RenderOutput.id)
    if scope is not None:
        shift_query = shift_query.where(ShiftStep.run_id.in_(run_ids))  # a report's few runs
        stack_query = stack_query.where(RenderOutput.run_id.in_(run_ids))
    for run_id, frame_id, dx, dy in session.execute(shift_query):
        run_shifts[run_id][frame_id] = (dx, dy)
    stacks = [{"id": s.id, "band": s.band, "path": s.path, "run": s.run_id, "created_at": s.created_at,
               "parameters": s.parameters, "interpolation": s.interpolation}
              for s in session.scalars(stack_query)]
    return {"records": list(iter_frame_records(session, nights=nights)), "runs": runs,
            "run_shifts": dict(run_shifts), "stacks": stacks}


_ASSESSED = FrameMetrics.assessed_at.is_not(None)
""""QA judged this frame", for a query that outer-joins :class:`FrameMetrics` (see :func:`status_expression`)."""


def _frame_states(condition=True):
    """Each frame's id, night, band, type, exposure, readability and status, the status evaluated once."""
    return (select(Frame.id, Frame.night_id, Frame.band, Frame.image_type, Frame.exptime, Frame.readable,
                   status_expression(assessed=_ASSESSED).label("state"))
            .select_from(Frame).outerjoin(FrameMetrics, FrameMetrics.frame_id == Frame.id)
            .where(condition).subquery())


def _medians(session: Session, keys: tuple, value, condition=True) -> dict:
    """The median of ``value`` per ``keys`` group, in SQL: PostgreSQL's ``percentile_cont``, elsewhere
    row numbers over each group's sorted values (the middle one, or the mean of the two middle ones)."""
    if session.get_bind().dialect.name == "postgresql":
        # One sort per group inside the aggregate.  The window form below sorted the whole selection
        # at once (1,000,000 rows for `obsdb nights`: on disk past work_mem) and then numbered it
        # twice: 6 s, where this takes a fraction of that.
        median = func.percentile_cont(0.5).within_group(value)
        return {tuple(row[:-1]): row[-1] for row in session.execute(
            select(*keys, median).select_from(Frame).join(value.class_, value.class_.frame_id == Frame.id)
            .where(condition, value.is_not(None)).group_by(*keys))}
    ordered = (select(*keys, value.label("value"),
                      func.row_number().over(partition_by=keys, order_by=value).label("rank"),
                      func.count().over(partition_by=keys).label("n"))
               .select_from(Frame).join(value.class_, value.class_.frame_id == Frame.id)
               .where(condition, value.is_not(None)).subquery())
    group = [ordered.c[k.key] for k in keys]
    # The middle value (odd n), or the mean of the two middle values (even n).
    middle = ordered.c.rank.between((ordered.c.n + 1) // 2, (ordered.c.n + 2) // 2)
    return {tuple(row[:-1]): row[-1] for row in session.execute(
        select(*group, func.avg(ordered.c.value)).where(middle).group_by(*group))}


def band_summary(session: Session, *, nights=None) -> list[dict]:
    """Per band and image type: frame counts by status, median background and FWHM, total exposure.

    One GROUP BY over each frame's status (evaluated once per frame), and one
    query per median.
    """
    scope = night_ids(session, nights)
    condition = True if scope is None else Frame.night_id.in_(scope)
    states = _frame_states(condition)
    band, kind = func.coalesce(states.c.band, ""), func.coalesce(states.c.image_type, "")
    # Grouped by status and readability too, so the status is evaluated once per frame.
    totals = {}
    for b, k, readable, state, n, exptime in session.execute(
            select(band, kind, states.c.readable, states.c.state, func.count(),
                   func.sum(func.coalesce(states.c.exptime, 0.0)))
            .group_by(band, kind, states.c.readable, states.c.state)):
        row = totals.setdefault((b, k), {"frames": 0, "unreadable": 0, "accepted": 0, "rejected": 0, "pending": 0,
                                         "exptime": 0.0})
        row["frames"] += n
        row["exptime"] += float(exptime or 0.0)
        if not readable:
            row["unreadable"] += n
        else:
            row[state] += n
    keys = (func.coalesce(Frame.band, "").label("band"), func.coalesce(Frame.image_type, "").label("kind"))
    backgrounds = _medians(session, keys, FrameStats.background, condition)
    fwhms = _medians(session, keys, FrameMetrics.fwhm, condition)
    return [{"band": b or None, "type": k or None, "frames": row["frames"], "unreadable": row["unreadable"],
             "accepted": row["accepted"], "rejected": row["rejected"], "pending": row["pending"],
             "median_background": backgrounds.get((b, k)), "median_fwhm": fwhms.get((b, k)),
             "exptime": row["exptime"]} for (b, k), row in sorted(totals.items())]


def known_values(session: Session) -> dict[str, list[str]]:
    """The bands and the active tag names stored in the catalog, for the hint a filter that names none gets.

    Returns
    -------
    dict
        ``{"bands": [...], "tags": [...]}``, each sorted.
    """
    bands = session.scalars(select(Frame.band).where(Frame.band.is_not(None)).distinct())
    tags = session.scalars(select(Tag.name).where(Tag.retracted_at.is_(None)).distinct())
    return {"bands": sorted(bands), "tags": sorted(tags)}


def night_summaries(session: Session) -> list[dict]:
    """Every night with its frames, bands, targets, instruments, status counts and median FWHM.

    Four set-based queries whatever the number of nights: status counts over each
    frame's status (evaluated once per frame), the distinct (band, target, instrument)
    of each night from an index, the nights, and the median FWHM per night.
    """
    states = _frame_states()
    # Grouped by status too: the status expression then appears once, so it is evaluated once per frame
    # (three sums over it would each evaluate it again).
    counts = defaultdict(lambda: {"frames": 0, "accepted": 0, "rejected": 0, "pending": 0})
    for night_id, state, n in session.execute(select(states.c.night_id, states.c.state, func.count())
                                              .group_by(states.c.night_id, states.c.state)):
        counts[night_id]["frames"] += n
        counts[night_id][state] += n
    facets = {name: defaultdict(set) for name in ("bands", "targets", "instruments")}
    combinations = select(Frame.night_id, Frame.band, Frame.object, Frame.instrument_id).distinct().subquery()
    for night_id, b, target, instrument in session.execute(
            select(combinations.c.night_id, combinations.c.band, combinations.c.object, Instrument.key)
            .outerjoin(Instrument, Instrument.id == combinations.c.instrument_id)):
        for facet, value in (("bands", b), ("targets", target), ("instruments", instrument)):
            if value is not None:
                facets[facet][night_id].add(value)
    fwhms = _medians(session, (Frame.night_id,), FrameMetrics.fwhm)
    out = []
    for i, name, source, first, last in session.execute(
            select(Night.id, Night.name, Night.source, Night.first_date_obs, Night.last_date_obs)
            .order_by(Night.name)):
        c = counts[i]
        out.append({"night": name, "source": source, "first_date_obs": first.isoformat() if first else None,
                    "last_date_obs": last.isoformat() if last else None, "frames": c["frames"],
                    "bands": sorted(facets["bands"][i]), "targets": sorted(facets["targets"][i]),
                    "instruments": sorted(facets["instruments"][i]),
                    "accepted": c["accepted"], "rejected": c["rejected"], "pending": c["pending"],
                    "median_fwhm": fwhms.get((i,))})
    return out


def archive_quality(session: Session) -> list[dict]:
    """Per night, instrument and band: light frames, accepted frames, median FWHM and median background.

    Set-based: one GROUP BY for the counts and one window query per median, whatever the archive's size.
    The background is the ingest's (every readable frame has one), the FWHM the QA metrics'.
    """
    light = Frame.image_type == "light"
    keys = (Frame.night_id, Frame.instrument_id, Frame.band)
    fwhms = _medians(session, keys, FrameMetrics.fwhm, light)
    backgrounds = _medians(session, keys, FrameStats.background, light)
    # The status expression once per frame (grouped by it), as in night_summaries.
    states = (select(Frame.night_id, Frame.instrument_id, Frame.band, status_expression().label("state"))
              .where(light).subquery())
    counts: dict[tuple, dict] = defaultdict(lambda: {"frames": 0, "accepted": 0, "rejected": 0})
    for night_id, instrument_id, b, state, n in session.execute(
            select(states.c.night_id, states.c.instrument_id, states.c.band, states.c.state, func.count())
            .group_by(states.c.night_id, states.c.instrument_id, states.c.band, states.c.state)):
        row = counts[(night_id, instrument_id, b)]
        row["frames"] += n
        if state in row:
            row[state] += n
    names = dict(session.execute(select(Night.id, Night.name)).all())
    instruments = dict(session.execute(select(Instrument.id, Instrument.key)).all())
    out = [{"night": names[n], "instrument": instruments.get(i), "band": b, **c,
            "median_fwhm": fwhms.get((n, i, b)), "median_background": backgrounds.get((n, i, b))}
           for (n, i, b), c in counts.items()]
    return sorted(out, key=lambda r: (r["night"], r["instrument"] or "", r["band"] or ""))


def qa_threshold_events(session: Session, names: set[str] | None = None) -> list[dict]:
    """The newest QA runs (up to 200) that judged any of the nights named (all: None), newest first,
    each as ``at``, ``nights``, ``band`` and ``thresholds`` (the limits the rules used)."""
    events = []
    # QA events name their nights in the details, not in night_id (one run judges several nights).
    for e in session.scalars(select(Event).where(Event.command == "qa").order_by(Event.id.desc()).limit(200)):
        details = e.details if isinstance(e.details, dict) else {}
        judged = [str(n) for n in details.get("nights") or []]
        if names is not None and not names.intersection(judged):
            continue
        events.append({"at": e.at.isoformat(), "nights": judged, "band": details.get("band"),
                       "thresholds": details.get("thresholds") or {}})
    return events


def tag_dict(tag: Tag) -> dict:
    """A tag as ``obsdb show`` lists it in the tag history (retracted ones too)."""
    return {"name": tag.name, "source": tag.source, "reason": tag.reason, "author": tag.author,
            "created_at": tag.created_at.isoformat(),
            "retracted_at": tag.retracted_at.isoformat() if tag.retracted_at else None,
            "retracted_by": tag.retracted_by, "retract_reason": tag.retract_reason}


def _calibration_details(session: Session, frame_id: int) -> dict:
    """``calibration`` (one line: the masters a light uses, or why none) and ``calibration_rows``."""
    from obsdb.catalog.masters import calibration_line, frame_calibration

    rows = frame_calibration(session, frame_id)
    return {"calibration": calibration_line(rows), "calibration_rows": rows}


def frame_details(session: Session, frame: Frame) -> dict:
    """Everything known about one frame: its record plus header, tag history, events,
    every alignment run with its steps, and the files rendered from it."""
    record = _records_for_ids(session, [frame.id])[0]
    frame = session.get(Frame, frame.id)
    history = session.scalars(select(Tag).where(Tag.frame_id == frame.id).order_by(Tag.id)).all()
    renders = session.scalars(select(RenderOutput).where(RenderOutput.frame_id == frame.id,
                                                         RenderOutput.sha256 != PENDING_DIGEST)
                              .order_by(RenderOutput.id)).all()
    events = session.scalars(select(Event).where(Event.frame_id == frame.id).order_by(Event.id)).all()
    star_list = frame.star_list
    record.update({
        "size": frame.size, "sha256": frame.sha256, "airmass": frame.airmass, "bitpix": frame.bitpix,
        "ingested_at": frame.ingested_at.isoformat(), "measured_at": frame.measured_at.isoformat(),
        "versions": {"stats": frame.stats.algorithm if frame.stats else None,
                     "metrics": frame.metrics.algorithm if frame.metrics else None,
                     "stars": star_list.algorithm if star_list else None},
        "stored_stars": star_list.n_stars if star_list else 0,
        "header": frame.header,
        "tag_history": [tag_dict(t) for t in history],
        "events": [{"at": e.at.isoformat(), "author": e.author, "command": e.command, "summary": e.summary,
                    "details": e.details} for e in events],
        "alignment": frame_history(session, frame)["runs"],
        "renders": [{"path": r.path, "sha256": r.sha256, "run": r.run_id, "interpolation": r.interpolation,
                     "created_at": r.created_at.isoformat()} for r in renders],
        **_calibration_details(session, frame.id),
    })
    return record


def frames_details(session: Session, selector: str, *, nights=None) -> list[dict]:
    """:func:`frame_details` of every frame named by a selector."""
    return [frame_details(session, frame) for frame in select_frames(session, selector, nights=nights)]


def event_log(session: Session, *, limit: int = 50, command: str | None = None, nights=None) -> list[dict]:
    """The newest events (every command that changed the catalog), newest first."""
    scope = night_ids(session, nights)
    query = (select(Event, Frame.number, Frame.file_name, Night.name, Frame.number_shared)
             .outerjoin(Frame, Frame.id == Event.frame_id)
             .outerjoin(Night, Night.id == func.coalesce(Event.night_id, Frame.night_id))
             .order_by(Event.id.desc()).limit(limit))
    if command:
        query = query.where(Event.command == command)
    if scope is not None:
        query = query.where(func.coalesce(Event.night_id, Frame.night_id).in_(scope))
    qualified = session.scalar(select(func.count(Night.id))) > 1
    return [{"id": e.id, "at": e.at.isoformat(), "author": e.author, "command": e.command, "summary": e.summary,
             "night": night, "frame": None if name is None else frame_label(night, number, name, qualified=qualified,
                                                                            shared=shared),
             "details": e.details}
            for e, number, name, night, shared in session.execute(query)]


def frame_histories(session, selector: str, *, nights=None) -> list[dict]:
    """:func:`frame_history` of every frame named by a selector."""
    return [frame_history(session, frame) for frame in select_frames(session, selector, nights=nights)]


def frame_history(session, frame: Frame) -> dict:
    """Every run and step for a frame, the sum per run, and which run is current.

    A run measured on other content than the file's current one (it changed
    on re-ingest) is kept and marked ``other_content``; it is never current.
    """
    steps = session.scalars(select(ShiftStep).where(ShiftStep.frame_id == frame.id)
                            .order_by(ShiftStep.run_id, ShiftStep.stage, ShiftStep.id)).all()
    run_ids = sorted({s.run_id for s in steps})
    runs = {r.id: r for r in session.scalars(select(AlignmentRun).where(AlignmentRun.id.in_(run_ids)))}
    centroid_ids = [i for i in {s.centroid_id for s in steps} | {s.reference_centroid_id for s in steps}
                    if i is not None]
    centroids = {c.id: c for c in session.scalars(select(Centroid).where(Centroid.id.in_(centroid_ids)))}
    frame_ids = [i for i in {s.reference_frame_id for s in steps} | {r.reference_frame_id for r in runs.values()}
                 if i is not None]
    qualified = session.scalar(select(func.count(Night.id))) > 1
    labels = {i: frame_label(night, n, name, qualified=qualified, shared=shared)
              for i, n, name, night, shared in session.execute(
        select(Frame.id, Frame.number, Frame.file_name, Night.name, Frame.number_shared)
        .join(Night, Night.id == Frame.night_id)
        .where(Frame.id.in_(frame_ids)))}
    stale = {s.run_id for s in steps if s.frame_sha256 is not None and s.frame_sha256 != frame.sha256}
    current = max((r for r in run_ids if r not in stale), default=None)

    def centroid(cid):
        c = centroids.get(cid)
        if c is None:
            return None
        box = None if c.box_x0 is None else [c.box_x0, c.box_x1, c.box_y0, c.box_y1]
        return {"x": c.x, "y": c.y, "flux": c.flux, "method": c.method, "box": box, "frame_id": c.frame_id,
                "star_index": c.star_index}

    history = []
    for run_id in run_ids:
        run = runs[run_id]
        run_steps = [s for s in steps if s.run_id == run_id]
        history.append({
            "run": run_id, "method": run.method, "created_at": run.created_at.isoformat(),
            "author": run.author, "software_version": run.software_version, "algorithm": run.algorithm,
            "reference": labels.get(run.reference_frame_id), "parameters": run.parameters,
            "current": run_id == current, "other_content": run_id in stale,
            "steps": [{"stage": s.stage, "kind": s.kind, "method": s.method, "dx": s.dx, "dy": s.dy,
                       "rotation_deg": s.rotation_deg, "scale": s.scale,
                       "reference": labels.get(s.reference_frame_id), "n_matched": s.n_matched,
                       "residual_rms": s.residual_rms, "centroid": centroid(s.centroid_id),
                       "reference_centroid": centroid(s.reference_centroid_id), "parameters": s.parameters}
                      for s in run_steps],
            "total": {"dx": math.fsum(s.dx for s in run_steps), "dy": math.fsum(s.dy for s in run_steps),
                      "rotation_deg": math.fsum(s.rotation_deg for s in run_steps)},
        })
    return {"number": frame.number, "file_name": frame.file_name, "night": frame.night.name,
            "current_run": current, "runs": history}


def region_facts(session: Session, selector: str, *, nights=None) -> dict:
    """What a ds9 region file of one frame shows: its group box and its current run's centroids."""

    selected = select_frames(session, selector, nights=nights)
    if len(selected) != 1:
        raise SelectorError(f"{selector!r} names {len(selected)} frames; give one")
    frame = selected[0]
    group = session.execute(select(PointingGroup).join(GroupMember)
                            .where(GroupMember.frame_id == frame.id)).scalar()
    run_id = session.scalar(select(func.max(ShiftStep.run_id)).where(ShiftStep.frame_id == frame.id))
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


REPORT_HEADER_KEYWORDS = ("OBSERVER", "SITENAME", "OBSERVAT", "SITE", "TELESCOP", "INSTRUME", "PIXSCALE", "SECPIX",
                          "SECPIX1", "SCALE", "CDELT1", "CDELT2", "CD1_1", "CD1_2", "FOCALLEN", "XPIXSZ",
                          "PIXSIZE1", "XBINNING", "GAIN", "CCD-TEMP", "FOCUSPOS", "EXPTIME")
"""Header keywords :func:`report_details` keeps per frame (observer, site, pixel scale and the like)."""

REPORT_STARS = 40
"""Brightest stored stars per frame :func:`report_details` returns (the report zooms on a few of them)."""


def report_details(session: Session, *, nights=None) -> dict:
    """What ``obsdb report`` shows beyond :func:`report_facts`: nights, instruments, per-frame extras,
    every tag and shift step, aligned files and the QA runs' thresholds.

    Set-based: one query per kind of row over the frames in scope, whatever their number.

    Returns
    -------
    dict
        ``nights`` (name, site, longitude, first and last DATE-OBS), ``instruments`` by key (telescope,
        camera, shape, binning, pixel size), ``frames`` by frame id (airmass, instrument key, a few header
        keywords of :data:`REPORT_HEADER_KEYWORDS`, the brightest stored stars as (x, y, flux, fwhm, flag)),
        ``tag_history`` by frame id (every tag, retracted ones too), ``steps`` by frame id (every shift step
        of every run, oldest first), ``renders`` by frame id (aligned files), ``run_references`` (each
        alignment run's reference frame id, by run id) and ``qa_events`` (newest first: when, nights, band,
        thresholds).
    """
    from obsdb.imaging.stars import decode_stars
    from obsdb.catalog.models import StarList

    scope = night_ids(session, nights)
    in_scope = True if scope is None else Frame.night_id.in_(scope)
    night_query = select(Night).order_by(Night.name)
    if scope is not None:
        night_query = night_query.where(Night.id.in_(scope))
    night_rows = [{"name": n.name, "site": n.site, "longitude": n.longitude,
                   "first_date_obs": n.first_date_obs.isoformat() if n.first_date_obs else None,
                   "last_date_obs": n.last_date_obs.isoformat() if n.last_date_obs else None}
                  for n in session.scalars(night_query)]
    used = select(Frame.instrument_id).where(in_scope).distinct()
    instruments = {i.key: {"telescope": i.telescope, "camera": i.camera, "width": i.width, "height": i.height,
                           "binning_x": i.binning_x, "binning_y": i.binning_y, "pixel_size": i.pixel_size}
                   for i in session.scalars(select(Instrument).where(Instrument.id.in_(used)))}
    frames = {}
    for frame_id, airmass, header, key in session.execute(
            select(Frame.id, Frame.airmass, Frame.header, Instrument.key)
            .outerjoin(Instrument, Instrument.id == Frame.instrument_id).where(in_scope)):
        header = header if isinstance(header, dict) else {}
        frames[frame_id] = {"airmass": airmass, "instrument": key, "stars": [],
                            "header": {k: header[k] for k in REPORT_HEADER_KEYWORDS if k in header}}
    for frame_id, data in session.execute(select(StarList.frame_id, StarList.data)
                                          .join(Frame, Frame.id == StarList.frame_id).where(in_scope)):
        try:
            stars = decode_stars(data)[:REPORT_STARS]
        except ValueError:
            continue  # a list of another detection version's layout: no zoom, not an error
        if frame_id in frames:
            frames[frame_id]["stars"] = [(float(s["x"]), float(s["y"]), float(s["flux"]), float(s["fwhm"]),
                                          int(s["flag"])) for s in stars]
    tag_history = defaultdict(list)
    for t in session.scalars(select(Tag).join(Frame, Frame.id == Tag.frame_id).where(in_scope).order_by(Tag.id)):
        tag_history[t.frame_id].append({
            "name": t.name, "source": t.source, "reason": t.reason, "author": t.author,
            "created_at": t.created_at.isoformat(),
            "retracted_at": t.retracted_at.isoformat() if t.retracted_at else None,
            "retracted_by": t.retracted_by, "retract_reason": t.retract_reason})
    reference = Frame.__table__.alias("reference")
    steps = defaultdict(list)
    for s, ref_number, ref_name in session.execute(
            select(ShiftStep, reference.c.number, reference.c.file_name)
            .join(Frame, Frame.id == ShiftStep.frame_id)
            .outerjoin(reference, reference.c.id == ShiftStep.reference_frame_id)
            .where(in_scope).order_by(ShiftStep.run_id, ShiftStep.stage, ShiftStep.id)):
        steps[s.frame_id].append({
            "run": s.run_id, "stage": s.stage, "kind": s.kind, "method": s.method, "dx": s.dx, "dy": s.dy,
            "rotation_deg": s.rotation_deg, "scale": s.scale, "n_matched": s.n_matched,
            "residual_rms": s.residual_rms, "parameters": s.parameters,
            "reference": ref_name if ref_number is None else str(ref_number)})
    renders = defaultdict(list)
    for r in session.scalars(select(RenderOutput).join(Frame, Frame.id == RenderOutput.frame_id)
                             .where(in_scope, RenderOutput.kind == "aligned", RenderOutput.sha256 != PENDING_DIGEST)
                             .order_by(RenderOutput.id)):
        renders[r.frame_id].append({"path": r.path, "run": r.run_id, "created_at": r.created_at.isoformat()})
    run_ids = select(ShiftStep.run_id).join(Frame, Frame.id == ShiftStep.frame_id).where(in_scope).distinct()
    run_references = dict(session.execute(select(AlignmentRun.id, AlignmentRun.reference_frame_id)
                                          .where(AlignmentRun.id.in_(run_ids))).all())
    qa_events = qa_threshold_events(session, None if scope is None else {n["name"] for n in night_rows})
    return {"nights": night_rows, "instruments": instruments, "frames": frames, "tag_history": dict(tag_history),
            "steps": dict(steps), "renders": dict(renders), "run_references": run_references,
            "qa_events": qa_events}
