"""calibration masters, members and matches

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 02:09:55.236346

Schema only (no data changes): master calibration frames obsdb builds from a
night's bias, dark and flat frames (``master``), the raw frames each combines
with their SHA-256 (``master_member``), and, per light frame and kind, the
master chosen with the reason, or the reason none was (``calibration``).
"""
from datetime import timezone

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('master',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('night_id', sa.Integer(), nullable=False),
    sa.Column('instrument_id', sa.Integer(), nullable=True),
    sa.Column('band', sa.String(), nullable=True),
    sa.Column('exptime', sa.Float(), nullable=True),
    sa.Column('ccd_temp', sa.Float(), nullable=True),
    sa.Column('readout', sa.String(), nullable=False),
    sa.Column('path', sa.String(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('n_frames', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(), nullable=False),
    sa.Column('algorithm', sa.String(), nullable=False),
    sa.Column('stats', JSONType(), nullable=True),
    sa.Column('valid_from', UtcDateTime(timezone=True), nullable=True),
    sa.Column('valid_to', UtcDateTime(timezone=True), nullable=True),
    sa.Column('bad', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('bad_reason', sa.Text(), nullable=True),
    sa.Column('bad_by', sa.String(), nullable=True),
    sa.Column('author', sa.String(), nullable=False),
    sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('bias', 'dark', 'flat')", name=op.f('ck_master_kind')),
    sa.ForeignKeyConstraint(['instrument_id'], ['instrument.id'], name=op.f('fk_master_instrument_id_instrument')),
    sa.ForeignKeyConstraint(['night_id'], ['night.id'], name=op.f('fk_master_night_id_night'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_master'))
    )
    with op.batch_alter_table('master', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_master_instrument_id'), ['instrument_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_master_night_id'), ['night_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_master_path'), ['path'], unique=False)

    op.create_table('calibration',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('frame_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('master_id', sa.Integer(), nullable=True),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('scale', sa.Float(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('bias', 'dark', 'flat')", name=op.f('ck_calibration_kind')),
    sa.ForeignKeyConstraint(['frame_id'], ['frame.id'], name=op.f('fk_calibration_frame_id_frame'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['master_id'], ['master.id'], name=op.f('fk_calibration_master_id_master'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calibration')),
    sa.UniqueConstraint('frame_id', 'kind', name=op.f('uq_calibration_frame_id'))
    )
    with op.batch_alter_table('calibration', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calibration_master_id'), ['master_id'], unique=False)

    op.create_table('master_member',
    sa.Column('master_id', sa.Integer(), nullable=False),
    sa.Column('frame_id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['frame_id'], ['frame.id'], name=op.f('fk_master_member_frame_id_frame'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['master_id'], ['master.id'], name=op.f('fk_master_member_master_id_master'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('master_id', 'frame_id', name=op.f('pk_master_member'))
    )
    with op.batch_alter_table('master_member', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_master_member_frame_id'), ['frame_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('master_member', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_master_member_frame_id'))

    op.drop_table('master_member')
    with op.batch_alter_table('calibration', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calibration_master_id'))

    op.drop_table('calibration')
    with op.batch_alter_table('master', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_master_path'))
        batch_op.drop_index(batch_op.f('ix_master_night_id'))
        batch_op.drop_index(batch_op.f('ix_master_instrument_id'))

    op.drop_table('master')


# ---------------------------------------------------------------- frozen as of revision 0005
# The column types of obsdb.catalog.models as they were at this revision, copied so that the
# revision runs the same whatever the models become.


class UtcDateTime(sa.types.TypeDecorator):
    """A timezone-aware timestamp stored in UTC: ``timestamptz`` on PostgreSQL, naive UTC text on
    SQLite; naive values are taken as UTC (frozen copy as of revision 0005)."""

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
    """JSON on SQLite, JSONB on PostgreSQL (frozen copy as of revision 0005)."""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.JSON())
