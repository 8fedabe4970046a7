"""trainings remember when they were first published: a draft cancelled before it was published stays private

Revision ID: d5a7c3e9f182
Revises: 5e81c4a8b531
Create Date: 2026-12-02 15:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

import core.models


# revision identifiers, used by Alembic.
revision = 'd5a7c3e9f182'
down_revision = '5e81c4a8b531'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('trainings', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('published_at', core.models.UTCDateTime(timezone=True), nullable=True))
    # When each was published, from the audit trail; a published one without an entry (made before the trail,
    # or written directly): when it was made. A cancelled one without a "publish" entry was a draft.
    op.execute("""
        UPDATE trainings SET published_at = (
            SELECT min(a.created_at) FROM audit_entries a
            WHERE a.object_type = 'training' AND a.object_id = trainings.id AND a.action = 'publish')
        WHERE status IN ('published', 'cancelled')
    """)
    op.execute("UPDATE trainings SET published_at = created_at WHERE status = 'published' AND published_at IS NULL")


def downgrade():
    # Not recreated: the triggers on registrations that keep trainings.seats_taken refer to the table.
    with op.batch_alter_table('trainings', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('published_at')
