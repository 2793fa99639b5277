"""The catalog reads that :mod:`obsdb.catalog.readers` runs, each defined once as an SQLAlchemy statement.

A reader (``obsdb nights``, ``obsdb log``, ``obsdb summary``) is plain Python over a ``run(name,
**params)`` function that executes one of the statements named here and returns its rows as tuples.
Two functions of that kind exist:

- :func:`session_runner` executes the statement itself in an SQLAlchemy session (any database);
- :mod:`obsdb.catalog.lite` executes the SQL text of the statement, compiled once for each database
  into the generated :mod:`obsdb.catalog.lite_sql` (SQLite, run with the stdlib ``sqlite3``) and
  :mod:`obsdb.catalog.pg_sql` (PostgreSQL, compiled for the psycopg dialect and run with psycopg2 or
  psycopg 3): a query command that never imports
  SQLAlchemy; see :mod:`obsdb.catalog.lite`.

So each query is written once, here, and the text the fast path runs is that statement's compilation
(a test compiles every statement again and compares it with the generated module).

A statement takes its run-time values as bind parameters named after the reader's arguments.  An
optional condition (a ``--command``, a night scope) is a *flag*: the builder takes ``flag=True`` to
add it, the generated module holds one text per combination of flags, and a runner adds it when the
parameter of that name is given (not None).  A list parameter (``expanding``) is written by
SQLAlchemy as ``IN (...)`` with as many placeholders as it has values; the fast path's runner
(:mod:`obsdb.catalog.lite`) binds it as one parameter instead (``json_each`` on SQLite, an array on
PostgreSQL), so that a statement's text is the same whatever the list's length.
"""

from __future__ import annotations

import re
from itertools import product

from sqlalchemy import String, and_, bindparam, func, select, tuple_

from obsdb.catalog.readers import METRICS_FIELDS, STATS_FIELDS
from obsdb.catalog.models import (PENDING_DIGEST, AlignmentRun, Calibration, Centroid, Event, Frame, FrameMetrics,
                                  FrameQuality, FrameStats, FrameWeight, GroupMember, Instrument, Master, Night,
                                  NightBandSummary, NightSummary, PointingGroup, RenderOutput, ShiftStep, StarList,
                                  Tag)


def _night_count():
    return select(func.count(Night.id))


def _nights_named():
    return select(Night.name, Night.id).where(Night.name.in_(bindparam("names", expanding=True)))


def _newest_night_names():
    return select(Night.name).order_by(Night.name.desc()).limit(bindparam("limit"))


def _night_summaries():
    return (select(Night.name, Night.source, Night.first_date_obs, Night.last_date_obs, NightSummary.frames,
                   NightSummary.accepted, NightSummary.rejected, NightSummary.pending, NightSummary.median_fwhm,
                   NightSummary.bands, NightSummary.targets, NightSummary.instruments)
            .outerjoin(NightSummary, NightSummary.night_id == Night.id).order_by(Night.name))


def _event_log(*, command: bool = False, scope: bool = False, limit: bool = False):
    night_id = func.coalesce(Event.night_id, Frame.night_id)
    query = (select(Event.id, Event.at, Event.author, Event.command, Event.summary, Event.details, Frame.number,
                    Frame.file_name, Night.name, Frame.number_shared)
             .outerjoin(Frame, Frame.id == Event.frame_id)
             .outerjoin(Night, Night.id == night_id)
             .order_by(Event.id.desc()))
    if limit:  # None: every event (the desk reads them all)
        query = query.limit(bindparam("limit"))
    if command:
        query = query.where(Event.command == bindparam("command"))
    if scope:
        query = query.where(night_id.in_(bindparam("scope", expanding=True)))
    return query


def _band_totals(*, scope: bool = False):
    s = NightBandSummary
    query = (select(s.band, s.image_type, func.sum(s.frames), func.sum(s.unreadable), func.sum(s.accepted),
                    func.sum(s.rejected), func.sum(s.pending), func.sum(s.exptime))
             .group_by(s.band, s.image_type))
    if scope:
        query = query.where(s.night_id.in_(bindparam("scope", expanding=True)))
    return query


