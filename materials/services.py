"""Materials workflows: stock changes with their ledger, booking units, handing them over.

Code checks give precise messages; the database constraints (see
``materials.models``) make the rules true under concurrent requests.
"""

import io
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import Date, Row, Select, String, Subquery, cast, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from accounts.models import Organisation, User
from core.db import unit_of_work
from core.errors import DomainError
from core.extensions import db
from core.i18n import local_today
from core.mail import queue_mail
from core.models import utcnow
from core.urls import external_url
from materials.models import (
    Booking,
    BookingStatus,
    Delivery,
    Edition,
    KitContent,
    Lending,
    Material,
    MaterialKind,
    Request,
    RequestLine,
    RequestStatus,
    StockEntry,
    StockReason,
    TargetGroup,
    Topic,
    Unit,
    UnitCondition,
    fold,
)

ACTIVE_BOOKING = (BookingStatus.RESERVED, BookingStatus.HANDED_OVER)


class MaterialsError(DomainError):
    """A rule of the materials feature was broken."""


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


# Catalogue ---------------------------------------------------------------------------


@dataclass
class CatalogueQuery:
    """The catalogue's URL parameters, validated; unknown values are dropped, not errors."""

    q: str = ""
    kind: MaterialKind | None = None
    topic: str = ""
    language: str = ""
    target_group: TargetGroup | None = None
    available_from: date | None = None
    available_to: date | None = None
    errors: list = field(default_factory=list)

    @classmethod
    def from_args(cls, args) -> "CatalogueQuery":
        query = cls(q=args.get("q", "").strip()[:200], topic=args.get("topic", "").strip()[:100])
        query.kind = MaterialKind._value2member_map_.get(args.get("kind", ""))
        query.target_group = TargetGroup._value2member_map_.get(args.get("target_group", ""))
        language = args.get("language", "").strip().lower()
        query.language = language if language.isalpha() and len(language) <= 3 else ""
        for name in ("available_from", "available_to"):
            raw = args.get(name, "").strip()
            if raw:
                try:
                    setattr(query, name, date.fromisoformat(raw))
                except ValueError:
                    query.errors.append(_l("“%(value)s” is not a date (YYYY-MM-DD).", value=raw))
        if query.available_from and not query.available_to:
            query.available_to = query.available_from
        if query.available_to and not query.available_from:
            query.available_from = query.available_to
        if query.available_from and query.available_to < query.available_from:
            query.errors.append(_l("The end of the period is before its start."))
            query.available_from = query.available_to = None
        return query

    def args(self, **changes) -> dict:
        """URL parameters for links (pagination), without empty values."""
        values = {
            "q": self.q,
            "kind": self.kind.value if self.kind else "",
            "topic": self.topic,
            "language": self.language,
            "target_group": self.target_group.value if self.target_group else "",
            "available_from": self.available_from.isoformat() if self.available_from else "",
            "available_to": self.available_to.isoformat() if self.available_to else "",
        } | changes
        return {k: v for k, v in values.items() if v}


def days_after(day: date, days):
    """SQL for ``day`` plus a number of days taken from a column, on SQLite and PostgreSQL."""
    if db.engine.dialect.name == "sqlite":
        return func.date(day.isoformat(), "+" + cast(days, String) + " days")
    return literal(day, Date) + days


def _unit_is_free(starts_on: date, ends_on: date):
    """Conditions on ``Unit`` (with ``Material`` for the buffer days): good, not retired, and no
    active booking touches the period plus the material's buffer days."""
    busy = (
        select(Booking.id)
        .where(
            Booking.unit_id == Unit.id,
            Booking.status.in_(ACTIVE_BOOKING),
            Booking.starts_on <= days_after(ends_on, Material.buffer_days),
            Booking.blocked_until >= starts_on,
        )
        # Unit and Material come from the enclosing query, however deep: left to auto-correlation,
        # a query that correlates Material one level further out got "FROM bookings, materials",
        # every material's buffer for every unit (wrong results, and 3 s a search on PostgreSQL).
        .correlate_except(Booking)
        .exists()
    )
    return (Unit.condition == UnitCondition.GOOD) & Unit.retired_at.is_(None) & ~busy


