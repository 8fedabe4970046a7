"""State machines: one table of moves per model; a refused move changes nothing, on both databases;
seats and blocked units held by the rules, the seats by the database itself."""

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError

from accounts.models import Role
from core.errors import DomainError
from core.extensions import db
from core.i18n import format_date, local_today
from core.states import IllegalTransition
from events import registrations, trainings
from events.errors import EventsError
from events.models import Registration, RegistrationStatus, Training, TrainingStatus
from materials import lending, units
from materials.cart import add_to_cart, submit_request
from materials.models import Booking, BookingStatus, Delivery, Request, RequestStatus, Unit, UnitCondition
from tests.conftest import run_concurrently


def submitted(partner, kit, days: int = 10) -> Request:
    start = local_today() + timedelta(days=days)
    cart = add_to_cart({}, kit, starts_on=start, ends_on=start + timedelta(days=2))
    return submit_request(partner, cart, f"key-{days}-{partner.id}", "Fachtag", "", Delivery.PICKUP, "")


@pytest.mark.parametrize("action, prepare", [
    ("approve", lambda req, staff: lending.reject_request(req.id, staff, "nein")),
    ("close", lambda req, staff: None),  # only a returned request can be closed
    ("hand_over", lambda req, staff: None),  # not approved yet
    ("cancel", lambda req, staff: lending.cancel_request(req.id, staff, reason="doppelt")),
])
def test_an_illegal_request_transition_is_refused_and_changes_nothing(make_material, make_user, action, prepare):
    partner, staff = make_user(Role.PARTNER), make_user(Role.STAFF)
    kit = make_material(returnable=True, units={"de": ["K-1"]}).editions[0]
    req = submitted(partner, kit)
    prepare(req, staff)
    db.session.expire_all()
    before = (db.session.get(Request, req.id).status, db.session.scalar(text("SELECT count(*) FROM audit_entries")))
    service = {"approve": lambda: lending.approve_request(req.id, staff),
               "close": lambda: lending.close_request(req.id, staff),
               "hand_over": lambda: lending.hand_over(req.id, [b.id for b in req.bookings], staff, True, early_confirmed=True),
               "cancel": lambda: lending.cancel_request(req.id, staff)}[action]
    with pytest.raises(IllegalTransition):
        service()
    db.session.expire_all()
    assert (db.session.get(Request, req.id).status,
            db.session.scalar(text("SELECT count(*) FROM audit_entries"))) == before


def test_illegal_training_and_registration_transitions_are_refused(make_training, make_user):
    staff = make_user(Role.STAFF)
    training = make_training(seats=1)
    first = registrations.register(training.id, "Eins", "eins@example.org").registration
    trainings.cancel_training(training.id, staff)
    with pytest.raises(EventsError, match="Nur ein Entwurf"):
        trainings.publish(training.id, staff)
    with pytest.raises(EventsError, match="bereits abgesagt"):
        trainings.cancel_training(training.id, staff)
    with pytest.raises(EventsError):
        registrations.give_seat(first.id, staff)
    db.session.expire_all()
    assert db.session.get(Training, training.id).status == TrainingStatus.CANCELLED
    assert db.session.get(Registration, first.id).status == RegistrationStatus.CANCELLED


def test_a_unit_in_good_condition_cannot_be_cleared_and_a_return_never_clears(make_material, make_user):
    staff, partner = make_user(Role.STAFF), make_user(Role.PARTNER)
    kit = make_material(returnable=True, units={"de": ["K-1"]}).editions[0]
    unit = kit.units[0]
    with pytest.raises(IllegalTransition):
        units.clear_unit(unit.id, staff)
    req = submitted(partner, kit, days=3)
    lending.approve_request(req.id, staff)
    lending.hand_over(req.id, [b.id for b in req.bookings], staff, True, early_confirmed=True)
    lending.take_back(req.bookings[0].id, staff, UnitCondition.DAMAGED, "Rolle geknickt")
    assert db.session.get(type(unit), unit.id).condition == UnitCondition.DAMAGED
    units.clear_unit(unit.id, staff)
    assert db.session.get(type(unit), unit.id).condition == UnitCondition.GOOD


