"""frame status column, night summaries, frame quality

Each frame's status becomes a column kept at write time, and three derived tables hold what
archive-wide answers need (per-night and per night x instrument x band x type counts, exposure, exact
medians; each frame's band, type, FWHM and background under indexes).  Existing rows are backfilled
with set-based SQL: one UPDATE for the statuses (the status rule, frozen below as of this revision),
INSERT ... SELECT for the rest, medians by window functions.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 07:25:32.773109
"""
import sqlalchemy as sa
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


class JSONType(sa.types.TypeDecorator):
    """JSON on SQLite, JSONB on PostgreSQL (frozen copy as of revision 0011)."""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.JSON())


# The status rule as of this revision (obsdb/catalog/status.py), frozen.
MANUAL_SOURCES = ("manual", "plan", "web")
REJECTING = ("cloud", "bright-sky", "seeing", "focus", "soft", "unknown", "trail", "few-stars", "unregistered",
             "calib-level", "calib-noise", "calib-saturated", "flat-nonlinear", "flat-faint",
             "tracking-slight", "tracking-big", "focus-slight", "use-if-must", "reject")
ACCEPTING = ("accept",)
POSITIVE = ("great", "okay")
RUN_BOUND = ("unregistered",)


def _list(values):
    return "(" + ", ".join(f"'{v}'" for v in sorted(values)) + ")"


def _active(alias, names, manual=None):
    where = f"{alias}.frame_id = frame.id AND {alias}.retracted_at IS NULL AND {alias}.name IN {_list(names)}"
    if manual is True:
        where += f" AND {alias}.source IN {_list(MANUAL_SOURCES)}"
    elif manual is False:
        where += f" AND {alias}.source NOT IN {_list(MANUAL_SOURCES)}"
    return where


def _latest_person_verdict(names):
    newer = _active("n", (*REJECTING, *ACCEPTING), manual=True) + " AND n.id > t.id"
    return (f"EXISTS (SELECT 1 FROM tag t WHERE {_active('t', names, manual=True)} "
            f"AND NOT EXISTS (SELECT 1 FROM tag n WHERE {newer}))")


STATUS_SQL = f"""UPDATE frame SET status = CASE
  WHEN frame.readable = false THEN 'rejected'
  WHEN {_latest_person_verdict(REJECTING)} THEN 'rejected'
  WHEN {_latest_person_verdict(ACCEPTING)} THEN 'accepted'
  WHEN EXISTS (SELECT 1 FROM tag t WHERE {_active('t', set(REJECTING) - set(RUN_BOUND), manual=False)})
    OR (EXISTS (SELECT 1 FROM tag t WHERE {_active('t', RUN_BOUND, manual=False)})
        AND NOT EXISTS (SELECT 1 FROM shift_step s WHERE s.frame_id = frame.id)) THEN 'rejected'
  WHEN EXISTS (SELECT 1 FROM frame_metrics m WHERE m.frame_id = frame.id AND m.assessed_at IS NOT NULL)
    OR EXISTS (SELECT 1 FROM tag t WHERE {_active('t', POSITIVE)}) THEN 'accepted'
  ELSE 'pending' END"""

COUNTS = """count(*), sum(CASE WHEN f.readable THEN 0 ELSE 1 END),
  sum(CASE WHEN f.status = 'accepted' THEN 1 ELSE 0 END), sum(CASE WHEN f.status = 'rejected' THEN 1 ELSE 0 END),
  sum(CASE WHEN f.status = 'pending' THEN 1 ELSE 0 END), sum(coalesce(f.exptime, 0.0))"""

BAND_KEYS = ("night_id", "instrument_id", "band", "image_type")


