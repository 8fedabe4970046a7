"""The figures of one period, each from an aggregate query (a fixed number of statements, whatever
the number of rows). Which period a thing belongs to:

- a session, its teaching hours and its attendance: the day the session starts;
- a training and its registrations (fill rate, no-shows, cancellations, the waiting list): the day its
  first session starts, so a training over New Year counts once, in the year it began;
- copies handed out, kits handed over, organisations served: the day of the handover; a kit's loan:
  the day it starts; damage: the day of the return; a request: the day it came in.

Only what has happened by ``now`` counts. Anonymised registrations count like any other (their status
and attendance stay); so do those of people whose data was deleted (they are anonymised).
"""

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Date, Integer, and_, case, cast, distinct, exists, func, literal, select, union, union_all

from accounts.models import Organisation, OrganisationKind
from core.audit import AuditEntry
from core.extensions import db
from core.i18n import local_tz
from core.vocabulary import TargetGroup
from events.models import (
    Attendance,
    Registration,
    RegistrationStatus,
    Training,
    TrainingFormat,
    TrainingSession,
    TrainingStatus,
    registration_organisations,
)
from figures.period import Period
from materials.models import (
    Booking,
    BookingStatus,
    Edition,
    Material,
    MaterialKind,
    Request,
    RequestLine,
    RequestStatus,
    StockEntry,
    StockReason,
    Unit,
    UnitCondition,
)

STAFF_ROLES = ("staff", "admin")
BLOCKING = (UnitCondition.DAMAGED, UnitCondition.INCOMPLETE, UnitCondition.LOST)


def _sqlite() -> bool:
    return db.session.get_bind().dialect.name == "sqlite"


def hours_between(start, end):
    """SQL: the hours from one timestamp column to another, on SQLite and PostgreSQL."""
    if _sqlite():
        return (func.julianday(end) - func.julianday(start)) * 24.0
    return func.date_part("epoch", end - start) / 3600.0


def days_between(first, last):
    """SQL: the days from one date column to another, both counted."""
    if _sqlite():
        return cast(func.julianday(last) - func.julianday(first), Integer) + 1
    return last - first + 1


def utc_date(column):
    """SQL: the day (UTC, on both databases) of a timestamp column."""
    if _sqlite():
        return func.date(column)
    return cast(func.timezone("UTC", column), Date)


@dataclass
class Figures:
    """One period's figures: single numbers by key, and breakdowns (label → number) by key."""

    numbers: dict[str, float] = field(default_factory=dict)
    breakdowns: dict[str, dict] = field(default_factory=dict)


def moments(now: datetime) -> tuple:
    """What of the time the figures depend on besides the data (one statement): the day (days out, overdue
    loans) and the last session start and end passed by ``now`` (sessions held, trainings begun, no-shows after
    a training's last session). With the data unchanged, ``compute(p, now)`` and ``compute(p, later)`` are the
    same when ``moments(now) == moments(later)``: no session began or ended in between, so the kept figures
    need not be counted again each minute."""
    started, ended = db.session.execute(select(
        func.max(case((TrainingSession.starts_at <= now, TrainingSession.starts_at))),
        func.max(case((TrainingSession.ends_at <= now, TrainingSession.ends_at))))).one()
    return now.astimezone(local_tz()).date(), started, ended


# This file's own text: figures kept for every process (``figures.report.kept_figures``) are keyed by it, so a
# release that counts otherwise (or counts more) never reads what the release before it counted and shared.
CODE_VERSION = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]

# The kinds of a breakdown's keys besides text and None, by name: how figures are written as JSON and read back
# (``core.pagecache.kept_value`` shares them between processes).
_KEY_KINDS = {kind.__name__: kind for kind in (TargetGroup, TrainingFormat, OrganisationKind, RequestStatus,
                                                MaterialKind)}


def _key_as_json(key) -> list:
    if key is None:
        return ["", None]
    if type(key) is str:
        return ["str", key]
    if type(key).__name__ in _KEY_KINDS:
        return [type(key).__name__, key.value]
    raise TypeError(f"a breakdown key of kind {type(key).__name__} cannot be shared: add it to _KEY_KINDS")


def figures_as_json(figures: Figures) -> dict:
    return {"numbers": figures.numbers,
            "breakdowns": {name: [[*_key_as_json(key), count] for key, count in breakdown.items()]
                           for name, breakdown in figures.breakdowns.items()}}