def _quality_values(*, band: bool = False, scope: bool = False):
    """FWHM and background of the frame_quality rows in scope (of one band and type with ``band``)."""
    query = select(FrameQuality.band, FrameQuality.image_type, FrameQuality.fwhm, FrameQuality.background)
    if band:
        query = query.where(FrameQuality.band == bindparam("band"), FrameQuality.image_type == bindparam("kind"))
    if scope:
        query = query.where(FrameQuality.night_id.in_(bindparam("scope", expanding=True)))
    return query


def _quality_count(column):
    # Each count from its own covering index: one count of both read every row (8.5 s for the three
    # bands of a 1,000,000-frame archive, where these take tens of ms).
    return lambda: (select(func.count()).select_from(FrameQuality)
                    .where(FrameQuality.band == bindparam("band"), FrameQuality.image_type == bindparam("kind"),
                           column.is_not(None)))


def _quality_middle(column):
    """The middle one or two values of ``column`` of one band and type: its (band, image_type, value) index."""
    return lambda: (select(column).where(FrameQuality.band == bindparam("band"),
                                         FrameQuality.image_type == bindparam("kind"), column.is_not(None))
                    .order_by(column).limit(bindparam("limit")).offset(bindparam("offset")))


FRAME_REF = (Frame.id, Frame.night_id, Night.name, Frame.number, Frame.path, Frame.file_name, Frame.readable,
             Frame.number_shared, Frame.sha256)
"""A frame as a selector finds it (:class:`obsdb.catalog.selection.FrameRef`)."""


def _frame_refs():
    return select(*FRAME_REF).select_from(Frame).outerjoin(Night, Night.id == Frame.night_id)


def _night_ids_by_name():
    return select(Night.name, Night.id)


def _frames_numbered(*, night: bool = False, scope: bool = False):
    query = _frame_refs().where(Frame.number.between(bindparam("first"), bindparam("last")))
    if night:
        query = query.where(Frame.night_id == bindparam("night"))
    if scope:
        query = query.where(Frame.night_id.in_(bindparam("scope", expanding=True)))
    return query


def _frame_by_path():
    return _frame_refs().where(Frame.path == bindparam("path")).limit(1)


def _frames_named(*, scope: bool = False):
    query = _frame_refs().where(Frame.file_name == bindparam("name"))
    if scope:
        query = query.where(Frame.night_id.in_(bindparam("scope", expanding=True)))
    return query.limit(bindparam("limit"))


def _shift_steps():
    s = ShiftStep
    return (select(s.run_id, s.stage, s.id, s.kind, s.method, s.dx, s.dy, s.rotation_deg, s.scale,
                   s.reference_frame_id, s.centroid_id, s.reference_centroid_id, s.n_matched, s.residual_rms,
                   s.frame_sha256, s.parameters)
            .where(s.frame_id == bindparam("frame")).order_by(s.run_id, s.stage, s.id))


def _alignment_runs():
    r = AlignmentRun
    return (select(r.id, r.method, r.created_at, r.author, r.software_version, r.algorithm, r.reference_frame_id,
                   r.parameters).where(r.id.in_(bindparam("ids", expanding=True))))


def _centroids():
    c = Centroid
    return (select(c.id, c.x, c.y, c.flux, c.method, c.box_x0, c.box_x1, c.box_y0, c.box_y1, c.frame_id,
                   c.star_index).where(c.id.in_(bindparam("ids", expanding=True))))


def _frame_labels():
    return (select(Frame.id, Frame.number, Frame.file_name, Night.name, Frame.number_shared)
            .join(Night, Night.id == Frame.night_id).where(Frame.id.in_(bindparam("ids", expanding=True))))


FRAME_COLUMNS = (Frame.id, Frame.number, Frame.path, Frame.file_name, Frame.band, Frame.image_type, Frame.object,
                 Frame.exptime, Frame.date_obs, Frame.height, Frame.width, Frame.readable, Frame.error,
                 Frame.number_shared, Frame.keywords)
"""The frame's own columns of a listing's page (:func:`obsdb.catalog.readers.frame_record` reads them)."""