def free_units_query(starts_on: date, ends_on: date):
    """Units that could be booked for the period."""
    return select(Unit.id).join(Unit.edition).join(Edition.material).where(_unit_is_free(starts_on, ends_on))


def search_catalogue(query: CatalogueQuery, include_archived: bool = False):
    """The ``select`` for the catalogue page: search words, filters, availability."""
    stmt = select(Material).options(selectinload(Material.editions), selectinload(Material.topics))
    if not include_archived:
        stmt = stmt.where(Material.archived_at.is_(None))
    for word in fold(query.q).split():
        stmt = stmt.where(Material.search_text.contains(word, autoescape=True))
    if query.kind:
        stmt = stmt.where(Material.kind == query.kind)
    if query.topic:
        stmt = stmt.where(Material.topics.any(Topic.slug == query.topic))
    if query.language:
        stmt = stmt.where(Material.editions.any(Edition.language == query.language))
    if query.target_group:
        stmt = stmt.where(("," + Material.target_groups + ",").contains(f",{query.target_group.value},"))
    if query.available_from:
        # Correlated to each material: its own few units and their bookings (indexed), not every
        # free unit of the catalogue for every material (that grew with the square of the history).
        free_unit = (
            select(Unit.id).join(Unit.edition)
            .where(Edition.material_id == Material.id, _unit_is_free(query.available_from, query.available_to))
            .correlate(Material)
            .exists()
        )
        stmt = stmt.where(
            or_(
                (Material.lending == Lending.GIVEAWAY)
                & Material.editions.any(Edition.stock_on_hand > 0),
                (Material.lending == Lending.RETURNABLE) & free_unit,
            )
        )
    return stmt.order_by(Material.title, Material.id)


