"""rejected frames index

A partial index of the rejected frames, by night and band.  On PostgreSQL it also holds (INCLUDE)
every column `obsdb rejected` shows and orders its frames by, but the read error, so that the
listing reads no frame row (index-only scans, once autovacuum has marked the pages visible).  SQLite,
which has no INCLUDE, gets the partial index alone.  Built from the existing rows: a few seconds for
1,000,000 frames.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 07:09:40.920634
"""
import sqlalchemy as sa
from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('frame', schema=None) as batch_op:
        batch_op.create_index('ix_frame_rejected', ['night_id', 'band'], unique=False, sqlite_where=sa.text("status = 'rejected'"), postgresql_where=sa.text("status = 'rejected'"), postgresql_include=['id', 'number', 'number_shared', 'image_type', 'readable', 'sort_key', 'path', 'file_name'])



def downgrade() -> None:
    with op.batch_alter_table('frame', schema=None) as batch_op:
        batch_op.drop_index('ix_frame_rejected', sqlite_where=sa.text("status = 'rejected'"), postgresql_where=sa.text("status = 'rejected'"), postgresql_include=['id', 'number', 'number_shared', 'image_type', 'readable', 'sort_key', 'path', 'file_name'])

