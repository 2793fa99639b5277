"""detector defect map

A night's detector defects (warm pixels found in several of its frames together), kept per night,
instrument, frame size and search version, so that a second render of the night reads them instead of
reading frames again.  A new, empty table: nothing to backfill (the next render computes the maps).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 10:26:59.869884
"""
import sqlalchemy as sa
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('detector_defect_map',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('night_id', sa.Integer(), nullable=True),
    sa.Column('instrument_id', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('version', sa.String(), nullable=False),
    sa.Column('sample', sa.String(length=64), nullable=False),
    sa.Column('n_defects', sa.Integer(), nullable=False),
    sa.Column('indices', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['instrument_id'], ['instrument.id'], name=op.f('fk_detector_defect_map_instrument_id_instrument'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['night_id'], ['night.id'], name=op.f('fk_detector_defect_map_night_id_night'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_detector_defect_map'))
    )
    with op.batch_alter_table('detector_defect_map', schema=None) as batch_op:
        batch_op.create_index('ix_detector_defect_map_night_instrument', ['night_id', 'instrument_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('detector_defect_map', schema=None) as batch_op:
        batch_op.drop_index('ix_detector_defect_map_night_instrument')

    op.drop_table('detector_defect_map')
