"""The catalog side of master calibration frames: the raw bias/dark/flat frames to combine (with
their status), the masters built, their members, and which master calibrates each light.

:class:`MasterStore` holds every SQL statement of `obsdb calibrate` and `obsdb masters`; the step
itself (:mod:`obsdb.pipeline.calibrate`) never touches a session.
"""

from __future__ import annotations

import statistics
from datetime import datetime

from sqlalchemy import case, delete, select, update
from sqlalchemy.orm import aliased

from obsdb.imaging.header import CALIBRATION_IMAGE_TYPES
from obsdb.catalog.models import (PENDING_DIGEST, Calibration, Frame, Instrument, Master, MasterMember, Night,
                                  utcnow)
from obsdb.catalog.readers import calibration_line  # noqa: F401  (re-exported: `obsdb show`'s line)

ID_CHUNK = 500
"""Ids per IN list (bounded SQL parameter lists)."""



def _frame_keys(header: dict | None, binning) -> dict:
    from obsdb.imaging.calibration import ccd_temperature, readout_key

    return {"readout": readout_key(header or {}, binning), "ccd_temp": ccd_temperature(header or {})}


class MasterStore:
    """Masters, members and matches in one catalog (see the module docstring).

    Parameters
    ----------
    db : obsdb.catalog.db.Database
        The catalog's database handle.
    """

    def __init__(self, db):
        self.db = db

    # ------------------------------------------------------------ inputs

    def _frames(self, session, image_types, nights, *, with_status: bool) -> list[dict]:
        from obsdb.catalog.selectors import frame_label, night_ids
        from obsdb.catalog.status import status_expression

        scope = night_ids(session, nights)
        columns = [Frame.id, Frame.number, Frame.file_name, Frame.number_shared, Frame.path, Frame.sha256,
                   Frame.image_type, Frame.band, Frame.exptime, Frame.date_obs, Frame.header, Frame.night_id,
                   Night.name, Frame.instrument_id, Instrument.binning_x, Instrument.binning_y]
        if with_status:
            columns.append(status_expression())
        query = (select(*columns).join(Night, Night.id == Frame.night_id)
                 .outerjoin(Instrument, Instrument.id == Frame.instrument_id)
                 .where(Frame.readable.is_(True), Frame.image_type.in_(image_types))
                 .order_by(Night.name, Frame.date_obs, Frame.number, Frame.path))
        if scope is not None:
            query = query.where(Frame.night_id.in_(scope))
        out = []
        for row in session.execute(query):
            (fid, number, name, shared, path, sha, kind, band, exptime, date, header, night_id, night,
             instrument_id, bx, by) = row[:16]
            header = header or {}
            record = {"id": fid, "label": frame_label(night, number, name, qualified=True, shared=shared),
                      "file_name": name, "path": path, "sha256": sha, "type": kind,
                      "band": band.strip() if band else band, "exptime": exptime, "date_obs": date,
                      "night_id": night_id, "night": night, "instrument_id": instrument_id,
                      "sections": {k: header.get(k) for k in ("BIASSEC", "TRIMSEC", "DATASEC") if header.get(k)},
                      **_frame_keys(header, (bx, by))}
            if with_status:
                record["status"] = row[16]
            out.append(record)
        return out

    def calibration_inputs(self, *, nights=None) -> list[dict]:
        """Readable bias, dark and flat frames of ``nights`` with their status (``accepted``,
        ``rejected``, ``pending``), read-out key, temperature and FITS sections, as dicts."""
        with self.db.session() as session:
            return self._frames(session, CALIBRATION_IMAGE_TYPES, nights, with_status=True)

    def lights(self, *, nights=None) -> list[dict]:
        """Readable light frames of ``nights`` with the keys matching needs, as dicts."""
        with self.db.session() as session:
            return self._frames(session, ("light",), nights, with_status=False)

    def coverage(self, *, nights=None) -> list[dict]:
        """Per night and band, the readable lights and how many have no bias, no dark or no flat
        matched (``unmatched``: not yet matched by `obsdb calibrate`), one GROUP BY query.

        Returns
        -------
        list of dict
            ``night``, ``band``, ``lights``, ``unmatched``, ``without_bias``, ``without_dark``,
            ``without_flat``; ordered by night and band.
        """
        from sqlalchemy import and_, func

        from obsdb.catalog.selectors import night_ids

        def missing(kind):
            chosen = aliased(Calibration)
            return (select(func.count()).select_from(chosen)
                    .where(chosen.frame_id == Frame.id, chosen.kind == kind, chosen.master_id.is_(None))
                    .correlate(Frame).scalar_subquery())

        def matched():
            any_row = aliased(Calibration)
            return select(func.count()).select_from(any_row).where(any_row.frame_id == Frame.id).correlate(
                Frame).scalar_subquery()

        with self.db.session() as session:
            scope = night_ids(session, nights)
            per_light = (select(Night.name.label("night"), Frame.band.label("band"),
                                missing("bias").label("no_bias"), missing("dark").label("no_dark"),
                                missing("flat").label("no_flat"), matched().label("rows"))
                         .join(Night, Night.id == Frame.night_id)
                         .where(and_(Frame.readable.is_(True), Frame.image_type == "light")))
            if scope is not None:
                per_light = per_light.where(Frame.night_id.in_(scope))
            lights = per_light.subquery()
            query = (select(lights.c.night, lights.c.band, func.count(),
                            func.sum(case((lights.c.rows == 0, 1), else_=0)),
                            func.sum(lights.c.no_bias), func.sum(lights.c.no_dark), func.sum(lights.c.no_flat))
                     .group_by(lights.c.night, lights.c.band).order_by(lights.c.night, lights.c.band))
            return [{"night": night, "band": band, "lights": int(n), "unmatched": int(unmatched or 0),
                     "without_bias": int(b or 0), "without_dark": int(d or 0), "without_flat": int(f or 0)}
                    for night, band, n, unmatched, b, d, f in session.execute(query)]

    # ------------------------------------------------------------ masters

    def masters(self, *, nights=None, include_bad: bool = True) -> list[dict]:
        """Every master (of ``nights``), with its members' ids and hashes and ``time`` (the median of
        the members' times), as dicts, oldest first."""
        from obsdb.catalog.selectors import night_ids

        with self.db.session() as session:
            scope = night_ids(session, nights)
            query = (select(Master, Night.name, Instrument.key).join(Night, Night.id == Master.night_id)
                     .outerjoin(Instrument, Instrument.id == Master.instrument_id).order_by(Master.id))
            if scope is not None:
                query = query.where(Master.night_id.in_(scope))
            if not include_bad:
                query = query.where(Master.bad.is_(False))
            rows = session.execute(query).all()
            ids = [m.id for m, _, _ in rows]
            members: dict[int, list] = {}
            for start in range(0, len(ids), ID_CHUNK):
                for master_id, frame_id, sha, date, name in session.execute(
                        select(MasterMember.master_id, MasterMember.frame_id, MasterMember.sha256, Frame.date_obs,
                               Frame.file_name)
                        .join(Frame, Frame.id == MasterMember.frame_id)
                        .where(MasterMember.master_id.in_(ids[start:start + ID_CHUNK]))
                        .order_by(MasterMember.master_id, Frame.date_obs, Frame.id)):
                    members.setdefault(master_id, []).append((frame_id, sha, date, name))
            out = []
            for master, night, instrument in rows:
                own = members.get(master.id, [])
                times = sorted(d for _, _, d, _ in own if d is not None)
                out.append({
                    "id": master.id, "kind": master.kind, "night_id": master.night_id, "night": night,
                    "instrument_id": master.instrument_id, "instrument": instrument, "band": master.band,
                    "exptime": master.exptime, "ccd_temp": master.ccd_temp, "readout": master.readout,
                    "path": master.path, "sha256": master.sha256, "written": master.sha256 != PENDING_DIGEST,
                    "n_frames": master.n_frames, "method": master.method, "algorithm": master.algorithm,
                    "stats": master.stats, "valid_from": master.valid_from, "valid_to": master.valid_to,
                    "bad": master.bad, "bad_reason": master.bad_reason, "bad_by": master.bad_by,
                    "author": master.author, "created_at": master.created_at,
                    "time": times[len(times) // 2] if times else None,
                    "members": [{"frame_id": f, "sha256": s, "file_name": n} for f, s, _, n in own],
                })
            return out

    def create_masters(self, rows: list[dict]) -> list[int]:
        """Record masters about to be written (sha256 :data:`PENDING_DIGEST`) with their members, in one
        transaction; returns their ids in order.  Each row has the :class:`Master` columns less ``path``
        (given later by :meth:`set_paths`) plus ``members``: (frame_id, sha256) pairs."""
        ids = []
        with self.db.session() as session:
            for row in rows:
                row = dict(row)
                members = row.pop("members")
                master = Master(**row, path="", sha256=PENDING_DIGEST)
                master.members = [MasterMember(frame_id=f, sha256=s) for f, s in members]
                session.add(master)
                session.flush()
                ids.append(master.id)
        return ids

    def set_paths(self, paths: dict[int, str]) -> None:
        """The file each pending master will be written to (before it is written)."""
        with self.db.session() as session:
            for master_id, path in paths.items():
                session.execute(update(Master).where(Master.id == master_id).values(path=path))

    def finish_master(self, master_id: int, sha256: str, stats: dict) -> None:
        """A master's file is written: its digest and numbers."""
        with self.db.session() as session:
            session.execute(update(Master).where(Master.id == master_id).values(sha256=sha256, stats=stats))

    def mark_bad(self, master_ids, reason: str, *, by: str) -> int:
        """Mark masters bad (never matched again), with the reason and who; returns how many changed."""
        ids = sorted(set(master_ids))
        changed = 0
        with self.db.session() as session:
            for start in range(0, len(ids), ID_CHUNK):
                result = session.execute(update(Master).where(Master.id.in_(ids[start:start + ID_CHUNK]),
                                                              Master.bad.is_(False))
                                         .values(bad=True, bad_reason=reason, bad_by=by))
                changed += result.rowcount or 0
        return changed

    def owned_files(self, paths: list[str]) -> dict[str, set[str]]:
        """Path -> digests of the master files obsdb recorded at these paths (pending ones included)."""
        found: dict[str, set[str]] = {}
        keys = sorted(set(paths))
        with self.db.session() as session:
            for start in range(0, len(keys), ID_CHUNK):
                for path, digest in session.execute(select(Master.path, Master.sha256)
                                                    .where(Master.path.in_(keys[start:start + ID_CHUNK]))):
                    found.setdefault(path, set()).add(digest)
        return found

    # ------------------------------------------------------------ matches

    def store_matches(self, rows: list[dict]) -> None:
        """Replace the calibration rows of the lights in ``rows`` with ``rows`` (one transaction)."""
        frame_ids = sorted({row["frame_id"] for row in rows})
        now = utcnow()
        with self.db.session() as session:
            for start in range(0, len(frame_ids), ID_CHUNK):
                session.execute(delete(Calibration).where(Calibration.frame_id.in_(frame_ids[start:start + ID_CHUNK])))
            session.add_all(Calibration(**row, created_at=now) for row in rows)

    def light_calibrations(self, frame_ids) -> dict[int, list[dict]]:
        """The masters each light is calibrated with: ``{frame id: [{kind, master, path, sha256,
        scale, sections}, ...]}`` (``sections``: the overscan and trim sections the master was built with), only rows that name a written master not marked bad (a light without one is absent)."""
        ids = sorted(set(frame_ids))
        out: dict[int, list[dict]] = {}
        with self.db.session() as session:
            for start in range(0, len(ids), ID_CHUNK):
                query = (select(Calibration.frame_id, Calibration.kind, Calibration.master_id, Calibration.scale,
                                Master.path, Master.sha256, Master.stats)
                         .join(Master, Master.id == Calibration.master_id)
                         .where(Calibration.frame_id.in_(ids[start:start + ID_CHUNK]), Master.bad.is_(False),
                                Master.sha256 != PENDING_DIGEST)
                         .order_by(Calibration.frame_id, Calibration.kind))
                for frame_id, kind, master_id, scale, path, sha, stats in session.execute(query):
                    stats = stats or {}
                    out.setdefault(frame_id, []).append({"kind": kind, "master": master_id, "path": path,
                                                         "sha256": sha, "scale": scale,
                                                         "sections": {"biassec": stats.get("biassec"),
                                                                      "trimsec": stats.get("trimsec")}})
        return out

    def lights_measured_otherwise(self, *, nights=None, band: str | None = None) -> dict[str, int]:
        """Readable lights with metrics whose pixels were calibrated otherwise than the catalog now says
        (``frame_metrics.calibration`` differs from :func:`calibration_signature` of its rows), as
        ``{path: frame id}``: their metrics and star lists are to be measured again."""
        from obsdb.catalog.models import FrameMetrics
        from obsdb.catalog.selectors import night_ids

        with self.db.session() as session:
            scope = night_ids(session, nights)
            query = (select(Frame.path, Frame.id, FrameMetrics.calibration)
                     .join(FrameMetrics, FrameMetrics.frame_id == Frame.id)
                     .where(Frame.readable.is_(True), Frame.image_type == "light"))
            if scope is not None:
                query = query.where(Frame.night_id.in_(scope))
            if band:
                query = query.where(Frame.band == band)
            measured = session.execute(query).all()
        current = self.light_calibrations([frame_id for _, frame_id, _ in measured])
        return {path: frame_id for path, frame_id, used in measured
                if used != calibration_signature(current.get(frame_id, []))}


def calibration_signature(rows: list[dict]) -> str | None:
    """The masters a light's pixels are calibrated with, as stored with its metrics: e.g.
    ``'bias 1, dark 2 x0.5, flat 3'``; None for raw pixels (no master)."""
    parts = []
    for row in sorted(rows, key=lambda r: r["kind"]):
        if row.get("master") is None:
            continue
        scale = row.get("scale")
        extra = f" x{scale:.6g}" if row["kind"] == "dark" and scale not in (None, 1.0) else ""
        parts.append(f"{row['kind']} {row['master']}{extra}")
    return ", ".join(parts) or None


def frame_calibration(session, frame_id: int) -> list[dict]:
    """The calibration rows of one light (:func:`obsdb.catalog.readers.frame_calibration`)."""
    from obsdb.catalog import readers
    from obsdb.catalog.statements import session_runner

    return readers.frame_calibration(session_runner(session), frame_id)


def median_time(dates: list[datetime | None]) -> datetime | None:
    """The median of the known times (the middle one; the earlier of the two middle ones)."""
    known = sorted(d for d in dates if d is not None)
    return known[(len(known) - 1) // 2] if known else None


def median_or_none(values) -> float | None:
    """The median of the values that are not None, or None."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None
