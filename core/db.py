"""Database set-up: SQLite pragmas, units of work, outages, and the automatic migration of the
embedded database."""

import fcntl
import logging
import random
import sqlite3
import threading
import time
from contextlib import contextmanager
from functools import wraps
from pathlib import Path

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app, g, has_request_context, request
from sqlalchemy import create_engine, event, inspect
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from core.extensions import db, migrate


def configure_engine(app) -> None:
    """Turn on foreign keys, WAL and a busy timeout for every SQLite connection.

    pysqlite's own transaction handling starts transactions late and not for
    every statement; hand BEGIN to SQLAlchemy instead, as its docs recommend.
    A transaction that may write begins IMMEDIATE: it takes SQLite's write
    lock at once, so a check and the write that depends on it are serialised
    against other processes, and it can never fail when it later wants to
    write (SQLITE_BUSY_SNAPSHOT). GET and HEAD requests only read (a view
    that writes on GET says so with ``@writes``): their transactions begin
    DEFERRED and run in parallel with each other and with one writer, thanks
    to WAL. Under test, a write in such a transaction is an error, so an
    unmarked writing GET view fails the suite. PostgreSQL relies on row locks
    and conditional updates instead.
    """
    with app.app_context():
        engine = db.engine
    app.extensions["fundus_outage"] = outage = OutageLog()
    event.listen(engine, "checkout", outage.on_checkout)
    if engine.dialect.name != "sqlite":
        app.extensions["fundus_lone_engine"] = _lone_engine(app, engine)
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
        if connection.get_execution_options().get("outside_transaction"):
            return  # see lone_statements()
        read_only = _read_only_request()
        connection.info["read_only"] = read_only
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    if app.testing:

        @event.listens_for(engine, "before_cursor_execute")
        def _no_write_when_read_only(connection, _cursor, statement, *_args):
            if connection.info.get("read_only") and statement.lstrip()[:6].upper() in WRITES:
                raise RuntimeError(f"{request.endpoint} writes in a GET request; mark the view with @writes")


WRITES = ("INSERT", "UPDATE", "DELETE")


def writes(view):
    """Mark a GET view that writes (a confirmation link, say): its transactions take the write lock."""
    view.writes_on_get = True
    return view


_reading = threading.local()


@contextmanager
def reading_only():
    """Outside a request (a job): the transactions begun inside only read. On SQLite they begin DEFERRED and take
    no write lock, so a long count (the year's figures) does not hold every writer back; under test a write in
    them is an error, as in a GET. The session's transaction is ended on the way in and out."""
    db.session.rollback()
    _reading.on = True
    try:
        yield
    finally:
        db.session.rollback()
        _reading.on = False


def _read_only_request() -> bool:
    if getattr(_reading, "on", False):
        return True
    if not has_request_context() or request.method not in ("GET", "HEAD") or g.get("migrating"):
        return False
    view = current_app.view_functions.get(request.endpoint)
    return not getattr(view, "writes_on_get", False)


def _lone_engine(app, engine):
    """PostgreSQL: the pool of ``lone_read``, in AUTOCOMMIT and without the liveness check on checkout
    (``pool_pre_ping``, one round trip of the two such a read would take)."""
    options = {key: value for key, value in app.config["SQLALCHEMY_ENGINE_OPTIONS"].items()
               if key != "pool_pre_ping"}
    return create_engine(engine.url, **{**options, "isolation_level": "AUTOCOMMIT", "pool_size": 2, "max_overflow": 8})


def engines() -> tuple:
    """The app's engines: the one of the ORM session and, on PostgreSQL, the one of ``lone_read`` (whoever
    counts statements listens to both)."""
    lone = current_app.extensions.get("fundus_lone_engine")
    return (db.engine,) if lone is None else (db.engine, lone)


def dispose_engines() -> None:
    for engine in engines():
        engine.dispose()


@contextmanager
def lone_statements():
    """A pooled connection whose statements each run on their own, outside a transaction: for a
    single read that is all a request does (the conditional feed), where BEGIN and ROLLBACK would
    be two of PostgreSQL's four round trips. PostgreSQL: a connection of ``lone_read``'s pool (AUTOCOMMIT);
    SQLite's begin hook leaves out its BEGIN instead (pysqlite's own transaction handling is off, so the
    statement commits by itself), because resetting SQLAlchemy's AUTOCOMMIT level would turn that handling
    back on for the pooled connection."""
    engine = engines()[-1]
    with engine.connect() as connection:
        yield (connection.execution_options(outside_transaction=True) if engine.dialect.name == "sqlite"
               else connection)


def lone_read(read):
    """``read(connection)`` on a connection of ``lone_statements``: the change counters, read before every
    kept answer and every conditional request. Its PostgreSQL pool skips the liveness check; a connection
    the server dropped (a restart) fails the read, which then runs once more on a new connection, so the
    first request after a restart is answered as with the check."""
    try:
        with lone_statements() as connection:
            return read(connection)
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
    with lone_statements() as connection:
        return read(connection)


# PostgreSQL aborts one of two transactions that wait for each other (deadlock_detected) or that
# cannot both be serialised (serialization_failure); SQLite answers "busy" when its write lock stays
# taken beyond the busy timeout. Nothing of the aborted transaction remains, so running it again is
# safe and almost always succeeds.
RETRYABLE_SQLSTATES = {"40P01", "40001"}
ATTEMPTS = 5


