"""Backup and restore of everything Fundus keeps: ``flask --app app backup FILE`` and ``flask --app app
restore FILE``, while the site runs.

Every row is in the database, the uploaded covers, thumbnails and PDFs included (``stored_files``), so one
file holds it all:

- SQLite: a copy of the database file made with SQLite's online backup API (``Connection.backup``), which
  reads one snapshot, however much other processes write meanwhile (WAL lets them go on). A restore
  copies the backup into the live file with the same API, as one write transaction: every process's open
  connections see the restored database from their next transaction.
- PostgreSQL: ``pg_dump --format=custom`` (one snapshot of the whole database, taken by pg_dump itself),
  restored by ``pg_restore --clean --single-transaction``, which replaces every table of the backup at once
  or, failing, changes nothing (an extension the database has, btree_gist, is left as it is).

A backup is written under a temporary name beside FILE and renamed when complete (a failed backup leaves
no half file under FILE's name), readable by its owner only (it holds personal data). A restore checks
FILE before it touches anything: a backup of the other database kind, or a file that is not a backup of
Fundus, is refused with a message and changes nothing.
"""

import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import click
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from flask.cli import with_appcontext
from sqlalchemy import case, inspect, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url

from core.changes import ChangeCounter, all_versions
from core.db import current_revision, head_revision
from core.extensions import db, migrate
from core.models import utcnow

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_MAGIC = b"PGDMP"  # the first bytes of a pg_dump archive in the custom format
SQLITE_BUSY_SECONDS = 30  # how long a backup or restore waits for another process's write transaction
# Counters a restore sets this far above their value read just before it (see ``raise_counters``).
COUNTER_GAP = 1000


class BackupError(click.ClickException):
    """A backup or restore that cannot be done; the message says why and what was (not) changed."""


def dialect() -> str:
    return db.engine.dialect.name


def database_name() -> str:
    """The database in words, without a password."""
    url = db.engine.url
    if dialect() == "sqlite":
        return f"the SQLite database {url.database}"
    return f"the PostgreSQL database {url.database} on {url.host or 'localhost'}:{url.port or 5432}"


def human_size(size: int) -> str:
    if size < 1000:
        return f"{size} bytes"
    for unit in ("kB", "MB", "GB"):
        size /= 1000
        if size < 1000 or unit == "GB":
            return f"{size:.1f} {unit}"
    raise AssertionError  # not reached


# --- Backup ---------------------------------------------------------------------------------------------


def backup(target: Path) -> int:
    """Write a backup of the database (the uploaded files included) to ``target``; return its size."""
    target = Path(target)
    if dialect() == "sqlite" and target.resolve() == sqlite_path().resolve():
        raise BackupError(f"{target} is the database itself; name another file.")
    with written_atomically(target) as temporary:
        if dialect() == "sqlite":
            _backup_sqlite(temporary)
        else:
            _backup_postgresql(temporary)
    return target.stat().st_size


@contextmanager
def written_atomically(target: Path):
    """A temporary file beside ``target`` (mode 0600) to write into; renamed to ``target`` when the block
    ends without an error, removed otherwise, so ``target`` is either the complete new file or as it was."""
    target = Path(target)
    folder = target.parent.resolve()
    if target.is_dir():
        raise BackupError(f"{target} is a folder; name a file.")
    if not folder.is_dir():
        raise BackupError(f"The folder {folder} does not exist.")
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)  # mode 0600
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o600)  # whatever wrote it, only the owner reads a backup
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)


def sqlite_path() -> Path:
    path = db.engine.url.database
    if not path or path == ":memory:" or db.engine.url.query.get("mode") == "memory":
        raise BackupError("The SQLite database is in memory; there is no file to back up or restore.")
    return Path(path)


def _open_live(create: bool = False) -> sqlite3.Connection:
    """A connection of its own to the live SQLite file; an existing file only, unless ``create``."""
    path = sqlite_path()
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return sqlite3.connect(path.resolve().as_uri() + ("?mode=rwc" if create else "?mode=rw"), uri=True,
                               timeout=SQLITE_BUSY_SECONDS, isolation_level=None)
    except sqlite3.Error as error:
        raise BackupError(f"Cannot open {database_name()}: {error}") from None