WHERE_MARK = "(__WHERE__)"
"""Where the fast path writes a ``--where`` condition into a listing's page (the ``where`` flag)."""

FRAME_ORDER = (Night.name, func.coalesce(Frame.number, 2**62), func.coalesce(Frame.sort_key, Frame.path), Frame.path)
"""A listing's order: night, number, then natural order within a number (STAR_FOCUS_2 before
STAR_FOCUS_10: frame.sort_key); the path last, so that the key stays unique for the keyset paging."""


def _frame_page(*, scope: bool = False, bands: bool = False, image_types: bool = False, status: bool = False,
                tag: bool = False, frame_ids: bool = False, batch: bool = False, after: bool = False,
                where: bool = False, extra=None, status_rule=None):
    """One page of a frame listing (:func:`obsdb.catalog.readers.iter_frame_records`).

    ``extra``: a further SQLAlchemy condition (a ``--where`` expression and the filters only the
    normal path has); ``status_rule``: the condition a status filter uses instead of the kept column
    (an alignment run's selection).  The fast path has neither: its ``where`` is the place
    (:data:`WHERE_MARK`) where it writes a ``--where`` expression's SQL text
    (:mod:`obsdb.catalog.where_text`).
    """
    conditions = []
    if scope:
        conditions.append(Frame.night_id.in_(bindparam("scope", expanding=True)))
    if bands:
        conditions.append(Frame.band.in_(bindparam("bands", expanding=True)))
    if image_types:
        conditions.append(Frame.image_type.in_(bindparam("image_types", expanding=True)))
    if frame_ids:
        # Only for a handful of frames named by the caller (a selector's, a run's): listings filter in SQL.
        conditions.append(Frame.id.in_(bindparam("frame_ids", expanding=True)))
    if status:
        conditions.append(Frame.status == bindparam("status") if status_rule is None else status_rule)
    if tag:
        conditions.append(select(Tag.id).where(Tag.frame_id == Frame.id, Tag.retracted_at.is_(None),
                                               Tag.name == bindparam("tag")).exists())
    if extra is not None:
        conditions.append(extra)
    if where:
        from sqlalchemy import text

        conditions.append(text(WHERE_MARK))
    query = (select(*FRAME_COLUMNS, Night.name, Instrument.key, FrameStats.frame_id,
                    *(getattr(FrameStats, k) for k in STATS_FIELDS),
                    FrameMetrics.frame_id, FrameMetrics.assessed_at, *(getattr(FrameMetrics, k) for k in METRICS_FIELDS),
                    # A listing of one status knows each frame's: no second evaluation.
                    bindparam("status", type_=Frame.status.type) if status else Frame.status, *FRAME_ORDER)
             .select_from(Frame).join(Night, Frame.night_id == Night.id)
             .outerjoin(Instrument, Instrument.id == Frame.instrument_id)
             .outerjoin(FrameStats, FrameStats.frame_id == Frame.id)
             .outerjoin(FrameMetrics, FrameMetrics.frame_id == Frame.id)
             .where(and_(True, *conditions)).order_by(*FRAME_ORDER).limit(bindparam("limit")))
    if batch:
        query = query.where(Frame.night_id.in_(bindparam("batch", expanding=True)))
    if after:
        # The night bound is implied by the row comparison, and it is what lets the next page start at
        # its night through the night index: PostgreSQL takes no index bound from a row comparison across
        # two tables, and walked every earlier night again on every page (page k read k pages; 36 s
        # for the 63,000 rejected V frames of a 1,000,000-frame archive).
        last = [bindparam(f"after_{i}") for i in range(len(FRAME_ORDER))]
        query = query.where(Night.name >= last[0], tuple_(*FRAME_ORDER) > tuple_(*last))
    return query


