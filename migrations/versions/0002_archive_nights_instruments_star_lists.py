"""archive: nights, instruments, star lists, decisions by frame id

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 11:07:51.707286

A catalog of one night becomes an archive: every frame gets a night (from
its DATE-OBS, else its folder) and an instrument (TELESCOP, INSTRUME, shape,
binning); pointing groups, decisions and alignment runs get their night;
decisions name their frame by id; events' ``user`` becomes ``author``; the
60 stars kept for transparency move to the ``star_list`` table (marked with
a legacy version, so align re-detects them once); timestamps become
timezone-aware and JSON becomes JSONB on PostgreSQL.  Nothing is lost.
"""
import math
import re
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import numpy as np
import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

LEGACY_STARS_VERSION = "metrics-stars-0001"
"""Star lists carried over from 0001's frame_metrics.stars: x, y, flux only."""

TIMESTAMPS = {
    "frame": ("date_obs", "ingested_at", "measured_at"),
    "frame_metrics": ("measured_at", "assessed_at"),
    "tag": ("created_at", "retracted_at"),
    "event": ("at",),
    "decision": ("created_at",),
    "pointing_group": ("created_at",),
    "alignment_run": ("created_at",),
    "centroid": ("measured_at",),
    "render_output": ("created_at",),
}
JSON_COLUMNS = {
    "frame": ("header",), "event": ("details",), "decision": ("value",), "alignment_run": ("parameters",),
    "shift_step": ("parameters",), "render_output": ("parameters",),
}


# ---------------------------------------------------------------- frozen as of revision 0002
# The column types of obsdb.catalog.models as they were at this revision, copied so that the
# revision runs the same whatever the models become.