def month_availability(material: Material, month: date) -> list[list[tuple[date, int] | None]]:
    """Weeks (Monday first) of ``(day, free units)`` for a returnable material's month calendar."""
    first = month.replace(day=1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    unit_ids = [u.id for e in material.editions for u in e.units if u.bookable]
    bookings = db.session.execute(
        select(Booking.unit_id, Booking.starts_on, Booking.blocked_until).where(
            Booking.unit_id.in_(unit_ids),
            Booking.status.in_(ACTIVE_BOOKING),
            Booking.starts_on <= last,
            Booking.blocked_until >= first,
        )
    ).all()
    weeks, week = [], [None] * first.weekday()
    current = first
    while current <= last:
        busy = {b.unit_id for b in bookings if b.starts_on <= current <= b.blocked_until}
        week.append((current, len(unit_ids) - len(busy)))
        if len(week) == 7:
            weeks.append(week)
            week = []
        current += timedelta(days=1)
    if week:
        weeks.append(week + [None] * (7 - len(week)))
    return weeks


def topic_for(name: str) -> Topic:
    """The topic with this name, created if new."""
    name = " ".join(name.split())[:100]
    slug = fold(name).replace(" ", "-")
    topic = db.session.scalar(select(Topic).where(Topic.slug == slug))
    if topic is None:
        topic = Topic(name=name, slug=slug)
        db.session.add(topic)
    return topic


def save_material(material: Material | None, topics: list[str], languages: list[str], commit: bool = True,
                  contents: list[tuple[str, int]] | None = None, **fields) -> Material:
    """Create or update a material with its topics and kit contents; add editions for new
    languages (never removes one)."""
    if material is None:
        material = Material(**fields)
        db.session.add(material)
    else:
        for key, value in fields.items():
            setattr(material, key, value)
    material.topics = [topic_for(name) for name in dict.fromkeys(t for t in topics if t.strip())]
    if contents is not None:
        material.contents = [KitContent(name=name, quantity=qty, position=i) for i, (name, qty) in enumerate(contents)]
    present = {e.language for e in material.editions}
    for language in languages:
        if language not in present:
            material.editions.append(Edition(language=language))
    material.refresh_search_text()
    if commit:
        db.session.commit()
    return material


def set_archived(material: Material, archived: bool) -> None:
    """Archive (hide from the catalogue, keep all history) or restore a material."""
    material.archived_at = utcnow() if archived else None
    db.session.commit()


def add_unit(edition: Edition, inventory_code: str) -> Unit:
    code = inventory_code.strip().upper()
    if db.session.scalar(select(Unit.id).where(Unit.inventory_code == code)) is not None:
        raise MaterialsError(_l("The inventory code %(code)s is taken.", code=code), field="inventory_code")
    unit = Unit(edition=edition, inventory_code=code)
    db.session.add(unit)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise MaterialsError(_l("The inventory code %(code)s is taken.", code=code), field="inventory_code") from None
    return unit


# Requests ----------------------------------------------------------------------------
#
# The cart lives in the partner's session until they submit: a dict with
# "items": [{"edition_id": int, "quantity": int}] for giveaways and
# [{"edition_id": int, "starts_on": "YYYY-MM-DD", "ends_on": "YYYY-MM-DD"}] for units.
# Submitting takes the stock and books units in one transaction; if anything is
# short, nothing is taken and the partner is told exactly what.


@dataclass
class CartItem:
    edition: Edition
    quantity: int = 0
    starts_on: date | None = None
    ends_on: date | None = None

    @property
    def returnable(self) -> bool:
        return self.starts_on is not None


def cart_items(cart: dict) -> list[CartItem]:
    """The cart's items with their editions loaded; entries for unknown editions are dropped."""
    items = []
    for raw in cart.get("items", []):
        edition = db.session.get(Edition, raw.get("edition_id") or 0)
        if edition is None or edition.material.archived_at is not None:
            continue
        if "starts_on" in raw:
            items.append(CartItem(edition, starts_on=date.fromisoformat(raw["starts_on"]),
                                  ends_on=date.fromisoformat(raw["ends_on"])))
        else:
            items.append(CartItem(edition, quantity=int(raw.get("quantity", 0))))
    return items


def add_to_cart(cart: dict, edition: Edition, quantity: int | None = None,
                starts_on: date | None = None, ends_on: date | None = None, today: date | None = None) -> dict:
    """Check one item against the material's rules and add it to the cart; returns the new cart."""
    material = edition.material
    items = list(cart.get("items", []))
    if material.archived_at is not None:
        raise MaterialsError(_l("This material is no longer in the catalogue."))
    if material.is_returnable:
        check_period(material, starts_on, ends_on, today or local_today())
        items.append({"edition_id": edition.id, "starts_on": starts_on.isoformat(), "ends_on": ends_on.isoformat()})
    else:
        if not quantity or quantity < 1:
            raise MaterialsError(_l("Enter 1 or more."), field="quantity")
        already = sum(i.get("quantity", 0) for i in items if i.get("edition_id") == edition.id)
        if material.per_request_max and already + quantity > material.per_request_max:
            raise MaterialsError(
                _l("At most %(n)s copies per request.", n=material.per_request_max), field="quantity"
            )
        if already + quantity > edition.stock_on_hand:
            raise NotAvailable(
                _l("Only %(left)s copies are left; %(wanted)s were asked for.",
                   left=edition.stock_on_hand, wanted=already + quantity),
                field="quantity",
            )
        items = [i for i in items if i.get("edition_id") != edition.id or "starts_on" in i]
        items.append({"edition_id": edition.id, "quantity": already + quantity})
    return {"items": items}


def check_period(material: Material, starts_on: date | None, ends_on: date | None, today: date) -> None:
    if starts_on is None or ends_on is None:
        raise MaterialsError(_l("Choose the pickup and the return date."), field="starts_on")
    if starts_on < today:
        raise MaterialsError(_l("The pickup date is in the past."), field="starts_on")
    if ends_on < starts_on:
        raise MaterialsError(_l("The return date is before the pickup date."), field="ends_on")
    if material.loan_days_max and (ends_on - starts_on).days + 1 > material.loan_days_max:
        raise MaterialsError(
            _l("This material can be borrowed for at most %(days)s days.", days=material.loan_days_max),
            field="ends_on",
        )


class Shortage(MaterialsError):
    """Submitting failed because of these items; ``problems`` lists one message per item."""

    def __init__(self, problems: list):
        super().__init__(_l("Not everything is available any more. Nothing has been reserved."))
        self.problems = problems


def lock_editions(edition_ids) -> None:
    """Lock the editions' rows for the rest of the transaction, in the one canonical order (ascending
    id). Every writer that takes the stock or books the units of several editions locks them first,
    this way: two carts in opposite order then queue up instead of each holding what the other waits
    for (PostgreSQL aborted one of them as a deadlock). SQLite's write lock serialises writers anyway."""
    ids = sorted(set(edition_ids))
    if ids:
        db.session.execute(select(Edition.id).where(Edition.id.in_(ids)).order_by(Edition.id).with_for_update())


@unit_of_work
def submit_request(user: User, cart: dict, submit_key: str, purpose: str, audience: str,
                   delivery: Delivery, shipping_address: str) -> Request:
    """Turn the cart into a request: stock taken, units booked, all or nothing.

    A second submit with the same ``submit_key`` (double click) returns the first request.
    """
    existing = _submitted_before(user, submit_key)
    if existing is not None:
        return existing
    items = cart_items(cart)
    if not items:
        raise MaterialsError(_l("Your request is empty."))
    if delivery == Delivery.SHIPPING and not shipping_address.strip():
        raise MaterialsError(_l("Please enter the address to ship to."), field="shipping_address")
    lock_editions(item.edition.id for item in items)
    request = Request(organisation_id=user.organisation_id, created_by_id=user.id, submit_key=submit_key,
                      purpose=purpose.strip(), audience=audience.strip(), delivery=delivery,
                      shipping_address=shipping_address.strip() if delivery == Delivery.SHIPPING else "")
    db.session.add(request)
    try:
        db.session.flush()
    except IntegrityError:  # the same form sent twice at the same moment
        db.session.rollback()
        existing = _submitted_before(user, submit_key)
        if existing is None:
            raise
        return existing
    problems = []
    for item in items:
        material = item.edition.material
        if item.returnable:
            try:
                check_period(material, item.starts_on, item.ends_on, local_today())
                book_free_unit(item.edition, item.starts_on, item.ends_on, request.id)
            except MaterialsError as error:
                problems.append(_l("%(title)s: %(problem)s", title=material.title, problem=error.message))
        else:
            try:
                change_stock(item.edition.id, -item.quantity, StockReason.HANDOUT, user, request_id=request.id)
                request.lines.append(RequestLine(edition_id=item.edition.id, quantity=item.quantity))
            except MaterialsError as error:
                problems.append(_l("%(title)s: %(problem)s", title=material.title, problem=error.message))
    if problems:
        db.session.rollback()
        raise Shortage(problems)
    notify_submitted(request)
    db.session.commit()
    return request


def _submitted_before(user: User, submit_key: str) -> Request | None:
    """The request this form already created (a double click), if it was this organisation's."""
    existing = db.session.scalar(select(Request).where(Request.submit_key == submit_key))
    if existing is not None and existing.organisation_id != user.organisation_id:
        raise MaterialsError(_l("This form has been sent already; please open it again."))
    return existing


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
                          start=starts_on.strftime("%d.%m.%Y"), end=ends_on.strftime("%d.%m.%Y")))


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