def _rejected_reasons(*, scope: bool = False, bands: bool = False, batch: bool = False):
    """The rejected frames of a listing's order, each with its active tags (one row per tag; a frame
    without one, say an unreadable file, as one row of NULLs): what ``obsdb rejected`` prints, without
    building a whole record per frame.

    Written for the partial index ``ix_frame_rejected``, which holds the frame's every other column
    here: the status is a constant of the text (a database proves that a query falls within a partial
    index from its text, not from a parameter's value), and the read error, which only an unreadable
    file has (``readable`` is false exactly when ``error`` is set), is read from the frame's row for
    those frames alone, so that PostgreSQL answers the rest from the index."""
    from sqlalchemy import case, literal_column
    from sqlalchemy.orm import aliased

    unreadable = aliased(Frame)
    error = case((Frame.readable, None),
                 else_=select(unreadable.error).where(unreadable.id == Frame.id).scalar_subquery())
    conditions = [Frame.status == literal_column("'rejected'")]
    if scope:
        conditions.append(Frame.night_id.in_(bindparam("scope", expanding=True)))
    if bands:
        conditions.append(Frame.band.in_(bindparam("bands", expanding=True)))
    if batch:  # a batch of nights (readers.BATCH_FRAMES): the night index bounds the search
        conditions.append(Frame.night_id.in_(bindparam("batch", expanding=True)))
    active = and_(Tag.frame_id == Frame.id, Tag.retracted_at.is_(None))
    return (select(Frame.id, Frame.number, Frame.file_name, Night.name, Frame.number_shared, Frame.band,
                   Frame.image_type, error, Tag.name, Tag.source, Tag.author, Tag.created_at, Tag.reason)
            .select_from(Frame).join(Night, Frame.night_id == Night.id).outerjoin(Tag, active)
            .where(and_(*conditions)).order_by(*FRAME_ORDER, Tag.id))


def _page_tags():
    return (select(Tag.frame_id, Tag.id, Tag.name, Tag.source, Tag.reason, Tag.author, Tag.created_at, Tag.evidence)
            .where(Tag.frame_id.in_(bindparam("ids", expanding=True)), Tag.retracted_at.is_(None)).order_by(Tag.id))


def _page_shifts():
    from obsdb.catalog.runs import current_run_ids

    current = current_run_ids(frame_ids=bindparam("ids", expanding=True))
    # The registration's confidence travels with the shift: star pairs kept, fit residual, method.
    return (select(ShiftStep.frame_id, ShiftStep.run_id, func.sum(ShiftStep.dx), func.sum(ShiftStep.dy),
                   func.sum(ShiftStep.rotation_deg), func.count(), func.max(ShiftStep.n_matched),
                   func.max(ShiftStep.residual_rms), func.max(ShiftStep.method))
            .join(current, and_(current.c.frame_id == ShiftStep.frame_id, current.c.run_id == ShiftStep.run_id))
            .group_by(ShiftStep.frame_id, ShiftStep.run_id))


def _page_groups():
    return (select(GroupMember.frame_id, PointingGroup.name).join(PointingGroup)
            .where(GroupMember.frame_id.in_(bindparam("ids", expanding=True))))


def _page_weights():
    return (select(FrameWeight.frame_id, FrameWeight.noise, FrameWeight.fwhm, FrameWeight.stars, FrameWeight.snr,
                   FrameWeight.snr_value, FrameWeight.set_size, FrameWeight.algorithm)
            .where(FrameWeight.frame_id.in_(bindparam("ids", expanding=True))))


def _night_sizes(*, scope: bool = False):
    query = (select(Night.id, func.coalesce(NightSummary.frames, 0))
             .outerjoin(NightSummary, NightSummary.night_id == Night.id).order_by(Night.name))
    if scope:
        query = query.where(Night.id.in_(bindparam("scope", expanding=True)))
    return query


def _night_sizes_holding(*, scope: bool = False, bands: bool = False, image_types: bool = False):
    """The nights holding frames of these bands and/or image types, with how many, by the kept
    night_band_summary rows (a listing of the archive's few flats reads no other night)."""
    conditions = []
    if bands:
        conditions.append(NightBandSummary.band.in_(bindparam("bands", expanding=True)))
    if image_types:
        conditions.append(NightBandSummary.image_type.in_(bindparam("image_types", expanding=True)))
    if scope:
        conditions.append(NightBandSummary.night_id.in_(bindparam("scope", expanding=True)))
    return (select(Night.id, func.sum(NightBandSummary.frames))
            .join(NightBandSummary, NightBandSummary.night_id == Night.id)
            .where(and_(True, *conditions)).group_by(Night.id, Night.name).order_by(Night.name))


