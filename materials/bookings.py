"""Bookings of returnable units (DOMAIN rule 1): a unit is never booked twice for overlapping
periods, buffer days included, and never in two open loans.

``overlaps`` is the one overlap rule; every query and check here uses it. The database makes the
rule true under concurrency (an exclusion constraint on PostgreSQL, a trigger on SQLite, both in
migration ``7abc98dbceb9``; a partial unique index for open loans); the code checks first to give a
precise message. Writers lock the edition's row first (``materials.stock.lock_editions``), the one
canonical lock order, so bookings of one edition queue up instead of waiting on each other's rows.
"""

from datetime import date, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import Date, String, cast, func, literal, select
from sqlalchemy.exc import IntegrityError

from core.db import unit_of_work
from core.extensions import db
from core.i18n import format_date
from core.states import lock
from materials.errors import MaterialsError, NotAvailable
from materials.models import ACTIVE_BOOKING, Booking, Edition, Lending, Material, Unit, UnitCondition
from materials.stock import lock_editions


def overlaps(starts_on, blocked_until, other_starts_on, other_blocked_until):
    """The overlap rule: two periods, each with the buffer days after it, share at least one day.
    Works on dates and on SQL columns alike."""
    return (starts_on <= other_blocked_until) & (other_starts_on <= blocked_until)


def holds_unit(starts_on, blocked_until):
    """SQL: the booking is active and takes a day of the period (its buffer days included)."""
    return Booking.status.in_(ACTIVE_BOOKING) & overlaps(Booking.starts_on, Booking.blocked_until,
                                                         starts_on, blocked_until)


def overlapping_bookings(unit_id: int, starts_on: date, blocked_until: date) -> list[Booking]:
    return db.session.scalars(
        select(Booking).where(Booking.unit_id == unit_id, holds_unit(starts_on, blocked_until))
    ).all()


def latest_return(material: Material, starts_on: date) -> date | None:
    """The last return date the material's longest loan allows for a loan from ``starts_on`` (None: no limit)."""
    return starts_on + timedelta(days=material.loan_days_max - 1) if material.loan_days_max else None


def earliest_start(material: Material, ends_on: date) -> date | None:
    """The first start day the material's longest loan allows for a loan that ends on ``ends_on``."""
    return ends_on - timedelta(days=material.loan_days_max - 1) if material.loan_days_max else None


def check_loan_length(material: Material, starts_on: date, ends_on: date) -> None:
    """A loan lasts at most the material's ``loan_days_max`` days, counting both ends: in the cart, at
    booking, at an early handover (which moves the start) and at an extension (which moves the end)."""
    latest = latest_return(material, starts_on)
    if latest is not None and ends_on > latest:
        raise MaterialsError(_l("This material can be borrowed for at most %(days)s days: a loan from %(start)s "
                                "comes back by %(end)s at the latest.", days=material.loan_days_max,
                                start=format_date(starts_on), end=format_date(latest)), field="ends_on")


def book_unit(unit_id: int, starts_on: date, ends_on: date, request_id: int | None = None) -> Booking:
    """Reserve a unit for a period plus the material's buffer days, in the caller's transaction.

    Raises ``NotAvailable`` when the unit is taken; the database refuses an
    overlap that slips past the check (two requests at the same moment).
    """
    unit = db.session.get(Unit, unit_id)
    if unit is None or unit.edition.material.lending != Lending.RETURNABLE:
        raise MaterialsError(_l("Unknown unit."))
    if ends_on < starts_on:
        raise MaterialsError(_l("The return date is before the pickup date."), field="ends_on")
    material = unit.edition.material
    check_loan_length(material, starts_on, ends_on)
    if not unit.bookable:
        raise NotAvailable(_l("Unit %(code)s cannot be booked at the moment.", code=unit.inventory_code))
    blocked_until = ends_on + timedelta(days=material.buffer_days)
    if overlapping_bookings(unit_id, starts_on, blocked_until):
        raise NotAvailable(_l("Unit %(code)s is no longer available for this period.", code=unit.inventory_code))
    booking = Booking(
        unit_id=unit_id, request_id=request_id, starts_on=starts_on, ends_on=ends_on, blocked_until=blocked_until
    )
    try:
        # The savepoint comes first, so the insert is inside it and a refusal
        # by the database leaves the caller's transaction usable.
        with db.session.begin_nested():
            db.session.add(booking)
    except IntegrityError:
        raise NotAvailable(
            _l("Unit %(code)s is no longer available for this period.", code=unit.inventory_code)
        ) from None
    return booking


