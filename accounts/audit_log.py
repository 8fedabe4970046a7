"""The audit trail as people read it: an object's history on its page, and the admins' list with
filters and a CSV file. The entries themselves are written by ``core.audit``."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, select

from accounts.models import Role, User
from core.audit import PUBLIC, SYSTEM, AuditEntry, entries_about
from core.bounds import parse_date
from core.extensions import db
from core.i18n import local_tz
from core.states import state_label

OBJECT_KINDS = {
    "request": _l("Request"),
    "booking": _l("Booking"),
    "unit": _l("Unit"),
    "material": _l("Material"),
    "edition": _l("Edition"),
    "training": _l("Training"),
    "registration": _l("Registration"),
    "person": _l("Personal data"),
    "user": _l("Account"),
    "organisation": _l("Organisation"),
    "application": _l("Application"),
}

ACTIONS = {
    "submit": _l("submitted"),
    "approve": _l("approved"),
    "reject": _l("rejected"),
    "cancel": _l("cancelled"),
    "hand_over": _l("handed over"),
    "take_back": _l("taken back"),
    "return": _l("everything back"),
    "close": _l("closed"),
    "extend": _l("return date moved"),
    "reassign": _l("unit changed"),
    "release": _l("released"),
    "clear": _l("cleared"),
    "retire": _l("retired"),
    "add": _l("added"),
    "stock": _l("stock changed"),
    "create": _l("created"),
    "edit": _l("changed"),
    "archive": _l("archived"),
    "restore": _l("back in the catalogue"),
    "files": _l("files uploaded"),
    "import": _l("imported"),
    "publish": _l("published"),
    "register": _l("registered"),
    "confirm": _l("confirmed"),
    "promote": _l("seat from the waiting list"),
    "give_seat": _l("seat given by staff"),
    "expire": _l("hold expired"),
    "attendance": _l("attendance recorded"),
    "certificate": _l("certificate issued"),
    "message": _l("message sent"),
    "export": _l("data exported"),
    "delete": _l("data deleted"),
    "invite": _l("invitation sent"),
    "password": _l("password changed"),
}

ACTORS = {PUBLIC: _l("Someone without an account"), SYSTEM: _l("Automatic (jobs)")}


@dataclass
class HistoryRow:
    entry: AuditEntry
    actor_name: str | None

    @property
    def who(self) -> str:
        if self.actor_name:
            return self.actor_name
        if self.entry.actor_role in ACTORS:
            return str(ACTORS[self.entry.actor_role])
        role = Role._value2member_map_.get(self.entry.actor_role)
        return role.label if role else self.entry.actor_role

    @property
    def kind(self) -> str:
        kind = OBJECT_KINDS.get(self.entry.object_type)
        label = str(kind) if kind else self.entry.object_type
        return f"{label} #{self.entry.object_id}" if self.entry.object_id else label

    @property
    def what(self) -> str:
        action = ACTIONS.get(self.entry.action)
        return str(action) if action else self.entry.action

    @property
    def change(self) -> str:
        entry = self.entry
        before, after = (state_label(entry.object_type, s) for s in (entry.from_state, entry.to_state))
        if before and after and before != after:
            return f"{before} → {after}"
        return after if after and not before else ""


def _rows(query: Select) -> list[HistoryRow]:
    return [HistoryRow(entry, name) for entry, name in db.session.execute(query)]


def _entries() -> Select:
    return select(AuditEntry, User.name).outerjoin(User, User.id == AuditEntry.actor_id)


def history(object_type: str, object_id: int, limit: int = 100) -> list[HistoryRow]:
    """The latest entries that belong to one object's history, newest first."""
    return _rows(_entries().where(AuditEntry.id.in_(entries_about(object_type, [object_id])))
                 .order_by(AuditEntry.id.desc()).limit(limit))


@dataclass
class AuditFilter:
    """The admin page's filters, from its URL parameters; what does not parse is dropped."""

    actor: str = ""  # a user id, or "trainee" / "system"
    kind: str = ""
    start: date | None = None
    end: date | None = None

    @classmethod
    def from_args(cls, args) -> "AuditFilter":
        found = cls()
        actor = args.get("actor", "")
        if actor in ACTORS or (actor.isdigit() and len(actor) <= 9):
            found.actor = actor
        if args.get("kind", "") in OBJECT_KINDS:
            found.kind = args["kind"]
        for name in ("start", "end"):
            setattr(found, name, parse_date(args.get(name, "")))
        return found

    def args(self) -> dict:
        values = {"actor": self.actor, "kind": self.kind, "start": self.start.isoformat() if self.start else "",
                  "end": self.end.isoformat() if self.end else ""}
        return {k: v for k, v in values.items() if v}

    def query(self) -> Select:
        query = _entries()
        if self.actor.isdigit():
            query = query.where(AuditEntry.actor_id == int(self.actor))
        elif self.actor:
            query = query.where(AuditEntry.actor_role == self.actor)
        if self.kind:
            query = query.where(AuditEntry.object_type == self.kind)
        if self.start:
            query = query.where(AuditEntry.created_at >= datetime.combine(self.start, time.min, local_tz()))
        if self.end:
            query = query.where(AuditEntry.created_at < datetime.combine(self.end + timedelta(days=1), time.min,
                                                                          local_tz()))
        return query.order_by(AuditEntry.id.desc())


def page(found: AuditFilter, number: int, per_page: int = 50) -> tuple[list[HistoryRow], bool]:
    """One page of the filtered trail and whether there is a next one."""
    rows = _rows(found.query().limit(per_page + 1).offset((number - 1) * per_page))
    return rows[:per_page], len(rows) > per_page


def csv_table(found: AuditFilter) -> tuple[list[str], list[list]]:
    """Header and rows of the filtered trail for a CSV file."""
    header = [str(h) for h in (_l("When"), _l("Who"), _l("Role"), _l("Object"), _l("What"), _l("Change"),
                               _l("Reason"), _l("Details"))]
    rows = [[r.entry.created_at, r.who, r.entry.actor_role, r.kind, r.what, r.change, r.entry.reason, r.entry.details]
            for r in _rows(found.query())]
    return header, rows


def actors() -> list[tuple[str, str]]:
    """The choices of the "who" filter: staff and admin accounts, then the two kinds without one."""
    people = db.session.execute(select(User.id, User.name).where(User.role.in_((Role.STAFF, Role.ADMIN)))
                                .order_by(User.name))
    return [(str(row.id), row.name) for row in people] + [(key, str(label)) for key, label in ACTORS.items()]