def _backup_sqlite(temporary: Path) -> None:
    try:
        with closing(_open_live()) as live, closing(sqlite3.connect(temporary, isolation_level=None)) as copy:
            live.backup(copy)  # all pages in one step: one read transaction, one snapshot
            copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal beside it
    except sqlite3.Error as error:
        raise BackupError(f"The backup failed, nothing was written to the file: {error}") from None


def _tool(program: str) -> str:
    found = shutil.which(program)
    if found is None:
        raise BackupError(f"{program} is not installed (Debian: apt-get install postgresql-client, "
                          "the server's major version or newer).")
    return found


def _connection() -> tuple[str, dict]:
    """The ``--dbname`` argument of pg_dump/pg_restore and their environment. The SQLAlchemy URL
    (``postgresql+psycopg://…``) becomes a libpq URL without the password, which goes in ``PGPASSWORD``:
    nothing secret on a command line other users can read."""
    url = make_url(db.engine.url)
    libpq = URL.create("postgresql", username=url.username, host=url.host, port=url.port, database=url.database,
                       query=url.query).render_as_string(hide_password=False)
    environment = dict(os.environ)
    if url.password is not None:
        environment["PGPASSWORD"] = str(url.password)
    return f"--dbname={libpq}", environment


def _run(command: list[str], failed: str, environment: dict | None = None) -> str:
    """Run a PostgreSQL tool; its output, or ``BackupError`` with ``failed`` ("… {reason} …") filled in
    with what the tool said."""
    done = subprocess.run(command, env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        reason = done.stderr.strip() or f"{Path(command[0]).name} ended with {done.returncode}"
        if "other objects depend on it" in reason:  # pg_restore: a newer schema's table refers to the backup's
            reason += "; restore into a new, empty database (createdb) instead"
        raise BackupError(failed.replace("{reason}", reason))
    return done.stdout


def _backup_postgresql(temporary: Path) -> None:
    dbname, environment = _connection()
    _run([_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", f"--file={temporary}", dbname],
         "The backup failed, nothing was written to the file: {reason}", environment)
    with open(temporary, "rb") as written:
        if written.read(len(PG_MAGIC)) != PG_MAGIC:
            raise BackupError("The backup failed: pg_dump wrote no archive.")


# --- Restore --------------------------------------------------------------------------------------------


@dataclass
class Checked:
    """A backup file found fit to restore into this database."""

    path: Path
    size: int
    tables: frozenset[str] = frozenset()  # PostgreSQL: the tables and functions the archive holds
    functions: frozenset[str] = frozenset()
    listing: str = ""  # PostgreSQL: its table of contents (pg_restore --list)


def check_backup(path: Path) -> Checked:
    """Refuse, before anything is touched, a file this database cannot restore: the other kind's backup,
    or anything that is not a backup of Fundus."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            head = file.read(len(SQLITE_MAGIC))
    except OSError as error:
        raise BackupError(f"Cannot read {path}: {error.strerror}.") from None
    size = path.stat().st_size
    if dialect() == "sqlite":
        if head.startswith(PG_MAGIC):
            raise BackupError(f"{path} is a backup of a PostgreSQL database (pg_dump); this Fundus runs on SQLite "
                              "and restores only its own kind of backup. Nothing was changed.")
        if head != SQLITE_MAGIC:
            raise BackupError(f"{path} is not a backup of Fundus (not an SQLite database). Nothing was changed.")
        with closing(_open_backup(path)) as backup_file:
            _check_fundus_sqlite(backup_file, path)
        return Checked(path, size)
    if head == SQLITE_MAGIC:
        raise BackupError(f"{path} is a backup of an SQLite database; this Fundus runs on PostgreSQL and restores "
                          "only its own kind of backup (made by flask --app app backup). Nothing was changed.")
    if not head.startswith(PG_MAGIC):
        raise BackupError(f"{path} is not a backup of Fundus (not a pg_dump archive in the custom format). "
                          "Nothing was changed.")
    listing = _run([_tool("pg_restore"), "--list", str(path)],  # reads the file only
                   f"{path} cannot be read as a pg_dump archive ({{reason}}). Nothing was changed.")
    objects = archive_objects(listing)
    if "alembic_version" not in objects["TABLE"]:
        raise BackupError(f"{path} is not a backup of Fundus (no alembic_version table). Nothing was changed.")
    return Checked(path, size, frozenset(objects["TABLE"]), frozenset(objects["FUNCTION"]), listing)


def _open_backup(path: Path) -> sqlite3.Connection:
    # Read-only and immutable: checking a backup writes nothing beside it.
    return sqlite3.connect(path.resolve().as_uri() + "?mode=ro&immutable=1", uri=True, isolation_level=None)


def _check_fundus_sqlite(connection: sqlite3.Connection, path: Path) -> None:
    """An SQLite file that is whole and has a schema revision of Fundus's migrations (any: an older one is
    upgraded after the restore)."""
    try:
        if connection.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise BackupError(f"{path} is damaged (PRAGMA quick_check). Nothing was changed.")
        if connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
                              ).fetchone() is None:
            raise BackupError(f"{path} is not a backup of Fundus (no alembic_version table). Nothing was changed.")
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError as error:
        raise BackupError(f"{path} cannot be read as an SQLite database ({error}). Nothing was changed.") from None
    if row is None:
        raise BackupError(f"{path} names no schema revision (alembic_version is empty). Nothing was changed.")


def archive_objects(listing: str) -> dict[str, set[str]]:
    """Tables and functions of a ``pg_restore --list`` (lines such as ``223; 1259 16440 TABLE public
    account_applications postgres``), by name, in the archive's schema ``public``."""
    found: dict[str, set[str]] = {"TABLE": set(), "FUNCTION": set()}
    for line in listing.splitlines():
        parts = line.split(" ")
        if line.startswith(";") or len(parts) < 6 or parts[3] not in found or parts[4] != "public":
            continue
        found[parts[3]].add(parts[5].split("(")[0])
    return found


@dataclass
class Restored:
    revision: str | None
    head: str | None
    newer: bool  # the backup's schema is unknown to this code (made by a newer Fundus)


def restore(checked: Checked) -> Restored:
    """Replace every row of the database (every uploaded file with them) by the backup's, then raise the
    change counters (``raise_counters``)."""
    db.session.rollback()  # this process holds no transaction (nor SQLite's lock) while the restore runs
    before = counter_values()
    if dialect() == "sqlite":
        _restore_sqlite(checked)
    else:
        _restore_postgresql(checked)
    raise_counters(before, checked)
    revision = current_revision()
    return Restored(revision, head_revision(), revision is not None and not _known(revision))


def _known(revision: str) -> bool:
    """Whether this code's migrations know ``revision`` (a backup of an older Fundus) or not (a newer one)."""
    try:
        return ScriptDirectory.from_config(migrate.get_config()).get_revision(revision) is not None
    except CommandError:
        return False


def counter_values() -> dict[str, int]:
    """The change counters now; none in a database without the table (a new, empty one)."""
    if not inspect(db.engine).has_table(ChangeCounter.__tablename__):
        return {}
    return dict(all_versions())


def _restore_sqlite(checked: Checked) -> None:
    with closing(_open_backup(checked.path)) as backup_file, closing(_open_live(create=True)) as live:
        try:
            # One write transaction into the live file (WAL stays on): readers see the old database or the
            # new one, and every connection notices the new schema at its next statement.
            backup_file.backup(live)
        except sqlite3.Error as error:
            raise BackupError(f"The restore failed, the database was not changed: {error}") from None


def _restore_postgresql(checked: Checked) -> None:
    dbname, environment = _connection()
    with db.engine.connect() as connection:
        installed = set(connection.scalars(text("SELECT extname FROM pg_extension")))
    with tempfile.NamedTemporaryFile("w", prefix="fundus-restore-", suffix=".list") as entries:
        entries.write(restore_list(checked.listing, installed))
        entries.flush()
        _run([_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction",
              "--exit-on-error", f"--use-list={entries.name}", dbname, str(checked.path)],
             "The restore failed and was rolled back, the database was not changed: {reason}", environment)


# "2; 3079 16643 EXTENSION - btree_gist " and "4041; 0 0 COMMENT - EXTENSION btree_gist " in a pg_restore --list
EXTENSION_ENTRY = re.compile(r"\d+; \d+ \d+ (?:EXTENSION -|COMMENT - EXTENSION) (\S+)")


def restore_list(listing: str, installed: set[str]) -> str:
    """The archive's entries to restore: all but the extensions the database has already (btree_gist). An
    extension is no data, and the role Fundus connects as cannot drop (``--clean``) or comment on one a
    superuser installed; one the database lacks (a new database) is created."""
    kept = []
    for line in listing.splitlines():
        extension = EXTENSION_ENTRY.match(line)
        if extension is None or extension[1] not in installed:
            kept.append(line)
    return "\n".join(kept) + "\n"


def _drop_what_the_backup_lacks(connection, checked: Checked) -> None:
    """PostgreSQL: pg_restore --clean replaced the backup's own tables and functions only; drop those of a
    newer schema beside them (not extensions' functions), so no row of them survives the restore and
    ``flask --app app db upgrade`` can build them again."""
    tables = connection.scalars(text(
        "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = current_schema() "
        "AND tablename <> ALL(:keep) ORDER BY tablename"), {"keep": sorted(checked.tables)}).all()
    functions = connection.scalars(text(
        "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace "
        "AND p.proname <> ALL(:keep) AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = "
        "'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e') ORDER BY 1"),
        {"keep": sorted(checked.functions)}).all()
    for table in tables:
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table} CASCADE")
    for signature in functions:
        connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {signature} CASCADE")


