"""The audit trail (DOMAIN rule 11): every staff action leaves exactly one entry with the acting
person, in the same transaction, shown on the object's page; nobody edits or deletes an entry."""

import io
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from accounts.models import Organisation, Role, User
from core.audit import AuditEntry
from core.extensions import db
from core.i18n import format_date, local_today
from events import links, participants, registrations
from events.models import Registration
from materials import lending
from materials.cart import add_to_cart, submit_request
from materials.models import Delivery, Edition, Request, UnitCondition


@dataclass
class World:
    staff: User
    partner: User
    admin: User
    kit: object
    brochure: object
    request: Request
    training: object
    waiting: Registration
    confirmed: Registration


@pytest.fixture
def world(app, make_user, make_material, make_training):
    staff, partner, admin = make_user(Role.STAFF), make_user(Role.PARTNER), make_user(Role.ADMIN)
    kit = make_material(title="Ausstellungskoffer", returnable=True, units={"de": ["AK-01", "AK-02"]}, buffer_days=0)
    brochure = make_material(title="Broschüre", editions={"de": 100})
    start = local_today() + timedelta(days=5)
    cart = add_to_cart({}, kit.editions[0], starts_on=start, ends_on=start + timedelta(days=3))
    cart = add_to_cart(cart, brochure.editions[0], quantity=10)
    request = submit_request(partner, cart, uuid.uuid4().hex, "Fachtag", "", Delivery.PICKUP, "")
    training = make_training(seats=1)
    confirmed = registrations.register(training.id, "Erste", "erste@example.org").registration
    waiting = registrations.register(training.id, "Zweite", "zweite@example.org").registration
    db.session.commit()
    return World(staff, partner, admin, kit, brochure, request, training, waiting, confirmed)


def approved(w: World):
    lending.approve_request(w.request.id, w.staff)


def out(w: World):
    approved(w)
    lending.hand_over(w.request.id, [b.id for b in w.request.bookings], w.staff, True, early_confirmed=True)


def damaged(w: World):
    out(w)
    lending.take_back(w.request.bookings[0].id, w.staff, UnitCondition.DAMAGED, "Tafel gebrochen")


def booking(w: World) -> int:
    return w.request.bookings[0].id


def session_of(w: World) -> int:
    return w.training.sessions[0].id