def book_free_unit(edition: Edition, starts_on: date, ends_on: date, request_id: int) -> Booking:
    """Book the first unit of the edition that is free for the period."""
    candidates = db.session.scalars(
        free_units_query(starts_on, ends_on).where(Unit.edition_id == edition.id).order_by(Unit.inventory_code)
    ).all()
    for unit_id in candidates:
        try:
            return book_unit(unit_id, starts_on, ends_on, request_id)
        except NotAvailable:
            continue  # taken a moment ago by someone else: try the next
    raise NotAvailable(_l("No unit is free from %(start)s to %(end)s.",
                          start=format_date(starts_on), end=format_date(ends_on)))


def free_unit_count(edition: Edition, starts_on: date, ends_on: date) -> int:
    """How many units of the edition are free for the period (buffer days included)."""
    return db.session.scalar(select(func.count()).select_from(
        free_units_query(starts_on, ends_on).where(Unit.edition_id == edition.id).subquery()))


def next_free_start(edition: Edition, starts_on: date, ends_on: date,
                    held: list[tuple[date, date]] | tuple = ()) -> date | None:
    """The first day on or after ``starts_on`` from which some unit of the edition is free for a period
    as long as the one asked for (with the buffer days after it, by the one overlap rule), one more
    than the caller ``held`` already (periods from their start to their last blocked day, such as the
    cart's); None when the edition has no bookable unit. One query: every active booking of its
    bookable units from then on. A start becomes possible only on ``starts_on`` or the day after a
    booking or held period ends, so only those days are tried."""
    unit_ids = [u.id for u in edition.units if u.bookable]
    if not unit_ids:
        return None
    taken = (ends_on - starts_on) + timedelta(days=edition.material.buffer_days)
    rows = db.session.execute(
        select(Booking.unit_id, Booking.starts_on, Booking.blocked_until)
        .where(Booking.unit_id.in_(unit_ids), Booking.status.in_(ACTIVE_BOOKING), Booking.blocked_until >= starts_on)
    ).all()
    by_unit = {unit_id: [] for unit_id in unit_ids}
    for row in rows:
        by_unit[row.unit_id].append((row.starts_on, row.blocked_until))
    held = [(start, end) for start, end in held if end >= starts_on]
    ends = [end for booked in by_unit.values() for _start, end in booked] + [end for _start, end in held]
    for candidate in sorted({starts_on} | {end + timedelta(days=1) for end in ends}):
        last = candidate + taken
        free = sum(1 for booked in by_unit.values()
                   if not any(overlaps(candidate, last, start, end) for start, end in booked))
        if free > sum(1 for start, end in held if overlaps(candidate, last, start, end)):
            return candidate
    return None  # not reached: after the last end nothing is booked or held


def hand_over_booking(booking: Booking) -> None:
    """Mark a reserved unit as handed over (part of its request's handover, which writes the audit
    entry); the database refuses a second open loan of the unit."""
    try:
        with db.session.begin_nested():  # before the change: entering it flushes what is pending
            Booking.states.move(booking, "hand_over", None, record=False)
            db.session.flush()
    except IntegrityError:
        raise NotAvailable(_l("Unit %(code)s is still out on another loan.",
                              code=booking.unit.inventory_code)) from None


def days_after(day: date, days):
    """SQL for ``day`` plus a number of days taken from a column, on SQLite and PostgreSQL."""
    if db.engine.dialect.name == "sqlite":
        return func.date(day.isoformat(), "+" + cast(days, String) + " days")
    return literal(day, Date) + days


def unit_is_free(starts_on: date, ends_on: date):
    """Conditions on ``Unit`` (with ``Material`` for the buffer days): good, not retired, and no
    active booking touches the period plus the material's buffer days."""
    busy = (
        select(Booking.id)
        .where(Booking.unit_id == Unit.id, holds_unit(starts_on, days_after(ends_on, Material.buffer_days)))
        # Unit and Material come from the enclosing query, however deep: left to auto-correlation,
        # a query that correlates Material one level further out got "FROM bookings, materials",
        # every material's buffer for every unit (wrong results, and 3 s a search on PostgreSQL).
        .correlate_except(Booking)
        .exists()
    )
    return (Unit.condition == UnitCondition.GOOD) & Unit.retired_at.is_(None) & ~busy


