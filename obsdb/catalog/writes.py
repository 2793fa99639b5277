"""Writes to the catalog.  Callers own the session (one transaction per call site)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from obsdb.catalog.models import (Event, Frame, FrameMetrics, FrameStats, Instrument, Night, StarList,
                                  Streak, utcnow)


def record_event(session: Session, author: str, command: str, summary: str, *,
                 frame_id: int | None = None, night_id: int | None = None, details: dict | None = None) -> Event:
    """Append an event to the log."""
    event = Event(author=author, command=command, summary=summary, frame_id=frame_id, night_id=night_id,
                  details=details)
    session.add(event)
    return event


def _insert_ignore(session: Session, table, rows: list[dict], key: str) -> None:
    """INSERT ... ON CONFLICT (key) DO NOTHING: concurrent writers agree on one row."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    session.execute(insert(table).on_conflict_do_nothing(index_elements=[key]), rows)


def ensure_nights(session: Session, nights: dict[str, dict]) -> dict[str, Night]:
    """The nights named (get or create); ``nights`` maps a name to its source, site, longitude, latitude
    and elevation.  A night already known without a latitude or elevation gets the one given now."""
    _insert_ignore(session, Night.__table__, [{"name": name, "created_at": utcnow(), **facts}
                                              for name, facts in nights.items()], "name")
    found = {n.name: n for n in session.scalars(select(Night).where(Night.name.in_(list(nights))))}
    for name, night in found.items():
        for column in ("latitude", "elevation"):
            if getattr(night, column) is None and nights[name].get(column) is not None:
                setattr(night, column, nights[name][column])
    return found


def ensure_instruments(session: Session, identities: dict[str, dict]) -> dict[str, int]:
    """Instrument ids by key (get or create)."""
    _insert_ignore(session, Instrument.__table__, list(identities.values()), "key")
    return dict(session.execute(select(Instrument.key, Instrument.id)
                                .where(Instrument.key.in_(list(identities)))).all())


def night_facts(m, night_override: str | None) -> tuple[str, dict]:
    """The night of one measurement (a name and how it was found, with the site).

    The night's name is the local date at the start of the night
    (:func:`obsdb.imaging.header.night_name`), from the site's longitude: the header's, else obsdb.toml's
    ``[site]`` (carried in ``m.site``), else UTC - 12 h.
    """
    from obsdb.imaging.header import night_name, site_location

    site = getattr(m, "site", None) or site_location(m.header or {})
    facts = {"site": site["site"], "longitude": site["longitude"], "latitude": site["latitude"],
             "elevation": site["elevation"]}
    if night_override:
        return night_override, {"source": "manual", **facts}
    name = night_name(m.columns.get("date_obs"), site["longitude"]) if m.columns else None
    if name is not None:
        return name, {"source": "date-obs", **facts}
    return Path(m.path).parent.name or "unknown", {"source": "folder", "site": None, "longitude": None,
                                                   "latitude": None, "elevation": None}


