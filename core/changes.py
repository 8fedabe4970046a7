"""Change counters: a number per kind of data that rises with every committed change to it.

A conditional request (a calendar app polling a feed) asks "has anything changed?"; reading one row
by its key answers that in constant time, however much history the tables hold. The counter is
raised in the same transaction as the change (the row lock orders concurrent writers), so a reader
never sees the change without the new number, or the number without the change.
"""

from datetime import datetime

from sqlalchemy import String, bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.db import lone_statements
from core.extensions import db
from core.models import utcnow


class ChangeCounter(db.Model):
    __tablename__ = "change_counters"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(default=0)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


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


def version(name: str) -> tuple[int, datetime | None]:
    """The counter and the time of the last change; ``(0, None)`` before the first change.

    For a conditional feed request this is all the database work, so it is read on a pooled
    connection of its own rather than through the ORM session (whose bookkeeping cost more than the
    query), outside a transaction (see ``lone_statements``)."""
    with lone_statements() as connection:
        row = connection.execute(_READ, {"name": name}).first()
    return (row.value, row.changed_at) if row else (0, None)
