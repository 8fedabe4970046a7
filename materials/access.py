"""Who may see what of the materials feature (DOMAIN rule 6): one loader per object kind, used by
every view (and by the API), so the rule is written once.

- the catalogue: everyone; archived materials only staff;
- requests and their loans: staff, and the contact persons of the request's organisation;
- the cart and submitting: partner contacts (an account with an organisation).
"""

from flask import abort
from sqlalchemy import Select, false, select

from accounts.models import User
from core.extensions import db
from materials.models import Booking, Material, Request


def _is_staff(user) -> bool:
    return bool(user and user.is_authenticated and user.is_staff)


def material_for(user, material_id: int) -> Material:
    """A material of the catalogue; an archived one only for staff (404 for everyone else)."""
    material = db.get_or_404(Material, material_id)
    if material.archived_at and not _is_staff(user):
        abort(404)
    return material


def visible_requests(user: User) -> Select:
    """The requests ``user`` may see, as a select to filter and paginate: staff all, a partner
    contact their organisation's, anyone else none."""
    query = select(Request)
    if _is_staff(user):
        return query
    if user and user.is_authenticated and user.organisation_id is not None:
        return query.where(Request.organisation_id == user.organisation_id)
    return query.where(false())


def request_for(user: User, request_id: int, *options) -> Request:
    """The request if ``user`` may see it, else 404 (it does not exist) or 403 (it is not theirs); loader
    ``options`` bring what the page shows in the same statement."""
    request = db.session.scalar(visible_requests(user).where(Request.id == request_id).options(*options))
    if request is None:
        db.get_or_404(Request, request_id)
        abort(403)
    return request


def booking_for(user: User, booking_id: int) -> Booking:
    """A booking, through the request it belongs to."""
    booking = db.get_or_404(Booking, booking_id)
    if booking.request_id is None:
        if not _is_staff(user):
            abort(403)
        return booking
    request_for(user, booking.request_id)
    return booking


def require_partner(user: User) -> None:
    """Only a partner contact (an account of an organisation) puts requests together."""
    if user.organisation_id is None:
        abort(403)
