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

from obsdb.catalog.records import FrameFilter, FrameList, FrameRecord  # noqa: F401  (FrameRecord: the docs)
from obsdb.catalog.stores import FrameListing

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from obsdb.catalog.db import Database


class Catalog(FrameListing):
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

    def frames(self, selection: FrameFilter | None = None, *, night=None, band: str | None = None,
               image_type: str | None = None, status: str | None = None, tag: str | None = None,
               where: str | None = None) -> FrameList:
        """Frames matching every filter given, as typed records.

        Parameters
        ----------
        selection : FrameFilter, optional
            The filters as one value; the keyword filters, when given, are laid over it.
        night : str or list of str, optional
            Night name(s), or ``"all"``; default every night.
        band, image_type, status, tag : str, optional
            A band (whatever its case; ``=r`` for exactly ``r``); light/bias/dark/flat/unknown;
            accepted/rejected/pending; an active tag.
        where : str, optional
            A ``--where`` expression, e.g. ``"fwhm > 3 and EXPTIME >= 30"``.

        Returns
        -------
        FrameList
            A list of :class:`FrameRecord`, with ``to_table()`` and ``to_pandas()``.

        Examples
        --------
        >>> catalog.frames(FrameFilter(band="V", status="rejected"))  # doctest: +SKIP
        >>> catalog.frames(band="V", where="fwhm > 3")  # doctest: +SKIP
        """
        given = {name: value for name, value in (("nights", night), ("band", band), ("image_type", image_type),
                                                  ("status", status), ("tag", tag), ("where", where))
                 if value is not None}
        return FrameList(self.iter_frames(FrameFilter.of(selection, **given)))

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

    # -- the archive over nights: weights, integration per target, trends (obsdb.catalog.archive_stats) --

    def define_weight(self, name: str, expression: str, *, author: str | None = None) -> dict:
        """Define (or redefine) a weight by name (``obsdb weight define``); see
        :meth:`obsdb.catalog.weights.WeightStore.define`."""
        from obsdb.catalog.weights import WeightStore
        from obsdb.config import login_name

        return WeightStore(self.db).define(name, expression, author=author or login_name())

    def weight_definitions(self) -> list[dict]:
        """The weights defined by name (``obsdb weight list``)."""
        from obsdb.catalog.weights import WeightStore

        return WeightStore(self.db).definitions()

    def weight_definition(self, name: str) -> dict:
        """One weight defined by name; ObsdbError naming the defined ones when there is none."""
        from obsdb.catalog.weights import WeightStore

        return WeightStore(self.db).definition(name)

    def weight_values(self, name: str, *, night=None, band: str | None = None) -> list[dict]:
        """A weight's value on each light frame with stored weights, evaluated per set of frames weighed
        together (night, instrument, band, target), as ``obsdb weight show`` lists them."""
        from obsdb.catalog.weights import WeightStore

        store = WeightStore(self.db)
        store.expression_of(name)
        records = [r for r in self.iter_frame_dicts(night=night, band=band, light_only=True) if r.get("weights")]
        sets: dict[tuple, list[dict]] = {}
        for r in records:
            sets.setdefault((r["night"], r["instrument"], r["band"], r["object"]), []).append(r)
        out = []
        for members in sets.values():
            values = store.values(name, [r["id"] for r in members])
            out.extend({"label": r["label"], "night": r["night"], "band": r["band"], "object": r["object"],
                        "status": r["status"], "weight": values.get(r["id"])} for r in members)
        return out

    def weigh(self, *, night=None) -> int:
        """Compute every frame's weights again (QA does it at its end); returns how many frames."""
        from obsdb.pipeline.weights import compute_weights

        return compute_weights(self.db, nights=night)

    def add_alias(self, alias: str, target: str, *, author: str | None = None) -> dict:
        """Count frames whose OBJECT is ``alias`` as ``target`` in the integration totals (``obsdb alias add``)."""
        from obsdb.catalog.archive_stats import add_alias
        from obsdb.config import login_name

        with self.session() as session:
            return add_alias(session, alias, target, author=author or login_name())

    def remove_alias(self, alias: str, *, author: str | None = None) -> bool:
        """Remove an alias (``obsdb alias remove``); False when there was none."""
        from obsdb.catalog.archive_stats import remove_alias
        from obsdb.config import login_name

        with self.session() as session:
            return remove_alias(session, alias, author=author or login_name())

    def aliases(self) -> list[dict]:
        """The user's target aliases (``obsdb alias list``)."""
        from obsdb.catalog.archive_stats import aliases

        return self.read(aliases)

    def targets(self, *, night=None, per_night: bool = True) -> list[dict]:
        """Light frames and hours per target, filter and night (``obsdb targets``); see
        :func:`obsdb.catalog.archive_stats.target_integration`."""
        from obsdb.catalog.archive_stats import target_integration

        return self.read(target_integration, nights=night, per_night=per_night)

    def trends(self, *, night=None) -> dict:
        """Per instrument, filter and night: median FWHM (and in arcsec when the pixel scale is known),
        background, transparency and acceptance, with unusual nights flagged (``obsdb trends``); see
        :func:`obsdb.catalog.archive_stats.trend_rows`."""
        from obsdb.catalog.archive_stats import instrument_headers, trend_rows
        from obsdb.present.facts import header_scale

        found = self.read(trend_rows, nights=night)
        scales = {key: header_scale(header, pixel_size) for key, (header, pixel_size)
                  in self.read(instrument_headers).items()}
        for row in found["rows"]:
            scale = scales.get(row["instrument"])
            row["scale"] = round(scale, 4) if scale else None
            row["fwhm_arcsec"] = round(row["fwhm"] * scale, 3) if scale and row["fwhm"] is not None else None
        return found

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

    def known_values(self, kinds=("bands", "tags")) -> dict[str, list[str]]:
        """The bands and active tag names in the catalog (``{"bands": [...], "tags": [...]}``); ``kinds``:
        only these of the two (only they are read)."""
        from obsdb.catalog.summaries import known_values

        return self.read(known_values, kinds)

    def summary(self, *, night=None) -> list[dict]:
        """Frames per band and type with status counts (``obsdb summary``)."""
        from obsdb.catalog.summaries import band_summary

        return self.read(band_summary, nights=night)

    def rejected_reasons(self, *, night=None, band: str | None = None) -> list[dict]:
        """The rejected frames with their active tags, in listing order (``obsdb rejected``): each
        ``{"label", "band", "type", "error", "tags": [{"name", "source", "author", "created_at",
        "reason"}]}``.  :meth:`frames` with ``status="rejected"`` gives the whole records."""
        from obsdb.catalog.summaries import rejected_reasons

        return self.read(rejected_reasons, nights=night, band=band)

    def rejected_reason_rows(self, *, night=None, band: str | None = None) -> list[tuple]:
        """The reasons of :meth:`rejected_reasons` as flat rows, one per active tag, a frame's rows
        together: ``(frame id, label, band, type, error, tag, source, author, created_at, reason)``
        (:data:`obsdb.catalog.readers.REJECTED_REASON_FIELDS`; the tag's five None for a frame
        without one, an unreadable file).  What a table of an archive's 100,000 reasons is drawn
        from, without a dict per frame and per tag."""
        from obsdb.catalog.summaries import rejected_reason_rows

        return self.read(rejected_reason_rows, nights=night, band=band)

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

    # ------------------------------------------------------------ photometry

    def photometry(self, *, night=None, band: str | None = None, frames: Iterable[int] | None = None):
        """Aperture photometry rows (one per frame and star) as an astropy Table with units.

        Columns: night, frame, frame_id, band, mjd_utc (MJD, UTC, mid-exposure), airmass, star_index, source
        (id, -1 when not identified), x, y (frame pixels), flux, flux_err, sky (ADU), mag, mag_err
        (instrumental, per second), zero_point, flags, radius (px), radius_rule, gain (e-/ADU),
        gain_source, algorithm.
        """
        from obsdb.catalog.photometry import photometry_rows

        rows = self.read(photometry_rows, nights=night, band=band, frame_ids=frames)
        return _table(rows, ("night", "frame", "frame_id", "band", "mjd_utc", "airmass", "star_index", "source", "x",
                             "y", "flux", "flux_err", "sky", "mag", "mag_err", "zero_point", "flags", "radius",
                             "radius_rule", "gain", "gain_source", "algorithm"))

    def sources(self, *, night=None, band: str | None = None):
        """The identified sources as an astropy Table with units: id, night, reference, x, y (reference
        pixels), ra, dec (deg; NaN without a WCS), n_frames, and per band ``mag_B``, ``mag_err_B``,
        ``chi2_B``, ``variable_B`` (instrumental magnitudes on the band's ensemble scale)."""
        from obsdb.catalog.photometry import source_rows

        rows = self.read(source_rows, nights=night, band=band)
        bands = sorted({b for row in rows for b in row["bands"]})
        flat = []
        for row in rows:
            item = {k: row[k] for k in ("id", "night", "reference", "number", "x", "y", "ra", "dec", "n_frames")}
            item["variable"] = any(b["variable"] for b in row["bands"].values())
            for band_name in bands:
                b = row["bands"].get(band_name) or {}
                item[f"mag_{band_name}"] = b.get("mag")
                item[f"mag_err_{band_name}"] = b.get("mag_err")
                item[f"chi2_{band_name}"] = b.get("chi2")
                item[f"variable_{band_name}"] = bool(b.get("variable", False))
            flat.append(item)
        columns = ("id", "night", "reference", "number", "x", "y", "ra", "dec", "n_frames", "variable") + tuple(
            f"{kind}_{b}" for b in bands for kind in ("mag", "mag_err", "chi2", "variable"))
        return _table(flat, columns)

    def find_source(self, *, near: tuple[float, float] | None = None, radec: tuple[float, float] | None = None,
                    night=None, max_distance: float | None = None) -> int:
        """The id of the source nearest ``near`` (reference pixels) or ``radec`` (degrees).

        Raises
        ------
        obsdb.errors.ObsdbError
            No sources (run photometry), none with sky coordinates, or none within ``max_distance``
            (pixels, or arcseconds for ``radec``; default 5 px or 10 arcsec).
        """
        from obsdb.catalog.photometry import nearest_source
        from obsdb.errors import ObsdbError

        if (near is None) == (radec is None):
            raise ObsdbError("give one position: near=(x, y) in reference pixels or radec=(ra, dec) in degrees")
        if radec is not None:
            found = self.read(nearest_source, ra=radec[0], dec=radec[1], nights=night)
            limit, unit, where = max_distance or 10.0, "arcsec", f"RA,Dec {radec[0]:g},{radec[1]:g}"
        else:
            found = self.read(nearest_source, x=near[0], y=near[1], nights=night)
            limit, unit, where = max_distance or 5.0, "px", f"X,Y {near[0]:g},{near[1]:g}"
        if found is None:
            what = "with sky coordinates (the reference has no WCS)" if radec is not None else \
                "(run `obsdb photometry` first)"
            raise ObsdbError(f"{where}: no sources {what}")
        if found[1] > limit:
            raise ObsdbError(f"{where}: the nearest source ({found[0]}) is {found[1]:.1f} {unit} away "
                             f"(more than {limit:g} {unit})")
        return found[0]

    def lightcurve(self, source: int | None = None, *, near: tuple[float, float] | None = None,
                   radec: tuple[float, float] | None = None, band: str | None = None, night=None):
        """One source's light curve as an astropy Table with units, one row per frame in time order.

        Parameters
        ----------
        source : int, optional
            The source id; or ``near=(x, y)`` in the reference frame's pixels, or ``radec=(ra, dec)`` in
            degrees when the reference has a WCS (the nearest source, see :meth:`find_source`).
        band : str, optional
            Only this band.

        Returns
        -------
        astropy.table.Table
            Columns: frame, band, mjd_utc (MJD, UTC, mid-exposure), mag (differential: the instrumental
            magnitude less the frame's ensemble zero point; NaN without one), mag_err, zero_point,
            zero_point_err, flags, airmass, status (the frame's verdict), frame_id (the catalog's id),
            and ``bjd_tdb`` (BJD_TDB at mid-exposure, :func:`obsdb.imaging.timescales.bjd_tdb`) when
            the source has sky coordinates and its night a site.  ``meta`` holds the source, ``time``
            and ``bjd_tdb`` (how it was computed, or why it is missing).
        """
        from obsdb.catalog.photometry import lightcurve_rows
        from obsdb.errors import ObsdbError

        if source is None:
            source = self.find_source(near=near, radec=radec, night=night)
        found = self.read(lightcurve_rows, int(source), band=band)
        if found is None:
            raise ObsdbError(f"source {source}: no such source (see `obsdb sources`)")
        info, rows = found
        table = _table(rows, ("frame", "band", "mjd_utc", "mag", "mag_err", "zero_point", "zero_point_err", "flags",
                              "airmass", "status", "frame_id"))
        table.meta.update({k: v for k, v in info.items() if k not in ("bands", "site")})
        table.meta["time"] = "MJD (UTC) at mid-exposure"
        _add_bjd_tdb(table, info)
        return table

    def cmd(self, *, night=None, blue: str = "B", red: str = "V", magnitude: str | None = None,
            standards: str | os.PathLike | None = None, accepted_only: bool = True):
        """The night's colour-magnitude diagram: one row per source, mean magnitudes per band and a colour.

        Each band's magnitude of a source is the weighted mean (:func:`obsdb.imaging.cmd.mean_magnitudes`)
        of its differential magnitudes (instrumental less the frame's ensemble zero point) over the frames
        that measured it without a flag; only accepted frames unless ``accepted_only`` is false.

        Parameters
        ----------
        night : str or list of str, optional
            The night(s); default every night (source ids are per night, so one night is the usual case).
        blue, red : str
            The colour's bands: ``colour = blue - red`` (e.g. B - V).
        magnitude : str, optional
            The band on the magnitude axis; default ``red``.
        standards : path, optional
            A CSV of RA, Dec and magnitudes (:func:`obsdb.imaging.cmd.read_standards`): each of the three
            bands the file has is calibrated (zero point and colour term on the instrumental colour),
            which needs sources with sky coordinates (a WCS on the reference).
        accepted_only : bool
            Combine only frames whose verdict is accepted.

        Returns
        -------
        astropy.table.Table
            Columns: id, x, y (reference pixels), ra, dec (deg; NaN without a WCS), per band ``mag_B``,
            ``mag_err_B``, ``n_B`` (frames), ``colour``, ``colour_err``; with ``standards`` also
            ``cal_mag_B`` per calibrated band and ``cal_colour``.  ``meta`` holds ``blue``, ``red``,
            ``magnitude``, ``colour_name`` (e.g. ``"B-V"``), ``accepted_only``, ``frames`` (per band, the
            frames combined) and, with ``standards``, ``calibration``: per band ``zero_point``,
            ``zero_point_err``, ``colour_term``, ``colour_term_err``, ``rms``, ``n_standards`` (kept),
            ``n_matched``.

        Raises
        ------
        obsdb.errors.ObsdbError
            A band with no photometry (or none in accepted frames), a standards file that cannot be
            read or has none of the bands, no sources with sky coordinates, too few standards matched.
        """
        import numpy as np

        from obsdb.errors import ObsdbError
        from obsdb.imaging.cmd import colour_index, mean_magnitudes

        magnitude = magnitude or red
        bands = list(dict.fromkeys((blue, red, magnitude)))
        catalogue = self.sources(night=night)
        if not len(catalogue):
            raise ObsdbError("no sources: run `obsdb photometry` first" + (f" (night {night})" if night else ""))
        ids = np.asarray(catalogue["id"], dtype=int)
        column = {int(i): k for k, i in enumerate(ids)}
        accepted = {r.id for r in self.frames(night=night, status="accepted")} if accepted_only else None
        table = catalogue[["id", "x", "y", "ra", "dec"]]
        frames_used = {}
        means = {}
        for band in bands:
            rows = self.photometry(night=night, band=band)
            if not len(rows):
                raise ObsdbError(f"band {band}: no photometry" + (f" in night {night}" if night else "")
                                 + " (see `obsdb sources` for the bands measured)")
            frame_ids = np.asarray(rows["frame_id"], dtype=int)
            use = np.ones(len(rows), dtype=bool) if accepted is None else np.isin(frame_ids, list(accepted))
            if not use.any():
                raise ObsdbError(f"band {band}: no accepted frame has photometry (--all combines every frame)")
            source = np.asarray(rows["source"], dtype=int)
            mag = np.asarray(rows["mag"], dtype=float) - np.asarray(rows["zero_point"], dtype=float)
            err = np.asarray(rows["mag_err"], dtype=float)
            keep = use & (source >= 0) & (np.asarray(rows["flags"], dtype=int) == 0) & np.isfinite(mag)
            keep &= np.isin(source, ids)
            frame_list = sorted(set(frame_ids[use].tolist()))
            row_of = {f: k for k, f in enumerate(frame_list)}
            grid = np.full((len(frame_list), len(ids)), np.nan)
            grid_err = np.full_like(grid, np.nan)
            r = np.array([row_of[f] for f in frame_ids[keep]], dtype=int)
            c = np.array([column[s] for s in source[keep]], dtype=int)
            grid[r, c], grid_err[r, c] = mag[keep], err[keep]
            mean = mean_magnitudes(grid, grid_err)
            means[band] = mean
            frames_used[band] = frame_list
            table[f"mag_{band}"] = mean.mag
            table[f"mag_err_{band}"] = mean.err
            table[f"mag_{band}"].unit = table[f"mag_err_{band}"].unit = "mag"
            table[f"n_{band}"] = mean.n.astype(int)
        colour, colour_err = colour_index(means[blue].mag, means[blue].err, means[red].mag, means[red].err)
        table["colour"], table["colour_err"] = colour, colour_err
        table["colour"].unit = table["colour_err"].unit = "mag"
        measured = np.zeros(len(ids), dtype=bool)
        for mean in means.values():
            measured |= mean.n > 0
        table = table[measured]
        table.meta.update({"blue": blue, "red": red, "magnitude": magnitude, "colour_name": f"{blue}-{red}",
                           "accepted_only": accepted_only, "frames": frames_used,
                           "magnitudes": "instrumental, on each band's ensemble zero point"})
        if standards is not None:
            _calibrate_cmd(table, standards, bands, blue, red)
        return table

    def photometer(self, **options):
        """Measure photometry, identify sources and fit zero points (``obsdb photometry``); see
        :func:`obsdb.pipeline.photometry.photometer`."""
        from obsdb.pipeline.photometry import photometer

        return photometer(self.db, **options)

    # ------------------------------------------------------------ steps

    def ingest(self, paths: Iterable[str | os.PathLike], **options):
        """Ingest FITS files and folders (``obsdb ingest``); see :func:`obsdb.pipeline.ingest.ingest`."""
        from obsdb.pipeline.ingest import ingest

        return ingest(self.db, [Path(p) for p in paths], **options)

    def qa(self, **options):
        """Judge frames by the QA rules (``obsdb qa``); see :func:`obsdb.pipeline.qa.run_qa`."""
        from obsdb.pipeline.qa import run_qa

        return run_qa(self.db, **options)

    def check_calibration(self, *, nights=None):
        """Judge the bias, dark and flat frames by their own checks (the part of ``obsdb qa`` that
        concerns them), without measuring any light; see
        :func:`obsdb.pipeline.calib_checks.check_calibration`."""
        from obsdb.catalog.stores import CalibrationStore
        from obsdb.pipeline.calib_checks import check_calibration
        from obsdb.pipeline.qa import RULE_AUTHOR

        return check_calibration(CalibrationStore(self.db), nights=nights, author=RULE_AUTHOR)

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

    def solve(self, **options):
        """Plate-solve each night's reference (or named frames) with astrometry.net and record the
        verified solutions (``obsdb solve``); see :func:`obsdb.pipeline.solve.solve`."""
        from obsdb.pipeline.solve import solve

        return solve(self.db, **options)

    def wcs(self, frame_id: int):
        """A frame's celestial WCS: its header's own when it has one, else its recorded (verified) plate
        solution, else None.

        Returns
        -------
        astropy.wcs.WCS or None
        """
        from obsdb.catalog.astrometry import AstrometryStore
        from obsdb.imaging.astrometry import header_wcs, wcs_from_text

        header, solved = AstrometryStore(self.db).wcs_sources(int(frame_id))
        if header is None:
            return None
        own = header_wcs(header)
        if own is not None:
            return own
        return wcs_from_text(solved) if solved else None

    def wcs_solutions(self, frame_ids: Iterable[int] | None = None) -> list[dict]:
        """Recorded plate solutions (all, or of ``frame_ids``) with their provenance, as dicts."""
        from obsdb.catalog.astrometry import AstrometryStore

        return AstrometryStore(self.db).solutions(None if frame_ids is None else [int(i) for i in frame_ids])

    def export_siril(self, out: str | os.PathLike, *, night: str, **options):
        """Links (or calibrated copies) of a night's lights and a Siril script per target and band
        (``obsdb export siril``); see :func:`obsdb.pipeline.export.export_siril`."""
        from obsdb.pipeline.export import export_siril

        return export_siril(self.db, out, night=night, **options)

    def export_wbpp(self, out: str | os.PathLike, **options):
        """A folder tree of links that PixInsight's WBPP groups by session, filter, exposure and binning
        (``obsdb export wbpp``); see :func:`obsdb.pipeline.export.export_wbpp`."""
        from obsdb.pipeline.export import export_wbpp

        return export_wbpp(self.db, out, **options)

    def export_astrobin(self, out: str | os.PathLike, **options):
        """AstroBin's acquisition CSV, one row per night and filter (``obsdb export astrobin``); see
        :func:`obsdb.pipeline.export.export_astrobin`."""
        from obsdb.pipeline.export import export_astrobin

        return export_astrobin(self.db, out, **options)

    def export_verdicts(self, out: str | os.PathLike, **options):
        """Every frame's verdict as CSV or ECSV (``obsdb export verdicts``); see
        :func:`obsdb.pipeline.export.export_verdicts`."""
        from obsdb.pipeline.export import export_verdicts

        return export_verdicts(self.db, out, **options)

    def import_nina(self, csv_path: str | os.PathLike, **options):
        """Join N.I.N.A.'s ImageMetaData.csv to the catalogued frames (``obsdb import nina``); see
        :func:`obsdb.pipeline.nina.import_nina`."""
        from obsdb.pipeline.nina import import_nina

        return import_nina(self.db, csv_path, **options)

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


