"""A request's way after submission: decisions, handover, return, close, and the mails about it.

Every step is a move of ``Request.states`` (and of its bookings' and units' states). The canonical lock
order: the request's row first, then the editions of what it holds (by id), then the units (by id).
An action names the state the acting person saw (``seen``): if a colleague changed it meanwhile, it is
refused instead of silently overriding theirs.
"""

from datetime import date, timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from accounts.models import User
from core import audit
from core.confirm import Consequences
from core.db import unit_of_work
from core.extensions import db
from core.i18n import format_date, local_today
from core.mail import queue_mail
from core.models import utcnow
from core.states import IllegalTransition, lock
from core.urls import external_url
from materials.bookings import alternative_units, earliest_start, hand_over_booking
from materials.errors import MaterialsError
from materials.models import (
    BLOCKED,
    Booking,
    BookingStatus,
    Edition,
    Request,
    RequestStatus,
    StockReason,
    Unit,
    UnitCondition,
)
from materials.stock import change_stock, lock_editions, note_handed_out


def _refs(request: Request, bookings=()) -> list:
    """What a request's entry belongs to: its bookings' units and the materials of everything in it."""
    refs = [item for b in bookings for item in (b, b.unit)]
    refs += [b.unit.edition.material for b in bookings] + [line.edition.material for line in request.lines]
    return refs


def _lock_request(request_id: int, seen: str | None) -> Request:
    """The request, locked; ``seen`` is the state the acting person's page showed: if it has changed
    meanwhile (a colleague acted in another tab), the action is refused instead of overriding theirs."""
    request = lock(Request, request_id)
    if seen is not None and request.status.value != seen:
        raise IllegalTransition(Request.states.refused)
    return request


def _lock_goods(request: Request, bookings=None) -> None:
    """After the request: the editions of everything it holds (by id), then the units (by id)."""
    bookings = request.bookings if bookings is None else bookings
    lock_editions([line.edition_id for line in request.lines] + [b.unit.edition_id for b in bookings])
    for unit_id in sorted({b.unit_id for b in bookings}):
        lock(Unit, unit_id)


def _release(request: Request, actor) -> list[Booking]:
    """Give back what a request held: cancel its reserved bookings, put its copies back into stock."""
    _lock_goods(request)
    released = [b for b in request.bookings if b.can("release")]
    for booking in released:
        Booking.states.move(booking, "release", actor, record=False)
    for line in request.lines:
        change_stock(line.edition_id, line.quantity, StockReason.CANCELLED, actor, request_id=request.id)
    return released


@unit_of_work
def approve_request(request_id: int, actor: User, seen: str | None = None, quantities: dict[int, int] | None = None,
                    reason: str = "") -> Request:
    """Staff approve a submitted request, possibly with fewer copies of a line than asked for
    (``quantities``: line id → copies, at least 1): the rest goes back into stock, and the reason,
    which is then required, goes into the approval mail."""
    request = _lock_request(request_id, seen)
    if not request.can("approve"):
        raise IllegalTransition(Request.states.refused)
    reason = reason.strip()
    fewer = {line: quantities[line.id] for line in request.lines
             if quantities and quantities.get(line.id, line.quantity) != line.quantity}
    for line, quantity in fewer.items():
        if not 1 <= quantity < line.quantity:
            raise MaterialsError(_l("Give 1 to %(n)s copies of %(title)s (to give none, reject the request).",
                                    n=line.quantity, title=line.edition.material.title), field="quantities")
    if fewer and not reason:
        raise MaterialsError(_l("Please give the reason for fewer copies; it is sent to the partner."), field="reason")
    if fewer:
        _lock_goods(request, [])
    for line, quantity in fewer.items():
        change_stock(line.edition_id, line.quantity - quantity, StockReason.CANCELLED, actor, request_id=request.id)
        line.requested, line.quantity = line.quantity, quantity
    details = "; ".join(f"{line.edition.material.title} ({line.edition.language}): {line.requested} → {line.quantity}"
                        for line in fewer)
    Request.states.move(request, "approve", actor, reason=reason if fewer else "", details=details,
                        refs=[line.edition.material for line in fewer])
    request.decided_at, request.decided_by_id = utcnow(), actor.id
    request.approval_note = reason if fewer else ""
    notify_decided(request)
    return request


