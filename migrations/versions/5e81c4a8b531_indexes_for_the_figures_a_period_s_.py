"""indexes for the figures: a period's loans, requests and handovers read from an index

Revision ID: 5e81c4a8b531
Revises: c4e8a2b6d913
Create Date: 2026-12-02 13:52:46.312824

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '5e81c4a8b531'
down_revision = 'c4e8a2b6d913'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.create_index('ix_audit_entries_action_created_at', ['object_type', 'action', 'created_at', 'object_id'], unique=False)
        batch_op.create_index('ix_audit_entries_object_action', ['object_type', 'object_id', 'action'], unique=False)

    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.create_index('ix_bookings_ends_on_figures', ['ends_on', 'status', 'reminded_at'], unique=False)
        batch_op.create_index('ix_bookings_returned_at_condition', ['returned_at', 'return_condition'], unique=False)
        batch_op.create_index('ix_bookings_starts_on_figures', ['starts_on', 'status', 'unit_id', 'returned_at'], unique=False)

    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.create_index('ix_requests_created_at_status', ['created_at', 'status'], unique=False)
        batch_op.create_index('ix_requests_decided_at_created_at', ['decided_at', 'created_at'], unique=False)


def downgrade():
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.drop_index('ix_requests_decided_at_created_at')
        batch_op.drop_index('ix_requests_created_at_status')

    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.drop_index('ix_bookings_starts_on_figures')
        batch_op.drop_index('ix_bookings_returned_at_condition')
        batch_op.drop_index('ix_bookings_ends_on_figures')

    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_entries_object_action')
        batch_op.drop_index('ix_audit_entries_action_created_at')