def write_measurements(session: Session, measurements, *, number_pattern: str, user: str,
                       night: str | None = None) -> dict:
    """Insert or update frames from ingest measurements, in the caller's transaction.

    A file whose content hash is unchanged only has its size/mtime refreshed;
    a changed file is re-measured (its stars, metrics and QA verdicts are of
    the old content) and an event records the old and new hash.

    Parameters
    ----------
    night : str, optional
        ``ingest --night``: put every file in this night instead of the one
        its DATE-OBS gives.

    Returns
    -------
    dict
        Lists of paths: ``added``, ``changed``, ``unchanged``, ``failed`` as
        (path, reason) pairs, and ``folder_nights``: nights named after a
        folder because their files had no usable date.
    """
    from obsdb.imaging.header import instrument_identity
    from obsdb.imaging.stars import STARS_VERSION

    outcome: dict = {"added": [], "changed": [], "unchanged": [], "failed": [], "folder_nights": set(),
                     "new_ids": []}
    paths = [m.path for m in measurements]
    existing = {f.path: f for f in session.scalars(select(Frame).where(Frame.path.in_(paths)))}
    todo = [m for m in measurements if not (m.path in existing and m.ok and existing[m.path].readable
                                            and existing[m.path].sha256 == m.sha256
                                            and _measurements_current(existing[m.path], m))]
    assigned = {m.path: night_facts(m, night) for m in todo}
    new_frames = []
    measured_streaks: list[tuple[Frame, list | None]] = []
    nights = ensure_nights(session, {name: facts for name, facts in assigned.values()})
    identities = {m.path: instrument_identity(m.header, m.width, m.height) for m in todo if m.header is not None}
    instruments = ensure_instruments(session, {i["key"]: {k: v for k, v in i.items() if k != "keywords"}
                                               for i in identities.values()})
    now = utcnow()
    for m in measurements:
        frame = existing.get(m.path)
        if m.path not in assigned:
            frame.size, frame.mtime = m.size, m.mtime
            outcome["unchanged"].append(m.path)
            continue
        name, facts = assigned[m.path]
        if facts["source"] == "folder":
            outcome["folder_nights"].add(name)
        is_new = frame is None
        same_content = not is_new and frame.readable and frame.sha256 == m.sha256
        if is_new:
            new_frames.append(_new_frame_row(m, number_pattern, now, nights[name].id,
                                             instruments[identities[m.path]["key"]] if m.header is not None
                                             else None, identities.get(m.path), facts))
            outcome["failed" if not m.ok else "added"].append(m.path if m.ok else (m.path, m.error))
            continue
        if frame.sha256 != m.sha256:
            session.flush()
            record_event(session, user, "ingest", f"{frame.file_name}: content changed, re-measured; its stars, "
                                                  f"metrics and alignment are of the new content now",
                         frame_id=frame.id, night_id=frame.night_id,
                         details={"old_sha256": frame.sha256, "new_sha256": m.sha256})
        frame.night_id = nights[name].id
        frame.size, frame.mtime, frame.sha256, frame.measured_at = m.size, m.mtime, m.sha256, now
        frame.readable, frame.error = m.ok, m.error
        if m.header is not None:
            frame.header = m.header
            for key, value in m.columns.items():
                setattr(frame, key, value)
            frame.width, frame.height, frame.bitpix = m.width, m.height, m.bitpix
            frame.instrument_id = instruments[identities[m.path]["key"]]
            frame.keywords = frame_keywords(m, identities[m.path], facts)
        frame.stats = FrameStats(algorithm=_stats_version(), **m.stats) if m.stats else None
        # Metrics and stars of old content are stale: replace them, or drop them for `obsdb qa` to redo.
        frame.metrics = FrameMetrics(measured_at=now, **m.metrics) if m.metrics else None
        frame.star_list = (StarList(n_stars=m.n_stars_stored, data=m.stars, algorithm=STARS_VERSION,
                                    measured_at=now) if m.stars is not None else None)
        measured_streaks.append((frame, getattr(m, "streaks", None)))
        if not m.ok:
            outcome["failed"].append((m.path, m.error))
        else:
            # Same content measured again by a newer algorithm is not a change of the file.
            outcome["unchanged" if same_content else "changed"].append(m.path)
    session.flush()
    found_streaks = {frame.id: found for frame, found in measured_streaks}
    new_ids = _insert_new_frames(session, new_frames, now)
    found_streaks.update((new_ids[row["frame"]["path"]], row["streaks"]) for row in new_frames)
    replace_streaks(session, found_streaks, measured_at=now)
    outcome["new_ids"] = [new_ids[row["frame"]["path"]] for row in new_frames]
    _update_night_dates(session, {nights[name].id for name, _ in assigned.values()})
    return outcome