# (action, object type, object id, set-up, URL, form data, the object's page, who acts)
ACTIONS = [
    ("approve", "request", lambda w: w.request.id, None, lambda w: f"/requests/{w.request.id}/approve", {},
     lambda w: f"/requests/{w.request.id}", "staff"),
    ("reject", "request", lambda w: w.request.id, None, lambda w: f"/requests/{w.request.id}/reject",
     {"reason": "Nicht vorrätig"}, lambda w: f"/requests/{w.request.id}", "staff"),
    ("hand_over", "request", lambda w: w.request.id, approved, lambda w: f"/requests/{w.request.id}/hand-over",
     lambda w: {"booking_id": [str(booking(w))], "contents_checked": "y", "early_confirmed": "y"},
     lambda w: f"/requests/{w.request.id}",
     "staff"),
    ("take_back", "unit", lambda w: w.request.bookings[0].unit_id, out,
     lambda w: f"/requests/bookings/{booking(w)}/return", {"condition": "damaged", "note": "Kratzer"},
     lambda w: f"/materials/units/{w.request.bookings[0].unit_id}", "staff"),
    ("clear", "unit", lambda w: w.request.bookings[0].unit_id, damaged,
     lambda w: f"/materials/units/{w.request.bookings[0].unit_id}/clear", {},
     lambda w: f"/materials/units/{w.request.bookings[0].unit_id}", "staff"),
    ("extend", "booking", booking, None, lambda w: f"/requests/bookings/{booking(w)}/extend",
     lambda w: {"ends_on": (w.request.bookings[0].ends_on + timedelta(days=3)).isoformat()},
     lambda w: f"/requests/{w.request.id}", "staff"),
    ("reassign", "booking", booking, None, lambda w: f"/requests/bookings/{booking(w)}/reassign",
     lambda w: {"unit_id": str(w.kit.editions[0].units[1].id)}, lambda w: f"/requests/{w.request.id}", "staff"),
    ("retire", "unit", lambda w: w.kit.editions[0].units[1].id, None,
     lambda w: f"/materials/units/{w.kit.editions[0].units[1].id}/retire", {},
     lambda w: f"/materials/units/{w.kit.editions[0].units[1].id}", "staff"),
    ("stock", "edition", lambda w: w.brochure.editions[0].id, None, lambda w: f"/materials/{w.brochure.id}/manage",
     lambda w: {"action": "stock", "stock-edition_id": str(w.brochure.editions[0].id), "stock-quantity": "-3",
                "stock-reason": "correction", "stock-note": "Inventur"},
     lambda w: f"/materials/{w.brochure.id}/manage", "staff"),
    ("publish", "training", lambda w: w.draft.id, None, lambda w: f"/events/staff/{w.draft.id}/publish", {},
     lambda w: f"/events/staff/{w.draft.id}", "staff"),
    ("cancel", "training", lambda w: w.training.id, None, lambda w: f"/events/staff/{w.training.id}/cancel",
     {"reason": "Referentin erkrankt"}, lambda w: f"/events/staff/{w.training.id}", "staff"),
    ("give_seat", "registration", lambda w: w.waiting.id, None, None, None, None, "staff"),  # set up below
    ("cancel", "registration", lambda w: w.confirmed.id, None,
     lambda w: f"/events/staff/registrations/{w.confirmed.id}/cancel", {"reason": "auf Wunsch"},
     lambda w: f"/events/staff/{w.training.id}", "staff"),
    ("attendance", "training", lambda w: w.training.id, None, lambda w: f"/events/staff/{w.training.id}/attendance",
     {}, lambda w: f"/events/staff/{w.training.id}", "staff"),
    ("certificate", "registration", lambda w: w.confirmed.id,
     lambda w: (registrations.confirm_registration(links.confirm_token(w.confirmed)),
                participants.set_attendance(w.training.id, {(w.confirmed.id, session_of(w))}, w.staff, "vorab")),
     lambda w: f"/events/staff/registrations/{w.confirmed.id}/certificate", {"override_reason": "Abreise"},
     lambda w: f"/events/staff/{w.training.id}", "staff"),
    ("edit", "organisation", lambda w: w.partner.organisation_id, None,
     lambda w: f"/staff/organisations/{w.partner.organisation_id}/edit",
     {"name": "Umbenannt eG", "kind": "housing_company"},
     lambda w: f"/organisations/{w.partner.organisation_id}", "staff"),
    ("edit", "user", lambda w: w.partner.id, None, lambda w: f"/admin/users/{w.partner.id}/edit",
     lambda w: {"email": w.partner.email, "name": "Neuer Name", "role": "partner",
                "organisation_id": str(w.partner.organisation_id), "locale": "de", "active": "y"},
     lambda w: f"/admin/users/{w.partner.id}/edit", "admin"),
    ("invite", "user", lambda w: w.partner.id, None, lambda w: f"/admin/users/{w.partner.id}/invite", {},
     lambda w: f"/admin/users/{w.partner.id}/edit", "admin"),
]


@pytest.mark.parametrize("action, kind, object_id, prepare, url, data, page, who", ACTIONS,
                         ids=[f"{a[1]}.{a[0]}" for a in ACTIONS])
def test_each_staff_action_leaves_exactly_one_entry_with_the_acting_person(app, world, login, client, make_training,
                                                                          action, kind, object_id, prepare, url, data,
                                                                          page, who):
    w = world
    w.draft = make_training(status="draft", title="Entwurf")
    if action == "give_seat":  # a seat must be free first: staff cancel the first registration
        registrations.staff_cancel(w.confirmed.id, w.staff)
        w.waiting = db.session.get(Registration, w.waiting.id)
        # the cancellation promoted the waiting person already; put them back on the list
        db.session.execute(update(Registration).where(Registration.id == w.waiting.id).values(status="waiting"))
        db.session.commit()
        url = lambda w: f"/events/staff/registrations/{w.waiting.id}/seat"  # noqa: E731
        page = lambda w: f"/events/staff/{w.training.id}"  # noqa: E731
        data = {}
    elif prepare:
        prepare(w)
    db.session.commit()
    actor = getattr(w, who)
    login(actor)
    target_id = object_id(w)
    before = db.session.scalar(select(db.func.count()).select_from(AuditEntry))
    response = client.post(url(w), data=data(w) if callable(data) else data)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action == action, AuditEntry.object_type == kind,
                                                          AuditEntry.object_id == target_id)).all()
    assert len(entries) == 1, [(e.action, e.object_type, e.object_id) for e in entries]
    assert entries[0].actor_id == actor.id and entries[0].actor_role == actor.role.value
    assert db.session.scalar(select(db.func.count()).select_from(AuditEntry)) > before
    history = client.get(page(w)).get_data(as_text=True)
    assert actor.name in history and "Verlauf" in history


