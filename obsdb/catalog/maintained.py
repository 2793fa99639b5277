"""Derived data kept at write time: each frame's status column and the per-night summaries.

Two things are derived from what the catalog records and stored so that archive-wide answers read a
few thousand rows instead of every frame:

- ``frame.status``: the status rule (:mod:`obsdb.catalog.status`, whose SQL form
  :func:`~obsdb.catalog.status.status_expression` computes it here: the rule stays written once);
- ``night_summary``, ``night_band_summary`` and ``frame_quality``: counts by status and type, exposure
  totals, exact medians of the FWHM and the background, and the night's facets.

They are kept by session events (:func:`install` on the session factory of
:class:`obsdb.catalog.db.Database`), in the transaction of the write itself, whatever the write path:

- every ORM object flushed that a status or a summary depends on (a tag, a frame, its statistics
  or metrics, a shift step) marks its frame *touched*; so do bulk ``session.execute(insert/update(...),
  rows)`` statements whose rows name their frames (``frame_id``), and a write that names its frames
  otherwise calls :func:`touch_frames`;
- after each flush, and before any ORM query, the touched frames' status is recomputed in SQL (one
  UPDATE per :data:`CHUNK` frames), so a query inside the write sees the new status;
- before the commit, the summaries of the touched frames' nights are recomputed from the night's
  frames (about 1 ms per night of 500 frames: exact medians at no design cost).

:func:`rebuild` recomputes everything (``obsdb doctor --rebuild-summaries``); a test checks that what
was kept equals what :func:`rebuild` computes after random sequences of writes.
"""

from __future__ import annotations

CHUNK = 500
"""Frame or night ids per statement (bounded SQL parameter lists)."""

NIGHTS_PER_PASS = 50
"""Nights summarised per query when rebuilding (a few tens of thousands of frame rows in memory)."""

_WATCHED = ("frame", "tag", "frame_stats", "frame_metrics", "shift_step")
"""Tables whose rows a frame's status or its night's summary depend on."""

_KEY = "obsdb.maintained"


def _state(session) -> dict:
    return session.info.setdefault(_KEY, {"status": set(), "nights": set(), "frames": set(), "busy": False})


def touch_frames(session, frame_ids) -> None:
    """Mark frames whose status or summary a write changed in a way the session events cannot see
    (a bulk DELETE or UPDATE by condition): they are brought up to date in the same transaction."""
    ids = {int(i) for i in frame_ids}
    state = _state(session)
    state["status"] |= ids
    state["frames"] |= ids


def touch_nights(session, night_ids) -> None:
    """Mark nights whose summaries must be recomputed before the commit."""
    _state(session)["nights"].update(int(i) for i in night_ids)


def install(sessions) -> None:
    """Keep the derived data of every session made by the ``sessions`` factory (a sessionmaker)."""
    from sqlalchemy import event

    event.listen(sessions, "after_flush", _after_flush)
    event.listen(sessions, "do_orm_execute", _before_execute)
    event.listen(sessions, "before_commit", _before_commit)
    event.listen(sessions, "after_rollback", _forget)
    event.listen(sessions, "after_commit", _forget)


def _forget(session) -> None:
    session.info.pop(_KEY, None)


def _after_flush(session, _context) -> None:
    from sqlalchemy import inspect

    from obsdb.catalog.models import Frame

    state = _state(session)
    touched = set()
    for obj in (*session.new, *session.dirty, *session.deleted):
        table = getattr(obj, "__tablename__", None)
        if table not in _WATCHED:
            continue
        if isinstance(obj, Frame):
            touched.add(obj.id)
            moved = inspect(obj).attrs.night_id.history
            state["nights"].update(n for n in (*moved.deleted, *moved.added) if n is not None)
        else:
            frame_id = getattr(obj, "frame_id", None)
            if frame_id is not None:
                touched.add(frame_id)
    touched.discard(None)
    state["status"] |= touched
    state["frames"] |= touched
    _update_status(session)


