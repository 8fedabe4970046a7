"""seats counted by the database: trainings.seats_taken, kept by triggers on registrations, never
above seats (a CHECK on PostgreSQL, a trigger on SQLite, where a CHECK cannot be added to a table)

Revision ID: 5eab2c04a1f0
Revises: 88f0d35398a9
Create Date: 2026-12-01 02:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5eab2c04a1f0'
down_revision = '88f0d35398a9'
branch_labels = None
depends_on = None

SEAT_HOLDING = "('pending', 'confirmed')"
OVERBOOKED = "NEW.seats_taken < 0 OR NEW.seats_taken > NEW.seats"


def upgrade():
    with op.batch_alter_table('trainings', schema=None, recreate='never') as batch_op:  # a copy would cascade
        batch_op.add_column(sa.Column('seats_taken', sa.Integer(), server_default='0', nullable=False))
    op.execute("UPDATE trainings SET seats_taken = (SELECT count(*) FROM registrations r "
               f"WHERE r.training_id = trainings.id AND r.status IN {SEAT_HOLDING})")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE trainings ADD CONSTRAINT ck_trainings_seats_not_overbooked "
                   "CHECK (seats_taken >= 0 AND seats_taken <= seats)")
        op.execute(
            "CREATE FUNCTION registrations_count_seats() RETURNS trigger AS $$ BEGIN "
            f"IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.status IN {SEAT_HOLDING} THEN "
            "UPDATE trainings SET seats_taken = seats_taken - 1 WHERE id = OLD.training_id; END IF; "
            f"IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.status IN {SEAT_HOLDING} THEN "
            "UPDATE trainings SET seats_taken = seats_taken + 1 WHERE id = NEW.training_id; END IF; "
            "RETURN NULL; END $$ LANGUAGE plpgsql"
        )
        op.execute("CREATE TRIGGER registrations_count_seats AFTER INSERT OR DELETE OR UPDATE OF status, training_id "
                   "ON registrations FOR EACH ROW EXECUTE FUNCTION registrations_count_seats()")
    else:
        for event in ("INSERT", "UPDATE OF seats, seats_taken"):
            name = event.split()[0].lower()
            op.execute(f"CREATE TRIGGER trainings_seats_not_overbooked_{name} BEFORE {event} ON trainings "
                       f"WHEN {OVERBOOKED} BEGIN SELECT RAISE(ABORT, "
                       "'CHECK constraint failed: ck_trainings_seats_not_overbooked'); END")
        op.execute(f"CREATE TRIGGER registrations_count_seats_insert AFTER INSERT ON registrations "
                   f"WHEN NEW.status IN {SEAT_HOLDING} BEGIN "
                   "UPDATE trainings SET seats_taken = seats_taken + 1 WHERE id = NEW.training_id; END")
        op.execute(f"CREATE TRIGGER registrations_count_seats_delete AFTER DELETE ON registrations "
                   f"WHEN OLD.status IN {SEAT_HOLDING} BEGIN "
                   "UPDATE trainings SET seats_taken = seats_taken - 1 WHERE id = OLD.training_id; END")
        op.execute("CREATE TRIGGER registrations_count_seats_update AFTER UPDATE OF status, training_id "
                   "ON registrations BEGIN "
                   f"UPDATE trainings SET seats_taken = seats_taken - 1 WHERE id = OLD.training_id "
                   f"AND OLD.status IN {SEAT_HOLDING}; "
                   f"UPDATE trainings SET seats_taken = seats_taken + 1 WHERE id = NEW.training_id "
                   f"AND NEW.status IN {SEAT_HOLDING}; END")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS registrations_count_seats ON registrations")
        op.execute("DROP FUNCTION IF EXISTS registrations_count_seats()")
        op.execute("ALTER TABLE trainings DROP CONSTRAINT IF EXISTS ck_trainings_seats_not_overbooked")
    else:
        for trigger in ("registrations_count_seats_insert", "registrations_count_seats_delete",
                        "registrations_count_seats_update", "trainings_seats_not_overbooked_insert",
                        "trainings_seats_not_overbooked_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    with op.batch_alter_table('trainings', schema=None, recreate='never') as batch_op:  # a copy would cascade
        batch_op.drop_column('seats_taken')
