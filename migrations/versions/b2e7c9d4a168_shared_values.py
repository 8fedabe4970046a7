"""values kept for every process and host (a year's figures counted once after each change, not per worker)

Revision ID: b2e7c9d4a168
Revises: f3b8d2a61c57
Create Date: 2026-12-03 08:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

import core.models


# revision identifiers, used by Alembic.
revision = 'b2e7c9d4a168'
down_revision = 'f3b8d2a61c57'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'shared_values',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('created_at', core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_shared_values')),
    )
    with op.batch_alter_table('shared_values', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shared_values_created_at'), ['created_at'], unique=False)


def downgrade():
    with op.batch_alter_table('shared_values', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shared_values_created_at'))
    op.drop_table('shared_values')