def free_units_query(starts_on: date, ends_on: date):
    """Units that could be booked for the period."""
    return select(Unit.id).join(Unit.edition).join(Edition.material).where(unit_is_free(starts_on, ends_on))


def month_availability(material: Material, month: date, language: str = "") -> list[list[tuple[date, int] | None]]:
    """Weeks (Monday first) of ``(day, free units)`` for a returnable material's month calendar: the
    units of every edition, or of the edition in ``language``."""
    first = month.replace(day=1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    unit_ids = [u.id for e in material.editions if not language or e.language == language
                for u in e.units if u.bookable]
    bookings = db.session.execute(
        select(Booking.unit_id, Booking.starts_on, Booking.blocked_until)
        .where(Booking.unit_id.in_(unit_ids), holds_unit(first, last))
    ).all()
    weeks, week = [], [None] * first.weekday()
    current = first
    while current <= last:
        busy = {b.unit_id for b in bookings if overlaps(b.starts_on, b.blocked_until, current, current)}
        week.append((current, len(unit_ids) - len(busy)))
        if len(week) == 7:
            weeks.append(week)
            week = []
        current += timedelta(days=1)
    if week:
        weeks.append(week + [None] * (7 - len(week)))
    return weeks


def _locked_booking(booking_id: int) -> Booking:
    """The booking with its edition's row and its own row locked, in the canonical order."""
    edition_id = db.session.scalar(select(Unit.edition_id).join(Booking, Booking.unit_id == Unit.id)
                                   .where(Booking.id == booking_id))
    if edition_id is None:
        raise MaterialsError(_l("This booking cannot be changed any more."))
    lock_editions([edition_id])
    return lock(Booking, booking_id)


def _refs(booking: Booking, *units: Unit) -> list:
    return [booking.request, *(units or (booking.unit,)), booking.unit.edition.material]


@unit_of_work
def extend_booking(booking_id: int, new_end: date, actor) -> Booking:
    """Move a loan's return date later, if no later booking of the unit conflicts."""
    booking = _locked_booking(booking_id)
    if not booking.can("extend"):
        raise MaterialsError(_l("This booking cannot be changed any more."))
    if new_end <= booking.ends_on:
        raise MaterialsError(_l("Choose a date after the current return date."), field="ends_on")
    check_loan_length(booking.unit.edition.material, booking.starts_on, new_end)
    old_end = booking.ends_on
    buffer = booking.unit.edition.material.buffer_days
    try:
        with db.session.begin_nested():
            booking.ends_on = new_end
            booking.blocked_until = new_end + timedelta(days=buffer)
            booking.reminded_at = None
    except IntegrityError:
        raise NotAvailable(
            _l("Unit %(code)s is booked by someone else in that time.", code=booking.unit.inventory_code)
        ) from None
    Booking.states.move(booking, "extend", actor, refs=_refs(booking),
                        details=f"{booking.unit.inventory_code}: {old_end.isoformat()} → {new_end.isoformat()}")
    return booking


def alternative_units(booking: Booking) -> list[Unit]:
    """Other units of the same edition that are free for the booking's period."""
    free = free_units_query(booking.starts_on, booking.ends_on).where(
        Unit.edition_id == booking.unit.edition_id, Unit.id != booking.unit_id
    )
    return db.session.scalars(select(Unit).where(Unit.id.in_(free)).order_by(Unit.inventory_code)).all()


@unit_of_work
def reassign_booking(booking_id: int, unit_id: int, actor) -> Booking:
    """Give a reserved booking another unit of the same edition; the database refuses a clash."""
    booking = _locked_booking(booking_id)
    unit = db.session.get(Unit, unit_id)
    if not booking.can("reassign"):
        raise MaterialsError(_l("This booking cannot be changed any more."))
    if unit is None or unit.edition_id != booking.unit.edition_id or not unit.bookable:
        raise MaterialsError(_l("Choose another unit of the same edition."))
    old = booking.unit
    try:
        with db.session.begin_nested():
            booking.unit_id = unit.id
    except IntegrityError:
        raise NotAvailable(_l("Unit %(code)s is no longer available for this period.",
                              code=unit.inventory_code)) from None
    db.session.refresh(booking, ["unit"])
    Booking.states.move(booking, "reassign", actor, refs=_refs(booking, old, unit),
                        details=f"{old.inventory_code} → {unit.inventory_code}")
    return booking
