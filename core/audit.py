"""The audit trail (DOMAIN rule 11): every staff action and state change, who, when, what, from what
to what, why, written in the same transaction as the change.

An entry names the object acted on and refers to the objects whose history it belongs to (a
handover: the request, its bookings, units and materials), so each page can show its history from
one indexed table. The database refuses to delete an entry or to change what it says; the only
change allowed is to forget: the acting account (when it is deleted, the role stays) and the free
text (when the retention rules of DOMAIN rule 7 remove personal data).
"""

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, select, update
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.extensions import db
from core.models import utcnow

PUBLIC = "public"  # someone without an account: a trainee through their link, an applicant
SYSTEM = "system"  # the periodic jobs


class AuditEntry(db.Model):
    __tablename__ = "audit_entries"
    # An object's entries of one action (a registration's cancellation), and one action's entries of a
    # period (the figures' handovers) read from the index alone.
    __table_args__ = (Index("ix_audit_entries_object_action", "object_type", "object_id", "action"),
                      Index("ix_audit_entries_action_created_at", "object_type", "action", "created_at", "object_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    actor_role: Mapped[str] = mapped_column(String(16))  # admin, staff, partner, trainee or system
    action: Mapped[str] = mapped_column(String(40), index=True)
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[int | None]
    from_state: Mapped[str] = mapped_column(String(40), default="")
    to_state: Mapped[str] = mapped_column(String(40), default="")
    reason: Mapped[str] = mapped_column(Text, default="")  # typed by the person acting
    details: Mapped[str] = mapped_column(Text, default="")  # what changed, in a few words

    refs: Mapped[list["AuditRef"]] = relationship(cascade="all, delete-orphan", back_populates="entry")


class AuditRef(db.Model):
    """An object whose history an entry belongs to (the object acted on is always one)."""

    __tablename__ = "audit_refs"
    __table_args__ = (Index("ix_audit_refs_object", "object_type", "object_id", "entry_id"),)

    entry_id: Mapped[int] = mapped_column(ForeignKey("audit_entries.id", ondelete="CASCADE"), primary_key=True)
    object_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    object_id: Mapped[int] = mapped_column(primary_key=True)

    entry: Mapped[AuditEntry] = relationship(back_populates="refs")


@dataclass(frozen=True)
class Subject:
    """Something acted on that is not a row, e.g. ``Subject("person")`` for one address's data."""

    audit_type: str
    id: int | None = None


NAMES: dict[str, Callable[[list[int]], dict[int, str]]] = {}


def names(object_type: str, column, *joins) -> None:
    """Register how the trail names objects of a type for people: by ``column`` (an inventory code, a
    title) of the type's model, reached through ``joins``. Features register their own, so core needs
    none of their models."""
    model = joins[0] if joins else column.class_

    def lookup(ids: list[int]) -> dict[int, str]:
        query = select(model.id, column)
        for target in joins[1:]:
            query = query.join(target)
        return dict(db.session.execute(query.where(model.id.in_(ids))).all())

    NAMES[object_type] = lookup


def type_of(obj) -> str:
    """The name an object goes by in the trail: its ``audit_type``, else its class name."""
    cls = obj if isinstance(obj, type) else type(obj)
    return getattr(obj, "audit_type", None) or cls.__name__.lower()


def _state(value) -> str:
    if value is None:
        return ""
    return value.value if isinstance(value, enum.Enum) else str(value)


def record(actor, action: str, obj, from_state=None, to_state=None, reason: str = "", details: str = "",
           refs: Iterable = ()) -> AuditEntry:
    """Write one entry in the current transaction. ``actor`` is the acting account, or ``PUBLIC``
    or ``SYSTEM``; ``refs`` are further objects whose history the entry belongs to."""
    if obj.id is None and not isinstance(obj, Subject):
        db.session.flush()  # a new object gets its id
    if isinstance(actor, str):
        actor_id, role = None, actor
    else:
        actor_id, role = actor.id, _state(actor.role)
    entry = AuditEntry(actor_id=actor_id, actor_role=role, action=action, object_type=type_of(obj),
                       object_id=obj.id, from_state=_state(from_state), to_state=_state(to_state),
                       reason=(reason or "").strip(), details=details)
    seen = set()
    for ref in (obj, *refs):
        if ref is None:
            continue
        key = (type_of(ref), ref.id)
        if key not in seen and key[1] is not None:
            seen.add(key)
            entry.refs.append(AuditRef(object_type=key[0], object_id=key[1]))
    db.session.add(entry)
    return entry


def entries_about(obj_type: str, object_ids):
    """A select of the ids of the entries about any of these objects (through their refs)."""
    return select(AuditRef.entry_id).where(AuditRef.object_type == obj_type, AuditRef.object_id.in_(object_ids))


def forget_text(obj_type: str, object_ids) -> None:
    """Remove what people typed (the reasons) from the entries whose object is one of these, whose
    personal data is being removed. Entries that only refer to them (a training's cancellation) keep
    their reason; ``details`` are written by the code from codes, numbers and titles, never from
    personal data, and stay."""
    ids = list(object_ids)
    if ids:
        db.session.execute(update(AuditEntry).where(AuditEntry.object_type == obj_type,
                                                    AuditEntry.object_id.in_(ids), AuditEntry.reason != "")
                           .values(reason="").execution_options(synchronize_session=False))