def raise_counters(before: dict[str, int], checked: Checked) -> None:
    """After a restore, set every change counter above both its value before the restore and the backup's,
    in one transaction.

    Every process keeps public answers under the tuple of all counters (``core.pagecache``) and gives
    ETags made of them (the feeds, the API). Counters only ever rise, so a key or ETag a process or client
    holds was made with values at most those read before the restore (``before``, read by ``restore``
    first). The backup's values are lower or equal for a backup of this database, and anything for another
    one. A counter ending above both can meet no key or ETag made before: nothing kept before the restore is
    served again, no ``If-None-Match`` from before gets a 304, on any process, from the next request on.

    Writes of running processes between that reading and the restore raise counters too (the restore
    then throws their rows away); ``COUNTER_GAP`` puts the counters far above any number of changes made
    in those seconds. A counter the backup lacks is made again above its old value.

    PostgreSQL: what a newer schema has beside the backup's tables is dropped in the same transaction
    (``_drop_what_the_backup_lacks``).
    """
    postgresql = dialect() == "postgresql"
    insert = pg_insert if postgresql else sqlite_insert
    with db.engine.begin() as connection:  # SQLite: BEGIN IMMEDIATE, no writer in between
        if postgresql:
            _drop_what_the_backup_lacks(connection, checked)
        restored = connection.scalars(select(ChangeCounter.name)).all()
        now = utcnow()
        for name in sorted(set(before) | set(restored)):  # the one lock order of the counter rows
            floor = before.get(name, 0) + COUNTER_GAP
            statement = insert(ChangeCounter).values(name=name, value=floor + 1, changed_at=now)
            connection.execute(statement.on_conflict_do_update(
                index_elements=[ChangeCounter.name],
                set_={"value": case((ChangeCounter.value > floor, ChangeCounter.value), else_=floor) + 1,
                      "changed_at": now},
            ))