def test_import_export_delete_and_training_edits_are_recorded(staff_world_client):
    client, staff, training = staff_world_client
    csv_file = "title;kind;stock\nNeue Broschüre;brochure;de=10\n".encode()
    client.post("/materials/import", data={"file": (io.BytesIO(csv_file), "neu.csv")},
                content_type="multipart/form-data")
    client.post("/events/staff/people/export.json", data={"email": "erste@example.org"})
    client.post("/events/staff/people/delete", data={"email": "erste@example.org"})
    rows = db.session.execute(select(AuditEntry.action, AuditEntry.object_type, AuditEntry.actor_id)
                              .where(AuditEntry.actor_id == staff.id)).all()
    assert sorted((a, t) for a, t, _ in rows) == [("delete", "person"), ("export", "person"), ("import", "material")]
    # Nothing personal in what the person's entries say.
    texts = db.session.scalars(select(AuditEntry.details).where(AuditEntry.object_type == "person")).all()
    assert texts == ["1", "1"]


@pytest.fixture
def staff_world_client(client, login, make_user, make_training):
    staff = make_user(Role.STAFF)
    training = make_training()
    registrations.register(training.id, "Erste", "erste@example.org")
    login(staff)
    return client, staff, training


def test_training_create_and_edit_through_the_form(client, login, make_user):
    from tests.test_trainings_staff import form_data

    staff = make_user(Role.STAFF)
    login(staff)
    client.post("/events/staff/new", data=form_data())
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "create",
                                                       AuditEntry.object_type == "training"))
    assert entry.actor_id == staff.id and entry.to_state == "draft"
    client.post(f"/events/staff/{entry.object_id}/edit", data=form_data(title="Neuer Titel"))
    edits = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "edit",
                                                        AuditEntry.object_type == "training")).all()
    assert [(e.actor_id, e.details) for e in edits] == [(staff.id, "Neuer Titel")]


def test_the_database_refuses_to_rewrite_or_delete_an_entry_but_lets_it_forget(world):
    entry = db.session.scalar(select(AuditEntry).order_by(AuditEntry.id))
    for statement in ("UPDATE audit_entries SET action = 'approve' WHERE id = :id",
                      "UPDATE audit_entries SET to_state = 'closed' WHERE id = :id",
                      "UPDATE audit_entries SET details = 'anders' WHERE id = :id",
                      "DELETE FROM audit_entries WHERE id = :id",
                      "DELETE FROM audit_refs WHERE entry_id = :id"):
        with pytest.raises(DBAPIError):
            db.session.execute(text(statement), {"id": entry.id})
            db.session.flush()
        db.session.rollback()
    db.session.execute(text("UPDATE audit_entries SET details = '', reason = '', actor_id = NULL WHERE id = :id"),
                       {"id": entry.id})
    db.session.commit()


def test_an_entry_keeps_the_role_when_the_account_goes(world):
    lending.approve_request(world.request.id, world.staff)
    db.session.execute(update(Request).values(decided_by_id=None))
    db.session.execute(text("DELETE FROM users WHERE id = :id"), {"id": world.staff.id})
    db.session.commit()
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "approve"))
    assert entry.actor_id is None and entry.actor_role == "staff"


def test_anonymising_a_registration_removes_the_free_text_of_its_entries(world):
    registrations.staff_cancel(world.confirmed.id, world.staff, "Frau Erste hat angerufen")
    from events.personal_data import delete_person

    delete_person("erste@example.org", world.staff)
    reasons = db.session.scalars(select(AuditEntry.reason).where(AuditEntry.object_type == "registration",
                                                                 AuditEntry.object_id == world.confirmed.id)).all()
    assert reasons and all(r == "" for r in reasons)


