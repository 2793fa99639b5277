"""Photometry's storage: what to measure, the measurements, the sources and the zero points.

The step (:mod:`obsdb.pipeline.photometry`) asks :class:`PhotometryStore` for the frames to measure and
hands back their measurements and identifications; the front door reads photometry, sources and light
curves through the module functions below.  Every write is set-based: one ``executemany`` per table
and transaction, never a round trip per star.

Tables (:mod:`obsdb.catalog.models`): ``frame_photometry`` (a frame's aperture, gain, algorithm and
zero point), ``photometry`` (one row per star of the frame's star list), ``source`` (one star of a
field in its reference's grid), ``source_band`` (its mean magnitude and variability per band) and
``source_member`` (which photometry row is which source).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable

from obsdb.catalog.labels import frame_name
from obsdb.catalog.stores import FILE_QUERY_CHUNK, EventLog

MJD_EPOCH = datetime(1858, 11, 17, tzinfo=timezone.utc)
"""Modified Julian Date 0 (UTC)."""


def mjd_mid(date_obs: datetime | None, exptime: float | None) -> float | None:
    """The MJD (UTC) of the middle of an exposure, or None without a start time.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> mjd_mid(datetime(2026, 3, 10, 0, 0, tzinfo=timezone.utc), 60.0)
    61109.00034722222
    """
    if date_obs is None:
        return None
    if date_obs.tzinfo is None:
        date_obs = date_obs.replace(tzinfo=timezone.utc)
    return (date_obs - MJD_EPOCH).total_seconds() / 86400.0 + (exptime or 0.0) / 2.0 / 86400.0


def _chunks(ids: list, size: int = FILE_QUERY_CHUNK):
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


class PhotometryStore(EventLog):
    """Photometry's storage over the shared database handle."""

    def frames_to_measure(self, *, nights=None, fingerprint=None) -> list[dict]:
        """Readable light frames with a current star list, each with what a worker needs to measure it.

        Each dict: ``frame_id``, ``night_id``, ``path``, ``band``, ``exptime``, ``fwhm``, ``saturation``,
        ``x``/``y``/``flux`` (the star list, numpy arrays), ``calibration`` (master rows, may be empty),
        ``inputs`` (``fingerprint(frame dict)``, or a default of digest, star list and calibration) and
        ``stale`` (no photometry, another algorithm, or other inputs).
        """
        from sqlalchemy import select

        from obsdb.catalog.masters import MasterStore, calibration_signature
        from obsdb.catalog.models import Frame, FrameMetrics, FramePhotometry, FrameStats, StarList
        from obsdb.imaging.header import LIGHT_IMAGE_TYPES
        from obsdb.catalog.selectors import night_ids
        from obsdb.imaging.photometry import PHOTOMETRY_VERSION
        from obsdb.imaging.stars import STARS_VERSION, decode_stars

        with self.db.session() as session:
            scope = night_ids(session, nights)
            query = (select(Frame.id, Frame.night_id, Frame.path, Frame.sha256, Frame.band, Frame.exptime,
                            FrameMetrics.fwhm, FrameStats.saturation, StarList.data, StarList.measured_at,
                            FramePhotometry.algorithm, FramePhotometry.inputs)
                     .join(StarList, StarList.frame_id == Frame.id)
                     .outerjoin(FrameMetrics, FrameMetrics.frame_id == Frame.id)
                     .outerjoin(FrameStats, FrameStats.frame_id == Frame.id)
                     .outerjoin(FramePhotometry, FramePhotometry.frame_id == Frame.id)
                     .where(Frame.readable.is_(True), Frame.image_type.in_(LIGHT_IMAGE_TYPES),
                            StarList.algorithm == STARS_VERSION, StarList.n_stars > 0)
                     .order_by(Frame.night_id, Frame.date_obs, Frame.path))
            if scope is not None:
                query = query.where(Frame.night_id.in_(scope))
            rows = session.execute(query).all()
        calibrations = MasterStore(self.db).light_calibrations([row.id for row in rows])
        tasks = []
        for row in rows:
            stars = decode_stars(row.data)
            calibration = calibrations.get(row.id, [])
            task = {"frame_id": row.id, "night_id": row.night_id, "path": row.path, "band": row.band,
                    "exptime": row.exptime, "fwhm": row.fwhm, "saturation": row.saturation,
                    "x": stars["x"], "y": stars["y"], "flux": stars["flux"], "calibration": calibration,
                    "calibration_signature": calibration_signature(calibration)}
            measured = row.measured_at.isoformat() if row.measured_at else ""
            base = f"{row.sha256}|{STARS_VERSION}@{measured}|{task['calibration_signature'] or 'raw'}"
            task["inputs"] = fingerprint(base) if fingerprint else base
            task["stale"] = row[10] != PHOTOMETRY_VERSION or row.inputs != task["inputs"]
            tasks.append(task)
        return tasks

    def store_measurements(self, results: list[dict]) -> None:
        """Replace the photometry of the measured frames in one transaction.

        Each result: ``frame`` (the ``frame_photometry`` columns) and ``stars`` (a list of
        ``photometry`` column dicts without ``frame_id``).  A frame's old rows, their source
        memberships and its zero point go with it (identification is run again after measuring).
        """
        from sqlalchemy import delete, insert, select

        from obsdb.catalog.models import FramePhotometry, Photometry, SourceMember, utcnow

        if not results:
            return
        ids = [r["frame"]["frame_id"] for r in results]
        now = utcnow()
        with self.db.session() as session:
            for chunk in _chunks(ids):
                old = select(Photometry.id).where(Photometry.frame_id.in_(chunk)).scalar_subquery()
                session.execute(delete(SourceMember).where(SourceMember.photometry_id.in_(old)))
                session.execute(delete(Photometry).where(Photometry.frame_id.in_(chunk)))
                session.execute(delete(FramePhotometry).where(FramePhotometry.frame_id.in_(chunk)))
            session.execute(insert(FramePhotometry), [{**r["frame"], "measured_at": now} for r in results])
            rows = [{**star, "frame_id": r["frame"]["frame_id"]} for r in results for star in r["stars"]]
            if rows:
                session.execute(insert(Photometry), rows)

    def identification_inputs(self, *, nights=None) -> list[dict]:
        """Every frame with photometry, with its current alignment and its measurements.

        Each dict: ``frame_id``, ``night_id``, ``band``, ``shape``, ``reference_id`` (the current
        run's reference; None without a shift in a current run), ``steps`` (that run's shift steps,
        as :func:`obsdb.catalog.queries.render_plan` gives them), and numpy arrays ``id``,
        ``star_index``, ``x``, ``y``, ``mag``, ``mag_err``, ``flags`` of its photometry rows.
        """
        import numpy as np
        from sqlalchemy import select

        from obsdb.catalog.models import Frame, FramePhotometry, Photometry
        from obsdb.catalog.queries import render_plan
        from obsdb.catalog.selectors import night_ids

        with self.db.session() as session:
            scope = night_ids(session, nights)
            query = (select(Frame.id, Frame.night_id, Frame.band, Frame.height, Frame.width)
                     .join(FramePhotometry, FramePhotometry.frame_id == Frame.id).order_by(Frame.id))
            if scope is not None:
                query = query.where(Frame.night_id.in_(scope))
            frames = {row.id: {"frame_id": row.id, "night_id": row.night_id, "band": row.band or "",
                               "shape": (row.height, row.width), "reference_id": None, "steps": None}
                      for row in session.execute(query)}
            if not frames:
                return []
            # The frames' current shifts (any verdict): render's own reading of the alignment.
            from obsdb.catalog.models import AlignmentRun

            plan = [task for task in render_plan(session, status="any", nights=nights) if task["frame_id"] in frames]
            runs = sorted({task["run"] for task in plan})
            run_reference = {}
            for chunk in _chunks(runs):
                run_reference.update(session.execute(select(AlignmentRun.id, AlignmentRun.reference_frame_id)
                                                     .where(AlignmentRun.id.in_(chunk))).all())
            for task in plan:
                frames[task["frame_id"]]["reference_id"] = run_reference.get(task["run"])
                frames[task["frame_id"]]["steps"] = task["steps"]
            columns = ("id", "frame_id", "star_index", "x", "y", "mag", "mag_err", "flags")
            collected: dict[int, list] = {fid: [] for fid in frames}
            ids = sorted(frames)
            for chunk in _chunks(ids):
                for row in session.execute(select(Photometry.id, Photometry.frame_id, Photometry.star_index,
                                                  Photometry.x, Photometry.y, Photometry.mag, Photometry.mag_err,
                                                  Photometry.flags).where(Photometry.frame_id.in_(chunk))
                                           .order_by(Photometry.frame_id, Photometry.star_index)):
                    collected[row.frame_id].append(tuple(row))
        for fid, rows in collected.items():
            table = list(zip(*rows)) if rows else [()] * len(columns)
            for name, values in zip(columns, table):
                if name == "frame_id":
                    continue
                kind = float if name in ("x", "y", "mag", "mag_err") else int
                frames[fid][name] = np.array([kind(v) if v is not None else np.nan for v in values],
                                             dtype=float if kind is float else np.int64)
        return list(frames.values())

    def reference_wcs_header(self, frame_id: int) -> dict | None:
        """The stored header of a reference frame (for its WCS), or None."""
        from obsdb.catalog.models import Frame

        with self.db.session() as session:
            frame = session.get(Frame, frame_id)
            return frame.header if frame is not None else None

    def store_identification(self, *, reference_id: int, sources: list[dict], bands: list[dict],
                             members: list[tuple[int, int]], zero_points: list[dict],
                             not_identified: list[dict]) -> dict[int, int]:
        """Record one reference's identification and zero points in one transaction.

        Sources are kept by ``(reference_id, number)``, so their ids stay when the night is measured
        again; sources of the reference beyond those given are removed.

        Parameters
        ----------
        sources : list of dict
            ``number``, ``x``, ``y``, ``ra``, ``dec``, ``n_frames``.
        bands : list of dict
            ``number``, ``band``, ``mag``, ``mag_err``, ``n_frames``, ``chi2``, ``variable``, ``comparison``.
        members : list of (photometry id, source number)
        zero_points : list of dict
            ``frame_id``, ``zero_point``, ``zero_point_err``, ``n_comparison`` of the identified frames.
        not_identified : list of dict
            ``frame_id`` and ``identification`` (why) of frames left out.

        Returns
        -------
        dict
            Source number to source id.
        """
        from sqlalchemy import delete, insert, select, update

        from obsdb.catalog.models import FramePhotometry, Source, SourceBand, SourceMember

        with self.db.session() as session:
            existing = dict(session.execute(select(Source.number, Source.id)
                                            .where(Source.reference_frame_id == reference_id)).all())
            wanted = {s["number"] for s in sources}
            gone = [sid for number, sid in existing.items() if number not in wanted]
            for chunk in _chunks(gone):
                session.execute(delete(SourceMember).where(SourceMember.source_id.in_(chunk)))
                session.execute(delete(SourceBand).where(SourceBand.source_id.in_(chunk)))
                session.execute(delete(Source).where(Source.id.in_(chunk)))
            kept = [{"id": existing[s["number"]], **{k: s[k] for k in ("x", "y", "ra", "dec", "n_frames")}}
                    for s in sources if s["number"] in existing]
            if kept:
                session.execute(update(Source), kept)
            new = [{**s, "reference_frame_id": reference_id} for s in sources if s["number"] not in existing]
            if new:
                session.execute(insert(Source), new)
            ids = dict(session.execute(select(Source.number, Source.id)
                                       .where(Source.reference_frame_id == reference_id)).all())
            all_ids = sorted(ids.values())
            for chunk in _chunks(all_ids):
                session.execute(delete(SourceMember).where(SourceMember.source_id.in_(chunk)))
                session.execute(delete(SourceBand).where(SourceBand.source_id.in_(chunk)))
            photometry_ids = [p for p, _ in members]
            for chunk in _chunks(photometry_ids):
                session.execute(delete(SourceMember).where(SourceMember.photometry_id.in_(chunk)))
            if bands:
                session.execute(insert(SourceBand), [{**{k: v for k, v in b.items() if k != "number"},
                                                      "source_id": ids[b["number"]]} for b in bands])
            if members:
                session.execute(insert(SourceMember), [{"photometry_id": p, "source_id": ids[n]} for p, n in members])
            if zero_points:
                session.execute(update(FramePhotometry), [
                    {"frame_id": z["frame_id"], "zero_point": z["zero_point"], "zero_point_err": z["zero_point_err"],
                     "n_comparison": z["n_comparison"], "reference_frame_id": reference_id, "identification": None}
                    for z in zero_points])
            self._left_out(session, not_identified)
            return ids

    def mark_not_identified(self, not_identified: list[dict]) -> None:
        """Record why frames were left out of identification (their zero points cleared)."""
        with self.db.session() as session:
            self._left_out(session, not_identified)

    @staticmethod
    def _left_out(session, not_identified: list[dict]) -> None:
        from sqlalchemy import delete, select, update

        from obsdb.catalog.models import FramePhotometry, Photometry, SourceMember

        if not not_identified:
            return
        session.execute(update(FramePhotometry), [
            {"frame_id": row["frame_id"], "zero_point": None, "zero_point_err": None, "n_comparison": None,
             "reference_frame_id": None, "identification": row["identification"]} for row in not_identified])
        for chunk in _chunks([row["frame_id"] for row in not_identified]):
            session.execute(delete(SourceMember).where(SourceMember.photometry_id.in_(
                select(Photometry.id).where(Photometry.frame_id.in_(chunk)).scalar_subquery())))