def _medians(keys, metric):
    """SELECT keys..., median(metric): the middle value, or the mean of the two middle ones."""
    inner = {"night_id": "q.night_id", "instrument_id": "coalesce(f.instrument_id, 0)", "band": "q.band",
             "image_type": "q.image_type"}
    chosen = ", ".join(f"{inner[k]} AS {k}" for k in keys)
    partition = ", ".join(inner[k] for k in keys)
    outer = ", ".join(keys)
    return (f"SELECT {outer}, avg(v) FROM (SELECT {chosen}, q.{metric} AS v, "
            f"row_number() OVER (PARTITION BY {partition} ORDER BY q.{metric}) AS rk, "
            f"count(*) OVER (PARTITION BY {partition}) AS n "
            f"FROM frame_quality q JOIN frame f ON f.id = q.frame_id WHERE q.{metric} IS NOT NULL) r "
            f"WHERE rk BETWEEN (n + 1) / 2 AND (n + 2) / 2 GROUP BY {outer}")


def _backfill() -> None:
    bind = op.get_bind()
    op.execute(STATUS_SQL)
    op.execute("INSERT INTO frame_quality (frame_id, night_id, band, image_type, fwhm, background) "
               "SELECT f.id, f.night_id, coalesce(f.band, ''), coalesce(f.image_type, ''), m.fwhm, s.background "
               "FROM frame f LEFT JOIN frame_metrics m ON m.frame_id = f.id "
               "LEFT JOIN frame_stats s ON s.frame_id = f.id")
    op.execute("INSERT INTO night_band_summary (night_id, instrument_id, band, image_type, frames, unreadable, "
               f"accepted, rejected, pending, exptime) SELECT f.night_id, f.instrument_id, coalesce(f.band, ''), "
               f"coalesce(f.image_type, ''), {COUNTS} FROM frame f "
               "GROUP BY f.night_id, f.instrument_id, coalesce(f.band, ''), coalesce(f.image_type, '')")
    op.execute("INSERT INTO night_summary (night_id, frames, unreadable, accepted, rejected, pending, exptime) "
               f"SELECT f.night_id, {COUNTS} FROM frame f GROUP BY f.night_id")
    # Medians through a scratch table (portable UPDATE ... = (SELECT ...) with an index behind it).
    op.create_table("obsdb_0011_medians", sa.Column("night_id", sa.Integer), sa.Column("instrument_id", sa.Integer),
                    sa.Column("band", sa.String), sa.Column("image_type", sa.String), sa.Column("value", sa.Float))
    op.create_index("ix_obsdb_0011_medians", "obsdb_0011_medians", list(BAND_KEYS))
    for keys, table in ((BAND_KEYS, "night_band_summary"), (("night_id",), "night_summary")):
        for metric in ("fwhm", "background"):
            op.execute("DELETE FROM obsdb_0011_medians")
            op.execute(f"INSERT INTO obsdb_0011_medians ({', '.join(keys)}, value) {_medians(keys, metric)}")
            match = " AND ".join(f"m.{k} = coalesce({table}.{k}, 0)" if k == "instrument_id" else f"m.{k} = {table}.{k}"
                                 for k in keys)
            op.execute(f"UPDATE {table} SET median_{metric} = (SELECT m.value FROM obsdb_0011_medians m WHERE {match})")
    op.drop_table("obsdb_0011_medians")
    # Each night's facets: one DISTINCT over the night facets index, written back per night.
    facets = {}
    for night_id, band, target, key in bind.execute(sa.text(
            "SELECT DISTINCT c.night_id, c.band, c.object, i.key FROM (SELECT DISTINCT night_id, band, object, "
            "instrument_id FROM frame) c LEFT JOIN instrument i ON i.id = c.instrument_id")):
        row = facets.setdefault(night_id, (set(), set(), set()))
        for values, value in zip(row, (band or None, target, key)):
            if value is not None:
                values.add(value)
    summary = sa.table("night_summary", sa.column("night_id", sa.Integer), sa.column("bands", JSONType()),
                       sa.column("targets", JSONType()), sa.column("instruments", JSONType()))
    rows = [{"n": n, "b": sorted(b), "t": sorted(t), "i": sorted(i)} for n, (b, t, i) in facets.items()]
    if rows:
        bind.execute(summary.update().where(summary.c.night_id == sa.bindparam("n"))
                     .values(bands=sa.bindparam("b", type_=JSONType()), targets=sa.bindparam("t", type_=JSONType()),
                             instruments=sa.bindparam("i", type_=JSONType())), rows)

def upgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    op.create_table('night_band_summary',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('night_id', sa.Integer(), nullable=False),
    sa.Column('instrument_id', sa.Integer(), nullable=True),
    sa.Column('band', sa.String(), nullable=False),
    sa.Column('image_type', sa.String(), nullable=False),
    sa.Column('frames', sa.Integer(), nullable=False),
    sa.Column('unreadable', sa.Integer(), nullable=False),
    sa.Column('accepted', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('pending', sa.Integer(), nullable=False),
    sa.Column('exptime', sa.Float(), nullable=False),
    sa.Column('median_fwhm', sa.Float(), nullable=True),
    sa.Column('median_background', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['instrument_id'], ['instrument.id'], name=op.f('fk_night_band_summary_instrument_id_instrument'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['night_id'], ['night.id'], name=op.f('fk_night_band_summary_night_id_night'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_night_band_summary'))
    )
    with op.batch_alter_table('night_band_summary', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_night_band_summary_night_id'), ['night_id'], unique=False)

    op.create_table('night_summary',
    sa.Column('night_id', sa.Integer(), nullable=False),
    sa.Column('frames', sa.Integer(), nullable=False),
    sa.Column('unreadable', sa.Integer(), nullable=False),
    sa.Column('accepted', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('pending', sa.Integer(), nullable=False),
    sa.Column('exptime', sa.Float(), nullable=False),
    sa.Column('median_fwhm', sa.Float(), nullable=True),
    sa.Column('median_background', sa.Float(), nullable=True),
    sa.Column('bands', JSONType(), nullable=True),
    sa.Column('targets', JSONType(), nullable=True),
    sa.Column('instruments', JSONType(), nullable=True),
    sa.ForeignKeyConstraint(['night_id'], ['night.id'], name=op.f('fk_night_summary_night_id_night'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('night_id', name=op.f('pk_night_summary'))
    )
    op.create_table('frame_quality',
    sa.Column('frame_id', sa.Integer(), nullable=False),
    sa.Column('night_id', sa.Integer(), nullable=False),
    sa.Column('band', sa.String(), nullable=False),
    sa.Column('image_type', sa.String(), nullable=False),
    sa.Column('fwhm', sa.Float(), nullable=True),
    sa.Column('background', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['frame_id'], ['frame.id'], name=op.f('fk_frame_quality_frame_id_frame'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['night_id'], ['night.id'], name=op.f('fk_frame_quality_night_id_night'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('frame_id', name=op.f('pk_frame_quality'))
    )
    with op.batch_alter_table('frame_quality', schema=None) as batch_op:
        batch_op.create_index('ix_frame_quality_background', ['band', 'image_type', 'background'], unique=False)
        batch_op.create_index('ix_frame_quality_fwhm', ['band', 'image_type', 'fwhm'], unique=False)
        batch_op.create_index(batch_op.f('ix_frame_quality_night_id'), ['night_id'], unique=False)

    with op.batch_alter_table('frame', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=8), server_default='pending', nullable=False))
        batch_op.create_index('ix_frame_night_status_band', ['night_id', 'status', 'band'], unique=False)

    # ### end Alembic commands ###
    _backfill()


def downgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    with op.batch_alter_table('frame', schema=None) as batch_op:
        batch_op.drop_index('ix_frame_night_status_band')
        batch_op.drop_column('status')

    with op.batch_alter_table('frame_quality', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_frame_quality_night_id'))
        batch_op.drop_index('ix_frame_quality_fwhm')
        batch_op.drop_index('ix_frame_quality_background')

    op.drop_table('frame_quality')
    op.drop_table('night_summary')
    with op.batch_alter_table('night_band_summary', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_night_band_summary_night_id'))

    op.drop_table('night_band_summary')
    # ### end Alembic commands ###
