"""a registration keeps the organisation Fundus knows by the name typed, for the figures after anonymising

Revision ID: c4e8a2b6d913
Revises: b7d2e4f6a810
Create Date: 2026-12-02 02:00:00.000000

"""
import unicodedata

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c4e8a2b6d913'
down_revision = 'b7d2e4f6a810'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'registration_organisations',
        sa.Column('registration_id', sa.Integer(), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'],
                                name=op.f('fk_registration_organisations_organisation_id_organisations'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['registration_id'], ['registrations.id'],
                                name=op.f('fk_registration_organisations_registration_id_registrations'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('registration_id', name=op.f('pk_registration_organisations')),
    )
    op.create_index(op.f('ix_registration_organisations_organisation_id'), 'registration_organisations',
                    ['organisation_id'], unique=False)
    # Registrations made before: the organisation of the name they gave, where Fundus knows one, compared
    # as accounts.organisations.organisation_key does (in Python: SQLite's lower() folds only ASCII).
    bind = op.get_bind()
    known = {}
    for id_, name in bind.execute(sa.text("SELECT id, name FROM organisations ORDER BY id")):
        known.setdefault(_key(name), id_)
    links = [{"registration_id": id_, "organisation_id": known[_key(typed)]}
             for id_, typed in bind.execute(sa.text("SELECT id, organisation FROM registrations "
                                                    "WHERE organisation <> ''"))
             if _key(typed) in known]
    if links:
        bind.execute(sa.text("INSERT INTO registration_organisations (registration_id, organisation_id) "
                             "VALUES (:registration_id, :organisation_id)"), links)


def _key(name: str) -> str:
    return " ".join(unicodedata.normalize("NFC", name).split()).casefold()


def downgrade():
    op.drop_index(op.f('ix_registration_organisations_organisation_id'), table_name='registration_organisations')
    op.drop_table('registration_organisations')