def test_a_damaged_unit_never_leaves_the_house_for_an_older_reservation(make_material, make_user):
    """DOMAIN rule 9: the unit came back damaged from one loan; another request had reserved it for
    later. Its handover is refused with the reason until staff clear the unit (or give another unit)."""
    staff, partner = make_user(Role.STAFF), make_user(Role.PARTNER)
    kit = make_material(returnable=True, units={"de": ["K-1"]}, buffer_days=0).editions[0]
    first, later = submitted(partner, kit, days=2), submitted(partner, kit, days=20)
    for req in (first, later):
        lending.approve_request(req.id, staff)
    lending.hand_over(first.id, [b.id for b in first.bookings], staff, True, early_confirmed=True)
    lending.take_back(first.bookings[0].id, staff, UnitCondition.DAMAGED, "Tafel gebrochen")
    with pytest.raises(DomainError) as refused:
        lending.hand_over(later.id, [b.id for b in later.bookings], staff, True, early_confirmed=True)
    assert "Tafel gebrochen" in str(refused.value) and "K-1" in str(refused.value)
    db.session.expire_all()
    assert db.session.get(Request, later.id).status == RequestStatus.APPROVED


def test_every_return_keeps_its_own_condition_record_and_the_damage_stays_until_cleared(make_material, make_user,
                                                                                        client, login):
    """A unit returned damaged, then (before anyone cleared it) returned from a second loan as "good":
    it stays blocked, each booking keeps what was noted at its return, the unit page shows both and the
    history names who cleared it."""
    staff, partner = make_user(Role.STAFF, name="Petra Lager"), make_user(Role.PARTNER)
    kit = make_material(returnable=True, units={"de": ["K-1"]}, buffer_days=0).editions[0]
    unit_id = kit.units[0].id
    first, second = submitted(partner, kit, days=0), submitted(partner, kit, days=4)
    for req in (first, second):
        lending.approve_request(req.id, staff)
    lending.hand_over(first.id, [b.id for b in first.bookings], staff, True, early_confirmed=True)
    lending.take_back(first.bookings[0].id, staff, UnitCondition.DAMAGED, "Tafel gebrochen")
    units.clear_unit(unit_id, staff)
    lending.hand_over(second.id, [b.id for b in second.bookings], staff, True, early_confirmed=True)
    lending.take_back(second.bookings[0].id, staff, UnitCondition.INCOMPLETE, "Stecker fehlt")
    db.session.expire_all()
    records = {b.request_id: (b.return_condition, b.return_note)
               for b in db.session.scalars(select(Booking).where(Booking.unit_id == unit_id))}
    assert records == {first.id: (UnitCondition.DAMAGED, "Tafel gebrochen"),
                       second.id: (UnitCondition.INCOMPLETE, "Stecker fehlt")}
    login(staff)
    page = client.get(f"/materials/units/{unit_id}").get_data(as_text=True)
    assert "Tafel gebrochen" in page and "Stecker fehlt" in page and "Petra Lager" in page
    assert db.session.get(Unit, unit_id).condition == UnitCondition.INCOMPLETE


def test_the_database_refuses_to_hand_out_a_blocked_or_retired_unit(make_material, make_user):
    """DOMAIN rule 9 held where the booking rule is held: whoever writes, a booking of a damaged,
    incomplete, lost or retired unit cannot become an open loan."""
    staff, partner = make_user(Role.STAFF), make_user(Role.PARTNER)
    kit = make_material(returnable=True, units={"de": ["K-1"]}, buffer_days=0).editions[0]
    req = submitted(partner, kit, days=3)
    lending.approve_request(req.id, staff)
    booking_id, unit_id = req.bookings[0].id, req.bookings[0].unit_id
    db.session.commit()
    hand_out = update(Booking).where(Booking.id == booking_id).values(status="handed_over")
    for condition, retired in (("damaged", False), ("incomplete", False), ("lost", False), ("good", True)):
        db.session.execute(update(Unit).where(Unit.id == unit_id).values(
            condition=condition, retired_at=func.now() if retired else None))
        with pytest.raises(IntegrityError):
            db.session.execute(hand_out)
            db.session.flush()
        db.session.rollback()
    db.session.execute(hand_out)  # a good unit goes out
    db.session.commit()
    assert db.session.get(Booking, booking_id).status == BookingStatus.HANDED_OVER