# ------------------------------------------------------------------ reads (the front door's)

def photometry_rows(session, *, nights=None, band: str | None = None, frame_ids: Iterable[int] | None = None) -> list[dict]:
    """Photometry rows with their frame's facts and zero point, and their source id (or None)."""
    from sqlalchemy import select

    from obsdb.catalog.models import Frame, FramePhotometry, Night, Photometry, SourceMember
    from obsdb.catalog.selectors import night_ids

    scope = night_ids(session, nights)
    query = (select(Night.name, Frame.id, Frame.number, Frame.file_name, Frame.number_shared, Frame.band,
                    Frame.date_obs, Frame.exptime, Frame.airmass, FramePhotometry, Photometry, SourceMember.source_id)
             .join(FramePhotometry, FramePhotometry.frame_id == Frame.id)
             .join(Night, Night.id == Frame.night_id)
             .join(Photometry, Photometry.frame_id == Frame.id)
             .outerjoin(SourceMember, SourceMember.photometry_id == Photometry.id)
             .order_by(Frame.date_obs, Frame.id, Photometry.star_index))
    if scope is not None:
        query = query.where(Frame.night_id.in_(scope))
    if band:
        query = query.where(Frame.band == band)
    if frame_ids is not None:
        query = query.where(Frame.id.in_(list(frame_ids)))
    out = []
    for night, fid, number, name, shared, fband, date_obs, exptime, airmass, fp, p, source_id in \
            session.execute(query):
        out.append({"night": night, "frame_id": fid, "frame": frame_name(number, name, shared),
                    "band": fband, "mjd_utc": mjd_mid(date_obs, exptime), "airmass": airmass,
                    "star_index": p.star_index, "source": source_id, "x": p.x, "y": p.y, "flux": p.flux,
                    "flux_err": p.flux_err, "sky": p.sky, "mag": p.mag, "mag_err": p.mag_err, "flags": p.flags,
                    "radius": fp.radius, "radius_rule": fp.radius_rule, "gain": fp.gain,
                    "gain_source": fp.gain_source, "zero_point": fp.zero_point, "algorithm": fp.algorithm})
    return out


