"""Materials workflows: stock changes with their ledger, booking units, handing them over.

Code checks give precise messages; the database constraints (see
``materials.models``) make the rules true under concurrent requests.
"""

from datetime import date, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from accounts.models import User
from core.extensions import db
from materials.models import (
    Booking,
    BookingStatus,
    Edition,
    Lending,
    StockEntry,
    StockReason,
    Unit,
)

ACTIVE_BOOKING = (BookingStatus.RESERVED, BookingStatus.HANDED_OVER)


class MaterialsError(Exception):
    """A rule of the materials feature was broken; ``message`` tells the user what to do."""

    def __init__(self, message, field: str | None = None):
        super().__init__(str(message))
        self.message = message
        self.field = field


class NotAvailable(MaterialsError):
    """What was asked for is (no longer) there."""


def change_stock(
    edition_id: int,
    delta: int,
    reason: StockReason,
    user: User | None,
    note: str = "",
    request_id: int | None = None,
) -> StockEntry:
    """Add ``delta`` to an edition's stock and write the ledger row, in the caller's transaction.

    The conditional update never takes stock below zero, however many requests
    run at once; if it would, nothing changes and ``NotAvailable`` says how many are left.
    """
    if delta == 0:
        raise MaterialsError(_l("Enter a quantity other than zero."), field="quantity")
    row = db.session.execute(
        update(Edition)
        .where(Edition.id == edition_id, Edition.stock_on_hand + delta >= 0)
        .values(stock_on_hand=Edition.stock_on_hand + delta)
        .returning(Edition.stock_on_hand)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        left = db.session.scalar(select(Edition.stock_on_hand).where(Edition.id == edition_id))
        if left is None:
            raise MaterialsError(_l("Unknown edition."))
        raise NotAvailable(
            _l("Only %(left)s copies are left; %(wanted)s were asked for.", left=left, wanted=-delta),
            field="quantity",
        )
    entry = StockEntry(
        edition_id=edition_id,
        delta=delta,
        balance_after=row.stock_on_hand,
        reason=reason,
        note=note.strip(),
        user_id=user.id if user else None,
        request_id=request_id,
    )
    db.session.add(entry)
    db.session.flush()
    return entry


def overlapping_bookings(unit_id: int, starts_on: date, blocked_until: date) -> list[Booking]:
    return db.session.scalars(
        select(Booking).where(
            Booking.unit_id == unit_id,
            Booking.status.in_(ACTIVE_BOOKING),
            Booking.starts_on <= blocked_until,
            Booking.blocked_until >= starts_on,
        )
    ).all()


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
    if material.loan_days_max and (ends_on - starts_on).days + 1 > material.loan_days_max:
        raise MaterialsError(
            _l("This material can be borrowed for at most %(days)s days.", days=material.loan_days_max),
            field="ends_on",
        )
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


def hand_over_booking(booking_id: int) -> Booking:
    """Mark a reserved unit as handed over; a unit can be in one open loan only."""
    try:
        with db.session.begin_nested():
            result = db.session.execute(
                update(Booking)
                .where(Booking.id == booking_id, Booking.status == BookingStatus.RESERVED)
                .values(status=BookingStatus.HANDED_OVER)
                .execution_options(synchronize_session=False)
            )
    except IntegrityError:
        raise NotAvailable(_l("This unit is still out on another loan.")) from None
    if result.rowcount != 1:
        raise MaterialsError(_l("This booking cannot be handed over (any more)."))
    booking = db.session.get(Booking, booking_id)
    db.session.refresh(booking)
    return booking