def test_an_overbooking_written_around_the_service_fails_in_the_database(make_training):
    """DOMAIN rule 3 held by the database: a seat-holding registration beyond the seats, written
    with plain SQL, is refused, as is a waiting registration moved onto a seat or fewer seats."""
    training = make_training(seats=1)
    registrations.register(training.id, "Eins", "eins@example.org")
    waiting = registrations.register(training.id, "Zwei", "zwei@example.org").registration
    assert waiting.status == RegistrationStatus.WAITING
    db.session.commit()
    insert = text("INSERT INTO registrations (training_id, name, email, organisation, position, answers, locale, "
                  "status, manage_token_hash, confirm_token_hash, consent_at, created_at, updated_at) VALUES "
                  "(:t, 'X', 'x@example.org', '', '', '', 'de', 'confirmed', :m, :c, :now, :now, :now)")
    from core.models import utcnow

    now = utcnow().isoformat(sep=" ") if db.engine.dialect.name == "sqlite" else utcnow()
    for attempt in (
        lambda: db.session.execute(insert, {"t": training.id, "m": "m" * 64, "c": "c" * 64, "now": now}),
        lambda: db.session.execute(update(Registration).where(Registration.id == waiting.id)
                                   .values(status=RegistrationStatus.PENDING)),
        lambda: db.session.execute(update(Training).where(Training.id == training.id).values(seats=0)),
    ):
        with pytest.raises(IntegrityError):
            attempt()
            db.session.flush()
        db.session.rollback()
    taken = db.session.scalar(select(Training.seats_taken).where(Training.id == training.id))
    counted = db.session.scalar(select(func.count()).select_from(Registration).where(
        Registration.training_id == training.id, Registration.status.in_(("pending", "confirmed"))))
    assert taken == counted == 1


def test_the_seat_counter_follows_every_change_under_concurrency(app, make_training):
    """Registrations and cancellations at once, on two trainings in opposite order: the database's
    counter always equals the seat holders, and never exceeds the seats."""
    first, second = make_training(seats=5), make_training(seats=5)
    ids = [first.id, second.id]

    def go(i):
        order = ids if i % 2 else ids[::-1]
        return [registrations.register(t, f"P{i}", f"p{i}@example.org").registration.status for t in order]

    results = run_concurrently(app, 16, go)
    assert all(isinstance(r, list) for r in results), results
    for training_id in ids:
        taken = db.session.scalar(select(Training.seats_taken).where(Training.id == training_id))
        holders = db.session.scalar(select(func.count()).select_from(Registration).where(
            Registration.training_id == training_id, Registration.status.in_(("pending", "confirmed"))))
        assert taken == holders == 5


