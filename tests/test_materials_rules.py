"""The materials invariants, held by the database under concurrency (DOMAIN rules 1 and 2)."""

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError

from accounts.models import Role
from core.extensions import db
from core.states import IllegalTransition
from materials.bookings import book_unit, hand_over_booking
from materials.errors import MaterialsError, NotAvailable
from materials.models import Booking, BookingStatus, Edition, StockEntry, StockReason, UnitCondition, fold
from materials.stock import change_stock
from tests.conftest import run_concurrently

D = date(2027, 3, 1)


def day(n: int) -> date:
    return D + timedelta(days=n)


@pytest.mark.parametrize("spelling", ["Broschüre", "broschuere", "BROSCHURE", "Broschure"])
def test_search_folding_ignores_case_accents_and_umlaut_spellings(spelling):
    assert fold(spelling) == fold("Broschüre") == "broschure"
    assert fold("Straße") == fold("Strasse")
    assert fold("Türkçe") == fold("turkce")


def test_stock_changes_write_the_ledger(make_material, make_user):
    staff = make_user(Role.STAFF)
    edition = make_material(editions={"de": 0}).editions[0]
    change_stock(edition.id, 100, StockReason.INTAKE, staff, "Nachdruck 2027")
    change_stock(edition.id, -30, StockReason.HANDOUT, staff)
    db.session.commit()
    db.session.refresh(edition)
    assert edition.stock_on_hand == 70
    entries = db.session.scalars(select(StockEntry).order_by(StockEntry.id)).all()
    assert [(e.delta, e.balance_after, e.reason, e.user_id) for e in entries] == [
        (100, 100, StockReason.INTAKE, staff.id),
        (-30, 70, StockReason.HANDOUT, staff.id),
    ]
    assert entries[0].note == "Nachdruck 2027" and entries[0].created_at is not None


def test_stock_never_goes_below_zero(make_material):
    edition = make_material(editions={"de": 5}).editions[0]
    with pytest.raises(NotAvailable, match="Nur noch 5 Exemplare vorhanden; angefragt waren 6."):
        change_stock(edition.id, -6, StockReason.HANDOUT, None)
    with pytest.raises(MaterialsError):
        change_stock(edition.id, 0, StockReason.CORRECTION, None)
    db.session.rollback()
    db.session.refresh(edition)
    assert edition.stock_on_hand == 5
    assert db.session.scalar(select(func.count()).select_from(StockEntry)) == 0


def test_database_refuses_negative_stock_even_without_the_service(make_material):
    edition = make_material(editions={"de": 1}).editions[0]
    with pytest.raises(IntegrityError):
        db.session.execute(update(Edition).where(Edition.id == edition.id).values(stock_on_hand=-1))
        db.session.commit()
    db.session.rollback()


@pytest.mark.parametrize("each", [1, 3])
def test_concurrent_requests_for_the_last_brochures(app, make_material, each):
    """40 requests at once for the last 10 copies: exactly what is there is granted."""
    edition_id = make_material(editions={"de": 10}).editions[0].id
    results = run_concurrently(
        app, 40, lambda i: change_stock(edition_id, -each, StockReason.HANDOUT, None, note=f"req {i}").id
    )
    granted = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, NotAvailable)]
    assert len(granted) == 10 // each
    assert len(granted) + len(refused) == 40  # nothing else went wrong
    edition = db.session.get(Edition, edition_id)
    assert edition.stock_on_hand == 10 - each * len(granted)
    ledger = db.session.scalars(select(StockEntry).order_by(StockEntry.balance_after.desc())).all()
    assert len(ledger) == len(granted)  # nothing half-written
    assert [e.balance_after for e in ledger] == [10 - each * (k + 1) for k in range(len(granted))]


def test_bookings_respect_buffer_days(make_material):
    unit = make_material(returnable=True, buffer_days=2).editions[0].units[0]
    first = book_unit(unit.id, day(0), day(4))
    assert first.blocked_until == day(6)
    with pytest.raises(NotAvailable, match="nicht mehr verfügbar"):
        book_unit(unit.id, day(6), day(8))  # inside the buffer for packing and transport
    second = book_unit(unit.id, day(7), day(9))
    db.session.commit()
    assert second.id != first.id


def test_booking_input_is_checked(make_material):
    material = make_material(returnable=True, loan_days_max=14)
    unit = material.editions[0].units[0]
    with pytest.raises(MaterialsError, match="vor dem Abholdatum"):
        book_unit(unit.id, day(5), day(4))
    with pytest.raises(MaterialsError, match="höchstens 14 Tage"):
        book_unit(unit.id, day(0), day(14))
    assert book_unit(unit.id, day(0), day(13)).id
    unit.condition = UnitCondition.DAMAGED
    db.session.commit()
    with pytest.raises(NotAvailable, match="kann zurzeit nicht gebucht werden"):
        book_unit(unit.id, day(40), day(41))
    giveaway = make_material(editions={"de": 3}).editions[0]
    with pytest.raises(MaterialsError, match="Unbekanntes Exemplar"):
        book_unit(giveaway.id, day(0), day(1))


def test_database_refuses_overlapping_bookings_even_without_the_service(make_material):
    unit = make_material(returnable=True).editions[0].units[0]
    db.session.add(Booking(unit_id=unit.id, starts_on=day(0), ends_on=day(4), blocked_until=day(6)))
    db.session.commit()
    db.session.add(Booking(unit_id=unit.id, starts_on=day(6), ends_on=day(7), blocked_until=day(9)))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    # A cancelled booking blocks nothing.
    db.session.execute(update(Booking).values(status=BookingStatus.CANCELLED))
    db.session.add(Booking(unit_id=unit.id, starts_on=day(1), ends_on=day(2), blocked_until=day(4)))
    db.session.commit()
    # Moving a booking onto another one is refused too.
    later = Booking(unit_id=unit.id, starts_on=day(10), ends_on=day(11), blocked_until=day(13))
    db.session.add(later)
    db.session.commit()
    with pytest.raises(IntegrityError):
        db.session.execute(update(Booking).where(Booking.id == later.id).values(starts_on=day(3)))
        db.session.commit()
    db.session.rollback()


def test_concurrent_bookings_of_the_last_free_unit(app, make_material):
    """40 partners at once want the one kit for overlapping periods: exactly one gets it."""
    unit_id = make_material(returnable=True, buffer_days=2).editions[0].units[0].id
    results = run_concurrently(app, 40, lambda i: book_unit(unit_id, day(i % 5), day(i % 5 + 3)).id)
    granted = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, NotAvailable)]
    assert len(granted) == 1 and len(refused) == 39, [r for r in results if not isinstance(r, (int, NotAvailable))]
    assert db.session.scalar(select(func.count()).select_from(Booking)) == 1


def test_a_unit_is_never_in_two_open_loans(make_material):
    unit = make_material(returnable=True, buffer_days=0).editions[0].units[0]
    first = book_unit(unit.id, day(0), day(2))
    second = book_unit(unit.id, day(3), day(5))
    db.session.commit()
    hand_over_booking(first)
    db.session.commit()
    with pytest.raises(NotAvailable, match="noch in einer anderen Ausleihe"):
        hand_over_booking(second)  # the first loan has not come back
    db.session.rollback()
    with pytest.raises(IllegalTransition, match="kann nicht mehr geändert werden"):
        hand_over_booking(first)  # it is out already
    db.session.rollback()
    statuses = db.session.execute(text("SELECT status FROM bookings ORDER BY id")).scalars().all()
    assert statuses == ["handed_over", "reserved"]