def figures_from_json(data: dict) -> Figures:
    def key(kind, value):
        return None if kind == "" else value if kind == "str" else _KEY_KINDS[kind](value)

    return Figures(dict(data["numbers"]), {name: {key(kind, value): count for kind, value, count in rows}
                                           for name, rows in data["breakdowns"].items()})


def compute(period: Period, now: datetime) -> Figures:
    figures = Figures()
    _trainings(figures, period, now)
    _materials(figures, period, now)
    _reach(figures, period, now)
    # Plain numbers whatever the database: PostgreSQL answers some sums and averages as Decimal.
    figures.numbers = {name: _plain(value) for name, value in figures.numbers.items()}
    figures.breakdowns = {name: {key: _plain(value) for key, value in breakdown.items()}
                          for name, breakdown in figures.breakdowns.items()}
    return figures


def _plain(value):
    return float(value) if isinstance(value, Decimal) else value


# Trainings ------------------------------------------------------------------------------------------

def _held_sessions(period: Period, now: datetime):
    a, b = period.bounds()
    return (select(TrainingSession.id).join(Training)
            .where(TrainingSession.starts_at >= a, TrainingSession.starts_at < b, TrainingSession.starts_at <= now,
                   Training.status == TrainingStatus.PUBLISHED))  # a draft never took place


def _trainings_begun(period: Period, now: datetime, cancelled: bool = False):
    """Trainings whose first session starts in the period (and has started), held or cancelled."""
    a, b = period.bounds()
    first = (select(TrainingSession.training_id, func.min(TrainingSession.starts_at).label("first"),
                    func.max(TrainingSession.ends_at).label("last"))
             .group_by(TrainingSession.training_id).subquery())
    # Cancelled: after it was published (a draft given up was never announced).
    status = and_(Training.status == TrainingStatus.CANCELLED, Training.is_public) if cancelled \
        else Training.status == TrainingStatus.PUBLISHED
    return (select(Training.id, Training.seats, first.c.last).join(first, first.c.training_id == Training.id)
            .where(first.c.first >= a, first.c.first < b, first.c.first <= now, status))