# Handover and return -----------------------------------------------------------------


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


def clear_unit(unit_id: int, staff: User) -> Unit:
    """Staff have repaired or completed a unit: it can be booked again."""
    unit = db.session.get(Unit, unit_id)
    if unit is None:
        raise MaterialsError(_l("Unknown unit."))
    unit.condition = UnitCondition.GOOD
    unit.condition_note = ""
    db.session.commit()
    return unit


def extend_booking(booking_id: int, new_end: date, staff: User) -> Booking:
    """Move a loan's return date later, if no later booking of the unit conflicts."""
    booking = db.session.get(Booking, booking_id)
    if booking is None or booking.status not in ACTIVE_BOOKING:
        raise MaterialsError(_l("This booking cannot be changed any more."))
    if new_end <= booking.ends_on:
        raise MaterialsError(_l("Choose a date after the current return date."), field="ends_on")
    buffer = booking.unit.edition.material.buffer_days
    try:
        with db.session.begin_nested():
            booking.ends_on = new_end
            booking.blocked_until = new_end + timedelta(days=buffer)
            booking.reminded_at = None
    except IntegrityError:
        db.session.rollback()
        raise NotAvailable(
            _l("Unit %(code)s is booked by someone else in that time.", code=booking.unit.inventory_code)
        ) from None
    db.session.commit()
    return booking


# Staff overview, mails and reminders -------------------------------------------------


