"""approve fewer copies with a reason: what a line asked for, and the note sent with the approval

Revision ID: a3c9d1e5f702
Revises: 8e1f5a3c7b20
Create Date: 2026-12-01 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a3c9d1e5f702'
down_revision = '8e1f5a3c7b20'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('request_lines', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('requested', sa.Integer(), nullable=True))
    with op.batch_alter_table('requests', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('approval_note', sa.Text(), nullable=False, server_default=''))


def downgrade():
    with op.batch_alter_table('requests', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('approval_note')
    with op.batch_alter_table('request_lines', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('requested')