# The bands and image types stored are read from the kept night_band_summary rows (a few per
# night), not from every frame: 80 ms a question on a 1,000,000-frame archive, under 1 ms.
def _band_spellings(*, scope: bool = False):
    s = NightBandSummary
    query = select(s.band).where(func.lower(s.band) == bindparam("band")).distinct()
    if scope:
        query = query.where(s.night_id.in_(bindparam("scope", expanding=True)))
    return query


def _stored_image_types():
    return select(NightBandSummary.image_type).where(NightBandSummary.image_type != "").distinct()


def _frame_facts():
    return (select(Frame.size, Frame.sha256, Frame.airmass, Frame.bitpix, Frame.ingested_at, Frame.measured_at,
                   FrameStats.algorithm, FrameMetrics.algorithm, StarList.algorithm, StarList.n_stars, Frame.header)
            .select_from(Frame).outerjoin(FrameStats, FrameStats.frame_id == Frame.id)
            .outerjoin(FrameMetrics, FrameMetrics.frame_id == Frame.id)
            .outerjoin(StarList, StarList.frame_id == Frame.id).where(Frame.id == bindparam("frame")))


def _tag_history():
    return (select(Tag.name, Tag.source, Tag.reason, Tag.author, Tag.created_at, Tag.retracted_at, Tag.retracted_by,
                   Tag.retract_reason).where(Tag.frame_id == bindparam("frame")).order_by(Tag.id))


def _frame_renders():
    return (select(RenderOutput.path, RenderOutput.sha256, RenderOutput.run_id, RenderOutput.interpolation,
                   RenderOutput.created_at)
            .where(RenderOutput.frame_id == bindparam("frame"), RenderOutput.sha256 != PENDING_DIGEST)
            .order_by(RenderOutput.id))


def _frame_events():
    return (select(Event.at, Event.author, Event.command, Event.summary, Event.details)
            .where(Event.frame_id == bindparam("frame")).order_by(Event.id))


def _frame_calibration():
    c = Calibration
    return (select(c.kind, c.master_id, Master.path, Master.sha256, c.scale, c.score, c.reason, c.created_at)
            .outerjoin(Master, Master.id == c.master_id).where(c.frame_id == bindparam("frame")).order_by(c.kind))


def _known_bands():
    return select(NightBandSummary.band).where(NightBandSummary.band != "").distinct()


def _frames_with_keyword(*, scope: bool = False):
    """A frame (in scope) whose header holds the keyword ``key``: a bare ``--where`` keyword must name one."""
    from obsdb.catalog.expr import header_has

    query = select(Frame.id).where(header_has(bindparam("key", type_=String())))
    if scope:
        query = query.where(Frame.night_id.in_(bindparam("scope", expanding=True)))
    return query.limit(1)


def _sample_headers(*, scope: bool = False):
    """The headers of a few frames (in scope): the keywords a misspelt one is compared with."""
    query = select(Frame.header).where(Frame.header.is_not(None))
    if scope:
        query = query.where(Frame.night_id.in_(bindparam("scope", expanding=True)))
    return query.limit(20)


def _known_tags():
    return select(Tag.name).where(Tag.retracted_at.is_(None)).distinct()