def test_a_cancelled_training_ends_every_registration(client, make_training, make_user):
    """DOMAIN rule 10: after staff cancel, the pending registration cannot confirm any more, nobody
    moves up from the waiting list, and everyone gets exactly one mail: the cancellation."""
    from core.mail import OutboxMessage
    from tests.test_registrations import links as mailed_links

    training = make_training(seats=1)
    registrations.register(training.id, "Offen", "offen@example.org")  # pending, holds the seat
    registrations.register(training.id, "Wartet", "wartet@example.org")  # waiting list
    before = {a: db.session.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.to_addr == a))
              for a in ("offen@example.org", "wartet@example.org")}
    confirm_path = mailed_links("offen@example.org")["confirm"]
    assert trainings.cancel_training(training.id, make_user(Role.STAFF), "Raum nicht verfügbar") == 2
    db.session.expire_all()
    assert {r.status for r in db.session.scalars(select(Registration))} == {RegistrationStatus.CANCELLED}
    assert client.post(confirm_path).status_code == 410
    for address, count in before.items():
        subjects = db.session.scalars(select(OutboxMessage.subject).where(OutboxMessage.to_addr == address)
                                      .order_by(OutboxMessage.id)).all()
        assert len(subjects) == count + 1 and subjects[-1].startswith("Abgesagt")
    assert db.session.scalar(select(Training.seats_taken).where(Training.id == training.id)) == 0


def test_a_stale_page_cannot_override_a_colleagues_decision(client, login, make_material, make_user):
    """Tab A approves; tab B, still showing "submitted", rejects: refused, the partner gets one mail."""
    partner, staff = make_user(Role.PARTNER), make_user(Role.STAFF)
    kit = make_material(returnable=True, units={"de": ["K-1"]}).editions[0]
    req = submitted(partner, kit)
    login(staff)
    assert client.post(f"/requests/{req.id}/approve", data={"seen": "submitted"}).status_code == 302
    page = client.post(f"/requests/{req.id}/reject", data={"seen": "submitted", "reason": "Nein"},
                       follow_redirects=True).get_data(as_text=True)
    assert "inzwischen geändert" in page
    db.session.expire_all()
    assert db.session.get(Request, req.id).status == RequestStatus.APPROVED
    page = client.post(f"/requests/{req.id}/reject", data={"seen": "approved", "reason": " "},
                       follow_redirects=True).get_data(as_text=True)
    assert "Bitte geben Sie den Grund an" in page  # the reason goes to the partner: it is needed
    assert db.session.get(Request, req.id).status == RequestStatus.APPROVED


def test_a_unit_handed_over_early_is_booked_from_that_day(make_material, make_user):
    """Handed over before its booked start, the loan starts today: the unit no longer looks free in
    between, and a request for that time gets another unit or nothing."""
    from materials.errors import MaterialsError

    staff, partner = make_user(Role.STAFF), make_user(Role.PARTNER)
    kit = make_material(returnable=True, units={"de": ["BU-10"]}, buffer_days=0).editions[0]
    later = submitted(partner, kit, days=20)
    lending.approve_request(later.id, staff)
    lending.hand_over(later.id, [b.id for b in later.bookings], staff, True, early_confirmed=True)
    db.session.expire_all()
    assert db.session.get(Request, later.id).bookings[0].starts_on == local_today()
    with pytest.raises(MaterialsError, match="Kein Exemplar ist"):  # refused when added, already
        submitted(partner, kit, days=3)


def test_an_early_handover_is_refused_when_the_unit_is_booked_in_between(make_material, make_user):
    staff, partner = make_user(Role.STAFF), make_user(Role.PARTNER)
    kit = make_material(returnable=True, units={"de": ["BU-10"]}, buffer_days=0).editions[0]
    soon, later = submitted(partner, kit, days=3), submitted(partner, kit, days=20)
    for req in (soon, later):
        lending.approve_request(req.id, staff)
    with pytest.raises(DomainError, match="für jemand anderen gebucht"):
        lending.hand_over(later.id, [b.id for b in later.bookings], staff, True, early_confirmed=True)
    db.session.expire_all()
    assert db.session.get(Request, later.id).status == RequestStatus.APPROVED


