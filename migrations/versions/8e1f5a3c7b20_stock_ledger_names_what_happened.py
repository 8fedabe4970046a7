"""stock ledger names what happened: "reserved" at submission, a handover row (no change) when a
request's copies leave the house

Revision ID: 8e1f5a3c7b20
Revises: 6c2e8f4a0d13
Create Date: 2026-12-01 08:45:00.000000

"""
from alembic import op
import sqlalchemy as sa

import core.models


# revision identifiers, used by Alembic.
revision = '8e1f5a3c7b20'
down_revision = '6c2e8f4a0d13'
branch_labels = None
depends_on = None

OLD_REASONS = ('intake', 'correction', 'handout', 'cancelled')
NEW_REASONS = ('intake', 'correction', 'reserved', 'handout', 'cancelled')
OLD_DELTA, NEW_DELTA = "delta <> 0", "delta <> 0 OR reason = 'handout'"


def _table(reasons, delta_rule) -> sa.Table:
    """stock_entries as SQLite rebuilds it (it cannot change a CHECK in place; the table has no triggers)."""
    return sa.Table(
        'stock_entries', sa.MetaData(),
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('edition_id', sa.Integer(), nullable=False),
        sa.Column('delta', sa.Integer(), nullable=False),
        sa.Column('balance_after', sa.Integer(), nullable=False),
        sa.Column('reason', sa.Enum(*reasons, name='stock_reason', native_enum=False, create_constraint=True,
                                    length=32), nullable=False),
        sa.Column('note', sa.Text(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('request_id', sa.Integer(), nullable=True),
        sa.Column('created_at', core.models.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(delta_rule, name='ck_stock_entries_delta_not_zero'),
        sa.ForeignKeyConstraint(['edition_id'], ['editions.id'], name='fk_stock_entries_edition_id_editions',
                                ondelete='RESTRICT'),
        sa.ForeignKeyConstraint(['request_id'], ['requests.id'], name='fk_stock_entries_request_id_requests',
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name='fk_stock_entries_user_id_users', ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name='pk_stock_entries'),
        sa.Index('ix_stock_entries_edition_id', 'edition_id'),
        sa.Index('ix_stock_entries_request_id', 'request_id'),
    )


def _change(reasons, delta_rule) -> None:
    if op.get_bind().dialect.name == "postgresql":
        listed = ", ".join(f"'{r}'" for r in reasons)
        op.execute("ALTER TABLE stock_entries DROP CONSTRAINT ck_stock_entries_stock_reason, "
                   "DROP CONSTRAINT ck_stock_entries_delta_not_zero")
        op.execute(f"ALTER TABLE stock_entries ADD CONSTRAINT ck_stock_entries_stock_reason CHECK (reason IN ({listed})), "
                   f"ADD CONSTRAINT ck_stock_entries_delta_not_zero CHECK ({delta_rule})")
    else:
        with op.batch_alter_table('stock_entries', copy_from=_table(reasons, delta_rule), recreate='always'):
            pass


def upgrade():
    _change(NEW_REASONS, NEW_DELTA)
    # Copies taken for a request were reserved then; staff handouts (no request) stay handouts.
    op.execute("UPDATE stock_entries SET reason = 'reserved' WHERE reason = 'handout' AND request_id IS NOT NULL")


def downgrade():
    op.execute("DELETE FROM stock_entries WHERE delta = 0")
    op.execute("UPDATE stock_entries SET reason = 'handout' WHERE reason = 'reserved'")
    _change(OLD_REASONS, OLD_DELTA)