@dataclass
class Bounded:
    """The first rows of a list and how many it has in all."""

    rows: list
    total: int

    @property
    def more(self) -> bool:
        return self.total > len(self.rows)


@dataclass
class Overview:
    pending: Bounded
    pickups: Bounded
    returns: Bounded
    overdue: Bounded
    low_stock: Bounded


OVERVIEW_ROWS = 20


@dataclass(frozen=True)
class StaffList:
    """A staff list: which rows (``query``, a select of one table's ids with its filters, read through
    an index), their ``order``, and what a shown row displays (``show`` turns a subquery of the shown
    ids, column ``id``, into the select of their columns). Only the rows shown are joined for display,
    and they come back as plain rows: building ORM objects for them cost more than the query (50
    overdue loans with their unit, material and organisation: 3.4 ms as objects, 0.5 ms as rows)."""

    query: Select
    order: tuple
    show: Callable[[Subquery], Select]

    def ids(self, limit: int, offset: int = 0, *columns) -> Subquery:
        return self.query.add_columns(*columns).order_by(*self.order).limit(limit).offset(offset).subquery()

    def rows(self, ids: Subquery, *columns) -> list[Row]:
        return db.session.execute(self.show(ids).add_columns(*columns).order_by(*self.order)).all()

    def count(self) -> int:
        return db.session.scalar(select(func.count()).select_from(self.query.order_by(None).subquery()))


class StaffPage(Pagination):
    """A page of a staff list for the pager; Flask-SQLAlchemy's pagination is extended by
    implementing its two queries (``staff_list`` is passed as a keyword)."""

    def _query_items(self) -> list[Row]:
        staff_list = self._query_args["staff_list"]
        return staff_list.rows(staff_list.ids(self.per_page, self._query_offset))

    def _query_count(self) -> int:
        return self._query_args["staff_list"].count()


def bounded(staff_list: StaffList, limit: int = OVERVIEW_ROWS) -> Bounded:
    """The first ``limit`` rows and the total in one query, so that the overview costs the same however
    long a list grows (the full lists are paginated pages of their own). The window count and the
    limit run over the list's own rows, through its index."""
    first = staff_list.ids(limit, 0, func.count().over().label("total"))
    rows = staff_list.rows(first, first.c.total)
    return Bounded(rows, rows[0].total if rows else 0)


def _loan_rows(ids: Subquery) -> Select:
    return (select(Booking.id, Booking.starts_on, Booking.ends_on, Booking.request_id, Unit.inventory_code,
                   Material.title, Organisation.name.label("organisation"))
            .select_from(Booking).join(ids, ids.c.id == Booking.id)
            .join(Booking.unit).join(Unit.edition).join(Edition.material)
            .outerjoin(Booking.request).outerjoin(Request.organisation))


def loans_list(kind: str, today: date) -> StaffList:
    """One of the staff's loan lists, in the order they are worked through (indexed by status, date, id)."""
    week_end = today + timedelta(days=7)
    if kind == "overdue":
        query = select(Booking.id).where(Booking.status == BookingStatus.HANDED_OVER, Booking.ends_on < today)
        order = Booking.ends_on
    elif kind == "returns":
        query = select(Booking.id).where(Booking.status == BookingStatus.HANDED_OVER,
                                         Booking.ends_on >= today, Booking.ends_on <= week_end)
        order = Booking.ends_on
    elif kind == "pickups":
        query = (select(Booking.id).join(Booking.request)
                 .where(Booking.status == BookingStatus.RESERVED,
                        Request.status.in_((RequestStatus.APPROVED, RequestStatus.HANDED_OVER)),
                        Booking.starts_on >= today, Booking.starts_on <= week_end))
        order = Booking.starts_on
    else:
        raise ValueError(kind)
    return StaffList(query, (order, Booking.id), _loan_rows)


def _stock_rows(ids: Subquery) -> Select:
    return (select(Edition.id, Edition.material_id, Edition.language, Edition.stock_on_hand, Material.title,
                   Material.low_stock_threshold)
            .select_from(Edition).join(ids, ids.c.id == Edition.id).join(Edition.material))