STATEMENTS = {
    "night_count": _night_count,
    "nights_named": _nights_named,
    "newest_night_names": _newest_night_names,
    "night_summaries": _night_summaries,
    "event_log": _event_log,
    "band_totals": _band_totals,
    "quality_values": _quality_values,
    "quality_count_fwhm": _quality_count(FrameQuality.fwhm),
    "quality_count_background": _quality_count(FrameQuality.background),
    "quality_middle_fwhm": _quality_middle(FrameQuality.fwhm),
    "quality_middle_background": _quality_middle(FrameQuality.background),
    "night_ids_by_name": _night_ids_by_name,
    "frames_numbered": _frames_numbered,
    "frame_by_path": _frame_by_path,
    "frames_named": _frames_named,
    "shift_steps": _shift_steps,
    "alignment_runs": _alignment_runs,
    "centroids": _centroids,
    "frame_labels": _frame_labels,
    "frame_page": _frame_page,
    "page_tags": _page_tags,
    "rejected_reasons": _rejected_reasons,
    "page_shifts": _page_shifts,
    "page_groups": _page_groups,
    "page_weights": _page_weights,
    "night_sizes": _night_sizes,
    "night_sizes_holding": _night_sizes_holding,
    "band_spellings": _band_spellings,
    "stored_image_types": _stored_image_types,
    "frame_facts": _frame_facts,
    "tag_history": _tag_history,
    "frame_renders": _frame_renders,
    "frame_events": _frame_events,
    "frame_calibration": _frame_calibration,
    "known_bands": _known_bands,
    "known_tags": _known_tags,
    "frames_with_keyword": _frames_with_keyword,
    "sample_headers": _sample_headers,
}
"""Statement name -> builder (keyword flags, see the module docstring)."""

FLAGS = {"event_log": ("command", "scope", "limit"), "band_totals": ("scope",), "quality_values": ("band", "scope"),
         "frames_numbered": ("night", "scope"), "frames_named": ("scope",), "night_sizes": ("scope",),
         "night_sizes_holding": ("scope", "bands", "image_types"),
         "band_spellings": ("scope",), "rejected_reasons": ("scope", "bands", "batch"),
         "frame_page": ("scope", "bands", "image_types", "status", "tag", "frame_ids", "batch", "after", "where"),
         "frames_with_keyword": ("scope",), "sample_headers": ("scope",)}
"""The flags of each builder that has any; a flag is set when the parameter of its name is given."""


CORE = frozenset({"frame_page", "page_tags", "page_shifts", "page_groups", "page_weights"})
"""Statements :func:`session_runner` executes on the session's connection (plain rows: the ORM's
loading machinery costs half the time of a listing's record), as the listing always did."""


def variant_flags(name: str, params: dict) -> dict[str, bool]:
    """The flags of statement ``name`` that the ``params`` given set (a parameter given and not None).

    ``after`` stands for the keyset parameters ``after_0``, ``after_1``, ... of a listing's next page
    (:func:`obsdb.catalog.readers.flags_given`)."""
    from obsdb.catalog.readers import flags_given

    flags = FLAGS.get(name, ())
    given = set(flags_given(flags, params))
    return {flag: flag in given for flag in flags}


EXCLUSIVE = {"frame_page": (("frame_ids", "batch"), ("frame_ids", "where"))}
"""Flags of a statement that are never set together (a listing of frames named by id is not batched
by night, and the fast path lists none with a ``--where``): no text is generated for such a combination."""


def variants(name: str):
    """Every combination of the flags of statement ``name``, as keyword dicts."""
    flags = FLAGS.get(name, ())
    for values in product((False, True), repeat=len(flags)):
        combination = dict(zip(flags, values))
        if not any(all(combination[flag] for flag in exclusive) for exclusive in EXCLUSIVE.get(name, ())):
            yield combination


def session_runner(session):
    """A ``run(name, **params)`` over an SQLAlchemy session: the statement executed as it is."""
    def run(name: str, /, **params) -> list:
        # sa_NAME: an SQLAlchemy object for the builder's NAME (a condition only this path can run).
        objects = {k[3:]: params.pop(k) for k in list(params) if k.startswith("sa_")}
        flags = variant_flags(name, params)
        statement = STATEMENTS[name](**flags, **{k: v for k, v in objects.items() if v is not None})
        values = {k: v for k, v in params.items() if v is not None}
        if name in CORE:
            return session.connection().execute(statement, values).all()
        return session.execute(statement, values).all()

    return run


GENERATED = {"sqlite": "obsdb/catalog/lite_sql.py", "postgresql": "obsdb/catalog/pg_sql.py"}
"""The module :func:`generate` writes for each database (relative to the repository root)."""

_CONVERSIONS = {"sqlite": (("UtcDateTime", "utc"), ("JSONType", "json"), ("JSON", "json"), ("Boolean", "bool")),
                # psycopg2 and psycopg 3 give JSON decoded, booleans as bool and timestamptz aware (in the session's
                # time zone): only the time zone is SQLAlchemy's (UtcDateTime gives UTC).
                "postgresql": (("UtcDateTime", "utc"),)}