def _new_frame_row(m, number_pattern: str, now, night_id: int, instrument_id: int | None, identity: dict | None,
                   facts: dict) -> dict:
    """A new frame's row and its measurements' rows, as :func:`_insert_new_frames` takes them: the
    values the ORM objects of a re-measured frame get in :func:`write_measurements`."""
    from obsdb.imaging.header import frame_number
    from obsdb.imaging.stars import STARS_VERSION

    file_name = Path(m.path).name
    frame = {"path": m.path, "file_name": file_name, "number": frame_number(file_name, number_pattern),
             "ingested_at": now, "size": m.size, "mtime": m.mtime, "night_id": night_id, "sha256": m.sha256,
             "measured_at": now, "readable": m.ok, "error": m.error}
    if m.header is not None:
        # A column left out of the row (no header: an unreadable file) stays NULL, as the ORM leaves it.
        frame.update(header=m.header, **m.columns, width=m.width, height=m.height, bitpix=m.bitpix,
                     instrument_id=instrument_id)
        frame["keywords"] = frame_keywords(m, identity, facts)
    return {"frame": frame,
            "stats": {"algorithm": _stats_version(), **m.stats} if m.stats else None,
            "metrics": {"measured_at": now, **m.metrics} if m.metrics else None,
            "star_list": ({"n_stars": m.n_stars_stored, "data": m.stars, "algorithm": STARS_VERSION,
                           "measured_at": now} if m.stars is not None else None),
            "streaks": getattr(m, "streaks", None)}


def _insert_new_frames(session: Session, rows: list[dict], now) -> dict[str, int]:
    """Insert new frames and their statistics, metrics and star lists: one multi-row statement per
    table (per set of columns), never one per frame.  Returns the new ids by path.

    The new ids are matched to the rows by path (unique), not by the order of the returned rows: asking
    for that order (``sort_by_parameter_order``) turns SQLite's statement back into one per row.  The derived
    status and night summaries are marked for update (:mod:`obsdb.catalog.maintained`), as a flush
    of Frame objects would.
    """
    from sqlalchemy import insert

    from obsdb.catalog.maintained import touch_frames, touch_nights

    if not rows:
        return {}
    ids: dict[str, int] = {}
    for start in range(0, len(rows), NEW_FRAME_CHUNK):
        chunk = rows[start:start + NEW_FRAME_CHUNK]
        # Rows with the same columns go together, in their order (an unreadable file's row has fewer).
        for group in _same_columns([row["frame"] for row in chunk]):
            ids.update((path, frame_id) for frame_id, path in session.execute(
                insert(Frame).returning(Frame.id, Frame.path), group))
    for table, key in ((FrameStats, "stats"), (FrameMetrics, "metrics"), (StarList, "star_list")):
        children = [{"frame_id": ids[row["frame"]["path"]], **row[key]} for row in rows if row[key] is not None]
        for group in _same_columns(children):
            session.execute(insert(table), group)
    touch_frames(session, ids.values())
    touch_nights(session, {row["frame"]["night_id"] for row in rows})
    return ids


NEW_FRAME_CHUNK = 500
"""New frames inserted per statement (bounded parameter lists; a batch of ingest is 25)."""


def _same_columns(rows: list[dict]) -> list[list[dict]]:
    """``rows`` in runs of consecutive rows with the same keys (one executemany each)."""
    runs: list[list[dict]] = []
    for row in rows:
        if runs and runs[-1][0].keys() == row.keys():
            runs[-1].append(row)
        else:
            runs.append([row])
    return runs


def frame_keywords(m, identity: dict, night: dict) -> dict:
    """Which card(s) gave each column of a frame: the typed columns', the instrument's, and the site's
    when the frame's night was placed by it."""
    keywords = dict((m.columns or {}).get("keywords") or {})
    keywords.update(identity.get("keywords") or {})
    site = getattr(m, "site", None) or {}
    for column, source in (site.get("keywords") or {}).items():
        if night.get(column if column != "site" else "site") is not None:
            keywords[column] = source
    return keywords