def low_stock_list() -> StaffList:
    """Giveaway editions of the current catalogue below their material's threshold, the emptiest first."""
    query = (select(Edition.id).join(Edition.material)
             .where(Material.lending == Lending.GIVEAWAY, Material.archived_at.is_(None),
                    Edition.stock_on_hand < Material.low_stock_threshold))
    return StaffList(query, (Edition.stock_on_hand, Edition.id), _stock_rows)


def _request_rows(ids: Subquery) -> Select:
    return (select(Request.id, Request.created_at, Organisation.name.label("organisation"))
            .select_from(Request).join(ids, ids.c.id == Request.id).join(Request.organisation))


def staff_overview(today: date) -> Overview:
    """What staff need to see each morning: decisions, this week's pickups and returns, overdue, low
    stock; each list its first rows and its total."""
    pending = StaffList(select(Request.id).where(Request.status == RequestStatus.SUBMITTED), (Request.id,),
                        _request_rows)
    loans = {kind: bounded(loans_list(kind, today)) for kind in ("pickups", "returns", "overdue")}
    return Overview(bounded(pending), low_stock=bounded(low_stock_list()), **loans)


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


# Exports ------------------------------------------------------------------------------


def export_rows(kind: str, start: date, end: date) -> tuple[list[str], list[list]]:
    """Header and rows of an export for the period (requests by date received, loans by pickup,
    ledger by date of the change)."""
    from core.i18n import local_tz

    tz = local_tz()
    begin = datetime.combine(start, time.min, tz)
    finish = datetime.combine(end + timedelta(days=1), time.min, tz)
    if kind == "requests":
        rows = db.session.scalars(
            select(Request).where(Request.created_at >= begin, Request.created_at < finish)
            .options(selectinload(Request.organisation), selectinload(Request.lines), selectinload(Request.bookings))
            .order_by(Request.id)
        ).all()
        header = [str(_l("Number")), str(_l("Received")), str(_l("Organisation")), str(_l("Status")),
                  str(_l("Copies")), str(_l("Bookings")), str(_l("Purpose"))]
        return header, [[r.id, r.created_at, r.organisation.name, r.status_label,
                         sum(line.quantity for line in r.lines), len(r.bookings), r.purpose] for r in rows]
    if kind == "loans":
        rows = db.session.scalars(
            select(Booking).where(Booking.starts_on >= start, Booking.starts_on <= end)
            .options(selectinload(Booking.unit).selectinload(Unit.edition).selectinload(Edition.material),
                     selectinload(Booking.request).selectinload(Request.organisation))
            .order_by(Booking.starts_on, Booking.id)
        ).all()
        header = [str(_l("Material")), str(_l("Inventory code")), str(_l("Pickup date")), str(_l("Return date")),
                  str(_l("Status")), str(_l("Organisation")), str(_l("Request"))]
        return header, [[b.unit.edition.material.title, b.unit.inventory_code, b.starts_on, b.ends_on,
                         b.status.label, b.request.organisation.name if b.request else "", b.request_id or ""]
                        for b in rows]
    if kind == "ledger":
        rows = db.session.scalars(
            select(StockEntry).where(StockEntry.created_at >= begin, StockEntry.created_at < finish)
            .options(selectinload(StockEntry.edition).selectinload(Edition.material), selectinload(StockEntry.user))
            .order_by(StockEntry.id)
        ).all()
        header = [str(_l("When")), str(_l("Material")), str(_l("Language")), str(_l("Change")), str(_l("Balance")),
                  str(_l("Reason")), str(_l("By")), str(_l("Request")), str(_l("Note"))]
        return header, [[e.created_at, e.edition.material.title, e.edition.language, e.delta, e.balance_after,
                         e.reason.label, e.user.name if e.user else "", e.request_id or "", e.note] for e in rows]
    raise MaterialsError(_l("Unknown export."))


# Catalogue import ----------------------------------------------------------------------

IMPORT_COLUMNS = ("title", "subtitle", "kind", "description", "topics", "target_groups", "languages",
                  "publisher", "year", "stock", "units", "per_request_max", "loan_days_max")
RETURNABLE_KINDS = {MaterialKind.EXHIBITION, MaterialKind.METHOD_KIT, MaterialKind.MEDIA}
IMPORT_MAX_BYTES = 2 * 1024 * 1024


