"""topics get an English name, shown on English pages and found by the search

Revision ID: b7d2e4f6a810
Revises: a3c9d1e5f702
Create Date: 2026-12-02 01:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7d2e4f6a810'
down_revision = 'a3c9d1e5f702'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('topics', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('name_en', sa.String(length=100), nullable=False, server_default=''))


def downgrade():
    with op.batch_alter_table('topics', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('name_en')
