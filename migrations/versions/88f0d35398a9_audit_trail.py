"""audit trail: entries and the objects whose history they belong to; the database refuses to delete
or rewrite an entry (only forgetting the actor's account or the free text is allowed)

Revision ID: 88f0d35398a9
Revises: b9fee1deb9ee
Create Date: 2026-12-01 01:59:13.169102

"""
from alembic import op
import sqlalchemy as sa

import core.models


# revision identifiers, used by Alembic.
revision = '88f0d35398a9'
down_revision = 'b9fee1deb9ee'
branch_labels = None
depends_on = None

# What an entry says never changes. Allowed: the actor's account is forgotten (its deletion sets
# actor_id NULL; the role stays) and the free text is emptied (retention of personal data).
REWRITTEN = (
    "NEW.id IS DISTINCT FROM OLD.id OR NEW.created_at IS DISTINCT FROM OLD.created_at "
    "OR NEW.actor_role IS DISTINCT FROM OLD.actor_role OR NEW.action IS DISTINCT FROM OLD.action "
    "OR NEW.object_type IS DISTINCT FROM OLD.object_type OR NEW.object_id IS DISTINCT FROM OLD.object_id "
    "OR NEW.from_state IS DISTINCT FROM OLD.from_state OR NEW.to_state IS DISTINCT FROM OLD.to_state "
    "OR (NEW.actor_id IS DISTINCT FROM OLD.actor_id AND NEW.actor_id IS NOT NULL) "
    "OR (NEW.reason IS DISTINCT FROM OLD.reason AND NEW.reason <> '') "
    "OR (NEW.details IS DISTINCT FROM OLD.details AND NEW.details <> '')"
)


def upgrade():
    op.create_table('audit_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_role', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('object_type', sa.String(length=40), nullable=False),
    sa.Column('object_id', sa.Integer(), nullable=True),
    sa.Column('from_state', sa.String(length=40), nullable=False),
    sa.Column('to_state', sa.String(length=40), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_audit_entries_actor_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_entries'))
    )
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_entries_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_entries_actor_id'), ['actor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_entries_created_at'), ['created_at'], unique=False)

    op.create_table('audit_refs',
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('object_type', sa.String(length=40), nullable=False),
    sa.Column('object_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['audit_entries.id'], name=op.f('fk_audit_refs_entry_id_audit_entries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('entry_id', 'object_type', 'object_id', name=op.f('pk_audit_refs'))
    )
    with op.batch_alter_table('audit_refs', schema=None) as batch_op:
        batch_op.create_index('ix_audit_refs_object', ['object_type', 'object_id', 'entry_id'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_append_only() RETURNS trigger AS $$ BEGIN "
            "IF TG_OP = 'DELETE' OR TG_TABLE_NAME = 'audit_refs' THEN "
            "RAISE EXCEPTION 'audit entries are never changed or deleted' USING ERRCODE = 'integrity_constraint_violation'; "
            f"ELSIF {REWRITTEN} THEN "
            "RAISE EXCEPTION 'audit entries are never changed' USING ERRCODE = 'integrity_constraint_violation'; "
            "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
        )
        for table in ("audit_entries", "audit_refs"):
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION audit_append_only()")
    else:
        rewritten = REWRITTEN.replace("IS DISTINCT FROM", "IS NOT")
        op.execute("CREATE TRIGGER audit_entries_never_deleted BEFORE DELETE ON audit_entries "
                   "BEGIN SELECT RAISE(ABORT, 'audit entries are never deleted'); END")
        op.execute(f"CREATE TRIGGER audit_entries_never_rewritten BEFORE UPDATE ON audit_entries WHEN {rewritten} "
                   "BEGIN SELECT RAISE(ABORT, 'audit entries are never changed'); END")
        for event in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_refs_never_{event.lower()}d BEFORE {event} ON audit_refs "
                       "BEGIN SELECT RAISE(ABORT, 'audit entries are never changed or deleted'); END")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table in ("audit_entries", "audit_refs"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS audit_append_only()")
    else:
        for trigger in ("audit_entries_never_deleted", "audit_entries_never_rewritten", "audit_refs_never_updated",
                        "audit_refs_never_deleted"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    with op.batch_alter_table('audit_refs', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_refs_object')

    op.drop_table('audit_refs')
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_entries_created_at'))
        batch_op.drop_index(batch_op.f('ix_audit_entries_actor_id'))
        batch_op.drop_index(batch_op.f('ix_audit_entries_action'))

    op.drop_table('audit_entries')
