"""blocked units stay in the house: the database refuses handing over a damaged, incomplete, lost or
retired unit (a trigger on both databases), and every return keeps its own condition record on its booking

Revision ID: 4b7d2e9c1a55
Revises: 3f1c2a9d7e40
Create Date: 2026-12-01 08:40:00.000000

"""
from alembic import op
import sqlalchemy as sa

import core.models


# revision identifiers, used by Alembic.
revision = '4b7d2e9c1a55'
down_revision = '3f1c2a9d7e40'
branch_labels = None
depends_on = None

BLOCKED = "('damaged', 'incomplete', 'lost')"
# The unit of a booking that goes out (or is written as out) is blocked or retired.
UNIT_BLOCKED = (f"EXISTS (SELECT 1 FROM units u WHERE u.id = NEW.unit_id "
                f"AND (u.condition IN {BLOCKED} OR u.retired_at IS NOT NULL))")
MESSAGE = "CHECK constraint failed: ck_bookings_unit_not_blocked"
CONDITIONS = ('good', 'damaged', 'incomplete', 'lost')


def upgrade():
    with op.batch_alter_table('bookings', schema=None, recreate='never') as batch_op:  # keeps the overlap guard
        batch_op.add_column(sa.Column('returned_at', core.models.UTCDateTime(timezone=True), nullable=True))
        # No CHECK: SQLite cannot add one without copying the table (which would drop its triggers).
        batch_op.add_column(sa.Column('return_condition', sa.Enum(*CONDITIONS, name='return_condition',
                                                                  native_enum=False, create_constraint=False,
                                                                  length=32), nullable=True))
        batch_op.add_column(sa.Column('return_note', sa.Text(), nullable=False, server_default=''))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION bookings_unit_not_blocked() RETURNS trigger AS $$ BEGIN "
            f"IF (TG_OP = 'INSERT' OR OLD.status <> 'handed_over' OR OLD.unit_id <> NEW.unit_id) AND {UNIT_BLOCKED} THEN "
            f"RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'check_violation'; END IF; "
            "RETURN NEW; END $$ LANGUAGE plpgsql"
        )
        op.execute("CREATE TRIGGER bookings_unit_not_blocked BEFORE INSERT OR UPDATE OF status, unit_id "
                   "ON bookings FOR EACH ROW WHEN (NEW.status = 'handed_over') "
                   "EXECUTE FUNCTION bookings_unit_not_blocked()")
    else:
        for event, changed in (("INSERT", ""), ("UPDATE OF status, unit_id", "AND (OLD.status <> 'handed_over' OR OLD.unit_id <> NEW.unit_id) ")):
            name = event.split()[0].lower()
            op.execute(f"CREATE TRIGGER bookings_unit_not_blocked_{name} BEFORE {event} ON bookings "
                       f"WHEN NEW.status = 'handed_over' {changed}AND {UNIT_BLOCKED} "
                       f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS bookings_unit_not_blocked ON bookings")
        op.execute("DROP FUNCTION IF EXISTS bookings_unit_not_blocked()")
    else:
        op.execute("DROP TRIGGER IF EXISTS bookings_unit_not_blocked_insert")
        op.execute("DROP TRIGGER IF EXISTS bookings_unit_not_blocked_update")
    with op.batch_alter_table('bookings', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('return_note')
        batch_op.drop_column('return_condition')
        batch_op.drop_column('returned_at')
