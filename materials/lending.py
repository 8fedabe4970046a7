"""A request's way after submission: access, decisions, handover, return, close, and the mails."""

from datetime import date, timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from accounts.models import User
from core.db import unit_of_work
from core.extensions import db
from core.i18n import local_today
from core.mail import queue_mail
from core.models import utcnow
from core.urls import external_url
from materials.bookings import hand_over_booking
from materials.errors import MaterialsError
from materials.models import Booking, BookingStatus, Edition, Request, RequestStatus, StockReason, Unit, UnitCondition
from materials.stock import change_stock, lock_editions


def get_request_for(user: User, request_id: int) -> Request:
    """The request if ``user`` may see it (staff, or a contact of its organisation), else 404/403."""
    from flask import abort

    request = db.get_or_404(Request, request_id)
    if not user.is_staff and request.organisation_id != user.organisation_id:
        abort(403)
    return request


def _decide(request_id: int, allowed: tuple, new_status: RequestStatus) -> Request:
    """Move a request to ``new_status`` if it is in one of ``allowed``; serialised by a row lock."""
    request = db.session.scalar(select(Request).where(Request.id == request_id).with_for_update())
    if request is None or request.status not in allowed:
        db.session.rollback()
        raise MaterialsError(_l("This request has changed meanwhile; please look at it again."))
    request.status = new_status
    return request


def _release(request: Request, user: User) -> None:
    """Give back what a request held: cancel its bookings, put its copies back into stock."""
    for booking in request.bookings:
        if booking.status == BookingStatus.RESERVED:
            booking.status = BookingStatus.CANCELLED
    lock_editions(line.edition_id for line in request.lines)
    for line in request.lines:
        change_stock(line.edition_id, line.quantity, StockReason.CANCELLED, user, request_id=request.id)


def approve_request(request_id: int, staff: User) -> Request:
    request = _decide(request_id, (RequestStatus.SUBMITTED,), RequestStatus.APPROVED)
    request.decided_at, request.decided_by_id = utcnow(), staff.id
    notify_decided(request)
    db.session.commit()
    return request


@unit_of_work
def reject_request(request_id: int, staff: User, reason: str) -> Request:
    request = _decide(request_id, (RequestStatus.SUBMITTED, RequestStatus.APPROVED), RequestStatus.REJECTED)
    request.decided_at, request.decided_by_id, request.reject_reason = utcnow(), staff.id, reason.strip()
    _release(request, staff)
    notify_decided(request)
    db.session.commit()
    return request


@unit_of_work
def cancel_request(request_id: int, user: User) -> Request:
    """A partner (or staff) cancels until the handover; everything held is released."""
    request = _decide(request_id, (RequestStatus.SUBMITTED, RequestStatus.APPROVED), RequestStatus.CANCELLED)
    _release(request, user)
    db.session.commit()
    return request


def hand_over(request_id: int, booking_ids: list[int], staff: User, contents_checked: bool) -> Request:
    """Hand over the given units of an approved (or partly handed over) request.

    Kits with a contents list need the checklist ticked. Once every unit is out,
    the request is handed over; a request of brochures only is closed then.
    """
    request = _decide(request_id, (RequestStatus.APPROVED, RequestStatus.HANDED_OVER), RequestStatus.HANDED_OVER)
    bookings = [b for b in request.bookings if b.id in booking_ids and b.status == BookingStatus.RESERVED]
    if booking_ids and not bookings:
        raise MaterialsError(_l("Choose the units to hand over."))
    if any(b.unit.edition.material.contents for b in bookings) and not contents_checked:
        raise MaterialsError(_l("Check the contents list before handing the kit over."), field="contents_checked")
    for booking in bookings:
        hand_over_booking(booking.id)
        db.session.refresh(booking)
    if not request.bookings:
        request.status = RequestStatus.CLOSED
    db.session.commit()
    return request


def take_back(booking_id: int, staff: User, condition: UnitCondition, note: str) -> Booking:
    """Record a unit's return with its condition; a damaged, incomplete or lost unit is blocked
    from new bookings until staff clear it. When all units are back the request is returned."""
    booking = db.session.scalar(select(Booking).where(Booking.id == booking_id).with_for_update())
    if booking is None or booking.status != BookingStatus.HANDED_OVER:
        db.session.rollback()
        raise MaterialsError(_l("This unit is not out on loan."))
    if condition != UnitCondition.GOOD and not note.strip():
        raise MaterialsError(_l("Describe what is damaged or missing."), field="note")
    booking.status = BookingStatus.RETURNED
    booking.unit.condition = condition
    booking.unit.condition_note = note.strip()
    request = booking.request
    if request is not None and all(
        b.status in (BookingStatus.RETURNED, BookingStatus.CANCELLED) for b in request.bookings
    ):
        request.status = RequestStatus.RETURNED  # staff close it once everything is checked
    db.session.commit()
    return booking


def close_request(request_id: int, staff: User) -> Request:
    """Close a request whose units are all back (or one of brochures only that was handed over)."""
    request = _decide(request_id, (RequestStatus.RETURNED,), RequestStatus.CLOSED)
    db.session.commit()
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
               request=request, link=external_url("requests.detail", request_id=request.id))


REMINDER_INTERVAL = timedelta(days=7)


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
    db.session.commit()
    return sent
