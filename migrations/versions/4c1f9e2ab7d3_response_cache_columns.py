"""response cache: jobs.cache_key, jobs.cached, jobs.leader_job_id

Revision ID: 4c1f9e2ab7d3
Revises: b138d20f5eed
Create Date: 2026-11-24 15:05:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '4c1f9e2ab7d3'
down_revision = 'b138d20f5eed'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cache_key', sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column('cached', sa.Boolean(), server_default=sa.text('false'), nullable=False)
        )
        batch_op.add_column(sa.Column('leader_job_id', sa.Uuid(), nullable=True))
        batch_op.create_index('ix_jobs_leader_job_id', ['leader_job_id'], unique=False)
        batch_op.create_foreign_key(
            'jobs_leader_job_id_fkey', 'jobs', ['leader_job_id'], ['id'], ondelete='SET NULL'
        )


def downgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_constraint('jobs_leader_job_id_fkey', type_='foreignkey')
        batch_op.drop_index('ix_jobs_leader_job_id')
        batch_op.drop_column('leader_job_id')
        batch_op.drop_column('cached')
        batch_op.drop_column('cache_key')
