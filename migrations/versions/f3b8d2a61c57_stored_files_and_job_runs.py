"""uploaded files in the database (every app host serves them, one backup holds them); job runs claimed and recorded

Revision ID: f3b8d2a61c57
Revises: d5a7c3e9f182
Create Date: 2026-12-03 07:00:00.000000

After upgrading, ``flask --app app files import`` moves the files of instance/uploads (UPLOAD_FOLDER) into
the new table. Downgrading writes the stored files back into that folder before the table goes.
"""
from pathlib import Path

from alembic import op
import sqlalchemy as sa

import core.models


# revision identifiers, used by Alembic.
revision = 'f3b8d2a61c57'
down_revision = 'd5a7c3e9f182'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'stored_files',
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('content_type', sa.String(length=100), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('content', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', core.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_stored_files')),
    )
    op.create_table(
        'job_runs',
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('running_since', core.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('running_on', sa.String(length=255), nullable=False),
        sa.Column('last_started_at', core.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('last_finished_at', core.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('last_ok', sa.Boolean(), nullable=True),
        sa.Column('last_report', sa.String(length=500), nullable=False),
        sa.Column('last_success_at', core.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_job_runs')),
    )


def downgrade():
    op.drop_table('job_runs')
    # The files go back where the older Fundus reads them.
    rows = op.get_bind().execute(sa.text("SELECT name, content FROM stored_files")).fetchall()
    if rows:
        from flask import current_app

        folder = Path(current_app.config["UPLOAD_FOLDER"])
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in rows:
            (folder / name).write_bytes(content)
    op.drop_table('stored_files')
