"""index of each night's bands, targets and instruments

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 12:20:31.885297

`obsdb nights` lists each night's bands, targets and instruments; over an
archive of a million frames that was a scan of every frame row (0.9 s),
and with this covering index it reads the index only.
"""
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('frame', schema=None) as batch_op:
        batch_op.create_index('ix_frame_night_facets', ['night_id', 'band', 'object', 'instrument_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('frame', schema=None) as batch_op:
        batch_op.drop_index('ix_frame_night_facets')

