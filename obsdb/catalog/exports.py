"""Storage of the exports (``obsdb export``): the frames to hand over, their header cards and masters.

The exports themselves (folders of links, scripts, CSV files) are written by
:mod:`obsdb.pipeline.export`; this store only reads the catalog for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from obsdb.catalog.stores import EventLog, FrameListing

if TYPE_CHECKING:
    from obsdb.catalog.db import Database

ID_CHUNK = 500
"""Frame ids per ``IN`` list: bounded statements whatever the night's size."""


class ExportStore(FrameListing, EventLog):
    """What the exports read: frame records, a few header cards of each, their masters and counts."""

    def __init__(self, db: "Database"):
        super().__init__(db)

    def header_cards(self, frame_ids: Iterable[int], keys: Iterable[str]) -> dict[int, dict]:
        """``{frame id: {KEY: value}}`` of the header cards named (absent cards are left out)."""
        from sqlalchemy import select

        from obsdb.catalog.models import Frame

        ids = sorted(set(frame_ids))
        wanted = [k.upper() for k in keys]
        out: dict[int, dict] = {}
        with self.db.session() as session:
            for start in range(0, len(ids), ID_CHUNK):
                query = select(Frame.id, Frame.header).where(Frame.id.in_(ids[start:start + ID_CHUNK]))
                for frame_id, header in session.execute(query):
                    header = header or {}
                    out[frame_id] = {k: header[k] for k in wanted if header.get(k) not in (None, "")}
        return out

    def frame_shas(self, frame_ids: Iterable[int]) -> dict[int, str | None]:
        """The SHA-256 of each frame's file as catalogued."""
        from sqlalchemy import select

        from obsdb.catalog.models import Frame

        ids = sorted(set(frame_ids))
        out: dict[int, str | None] = {}
        with self.db.session() as session:
            for start in range(0, len(ids), ID_CHUNK):
                out.update(session.execute(select(Frame.id, Frame.sha256)
                                           .where(Frame.id.in_(ids[start:start + ID_CHUNK]))).all())
        return out

    def run_references(self, run_ids: Iterable[int]) -> dict[int, int | None]:
        """The reference frame id of each alignment run named."""
        from sqlalchemy import select

        from obsdb.catalog.models import AlignmentRun

        wanted = sorted(set(run_ids))
        if not wanted:
            return {}
        with self.db.session() as session:
            return dict(session.execute(select(AlignmentRun.id, AlignmentRun.reference_frame_id)
                                        .where(AlignmentRun.id.in_(wanted))).all())

    def light_calibrations(self, frame_ids: Iterable[int]) -> dict[int, list[dict]]:
        """The masters each light is calibrated with (:meth:`obsdb.catalog.masters.MasterStore.light_calibrations`)."""
        from obsdb.catalog.masters import MasterStore

        return MasterStore(self.db).light_calibrations(frame_ids)

    def nina_values(self, frame_ids: Iterable[int]) -> dict[int, dict]:
        """N.I.N.A.'s imported values of each frame that has them (:class:`obsdb.catalog.models.NinaImage`)."""
        from sqlalchemy import select

        from obsdb.catalog.models import NinaImage

        ids = sorted(set(frame_ids))
        columns = [c for c in NinaImage.__table__.columns if c.name not in ("id",)]
        out: dict[int, dict] = {}
        with self.db.session() as session:
            for start in range(0, len(ids), ID_CHUNK):
                query = select(*columns).where(NinaImage.frame_id.in_(ids[start:start + ID_CHUNK]))
                for row in session.execute(query).mappings():
                    out[row["frame_id"]] = dict(row)
        return out