@unit_of_work
def reject_request(request_id: int, actor: User, reason: str, seen: str | None = None) -> Request:
    """Staff reject a request with a reason, which the partner is mailed; what it held is released."""
    if not reason.strip():
        raise MaterialsError(_l("Please give the reason; it is sent to the partner."), field="reason")
    request = _lock_request(request_id, seen)
    if not request.can("reject"):
        raise IllegalTransition(Request.states.refused)
    released = _release(request, actor)
    Request.states.move(request, "reject", actor, reason=reason, refs=_refs(request, released))
    request.decided_at, request.decided_by_id, request.reject_reason = utcnow(), actor.id, reason.strip()
    notify_decided(request)
    return request


def reject_consequences(request: Request) -> Consequences:
    """What ``reject_request`` would do now, for the page that asks first; refused like the action."""
    if not request.can("reject"):
        raise IllegalTransition(Request.states.refused)
    return Consequences((
        _l("Request #%(id)s is rejected; the partner is told, with your reason.", id=request.id),
        _release_effect(request),
    ), mails=1 if request.created_by is not None else 0)


def _release_effect(request: Request) -> str:
    return _l("What it holds is released (copies back to stock: %(copies)s; unit bookings ended: %(bookings)s).",
              copies=sum(line.quantity for line in request.lines),
              bookings=sum(1 for b in request.bookings if b.can("release")))


def _told_on_cancel(request: Request, actor) -> bool:
    """Staff ending a partner's request tell the partner why; a partner cancelling their own tells nobody."""
    return bool(actor.is_staff and request.created_by is not None)


@unit_of_work
def cancel_request(request_id: int, actor: User, seen: str | None = None, reason: str = "") -> Request:
    """A partner (or staff) cancels until the handover; everything held is released. Staff give a
    reason, which the partner is mailed and which stays on the request as its reason."""
    request = _lock_request(request_id, seen)
    if not request.can("cancel"):
        raise IllegalTransition(Request.states.refused)
    told = _told_on_cancel(request, actor)
    if told and not reason.strip():
        raise MaterialsError(_l("Please give the reason; it is sent to the partner."), field="reason")
    if told:  # the mail lists what the request held: written before the release ends its bookings
        request.reject_reason = reason.strip()
        queue_mail(request.created_by.email, _l("Your request has been cancelled"), "materials/request_cancelled",
                   locale=request.created_by.locale, request=request,
                   link=external_url("requests.detail", request_id=request.id))
    released = _release(request, actor)
    Request.states.move(request, "cancel", actor, reason=reason.strip(), refs=_refs(request, released))
    return request


def cancel_consequences(request: Request, actor) -> Consequences:
    """What ``cancel_request`` would do now for ``actor``, for the page that asks first."""
    if not request.can("cancel"):
        raise IllegalTransition(Request.states.refused)
    told = _told_on_cancel(request, actor)
    return Consequences((
        _l("Request #%(id)s is cancelled; the partner is told, with your reason.", id=request.id) if told
        else _l("Request #%(id)s is cancelled.", id=request.id),
        _release_effect(request),
    ), mails=1 if told else 0)


def _start_today(booking: Booking, today: date) -> str | None:
    """A unit handed over before its booked period: the loan starts today, so the unit is blocked from
    today (else it looks free and is booked for someone else while it is out). Returns why the start
    cannot move (the loan would outgrow the material's longest loan, or the database refuses it because
    another booking of the unit lies in between), else None."""
    if booking.starts_on <= today:
        return None
    material = booking.unit.edition.material
    earliest = earliest_start(material, booking.ends_on)
    if earliest is not None and today < earliest:
        return _l("%(code)s: from today the loan would be longer than the %(days)s days this material can be "
                  "borrowed for; hand it over on %(day)s at the earliest.", code=booking.unit.inventory_code,
                  days=material.loan_days_max, day=format_date(earliest))
    try:
        with db.session.begin_nested():
            booking.starts_on = today
    except IntegrityError:
        other = db.session.scalars(select(Booking).where(
            Booking.unit_id == booking.unit_id, Booking.id != booking.id,
            Booking.status.in_((BookingStatus.RESERVED, BookingStatus.HANDED_OVER)),
            Booking.starts_on < booking.starts_on, Booking.blocked_until >= today).order_by(Booking.starts_on)).first()
        return _l("Unit %(code)s is booked for someone else until %(day)s; hand it over after that, or give this "
                  "booking another unit.", code=booking.unit.inventory_code,
                  day=format_date(other.blocked_until) if other else "")
    return None