def test_the_last_two_units_taken_back_at_once_return_the_request(app, make_material, make_user):
    """Two staff take back the last two units of one request at the same moment, ten times: the
    request's row is locked first, so the second sees the first's return and the request is back."""
    staff, partner = make_user(Role.STAFF), make_user(Role.PARTNER)
    kit = make_material(returnable=True, units={"de": ["Z-1", "Z-2"]}, buffer_days=0).editions[0]
    for round_ in range(10):
        start = local_today() + timedelta(days=1 + 5 * round_)
        cart = add_to_cart(add_to_cart({}, kit, starts_on=start, ends_on=start + timedelta(days=2)), kit,
                           starts_on=start, ends_on=start + timedelta(days=2))
        req = submit_request(partner, cart, f"two-{round_}", "Fachtag", "", Delivery.PICKUP, "")
        lending.approve_request(req.id, staff)
        lending.hand_over(req.id, [b.id for b in req.bookings], staff, True, early_confirmed=True)
        booking_ids, staff_id = [b.id for b in req.bookings], staff.id

        def back(i, booking_ids=booking_ids, staff_id=staff_id):
            return lending.take_back(booking_ids[i], staff_again(staff_id), UnitCondition.GOOD, "").id

        results = run_concurrently(app, 2, back)
        assert all(isinstance(r, int) for r in results), results
        assert db.session.get(Request, req.id).status == RequestStatus.RETURNED, round_


def staff_again(user_id: int):
    from accounts.models import User

    return db.session.get(User, user_id)


def test_an_early_handover_and_an_extension_keep_the_longest_loan(make_material, make_user):
    """Issue 16: a handover long before the booked start moved the start and made a loan longer than
    the material allows, and an extension had no limit. Both now stop at ``loan_days_max`` and name
    the date that would still fit."""
    from materials.bookings import extend_booking

    staff, partner = make_user(Role.STAFF), make_user(Role.PARTNER)
    kit = make_material(returnable=True, units={"de": ["LD-1"]}, buffer_days=0, loan_days_max=7).editions[0]
    later = submitted(partner, kit, days=20)  # three days, from in 20 days
    lending.approve_request(later.id, staff)
    booking = later.bookings[0]
    earliest = booking.ends_on - timedelta(days=6)
    with pytest.raises(DomainError, match=f"höchstens 7 Tage.*{format_date(earliest)}"):
        lending.hand_over(later.id, [booking.id], staff, True, early_confirmed=True)
    db.session.expire_all()
    booking = db.session.get(Request, later.id).bookings[0]
    assert booking.starts_on == local_today() + timedelta(days=20) and booking.status.value == "reserved"

    with time_machine.travel(earliest, tick=False):  # on the earliest day that fits, the handover goes
        lending.hand_over(later.id, [booking.id], staff, True, early_confirmed=True)
    db.session.expire_all()
    booking = db.session.get(Request, later.id).bookings[0]
    assert booking.starts_on == earliest
    with pytest.raises(DomainError, match=f"höchstens 7 Tage.*{format_date(booking.ends_on)}"):
        extend_booking(booking.id, booking.ends_on + timedelta(days=1), staff)


def test_an_early_handover_of_two_units_names_every_clash(make_material, make_user):
    staff, partner = make_user(Role.STAFF), make_user(Role.PARTNER)
    kit = make_material(returnable=True, units={"de": ["CL-1", "CL-2"]}, buffer_days=0).editions[0]
    start = local_today() + timedelta(days=20)
    both = add_to_cart(add_to_cart({}, kit, starts_on=start, ends_on=start + timedelta(days=2)), kit,
                       starts_on=start, ends_on=start + timedelta(days=2))
    later = submit_request(partner, both, "both", "Fachtag", "", Delivery.PICKUP, "")
    soon_start = local_today() + timedelta(days=3)
    soon = submit_request(partner, add_to_cart(add_to_cart({}, kit, starts_on=soon_start, ends_on=soon_start), kit,
                                               starts_on=soon_start, ends_on=soon_start),
                          "soon", "Fachtag", "", Delivery.PICKUP, "")
    for req in (later, soon):
        lending.approve_request(req.id, staff)
    with pytest.raises(DomainError) as refused:
        lending.hand_over(later.id, [b.id for b in later.bookings], staff, True, early_confirmed=True)
    assert "CL-1" in str(refused.value.message) and "CL-2" in str(refused.value.message)