_UNITS = {"mjd_utc": "d", "x": "pix", "y": "pix", "flux": "adu", "flux_err": "adu", "sky": "adu", "mag": "mag",
          "mag_err": "mag", "zero_point": "mag", "zero_point_err": "mag", "radius": "pix", "ra": "deg",
          "dec": "deg", "gain": "electron / adu"}
"""Units of the photometry tables' columns (``mag_B`` and the like take the unit of ``mag``)."""


CALIBRATION_MAX_ERROR = 0.02
"""Largest mean-magnitude error (mag; S/N about 50) of a source that calibrates a band: fainter stars add
noise, not information, to the zero point and the colour term."""


def _calibrate_cmd(table, standards, bands, blue: str, red: str) -> None:
    """Add calibrated magnitudes (``cal_mag_B``), ``cal_colour`` and ``meta["calibration"]`` to a CMD table,
    fitting each band the standards file has against the sources' instrumental colour."""
    import numpy as np

    from obsdb.errors import ObsdbError
    from obsdb.imaging.cmd import MIN_STANDARDS, calibrate, read_standards

    path = str(standards)
    catalogue = read_standards(path)
    fitted = [b for b in bands if b in catalogue.mag]
    if not fitted:
        raise ObsdbError(f"{path}: no magnitudes in {', '.join(bands)} (it has {', '.join(catalogue.bands) or 'none'})")
    ra, dec = np.asarray(table["ra"], dtype=float), np.asarray(table["dec"], dtype=float)
    if not np.isfinite(ra).any():
        raise ObsdbError(f"{path}: the sources have no sky coordinates (the reference has no WCS: run `obsdb solve`)")
    colour = np.asarray(table["colour"], dtype=float)
    calibration = {}
    for band in fitted:
        mag = np.asarray(table[f"mag_{band}"], dtype=float)
        err = np.asarray(table[f"mag_err_{band}"], dtype=float)
        good = np.isfinite(ra) & np.isfinite(mag) & np.isfinite(colour) & (err < CALIBRATION_MAX_ERROR)
        try:
            cal, matched = calibrate(ra[good], dec[good], mag[good], catalogue.ra, catalogue.dec, catalogue.mag[band],
                                     colour=colour[good], err=err[good], standard_err=catalogue.err.get(band),
                                     colour_name=f"{blue.lower()}-{red.lower()}")
        except ValueError as exc:
            raise ObsdbError(f"{path}: band {band}: {exc} (at least {MIN_STANDARDS} standards with "
                             f"errors under {CALIBRATION_MAX_ERROR} mag must match sources within 2 arcsec)") from None
        table[f"cal_mag_{band}"] = cal.apply(mag, colour)
        table[f"cal_mag_{band}"].unit = "mag"
        calibration[band] = {"zero_point": cal.zero_point, "zero_point_err": cal.zero_point_err,
                             "colour_term": cal.colour_term, "colour_term_err": cal.colour_term_err,
                             "rms": cal.rms, "n_standards": int(cal.used.sum()), "n_matched": int(matched.size),
                             "colour": cal.colour_name}
    if blue in calibration and red in calibration:
        table["cal_colour"] = table[f"cal_mag_{blue}"] - table[f"cal_mag_{red}"]
    table.meta["calibration"] = calibration
    table.meta["standards"] = path



