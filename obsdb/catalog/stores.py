"""The steps' storage: one small store per step, each over the shared :class:`~obsdb.catalog.db.Database`.

A pipeline step asks its store for what it needs and hands its results back to it; the stores hold
every SQL statement a step runs, and nothing here imports :mod:`obsdb.pipeline`.  The front door,
:class:`obsdb.api.Catalog`, builds the stores its steps need over its one database handle::

    from obsdb.catalog.stores import IngestStore

    store = IngestStore(database)
    store.known_files(["/data/night1/f0001.fits"])

Every store writes the event log (:class:`EventLog`): each step records what it did.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from obsdb.text import plural

if TYPE_CHECKING:
    from obsdb.catalog.db import Database
    from obsdb.catalog.records import FrameFilter, FrameRecord

FILE_QUERY_CHUNK = 500
"""Paths looked up per query when ingest checks what it already has (bounded SQL parameter lists)."""

CENTROID_BATCH = 5_000
"""Centroid rows of an alignment run inserted per statement: a 500-frame night has ~95,000, which held
as one list of dicts (and SQLAlchemy's parameters for it) made the parent's memory grow with the night."""


class EventLog:
    """The event log: every command that changed the catalog, with who and when."""

    def __init__(self, db: "Database"):
        self.db = db

    def record_event(self, author: str, command: str, summary: str, **details) -> None:
        """Append one event to the log, in its own transaction."""
        from obsdb.catalog.writes import record_event

        with self.db.session() as session:
            record_event(session, author, command, summary, **details)


class FrameListing:
    """Frame listings for whatever holds a ``db``: typed records, or their JSON shape, streamed.

    The front door (:class:`obsdb.Catalog`) and the stores of the steps that list frames (render,
    the exports) share it, so that a listing is read one way everywhere.
    """

    db: "Database"

    def iter_frames(self, selection: "FrameFilter | None" = None, **filters) -> Iterator["FrameRecord"]:
        """The frames of ``selection`` (with ``filters`` laid over it: :meth:`FrameFilter.of`) as typed
        records, in natural order, streamed page by page (constant memory)."""
        from obsdb.catalog.queries import iter_frame_records
        from obsdb.catalog.records import FrameFilter

        with self.db.session() as session:
            yield from iter_frame_records(session, FrameFilter.of(selection, **filters))

    def iter_frame_dicts(self, selection: "FrameFilter | None" = None, **filters) -> Iterator[dict]:
        """:meth:`iter_frames` in the JSON shape of ``obsdb frames --format json``
        (:meth:`FrameRecord.to_json`)."""
        for record in self.iter_frames(selection, **filters):
            yield record.to_json()

    def frame_dicts(self, selection: "FrameFilter | None" = None, **filters) -> list[dict]:
        """:meth:`iter_frame_dicts` as a list."""
        return list(self.iter_frame_dicts(selection, **filters))


class IngestStore(EventLog):
    """Ingest's storage: what the catalog has for some paths, and each batch of measurements."""

    def known_files(self, paths: list[str]) -> dict[str, dict]:
        """What the catalog has for these paths: id, size, mtime, readable, error, number, and
        ``stale`` when a stored measurement is of an older algorithm version."""
        from sqlalchemy import select

        from obsdb.catalog.models import Frame, FrameMetrics, FrameStats, StarList
        from obsdb.imaging.stars import STARS_VERSION
        from obsdb.imaging.stats import STATS_VERSION
        from obsdb.catalog.versions import METRICS_VERSION

        known: dict[str, dict] = {}
        with self.db.session() as session:
            for start in range(0, len(paths), FILE_QUERY_CHUNK):
                chunk = paths[start:start + FILE_QUERY_CHUNK]
                query = (select(Frame.id, Frame.path, Frame.size, Frame.mtime, Frame.readable, Frame.error,
                                Frame.number, FrameStats.algorithm, FrameMetrics.algorithm, StarList.algorithm)
                         .outerjoin(FrameStats, FrameStats.frame_id == Frame.id)
                         .outerjoin(FrameMetrics, FrameMetrics.frame_id == Frame.id)
                         .outerjoin(StarList, StarList.frame_id == Frame.id)
                         .where(Frame.path.in_(chunk)))
                for row in session.execute(query):
                    stats_v, metrics_v, stars_v = row[7], row[8], row[9]
                    stale = row.readable and (stats_v != STATS_VERSION
                                              or (metrics_v is not None and metrics_v != METRICS_VERSION)
                                              or (metrics_v is not None and stars_v != STARS_VERSION))
                    known[row.path] = {"id": row.id, "size": row.size, "mtime": row.mtime,
                                       "readable": row.readable, "error": row.error, "number": row.number,
                                       "stale": bool(stale), "has_metrics": metrics_v is not None}
        return known

    def gone_from(self, folders: list[Path], *, recursive: bool, present: set[str]) -> list[str]:
        """Catalogued files inside ``folders`` that a scan did not find and that are not on disk."""
        from sqlalchemy import select

        from obsdb.catalog.models import Frame

        gone = []
        with self.db.session() as session:
            for folder in folders:
                prefix = str(folder).rstrip(os.sep) + os.sep
                for path in session.scalars(select(Frame.path).where(Frame.path.startswith(prefix,
                                                                                            autoescape=True))):
                    inside = recursive or os.sep not in path[len(prefix):]
                    if inside and path not in present and not os.path.exists(path):
                        gone.append(path)
        return sorted(set(gone))

    def renumber(self, numbers: dict[int, int | None], *, pattern: str, author: str) -> None:
        """Give frames new numbers (a new ``--number-pattern``), logged."""
        from sqlalchemy import select, update

        from obsdb.catalog.models import Frame
        from obsdb.catalog.writes import mark_shared_numbers, record_event

        with self.db.session() as session:
            session.execute(update(Frame), [{"id": i, "number": n} for i, n in numbers.items()])
            nights = set()
            ids = list(numbers)
            for start in range(0, len(ids), FILE_QUERY_CHUNK):
                nights.update(session.scalars(select(Frame.night_id).where(
                    Frame.id.in_(ids[start:start + FILE_QUERY_CHUNK])).distinct()))
            mark_shared_numbers(session, sorted(nights))
            record_event(session, author, "ingest", f"{plural(len(numbers), 'frame')} renumbered with pattern {pattern!r}",
                         details={"renumbered": {str(i): n for i, n in numbers.items()}})

    def write_measurements(self, measurements, *, number_pattern: str, author: str,
                           night: str | None = None) -> dict:
        """Store one batch of ingest measurements in one transaction (see
        :func:`obsdb.catalog.writes.write_measurements`)."""
        from obsdb.catalog.writes import write_measurements

        return self.db.retry_on_conflict(lambda session: write_measurements(
            session, measurements, number_pattern=number_pattern, user=author, night=night))

    def shared_numbers(self, frame_ids: list[int]) -> dict[tuple[str, int], list[str]]:
        """Numbers that several files of one night share, among the nights and numbers of ``frame_ids``.

        Returns ``{(night, number): [paths]}``; only clashes that involve
        one of the given frames (those an ingest just added) are reported.
        Marks ``frame.number_shared`` on every frame of those nights as it
        now stands, so that listings name such frames by file name.
        """
        from sqlalchemy import func, select, tuple_

        from obsdb.catalog.models import Frame, Night

        if not frame_ids:
            return {}
        with self.db.session() as session:
            pairs = set()
            for start in range(0, len(frame_ids), FILE_QUERY_CHUNK):
                chunk = frame_ids[start:start + FILE_QUERY_CHUNK]
                pairs.update(session.execute(select(Frame.night_id, Frame.number).where(
                    Frame.id.in_(chunk), Frame.number.is_not(None))).all())
            if not pairs:
                return {}
            from obsdb.catalog.writes import mark_shared_numbers

            mark_shared_numbers(session, sorted({night for night, _ in pairs}))
            clashes = set(session.execute(
                select(Frame.night_id, Frame.number).where(Frame.number.is_not(None))
                .group_by(Frame.night_id, Frame.number).having(func.count() > 1)).all()) & pairs
            out: dict[tuple[str, int], list[str]] = {}
            if clashes:
                for night, number, path in session.execute(
                        select(Night.name, Frame.number, Frame.path).join(Night, Night.id == Frame.night_id)
                        .where(tuple_(Frame.night_id, Frame.number).in_(sorted(clashes)))):
                    out.setdefault((night, number), []).append(path)
            return out

    def written_outputs(self, paths: list[str]) -> dict[str, set[str]]:
        """The SHA-256 digests obsdb recorded for each of ``paths`` it wrote (ingest leaves them out)."""
        return self.db.read(written_outputs, paths)


def frame_streaks(session, frame_ids: Iterable[int]) -> list[dict]:
    """The streaks of frames that were searched for them (``n_streaks`` not NULL): one dict per frame
    with ``id``, ``width``, ``height``, ``n_streaks`` and ``streaks`` (dicts of the ``streak`` rows)."""
    from sqlalchemy import select

    from obsdb.catalog.models import Frame, FrameMetrics, Streak

    ids = list(frame_ids)
    out: dict[int, dict] = {}
    for start in range(0, len(ids), FILE_QUERY_CHUNK):
        chunk = ids[start:start + FILE_QUERY_CHUNK]
        for fid, width, height, n in session.execute(
                select(Frame.id, Frame.width, Frame.height, FrameMetrics.n_streaks)
                .join(FrameMetrics, FrameMetrics.frame_id == Frame.id)
                .where(Frame.id.in_(chunk), FrameMetrics.n_streaks.is_not(None))):
            out[fid] = {"id": fid, "width": width, "height": height, "n_streaks": n, "streaks": []}
        for row in session.scalars(select(Streak).where(Streak.frame_id.in_(chunk)).order_by(Streak.id)):
            if row.frame_id in out:
                out[row.frame_id]["streaks"].append(
                    {"x0": row.x0, "y0": row.y0, "x1": row.x1, "y1": row.y1, "width": row.width,
                     "significance": row.significance, "algorithm": row.algorithm})
    return [out[i] for i in ids if i in out]


def written_outputs(session, paths: list[str]) -> dict[str, set[str]]:
    """The SHA-256 digests obsdb recorded for each of ``paths`` it wrote (render outputs, previews).

    A path missing from the answer is no file obsdb wrote.
    """
    from sqlalchemy import select

    from obsdb.catalog.models import RenderOutput

    found: dict[str, set[str]] = {}
    keys = sorted(set(paths))
    for start in range(0, len(keys), FILE_QUERY_CHUNK):  # bounded IN lists
        for path, digest in session.execute(select(RenderOutput.path, RenderOutput.sha256)
                                            .where(RenderOutput.path.in_(keys[start:start + FILE_QUERY_CHUNK]))):
            found.setdefault(path, set()).add(digest)
    return found


class QualityStore(EventLog):
    """QA's storage: frames to measure and judge, their metrics, and the automatic tags QA sets."""

    def frames_needing_metrics(self, *, nights=None, band: str | None = None,
                               recompute: bool = False) -> dict[str, int]:
        """Readable light frames without metrics or a current star list (all of them with
        ``recompute``), as ``{path: frame id}``."""
        from sqlalchemy import or_, select

        from obsdb.catalog.models import Frame, FrameMetrics, StarList
        from obsdb.imaging.header import LIGHT_IMAGE_TYPES
        from obsdb.catalog.selectors import night_ids
        from obsdb.imaging.stars import STARS_VERSION

        with self.db.session() as session:
            scope = night_ids(session, nights)
            query = (select(Frame.path, Frame.id).outerjoin(FrameMetrics, FrameMetrics.frame_id == Frame.id)
                     .outerjoin(StarList, StarList.frame_id == Frame.id)
                     .where(Frame.readable.is_(True), Frame.image_type.in_(LIGHT_IMAGE_TYPES)))
            if scope is not None:
                query = query.where(Frame.night_id.in_(scope))
            if band:
                query = query.where(Frame.band == band)
            if not recompute:
                query = query.where(or_(FrameMetrics.frame_id.is_(None), StarList.frame_id.is_(None),
                                        StarList.algorithm != STARS_VERSION))
            return dict(session.execute(query).all())

    def store_quality(self, batch) -> None:
        """Store metrics and star lists measured after ingest: ``[(frame id, Measurement), ...]``."""
        from obsdb.catalog.writes import write_quality

        with self.db.session() as session:
            for frame_id, m in batch:
                write_quality(session, frame_id, m.metrics, m.stars, m.n_stars_stored, getattr(m, "streaks", None))
    def frame_streaks(self, frame_ids: Iterable[int]) -> list[dict]:
        """The streaks of frames searched for them (:func:`frame_streaks`)."""
        return self.db.read(frame_streaks, frame_ids)

    def qa_frames(self, *, nights=None, band: str | None = None, instrument: str | None = None,
                  stars: bool = True) -> list:
        """Readable light frames with metrics, as :class:`obsdb.catalog.records.QaFrame` with their star
        lists (``stars=False``: without them, for the instrument's history); ``instrument`` is its key."""
        from sqlalchemy import func, select

        from obsdb.catalog.models import Frame, FrameMetrics, FrameStats, Instrument, Night, StarList
        from obsdb.imaging.header import LIGHT_IMAGE_TYPES
        from obsdb.catalog.records import QaFrame
        from obsdb.catalog.selectors import frame_label, night_ids
        from obsdb.imaging.stars import decode_stars

        with self.db.session() as session:
            scope = night_ids(session, nights)
            qualified = session.scalar(select(func.count(Night.id))) > 1
            star_data = StarList.data if stars else StarList.n_stars
            query = (select(Frame, Night, Instrument.key, FrameStats.background, FrameStats.saturation,
                            FrameMetrics, star_data)
                     .join(Night, Night.id == Frame.night_id)
                     .join(FrameMetrics, FrameMetrics.frame_id == Frame.id)
                     .outerjoin(FrameStats, FrameStats.frame_id == Frame.id)
                     .outerjoin(Instrument, Instrument.id == Frame.instrument_id)
                     .outerjoin(StarList, StarList.frame_id == Frame.id)
                     .where(Frame.readable.is_(True), Frame.image_type.in_(LIGHT_IMAGE_TYPES))
                     .order_by(Night.name, Frame.number, Frame.path))
            if scope is not None:
                query = query.where(Frame.night_id.in_(scope))
            if band:
                query = query.where(Frame.band == band)
            if instrument is not None:
                query = query.where(Instrument.key == instrument)
            frames = []
            for frame, night, instrument_key, bkg, saturation, m, data in session.execute(query):
                site = None
                if night.latitude is not None and night.longitude is not None:
                    site = (night.latitude, night.longitude, night.elevation or 0.0)
                frames.append(QaFrame(
                    id=frame.id, label=frame_label(night.name, frame.number, frame.file_name, qualified=qualified),
                    night=night.name, instrument=instrument_key, band=frame.band, object=frame.object,
                    exptime=frame.exptime, background=bkg if bkg is not None else m.background,
                    n_stars=m.n_stars, fwhm=m.fwhm, hfd=m.hfd, elongation=m.elongation,
                    stars=decode_stars(data) if stars and data is not None else None,
                    date_obs=frame.date_obs, airmass=frame.airmass, header=frame.header, site=site,
                    saturation=saturation, shape=(frame.height, frame.width), n_streaks=m.n_streaks,
                    assessed=m.assessed_at is not None))
            return frames

    def apply_qa(self, transparencies, wanted: dict[tuple[int, str], str], *, names, author: str,
                 retract_reason: str, evidence: dict | None = None):
        """Store QA's results in one transaction: each frame's transparency and its reference, the
        time it was judged, and the automatic tags ``names`` on exactly these frames made equal to
        ``wanted`` (see :func:`obsdb.catalog.tags.sync_rule_tags`).

        Parameters
        ----------
        transparencies : list of (frame id, transparency or None, reference frame id or None)

        Returns
        -------
        TagSummary
            ``added``, ``retracted`` as (frame id, tag, reason) lists.
        """
        from sqlalchemy import update

        from obsdb.catalog.models import FrameMetrics, utcnow
        from obsdb.catalog.tags import TagSummary, sync_rule_tags

        if not transparencies:
            return TagSummary()
        now = utcnow()
        with self.db.session() as session:
            session.execute(update(FrameMetrics), [
                {"frame_id": frame_id, "transparency": value, "transparency_reference_id": reference,
                 "assessed_at": now} for frame_id, value, reference in transparencies])
            change = sync_rule_tags(session, [t[0] for t in transparencies], wanted, names=names, author=author,
                                    retract_reason=retract_reason, evidence=evidence)
            return change.summary()

class CalibrationStore(EventLog):
    """The calibration checks' storage: bias, dark and flat frames and the tags the checks set."""

    def calibration_frames(self, *, nights=None) -> list[dict]:
        """Readable bias, dark and flat frames with their statistics
        (:func:`obsdb.catalog.calibration.calibration_records`)."""
        from obsdb.catalog.calibration import calibration_records

        with self.db.session() as session:
            return calibration_records(session, nights=nights)

    def apply_calibration_tags(self, frame_ids: list[int], wanted: dict, evidence: dict, *, names, author: str,
                               retract_reason: str):
        """The calibration checks' tags, in one transaction
        (:func:`obsdb.catalog.calibration.apply_calibration_tags`); returns a TagSummary."""
        from obsdb.catalog.calibration import apply_calibration_tags

        with self.db.session() as session:
            return apply_calibration_tags(session, frame_ids, wanted, evidence, names=names, author=author,
                                          retract_reason=retract_reason)

class AlignStore(EventLog):
    """Align's and ``group auto``'s storage: frames with their star lists, decisions, runs and groups."""

    def align_frames(self, *, nights=None, band: str | None = None, status: str = "accepted",
                     where: str | None = None, selector: str | None = None) -> list:
        """Readable light frames to align, as :class:`obsdb.catalog.records.AlignFrame` with their
        stored star lists (``stars`` None when missing or of an older detection version).

        ``selector`` names frames instead of the filters (one reference, say).
        """
        from sqlalchemy import select

        from obsdb.catalog.models import Frame, FrameMetrics, Night, StarList
        from obsdb.catalog.queries import _base_query, frame_filter
        from obsdb.catalog.records import FrameFilter
        from obsdb.catalog.selectors import night_ids, select_frames

        with self.db.session() as session:
            if selector is not None:
                ids = [f.id for f in select_frames(session, selector, nights=nights, readable_only=True)]
                condition = Frame.id.in_(ids)
            else:
                scope = night_ids(session, nights)
                condition = frame_filter(FrameFilter(band=band, status=status, where=where, include_unreadable=False,
                                                     light_only=True, retry_unregistered=True),
                                         night_scope=scope, session=session)
            chosen = _base_query(condition).subquery()
            return self._align_records(session, select(Frame, Night.name, FrameMetrics, StarList)
                                       .join(chosen, chosen.c.id == Frame.id)
                                       .join(Night, Night.id == Frame.night_id)
                                       .outerjoin(FrameMetrics, FrameMetrics.frame_id == Frame.id)
                                       .outerjoin(StarList, StarList.frame_id == Frame.id)
                                       .order_by(Night.name, Frame.number, Frame.path))

    def _align_records(self, session, query) -> list:
        from sqlalchemy import func, select

        from obsdb.catalog.models import Night
        from obsdb.catalog.records import AlignFrame
        from obsdb.catalog.selectors import frame_label
        from obsdb.imaging.stars import STARS_VERSION, decode_stars

        qualified = session.scalar(select(func.count(Night.id))) > 1
        out = []
        for frame, night, metrics, star_list in session.execute(query):
            current = star_list is not None and star_list.algorithm == STARS_VERSION
            out.append(AlignFrame(
                id=frame.id, label=frame_label(night, frame.number, frame.file_name, qualified=qualified,
                                               shared=frame.number_shared),
                night_id=frame.night_id, night=night, path=frame.path, file_name=frame.file_name,
                number=frame.number, object=frame.object, width=frame.width, height=frame.height,
                sha256=frame.sha256, band=frame.band, date_obs=frame.date_obs,
                n_stars=metrics.n_stars if metrics else None,
                fwhm=metrics.fwhm if metrics else None,
                stars=decode_stars(star_list.data) if current else None))
        return out

    def matched_stars(self, frame_id: int, run_id: int | None = None) -> list[tuple[float, float, float, float]]:
        """The star pairs an automatic run matched for a frame, as (x, y, x_reference, y_reference):
        read from the run's centroid rows and the two stored star lists they point into
        (default run: the frame's current one)."""
        from sqlalchemy import select

        from obsdb.catalog.models import AlignmentRun, Centroid, StarList
        from obsdb.imaging.stars import decode_stars

        with self.db.session() as session:
            if run_id is None:
                from obsdb.catalog.runs import current_run_of

                run_id = current_run_of(session, frame_id)
            run = session.get(AlignmentRun, run_id) if run_id is not None else None
            if run is None:
                return []
            lists = {s.frame_id: decode_stars(s.data) for s in session.scalars(
                select(StarList).where(StarList.frame_id.in_([frame_id, run.reference_frame_id])))}
            if frame_id not in lists or run.reference_frame_id not in lists:
                return []
            stars, ref = lists[frame_id], lists[run.reference_frame_id]
            return [(float(stars["x"][i]), float(stars["y"][i]), float(ref["x"][j]), float(ref["y"][j]))
                    for i, j in session.execute(select(Centroid.star_index, Centroid.reference_star_index).where(
                        Centroid.frame_id == frame_id, Centroid.run_id == run_id,
                        Centroid.star_index.is_not(None)))]

    def decided_reference(self, night_id: int) -> int | None:
        """The frame id of a night's current ``reference_frame`` decision (a plan's, group auto's)."""
        from obsdb.catalog.decisions import get_decision

        with self.db.session() as session:
            decided = get_decision(session, "reference_frame", night_id=night_id)
            return decided.frame_id if decided is not None else None

    def store_star_lists(self, lists: dict[int, tuple[bytes, int]]) -> None:
        """Store star lists detected by align for frames whose list was missing or stale."""
        from obsdb.catalog.models import Frame, StarList, utcnow
        from obsdb.imaging.stars import STARS_VERSION

        with self.db.session() as session:
            for frame_id, (data, n) in lists.items():
                frame = session.get(Frame, frame_id)
                frame.star_list = StarList(n_stars=n, data=data, algorithm=STARS_VERSION, measured_at=utcnow())

    def record_auto_run(self, *, reference, frames: dict, outcomes: list[dict], parameters: dict,
                        night_id: int | None, target, author: str) -> int:
        """Write one automatic alignment run in one transaction: the run, a shift step per registered
        frame, a centroid row per matched star pair (pointing into both star lists), ``unregistered``
        tags with the reason for the others (retracted on frames now registered), and an event.

        Returns the run id.
        """
        from sqlalchemy import insert

        from obsdb.version import __version__
        from obsdb.catalog.models import AlignmentRun, Centroid, ShiftStep
        from obsdb.imaging.register import REGISTER_VERSION

        with self.db.session() as session:
            run = AlignmentRun(method="auto", reference_frame_id=reference.id, parameters=parameters,
                               night_id=night_id, target=target, software_version=__version__,
                               algorithm=REGISTER_VERSION, author=author)
            session.add(run)
            session.flush()
            steps, centroids, failed, registered = [], [], [], []
            for outcome in outcomes:
                frame = frames[outcome["frame_id"]]
                if not outcome["ok"]:
                    failed.append((frame.id, outcome["reason"] or "registration failed"))
                    continue
                is_reference = frame.id == reference.id
                registered.append(frame.id)
                steps.append({
                    "run_id": run.id, "frame_id": frame.id, "stage": 1, "kind": "auto",
                    "method": "reference" if is_reference else outcome["method"],
                    "dx": 0.0 if is_reference else outcome["dx"], "dy": 0.0 if is_reference else outcome["dy"],
                    "rotation_deg": 0.0 if is_reference else outcome["rotation_deg"],
                    "scale": 1.0 if is_reference else outcome["scale"], "reference_frame_id": reference.id,
                    "n_matched": outcome["n_matched"], "residual_rms": outcome["residual_rms"],
                    "frame_sha256": frame.sha256,
                    "parameters": {"model": outcome["model"], "quality": outcome["quality"], "cx": outcome["cx"],
                                   "cy": outcome["cy"], "note": outcome["reason"] or None,
                                   "pixels_read": outcome.get("pixels_read", False),
                                   "verification": outcome.get("verification")}})
                centroids.extend({"frame_id": frame.id, "run_id": run.id, "source": "detection",
                                  "method": "windowed", "star_index": int(i), "reference_star_index": int(j)}
                                 for i, j in outcome.get("pairs", ()))
                if len(centroids) >= CENTROID_BATCH:
                    session.execute(insert(Centroid), centroids)
                    centroids = []
            if steps:
                session.execute(insert(ShiftStep), steps)
            if centroids:
                session.execute(insert(Centroid), centroids)
            from obsdb.catalog.alignment import record_unregistered

            record_unregistered(session, run, failed, registered, author)
            return run.id

    def staged_inputs(self, night=None) -> dict:
        """One night's decisions and pointing groups for the staged method (see
        :func:`obsdb.catalog.alignment.staged_inputs`)."""
        from obsdb.catalog.alignment import staged_inputs

        return self.db.read(staged_inputs, night)

    def record_staged_run(self, **run) -> int:
        """Write a staged run in one transaction (see :func:`obsdb.catalog.alignment.record_staged_run`)."""
        from obsdb.catalog.alignment import record_staged_run

        with self.db.session() as session:
            return record_staged_run(session, **run)

    def store_auto_groups(self, *, reference_id: int, star: tuple[float, float], groups: list[dict],
                          fine_box: list[int], author: str, summary: str, details: dict) -> None:
        """Record ``obsdb group auto``'s decisions in one transaction: the reference frame and star,
        the groups (replacing earlier automatic groups of their frames) and the fine box."""
        from sqlalchemy import select

        from obsdb.catalog.decisions import set_decision, set_group
        from obsdb.catalog.models import Frame
        from obsdb.catalog.writes import record_event

        with self.db.session() as session:
            ref = session.get(Frame, reference_id)
            set_decision(session, "reference_frame", {"frame": ref.number, "path": ref.path}, source="auto",
                         author=author, note="obsdb group auto", frame=ref)
            set_decision(session, "reference_star", {"frame": ref.number, "path": ref.path, "x": star[0],
                                                     "y": star[1]},
                         source="auto", author=author, note="brightest isolated star visible in every frame",
                         night_id=ref.night_id)
            for group in groups:
                members = {f.id: f for f in session.scalars(select(Frame).where(Frame.id.in_(group["member_ids"])))}
                set_group(session, group["name"], [members[i] for i in group["member_ids"]], box=group["box"],
                          band=group["band"], reference=members[group["reference_id"]],
                          ref_star=group["ref_star"], source="auto", author=author)
            record_event(session, author, "group auto", summary, details=details)
            set_decision(session, "fine_box", {"box": fine_box, "method": "2dg"}, source="auto", author=author,
                         note="obsdb group auto", night_id=ref.night_id)

class RenderStore(FrameListing, EventLog):
    """Render's storage: what to resample, the frames to collect, and the ledger of the files obsdb wrote."""

    def frame_streaks(self, frame_ids: Iterable[int]) -> list[dict]:
        """The streaks of frames searched for them (:func:`frame_streaks`)."""
        return self.db.read(frame_streaks, frame_ids)

    def render_plan(self, *, run: int | None = None, status: str = "accepted", band: str | None = None,
                    where: str | None = None, nights=None) -> list[dict]:
        """The frames ``obsdb render`` resamples, each with its run's steps (:func:`queries.render_plan`)."""
        from obsdb.catalog.queries import render_plan

        return self.db.read(render_plan, run=run, status=status, band=band, where=where, nights=nights)

    def catalogued_among(self, paths: list[str]) -> set[str]:
        """Which of ``paths`` are catalogued input frames (outputs must never replace one)."""
        from obsdb.catalog.queries import catalogued_among

        return self.db.read(catalogued_among, paths)

    def written_outputs(self, paths: list[str]) -> dict[str, set[str]]:
        """The SHA-256 digests obsdb recorded for each of ``paths`` it wrote (:func:`written_outputs`)."""
        return self.db.read(written_outputs, paths)

    def record_render_intents(self, rows: list[dict]) -> None:
        """Record, before writing them, the outputs a render is about to write (one transaction).

        Each row (``kind``, ``path``, ``band``, ``frame_id``, ``run_id``) is kept with the digest
        :data:`obsdb.catalog.models.PENDING_DIGEST` until :meth:`record_render_outputs` replaces it
        with the file's digest.  A render killed in between leaves the row: the next render knows
        the file is obsdb's own, half-done work, and replaces it (see
        :func:`obsdb.pipeline.outputs.refuse_foreign`).
        """
        from obsdb.catalog.models import PENDING_DIGEST, RenderOutput

        if not rows:
            return
        with self.db.session() as session:
            session.add_all(RenderOutput(**{**row, "sha256": PENDING_DIGEST}) for row in rows)

    def record_render_outputs(self, rows: list[dict]) -> None:
        """Record written outputs (aligned frames, stacks) with their hashes, in one transaction;
        their pending intents (:meth:`record_render_intents`) are replaced."""
        from sqlalchemy import delete

        from obsdb.catalog.models import PENDING_DIGEST, RenderOutput

        if not rows:
            return
        with self.db.session() as session:
            paths = sorted({row["path"] for row in rows})
            for start in range(0, len(paths), FILE_QUERY_CHUNK):  # bounded IN lists
                session.execute(delete(RenderOutput).where(RenderOutput.path.in_(paths[start:start + FILE_QUERY_CHUNK]),
                                                           RenderOutput.sha256 == PENDING_DIGEST))
            session.add_all(RenderOutput(**row) for row in rows)
