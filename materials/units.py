"""Returnable units: adding them, clearing a blocked one, retiring one for good."""


from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from accounts.models import User
from core.extensions import db
from core.models import utcnow
from materials.bookings import ACTIVE_BOOKING
from materials.errors import MaterialsError
from materials.models import Booking, Edition, Unit, UnitCondition


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


def clear_unit(unit_id: int, staff: User) -> Unit:
    """Staff have repaired or completed a unit: it can be booked again."""
    unit = db.session.get(Unit, unit_id)
    if unit is None:
        raise MaterialsError(_l("Unknown unit."))
    unit.condition = UnitCondition.GOOD
    unit.condition_note = ""
    db.session.commit()
    return unit


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
