"""``obsdb.Catalog``: the one front door to a catalog.

The CLI, the review desk, the report and notebooks all go through it::

    from obsdb import Catalog

    with Catalog.open("obsdb.sqlite", create=True) as cat:
        cat.ingest(["night1/"])
        cat.qa()
        rejected = cat.frames(band="V", status="rejected")
        rejected.to_table()          # an astropy Table with flat columns

It stands above the steps: its reads and verdicts go to the catalog's queries, and each
step (``ingest``, ``qa``, ``align``, ``render``, ...) runs the pipeline function of that
step over the one shared database handle (:class:`obsdb.catalog.db.Database`), from which
the step takes the stores it needs (:mod:`obsdb.catalog.stores`).  Nothing below this
module imports it (see docs/architecture.md).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from obsdb.catalog.records import FrameList, FrameRecord

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from obsdb.catalog.db import Database


class Catalog:
    """An open catalog.

    Use :meth:`open` rather than the constructor; close it, or use it as a context manager.

    Parameters
    ----------
    db : obsdb.catalog.db.Database
        The open database handle every step and store shares.
    """

    def __init__(self, db: "Database"):
        self.db = db
        self.url = db.url
        self.engine = db.engine

    # ------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, db: str | os.PathLike | None = None, *, create: bool = False) -> "Catalog":
        """Open the catalog at ``db`` (a path or an SQLAlchemy URL; default ``OBSDB_DB`` or ./obsdb.sqlite).

        Parameters
        ----------
        create : bool
            Create it, or upgrade it to the current schema, first (``obsdb init``).

        Raises
        ------
        obsdb.catalog.db.CatalogError
            When the catalog is missing or behind and ``create`` is False.
        """
        from obsdb.catalog.db import database_url, open_database, upgrade

        if create:
            upgrade(database_url(None if db is None else str(db)))
        return cls(open_database(None if db is None else str(db)))

    @staticmethod
    def upgrade(db: str | os.PathLike | None = None) -> tuple[str, str | None, str]:
        """Create the catalog at ``db``, or upgrade it to the current schema (``obsdb init``).

        Returns
        -------
        (url, before, after) : tuple
            The catalog's URL and its revisions before and after.
        """
        from obsdb.catalog.db import database_url, upgrade

        url = database_url(None if db is None else str(db))
        before, after = upgrade(url)
        return url, before, after

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the engine's connections."""
        self.db.close()

    @property
    def display_url(self) -> str:
        """The catalog as shown to people: a file's path, or a server URL without its password."""
        return self.db.display_url

    def __repr__(self) -> str:
        return f"Catalog({self.engine.url.render_as_string(hide_password=True)!r})"

    @contextmanager
    def session(self) -> Iterator["Session"]:
        """A session in one transaction: committed on success, rolled back on any error.

        For tests and notebooks that read the tables themselves; everything else calls methods.
        """
        with self.db.session() as session:
            yield session

    def read(self, query, *args, **kwargs):
        """Run ``query(session, *args, **kwargs)`` in a session and return its result."""
        return self.db.read(query, *args, **kwargs)

    # ------------------------------------------------------------ reading

    def frames(self, *, night=None, band: str | None = None, image_type: str | None = None,
               status: str | None = None, tag: str | None = None, where: str | None = None) -> FrameList:
        """Frames matching every filter given, as typed records.

        Parameters
        ----------
        night : str or list of str, optional
            Night name(s), or ``"all"``; default every night.
        band, image_type, status, tag : str, optional
            Exact band; light/bias/dark/flat/unknown; accepted/rejected/pending;
            an active tag.
        where : str, optional
            A ``--where`` expression, e.g. ``"fwhm > 3 and EXPTIME >= 30"``.

        Returns
        -------
        FrameList
            A list of :class:`FrameRecord`, with ``to_table()`` and ``to_pandas()``.
        """
        return FrameList(FrameRecord.from_dict(r) for r in self.iter_frame_dicts(
            night=night, band=band, image_type=image_type, status=status, tag=tag, where=where))

    def iter_frame_dicts(self, *, night=None, **filters) -> Iterator[dict]:
        """Frames in the JSON shape of ``obsdb frames --format json``, streamed (constant memory)."""
        from obsdb.catalog.queries import iter_frame_records

        with self.session() as session:
            yield from iter_frame_records(session, nights=night, **filters)

    def frame_dicts(self, **filters) -> list[dict]:
        """:meth:`iter_frame_dicts` as a list."""
        return list(self.iter_frame_dicts(**filters))

    def show(self, selector: str, *, night=None) -> list[dict]:
        """Everything known about the frames a selector names (``obsdb show``)."""
        from obsdb.catalog.details import frames_details

        return self.read(frames_details, selector, nights=night)

    def history(self, selector: str, *, night=None) -> list[dict]:
        """Every alignment run and shift step of the frames a selector names (``obsdb history``)."""
        from obsdb.catalog.details import frame_histories

        return self.read(frame_histories, selector, nights=night)

    def frame_verdicts(self, frame_id: int) -> dict | None:
        """One frame's tag history and alignment runs, named by its catalog id (None: no such frame).

        What a reviewer reads beside a frame: ``tag_history`` (every tag, retracted ones too, oldest
        first) and ``alignment`` (every run with its steps, as ``obsdb history`` gives them); the
        lighter sibling of ``obsdb show`` (no header, events or rendered files).
        """
        from sqlalchemy import select

        from obsdb.catalog.models import Frame, Tag
        from obsdb.catalog.details import frame_history, tag_dict

        with self.session() as session:
            frame = session.get(Frame, int(frame_id))
            if frame is None:
                return None
            tags = session.scalars(select(Tag).where(Tag.frame_id == frame.id).order_by(Tag.id)).all()
            return {"id": frame.id, "tag_history": [tag_dict(t) for t in tags],
                    "alignment": frame_history(session, frame)["runs"]}

    def frame_files(self, frame_ids: Iterable[int]) -> dict[int, dict]:
        """Where frames are, by catalog id: ``id``, ``path``, ``readable`` and the QA ``fwhm`` (or None).

        One indexed query, for serving a frame's cached pictures without reading its whole record.
        """
        from sqlalchemy import select

        from obsdb.catalog.models import Frame, FrameMetrics

        wanted = sorted({int(i) for i in frame_ids})
        if not wanted:
            return {}
        with self.session() as session:
            rows = session.execute(select(Frame.id, Frame.path, Frame.readable, FrameMetrics.fwhm)
                                   .outerjoin(FrameMetrics, FrameMetrics.frame_id == Frame.id)
                                   .where(Frame.id.in_(wanted))).all()
        return {i: {"id": i, "path": path, "readable": bool(readable), "metrics": {"fwhm": fwhm}}
                for i, path, readable, fwhm in rows}

    def stored_stars(self, frame_id: int, *, limit: int | None = None) -> list[tuple]:
        """A frame's stored star list (measured at ingest), brightest first, as (x, y, flux, fwhm, flag).

        Empty when the frame has no star list (not measured, or measured by an older algorithm that
        stored none).  Coordinates are 0-based pixels (x = column).
        """
        from sqlalchemy import select

        from obsdb.catalog.models import StarList
        from obsdb.imaging.stars import decode_stars

        with self.session() as session:
            data = session.scalar(select(StarList.data).where(StarList.frame_id == frame_id))
        if data is None:
            return []
        stars = decode_stars(data)[:limit]
        return [(float(s["x"]), float(s["y"]), float(s["flux"]), float(s["fwhm"]), int(s["flag"])) for s in stars]

    def run_references(self, run_ids: Iterable[int]) -> dict[int, int | None]:
        """The reference frame id of each alignment run named (runs that do not exist are left out)."""
        from sqlalchemy import select

        from obsdb.catalog.models import AlignmentRun

        wanted = sorted(set(run_ids))
        if not wanted:
            return {}
        with self.session() as session:
            return dict(session.execute(select(AlignmentRun.id, AlignmentRun.reference_frame_id)
                                        .where(AlignmentRun.id.in_(wanted))).all())

    def qa_events(self, nights: Iterable[str] | None = None) -> list[dict]:
        """The QA runs that judged these nights (default all), newest first, with the thresholds they used."""
        from obsdb.catalog.summaries import qa_threshold_events

        return self.read(qa_threshold_events, None if nights is None else set(nights))

    def archive_quality(self) -> list[dict]:
        """Median FWHM and sky background of the light frames per night, instrument and band (the archive view)."""
        from obsdb.catalog.summaries import archive_quality

        return self.read(archive_quality)

    def region_facts(self, selector: str, *, nights=None) -> dict:
        """One frame's group box and current run's centroids, for a ds9 region file (``obsdb regions``)."""
        from obsdb.catalog.details import region_facts

        return self.read(region_facts, selector, nights=nights)

    def report_facts(self, *, nights=None) -> dict:
        """Frames, runs, per-run shifts and stacks for ``obsdb report``, read in one transaction."""
        from obsdb.catalog.report_queries import report_facts

        return self.read(report_facts, nights=nights)

    def report_details(self, *, nights=None) -> dict:
        """Nights, instruments, per-frame extras, tag and shift histories and QA thresholds for ``obsdb report``."""
        from obsdb.catalog.report_queries import report_details

        return self.read(report_details, nights=nights)

    def nights(self) -> list[dict]:
        """Every night with frames, bands, targets, instruments, status counts and median FWHM."""
        from obsdb.catalog.summaries import night_summaries

        return self.read(night_summaries)

    def rebuild_summaries(self) -> dict:
        """Recompute every frame's status and every night's summary rows (``obsdb doctor
        --rebuild-summaries``), in one transaction; see :func:`obsdb.catalog.maintained.rebuild`."""
        from obsdb.catalog.maintained import rebuild

        with self.db.session() as session:
            return rebuild(session)

    def known_values(self) -> dict[str, list[str]]:
        """The bands and active tag names in the catalog (``{"bands": [...], "tags": [...]}``)."""
        from obsdb.catalog.summaries import known_values

        return self.read(known_values)

    def summary(self, *, night=None) -> list[dict]:
        """Frames per band and type with status counts (``obsdb summary``)."""
        from obsdb.catalog.summaries import band_summary

        return self.read(band_summary, nights=night)

    def log(self, *, limit: int = 50, command: str | None = None, night=None) -> list[dict]:
        """The newest events, newest first (``obsdb log``)."""
        from obsdb.catalog.details import event_log

        return self.read(event_log, limit=limit, command=command, nights=night)

    def night_names(self) -> list[str]:
        """Names of the catalog's nights, oldest first."""
        from sqlalchemy import select

        from obsdb.catalog.models import Night

        with self.session() as session:
            return list(session.scalars(select(Night.name).order_by(Night.name)))

    def groups(self) -> list[dict]:
        """Pointing groups with their members, boxes and reference-star positions (``obsdb groups``)."""
        from obsdb.catalog.decisions import list_groups

        return self.read(list_groups)

    def frame_streaks(self, frame_ids: Iterable[int]) -> list[dict]:
        """The satellite streaks of frames searched for them (see :func:`obsdb.catalog.stores.frame_streaks`)."""
        from obsdb.catalog.stores import frame_streaks

        return self.read(frame_streaks, frame_ids)

    def matched_stars(self, frame_id: int, run_id: int | None = None) -> list[tuple[float, float, float, float]]:
        """The star pairs an automatic run matched for a frame, as (x, y, x_reference, y_reference)
        (default run: the frame's current one; see :meth:`obsdb.catalog.stores.AlignStore.matched_stars`)."""
        from obsdb.catalog.stores import AlignStore

        return AlignStore(self.db).matched_stars(frame_id, run_id)

    def masters(self, *, nights=None) -> list[dict]:
        """The library of master calibration frames (``obsdb masters``)."""
        from obsdb.catalog.masters import MasterStore

        return MasterStore(self.db).masters(nights=nights)

    def calibration_coverage(self, *, nights=None) -> list[dict]:
        """Per night and band: lights, and how many have no bias, dark or flat (``obsdb masters``)."""
        from obsdb.catalog.masters import MasterStore

        return MasterStore(self.db).coverage(nights=nights)

    def mark_masters_bad(self, master_ids: Iterable[int], reason: str, *, author: str) -> int:
        """Mark masters bad (never matched to a light again), logged; returns how many changed.

        Raises
        ------
        ObsdbError
            When an id names no master.
        """
        from obsdb.catalog.masters import MasterStore
        from obsdb.catalog.stores import EventLog
        from obsdb.errors import ObsdbError

        store = MasterStore(self.db)
        wanted = sorted(set(master_ids))
        missing = sorted(set(wanted) - {m["id"] for m in store.masters()})
        if missing:
            raise ObsdbError(f"--mark-bad {missing[0]}: no such master (obsdb masters lists them)")
        changed = store.mark_bad(wanted, reason, by=author)
        EventLog(self.db).record_event(author, "masters", f"{changed} masters marked bad: {reason}",
                                       details={"masters": wanted})
        return changed

    # ------------------------------------------------------------ verdicts

    def tag(self, selector: str, tag: str, *, reason: str, author: str | None = None, night=None,
            free_text: bool = False):
        """Tag the frames a selector names (``obsdb tag``); returns the frames and what changed.

        A tag that is a near miss of a known one (``tracking-slite``) is refused
        unless ``free_text`` is true.
        """
        from obsdb.catalog.manual import tag_frames

        return tag_frames(self.db, selector, tag, reason=reason, author=author, nights=night, free_text=free_text)

    def untag(self, selector: str, tag: str, *, reason: str, author: str | None = None, night=None):
        """Retract a tag on the frames a selector names (``obsdb untag``)."""
        from obsdb.catalog.manual import untag_frames

        return untag_frames(self.db, selector, tag, reason=reason, author=author, nights=night)

    def define_group(self, name: str, selector: str, *, box: str | None = None, reference: int | None = None,
                     ref_star: str | None = None, author: str | None = None, nights=None):
        """Create or redefine a pointing group by hand (``obsdb group set``)."""
        from obsdb.catalog.manual import define_group

        return define_group(self.db, name, selector, box=box, reference=reference, ref_star=ref_star,
                            author=author, nights=nights)

    def apply_plan(self, plan, *, user: str | None = None, night=None):
        """Record a parsed plan's decisions in one transaction (``obsdb apply``); see
        :func:`obsdb.pipeline.plan.load_plan`."""
        from obsdb.catalog.manual import apply_plan

        return apply_plan(self.db, plan, user=user, night=night)

    # ------------------------------------------------------------ steps

    def ingest(self, paths: Iterable[str | os.PathLike], **options):
        """Ingest FITS files and folders (``obsdb ingest``); see :func:`obsdb.pipeline.ingest.ingest`."""
        from obsdb.pipeline.ingest import ingest

        return ingest(self.db, [Path(p) for p in paths], **options)

    def qa(self, **options):
        """Judge frames by the QA rules (``obsdb qa``); see :func:`obsdb.pipeline.qa.run_qa`."""
        from obsdb.pipeline.qa import run_qa

        return run_qa(self.db, **options)

    def calibrate(self, out: str | os.PathLike, **options):
        """Build master calibration frames and match them to the lights (``obsdb calibrate``); see
        :func:`obsdb.pipeline.calibrate.calibrate`."""
        from obsdb.pipeline.calibrate import calibrate

        return calibrate(self.db, out, **options)

    def auto_groups(self, **options):
        """Group frames by pointing, with a box for the staged method (``obsdb group auto``); see
        :func:`obsdb.pipeline.groups.auto_groups`."""
        from obsdb.pipeline.groups import auto_groups

        return auto_groups(self.db, **options)

    def align(self, **options):
        """Align frames, one automatic run per target and night (``obsdb align``); see
        :func:`obsdb.pipeline.align.align_each_target`."""
        from obsdb.pipeline.align import align_each_target

        return align_each_target(self.db, **options)

    def align_staged(self, **options):
        """Align by the notebook's three stages from groups, boxes and decisions (``obsdb align --method
        staged``); see :func:`obsdb.pipeline.align.align_staged`."""
        from obsdb.pipeline.align import align_staged

        return align_staged(self.db, **options)

    def render(self, out_dir: str | os.PathLike, **options):
        """Write aligned frames and per-band stacks (``obsdb render``); see :func:`obsdb.pipeline.render.render`."""
        from obsdb.pipeline.render import render

        return render(self.db, out_dir, **options)

    def collect(self, out_dir: str | os.PathLike, **options):
        """Copy or hard-link the selected input frames into a folder (``obsdb collect``); see
        :func:`obsdb.pipeline.render.collect`."""
        from obsdb.pipeline.render import collect

        return collect(self.db, out_dir, **options)

    def regions(self, selector: str, out: str | os.PathLike | None = None, *, nights=None):
        """Write a ds9 region file of one frame's boxes and matched stars (``obsdb regions``); see
        :func:`obsdb.pipeline.regions.write_regions`."""
        from obsdb.pipeline.regions import write_regions

        return write_regions(self.region_facts(selector, nights=nights), out)

    def report(self, out_dir: str | os.PathLike, **options):
        """Write the static HTML report (``obsdb report``); see :func:`obsdb.report.build.build_report`."""
        from obsdb.report.build import build_report

        return build_report(self, out_dir, **options)

    @classmethod
    def run(cls, folder: str | os.PathLike, out: str | os.PathLike, *, db: str | None = None, step=None,
            **options):
        """Process a folder of frames end to end into ``out`` (``obsdb run``): init, ingest, qa, align,
        group, render, stack, report.

        Parameters
        ----------
        db : str, optional
            Catalog path or URL (default: ``out/obsdb.sqlite``; never ``OBSDB_DB``).
        step : callable, optional
            Called with the name of each step as it starts (``init`` first).
        **options
            As :func:`obsdb.pipeline.run.run_night` takes them.

        Returns
        -------
        obsdb.pipeline.run.RunSummary
        """
        from obsdb.pipeline.run import run_night

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        db = db or str(out / "obsdb.sqlite")
        if step is not None:
            step("init")
        new = "://" not in db and not Path(db).expanduser().exists()
        with cls.open(db, create=True) as catalog:
            return run_night(catalog, folder, out, new=new, step=step, **options)
