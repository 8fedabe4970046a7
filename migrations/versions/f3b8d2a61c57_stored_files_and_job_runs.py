"""uploaded files in the database (every app host serves them, one backup holds them); job runs claimed and recorded

Revision ID: f3b8d2a61c57
Revises: d5a7c3e9f182
Create Date: 2026-12-03 07:00:00.000000

Upgrading moves the files the materials name from UPLOAD_FOLDER (instance/uploads) into the new table, on
the host it runs on (SQLite upgrades itself on the first request: its covers must not vanish); files that lie
elsewhere come in with ``flask --app app files import --folder``. Downgrading writes the stored files back into
that folder before the table goes. The folder is left as it was.
"""
import hashlib
from datetime import datetime, timezone
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
    _import_upload_folder()
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


def _upload_folder():
    from flask import current_app, has_app_context

    return Path(current_app.config["UPLOAD_FOLDER"]) if has_app_context() else None


def _import_upload_folder():
    folder = _upload_folder()
    if folder is None or not folder.is_dir():
        return
    stored = sa.table(
        'stored_files', sa.column('name', sa.String), sa.column('content_type', sa.String),
        sa.column('size', sa.Integer), sa.column('digest', sa.String), sa.column('content', sa.LargeBinary),
        sa.column('created_at', core.models.UTCDateTime(timezone=True)))
    wanted = {}
    for cover, pdf in op.get_bind().execute(sa.text("SELECT cover_path, pdf_path FROM materials")):
        if cover:
            wanted.update({f"{cover}.jpg": "image/jpeg", f"{cover}-thumb.jpg": "image/jpeg"})
        if pdf:
            wanted[pdf] = "application/pdf"
    for name, content_type in sorted(wanted.items()):
        path = folder / name
        if path.is_file():  # one file in memory at a time
            data = path.read_bytes()
            op.bulk_insert(stored, [{"name": name, "content_type": content_type, "size": len(data),
                                     "digest": hashlib.sha256(data).hexdigest(), "content": data,
                                     "created_at": datetime.now(timezone.utc)}])


def downgrade():
    op.drop_table('job_runs')
    # The files go back where the older Fundus reads them, one at a time.
    bind = op.get_bind()
    names = bind.execute(sa.text("SELECT name FROM stored_files")).scalars().all()
    folder = _upload_folder()
    if names and folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            content = bind.execute(sa.text("SELECT content FROM stored_files WHERE name = :name"),
                                   {"name": name}).scalar_one()
            (folder / name).write_bytes(content)
    op.drop_table('stored_files')
