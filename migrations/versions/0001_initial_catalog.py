"""initial catalog

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 04:13:59.686577
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('decision',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('source', sa.String(), nullable=False),
    sa.Column('author', sa.String(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_decision'))
    )
    with op.batch_alter_table('decision', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_decision_key'), ['key'], unique=False)

    op.create_table('frame',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(), nullable=False),
    sa.Column('file_name', sa.String(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('mtime', sa.Float(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('number', sa.Integer(), nullable=True),
    sa.Column('band', sa.String(), nullable=True),
    sa.Column('image_type', sa.String(), nullable=True),
    sa.Column('object', sa.String(), nullable=True),
    sa.Column('exptime', sa.Float(), nullable=True),
    sa.Column('date_obs', sa.DateTime(), nullable=True),
    sa.Column('airmass', sa.Float(), nullable=True),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('bitpix', sa.Integer(), nullable=True),
    sa.Column('header', sa.JSON(), nullable=True),
    sa.Column('readable', sa.Boolean(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('ingested_at', sa.DateTime(), nullable=False),
    sa.Column('measured_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_frame')),
    sa.UniqueConstraint('path', name=op.f('uq_frame_path'))
    )
    with op.batch_alter_table('frame', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_frame_band'), ['band'], unique=False)
        batch_op.create_index(batch_op.f('ix_frame_date_obs'), ['date_obs'], unique=False)
        batch_op.create_index(batch_op.f('ix_frame_image_type'), ['image_type'], unique=False)
        batch_op.create_index(batch_op.f('ix_frame_number'), ['number'], unique=False)

    op.create_table('alignment_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('method', sa.String(), nullable=False),
    sa.Column('reference_frame_id', sa.Integer(), nullable=True),
    sa.Column('parameters', sa.JSON(), nullable=True),
    sa.Column('software_version', sa.String(), nullable=False),
    sa.Column('author', sa.String(), nullable=False),
    sa.ForeignKeyConstraint(['reference_frame_id'], ['frame.id'], name=op.f('fk_alignment_run_reference_frame_id_frame')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alignment_run'))
    )
    op.create_table('event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('user', sa.String(), nullable=False),
    sa.Column('command', sa.String(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('frame_id', sa.Integer(), nullable=True),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['frame_id'], ['frame.id'], name=op.f('fk_event_frame_id_frame'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event'))
    )
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_frame_id'), ['frame_id'], unique=False)

    op.create_table('frame_metrics',
    sa.Column('frame_id', sa.Integer(), nullable=False),
    sa.Column('n_stars', sa.Integer(), nullable=False),
    sa.Column('fwhm', sa.Float(), nullable=True),
    sa.Column('hfd', sa.Float(), nullable=True),
    sa.Column('elongation', sa.Float(), nullable=True),
    sa.Column('background', sa.Float(), nullable=True),
    sa.Column('background_rms', sa.Float(), nullable=True),
    sa.Column('background_gradient', sa.Float(), nullable=True),
    sa.Column('transparency', sa.Float(), nullable=True),
    sa.Column('stars', sa.JSON(), nullable=True),
    sa.Column('algorithm', sa.String(), nullable=False),
    sa.Column('measured_at', sa.DateTime(), nullable=False),
    sa.Column('assessed_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['frame_id'], ['frame.id'], name=op.f('fk_frame_metrics_frame_id_frame'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('frame_id', name=op.f('pk_frame_metrics'))
    )
    op.create_table('frame_stats',
    sa.Column('frame_id', sa.Integer(), nullable=False),
    sa.Column('min', sa.Float(), nullable=False),
    sa.Column('max', sa.Float(), nullable=False),
    sa.Column('mean', sa.Float(), nullable=False),
    sa.Column('median', sa.Float(), nullable=False),
    sa.Column('std', sa.Float(), nullable=False),
    sa.Column('background', sa.Float(), nullable=False),
    sa.Column('background_rms', sa.Float(), nullable=False),
    sa.Column('n_nan', sa.Integer(), nullable=False),
    sa.Column('n_saturated', sa.Integer(), nullable=False),
    sa.Column('saturation', sa.Float(), nullable=True),
    sa.Column('algorithm', sa.String(), nullable=False),
    sa.ForeignKeyConstraint(['frame_id'], ['frame.id'], name=op.f('fk_frame_stats_frame_id_frame'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('frame_id', name=op.f('pk_frame_stats'))
    )
    op.create_table('pointing_group',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('band', sa.String(), nullable=True),
    sa.Column('reference_frame_id', sa.Integer(), nullable=True),
    sa.Column('box_x0', sa.Integer(), nullable=True),
    sa.Column('box_x1', sa.Integer(), nullable=True),
    sa.Column('box_y0', sa.Integer(), nullable=True),
    sa.Column('box_y1', sa.Integer(), nullable=True),
    sa.Column('ref_star_x', sa.Float(), nullable=True),
    sa.Column('ref_star_y', sa.Float(), nullable=True),
    sa.Column('source', sa.String(), nullable=False),
    sa.Column('author', sa.String(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['reference_frame_id'], ['frame.id'], name=op.f('fk_pointing_group_reference_frame_id_frame')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pointing_group')),
    sa.UniqueConstraint('name', name=op.f('uq_pointing_group_name'))
    )
    op.create_table('tag',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('frame_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('source', sa.String(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('author', sa.String(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('retracted_at', sa.DateTime(), nullable=True),
    sa.Column('retracted_by', sa.String(), nullable=True),
    sa.Column('retract_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['frame_id'], ['frame.id'], name=op.f('fk_tag_frame_id_frame'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tag'))
    )
    with op.batch_alter_table('tag', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tag_frame_id'), ['frame_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tag_name'), ['name'], unique=False)

    op.create_table('centroid',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('frame_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(), nullable=False),
    sa.Column('method', sa.String(), nullable=False),
    sa.Column('box_x0', sa.Integer(), nullable=True),
    sa.Column('box_x1', sa.Integer(), nullable=True),
    sa.Column('box_y0', sa.Integer(), nullable=True),
    sa.Column('box_y1', sa.Integer(), nullable=True),
    sa.Column('x', sa.Float(), nullable=False),
    sa.Column('y', sa.Float(), nullable=False),
    sa.Column('flux', sa.Float(), nullable=True),
    sa.Column('matched_x', sa.Float(), nullable=True),
    sa.Column('matched_y', sa.Float(), nullable=True),
    sa.Column('measured_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['frame_id'], ['frame.id'], name=op.f('fk_centroid_frame_id_frame'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['alignment_run.id'], name=op.f('fk_centroid_run_id_alignment_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_centroid'))
    )
    with op.batch_alter_table('centroid', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_centroid_frame_id'), ['frame_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_centroid_run_id'), ['run_id'], unique=False)

    op.create_table('group_member',
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('frame_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['frame_id'], ['frame.id'], name=op.f('fk_group_member_frame_id_frame'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['group_id'], ['pointing_group.id'], name=op.f('fk_group_member_group_id_pointing_group'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('group_id', 'frame_id', name=op.f('pk_group_member')),
    sa.UniqueConstraint('frame_id', name=op.f('uq_group_member_frame_id'))
    )
    op.create_table('render_output',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('frame_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('band', sa.String(), nullable=True),
    sa.Column('path', sa.String(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('interpolation', sa.String(), nullable=True),
    sa.Column('parameters', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['frame_id'], ['frame.id'], name=op.f('fk_render_output_frame_id_frame'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['run_id'], ['alignment_run.id'], name=op.f('fk_render_output_run_id_alignment_run'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_render_output'))
    )
    op.create_table('shift_step',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('frame_id', sa.Integer(), nullable=False),
    sa.Column('stage', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('method', sa.String(), nullable=False),
    sa.Column('dx', sa.Float(), nullable=False),
    sa.Column('dy', sa.Float(), nullable=False),
    sa.Column('rotation_deg', sa.Float(), nullable=False),
    sa.Column('scale', sa.Float(), nullable=False),
    sa.Column('reference_frame_id', sa.Integer(), nullable=True),
    sa.Column('centroid_id', sa.Integer(), nullable=True),
    sa.Column('reference_centroid_id', sa.Integer(), nullable=True),
    sa.Column('n_matched', sa.Integer(), nullable=True),
    sa.Column('residual_rms', sa.Float(), nullable=True),
    sa.Column('parameters', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['centroid_id'], ['centroid.id'], name=op.f('fk_shift_step_centroid_id_centroid')),
    sa.ForeignKeyConstraint(['frame_id'], ['frame.id'], name=op.f('fk_shift_step_frame_id_frame'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['reference_centroid_id'], ['centroid.id'], name=op.f('fk_shift_step_reference_centroid_id_centroid')),
    sa.ForeignKeyConstraint(['reference_frame_id'], ['frame.id'], name=op.f('fk_shift_step_reference_frame_id_frame')),
    sa.ForeignKeyConstraint(['run_id'], ['alignment_run.id'], name=op.f('fk_shift_step_run_id_alignment_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shift_step'))
    )
    with op.batch_alter_table('shift_step', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shift_step_frame_id'), ['frame_id'], unique=False)
        batch_op.create_index('ix_shift_step_run_frame', ['run_id', 'frame_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_shift_step_run_id'), ['run_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('shift_step', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shift_step_run_id'))
        batch_op.drop_index('ix_shift_step_run_frame')
        batch_op.drop_index(batch_op.f('ix_shift_step_frame_id'))

    op.drop_table('shift_step')
    op.drop_table('render_output')
    op.drop_table('group_member')
    with op.batch_alter_table('centroid', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_centroid_run_id'))
        batch_op.drop_index(batch_op.f('ix_centroid_frame_id'))

    op.drop_table('centroid')
    with op.batch_alter_table('tag', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tag_name'))
        batch_op.drop_index(batch_op.f('ix_tag_frame_id'))

    op.drop_table('tag')
    op.drop_table('pointing_group')
    op.drop_table('frame_stats')
    op.drop_table('frame_metrics')
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_frame_id'))

    op.drop_table('event')
    op.drop_table('alignment_run')
    with op.batch_alter_table('frame', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_frame_number'))
        batch_op.drop_index(batch_op.f('ix_frame_image_type'))
        batch_op.drop_index(batch_op.f('ix_frame_date_obs'))
        batch_op.drop_index(batch_op.f('ix_frame_band'))

    op.drop_table('frame')
    with op.batch_alter_table('decision', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_decision_key'))

    op.drop_table('decision')
