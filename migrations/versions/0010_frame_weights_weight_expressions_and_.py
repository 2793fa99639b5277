"""frame weights, weight expressions and target aliases

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 07:23:55.194979
"""
from datetime import timezone

import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

# Weights are computed by `obsdb qa` (and by `render --weight` for frames that lack current ones), not
# backfilled here: they are relative to a set of frames and need the star lists, which the step reads.


class UtcDateTime(sa.types.TypeDecorator):
    """A timezone-aware timestamp stored in UTC: ``timestamptz`` on PostgreSQL, naive UTC text on
    SQLite; naive values are taken as UTC (frozen copy as of revision 0010)."""

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


def upgrade() -> None:
    op.create_table('target_alias',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('alias', sa.String(), nullable=False),
    sa.Column('alias_name', sa.String(), nullable=False),
    sa.Column('target', sa.String(), nullable=False),
    sa.Column('author', sa.String(), nullable=False),
    sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_target_alias')),
    sa.UniqueConstraint('alias', name=op.f('uq_target_alias_alias'))
    )
    op.create_table('weight_expression',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('expression', sa.Text(), nullable=False),
    sa.Column('author', sa.String(), nullable=False),
    sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_weight_expression')),
    sa.UniqueConstraint('name', name=op.f('uq_weight_expression_name'))
    )
    op.create_table('frame_weight',
    sa.Column('frame_id', sa.Integer(), nullable=False),
    sa.Column('noise', sa.Float(), nullable=True),
    sa.Column('fwhm', sa.Float(), nullable=True),
    sa.Column('stars', sa.Float(), nullable=True),
    sa.Column('snr', sa.Float(), nullable=True),
    sa.Column('snr_value', sa.Float(), nullable=True),
    sa.Column('set_key', sa.String(), nullable=False),
    sa.Column('set_size', sa.Integer(), nullable=False),
    sa.Column('algorithm', sa.String(), nullable=False),
    sa.Column('computed_at', UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['frame_id'], ['frame.id'], name=op.f('fk_frame_weight_frame_id_frame'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('frame_id', name=op.f('pk_frame_weight'))
    )


def downgrade() -> None:
    op.drop_table('frame_weight')
    op.drop_table('weight_expression')
    op.drop_table('target_alias')