def test_audit_page_filters_and_csv_for_german_excel(world, client, login):
    lending.approve_request(world.request.id, world.staff)
    login(world.admin)
    page = client.get(f"/admin/audit?actor={world.staff.id}&kind=request").get_data(as_text=True)
    assert "genehmigt" in page and world.staff.name in page and "eingereicht" not in page
    everything = client.get("/admin/audit").get_data(as_text=True)
    assert "eingereicht" in everything
    response = client.get(f"/admin/audit.csv?actor={world.staff.id}")
    body = response.get_data()
    assert body.startswith("\ufeff".encode()) and response.headers["Content-Type"] == "text/csv; charset=utf-8"
    lines = body.decode("utf-8-sig").splitlines()
    assert lines[0].split(";")[:3] == ["Wann", "Wer", "Rolle"] and len(lines) == 2
    assert "genehmigt" in lines[1] and world.staff.name in lines[1]
    assert client.get("/admin/audit?start=kein-datum&page=99999999999").status_code == 200


def test_no_entry_when_the_action_is_refused(world, client, login):
    login(world.staff)
    lending.reject_request(world.request.id, world.staff, "nein")
    before = db.session.scalar(select(db.func.count()).select_from(AuditEntry))
    client.post(f"/requests/{world.request.id}/approve")  # refused: rejected already
    assert db.session.scalar(select(db.func.count()).select_from(AuditEntry)) == before
    assert db.session.get(Edition, world.brochure.editions[0].id).stock_on_hand == 100
    assert db.session.scalar(select(Organisation.id).where(Organisation.id == world.partner.organisation_id))


def test_erasing_a_participant_keeps_the_reason_the_training_was_cancelled(world):
    from events import trainings
    from events.personal_data import delete_person

    trainings.cancel_training(world.training.id, world.staff, "Referentin erkrankt")
    delete_person("erste@example.org", world.staff)
    reason = db.session.scalar(select(AuditEntry.reason).where(AuditEntry.object_type == "training",
                                                               AuditEntry.action == "cancel"))
    assert reason == "Referentin erkrankt"


def test_queueing_a_failed_mail_again_is_recorded(world, client, login):
    from core.mail import OutboxMessage, OutboxStatus

    message = OutboxMessage(message_id="<x@test>", to_addr="x@example.org", subject="S", raw=b"x",
                            status=OutboxStatus.FAILED)
    db.session.add(message)
    db.session.commit()
    login(world.admin)
    client.post(f"/admin/outbox/{message.id}/retry")
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "retry"))
    assert (entry.actor_id, entry.object_type, entry.object_id) == (world.admin.id, "mail", message.id)
    assert (entry.from_state, entry.to_state) == ("failed", "pending")


def test_history_details_show_dates_and_languages_as_people_read_them(app, client, login, make_material, make_user):
    """Issue 16: the history showed "2026-12-17" and "(tr)"; stored as data, they are shown as a date
    and a language name of the reader's language."""
    from materials.bookings import extend_booking

    staff, partner = make_user(Role.STAFF), make_user(Role.PARTNER)
    brochure = make_material(title="Ihre Rechte", editions={"tr": 10}).editions[0]
    kit = make_material(returnable=True, units={"de": ["HX-1"]}).editions[0]
    start = local_today() + timedelta(days=1)
    cart = add_to_cart(add_to_cart({}, brochure, quantity=3), kit, starts_on=start, ends_on=start + timedelta(days=2))
    request = submit_request(partner, cart, "history-words", "Fachtag", "", Delivery.PICKUP, "")
    lending.approve_request(request.id, staff)
    lending.hand_over(request.id, [b.id for b in request.bookings], staff, True, early_confirmed=True)
    new_end = start + timedelta(days=5)
    extend_booking(request.bookings[0].id, new_end, staff)
    login(staff)
    page = client.get(f"/requests/{request.id}").get_data(as_text=True)
    assert "3 × Ihre Rechte (Türkisch)" in page and "(tr)" not in page
    assert f"HX-1: {format_date(start + timedelta(days=2))} → {format_date(new_end)}" in page
    assert new_end.isoformat() not in page.split('id="history-heading"')[1]