@dataclass
class ImportReport:
    accepted: list = field(default_factory=list)  # (line, title)
    refused: list = field(default_factory=list)  # (line, reason)


def _pairs(text: str) -> dict[str, str]:
    """``"de=500, en=100"`` → ``{"de": "500", "en": "100"}``."""
    result = {}
    for part in text.split(","):
        if part.strip():
            language, sep, value = part.partition("=")
            if not sep:
                raise ValueError(part)
            result[language.strip().lower()] = value.strip()
    return result


def import_catalogue(data: bytes, user: User) -> ImportReport:
    """Add materials from a CSV file (comma or semicolon, UTF-8 with or without BOM).

    Each row is checked on its own: good rows are added, bad rows are reported
    with the reason, and a broken file changes nothing.
    """
    import csv
    import io

    if len(data) > IMPORT_MAX_BYTES:
        raise MaterialsError(_l("The file is larger than 2 MB."), field="file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MaterialsError(_l("The file is not UTF-8 text. Save it as “CSV UTF-8”."), field="file") from None
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=";,")
    except csv.Error:
        raise MaterialsError(_l("This does not look like a CSV file with ; or , between columns."), field="file") from None
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if "title" not in header or "kind" not in header:
        raise MaterialsError(_l("The first row must name the columns; title and kind are required."), field="file")
    reader.fieldnames = header
    report = ImportReport()
    for line, row in enumerate(reader, start=2):
        row = {k: (v or "").strip() for k, v in row.items() if k}
        try:
            with db.session.begin_nested():
                material = _import_row(row, user)
        except (MaterialsError, ValueError, IntegrityError) as error:
            message = error.message if isinstance(error, MaterialsError) else _l("Invalid value: %(value)s", value=str(error)[:80])
            report.refused.append((line, str(message)))
        else:
            report.accepted.append((line, material.title))
    db.session.commit()
    return report


def _import_row(row: dict, user: User) -> Material:
    title = row.get("title", "")
    if not title:
        raise MaterialsError(_l("The title is missing."))
    if db.session.scalar(select(Material.id).where(func.lower(Material.title) == title.lower())) is not None:
        raise MaterialsError(_l("“%(title)s” is in the catalogue already.", title=title))
    kind = MaterialKind._value2member_map_.get(row.get("kind", "").lower())
    if kind is None:
        raise MaterialsError(_l("Unknown kind “%(kind)s”; use %(kinds)s.", kind=row.get("kind", ""),
                                kinds=", ".join(k.value for k in MaterialKind)))
    returnable = kind in RETURNABLE_KINDS
    languages = [code.strip().lower() for code in row.get("languages", "de").split(",") if code.strip()] or ["de"]
    for code in languages:
        if not (code.isalpha() and 2 <= len(code) <= 3):
            raise MaterialsError(_l("“%(code)s” is not a language code such as de, en, ar or tr.", code=code))
    groups = [g.strip().lower() for g in row.get("target_groups", "").split(",") if g.strip()]
    unknown = [g for g in groups if g not in TargetGroup._value2member_map_]
    if unknown:
        raise MaterialsError(_l("Unknown target group “%(group)s”.", group=unknown[0]))
    material = save_material(
        None, [t.strip() for t in row.get("topics", "").split(",")], languages, commit=False,
        title=title, subtitle=row.get("subtitle", ""), kind=kind,
        lending=Lending.RETURNABLE if returnable else Lending.GIVEAWAY,
        description=row.get("description", ""), target_groups=",".join(groups), publisher=row.get("publisher", ""),
        year=int(row["year"]) if row.get("year") else None,
        per_request_max=int(row["per_request_max"]) if row.get("per_request_max") else None,
        loan_days_max=int(row["loan_days_max"]) if row.get("loan_days_max") else None,
    )
    editions = {e.language: e for e in material.editions}
    db.session.flush()
    if returnable:
        for language, codes in _pairs(row.get("units", "")).items():
            if language not in editions:
                raise MaterialsError(_l("Units for %(code)s, but that language is not listed.", code=language))
            for code in codes.split():
                db.session.add(Unit(edition=editions[language], inventory_code=code.upper()))
    else:
        for language, amount in _pairs(row.get("stock", "")).items():
            if language not in editions:
                raise MaterialsError(_l("Stock for %(code)s, but that language is not listed.", code=language))
            quantity = int(amount)
            if quantity < 0:
                raise MaterialsError(_l("Stock cannot be negative."))
            if quantity:
                change_stock(editions[language].id, quantity, StockReason.INTAKE, user, note="CSV-Import")
    db.session.flush()
    return material