"""Column types whose values SQLAlchemy converts on each database, by class name, and the conversion
(:data:`obsdb.catalog.lite.CONVERTERS`) that does the same."""

_FLOAT8 = 701
"""psycopg's type code for ``double precision``, what a Float column (and a sum of one) comes back as on
PostgreSQL: SQLAlchemy's numeric types choose their result conversion by it (none for this one)."""


def _dialect(name: str):
    """The SQLAlchemy dialect the fast path's text is compiled for: its paramstyle is the driver's."""
    if name == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.dialect(paramstyle="named")
    from sqlalchemy.dialects.postgresql import psycopg

    return psycopg.dialect()


def _conversion(column_type, dialect) -> str | None:
    for cls in type(column_type).__mro__:
        for name, kind in _CONVERSIONS[dialect.name]:
            if cls.__name__ == name:
                return kind
    if column_type.dialect_impl(dialect).result_processor(dialect, _FLOAT8) is not None:
        raise TypeError(f"{type(column_type).__name__}: SQLAlchemy converts its values on {dialect.name} and the "
                        "fast path does not know how (add it to _CONVERSIONS and obsdb.catalog.lite.CONVERTERS)")
    return None


def _element_casts(compiled, expanding: list[str]) -> dict[str, str]:
    """The cast SQLAlchemy writes after each value of each list parameter (``::INTEGER`` on PostgreSQL,
    nothing on SQLite), read from the statement expanded for one value per list."""
    values = {name: None for name in compiled.bind_names.values()}
    values.update({name: [None] for name in expanding})
    text = compiled.construct_expanded_state(values).statement
    casts = {}
    for name in expanding:
        placeholder = re.escape(compiled.bindtemplate % {"name": f"{name}_1"})
        casts[name] = re.search(placeholder + r"((?:::[A-Z_ ]+(?:\(\d+(?:, *\d+)?\))?)?)", text).group(1)
    return casts


def compiled_statements(database: str = "sqlite") -> dict[str, dict]:
    """Every variant of every statement compiled for ``database`` (``sqlite`` or ``postgresql``):
    key -> sql, params, expanding (name -> the cast after each value), convert."""
    dialect = _dialect(database)
    out = {}
    for name, build in STATEMENTS.items():
        for flags in variants(name):
            statement = build(**flags)
            compiled = statement.compile(dialect=dialect)
            on = [flag for flag in FLAGS.get(name, ()) if flags[flag]]
            key = f"{name}[{','.join(on)}]" if on else name
            expanding = sorted(compiled.bind_names[b] for b in compiled.binds.values() if b.expanding)
            out[key] = {
                "sql": str(compiled),
                # Values the statement holds itself (constants); the rest are the reader's parameters.
                "params": {k: v for k, v in compiled.params.items() if v is not None and k not in expanding},
                "expanding": _element_casts(compiled, expanding),
                "convert": tuple(_conversion(c.type, dialect) for c in statement.selected_columns),
            }
    return out


def where_names(database: str = "sqlite") -> dict[str, tuple[str, str, bool]]:
    """The SQL text of every name a ``--where`` expression can use (:data:`obsdb.catalog.where_lang.NAME_KEYS`),
    compiled for ``database`` from the SQLAlchemy builder's own expressions, with its kind and whether it
    holds integers: the names of :class:`obsdb.catalog.where_text.TextBuilder`.  Constants are written
    into the text (``status``'s tag names), so that a name is a self-contained piece of a frame listing."""
    from sqlalchemy import Integer

    from obsdb.catalog.expr import SqlAlchemyBuilder
    from obsdb.catalog.where_lang import NAME_KEYS

    dialect = _dialect(database)
    builder = SqlAlchemyBuilder()
    out = {}
    for key in NAME_KEYS:
        sql, kind = builder.name(key)
        # Inside a listing's FROM, so that a subquery correlates with its frame as it will at run time.
        query = (select(Frame.id).select_from(Frame).join(Night, Frame.night_id == Night.id)
                 .outerjoin(FrameStats, FrameStats.frame_id == Frame.id)
                 .outerjoin(FrameMetrics, FrameMetrics.frame_id == Frame.id).where(sql.is_(None)))
        text = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        condition = text.split("\nWHERE ", 1)[1]
        if not condition.endswith(" IS NULL"):
            raise ValueError(f"{key}: unexpected SQL for a --where name: {condition!r}")
        out[key] = (condition[:-len(" IS NULL")], kind, isinstance(sql.type, Integer))
    return out