def _trainings(figures: Figures, period: Period, now: datetime) -> None:
    n = figures.numbers
    sessions = _held_sessions(period, now).subquery()
    length = hours_between(TrainingSession.starts_at, TrainingSession.ends_at)
    n["sessions"], hours = db.session.execute(select(func.count(), func.coalesce(func.sum(length), 0))
                                              .where(TrainingSession.id.in_(select(sessions.c.id)))).one()
    n["hours"] = round(float(hours), 1)
    begun = _trainings_begun(period, now).subquery()
    n["trainings"], seats = db.session.execute(select(func.count(), func.coalesce(func.sum(begun.c.seats), 0))
                                               .select_from(begun)).one()
    n["trainings_cancelled"] = db.session.scalar(
        select(func.count()).select_from(_trainings_begun(period, now, cancelled=True).subquery()))

    # Each statement joins the begun trainings once; nothing is evaluated per registration but the lookup
    # of its attendance by its key (a subquery in a CASE was run again for every row: minutes at scale).
    of_begun = (select().select_from(Registration).join(begun, begun.c.id == Registration.training_id))
    confirmed = Registration.status == RegistrationStatus.CONFIRMED
    attended_any = exists().where(Attendance.registration_id == Registration.id)
    n["registrations"], n["confirmed"], n["no_shows"], waiting = db.session.execute(of_begun.add_columns(
        func.count(), func.count(case((confirmed, 1))),
        func.count(case((and_(confirmed, begun.c.last <= now, ~attended_any), 1))),
        func.count(case((Registration.status == RegistrationStatus.WAITING, 1))))).one()
    n["fill_rate"] = round(100.0 * n["confirmed"] / seats, 1) if seats else 0.0
    # Unmet demand: still on the waiting list when the training began (it moves nobody up once begun), or
    # left the waiting list without a seat (cancelled or released from it: the audit entry's state).
    about_registration = and_(AuditEntry.object_type == "registration", AuditEntry.object_id == Registration.id)
    left_waiting = db.session.scalar(of_begun.join(AuditEntry, about_registration).add_columns(
        func.count(distinct(Registration.id))).where(AuditEntry.action.in_(("cancel", "release")),
                                                     AuditEntry.from_state == "waiting"))
    n["unmet"] = waiting + left_waiting
    by_staff = AuditEntry.actor_role.in_(STAFF_ROLES)
    n["cancelled_by_participants"], n["cancelled_by_staff"] = db.session.execute(of_begun.join(
        AuditEntry, about_registration).add_columns(func.count(case((~by_staff, 1))), func.count(case((by_staff, 1))))
        .where(AuditEntry.action == "cancel")).one()

    present = (select(Attendance.registration_id, Attendance.session_id)
               .where(Attendance.session_id.in_(select(sessions.c.id))).subquery())
    n["attendances"], n["participants"] = db.session.execute(
        select(func.count(), func.count(distinct(present.c.registration_id)))).one()

    # Participants (people present at least once) by the training's target groups and by its format.
    wrapped = "," + Training.target_groups + ","
    people = (select(*[func.count(distinct(case((wrapped.contains(f",{group.value},"), Registration.id))))
                       for group in TargetGroup])
              .select_from(Registration).join(Training)
              .where(Registration.id.in_(select(present.c.registration_id))))
    figures.breakdowns["participants_by_group"] = dict(zip(TargetGroup, db.session.execute(people).one(), strict=True))
    by_format = dict(db.session.execute(
        select(Training.format, func.count(distinct(Registration.id))).select_from(Registration).join(Training)
        .where(Registration.id.in_(select(present.c.registration_id))).group_by(Training.format)).all())
    figures.breakdowns["participants_by_format"] = {f: by_format.get(f, 0) for f in TrainingFormat}
    known = registration_organisations.c
    by_kind = dict(db.session.execute(
        select(Organisation.kind, func.count(distinct(present.c.registration_id))).select_from(present)
        .outerjoin(registration_organisations, known.registration_id == present.c.registration_id)
        .outerjoin(Organisation, Organisation.id == known.organisation_id).group_by(Organisation.kind)).all())
    figures.breakdowns["participants_by_org_kind"] = {kind: by_kind.get(kind, 0) for kind in [*OrganisationKind, None]}
    # Organisations someone came from: for the first time, or again (someone of theirs came before).
    came = _organisations_present(_held_sessions(period, now)).subquery()
    a, _b = period.bounds()
    earlier = _organisations_present(select(TrainingSession.id).where(TrainingSession.starts_at < a))
    n["training_organisations"], n["training_organisations_returning"] = db.session.execute(
        select(func.count(), func.count(case((came.c[0].in_(earlier), 1))))).one()
    n["training_organisations_first"] = n["training_organisations"] - n["training_organisations_returning"]
    month = _month(TrainingSession.starts_at, period).label("month")  # grouped by its name, on both databases
    per_month = dict(db.session.execute(
        select(month, func.count(distinct(TrainingSession.training_id)))
        .where(TrainingSession.id.in_(select(sessions.c.id))).group_by(month)).all())
    people_month = dict(db.session.execute(
        select(month, func.count(distinct(Attendance.registration_id)))
        .join(Attendance, Attendance.session_id == TrainingSession.id)
        .where(TrainingSession.id.in_(select(sessions.c.id))).group_by(month)).all())
    figures.breakdowns["trainings_by_month"] = {m: per_month.get(m, 0) for m in _months(period)}
    figures.breakdowns["participants_by_month"] = {m: people_month.get(m, 0) for m in _months(period)}


def _month(column, period: Period):
    """SQL: ``YYYY-MM`` of a timestamp column in the site's zone, as the period's bounds are: PostgreSQL
    converts itself; SQLite knows no zones, so the zone's offsets in and around the period (summer and
    winter time) are spelled out, each from the instant it begins."""
    zone = local_tz()
    if not _sqlite():
        return func.to_char(func.timezone(zone.key, column), "YYYY-MM")
    first, last = period.bounds()
    instant, changes = first - timedelta(days=1), []
    offset = instant.astimezone(zone).utcoffset()
    while instant < last + timedelta(days=1):
        following = instant + timedelta(days=1)
        if following.astimezone(zone).utcoffset() != offset:  # a change on this day: find its hour
            while instant.astimezone(zone).utcoffset() == offset:
                instant += timedelta(hours=1)
            offset = instant.astimezone(zone).utcoffset()
            changes.append((instant, offset))
        instant = following
    base = (first - timedelta(days=1)).astimezone(zone).utcoffset()  # before the first change

    def shift(delta: timedelta) -> str:
        return f"{int(delta.total_seconds() // 60):+d} minutes"

    modifier = case(*[(column >= at, shift(delta)) for at, delta in reversed(changes)], else_=shift(base)) \
        if changes else literal(shift(base))
    return func.strftime("%Y-%m", column, modifier)