class UtcDateTime(sa.types.TypeDecorator):
    """A timezone-aware timestamp stored in UTC: ``timestamptz`` on PostgreSQL, naive UTC text on
    SQLite; naive values are taken as UTC (frozen copy as of revision 0002)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class JSONType(sa.types.TypeDecorator):
    """JSON on SQLite, JSONB on PostgreSQL (frozen copy as of revision 0002)."""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.JSON())


UTC = UtcDateTime(timezone=True)


def _in(column, values):
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table('instrument',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(), nullable=False),
    sa.Column('telescope', sa.String(), nullable=True),
    sa.Column('camera', sa.String(), nullable=True),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('binning_x', sa.Integer(), nullable=True),
    sa.Column('binning_y', sa.Integer(), nullable=True),
    sa.Column('pixel_size', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instrument')),
    sa.UniqueConstraint('key', name=op.f('uq_instrument_key'))
    )
    op.create_table('night',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('source', sa.String(), nullable=False),
    sa.Column('site', sa.String(), nullable=True),
    sa.Column('longitude', sa.Float(), nullable=True),
    sa.Column('first_date_obs', UTC, nullable=True),
    sa.Column('last_date_obs', UTC, nullable=True),
    sa.Column('created_at', UTC, nullable=False),
    sa.CheckConstraint("source IN ('date-obs', 'folder', 'manual')", name=op.f('ck_night_source')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_night')),
    sa.UniqueConstraint('name', name=op.f('uq_night_name'))
    )
    op.create_table('star_list',
    sa.Column('frame_id', sa.Integer(), nullable=False),
    sa.Column('n_stars', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('algorithm', sa.String(), nullable=False),
    sa.Column('measured_at', UTC, nullable=False),
    sa.ForeignKeyConstraint(['frame_id'], ['frame.id'], name=op.f('fk_star_list_frame_id_frame'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('frame_id', name=op.f('pk_star_list'))
    )
    # New columns, nullable first: the data step below fills them.
    with op.batch_alter_table('frame', schema=None) as batch_op:
        batch_op.add_column(sa.Column('night_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('instrument_id', sa.Integer(), nullable=True))
    with op.batch_alter_table('pointing_group', schema=None) as batch_op:
        batch_op.add_column(sa.Column('night_id', sa.Integer(), nullable=True))
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('author', sa.String(), nullable=True))
        batch_op.add_column(sa.Column('night_id', sa.Integer(), nullable=True))
    with op.batch_alter_table('decision', schema=None) as batch_op:
        batch_op.add_column(sa.Column('night_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('frame_id', sa.Integer(), nullable=True))
    with op.batch_alter_table('alignment_run', schema=None) as batch_op:
        batch_op.add_column(sa.Column('night_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('target', sa.String(), nullable=True))
        batch_op.add_column(sa.Column('algorithm', sa.String(), nullable=True))
    with op.batch_alter_table('frame_metrics', schema=None) as batch_op:
        batch_op.add_column(sa.Column('transparency_reference_id', sa.Integer(), nullable=True))
    with op.batch_alter_table('centroid', schema=None) as batch_op:
        batch_op.add_column(sa.Column('star_index', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('reference_star_index', sa.Integer(), nullable=True))
    with op.batch_alter_table('shift_step', schema=None) as batch_op:
        batch_op.add_column(sa.Column('frame_sha256', sa.String(length=64), nullable=True))

    _migrate_data(op.get_bind())

    with op.batch_alter_table('alignment_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alignment_run_night_id'), ['night_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_alignment_run_night_id_night'), 'night', ['night_id'], ['id'], ondelete='SET NULL')
        batch_op.create_check_constraint('method', _in('method', ('auto', 'staged')))

    with op.batch_alter_table('centroid', schema=None) as batch_op:
        batch_op.alter_column('x', existing_type=sa.FLOAT(), nullable=True)
        batch_op.alter_column('y', existing_type=sa.FLOAT(), nullable=True)
        batch_op.create_check_constraint('source', _in('source', ('box', 'detection')))
        batch_op.create_check_constraint('position', '(x IS NOT NULL AND y IS NOT NULL) OR star_index IS NOT NULL')

    with op.batch_alter_table('decision', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_decision_key'))
        batch_op.create_index('ix_decision_night_key', ['night_id', 'key'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_decision_night_id_night'), 'night', ['night_id'], ['id'], ondelete='CASCADE')
        batch_op.create_foreign_key(batch_op.f('fk_decision_frame_id_frame'), 'frame', ['frame_id'], ['id'], ondelete='SET NULL')
        batch_op.create_check_constraint('key', _in('key', ('reference_frame', 'reference_star', 'fine_box')))
        batch_op.create_check_constraint('source', _in('source', ('manual', 'plan', 'auto')))

    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.alter_column('author', existing_type=sa.String(), nullable=False)
        batch_op.create_index(batch_op.f('ix_event_command'), ['command'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_event_night_id_night'), 'night', ['night_id'], ['id'], ondelete='SET NULL')
        batch_op.drop_column('user')

    with op.batch_alter_table('frame', schema=None) as batch_op:
        batch_op.alter_column('night_id', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('size', existing_type=sa.INTEGER(), type_=sa.BigInteger(), existing_nullable=False)
        batch_op.drop_index(batch_op.f('ix_frame_image_type'))
        batch_op.create_index(batch_op.f('ix_frame_instrument_id'), ['instrument_id'], unique=False)
        batch_op.create_index('ix_frame_night_band_type', ['night_id', 'band', 'image_type'], unique=False)
        batch_op.create_index('ix_frame_night_number', ['night_id', 'number'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_frame_night_id_night'), 'night', ['night_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_frame_instrument_id_instrument'), 'instrument', ['instrument_id'], ['id'])

    with op.batch_alter_table('frame_metrics', schema=None) as batch_op:
        batch_op.create_foreign_key(batch_op.f('fk_frame_metrics_transparency_reference_id_frame'), 'frame', ['transparency_reference_id'], ['id'], ondelete='SET NULL')
        batch_op.drop_column('stars')

    with op.batch_alter_table('pointing_group', schema=None) as batch_op:
        batch_op.alter_column('night_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_constraint(batch_op.f('uq_pointing_group_name'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_pointing_group_night_id'), ['night_id', 'name'])
        batch_op.create_foreign_key(batch_op.f('fk_pointing_group_night_id_night'), 'night', ['night_id'], ['id'], ondelete='CASCADE')
        batch_op.create_check_constraint('source', _in('source', ('auto', 'manual', 'plan')))

    with op.batch_alter_table('render_output', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_render_output_frame_id'), ['frame_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_render_output_path'), ['path'], unique=False)
        batch_op.create_check_constraint('kind', _in('kind', ('aligned', 'stack', 'preview')))

    with op.batch_alter_table('shift_step', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shift_step_frame_id'))
        batch_op.drop_index(batch_op.f('ix_shift_step_run_frame'))
        batch_op.create_index('ix_shift_step_frame_run', ['frame_id', 'run_id'], unique=False)
        batch_op.create_check_constraint('kind', _in('kind', ('within-group', 'group-offset', 'fine', 'auto', 'manual')))
        batch_op.create_check_constraint('stage', 'stage IN (1, 2, 3)')

    with op.batch_alter_table('tag', schema=None) as batch_op:
        batch_op.create_index('ix_tag_active_frame', ['frame_id', 'name'], unique=False, sqlite_where=sa.text('retracted_at IS NULL'), postgresql_where=sa.text('retracted_at IS NULL'))
        batch_op.create_check_constraint('source', "source IN ('manual', 'plan', 'web') OR source LIKE 'rule:%'")

    if op.get_bind().dialect.name == "postgresql":
        # 0001 made naive timestamps (always UTC) and plain JSON.
        for table, columns in TIMESTAMPS.items():
            for column in columns:
                op.execute(f'ALTER TABLE {table} ALTER COLUMN {column} TYPE TIMESTAMP WITH TIME ZONE '
                           f"USING {column} AT TIME ZONE 'UTC'")
        for table, columns in JSON_COLUMNS.items():
            for column in columns:
                op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE JSONB USING {column}::jsonb")


def _migrate_data(bind) -> None:
    """Nights, instruments, star lists, decision frames, event authors: set-based where it can be."""
    meta = sa.MetaData()
    frame = sa.Table("frame", meta, autoload_with=bind)
    night = sa.Table("night", meta, autoload_with=bind)
    instrument = sa.Table("instrument", meta, autoload_with=bind)
    metrics = sa.Table("frame_metrics", meta, autoload_with=bind)
    star_list = sa.Table("star_list", meta, autoload_with=bind)
    group = sa.Table("pointing_group", meta, autoload_with=bind)
    member = sa.Table("group_member", meta, autoload_with=bind)
    decision = sa.Table("decision", meta, autoload_with=bind)
    event = sa.Table("event", meta, autoload_with=bind)
    run = sa.Table("alignment_run", meta, autoload_with=bind)
    step = sa.Table("shift_step", meta, autoload_with=bind)

    nights: dict[str, dict] = {}
    instruments: dict[str, dict] = {}
    frame_night: dict[int, str] = {}
    frame_instrument: dict[int, str] = {}
    rows = bind.execute(sa.select(frame.c.id, frame.c.path, frame.c.header, frame.c.date_obs, frame.c.width,
                                  frame.c.height, frame.c.readable)).all()
    for row in rows:
        header = row.header or {}
        date = row.date_obs if row.date_obs is not None else parse_date_obs(header)
        if isinstance(date, str):
            date = datetime.fromisoformat(date)
        longitude = site_longitude(header)
        name = night_name(date, longitude)
        source = "date-obs"
        if name is None:
            name, source = row.path.rstrip("/").rsplit("/", 2)[-2] or "unknown", "folder"
        entry = nights.setdefault(name, {"name": name, "source": source, "site": site_name(header),
                                         "longitude": longitude, "dates": []})
        if date is not None:
            entry["dates"].append(date)
        frame_night[row.id] = name
        if row.readable and row.header is not None:
            identity = instrument_identity(header, row.width, row.height)
            instruments.setdefault(identity["key"], identity)
            frame_instrument[row.id] = identity["key"]
    now = datetime.utcnow()
    if nights:
        bind.execute(night.insert(), [{"name": n["name"], "source": n["source"], "site": n["site"],
                                       "longitude": n["longitude"], "created_at": now,
                                       "first_date_obs": min(n["dates"]) if n["dates"] else None,
                                       "last_date_obs": max(n["dates"]) if n["dates"] else None}
                                      for n in nights.values()])
    if instruments:
        bind.execute(instrument.insert(), list(instruments.values()))
    night_ids = dict(bind.execute(sa.select(night.c.name, night.c.id)).all())
    instrument_ids = dict(bind.execute(sa.select(instrument.c.key, instrument.c.id)).all())
    if frame_night:
        bind.execute(frame.update().where(frame.c.id == sa.bindparam("fid"))
                     .values(night_id=sa.bindparam("nid"), instrument_id=sa.bindparam("iid")),
                     [{"fid": i, "nid": night_ids[n], "iid": instrument_ids.get(frame_instrument.get(i))}
                      for i, n in frame_night.items()])
    frame_night_id = {i: night_ids[n] for i, n in frame_night.items()}
    only_night = next(iter(night_ids.values())) if len(night_ids) == 1 else None

    # The transparency stars of 0001 become legacy star lists (x, y, flux; the rest NaN).
    stored = STAR_DTYPE.newbyteorder("<")
    lists = []
    for frame_id, stars, measured_at in bind.execute(sa.select(metrics.c.frame_id, metrics.c.stars,
                                                               metrics.c.measured_at)):
        if not stars:
            continue
        array = np.zeros(len(stars), dtype=stored)
        for field in stored.names:
            if array.dtype[field].kind == "f":
                array[field] = np.nan
        array["x"], array["y"], array["flux"] = (np.array([s[k] for s in stars], dtype=float) for k in range(3))
        array["saturated"] = False
        lists.append({"frame_id": frame_id, "n_stars": len(array), "data": array.tobytes(),
                      "algorithm": LEGACY_STARS_VERSION, "measured_at": measured_at or now})
    if lists:
        bind.execute(star_list.insert(), lists)

    # A group's night is its members'; an empty group goes to the catalog's only night.
    members = defaultdict(set)
    for group_id, frame_id in bind.execute(sa.select(member.c.group_id, member.c.frame_id)):
        members[group_id].add(frame_night_id.get(frame_id))
    for (group_id,) in bind.execute(sa.select(group.c.id)).all():
        ids = sorted(n for n in members.get(group_id, ()) if n is not None)
        night_id = ids[0] if ids else (only_night or _unknown_night(bind, night, now))
        bind.execute(group.update().where(group.c.id == group_id).values(night_id=night_id))

    # Decisions: reference_frame names its frame by id; all of 0001's decisions were for one night.
    by_number = defaultdict(list)
    by_path = {}
    for frame_id, number, path in bind.execute(sa.select(frame.c.id, frame.c.number, frame.c.path)):
        by_number[number].append(frame_id)
        by_path[path] = frame_id
    decided_night = only_night
    for row in bind.execute(sa.select(decision.c.id, decision.c.key, decision.c.value)
                            .order_by(decision.c.id)).all():
        value = row.value or {}
        frame_id = None
        if row.key == "reference_frame":
            frame_id = by_path.get(value.get("path"))
            if frame_id is None and len(by_number.get(value.get("frame"), ())) == 1:
                frame_id = by_number[value.get("frame")][0]
            if frame_id is not None:
                decided_night = frame_night_id.get(frame_id, decided_night)
        bind.execute(decision.update().where(decision.c.id == row.id)
                     .values(frame_id=frame_id, night_id=frame_night_id.get(frame_id, decided_night)))

    bind.execute(event.update().values(author=event.c.user))
    event_frames = bind.execute(sa.select(event.c.id, event.c.frame_id).where(event.c.frame_id.is_not(None))).all()
    if event_frames:
        bind.execute(event.update().where(event.c.id == sa.bindparam("eid")).values(night_id=sa.bindparam("nid")),
                     [{"eid": e, "nid": frame_night_id.get(f)} for e, f in event_frames])

    # A run's night: the one night of its frames (NULL when it spans several).
    run_nights = defaultdict(set)
    for run_id, frame_id in bind.execute(sa.select(step.c.run_id, step.c.frame_id).distinct()):
        run_nights[run_id].add(frame_night_id.get(frame_id))
    for run_id, parameters in bind.execute(sa.select(run.c.id, run.c.parameters)).all():
        spanned = run_nights.get(run_id, set())
        target = (parameters or {}).get("target")
        bind.execute(run.update().where(run.c.id == run_id).values(
            night_id=next(iter(spanned)) if len(spanned) == 1 else None, target=target))
    # Steps of 0001 were measured on the content catalogued then.
    bind.execute(step.update().values(frame_sha256=sa.select(frame.c.sha256).where(frame.c.id == step.c.frame_id)
                                      .scalar_subquery()))


def _unknown_night(bind, night, now) -> int:
    """A night for catalog rows that have none (only in catalogs of several nights)."""
    existing = bind.execute(sa.select(night.c.id).where(night.c.name == "unknown")).scalar()
    if existing is not None:
        return existing
    return bind.execute(night.insert().values(name="unknown", source="folder", created_at=now)
                        .returning(night.c.id)).scalar()


def downgrade() -> None:
    raise NotImplementedError("a catalog cannot be taken back below revision 0002 "
                              "(nights and instruments would be lost); restore a copy instead")


# ---------------------------------------------------------------- frozen as of revision 0002
# What this revision's data migration uses of obsdb.imaging.header and obsdb.imaging.stars,
# copied as they were at revision 0002, so that an old catalog is migrated the same way
# whatever those modules become.

STAR_DTYPE = np.dtype([
    ("x", "f8"), ("y", "f8"),
    ("flux", "f8"), ("flux_iso", "f8"), ("peak", "f8"),
    ("a", "f4"), ("b", "f4"), ("theta", "f4"),
    ("fwhm", "f4"), ("hfd", "f4"), ("elongation", "f4"),
    ("npix", "i4"), ("saturated", "?"), ("flag", "i4"),
])
"""Fields of a star list (obsdb.imaging.stars.STAR_DTYPE as of revision 0002)."""


_DMY = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{2})$")


def parse_date_obs(header: dict) -> datetime | None:
    """Start of exposure in UTC (naive datetime), or None when absent/unparseable.

    Understands ISO dates with or without time (then TIME-OBS/UT/UTSTART is
    added), and the pre-2000 FITS form ``DD/MM/YY`` (years 19YY).
    """
    raw = header.get("DATE-OBS") or header.get("DATE_OBS")
    if not isinstance(raw, str) or not raw.strip():
        return None
    text = raw.strip().rstrip("Z")
    match = _DMY.match(text)
    if match:
        day, month, year = (int(g) for g in match.groups())
        try:
            date = datetime(1900 + year, month, day)
        except ValueError:
            return None
        return _add_time(date, header)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = (parsed - parsed.utcoffset()).replace(tzinfo=None)
    if "T" not in text and " " not in text:
        return _add_time(parsed, header)
    return parsed


def _add_time(date: datetime, header: dict) -> datetime:
    for key in ("TIME-OBS", "UT", "UTSTART", "UT-START"):
        value = header.get(key)
        if isinstance(value, str) and re.match(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$", value.strip()):
            parts = value.strip().split(":")
            seconds = float(parts[2]) if len(parts) > 2 else 0.0
            return date + timedelta(hours=int(parts[0]), minutes=int(parts[1]), seconds=seconds)
    return date


def _number(header: dict, *keys: str) -> float | None:
    for key in keys:
        value = header.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                continue
    return None


def _text(header: dict, *keys: str) -> str | None:
    for key in keys:
        value = header.get(key)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


_SEXAGESIMAL = re.compile(r"^\s*([+-]?)\s*(\d{1,3})[\s:d°]+(\d{1,2})(?:[\s:m']+(\d{1,2}(?:\.\d*)?))?\s*[s\"]?\s*$")


def _degrees(value) -> float | None:
    """Degrees from a number or a sexagesimal string ('-70 44 04', '+011:23:45.6')."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    try:
        number = float(value)
        return number if math.isfinite(number) else None
    except ValueError:
        pass
    match = _SEXAGESIMAL.match(value)
    if not match:
        return None
    sign, d, m, s = match.groups()
    degrees = int(d) + int(m) / 60.0 + float(s or 0.0) / 3600.0
    return -degrees if sign == "-" else degrees


