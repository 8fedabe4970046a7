"""privacy: version of the privacy texts, health consent, mails that can be erased

Revision ID: 3f1c2a9d7e40
Revises: 1d5e0c7a9b42
Create Date: 2026-12-01 05:20:00.000000

"""
from alembic import op
import sqlalchemy as sa

import core.models


# revision identifiers, used by Alembic.
revision = '3f1c2a9d7e40'
down_revision = '1d5e0c7a9b42'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('account_applications', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('privacy_version', sa.String(length=32), nullable=False, server_default=''))
    with op.batch_alter_table('registrations', schema=None, recreate='never') as batch_op:  # keeps the triggers and the partial unique index
        batch_op.add_column(sa.Column('privacy_version', sa.String(length=32), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('health_consent_at', core.models.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('outbox_messages', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=80), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('about_type', sa.String(length=40), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('about_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('erased_at', core.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_outbox_messages_about', ['about_type', 'about_id'], unique=False)


def downgrade():
    with op.batch_alter_table('outbox_messages', schema=None, recreate='never') as batch_op:
        batch_op.drop_index('ix_outbox_messages_about')
        batch_op.drop_column('erased_at')
        batch_op.drop_column('about_id')
        batch_op.drop_column('about_type')
        batch_op.drop_column('kind')
    with op.batch_alter_table('registrations', schema=None, recreate='never') as batch_op:  # keeps the triggers and the partial unique index
        batch_op.drop_column('health_consent_at')
        batch_op.drop_column('privacy_version')
    with op.batch_alter_table('account_applications', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('privacy_version')