def _add_bjd_tdb(table, info: dict) -> None:
    """A light curve's ``bjd_tdb`` column, when its source has sky coordinates and its night a site."""
    import math

    ra, dec, site = info.get("ra"), info.get("dec"), info.get("site")
    if ra is None or dec is None or not (math.isfinite(ra) and math.isfinite(dec)):
        table.meta["bjd_tdb"] = "not given: the source has no sky coordinates (no WCS on its reference)"
        return
    if site is None:
        table.meta["bjd_tdb"] = "not given: the night has no site (set [site] in obsdb.toml)"
        return
    from obsdb.imaging.timescales import bjd_tdb

    mjd = [math.nan if value is None else float(value) for value in table["mjd_utc"]]
    table["bjd_tdb"] = bjd_tdb(mjd, ra, dec, **site) if mjd else []
    table["bjd_tdb"].unit = "d"
    table.meta["bjd_tdb"] = (f"BJD_TDB at mid-exposure, for RA {ra:.5f} Dec {dec:.5f} from longitude "
                             f"{site['longitude']:.4f} latitude {site['latitude']:.4f}")


def _table(rows: list[dict], columns: tuple[str, ...]):
    """An astropy Table of ``rows`` with these columns, units from :data:`_UNITS`; None becomes NaN
    in number columns (-1 in ``source``)."""
    import math

    from astropy import units as u
    from astropy.table import Table

    table = Table()
    for name in columns:
        values = [row.get(name) for row in rows]
        base = name.split("_")[0] if name.startswith(("mag_", "chi2_", "variable_")) and name not in _UNITS else name
        if name == "source":
            values = [-1 if v is None else v for v in values]
        elif any(isinstance(v, float) for v in values) or base in _UNITS or base == "chi2":
            values = [math.nan if v is None else float(v) for v in values]
        elif base in ("variable",):
            values = [bool(v) for v in values]
        elif values and all(v is None for v in values):
            values = [""] * len(values)
        elif any(isinstance(v, str) for v in values):
            values = ["" if v is None else str(v) for v in values]
        unit = _UNITS.get(name) or (_UNITS["mag"] if name.startswith("mag_") else None)
        table[name] = values if values else []
        if unit:
            table[name].unit = u.Unit(unit)
    return table