def site_longitude(header: dict) -> float | None:
    """The site's longitude in degrees east, from SITELONG, LONG-OBS, OBSGEO-L or OBSGEO-X/Y.

    SITELONG and LONG-OBS are read east-positive, as the FITS standard's
    OBSGEO-L is.  Returns None when no keyword gives a longitude within +-360.
    """
    for key in ("SITELONG", "LONG-OBS", "OBSGEO-L", "LONGITUD"):
        degrees = _degrees(header.get(key))
        if degrees is not None and abs(degrees) <= 360.0:
            return ((degrees + 180.0) % 360.0) - 180.0
    x, y = _number(header, "OBSGEO-X"), _number(header, "OBSGEO-Y")
    if x is not None and y is not None and (x or y):
        return math.degrees(math.atan2(y, x))
    return None


def site_name(header: dict) -> str | None:
    """The site's name from SITENAME, OBSERVAT or SITE."""
    return _text(header, "SITENAME", "OBSERVAT", "SITE")


def night_name(date_obs: datetime | None, longitude: float | None = None) -> str | None:
    """The night a frame belongs to: the local date at the start of the night.

    A night runs from local noon to the next local noon, so a frame taken
    after midnight belongs to the night that began the evening before.  With
    a site longitude, local mean solar time (UTC + longitude / 15 h) is used;
    without one, the UTC date of ``date_obs - 12 h``.

    Parameters
    ----------
    date_obs : datetime or None
        Start of exposure, UTC (naive or aware).
    longitude : float, optional
        Degrees east.

    Returns
    -------
    str or None
        ``YYYY-MM-DD``, or None without a date.
    """
    if date_obs is None:
        return None
    if date_obs.tzinfo is not None:
        date_obs = date_obs.astimezone(timezone.utc).replace(tzinfo=None)
    local = date_obs + timedelta(hours=(longitude or 0.0) / 15.0)
    return (local - timedelta(hours=12)).date().isoformat()


def instrument_identity(header: dict, width: int | None, height: int | None) -> dict:
    """Telescope, camera, read-out shape, binning and pixel size of a frame, and their key.

    Two frames are of the same instrument when all of these agree; the
    ``key`` is their canonical text (``telescope|camera|WxH|XxY``).
    """
    telescope = _text(header, "TELESCOP")
    camera = _text(header, "INSTRUME", "CAMERA", "DETECTOR")
    bx, by = _number(header, "XBINNING", "BINX", "CCDXBIN"), _number(header, "YBINNING", "BINY", "CCDYBIN")
    binning_x = int(bx) if bx else None
    binning_y = int(by) if by else binning_x
    pixel = _number(header, "XPIXSZ", "PIXSIZE1", "PIXSIZE")
    key = "|".join([telescope or "", camera or "", f"{width or 0}x{height or 0}",
                    f"{binning_x or 1}x{binning_y or 1}"])
    return {"key": key, "telescope": telescope, "camera": camera, "width": width, "height": height,
            "binning_x": binning_x, "binning_y": binning_y, "pixel_size": pixel}