def retryable(error: DBAPIError) -> bool:
    """Whether the database aborted the transaction only because of other transactions."""
    original = error.orig
    if getattr(original, "sqlstate", None) in RETRYABLE_SQLSTATES:
        return True
    return isinstance(original, sqlite3.OperationalError) and getattr(original, "sqlite_errorcode", None) in (
        sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def unit_of_work(func):
    """Make a public service function one unit of work: it commits, or rolls back everything it did.

    A transaction the database aborted for a deadlock or a serialization failure is run again from
    the start (at most ``ATTEMPTS`` times, after a short random pause), so two requests that got in
    each other's way both succeed instead of one of them ending in an error page. A call from inside
    another unit of work joins the outer one (which commits or retries the whole).
    """

    @wraps(func)
    def run(*args, **kwargs):
        info = db.session.info
        if info.get("unit_of_work"):
            return func(*args, **kwargs)
        for attempt in range(1, ATTEMPTS + 1):
            info["unit_of_work"] = True
            try:
                result = func(*args, **kwargs)
                db.session.commit()
                return result
            except DBAPIError as error:
                db.session.rollback()
                if attempt == ATTEMPTS or not retryable(error):
                    raise
                current_app.logger.info("%s: %s, attempt %s of %s", func.__qualname__,
                                        type(error.orig).__name__, attempt + 1, ATTEMPTS)
                time.sleep(random.uniform(0.005, 0.02 * 2**attempt))
            except BaseException:
                db.session.rollback()
                raise
            finally:
                info.pop("unit_of_work", None)

    return run


# An outage: the database cannot be reached (down, restarting, refusing connections, its pool
# exhausted) or stays busy beyond the retries. Pages answer 503 with Retry-After instead of 500; the
# log gets one line when the outage begins and one when a connection works again, not a traceback
# per request.
UNREACHABLE_SQLITE_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR,
                            sqlite3.SQLITE_FULL}
UNREACHABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03")  # connection exceptions; shutdown, crash, starting up
RETRY_AFTER_SECONDS = 30
log = logging.getLogger("fundus.database")


def unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot serve now (as opposed to a wrong statement)."""
    if isinstance(error, PoolTimeout):
        return True
    if not isinstance(error, OperationalError | InterfaceError):
        return False
    if error.connection_invalidated or retryable(error):
        return True
    original = error.orig
    if isinstance(original, sqlite3.Error):
        return (getattr(original, "sqlite_errorcode", 0) & 0xFF) in UNREACHABLE_SQLITE_CODES
    state = getattr(original, "sqlstate", None)
    return state is None or state.startswith(UNREACHABLE_SQLSTATES)  # None: no connection to ask


class OutageLog:
    """The outage of one app's database: logged when it begins and when a connection works again."""

    def __init__(self):
        self.since: float | None = None
        self.lock = threading.Lock()

    def begin(self, error: BaseException) -> None:
        with self.lock:
            if self.since is not None:
                return
            self.since = time.monotonic()
        cause = str(getattr(error, "orig", None) or error).strip().splitlines()
        log.error("Database unavailable, answering 503 until it is back: %s: %s", type(error).__name__,
                  cause[0] if cause else "")

    def on_checkout(self, _dbapi_connection, _record, _proxy) -> None:
        """A connection works (pre-pinged on PostgreSQL): an outage, if there was one, is over."""
        if self.since is None:
            return
        with self.lock:
            since, self.since = self.since, None
        if since is not None:
            log.warning("Database available again after %.0f s", time.monotonic() - since)


def note_outage(error: BaseException) -> None:
    """Log the outage once, when it begins (``OutageLog``)."""
    current_app.extensions["fundus_outage"].begin(error)


def after_commit(func, *args) -> None:
    """Run ``func(*args)`` once the current transaction has committed (not at all if it rolls back):
    for what cannot be undone, such as removing a replaced file."""
    db.session.info.setdefault("after_commit", []).append((func, args))


def on_rollback(func, *args) -> None:
    """Run ``func(*args)`` if the current transaction rolls back: to undo what is not in the database,
    such as a file written for a change that is then refused."""
    db.session.info.setdefault("on_rollback", []).append((func, args))


@event.listens_for(Session, "after_commit")
def _run_after_commit(session) -> None:
    session.info.pop("on_rollback", None)
    for func, args in session.info.pop("after_commit", []):
        func(*args)


@event.listens_for(Session, "after_soft_rollback")
def _run_on_rollback(session, previous_transaction) -> None:
    if previous_transaction.parent is None:  # the outermost transaction, not a savepoint
        session.info.pop("after_commit", None)
        for func, args in session.info.pop("on_rollback", []):
            func(*args)


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
                g.migrating = True
                try:
                    upgrade(directory=migrate.directory)
                finally:
                    g.migrating = False
        _schema_ready.add(url)


class SchemaNotCurrent(RuntimeError):
    """The database holds an older schema (or tables of unknown origin): the operator upgrades it."""


def build_new_schema() -> None:
    """For ``seed-demo``, on any database: a database that was never migrated and holds no table
    (a PostgreSQL database just made with ``createdb``) is built with the migrations; SQLite is brought
    up to date as on every start (``ensure_schema``). A database with an older schema, or with tables
    but no migration history, is not touched: ``SchemaNotCurrent`` says what to run."""
    db.session.rollback()  # no transaction of ours holds SQLite's lock while others read or migrate
    ensure_schema()
    current, head = current_revision(), head_revision()
    if current == head:
        return
    if current is None and not inspect(db.engine).get_table_names():
        from flask_migrate import upgrade

        current_app.logger.info("Building the database schema with the migrations")
        upgrade(directory=migrate.directory)
        return
    found = f"is at revision {current}" if current else "has tables but no migration history"
    raise SchemaNotCurrent(f"The database {found}; this version of Fundus needs {head}. "
                           "Bring it up to date first: flask --app app db upgrade")
