"""The audit trail as people read it: an object's history on its page, and the admins' list with
filters and a CSV file. The entries themselves are written by ``core.audit``."""

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from flask import url_for
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, select

from accounts.models import Role, User
from core.audit import NAMES, PUBLIC, SYSTEM, AuditEntry, entries_about
from core.bounds import FIRST_DAY, LAST_DAY, parse_date
from core.extensions import db
from core.i18n import format_date, language_name, local_tz
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
    "mail": _l("Mail"),
    "topic": _l("Topic"),
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
    "retry": _l("queued again"),
}
# Where an object type needs its own word for an action.
TYPED_ACTIONS = {("training", "cancel"): _l("training cancelled"),
                 ("registration", "release"): _l("ended by staff (address never confirmed)")}
# Names of the fields an "edit" of an account or organisation lists.
FIELDS = {"email": _l("e-mail address"), "name": _l("name"), "role": _l("role"), "locale": _l("language"),
          "organisation": _l("organisation"), "active": _l("active"), "profile": _l("own profile"),
          "kind": _l("kind"), "street": _l("street"), "postcode": _l("postcode"), "city": _l("city"),
          "phone": _l("phone"), "notes": _l("notes")}
# The files an upload replaced.
FILES = {"cover": _l("cover image"), "pdf": _l("PDF download")}
# What a number in ``details`` counts, per action.
COUNTS = {"attendance": _l("%(n)s marked present"), "message": _l("to %(n)s people"),
          "certificate": _l("%(n)s sessions"), "export": _l("%(n)s registrations"),
          "delete": _l("%(n)s registrations")}

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

    object_name: str = ""

    @property
    def kind(self) -> str:
        kind = OBJECT_KINDS.get(self.entry.object_type)
        label = str(kind) if kind else self.entry.object_type
        if self.object_name:
            return f"{label} {self.object_name}"
        return f"{label} #{self.entry.object_id}" if self.entry.object_id else label

    @property
    def link(self) -> str | None:
        """The object's page, where there is one."""
        entry = self.entry
        pages = {"request": ("requests.detail", "request_id"), "unit": ("materials.unit", "unit_id"),
                 "material": ("materials.manage", "material_id"), "training": ("trainings.participants", "training_id"),
                 "organisation": ("accounts.organisation_detail", "organisation_id"),
                 "user": ("accounts.user_edit", "user_id"), "application": ("accounts.application_detail",
                                                                            "application_id")}
        if entry.object_type not in pages or not entry.object_id:
            return None
        endpoint, arg = pages[entry.object_type]
        return url_for(endpoint, **{arg: entry.object_id})

    @property
    def what(self) -> str:
        action = TYPED_ACTIONS.get((self.entry.object_type, self.entry.action)) or ACTIONS.get(self.entry.action)
        return str(action) if action else self.entry.action

    @property
    def change(self) -> str:
        entry = self.entry
        before, after = (self._state(s) for s in (entry.from_state, entry.to_state))
        if before and after and before != after:
            return f"{before} → {after}"
        return after if after and not before else ""

    def _state(self, value: str) -> str:
        role = Role._value2member_map_.get(value) if self.entry.object_type == "user" else None
        return role.label if role else state_label(self.entry.object_type, value)

    @property
    def details(self) -> str:
        """What changed, in the reader's language: counts and field names are words, not codes."""
        entry = self.entry
        if entry.action in COUNTS and entry.details.isdecimal():
            return str(COUNTS[entry.action] % {"n": entry.details})
        if entry.action == "edit" and entry.object_type in ("user", "organisation") and entry.details:
            return ", ".join(str(FIELDS.get(code, code)) for code in entry.details.split(", "))
        if entry.action == "files" and entry.details:
            return ", ".join(str(FILES.get(code, code)) for code in entry.details.split(", "))
        if entry.action == "import" and " / " in entry.details:
            added, rows = entry.details.split(" / ", 1)
            return str(_l("%(added)s of %(rows)s rows", added=added, rows=rows))
        if entry.action in DATA_DETAILS:
            return readable(entry.details)
        return entry.details

    @property
    def role(self) -> str:
        if self.entry.actor_role in ACTORS:
            return str(ACTORS[self.entry.actor_role])
        role = Role._value2member_map_.get(self.entry.actor_role)
        return role.label if role else self.entry.actor_role


# The actions whose details the code writes with ISO dates and language codes (booked periods, editions),
# not people's own words: only those are shown as dates and language names.
DATA_DETAILS = {"submit", "extend", "add"}
ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
LANGUAGE_CODE = re.compile(r"\(([a-z]{2,3})\)")


def readable(details: str) -> str:
    """Details as stored (ISO dates, language codes: the same in every language) as the reader reads
    them: "2026-12-17" as a date of the page's language, "(tr)" as "(Türkisch)"."""
    def as_date(match: re.Match) -> str:
        try:
            return format_date(date(*(int(part) for part in match.groups())))
        except ValueError:
            return match.group(0)

    def as_language(match: re.Match) -> str:
        name = language_name(match.group(1))
        return f"({name})" if name != match.group(1) else match.group(0)

    return LANGUAGE_CODE.sub(as_language, ISO_DATE.sub(as_date, details))


def _rows(query: Select) -> list[HistoryRow]:
    """The entries with their actors' names and the names of what they are about (one query a kind)."""
    rows = [HistoryRow(entry, name) for entry, name in db.session.execute(query)]
    wanted: dict[str, set[int]] = {}
    for row in rows:
        if row.entry.object_id and row.entry.object_type in NAMES:
            wanted.setdefault(row.entry.object_type, set()).add(row.entry.object_id)
    found = {kind: NAMES[kind](sorted(ids)) for kind, ids in wanted.items()}
    for row in rows:
        row.object_name = str(found.get(row.entry.object_type, {}).get(row.entry.object_id, ""))
    return rows


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
    errors: list = field(default_factory=list)

    @classmethod
    def from_args(cls, args) -> "AuditFilter":
        found = cls()
        actor = args.get("actor", "")
        if actor in ACTORS or (actor.isdecimal() and len(actor) <= 9):
            found.actor = actor
        if args.get("kind", "") in OBJECT_KINDS:
            found.kind = args["kind"]
        for name in ("start", "end"):
            raw = args.get(name, "").strip()[:40]
            setattr(found, name, parse_date(raw))
            if raw and getattr(found, name) is None:
                found.errors.append(_l("“%(value)s” is not a date from %(first)s to %(last)s (YYYY-MM-DD).",
                                       value=raw, first=FIRST_DAY.year, last=LAST_DAY.year))
        return found

    def args(self) -> dict:
        values = {"actor": self.actor, "kind": self.kind, "start": self.start.isoformat() if self.start else "",
                  "end": self.end.isoformat() if self.end else ""}
        return {k: v for k, v in values.items() if v}

    def query(self) -> Select:
        query = _entries()
        if self.actor.isdecimal():
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
    rows = [[r.entry.created_at, r.who, r.role, r.kind, r.what, r.change, r.entry.reason, r.details]
            for r in _rows(found.query())]
    return header, rows


def actors() -> list[tuple[str, str]]:
    """The choices of the "who" filter: every account that has acted, then the two kinds without one."""
    people = db.session.execute(select(User.id, User.name).where(
        User.id.in_(select(AuditEntry.actor_id).where(AuditEntry.actor_id.is_not(None)).distinct()))
        .order_by(User.name))
    return [(str(row.id), row.name) for row in people] + [(key, str(label)) for key, label in ACTORS.items()]
