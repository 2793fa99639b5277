"""Storage of N.I.N.A.'s per-frame metadata (``obsdb import nina``): candidates to join, and the rows joined."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Iterable

from obsdb.catalog.stores import EventLog

NAME_CHUNK = 500
"""File names per ``IN`` list when candidates are looked up by name."""


class NinaStore(EventLog):
    """The frames a metadata file may describe, and its rows once joined (table ``nina_image``)."""

    def candidates_by_name(self, names: Iterable[str], *, nights=None) -> dict[str, list[dict]]:
        """Catalogued frames by lower-cased file name: ``{name: [{id, file_name, date_obs, band, night}]}``."""
        from sqlalchemy import func, select

        from obsdb.catalog.models import Frame, Night
        from obsdb.catalog.selectors import night_ids

        wanted = sorted({n.lower() for n in names if n})
        out: dict[str, list[dict]] = {}
        with self.db.session() as session:
            scope = night_ids(session, nights)
            for start in range(0, len(wanted), NAME_CHUNK):
                query = (select(Frame.id, Frame.file_name, Frame.date_obs, Frame.band, Night.name)
                         .join(Night, Night.id == Frame.night_id)
                         .where(func.lower(Frame.file_name).in_(wanted[start:start + NAME_CHUNK])))
                if scope is not None:
                    query = query.where(Frame.night_id.in_(scope))
                for frame_id, file_name, date_obs, band, night in session.execute(query):
                    out.setdefault(file_name.lower(), []).append(
                        {"id": frame_id, "file_name": file_name, "date_obs": date_obs, "band": band, "night": night})
        return out

    def candidates_in_time(self, first: datetime, last: datetime, *, nights=None) -> list[dict]:
        """Readable frames whose DATE-OBS is between ``first`` and ``last`` (inclusive), oldest first."""
        from sqlalchemy import select

        from obsdb.catalog.models import Frame, Night
        from obsdb.catalog.selectors import night_ids

        with self.db.session() as session:
            scope = night_ids(session, nights)
            query = (select(Frame.id, Frame.file_name, Frame.date_obs, Frame.band, Night.name)
                     .join(Night, Night.id == Frame.night_id)
                     .where(Frame.date_obs >= first, Frame.date_obs <= last).order_by(Frame.date_obs))
            if scope is not None:
                query = query.where(Frame.night_id.in_(scope))
            return [{"id": i, "file_name": f, "date_obs": d, "band": b, "night": n}
                    for i, f, d, b, n in session.execute(query)]

    def store_rows(self, rows: list[dict], *, source: str, author: str, summary: str) -> None:
        """Replace the joined rows of these frames with ``rows`` and log the import, in one transaction."""
        from sqlalchemy import delete

        from obsdb.catalog.models import NinaImage
        from obsdb.catalog.writes import record_event

        ids = sorted({row["frame_id"] for row in rows})
        with self.db.session() as session:
            for start in range(0, len(ids), NAME_CHUNK):
                session.execute(delete(NinaImage).where(NinaImage.frame_id.in_(ids[start:start + NAME_CHUNK])))
            session.add_all(NinaImage(**row) for row in rows)
            record_event(session, author, "import nina", summary, details={"source": source, "frames": len(ids)})

    def focuser_positions(self, frame_ids: Iterable[int]) -> dict[int, int]:
        """N.I.N.A.'s FocuserPosition of each frame that has one (for the ``focus`` rule)."""
        from sqlalchemy import select

        from obsdb.catalog.models import NinaImage

        ids = sorted(set(frame_ids))
        out: dict[int, int] = {}
        with self.db.session() as session:
            for start in range(0, len(ids), NAME_CHUNK):
                out.update(session.execute(select(NinaImage.frame_id, NinaImage.focuser_position)
                                           .where(NinaImage.frame_id.in_(ids[start:start + NAME_CHUNK]),
                                                  NinaImage.focuser_position.is_not(None))).all())
        return out


def time_window(times: list[datetime], tolerance_s: float) -> tuple[datetime, datetime] | None:
    """The span of ``times`` widened by the tolerance on each side (None: no times)."""
    if not times:
        return None
    pad = timedelta(seconds=tolerance_s)
    return min(times) - pad, max(times) + pad