def _before_execute(orm_execute_state) -> None:
    session = orm_execute_state.session
    state = _state(session)
    if state["busy"]:
        return
    if orm_execute_state.is_select:
        _update_status(session)
        return
    statement = orm_execute_state.statement
    table = getattr(getattr(statement, "table", None), "name", None)
    if table not in _WATCHED:
        return
    rows = orm_execute_state.parameters
    rows = rows if isinstance(rows, (list, tuple)) else [rows] if rows else []
    key = "id" if table == "frame" else "frame_id"
    ids = {row[key] for row in rows if isinstance(row, dict) and row.get(key) is not None}
    if ids:
        # Applied before the next query (this statement has not run yet) and before the commit.
        state["status"] |= ids
        state["frames"] |= ids


def _update_status(session) -> None:
    """Recompute the status of the frames touched so far, in SQL (the rule's one SQL form)."""
    state = _state(session)
    if not state["status"] or state["busy"]:
        return
    from sqlalchemy import update

    from obsdb.catalog.models import Frame
    from obsdb.catalog.status import status_expression

    ids = sorted(state["status"])
    state["status"] = set()
    state["busy"] = True
    try:
        connection = session.connection()
        for start in range(0, len(ids), CHUNK):
            connection.execute(update(Frame.__table__).where(Frame.__table__.c.id.in_(ids[start:start + CHUNK]))
                               .values(status=status_expression()))
    finally:
        state["busy"] = False
    # ORM objects loaded in this session read the new status when next asked.
    wanted = set(ids)
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Frame) and obj.id in wanted:
            session.expire(obj, ["status"])


def _before_commit(session) -> None:
    state = _state(session)
    if state["busy"]:
        return
    session.flush()
    _update_status(session)
    frames, nights = state["frames"], set(state["nights"])
    if not frames and not nights:
        return
    from sqlalchemy import select

    from obsdb.catalog.models import Frame

    state["busy"] = True
    try:
        connection = session.connection()
        ids = sorted(frames)
        for start in range(0, len(ids), CHUNK):
            nights.update(connection.scalars(select(Frame.__table__.c.night_id).distinct()
                                             .where(Frame.__table__.c.id.in_(ids[start:start + CHUNK]))))
        summarize_nights(connection, sorted(nights))
        state["frames"], state["nights"] = set(), set()
    finally:
        state["busy"] = False


def median(values):
    """The median of ``values`` (the mean of the two middle ones for an even count), or None when empty."""
    import statistics  # here: a query command that computes no median need not import it

    return statistics.median(values) if values else None


def summarize_nights(connection, night_ids) -> None:
    """Rewrite ``night_summary``, ``night_band_summary`` and ``frame_quality`` for these nights from their
    frames (as the frames' status column stands).  One read and three writes per :data:`NIGHTS_PER_PASS`."""
    from sqlalchemy import delete, insert, select

    from obsdb.catalog.models import (Frame, FrameMetrics, FrameQuality, FrameStats, Instrument,
                                      NightBandSummary, NightSummary)

    frame, stats, metrics, instrument = (Frame.__table__, FrameStats.__table__, FrameMetrics.__table__,
                                         Instrument.__table__)
    night_ids = list(night_ids)
    for start in range(0, len(night_ids), NIGHTS_PER_PASS):
        chunk = night_ids[start:start + NIGHTS_PER_PASS]
        rows = connection.execute(
            select(frame.c.id, frame.c.night_id, frame.c.instrument_id, instrument.c.key, frame.c.band,
                   frame.c.image_type, frame.c.object, frame.c.exptime, frame.c.readable, frame.c.status,
                   stats.c.background, metrics.c.fwhm)
            .select_from(frame).outerjoin(instrument, instrument.c.id == frame.c.instrument_id)
            .outerjoin(stats, stats.c.frame_id == frame.c.id).outerjoin(metrics, metrics.c.frame_id == frame.c.id)
            .where(frame.c.night_id.in_(chunk)).order_by(frame.c.id)).all()
        nights, bands, quality = summarise_rows(rows)
        connection.execute(delete(NightBandSummary.__table__).where(NightBandSummary.__table__.c.night_id.in_(chunk)))
        connection.execute(delete(NightSummary.__table__).where(NightSummary.__table__.c.night_id.in_(chunk)))
        connection.execute(delete(FrameQuality.__table__).where(FrameQuality.__table__.c.night_id.in_(chunk)))
        ids = [q["frame_id"] for q in quality]
        for at in range(0, len(ids), CHUNK):  # a frame moved from a night not rewritten here
            connection.execute(delete(FrameQuality.__table__)
                               .where(FrameQuality.__table__.c.frame_id.in_(ids[at:at + CHUNK])))
        if nights:
            connection.execute(insert(NightSummary.__table__), nights)
        if bands:
            connection.execute(insert(NightBandSummary.__table__), bands)
        if quality:
            connection.execute(insert(FrameQuality.__table__), quality)


