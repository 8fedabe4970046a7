"""carts kept per person: the request a partner puts together survives signing out and in

Revision ID: 6c2e8f4a0d13
Revises: 4b7d2e9c1a55
Create Date: 2026-12-01 09:25:00.000000

"""
from alembic import op
import sqlalchemy as sa

import core.models


# revision identifiers, used by Alembic.
revision = '6c2e8f4a0d13'
down_revision = '4b7d2e9c1a55'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'carts',
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('items', sa.Text(), nullable=False),
        sa.Column('updated_at', core.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('user_id'),
    )


def downgrade():
    op.drop_table('carts')
