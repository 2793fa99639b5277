"""The catalog reads that :mod:`obsdb.catalog.readers` runs, each defined once as an SQLAlchemy statement.

A reader (``obsdb nights``, ``obsdb log``, ``obsdb summary``) is plain Python over a ``run(name,
**params)`` function that executes one of the statements named here and returns its rows as tuples.
Two functions of that kind exist:

- :func:`session_runner` executes the statement itself in an SQLAlchemy session (any database);
- :mod:`obsdb.catalog.lite` executes the SQL text of the statement, compiled once for SQLite into the
  generated :mod:`obsdb.catalog.lite_sql`, with the stdlib ``sqlite3`` (a query command that never
  imports SQLAlchemy; see :mod:`obsdb.catalog.lite`).

So each query is written once, here, and the text the fast path runs is that statement's compilation
(a test compiles every statement again and compares it with the generated module).

A statement takes its run-time values as bind parameters named after the reader's arguments.  An
optional condition (a ``--command``, a night scope) is a *flag*: the builder takes ``flag=True`` to
add it, the generated module holds one text per combination of flags, and a runner adds it when the
parameter of that name is given (not None).  A list parameter (``expanding``) is written as
``IN (...)`` with as many placeholders as it has values, as SQLAlchemy does.
"""

from __future__ import annotations

from itertools import product

from sqlalchemy import bindparam, func, select

from obsdb.catalog.models import (AlignmentRun, Centroid, Event, Frame, FrameQuality, Night, NightBandSummary,
                                  NightSummary, ShiftStep, Tag)


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


def _event_log(*, command: bool = False, scope: bool = False):
    night_id = func.coalesce(Event.night_id, Frame.night_id)
    query = (select(Event.id, Event.at, Event.author, Event.command, Event.summary, Event.details, Frame.number,
                    Frame.file_name, Night.name, Frame.number_shared)
             .outerjoin(Frame, Frame.id == Event.frame_id)
             .outerjoin(Night, Night.id == night_id)
             .order_by(Event.id.desc()).limit(bindparam("limit")))
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


def _known_bands():
    return select(Frame.band).where(Frame.band.is_not(None)).distinct()


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
    "known_bands": _known_bands,
    "known_tags": _known_tags,
}
"""Statement name -> builder (keyword flags, see the module docstring)."""

FLAGS = {"event_log": ("command", "scope"), "band_totals": ("scope",), "quality_values": ("band", "scope"),
         "frames_numbered": ("night", "scope"), "frames_named": ("scope",)}
"""The flags of each builder that has any; a flag is set when the parameter of its name is given."""


def variant_flags(name: str, params: dict) -> dict[str, bool]:
    """The flags of statement ``name`` that the ``params`` given set (a parameter given and not None)."""
    return {flag: params.get(flag) is not None for flag in FLAGS.get(name, ())}


def variants(name: str):
    """Every combination of the flags of statement ``name``, as keyword dicts."""
    flags = FLAGS.get(name, ())
    for values in product((False, True), repeat=len(flags)):
        yield dict(zip(flags, values))


def session_runner(session):
    """A ``run(name, **params)`` over an SQLAlchemy session: the statement executed as it is."""
    def run(name: str, /, **params) -> list:
        statement = STATEMENTS[name](**variant_flags(name, params))
        return session.execute(statement, {k: v for k, v in params.items() if v is not None}).all()

    return run


GENERATED = "obsdb/catalog/lite_sql.py"
"""The module :func:`generate` writes (relative to the repository root)."""

_CONVERSIONS = (("UtcDateTime", "utc"), ("JSONType", "json"), ("JSON", "json"), ("Boolean", "bool"))
"""Column types whose SQLite values SQLAlchemy converts, by class name, and the conversion
(:data:`obsdb.catalog.lite.CONVERTERS`) that does the same."""


def _conversion(column_type, dialect) -> str | None:
    for cls in type(column_type).__mro__:
        for name, kind in _CONVERSIONS:
            if cls.__name__ == name:
                return kind
    if column_type.dialect_impl(dialect).result_processor(dialect, None) is not None:
        raise TypeError(f"{type(column_type).__name__}: SQLAlchemy converts its values and the fast path "
                        "does not know how (add it to _CONVERSIONS and obsdb.catalog.lite.CONVERTERS)")
    return None


def compiled_statements() -> dict[str, dict]:
    """Every variant of every statement compiled for SQLite: key -> sql, params, expanding, convert."""
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect(paramstyle="named")
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
                "expanding": expanding,
                "convert": tuple(_conversion(c.type, dialect) for c in statement.selected_columns),
            }
    return out


def generate() -> str:
    """The text of :data:`GENERATED`: the SQL of every statement variant, for :mod:`obsdb.catalog.lite`."""
    from pprint import pformat

    from obsdb.catalog.db import SCHEMA_REVISION

    compiled = compiled_statements()

    def table(field, keep=lambda value: True):
        return pformat({key: c[field] for key, c in compiled.items() if keep(c[field])}, width=110,
                       sort_dicts=True)

    return (f'"""The SQL text of :mod:`obsdb.catalog.statements` compiled for SQLite, for the fast path\n'
            f'(:mod:`obsdb.catalog.lite`).  Generated by ``python -m obsdb.catalog.statements``: do not edit.\n'
            f'A test compiles the statements again and compares."""\n\n'
            f'SCHEMA_REVISION = {SCHEMA_REVISION!r}\n'
            f'"""The schema the SQL was compiled against: a catalog at another revision takes the normal path."""\n\n'
            f'FLAGS = {pformat(dict(FLAGS), width=110, sort_dicts=True)}\n\n'
            f'SQL = {table("sql")}\n\n'
            f'PARAMS = {table("params", bool)}\n\n'
            f'EXPANDING = {table("expanding", bool)}\n\n'
            f'CONVERT = {table("convert", any)}\n')


if __name__ == "__main__":  # pragma: no cover - `python -m obsdb.catalog.statements`
    from pathlib import Path

    target = Path(__file__).resolve().parents[2] / GENERATED
    target.write_text(generate())
    print(f"wrote {target}")
