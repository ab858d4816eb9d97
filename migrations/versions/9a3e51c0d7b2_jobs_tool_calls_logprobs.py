"""jobs.tool_calls and jobs.logprobs: the client's tool calls and token log probabilities

Revision ID: 9a3e51c0d7b2
Revises: 4f1815ff741f
Create Date: 2026-12-03 21:40:00.000000

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = '9a3e51c0d7b2'
down_revision = '4f1815ff741f'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('tool_calls', postgresql.JSONB(astext_type=sa.Text()), nullable=True)
        )
        batch_op.add_column(
            sa.Column('logprobs', postgresql.JSONB(astext_type=sa.Text()), nullable=True)
        )


def downgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('logprobs')
        batch_op.drop_column('tool_calls')