EARLY_HANDOVER_DAYS = 3  # a unit handed over more days than this before its booked start needs a confirmation


def handed_over_early(bookings, today: date | None = None) -> list[Booking]:
    """The bookings whose handover now would be early enough to ask first (the loan then starts today)."""
    today = today or local_today()
    return [b for b in bookings if b.starts_on > today + timedelta(days=EARLY_HANDOVER_DAYS)]


@unit_of_work
def hand_over(request_id: int, booking_ids: list[int], actor: User, contents_checked: bool,
              seen: str | None = None, early_confirmed: bool = False) -> Request:
    """Hand over the given units of an approved (or partly handed over) request.

    Kits with a contents list need the checklist ticked; a damaged, incomplete or lost unit never
    leaves the house (DOMAIN rule 9), whatever was booked on it. A unit handed over before its booked
    start is booked from today. Once every unit is out, the request is handed over; a request of
    brochures only is closed then.
    """
    request = _lock_request(request_id, seen)
    if not request.can("hand_over"):
        raise IllegalTransition(Request.states.refused)
    reserved = request.awaiting_handover
    if request.bookings and not reserved:
        raise IllegalTransition(Request.states.refused)  # everything is out already (a second tab)
    chosen = [b for b in reserved if b.id in booking_ids]
    if reserved and not chosen:
        raise MaterialsError(_l("Choose the units to hand over."))
    _lock_goods(request, chosen)
    blocked = [b for b in chosen if b.unit.blocked]
    if blocked:
        unit = blocked[0].unit
        message = (_l("Unit %(code)s is %(condition)s (%(note)s) and cannot leave the house until staff clear it. "
                      "Give the booking another unit of the same edition below.", code=unit.inventory_code,
                      condition=unit.condition.label, note=unit.condition_note)
                   if alternative_units(blocked[0]) else
                   _l("Unit %(code)s is %(condition)s (%(note)s) and cannot leave the house until staff clear it. "
                      "No other unit of the same edition is free for the period: clear the unit once it is "
                      "repaired, or tell the partner.", code=unit.inventory_code, condition=unit.condition.label,
                      note=unit.condition_note))
        raise MaterialsError(message)
    if any(b.unit.edition.material.contents for b in chosen) and not contents_checked:
        raise MaterialsError(_l("Check the contents list before handing the kit over."), field="contents_checked")
    today = local_today()
    early = handed_over_early(chosen, today)
    if early and not early_confirmed:
        raise MaterialsError(" ".join(str(_l(
            "%(code)s is booked from %(day)s. Handed over now, the loan starts today (and blocks the unit from "
            "today): confirm the early handover to go on.", code=b.unit.inventory_code, day=format_date(b.starts_on)))
            for b in early), field="early_confirmed")
    refused = [str(why) for why in (_start_today(b, today) for b in chosen) if why]
    if refused:  # every unit that cannot go now is named, not only the first
        raise MaterialsError(" ".join(refused))
    for booking in chosen:
        hand_over_booking(booking)
    if request.status == RequestStatus.APPROVED:  # the copies go with the first handover
        for line in request.lines:
            note_handed_out(line.edition_id, actor, request.id)
    done = RequestStatus.CLOSED if not request.bookings else RequestStatus.HANDED_OVER
    Request.states.move(request, "hand_over", actor, to=done, refs=_refs(request, chosen),
                        details=", ".join(b.unit.inventory_code for b in chosen))
    return request


