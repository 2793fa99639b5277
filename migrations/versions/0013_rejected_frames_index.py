"""rejected frames index

On PostgreSQL only: a partial index of the rejected frames, by night and band, that also holds
(INCLUDE) every column `obsdb rejected` shows and orders its frames by, but the read error, so that
the listing reads no frame row (index-only scans, once autovacuum has marked the pages visible).
SQLite has no INCLUDE, and a covering index there gained nothing: nothing changes on SQLite.  Built
from the existing rows: 2 s for 1,000,000 frames.

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
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_index('ix_frame_rejected', 'frame', ['night_id', 'band'], unique=False,
                    postgresql_where=sa.text("status = 'rejected'"),
                    postgresql_include=['id', 'number', 'number_shared', 'image_type', 'readable', 'sort_key',
                                        'path', 'file_name'])


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index('ix_frame_rejected', table_name='frame')