def _months(period: Period) -> list[str]:
    months, year, month = [], period.start.year, period.start.month
    while (year, month) <= (period.end.year, period.end.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


# Materials ------------------------------------------------------------------------------------------

def _handovers(period: Period):
    """The requests handed over (first or more units, or their copies) in the period, by the audit entry."""
    a, b = period.bounds()
    return (select(AuditEntry.object_id).where(AuditEntry.object_type == "request", AuditEntry.action == "hand_over",
                                               AuditEntry.created_at >= a, AuditEntry.created_at < b))


def _materials(figures: Figures, period: Period, now: datetime) -> None:
    a, b = period.bounds()
    n = figures.numbers
    in_period = and_(StockEntry.reason == StockReason.HANDOUT, StockEntry.created_at >= a, StockEntry.created_at < b)
    by_staff = select(StockEntry.edition_id, (-StockEntry.delta).label("copies")).where(in_period,
                                                                                         StockEntry.delta < 0)
    by_request = (select(StockEntry.edition_id, RequestLine.quantity.label("copies"))
                  .join(RequestLine, and_(RequestLine.request_id == StockEntry.request_id,
                                          RequestLine.edition_id == StockEntry.edition_id))
                  .where(in_period, StockEntry.delta == 0))
    copies = union_all(by_staff, by_request).subquery()
    rows = db.session.execute(
        select(Material.id, Material.title, Material.kind, Edition.language, func.sum(copies.c.copies))
        .select_from(copies).join(Edition, Edition.id == copies.c.edition_id).join(Material)
        .group_by(Material.id, Material.title, Material.kind, Edition.language)).all()
    named = _distinct_names((id_, title) for id_, title, *_rest in rows)
    by_material, by_language, by_kind = {}, {}, {}
    for id_, _title, kind, language, count in rows:  # a row per edition handed out, not per handout
        by_material[named[id_]] = by_material.get(named[id_], 0) + int(count)
        by_language[language] = by_language.get(language, 0) + int(count)
        by_kind[kind] = by_kind.get(kind, 0) + int(count)
    n["copies"] = sum(by_material.values())
    figures.breakdowns.update(copies_by_material=by_material, copies_by_language=by_language, copies_by_kind=by_kind)

    # Days out: from the handover (an early one moved the start to that day) to the return, or to today
    # while still out; several kits of one title stay apart (by id), their title marked with it.
    today = now.astimezone(local_tz()).date()
    back = func.coalesce(utc_date(Booking.returned_at), literal(today, Date))
    per_unit = (select(Booking.unit_id, func.count().label("loans"),
                       func.sum(days_between(Booking.starts_on, back)).label("days"))
                .where(Booking.starts_on >= period.start, Booking.starts_on <= period.end,
                       Booking.status.in_((BookingStatus.HANDED_OVER, BookingStatus.RETURNED)))
                .group_by(Booking.unit_id).subquery())  # a period's loans from their index, then a row per unit
    loans = db.session.execute(
        select(Material.id, Material.title, func.sum(per_unit.c.loans), func.sum(per_unit.c.days))
        .select_from(per_unit).join(Unit, Unit.id == per_unit.c.unit_id).join(Edition).join(Material)
        .group_by(Material.id, Material.title)).all()
    named = _distinct_names((id_, title) for id_, title, _count, _days in loans)
    figures.breakdowns["loans_by_kit"] = {named[id_]: int(count) for id_, _t, count, _days in loans}
    figures.breakdowns["days_by_kit"] = {named[id_]: int(days or 0) for id_, _t, _count, days in loans}
    n["loans"] = sum(int(count) for _id, _t, count, _d in loans)
    n["loan_days"] = sum(int(days or 0) for _id, _t, _c, days in loans)

    statuses = dict(db.session.execute(select(Request.status, func.count())
                                       .where(Request.created_at >= a, Request.created_at < b)
                                       .group_by(Request.status)).all())
    figures.breakdowns["requests_by_status"] = {s: statuses.get(s, 0) for s in RequestStatus}
    n["requests"] = sum(statuses.values())
    hours = db.session.scalar(select(func.avg(hours_between(Request.created_at, Request.decided_at)))
                              .where(Request.decided_at >= a, Request.decided_at < b))
    n["decision_days"] = round(float(hours) / 24, 1) if hours is not None else 0.0

    n["overdue"] = db.session.scalar(select(func.count()).select_from(Booking).where(
        Booking.ends_on >= period.start, Booking.ends_on <= period.end,
        Booking.reminded_at.is_not(None) | ((Booking.status == BookingStatus.HANDED_OVER) & (Booking.ends_on < today))))
    n["damaged"] = db.session.scalar(select(func.count()).select_from(Booking).where(
        Booking.returned_at >= a, Booking.returned_at < b, Booking.return_condition.in_(BLOCKING)))


def _distinct_names(materials) -> dict[int, str]:
    """Materials by id with their titles; two of one title are told apart by their number."""
    materials = dict(materials)
    titles = list(materials.values())
    return {id_: title if titles.count(title) == 1 else f"{title} (#{id_})" for id_, title in materials.items()}


# Reach ----------------------------------------------------------------------------------------------

def _organisations_present(sessions):
    """The known organisations someone of theirs was present for at one of ``sessions``."""
    known = registration_organisations.c
    return (select(known.organisation_id).join(Attendance, Attendance.registration_id == known.registration_id)
            .where(Attendance.session_id.in_(sessions)).distinct())


def _reach(figures: Figures, period: Period, now: datetime) -> None:
    """Organisations served with material (a handover in the period) and reached by training (someone of
    theirs present at a session, where the organisation they gave is one Fundus knows:
    ``registration_organisations``). One statement gives each organisation's handovers and people present
    (a row per organisation, at most as many as there are: the handover scan runs once, not once per
    figure); one more which of them were reached before the period."""
    known = registration_organisations.c
    activity = union_all(
        select(Request.organisation_id.label("organisation_id"), literal(1).label("handovers"),
               literal(0).label("present")).where(Request.id.in_(_handovers(period))),
        select(known.organisation_id, literal(0), literal(1))
        .join(Attendance, Attendance.registration_id == known.registration_id)
        .where(Attendance.session_id.in_(_held_sessions(period, now))),
    ).subquery()
    rows = db.session.execute(
        select(Organisation.id, Organisation.name, Organisation.kind, Organisation.city,
               func.sum(activity.c.handovers), func.sum(activity.c.present))
        .join(activity, activity.c.organisation_id == Organisation.id)
        .group_by(Organisation.id, Organisation.name, Organisation.kind, Organisation.city)).all()
    served = [row for row in rows if row[4]]
    n = figures.numbers
    n["organisations_served"], n["organisations"] = len(served), len(rows)
    figures.breakdowns["served_by_kind"] = _by_kind(served)
    figures.breakdowns["served_by_city"] = _by_city(served)
    figures.breakdowns["reached_by_kind"] = _by_kind(rows)
    figures.breakdowns["reached_by_city"] = _by_city(rows)
    # Every organisation's activity (names are unique): the report ranks this period's ten and shows what
    # the same ten did in the period before, whatever their rank then.
    figures.breakdowns["top_organisations"] = {row[1]: int(row[4] + row[5]) for row in rows}
    earlier = Period("range", date(1970, 1, 1), period.start - timedelta(days=1))
    before = union(select(Request.organisation_id).where(Request.id.in_(_handovers(earlier))),
                   _organisations_present(_held_sessions(earlier, now))).subquery()
    known_before = set(db.session.scalars(select(before.c[0]).where(before.c[0].in_([row[0] for row in rows]))))
    n["organisations_new"] = sum(1 for row in rows if row[0] not in known_before)


def _by_kind(rows) -> dict:
    counts = {kind: 0 for kind in OrganisationKind}
    for row in rows:
        counts[row[2]] += 1
    return counts


def _by_city(rows) -> dict:
    counts = {}
    for row in rows:
        city = row[3] or "–"
        counts[city] = counts.get(city, 0) + 1
    return counts
