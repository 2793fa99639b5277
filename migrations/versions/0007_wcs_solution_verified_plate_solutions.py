"""wcs_solution: verified plate solutions with provenance

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 07:32:31.529713

Schema only (no data to backfill: no frame has been solved before this revision): one verified plate
solution per frame (``wcs_solution``) with the solver, its version, the index that solved it, the
hints, the verification's residual and match counts, the WCS header cards and the algorithm version.
"""
from datetime import timezone

from alembic import op
import sqlalchemy as sa


revision = "0007"
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('wcs_solution',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('frame_id', sa.Integer(), nullable=False),
    sa.Column('solver', sa.String(), nullable=False),
    sa.Column('solver_version', sa.String(), nullable=False),
    sa.Column('index_used', sa.String(), nullable=False),
    sa.Column('hints', JSONType(), nullable=False),
    sa.Column('residual_arcsec', sa.Float(), nullable=False),
    sa.Column('residual_pixels', sa.Float(), nullable=False),
    sa.Column('n_matched', sa.Integer(), nullable=False),
    sa.Column('n_reference', sa.Integer(), nullable=False),
    sa.Column('pixel_scale', sa.Float(), nullable=False),
    sa.Column('wcs_header', sa.Text(), nullable=False),
    sa.Column('cpu_seconds', sa.Float(), nullable=True),
    sa.Column('algorithm', sa.String(), nullable=False),
    sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['frame_id'], ['frame.id'], name=op.f('fk_wcs_solution_frame_id_frame'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wcs_solution')),
    sa.UniqueConstraint('frame_id', name=op.f('uq_wcs_solution_frame_id'))
    )


def downgrade() -> None:
    op.drop_table('wcs_solution')


# ---------------------------------------------------------------- frozen as of revision 0007
# The column types of obsdb.catalog.models as they were at this revision, copied so that the
# revision runs the same whatever the models become.


class UtcDateTime(sa.types.TypeDecorator):
    """A timezone-aware timestamp stored in UTC: ``timestamptz`` on PostgreSQL, naive UTC text on
    SQLite; naive values are taken as UTC (frozen copy as of revision 0007)."""

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
    """JSON on SQLite, JSONB on PostgreSQL (frozen copy as of revision 0007)."""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.JSON())