def source_rows(session, *, nights=None, band: str | None = None, source_ids=None) -> list[dict]:
    """Sources with their reference, position, frames and per-band magnitudes (``bands``: band -> dict)."""
    from sqlalchemy import select

    from obsdb.catalog.models import Frame, Night, Source, SourceBand
    from obsdb.catalog.selectors import night_ids

    scope = night_ids(session, nights)
    query = (select(Source, Night.name, Frame.number, Frame.file_name, Frame.number_shared)
             .join(Frame, Frame.id == Source.reference_frame_id).join(Night, Night.id == Frame.night_id)
             .order_by(Night.name, Source.reference_frame_id, Source.number))
    if scope is not None:
        query = query.where(Frame.night_id.in_(scope))
    if source_ids is not None:
        query = query.where(Source.id.in_(list(source_ids)))
    sources = {}
    for source, night, number, name, shared in session.execute(query):
        sources[source.id] = {"id": source.id, "night": night, "reference": frame_name(number, name, shared),
                              "reference_frame_id": source.reference_frame_id, "number": source.number,
                              "x": source.x, "y": source.y, "ra": source.ra, "dec": source.dec,
                              "n_frames": source.n_frames, "bands": {}}
    ids = sorted(sources)
    for chunk in _chunks(ids):
        for row in session.scalars(select(SourceBand).where(SourceBand.source_id.in_(chunk))):
            sources[row.source_id]["bands"][row.band] = {
                "mag": row.mag, "mag_err": row.mag_err, "n_frames": row.n_frames, "chi2": row.chi2,
                "variable": row.variable, "comparison": row.comparison}
    rows = list(sources.values())
    if band:
        rows = [r for r in rows if band in r["bands"]]
    return rows