TITLES = {"sqlite": "SQLite", "postgresql": "PostgreSQL (the psycopg dialect, run with psycopg2 or psycopg 3)"}
"""How the docstring of each generated module names its database."""

SPLIT = r"(\n| AND )"
"""Where :func:`generate` cuts each SQL text into pieces (the separators are pieces too): the variants
of a statement share most of their text, stored once (joining a key's pieces gives its text back)."""


def generate(database: str = "sqlite") -> str:
    """The text of ``GENERATED[database]``: the SQL of every statement variant, for :mod:`obsdb.catalog.lite`."""
    from pprint import pformat

    from sqlalchemy.sql.compiler import BIND_TEMPLATES

    from obsdb.catalog.db import SCHEMA_REVISION

    compiled = compiled_statements(database)
    dialect = _dialect(database)
    pieces: dict[str, int] = {}
    sql = {key: tuple(pieces.setdefault(piece, len(pieces)) for piece in re.split(SPLIT, c["sql"]) if piece)
           for key, c in compiled.items()}
    convert = {}
    for key, c in compiled.items():
        name = key.split("[")[0]
        if convert.setdefault(name, c["convert"]) != c["convert"]:
            raise ValueError(f"{key}: the variants of a statement must select the same columns")

    def table(field, keep=lambda value: True):
        return pformat({key: c[field] for key, c in compiled.items() if keep(c[field])}, width=110,
                       sort_dicts=True)

    return (f'"""The SQL text of :mod:`obsdb.catalog.statements` compiled for {TITLES[database]}, for the fast path\n'
            f'(:mod:`obsdb.catalog.lite`).  Generated by ``python -m obsdb.catalog.statements``: do not edit.\n'
            f'A test compiles the statements again and compares."""\n\n'
            f'SCHEMA_REVISION = {SCHEMA_REVISION!r}\n'
            f'"""The schema the SQL was compiled against: a catalog at another revision takes the normal path."""\n\n'
            f'PLACEHOLDER = {BIND_TEMPLATES[dialect.paramstyle] % {"name": "{}"}!r}\n'
            f'"""A bound parameter in the SQL text, ``PLACEHOLDER.format(name)``."""\n\n'
            f'WHERE_MARK = {WHERE_MARK!r}\n'
            f'"""Where a listing\'s page (the ``where`` flag) takes a --where condition\'s text."""\n\n'
            f'FLAGS = {pformat(dict(FLAGS), width=110, sort_dicts=True)}\n\n'
            f'PIECES = {pformat(list(pieces), width=110)}\n'
            f'"""Pieces of SQL text; a statement variant\'s text is its pieces joined."""\n\n'
            f'SQL = {pformat(sql, width=110, sort_dicts=True, compact=True)}\n\n'
            f'PARAMS = {table("params", bool)}\n\n'
            f'EXPANDING = {table("expanding", bool)}\n\n'
            f'CONVERT = {pformat({k: v for k, v in convert.items() if any(v)}, width=110, sort_dicts=True)}\n\n'
            f'WHERE_NAMES = {pformat(where_names(database), width=110, sort_dicts=True)}\n'
            f'"""The SQL text, kind and integer-ness of each name of a --where expression '
            f'(:mod:`obsdb.catalog.where_text`)."""\n')


if __name__ == "__main__":  # pragma: no cover - `python -m obsdb.catalog.statements`
    from pathlib import Path

    for database, generated in GENERATED.items():
        target = Path(__file__).resolve().parents[2] / generated
        target.write_text(generate(database))
        print(f"wrote {target}")