def summarise_rows(rows) -> tuple[list[dict], list[dict], list[dict]]:
    """Night rows, night x instrument x band x type rows and frame_quality rows from frame rows
    ``(id, night_id, instrument_id, instrument key, band, image_type, object, exptime, readable, status,
    background, fwhm)``."""
    nights: dict = {}
    groups: dict = {}
    quality = []

    def empty():
        return {"frames": 0, "unreadable": 0, "accepted": 0, "rejected": 0, "pending": 0, "exptime": 0.0,
                "fwhm": [], "background": []}

    for (frame_id, night_id, instrument_id, key, band, kind, target, exptime, readable, status, background,
         fwhm) in rows:
        band, kind = band or "", kind or ""
        night = nights.get(night_id)
        if night is None:
            night = nights[night_id] = {**empty(), "bands": set(), "targets": set(), "instruments": set()}
        group = groups.get((night_id, instrument_id, band, kind))
        if group is None:
            group = groups[(night_id, instrument_id, band, kind)] = empty()
        for row in (night, group):
            row["frames"] += 1
            row["unreadable"] += not readable
            row[status if readable else "rejected"] += 1
            row["exptime"] += exptime or 0.0
            if fwhm is not None:
                row["fwhm"].append(fwhm)
            if background is not None:
                row["background"].append(background)
        if band:
            night["bands"].add(band)
        if target is not None:
            night["targets"].add(target)
        if key is not None:
            night["instruments"].add(key)
        quality.append({"frame_id": frame_id, "night_id": night_id, "band": band, "image_type": kind,
                        "fwhm": fwhm, "background": background})

    def counts(row):
        return {k: row[k] for k in ("frames", "unreadable", "accepted", "rejected", "pending", "exptime")} | {
            "median_fwhm": median(row["fwhm"]), "median_background": median(row["background"])}

    night_rows = [{"night_id": n, **counts(row), "bands": sorted(row["bands"]), "targets": sorted(row["targets"]),
                   "instruments": sorted(row["instruments"])} for n, row in sorted(nights.items())]
    band_rows = [{"night_id": n, "instrument_id": i, "band": b, "image_type": k, **counts(row)}
                 for (n, i, b, k), row in sorted(groups.items(), key=lambda item: (item[0][0], item[0][1] or 0,
                                                                                 *item[0][2:]))]
    return night_rows, band_rows, quality


def rebuild(session) -> dict:
    """Recompute every frame's status and every night's summaries (``obsdb doctor --rebuild-summaries``).

    Returns
    -------
    dict
        ``frames`` (statuses recomputed), ``changed`` (statuses that were wrong), ``nights``.
    """
    from sqlalchemy import func, select, update

    from obsdb.catalog.models import Frame, Night
    from obsdb.catalog.status import status_expression

    state = _state(session)
    state["busy"] = True
    try:
        connection = session.connection()
        frame = Frame.__table__
        before = dict(connection.execute(select(frame.c.status, func.count()).group_by(frame.c.status)).all())
        changed = connection.execute(update(frame).where(frame.c.status != status_expression())
                                     .values(status=status_expression())).rowcount
        after = dict(connection.execute(select(frame.c.status, func.count()).group_by(frame.c.status)).all())
        nights = list(connection.scalars(select(Night.__table__.c.id).order_by(Night.__table__.c.id)))
        summarize_nights(connection, nights)
    finally:
        state["busy"] = False
    return {"frames": sum(after.values()), "changed": changed, "before": before, "after": after,
            "nights": len(nights)}