@unit_of_work
def take_back(booking_id: int, actor: User, condition: UnitCondition, note: str) -> Booking:
    """Record a unit's return with its condition; a damaged, incomplete or lost unit is blocked
    from new bookings until staff clear it (a return never clears it). When all units are back
    the request is returned. Locks: the request, the unit's edition, the booking, the unit."""
    found = db.session.get(Booking, booking_id)
    if found is None:
        raise MaterialsError(_l("This unit is not out on loan."))
    request = _lock_request(found.request_id, None) if found.request_id else None
    lock_editions([found.unit.edition_id])
    booking = lock(Booking, booking_id)
    if not booking.can("take_back"):
        raise MaterialsError(_l("This unit is not out on loan."))
    if condition != UnitCondition.GOOD and not note.strip():
        raise MaterialsError(_l("Describe what is damaged or missing."), field="note")
    unit = lock(Unit, booking.unit_id)
    was, noted, note = unit.condition, condition, note.strip()
    if unit.blocked and condition == UnitCondition.GOOD:
        condition = was  # still blocked until staff clear it
    Booking.states.move(booking, "take_back", actor, record=False)
    booking.returned_at, booking.return_condition, booking.return_note = utcnow(), noted, note
    Unit.states.move(unit, "return", actor, to=condition, record=False)
    if note:  # a new damage on a unit still blocked adds to what is to be repaired
        unit.condition_note = f"{unit.condition_note}; {note}" if was in BLOCKED and unit.condition_note else note
    audit.record(actor, "take_back", unit, from_state=was, to_state=condition, reason=note,
                 refs=[booking, request, unit.edition.material], details=unit.inventory_code)
    if request is not None and all(
        b.status in (BookingStatus.RETURNED, BookingStatus.CANCELLED) for b in request.bookings
    ):
        Request.states.move(request, "return", actor)  # staff close it once everything is checked
    return booking


@unit_of_work
def close_request(request_id: int, actor: User, seen: str | None = None) -> Request:
    """Close a request whose units are all back."""
    request = _lock_request(request_id, seen)
    Request.states.move(request, "close", actor)
    return request


def notify_submitted(request: Request) -> None:
    """Tell the partner their request arrived, and staff that there is one to decide."""
    link = external_url("requests.detail", request_id=request.id)
    if request.created_by is not None:
        queue_mail(request.created_by.email, _l("We have received your request"), "materials/request_received",
                   locale=request.created_by.locale, request=request, link=link)
    queue_mail(current_app.config["STAFF_EMAIL"], _l("New request for materials"), "materials/request_staff_notice",
               locale="de", request=request, link=link)


def notify_decided(request: Request) -> None:
    if request.created_by is None:
        return
    subject = _l("Your request has been approved") if request.status == RequestStatus.APPROVED \
        else _l("Your request has been rejected")
    queue_mail(request.created_by.email, subject, "materials/request_decided", locale=request.created_by.locale,
               request=request, approved=request.status == RequestStatus.APPROVED,
               link=external_url("requests.detail", request_id=request.id))


REMINDER_INTERVAL = timedelta(days=7)


@unit_of_work
def send_overdue_reminders(today: date | None = None) -> int:
    """Remind the partner of each overdue loan, then again every week until it is back."""
    today = today or local_today()
    now = utcnow()
    due = db.session.scalars(
        select(Booking).where(
            Booking.status == BookingStatus.HANDED_OVER,
            Booking.ends_on < today,
            or_(Booking.reminded_at.is_(None), Booking.reminded_at <= now - REMINDER_INTERVAL),
        ).options(selectinload(Booking.request).selectinload(Request.created_by),
                  selectinload(Booking.unit).selectinload(Unit.edition).selectinload(Edition.material))
    ).all()
    sent = 0
    for booking in due:
        contact = booking.request.created_by if booking.request else None
        if contact is None or not contact.active:
            continue
        queue_mail(contact.email, _l("Please return borrowed material"), "materials/overdue_reminder",
                   locale=contact.locale, booking=booking,
                   link=external_url("requests.detail", request_id=booking.request_id))
        booking.reminded_at = now
        sent += 1
    return sent
