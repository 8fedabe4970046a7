"""Database set-up: SQLite pragmas and the automatic migration of the embedded database."""

import fcntl
import threading
from pathlib import Path

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app
from sqlalchemy import event

from core.extensions import db, migrate


def configure_engine(app) -> None:
    """Turn on foreign keys, WAL and a busy timeout for every SQLite connection.

    pysqlite's own transaction handling starts transactions late and not for
    every statement; hand BEGIN to SQLAlchemy instead, as its docs recommend.
    Every transaction begins IMMEDIATE: it takes SQLite's write lock at once,
    so a check and the write that depends on it are serialised against other
    processes, and a reader can never fail when it later wants to write
    (SQLITE_BUSY_SNAPSHOT). Readers outside transactions still run in
    parallel thanks to WAL. PostgreSQL relies on row locks and conditional
    updates instead.
    """
    with app.app_context():
        engine = db.engine
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def head_revision() -> str | None:
    config = migrate.get_config()
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision() -> str | None:
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


_schema_lock = threading.Lock()
_schema_ready: set[str] = set()


def ensure_schema() -> None:
    """Create or upgrade the embedded SQLite database on first use.

    PostgreSQL is upgraded by the operator (``flask --app app db upgrade``).
    A file lock keeps several processes from migrating at once.
    """
    app = current_app
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if url in _schema_ready or not app.config["AUTO_MIGRATE"] or db.engine.dialect.name != "sqlite":
        return
    with _schema_lock:
        if url in _schema_ready:
            return
        lock_path = Path(app.instance_path) / "migrate.lock"
        with open(lock_path, "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            if current_revision() != head_revision():
                from flask_migrate import upgrade

                app.logger.info("Bringing the SQLite database up to the current schema")
                upgrade(directory=migrate.directory)
        _schema_ready.add(url)
