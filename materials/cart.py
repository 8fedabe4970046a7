"""The partner's cart and its submission: stock taken and units booked, all or nothing.

The cart is kept per person (``Cart``, read by ``cart_of``, written by ``keep_cart``) until they submit: a dict with
"items": [{"edition_id": int, "quantity": int}] for giveaways and
[{"edition_id": int, "starts_on": "YYYY-MM-DD", "ends_on": "YYYY-MM-DD"}] for units.
Submitting takes the stock and books units in one transaction; if anything is
short, nothing is taken and the partner is told exactly what.
"""

import json
from dataclasses import dataclass
from datetime import date, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from accounts.models import User
from core import audit
from core.db import unit_of_work
from core.extensions import db
from core.i18n import format_date, local_today
from materials.bookings import book_free_unit, check_loan_length, free_unit_count, next_free_start, overlaps
from materials.errors import MaterialsError, NotAvailable, Shortage
from materials.lending import notify_submitted
from materials.models import Cart, Delivery, Edition, Material, Request, RequestLine, RequestStatus, StockReason
from materials.stock import change_stock, lock_editions


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


def cart_of(user: User) -> dict:
    """The person's cart as they left it (in this browser or another)."""
    kept = db.session.get(Cart, user.id)
    return {"items": json.loads(kept.items)} if kept is not None else {"items": []}


@unit_of_work
def keep_cart(user: User, cart: dict) -> None:
    """Keep the person's cart; an empty one is removed."""
    kept = db.session.get(Cart, user.id)
    if not cart.get("items"):
        if kept is not None:
            db.session.delete(kept)
        return
    if kept is None:
        kept = Cart(user_id=user.id)
        db.session.add(kept)
    kept.items = json.dumps(cart["items"])


def add_to_cart(cart: dict, edition: Edition, quantity: int | None = None,
                starts_on: date | None = None, ends_on: date | None = None, today: date | None = None) -> dict:
    """Check one item against the material's rules and add it to the cart; returns the new cart."""
    material = edition.material
    items = list(cart.get("items", []))
    if material.archived_at is not None:
        raise MaterialsError(_l("This material is no longer in the catalogue."))
    if material.is_returnable:
        check_period(material, starts_on, ends_on, today or local_today())
        check_free(edition, starts_on, ends_on, items)
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


def check_free(edition: Edition, starts_on: date, ends_on: date, items: list[dict]) -> None:
    """A unit must be free for the period now, beyond those the cart already holds for overlapping
    periods; otherwise the partner learns the next free period of the same length. (Submitting checks
    again: this only spares the partner a request that cannot be met.)"""
    buffer = timedelta(days=edition.material.buffer_days)
    held = [(date.fromisoformat(i["starts_on"]), date.fromisoformat(i["ends_on"]) + buffer) for i in items
            if i.get("edition_id") == edition.id and "starts_on" in i]
    if free_unit_count(edition, starts_on, ends_on) > sum(
            1 for start, end in held if overlaps(start, end, starts_on, ends_on + buffer)):
        return
    following = next_free_start(edition, starts_on, ends_on, held)
    if following is None:
        raise NotAvailable(_l("This material cannot be borrowed at the moment."), field="starts_on")
    if any(overlaps(start, end, starts_on, ends_on + buffer) for start, end in held):
        raise NotAvailable(_l("Your basket already holds every unit that is free from %(start)s to %(end)s. The next "
                              "period of the same length with one more unit free is %(next_start)s to %(next_end)s.",
                              start=format_date(starts_on), end=format_date(ends_on),
                              next_start=format_date(following),
                              next_end=format_date(following + (ends_on - starts_on))), field="starts_on")
    raise NotAvailable(_l("No unit is free from %(start)s to %(end)s. The next free period of the same length "
                          "is %(next_start)s to %(next_end)s.", start=format_date(starts_on),
                          end=format_date(ends_on), next_start=format_date(following),
                          next_end=format_date(following + (ends_on - starts_on))), field="starts_on")


def check_period(material: Material, starts_on: date | None, ends_on: date | None, today: date) -> None:
    if starts_on is None or ends_on is None:
        raise MaterialsError(_l("Choose the pickup and the return date."), field="starts_on")
    if starts_on < today:
        raise MaterialsError(_l("The pickup date is in the past."), field="starts_on")
    if ends_on < starts_on:
        raise MaterialsError(_l("The return date is before the pickup date."), field="ends_on")
    check_loan_length(material, starts_on, ends_on)


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
        raise MaterialsError(_l("Your basket is empty."))
    if delivery == Delivery.SHIPPING and not shipping_address.strip():
        raise MaterialsError(_l("Please enter the address to ship to."), field="shipping_address")
    lock_editions(item.edition.id for item in items)
    request = Request(organisation_id=user.organisation_id, created_by_id=user.id, submit_key=submit_key,
                      purpose=purpose.strip(), audience=audience.strip(), delivery=delivery,
                      shipping_address=shipping_address.strip() if delivery == Delivery.SHIPPING else "")
    try:
        with db.session.begin_nested():
            db.session.add(request)
    except IntegrityError:  # the same form sent twice at the same moment
        existing = _submitted_before(user, submit_key)
        if existing is None:
            raise
        return existing
    problems, refs, taken = [], [], []
    for item in items:
        material = item.edition.material
        try:
            if item.returnable:
                check_period(material, item.starts_on, item.ends_on, local_today())
                booking = book_free_unit(item.edition, item.starts_on, item.ends_on, request.id)
                refs.append(booking.unit)
                taken.append(f"{booking.unit.inventory_code} {item.starts_on.isoformat()}–{item.ends_on.isoformat()}")
            else:
                change_stock(item.edition.id, -item.quantity, StockReason.RESERVED, user, request_id=request.id)
                request.lines.append(RequestLine(edition_id=item.edition.id, quantity=item.quantity))
                taken.append(f"{item.quantity} × {material.title} ({item.edition.language})")
            refs.append(material)
        except MaterialsError as error:
            problems.append(_l("%(title)s: %(problem)s", title=material.title, problem=error.message))
    if problems:
        raise Shortage(problems)
    audit.record(user, "submit", request, to_state=RequestStatus.SUBMITTED, refs=refs, details="; ".join(taken))
    keep_cart(user, {})  # submitted: the cart is empty, in the same transaction
    notify_submitted(request)
    return request


def _submitted_before(user: User, submit_key: str) -> Request | None:
    """The request this form already created (a double click), if it was this organisation's."""
    existing = db.session.scalar(select(Request).where(Request.submit_key == submit_key))
    if existing is not None and existing.organisation_id != user.organisation_id:
        raise MaterialsError(_l("This form has been sent already; please open it again."))
    return existing
