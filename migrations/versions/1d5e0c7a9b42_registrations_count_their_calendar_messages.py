"""registrations count their calendar messages (the SEQUENCE of invitations rises per person)

Revision ID: 1d5e0c7a9b42
Revises: eaea52ec5af7
Create Date: 2026-12-01 05:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '1d5e0c7a9b42'
down_revision = 'eaea52ec5af7'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('registrations', schema=None, recreate='never') as batch_op:  # keeps the triggers and the partial unique index
        batch_op.add_column(sa.Column('calendar_messages', sa.Integer(), server_default='0', nullable=False))


def downgrade():
    with op.batch_alter_table('registrations', schema=None, recreate='never') as batch_op:  # keeps the triggers and the partial unique index
        batch_op.drop_column('calendar_messages')