# Cover images and PDF downloads ------------------------------------------------------

COVER_MAX_BYTES = 5 * 1024 * 1024
PDF_MAX_BYTES = 15 * 1024 * 1024
THUMBNAIL_SIZE = (320, 320)


def upload_dir() -> Path:
    path = Path(current_app.config["UPLOAD_FOLDER"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_cover(material: Material, data: bytes) -> None:
    """Store a cover image re-encoded (no metadata kept) with a thumbnail; refuse anything else."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > COVER_MAX_BYTES:
        raise MaterialsError(_l("The image is larger than 5 MB."), field="cover")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError):
        raise MaterialsError(_l("This is not an image (JPEG, PNG or WebP)."), field="cover") from None
    if image.format not in ("JPEG", "PNG", "WEBP"):
        raise MaterialsError(_l("This is not an image (JPEG, PNG or WebP)."), field="cover")
    image = image.convert("RGB")
    name = f"cover-{material.id}-{secrets.token_hex(4)}"
    directory = upload_dir()
    image.save(directory / f"{name}.jpg", "JPEG", quality=85)
    image.thumbnail(THUMBNAIL_SIZE)
    image.save(directory / f"{name}-thumb.jpg", "JPEG", quality=80)
    old = material.cover_path
    material.cover_path = name
    db.session.commit()
    if old:
        for suffix in (".jpg", "-thumb.jpg"):
            (directory / f"{old}{suffix}").unlink(missing_ok=True)


def save_pdf(material: Material, data: bytes) -> None:
    """Store the material's PDF download."""
    if len(data) > PDF_MAX_BYTES:
        raise MaterialsError(_l("The PDF is larger than 15 MB."), field="pdf")
    if not data.startswith(b"%PDF-"):
        raise MaterialsError(_l("This is not a PDF file."), field="pdf")
    name = f"pdf-{material.id}-{secrets.token_hex(4)}.pdf"
    (upload_dir() / name).write_bytes(data)
    old = material.pdf_path
    material.pdf_path = name
    db.session.commit()
    if old:
        (upload_dir() / old).unlink(missing_ok=True)


def alternative_units(booking: Booking) -> list[Unit]:
    """Other units of the same edition that are free for the booking's period."""
    free = free_units_query(booking.starts_on, booking.ends_on).where(
        Unit.edition_id == booking.unit.edition_id, Unit.id != booking.unit_id
    )
    return db.session.scalars(select(Unit).where(Unit.id.in_(free)).order_by(Unit.inventory_code)).all()


def reassign_booking(booking_id: int, unit_id: int, staff: User) -> Booking:
    """Give a reserved booking another unit of the same edition; the database refuses a clash."""
    booking = db.session.get(Booking, booking_id)
    unit = db.session.get(Unit, unit_id)
    if booking is None or booking.status != BookingStatus.RESERVED:
        raise MaterialsError(_l("This booking cannot be changed any more."))
    if unit is None or unit.edition_id != booking.unit.edition_id or not unit.bookable:
        raise MaterialsError(_l("Choose another unit of the same edition."))
    try:
        with db.session.begin_nested():
            booking.unit_id = unit.id
    except IntegrityError:
        db.session.rollback()
        raise NotAvailable(_l("Unit %(code)s is no longer available for this period.", code=unit.inventory_code)) from None
    db.session.commit()
    return booking


def retire_unit(unit_id: int) -> Unit:
    """Retire a unit for good; not while it is out or promised to someone."""
    unit = db.session.get(Unit, unit_id)
    if unit is None:
        raise MaterialsError(_l("Unknown unit."))
    if db.session.scalar(select(Booking.id).where(Booking.unit_id == unit_id, Booking.status.in_(ACTIVE_BOOKING))):
        raise MaterialsError(_l("The unit is booked or out on loan; change those bookings first."))
    unit.retired_at = utcnow()
    db.session.commit()
    return unit