def _measurements_current(frame: Frame, m) -> bool:
    """Whether the stored measurements of ``frame`` are those the current algorithms make."""
    from obsdb.imaging.stars import STARS_VERSION
    from obsdb.imaging.stats import STATS_VERSION
    from obsdb.catalog.versions import METRICS_VERSION

    if frame.stats is None or frame.stats.algorithm != STATS_VERSION:
        return False
    if m.metrics is None:
        return True
    return (frame.metrics is not None and frame.metrics.algorithm == METRICS_VERSION
            and frame.star_list is not None and frame.star_list.algorithm == STARS_VERSION)


def write_quality(session: Session, frame_id: int, metrics: dict, stars: bytes | None, n_stars: int,
                  streaks: list | None = None) -> None:
    """Store metrics, a star list and the streaks found, measured after ingest (`obsdb qa` on frames
    without them)."""
    from obsdb.imaging.stars import STARS_VERSION

    frame = session.get(Frame, frame_id)
    now = utcnow()
    frame.metrics = FrameMetrics(measured_at=now, **metrics)
    if stars is not None:
        frame.star_list = StarList(n_stars=n_stars, data=stars, algorithm=STARS_VERSION, measured_at=now)
    session.flush()
    replace_streaks(session, {frame_id: streaks}, measured_at=now)


def replace_streaks(session: Session, found: dict[int, list | None], *, measured_at=None) -> None:
    """Make the ``streak`` rows of these frames those just measured.

    Parameters
    ----------
    found : dict
        Frame id to its streaks (dicts with ``x0, y0, x1, y1, width, significance``, as
        :meth:`obsdb.imaging.streaks.Streak.as_dict` gives), or None for a frame not searched: its old
        rows (of older content or an older detector) go either way.
    """
    from sqlalchemy import delete

    from obsdb.imaging.streaks import STREAKS_VERSION

    if not found:
        return
    ids = list(found)
    for start in range(0, len(ids), 500):
        session.execute(delete(Streak).where(Streak.frame_id.in_(ids[start:start + 500])))
    now = measured_at or utcnow()
    rows = [{"frame_id": frame_id, "x0": s["x0"], "y0": s["y0"], "x1": s["x1"], "y1": s["y1"],
             "width": s["width"], "significance": s.get("significance"), "algorithm": STREAKS_VERSION,
             "measured_at": now}
            for frame_id, streaks in found.items() for s in (streaks or ())]
    if rows:
        session.execute(Streak.__table__.insert(), rows)


def _update_night_dates(session: Session, night_ids: set[int]) -> None:
    """First and last DATE-OBS of the nights touched, in one statement."""
    from sqlalchemy import func, update

    if not night_ids:
        return
    first = select(func.min(Frame.date_obs)).where(Frame.night_id == Night.id).scalar_subquery()
    last = select(func.max(Frame.date_obs)).where(Frame.night_id == Night.id).scalar_subquery()
    session.execute(update(Night).where(Night.id.in_(list(night_ids)))
                    .values(first_date_obs=first, last_date_obs=last))


def _stats_version() -> str:
    from obsdb.imaging.stats import STATS_VERSION

    return STATS_VERSION


def mark_shared_numbers(session, night_ids: list[int]) -> None:
    """Set ``frame.number_shared`` on the frames of these nights as their numbers now stand (one UPDATE).

    A number that several files of one night share names none of them; listings then name those
    frames by file name (see :func:`obsdb.catalog.selectors.frame_label`).
    """
    from sqlalchemy import and_, exists, select, update
    from sqlalchemy.orm import aliased

    from obsdb.catalog.models import Frame

    if not night_ids:
        return
    other = aliased(Frame)
    shared = exists(select(other.id).where(other.night_id == Frame.night_id, other.number == Frame.number,
                                           other.id != Frame.id))
    session.execute(update(Frame).where(Frame.night_id.in_(night_ids))
                    .values(number_shared=and_(Frame.number.is_not(None), shared))
                    .execution_options(synchronize_session=False))