# --- Commands -------------------------------------------------------------------------------------------


@click.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def backup_command(file: Path):
    """Write a backup of the database, uploaded files included, to FILE (while the site runs).

    FILE is replaced only when the backup is complete, and only its owner may read it: it holds personal
    data. Restore it with: flask --app app restore FILE"""
    size = backup(file)
    click.echo(f"Backed up {database_name()} (uploaded files included) to {file} ({human_size(size)}).")


@click.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def restore_command(file: Path, yes: bool):
    """Replace every row of the database, uploaded files included, by those of FILE (made by backup).

    The site may go on running: its pages show the restored data from their next request."""
    checked = check_backup(file)
    if not yes:
        click.echo(f"Every row of {database_name()} (accounts, organisations, materials, requests, trainings, "
                   f"registrations, the audit trail, the uploaded files) will be replaced by those of {file} "
                   f"({human_size(checked.size)}); whatever changed since that backup was made is lost.")
        click.confirm("Restore the backup?", abort=True)
    done = restore(checked)
    click.echo(f"Restored {file} ({human_size(checked.size)}) into {database_name()}.")
    if done.revision != done.head:
        if done.newer:
            click.echo(f"The backup was made by a newer Fundus (schema {done.revision}, this code knows up to "
                       f"{done.head}): run the version of Fundus that made it.")
        else:
            click.echo(f"The backup was made by an older Fundus (schema {done.revision}, this code needs "
                       f"{done.head}); bring it up to date: flask --app app db upgrade")