def nearest_source(session, *, x: float | None = None, y: float | None = None, ra: float | None = None,
                   dec: float | None = None, nights=None, radius: float | None = None) -> tuple[int, float] | None:
    """The source nearest a position (reference pixels, or RA/Dec in degrees) and its distance
    (pixels, or arcseconds); None when there are no sources (or none with sky coordinates)."""
    import math

    best = None
    for row in source_rows(session, nights=nights):
        if ra is not None:
            if row["ra"] is None:
                continue
            d_ra = (row["ra"] - ra) * math.cos(math.radians(dec))
            distance = math.hypot(d_ra, row["dec"] - dec) * 3600.0
        else:
            distance = math.hypot(row["x"] - x, row["y"] - y)
        if best is None or distance < best[1]:
            best = (row["id"], distance)
    return best


def lightcurve_rows(session, source_id: int, *, band: str | None = None) -> tuple[dict, list[dict]] | None:
    """A source (as :func:`source_rows` gives it, plus ``site``: its night's longitude, latitude and
    elevation, or None) and its measurements, one per frame in time order, with the frame's zero
    point, airmass and verdict; None for an unknown source."""
    from sqlalchemy import select

    from obsdb.catalog.models import Frame, FrameMetrics, FramePhotometry, Photometry, Source, SourceMember
    from obsdb.catalog.status import status_expression

    source = session.get(Source, source_id)
    if source is None:
        return None
    query = (select(Frame.id, Frame.number, Frame.file_name, Frame.number_shared, Frame.band, Frame.date_obs,
                    Frame.exptime,
                    Frame.airmass, FramePhotometry.zero_point, FramePhotometry.zero_point_err,
                    Photometry.mag, Photometry.mag_err, Photometry.flux, Photometry.flux_err, Photometry.flags,
                    status_expression(FrameMetrics.assessed_at.is_not(None)).label("status"))
             .join(FramePhotometry, FramePhotometry.frame_id == Frame.id)
             .join(Photometry, Photometry.frame_id == Frame.id)
             .join(SourceMember, SourceMember.photometry_id == Photometry.id)
             .outerjoin(FrameMetrics, FrameMetrics.frame_id == Frame.id)
             .where(SourceMember.source_id == source_id)
             .order_by(Frame.date_obs, Frame.id))
    if band:
        query = query.where(Frame.band == band)
    rows = []
    for row in session.execute(query):
        diff = (row.mag - row.zero_point) if row.mag is not None and row.zero_point is not None else None
        rows.append({"frame_id": row.id, "frame": frame_name(row.number, row.file_name, row.number_shared),
                     "band": row.band, "mjd_utc": mjd_mid(row.date_obs, row.exptime), "mag": diff,
                     "mag_err": row.mag_err, "instrumental_mag": row.mag, "zero_point": row.zero_point,
                     "zero_point_err": row.zero_point_err, "flux": row.flux, "flux_err": row.flux_err,
                     "flags": row.flags, "airmass": row.airmass, "status": row.status})
    info = source_rows(session, source_ids=[source_id])[0]
    from obsdb.catalog.models import Night

    site = session.execute(select(Night.longitude, Night.latitude, Night.elevation)
                           .join(Frame, Frame.night_id == Night.id)
                           .where(Frame.id == source.reference_frame_id)).first()
    info["site"] = ({"longitude": site.longitude, "latitude": site.latitude, "elevation": site.elevation}
                    if site is not None and site.longitude is not None and site.latitude is not None else None)
    return info, rows
