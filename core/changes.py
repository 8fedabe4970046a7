"""Change counters: a number per kind of data that rises with every committed change to it.

A conditional request (a calendar app polling a feed) asks "has anything changed?"; reading one row
by its key answers that in constant time, however much history the tables hold. Answers kept whole
per process (``core.pagecache``) are keyed by all counters, read in one statement.

This module is the one home of the rule "every committed change raises its counter": the session
notes which tables a flush or a bulk statement (``update()``, ``delete()``, ``insert()`` through the
session: the CSV import, the retention job) wrote, and just before the commit the counters of those
tables are raised in the same transaction (so a reader never sees the change without the new number,
or the number without the change), last in the transaction and in sorted order (one canonical lock
order: two transactions never wait for each other's counter rows in opposite order).
"""

from datetime import datetime
from itertools import chain

from sqlalchemy import String, bindparam, event, inspect, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.db import lone_read
from core.extensions import db
from core.models import utcnow


class ChangeCounter(db.Model):
    __tablename__ = "change_counters"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(default=0)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


# Which counter a write to a table raises. A table not named here raises a counter of its own name
# (a new table is counted until someone decides otherwise); the ``UNCOUNTED`` ones raise none.
COUNTER_OF_TABLE = {
    **dict.fromkeys(("topics", "materials", "material_topics", "editions", "kit_contents", "units"), "materials"),
    "stock_entries": "stock",
    **dict.fromkeys(("requests", "request_lines", "bookings"), "bookings"),
    # Trainings and their sessions, not their registrations: the public feeds' ETag is made of this one.
    **dict.fromkeys(("trainings", "training_sessions", "training_handouts"), "trainings"),
    **dict.fromkeys(("registrations", "registration_organisations", "attendances"), "registrations"),
    "organisations": "organisations",
}
# Bookkeeping no public page, feed, API answer or figure shows, written often (sign-ins, the outbox,
# the audit trail): counting them would only empty the caches and queue writers on the counter rows.
UNCOUNTED = frozenset({"change_counters", "users", "user_sessions", "sign_in_throttles", "user_tokens",
                       "account_applications", "audit_entries", "audit_refs", "outbox_messages", "carts",
                       "trainee_keys", "job_runs", "shared_values",
                       # a file is written under a new name with the material's change, which raises materials
                       "stored_files"})

_PENDING = "changed_counters"


def counter_of(table_name: str) -> str | None:
    if table_name in UNCOUNTED:
        return None
    return COUNTER_OF_TABLE.get(table_name, table_name)


def _note(session: Session, table_name: str) -> None:
    name = counter_of(table_name)
    if name is not None:
        session.info.setdefault(_PENDING, set()).add(name)


@event.listens_for(Session, "before_flush")
def _note_flushed(session: Session, _context, _instances) -> None:
    """The tables this flush writes: new and deleted rows, changed columns, and the link tables of
    changed many-to-many collections (a one-to-many collection's rows are new or changed themselves;
    a registration added to ``training.registrations`` does not change the training)."""
    for obj in chain(session.new, session.deleted):
        _note(session, inspect(obj).mapper.local_table.name)
    for obj in session.dirty:
        state = inspect(obj)
        if session.is_modified(obj, include_collections=False):
            _note(session, state.mapper.local_table.name)
        for relationship in state.mapper.relationships:
            if relationship.secondary is not None and state.attrs[relationship.key].history.has_changes():
                _note(session, relationship.secondary.name)


@event.listens_for(Session, "do_orm_execute")
def _note_bulk(execute_state) -> None:
    """A bulk ``update()``/``delete()``/``insert()`` run through the session passes no flush."""
    if execute_state.is_insert or execute_state.is_update or execute_state.is_delete:
        _note(execute_state.session, execute_state.statement.table.name)


@event.listens_for(Session, "before_commit")
def _raise_noted(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint's release: the counters wait for the transaction's commit
        return
    session.flush()  # what the commit would flush now is noted before the counters are raised
    for name in sorted(session.info.pop(_PENDING, ())):
        bump(session, name)


@event.listens_for(Session, "after_transaction_end")
def _forget_noted(session: Session, transaction) -> None:
    if transaction.parent is None:  # rolled back (a commit has raised and forgotten them already)
        session.info.pop(_PENDING, None)


def bump(session: Session, name: str) -> None:
    """Raise the counter ``name`` within the session's transaction (created at 1 if missing)."""
    connection = session.connection()
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    now = utcnow()
    statement = insert(ChangeCounter).values(name=name, value=1, changed_at=now)
    connection.execute(statement.on_conflict_do_update(
        index_elements=[ChangeCounter.name],
        set_={"value": ChangeCounter.value + 1, "changed_at": now},
    ))


_READ = select(ChangeCounter.value, ChangeCounter.changed_at).where(ChangeCounter.name == bindparam("name"))
_READ_ALL = "SELECT name, value FROM change_counters ORDER BY name"  # as text: no statement to compile or look up


def version(name: str) -> tuple[int, datetime | None]:
    """The counter and the time of the last change; ``(0, None)`` before the first change.

    For a conditional feed request this is all the database work, so it is read on a pooled
    connection of its own rather than through the ORM session (whose bookkeeping cost more than the
    query), outside a transaction (see ``core.db.lone_read``)."""
    row = lone_read(lambda connection: connection.execute(_READ, {"name": name}).first())
    return (row.value, row.changed_at) if row else (0, None)


def all_versions(in_session: bool = False) -> tuple:
    """Every counter, as ``((name, value), …)``, in one statement over the few rows of the table (on a
    connection of its own, outside a transaction, like ``version``). Anything any public answer shows
    has changed exactly when this has. ``in_session``: read in the session's transaction instead, so that on
    SQLite the counters and the data read after them come from one snapshot (a value shared between processes
    must never be older than its key)."""
    if in_session:
        return tuple(tuple(row) for row in db.session.execute(text(_READ_ALL)))
    return lone_read(lambda connection: tuple(tuple(row) for row in connection.exec_driver_sql(_READ_ALL)))
