"""CSV exports for a period: requests, loans, the stock ledger."""

from datetime import date, datetime, time, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from core.extensions import db
from materials.errors import MaterialsError
from materials.models import Booking, Edition, Request, StockEntry, Unit


def export_rows(kind: str, start: date, end: date) -> tuple[list[str], list[list]]:
    """Header and rows of an export for the period (requests by date received, loans by pickup,
    ledger by date of the change)."""
    from core.i18n import language_name, local_tz

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
        return header, [[e.created_at, e.edition.material.title, language_name(e.edition.language), e.delta,
                         e.balance_after, e.what, e.user.name if e.user else "", e.request_id or "", e.note]
                        for e in rows]
    raise MaterialsError(_l("Unknown export."))
