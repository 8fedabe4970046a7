"""Returnable units: adding them, clearing a blocked one (DOMAIN rule 9), retiring one for good.

A unit's condition moves only through ``Unit.states``: a return notes it (and never clears a blocked
unit by itself), staff clear it; each move is an audit entry, so the unit's history keeps every
condition and who cleared it.
"""

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from accounts.models import User
from core import audit
from core.confirm import Consequences
from core.db import unit_of_work
from core.extensions import db
from core.models import utcnow
from core.states import lock
from materials.errors import MaterialsError
from materials.models import ACTIVE_BOOKING, Booking, Edition, Request, Unit
from materials.stock import lock_editions


@unit_of_work
def add_unit(edition_id: int, inventory_code: str, actor: User) -> Unit:
    """A new unit of a returnable edition, with an inventory code no other unit has."""
    code = inventory_code.strip().upper()
    taken = MaterialsError(_l("The inventory code %(code)s is taken.", code=code), field="inventory_code")
    if db.session.scalar(select(Unit.id).where(Unit.inventory_code == code)) is not None:
        raise taken
    edition = db.session.get(Edition, edition_id)
    unit = Unit(edition_id=edition.id, inventory_code=code)
    try:
        with db.session.begin_nested():
            db.session.add(unit)
    except IntegrityError:  # the same code at the same moment
        raise taken from None
    audit.record(actor, "add", unit, refs=[edition.material], details=f"{code} ({edition.language})")
    return unit


@unit_of_work
def clear_unit(unit_id: int, actor: User) -> Unit:
    """Staff have repaired or completed a unit: it can be booked again."""
    unit = lock(Unit, unit_id, _l("Unknown unit."))
    Unit.states.move(unit, "clear", actor, refs=[unit.edition.material], reason=unit.condition_note,
                     details=unit.inventory_code)
    unit.condition_note = ""
    return unit


@unit_of_work
def retire_unit(unit_id: int, actor: User) -> Unit:
    """Retire a unit for good; not while it is out or promised to someone."""
    edition_id = db.session.scalar(select(Unit.edition_id).where(Unit.id == unit_id))
    if edition_id is None:
        raise MaterialsError(_l("Unknown unit."))
    lock_editions([edition_id])  # no booking of the edition's units can start meanwhile
    unit = lock(Unit, unit_id)
    _refuse_retiring(unit)
    unit.retired_at = utcnow()
    audit.record(actor, "retire", unit, refs=[unit.edition.material], details=unit.inventory_code)
    return unit


def _refuse_retiring(unit: Unit) -> None:
    if unit.retired_at is not None:
        raise MaterialsError(_l("Unit %(code)s is retired already.", code=unit.inventory_code))
    if db.session.scalar(select(Booking.id).where(Booking.unit_id == unit.id, Booking.status.in_(ACTIVE_BOOKING))):
        raise MaterialsError(_l("The unit is booked or out on loan; change those bookings first."))


def retire_consequences(unit: Unit) -> Consequences:
    """What ``retire_unit`` would do now, for the page that asks first; refused like the action."""
    _refuse_retiring(unit)
    return Consequences((_l("Unit %(code)s can no longer be booked or handed out, for good; its bookings and "
                            "history stay.", code=unit.inventory_code),))


def unit_bookings(unit: Unit) -> list[Booking]:
    """Every booking of the unit, the latest period first, with its request and organisation."""
    return db.session.scalars(
        select(Booking).where(Booking.unit_id == unit.id)
        .options(selectinload(Booking.request).selectinload(Request.organisation))
        .order_by(Booking.starts_on.desc())
    ).all()
