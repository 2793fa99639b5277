"""Writes to the catalog.  Callers own the session (one transaction per call site)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from obsdb.catalog.models import Event, Frame, FrameMetrics, FrameStats, utcnow


def record_event(session: Session, user: str, command: str, summary: str, *,
                 frame_id: int | None = None, details: dict | None = None) -> Event:
    """Append an event to the log."""
    event = Event(user=user, command=command, summary=summary, frame_id=frame_id, details=details)
    session.add(event)
    return event


def write_measurements(session: Session, measurements, *, number_pattern: str, user: str) -> dict:
    """Insert or update frames from ingest measurements, in the caller's transaction.

    A file whose content hash is unchanged only has its size/mtime refreshed;
    a changed file is re-measured and an event records the old and new hash.

    Returns
    -------
    dict
        Lists of paths: ``added``, ``changed``, ``unchanged``, and ``failed``
        as (path, reason) pairs.
    """
    from obsdb.imaging.header import frame_number

    outcome: dict = {"added": [], "changed": [], "unchanged": [], "failed": []}
    paths = [m.path for m in measurements]
    existing = {f.path: f for f in session.scalars(select(Frame).where(Frame.path.in_(paths)))}
    now = utcnow()
    for m in measurements:
        frame = existing.get(m.path)
        if frame is not None and m.ok and frame.readable and frame.sha256 == m.sha256:
            frame.size, frame.mtime = m.size, m.mtime
            outcome["unchanged"].append(m.path)
            continue
        is_new = frame is None
        if is_new:
            name = Path(m.path).name
            frame = Frame(path=m.path, file_name=name, number=frame_number(name, number_pattern),
                          ingested_at=now, size=m.size, mtime=m.mtime)
            session.add(frame)
        elif frame.sha256 != m.sha256:
            session.flush()
            record_event(session, user, "ingest", f"{frame.file_name}: content changed, re-measured",
                         frame_id=frame.id, details={"old_sha256": frame.sha256, "new_sha256": m.sha256})
        frame.size, frame.mtime, frame.sha256, frame.measured_at = m.size, m.mtime, m.sha256, now
        frame.readable, frame.error = m.ok, m.error
        if m.header is not None:
            frame.header = m.header
            for key, value in m.columns.items():
                setattr(frame, key, value)
            frame.width, frame.height, frame.bitpix = m.width, m.height, m.bitpix
        frame.stats = FrameStats(algorithm=_stats_version(), **m.stats) if m.stats else None
        # Metrics of old content are stale: replace them, or drop them for `obsdb qa` to redo.
        frame.metrics = FrameMetrics(measured_at=now, **m.metrics) if m.metrics else None
        if not m.ok:
            outcome["failed"].append((m.path, m.error))
        else:
            outcome["added" if is_new else "changed"].append(m.path)
    return outcome


def _stats_version() -> str:
    from obsdb.imaging.stats import STATS_VERSION

    return STATS_VERSION
