"""Partner requests: all-or-nothing submission, double submits, decisions, cancellation."""

import re
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from accounts.models import Role
from core.extensions import db
from core.i18n import format_date, local_today
from core.states import IllegalTransition
from materials.cart import add_to_cart, submit_request
from materials.errors import MaterialsError, Shortage
from materials.lending import approve_request, cancel_request, reject_request
from materials.models import Booking, BookingStatus, Delivery, Edition, Request, RequestStatus, StockEntry
from tests.conftest import run_concurrently

SOON = datetime.now(ZoneInfo("Europe/Berlin")).date() + timedelta(days=10)  # the site's today


def submit(user, cart, key=None):
    return submit_request(user, cart, key or uuid.uuid4().hex, "Fachtag Vermietung", "40 Beschäftigte",
                          Delivery.PICKUP, "")


def test_cart_checks_limits_and_stock(make_material):
    brochure = make_material(editions={"de": 30}, per_request_max=25).editions[0]
    cart = add_to_cart({}, brochure, quantity=20)
    with pytest.raises(MaterialsError, match="Höchstens 25 Exemplare pro Bestellung"):
        add_to_cart(cart, brochure, quantity=10)
    cart = add_to_cart(cart, brochure, quantity=5)
    assert cart["items"] == [{"edition_id": brochure.id, "quantity": 25}]
    with pytest.raises(MaterialsError, match="Geben Sie 1 oder mehr ein"):
        add_to_cart(cart, brochure, quantity=0)
    kit = make_material(returnable=True, loan_days_max=14).editions[0]
    with pytest.raises(MaterialsError, match="in der Vergangenheit"):
        add_to_cart(cart, kit, starts_on=local_today() - timedelta(days=1), ends_on=SOON)
    with pytest.raises(MaterialsError, match="vor dem Abholdatum"):
        add_to_cart(cart, kit, starts_on=SOON, ends_on=SOON - timedelta(days=1))
    with pytest.raises(MaterialsError, match="höchstens 14 Tage"):
        add_to_cart(cart, kit, starts_on=SOON, ends_on=SOON + timedelta(days=14))
    cart = add_to_cart(cart, kit, starts_on=SOON, ends_on=SOON + timedelta(days=3))
    assert len(cart["items"]) == 2


def test_adding_a_kit_checks_it_is_free_and_names_the_next_free_period(make_material, make_user):
    """Issue 16.9: availability is checked when adding to the request, not only at submit: a period
    nobody can have is refused at once with the next free period of the same length; the cart's own
    items count too."""
    other = make_user(Role.PARTNER)
    kit = make_material(returnable=True, units={"de": ["K-1"]}, buffer_days=2).editions[0]
    submit(other, add_to_cart({}, kit, starts_on=SOON, ends_on=SOON + timedelta(days=4)))  # K-1 taken to SOON+6
    with pytest.raises(MaterialsError) as refused:
        add_to_cart({}, kit, starts_on=SOON + timedelta(days=2), ends_on=SOON + timedelta(days=3))
    assert str(refused.value.message) == (
        f"Kein Exemplar ist vom {format_date(SOON + timedelta(days=2))} bis {format_date(SOON + timedelta(days=3))} "
        f"frei. Der nächste freie Zeitraum gleicher Länge ist vom {format_date(SOON + timedelta(days=7))} bis "
        f"{format_date(SOON + timedelta(days=8))}.")
    cart = add_to_cart({}, kit, starts_on=SOON + timedelta(days=7), ends_on=SOON + timedelta(days=8))
    with pytest.raises(MaterialsError, match="enthält bereits jedes Exemplar") as refused:
        add_to_cart(cart, kit, starts_on=SOON + timedelta(days=8), ends_on=SOON + timedelta(days=9))
    # ... and says when one more is free: after the cart's own period and its two buffer days.
    assert (f"ist vom {format_date(SOON + timedelta(days=11))} bis {format_date(SOON + timedelta(days=12))}."
            in str(refused.value.message))
    assert len(add_to_cart(cart, kit, starts_on=SOON + timedelta(days=11), ends_on=SOON + timedelta(days=12))
               ["items"]) == 2


def test_a_refused_add_shows_the_page_again_with_what_was_typed(client, make_material, make_user, login):
    """Issue 16.10: a form error keeps what was typed, and the copies field's maximum is the
    material's per-request maximum."""
    brochure = make_material(title="Flyer Vielfalt", editions={"de": 30}, per_request_max=25)
    login(make_user(Role.PARTNER))
    page = client.get(f"/materials/{brochure.id}").get_data(as_text=True)
    assert re.search(r'<input[^>]*id="quantity"[^>]*max="25"', page)
    refused = client.post(f"/requests/add/{brochure.id}", data={"edition_id": brochure.editions[0].id,
                                                                 "quantity": "26"})
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "Höchstens 25 Exemplare pro Bestellung" in html
    assert re.search(r'<input[^>]*id="quantity"[^>]*value="26"', html)
    assert client.get("/requests/cart").get_data(as_text=True).count("Flyer Vielfalt") == 0


def test_submit_takes_stock_and_books_units(make_material, make_user):
    partner = make_user(Role.PARTNER)
    brochure = make_material(editions={"de": 30}).editions[0]
    kit = make_material(returnable=True, units={"de": ["K-1", "K-2"]}).editions[0]
    cart = add_to_cart(add_to_cart({}, brochure, quantity=12), kit, starts_on=SOON, ends_on=SOON + timedelta(days=2))
    request = submit(partner, cart)
    assert request.status == RequestStatus.SUBMITTED and request.organisation_id == partner.organisation_id
    assert db.session.get(Edition, brochure.id).stock_on_hand == 18
    (booking,) = request.bookings
    assert booking.unit.inventory_code == "K-1" and booking.status == BookingStatus.RESERVED
    entry = db.session.scalar(select(StockEntry).where(StockEntry.request_id == request.id))
    assert entry.delta == -12 and entry.user_id == partner.id


def test_shortage_reserves_nothing_and_says_what_is_short(make_material, make_user):
    partner = make_user(Role.PARTNER)
    brochure = make_material(title="Flyer Beratung", editions={"de": 30}).editions[0]
    kit = make_material(title="Koffer Vielfalt", returnable=True, units={"de": ["K-1"]}).editions[0]
    cart = add_to_cart(add_to_cart({}, brochure, quantity=10), kit, starts_on=SOON, ends_on=SOON + timedelta(days=2))
    submit(make_user(Role.PARTNER), {"items": [cart["items"][1]]})  # someone else takes the kit
    change_to = db.session.get(Edition, brochure.id)
    change_to.stock_on_hand = 4  # and the flyers run low
    db.session.commit()
    with pytest.raises(Shortage) as caught:
        submit(partner, cart)
    problems = [str(p) for p in caught.value.problems]
    assert problems == [
        "Flyer Beratung: Nur noch 4 Exemplare vorhanden; angefragt waren 10.",
        f"Koffer Vielfalt: Kein Exemplar ist vom {SOON:%d.%m.%Y} bis {SOON + timedelta(days=2):%d.%m.%Y} frei.",
    ]
    assert db.session.get(Edition, brochure.id).stock_on_hand == 4
    assert db.session.scalar(select(func.count()).select_from(Request)) == 1  # only the other one


def test_double_submit_creates_one_request(app, make_material, make_user):
    partner = make_user(Role.PARTNER)
    brochure_id = make_material(editions={"de": 100}).editions[0].id
    cart = {"items": [{"edition_id": brochure_id, "quantity": 10}]}
    partner_id = partner.id

    def go(i):
        from accounts.models import User

        return submit(db.session.get(User, partner_id), cart, key="same-form").id

    results = run_concurrently(app, 8, go)
    assert len(set(results)) == 1, results
    assert db.session.scalar(select(func.count()).select_from(Request)) == 1
    assert db.session.get(Edition, brochure_id).stock_on_hand == 90


def test_concurrent_requests_for_the_last_brochures(app, make_material, make_user):
    """32 partners submit at once for 10 copies in all: exactly 10 are granted, nothing half-written."""
    users = [make_user(Role.PARTNER).id for _ in range(32)]
    brochure_id = make_material(editions={"de": 10}).editions[0].id

    def go(i):
        from accounts.models import User

        return submit(db.session.get(User, users[i]), {"items": [{"edition_id": brochure_id, "quantity": 1}]}).id

    results = run_concurrently(app, 32, go)
    granted = [r for r in results if isinstance(r, int)]
    assert len(granted) == 10
    assert all(isinstance(r, Shortage) for r in results if not isinstance(r, int))
    assert db.session.get(Edition, brochure_id).stock_on_hand == 0
    assert db.session.scalar(select(func.count()).select_from(Request)) == 10


def test_concurrent_requests_for_the_last_free_kit(app, make_material, make_user):
    users = [make_user(Role.PARTNER).id for _ in range(32)]
    edition_id = make_material(returnable=True, units={"de": ["K-1", "K-2"]}).editions[0].id
    item = {"edition_id": edition_id, "starts_on": SOON.isoformat(), "ends_on": (SOON + timedelta(days=3)).isoformat()}

    def go(i):
        from accounts.models import User

        return submit(db.session.get(User, users[i]), {"items": [item]}).id

    results = run_concurrently(app, 32, go)
    granted = [r for r in results if isinstance(r, int)]
    assert len(granted) == 2, [r for r in results if not isinstance(r, (int, Shortage))]
    bookings = db.session.scalars(select(Booking)).all()
    assert sorted(b.unit.inventory_code for b in bookings) == ["K-1", "K-2"]
    assert db.session.scalar(select(func.count()).select_from(Request)) == 2


@pytest.mark.parametrize("kind", ["brochures", "kits"])
def test_carts_in_opposite_order_never_deadlock(app, make_material, make_user, kind):
    """32 partners at once, half with A then B in their cart and half with B then A, ten rounds: on
    PostgreSQL each pair held one row the other waited for, one request ended in an error and was lost.
    Every request must be granted, and stock and bookings must add up exactly."""
    users = [make_user(Role.PARTNER).id for _ in range(32)]
    if kind == "brochures":
        editions = [make_material(editions={"de": 10_000}).editions[0].id for _ in range(2)]
    else:
        editions = [make_material(returnable=True, buffer_days=1, units={"de": [f"{name}-{n:02}" for n in range(32)]})
                    .editions[0].id for name in ("X", "Y")]

    def item(edition_id: int, round_: int) -> dict:
        if kind == "brochures":
            return {"edition_id": edition_id, "quantity": 1}
        start = SOON + timedelta(days=5 * round_)  # each round its own period
        return {"edition_id": edition_id, "starts_on": start.isoformat(), "ends_on": (start + timedelta(days=2)).isoformat()}

    for round_ in range(10):
        def go(i, round_=round_):
            from accounts.models import User

            order = editions if i % 2 else editions[::-1]
            return submit(db.session.get(User, users[i]), {"items": [item(e, round_) for e in order]}).id

        results = run_concurrently(app, 32, go)
        assert all(isinstance(r, int) for r in results), [r for r in results if not isinstance(r, int)]

    assert db.session.scalar(select(func.count()).select_from(Request)) == 320
    if kind == "brochures":
        assert [db.session.get(Edition, e).stock_on_hand for e in editions] == [10_000 - 320] * 2
        assert db.session.scalar(select(func.count()).select_from(StockEntry)) == 640
    else:
        per_unit = db.session.execute(select(Booking.unit_id, func.count()).group_by(Booking.unit_id)).all()
        assert len(per_unit) == 64 and {count for _unit, count in per_unit} == {10}


def test_reject_and_cancel_release_stock_and_units(make_material, make_user):
    partner, staff = make_user(Role.PARTNER), make_user(Role.STAFF)
    brochure = make_material(editions={"de": 20}).editions[0]
    kit = make_material(returnable=True, units={"de": ["K-1"]}).editions[0]
    cart = add_to_cart(add_to_cart({}, brochure, quantity=5), kit, starts_on=SOON, ends_on=SOON + timedelta(days=1))
    first = submit(partner, cart)
    reject_request(first.id, staff, "Bitte im Frühjahr erneut anfragen.")
    assert db.session.get(Edition, brochure.id).stock_on_hand == 20
    assert [b.status for b in first.bookings] == [BookingStatus.CANCELLED]
    with pytest.raises(IllegalTransition, match="inzwischen geändert"):
        approve_request(first.id, staff)

    second = submit(partner, cart)  # the kit is free again
    approve_request(second.id, staff)
    assert second.status == RequestStatus.APPROVED and second.decided_by_id == staff.id
    cancel_request(second.id, partner)
    assert db.session.get(Edition, brochure.id).stock_on_hand == 20
    reasons = [e.reason.value for e in db.session.scalars(select(StockEntry).order_by(StockEntry.id))]
    assert reasons == ["reserved", "cancelled", "reserved", "cancelled"]
    with pytest.raises(IllegalTransition):
        cancel_request(second.id, partner)


def test_rejecting_asks_first_and_mails_the_reason(client, login, make_material, make_user):
    """The request page links to a page that changes nothing, says what is released and who is
    mailed, and keeps a reason that is missing or too long at its field; the reason reaches the mail."""
    from core.mail import OutboxMessage
    from tests.conftest import mail_text

    partner, staff = make_user(Role.PARTNER), make_user(Role.STAFF)
    brochure = make_material(editions={"de": 20}).editions[0]
    kit = make_material(returnable=True, units={"de": ["K-1"]}).editions[0]
    cart = add_to_cart(add_to_cart({}, brochure, quantity=5), kit, starts_on=SOON, ends_on=SOON + timedelta(days=1))
    req = submit(partner, cart)
    login(staff)

    def mails():
        return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.to_addr == partner.email)
                                       .order_by(OutboxMessage.id)))

    before = len(mails())
    assert f'href="/requests/{req.id}/reject"' in client.get(f"/requests/{req.id}").get_data(as_text=True)
    page = client.get(f"/requests/{req.id}/reject").get_data(as_text=True)
    assert "Stück zurück in den Bestand: 5; beendete Exemplar-Buchungen: 1" in page
    assert "1 Adresse erhält eine E-Mail." in page and 'name="seen" value="submitted"' in page
    empty = client.post(f"/requests/{req.id}/reject", data={"seen": "submitted", "reason": " "})
    assert empty.status_code == 422 and "Bitte geben Sie den Grund an" in empty.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Request, req.id).status == RequestStatus.SUBMITTED and len(mails()) == before
    assert db.session.get(Edition, brochure.id).stock_on_hand == 15

    client.post(f"/requests/{req.id}/reject", data={"seen": "submitted", "reason": "Im Frühjahr wieder."})
    db.session.expire_all()
    assert db.session.get(Request, req.id).status == RequestStatus.REJECTED
    assert "Im Frühjahr wieder." in mail_text(mails()[-1]) and len(mails()) == before + 1
    gone = client.get(f"/requests/{req.id}/reject", follow_redirects=True).get_data(as_text=True)
    assert "inzwischen geändert" in gone and "Bestellung ablehnen und" not in gone


def test_partner_requests_through_the_pages_and_staff_approve(app, client, make_material, make_user, make_org, login):
    org = make_org(name="Wohnen am See eG")
    partner, colleague = make_user(Role.PARTNER, organisation=org), make_user(Role.PARTNER, organisation=org)
    outsider, staff = make_user(Role.PARTNER), make_user(Role.STAFF)
    brochure = make_material(title="Ihre Rechte", editions={"de": 50, "tr": 20}, per_request_max=30)
    kit = make_material(title="Ausstellung Vielfalt", returnable=True, units={"de": ["AV-1"]}, loan_days_max=28)
    login(partner)
    page = client.get(f"/materials/{brochure.id}").get_data(as_text=True)
    assert "Dieses Material anfragen" in page
    tr = [e for e in brochure.editions if e.language == "tr"][0]
    assert client.post(f"/requests/add/{brochure.id}", data={"edition_id": tr.id, "quantity": "15"}).status_code == 302
    too_many = client.post(f"/requests/add/{brochure.id}", data={"edition_id": tr.id, "quantity": "16"},
                           follow_redirects=True)
    assert "Höchstens 30 Exemplare pro Bestellung." in too_many.get_data(as_text=True)
    start = SOON.isoformat()
    end = (SOON + timedelta(days=6)).isoformat()
    client.post(f"/requests/add/{kit.id}", data={"edition_id": kit.editions[0].id, "starts_on": start, "ends_on": end})
    cart = client.get("/requests/cart").get_data(as_text=True)
    assert "Ihre Rechte" in cart and "Türkisch" in cart and "Ausstellung Vielfalt" in cart
    key = __import__("re").search(r'name="submit_key" type="hidden" value="([^"]+)"', cart).group(1)
    form = {"submit_key": key, "purpose": "Fachtag Vermietung", "audience": "40", "delivery": "pickup"}
    response = client.post("/requests/cart", data=form)
    assert response.status_code == 302
    again = client.post("/requests/cart", data=form)  # the double click
    assert db.session.scalar(select(func.count()).select_from(Request)) == 1
    assert again.status_code in (200, 302)
    request_url = response.headers["Location"]
    page = client.get(request_url).get_data(as_text=True)
    assert "Eingereicht" in page and "AV-1" in page and "15 × Ihre Rechte" in page

    client.post("/logout")
    login(colleague)
    assert client.get(request_url).status_code == 200
    assert "#" in client.get("/requests/").get_data(as_text=True)
    client.post("/logout")
    login(outsider)
    assert client.get(request_url).status_code == 403
    assert request_url not in client.get("/requests/").get_data(as_text=True)
    client.post("/logout")
    login(staff)
    request_id = int(request_url.rsplit("/", 1)[1])
    assert client.post(f"/requests/{request_id}/approve").status_code == 302
    assert db.session.get(Request, request_id).status == RequestStatus.APPROVED


def test_staff_hand_over_and_take_back_with_a_damaged_part(client, make_material, make_user, login):
    from materials.models import KitContent, Unit, UnitCondition

    partner, staff = make_user(Role.PARTNER), make_user(Role.STAFF)
    kit = make_material(title="Ausstellung Gleich behandeln", returnable=True, units={"de": ["GB-1"]})
    kit.contents = [KitContent(name="Roll-up-Display", quantity=4), KitContent(name="Transportkoffer", quantity=2)]
    db.session.commit()
    item = {"edition_id": kit.editions[0].id, "starts_on": SOON.isoformat(),
            "ends_on": (SOON + timedelta(days=5)).isoformat()}
    request = submit(partner, {"items": [item]})
    request_id, booking_id = request.id, request.bookings[0].id
    unit_id = request.bookings[0].unit_id
    login(staff)
    url = f"/requests/{request_id}"
    not_yet = client.post(f"{url}/hand-over", data={"booking_id": str(booking_id)}, follow_redirects=True)
    assert "inzwischen geändert" in not_yet.get_data(as_text=True)  # not approved yet
    client.post(f"{url}/approve")
    page = client.get(url).get_data(as_text=True)
    assert "4 × Roll-up-Display" in page
    unchecked = client.post(f"{url}/hand-over", data={"booking_id": str(booking_id), "early_confirmed": "y",
                                                      "form": "hand_over"})
    assert unchecked.status_code == 422 and "Prüfen Sie die Inhaltsliste" in unchecked.get_data(as_text=True)
    assert re.search(r'id="early_confirmed"[^>]*checked', unchecked.get_data(as_text=True))  # what was ticked stays
    assert db.session.get(Booking, booking_id).status == BookingStatus.RESERVED
    early = client.post(f"{url}/hand-over", data={"booking_id": str(booking_id), "contents_checked": "y",
                                                  "form": "hand_over"})
    assert early.status_code == 422
    early = early.get_data(as_text=True)
    assert f"GB-1 ist ab dem {format_date(SOON)} gebucht" in early  # issue 16.12: asks first, changes nothing
    assert db.session.get(Booking, booking_id).status == BookingStatus.RESERVED
    assert re.search(r'id="contents_checked"[^>]*checked', early) and not re.search(r'id="early_confirmed"[^>]*checked', early)
    client.post(f"{url}/hand-over", data={"booking_id": str(booking_id), "contents_checked": "y",
                                          "early_confirmed": "y"})
    assert db.session.get(Booking, booking_id).status == BookingStatus.HANDED_OVER
    assert db.session.get(Booking, booking_id).starts_on == local_today()  # the loan starts when it leaves
    assert db.session.get(Request, request_id).status == RequestStatus.HANDED_OVER

    no_note = client.post(f"/requests/bookings/{booking_id}/return", data={"condition": "incomplete", "note": ""},
                          follow_redirects=True)
    assert "Beschreiben Sie, was beschädigt ist oder fehlt." in no_note.get_data(as_text=True)
    client.post(f"/requests/bookings/{booking_id}/return",
                data={"condition": "incomplete", "note": "Ein Roll-up fehlt"})
    unit = db.session.get(Unit, unit_id)
    assert unit.condition == UnitCondition.INCOMPLETE and not unit.bookable
    assert db.session.get(Request, request_id).status == RequestStatus.RETURNED
    client.post(f"{url}/close")
    assert db.session.get(Request, request_id).status == RequestStatus.CLOSED
    with pytest.raises(MaterialsError):  # blocked from new bookings
        submit(partner, {"items": [item | {"starts_on": (SOON + timedelta(days=20)).isoformat(),
                                           "ends_on": (SOON + timedelta(days=22)).isoformat()}]})
    manage = client.get(f"/materials/{kit.id}/manage").get_data(as_text=True)
    assert "Ein Roll-up fehlt" in manage
    cleared = client.post(f"/materials/units/{unit_id}/clear")
    assert cleared.headers["Location"] == f"/materials/{kit.id}/manage"  # back where the button was
    assert db.session.get(Unit, unit_id).bookable


def test_the_overview_lists_blocked_units_with_the_bookings_that_sit_on_them(client, make_material, make_user,
                                                                            login):
    """A damaged kit reserved by two later requests: the overview names it, its damage, how many
    bookings wait for it and the next request to give another unit; a cleared unit leaves the list."""
    from materials import lending, units
    from materials.models import UnitCondition

    partner, staff = make_user(Role.PARTNER), make_user(Role.STAFF)
    kit = make_material(title="Ausstellung Gleich behandeln", returnable=True, units={"de": ["GB-1"]}, buffer_days=0)
    item = {"edition_id": kit.editions[0].id}
    period = lambda start, days: {"starts_on": (local_today() + timedelta(days=start)).isoformat(),  # noqa: E731
                                  "ends_on": (local_today() + timedelta(days=start + days)).isoformat()}
    now, later, latest = (submit(partner, {"items": [item | period(start, 2)]}) for start in (0, 10, 20))
    for req in (now, later, latest):
        lending.approve_request(req.id, staff)
    lending.hand_over(now.id, [now.bookings[0].id], staff, True, early_confirmed=True)
    login(staff)
    assert "Gesperrte Exemplare (0)" in client.get("/requests/overview").get_data(as_text=True)
    lending.take_back(now.bookings[0].id, staff, UnitCondition.DAMAGED, "Rahmen gebrochen")
    page = client.get("/requests/overview").get_data(as_text=True)
    section = page[page.index("Gesperrte Exemplare (1)"):page.index("Niedriger Bestand")]
    assert "GB-1" in section and "Rahmen gebrochen" in section and f"#{later.id}" in section
    assert "<td>2</td>" in section and f"#{latest.id}" not in section
    units.clear_unit(now.bookings[0].unit_id, staff)
    page = client.get("/requests/overview").get_data(as_text=True)
    assert "Gesperrte Exemplare (0)" in page and "Kein Exemplar ist gesperrt." in page


def test_mails_overview_reminders_and_extension(app, client, make_material, make_user, login, runner):
    from core.mail import OutboxMessage
    from materials.lending import send_overdue_reminders
    from materials.staff_lists import staff_overview

    partner, staff = make_user(Role.PARTNER, locale="en"), make_user(Role.STAFF)
    kit = make_material(title="Koffer Vielfalt", returnable=True, units={"de": ["KV-1"]}, buffer_days=2)
    make_material(title="Flyer", editions={"de": 5}, low_stock_threshold=10)
    start = local_today() + timedelta(days=2)
    item = {"edition_id": kit.editions[0].id, "starts_on": start.isoformat(),
            "ends_on": (start + timedelta(days=3)).isoformat()}
    request = submit(partner, {"items": [item]})
    subjects = sorted(m.subject for m in db.session.scalars(select(OutboxMessage)))
    assert subjects == ["Neue Materialbestellung", "We have received your request"]  # staff German, partner English

    overview = staff_overview(local_today())
    assert [r.id for r in overview.pending.rows] == [request.id] and overview.pending.total == 1
    assert [e.title for e in overview.low_stock.rows] == ["Flyer"]
    approve_request(request.id, staff)
    assert "Your request has been approved" in [m.subject for m in db.session.scalars(select(OutboxMessage))]
    assert [b.inventory_code for b in staff_overview(local_today()).pickups.rows] == ["KV-1"]

    # A later booking of the same unit limits how far the first can be extended.
    later = submit(make_user(Role.PARTNER), {"items": [item | {
        "starts_on": (start + timedelta(days=10)).isoformat(), "ends_on": (start + timedelta(days=12)).isoformat()}]})
    assert later.bookings
    booking_id = request.bookings[0].id
    login(staff)
    blocked = client.post(f"/requests/bookings/{booking_id}/extend",
                          data={"ends_on": (start + timedelta(days=9)).isoformat()}, follow_redirects=True)
    assert "anderweitig gebucht" in blocked.get_data(as_text=True)
    ok = client.post(f"/requests/bookings/{booking_id}/extend",
                     data={"ends_on": (start + timedelta(days=7)).isoformat()}, follow_redirects=True)
    assert "Das Rückgabedatum ist jetzt" in ok.get_data(as_text=True)
    assert db.session.get(Booking, booking_id).blocked_until == start + timedelta(days=9)

    # Handed over and not back in time: one reminder, not a second one the next day.
    from materials.lending import hand_over

    hand_over(request.id, [booking_id], staff, contents_checked=True, early_confirmed=True)
    later_day = start + timedelta(days=8)
    assert send_overdue_reminders(today=later_day) == 1
    assert send_overdue_reminders(today=later_day + timedelta(days=1)) == 0
    assert [b.id for b in staff_overview(later_day).overdue.rows] == [booking_id]
    reminder = db.session.scalar(select(OutboxMessage).where(OutboxMessage.subject == "Please return borrowed material"))
    assert "KV-1" in reminder.raw.decode() and reminder.to_addr == partner.email
    result = runner.invoke(args=["jobs", "run"])
    assert "overdue reminders: 0 sent" in result.output


def test_slip_and_csv_exports_for_german_excel(client, make_material, make_user, login):
    import csv
    import io

    from materials.models import KitContent, StockReason
    from materials.stock import change_stock

    partner, staff = make_user(Role.PARTNER), make_user(Role.STAFF, name="Jonas Weber")
    kit = make_material(title="Ausstellung Gleich behandeln", returnable=True, units={"de": ["GB-1"]})
    kit.contents = [KitContent(name="Roll-up-Display", quantity=4)]
    brochure = make_material(title="=Formel; \"Zitat\"", editions={"de": 40})
    db.session.commit()
    request = submit(partner, {"items": [
        {"edition_id": kit.editions[0].id, "starts_on": SOON.isoformat(), "ends_on": (SOON + timedelta(days=2)).isoformat()},
        {"edition_id": brochure.editions[0].id, "quantity": 7}]})
    change_stock(brochure.editions[0].id, 100, StockReason.INTAKE, staff, "Nachdruck")
    db.session.commit()
    login(staff)
    slip = client.get(f"/requests/{request.id}/slip").get_data(as_text=True)
    for text in ("Leihschein", "GB-1", "4 × Roll-up-Display", "Unterschrift Entleiher", partner.organisation.name):
        assert text in slip

    response = client.get("/requests/export/ledger.csv")
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["Content-Disposition"]
    raw = response.get_data()
    assert raw.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:4] == ["Wann", "Material", "Sprache", "Änderung"]
    by_note = {row[-1]: row for row in rows[1:]}
    assert by_note["Nachdruck"][3:7] == ["100", "133", "Zugang", "Jonas Weber"]
    assert rows[1][1] == "'=Formel; \"Zitat\""  # no formula, semicolon and quotes survive
    loans = list(csv.reader(io.StringIO(client.get(
        f"/requests/export/loans.csv?from={SOON.isoformat()}&to={SOON.isoformat()}").get_data().decode("utf-8-sig")),
        delimiter=";"))
    assert loans[1][:4] == ["Ausstellung Gleich behandeln", "GB-1", SOON.strftime("%d.%m.%Y"),
                            (SOON + timedelta(days=2)).strftime("%d.%m.%Y")]
    assert len(list(csv.reader(io.StringIO(client.get(
        "/requests/export/loans.csv?from=2020-01-01&to=2020-01-02").get_data().decode("utf-8-sig"))))) == 1
    bad = client.get("/requests/export/loans.csv?from=gestern", follow_redirects=True)
    assert bad.status_code == 200 and "ist kein Datum" in bad.get_data(as_text=True)
    # Issue 16.13: the ledger names what happened, and languages by name.
    (reserved,) = [row for row in rows[1:] if row[3] == "-7"]
    assert reserved[2] == "Deutsch" and reserved[5] == f"Reserviert für Bestellung Nr. {request.id}"
    from materials import lending

    lending.approve_request(request.id, staff)
    lending.hand_over(request.id, [b.id for b in request.bookings], staff, True, early_confirmed=True)
    rows = list(csv.reader(io.StringIO(client.get("/requests/export/ledger.csv").get_data().decode("utf-8-sig")),
                           delimiter=";"))
    assert [row[3:7] for row in rows[1:] if row[3] == "0"] == [
        ["0", "133", f"Ausgegeben mit Bestellung Nr. {request.id}", "Jonas Weber"]]
    manage = client.get(f"/materials/{brochure.id}/manage").get_data(as_text=True)
    assert f"Ausgegeben mit Bestellung Nr. {request.id}" in manage
    assert __import__("re").fullmatch(r"\d\d\.\d\d\.\d{4} \d\d:\d\d", rows[1][0])  # a date-time to LibreOffice



def test_unit_page_history_and_qr_labels(client, make_material, make_user, login):
    import re

    partner, staff = make_user(Role.PARTNER), make_user(Role.STAFF)
    kit = make_material(title="Koffer Vielfalt", returnable=True, units={"de": ["KV-1", "KV-2"]})
    item = {"edition_id": kit.editions[0].id, "starts_on": SOON.isoformat(),
            "ends_on": (SOON + timedelta(days=2)).isoformat()}
    request = submit(partner, {"items": [item]})
    unit_id = request.bookings[0].unit_id
    login(staff)
    page = client.get(f"/materials/units/{unit_id}").get_data(as_text=True)
    assert "KV-1" in page and partner.organisation.name in page and f"/requests/{request.id}" in page
    assert "Reserviert" in page and "Nächste Abholung" in page
    labels = client.get(f"/materials/{kit.id}/labels").get_data(as_text=True)
    assert labels.count("<svg") == 2 and "KV-2" in labels
    import segno

    expected = segno.make(f"http://fundus.test/materials/units/{unit_id}", error="m").svg_inline(scale=3)
    assert expected in labels  # the code opens the unit's staff page
    assert not re.search(r"<script(?![^>]*\bsrc=)", labels) and not re.search(r"\sstyle=", labels)  # nothing inline


def test_staff_see_one_organisations_history(client, make_material, make_user, make_org, login):
    first, second = make_org(name="Erste eG"), make_org(name="Zweite eG")
    brochure = make_material(editions={"de": 50}).editions[0]
    mine = submit(make_user(Role.PARTNER, organisation=first), {"items": [{"edition_id": brochure.id, "quantity": 1}]})
    other = submit(make_user(Role.PARTNER, organisation=second), {"items": [{"edition_id": brochure.id, "quantity": 2}]})
    login(make_user(Role.STAFF))
    page = client.get(f"/requests/?organisation={first.id}").get_data(as_text=True)
    assert f"/requests/{mine.id}\"" in page and f"/requests/{other.id}\"" not in page and "Erste eG" in page
    assert f"/requests/?organisation={first.id}" in client.get(f"/organisations/{first.id}").get_data(as_text=True)
    assert client.get("/requests/?organisation=99999").status_code == 404


def test_staff_change_the_assigned_unit(client, make_material, make_user, login):
    partner, staff = make_user(Role.PARTNER), make_user(Role.STAFF)
    kit = make_material(returnable=True, units={"de": ["K-1", "K-2", "K-3"], "en": ["K-9"]})
    item = {"edition_id": kit.editions[0].id, "starts_on": SOON.isoformat(),
            "ends_on": (SOON + timedelta(days=2)).isoformat()}
    first = submit(partner, {"items": [item]})
    submit(partner, {"items": [item]})  # takes K-2
    booking_id = first.bookings[0].id
    login(staff)
    page = client.get(f"/requests/{first.id}").get_data(as_text=True)
    assert ">K-3<" in page and ">K-2<" not in page and ">K-9<" not in page  # free, same edition only
    k2, k3 = sorted((u for u in kit.editions[0].units if u.inventory_code != "K-1"), key=lambda u: u.inventory_code)
    clash = client.post(f"/requests/bookings/{booking_id}/reassign", data={"unit_id": str(k2.id)}, follow_redirects=True)
    assert "nicht mehr verfügbar" in clash.get_data(as_text=True)
    other_edition = kit.editions[1].units[0]
    wrong = client.post(f"/requests/bookings/{booking_id}/reassign", data={"unit_id": str(other_edition.id)},
                        follow_redirects=True)
    assert "derselben Ausgabe" in wrong.get_data(as_text=True)
    client.post(f"/requests/bookings/{booking_id}/reassign", data={"unit_id": str(k3.id)})
    assert db.session.get(Booking, booking_id).unit.inventory_code == "K-3"


def test_a_submit_key_of_another_organisation_is_refused(make_material, make_user):
    brochure = make_material(editions={"de": 10}).editions[0]
    cart = {"items": [{"edition_id": brochure.id, "quantity": 1}]}
    submit(make_user(Role.PARTNER), cart, key="k")
    with pytest.raises(MaterialsError, match="schon gesendet"):
        submit(make_user(Role.PARTNER), cart, key="k")


def test_staff_approve_fewer_copies_with_a_reason_and_the_mail_gives_pickup_details(app, client, make_material,
                                                                                     make_user, login):
    """Issue 16.11: fewer copies than asked for, with a reason that goes into the mail (and back into
    stock); the approval mail says where and when to pick up, and the booked dates."""
    from core.mail import OutboxMessage
    from tests.conftest import mail_text

    app.config["ORG_OPENING_HOURS"] = "Mo–Do 10–16 Uhr"
    partner, staff = make_user(Role.PARTNER, name="Petra Partner"), make_user(Role.STAFF)
    brochure = make_material(title="Ihre Rechte", editions={"de": 40})
    kit = make_material(title="Koffer Vielfalt", returnable=True, units={"de": ["KV-1"]},
                        pickup_notes="Bitte mit dem Auto kommen.")
    request = submit(partner, {"items": [
        {"edition_id": brochure.editions[0].id, "quantity": 20},
        {"edition_id": kit.editions[0].id, "starts_on": SOON.isoformat(),
         "ends_on": (SOON + timedelta(days=2)).isoformat()}]})
    line_id, request_id = request.lines[0].id, request.id
    login(staff)
    page = client.get(f"/requests/{request_id}").get_data(as_text=True)
    assert re.search(rf'<input[^>]*id="quantity-{line_id}"[^>]*value="20"[^>]*max="20"', page)

    no_reason = client.post(f"/requests/{request_id}/approve", data={f"quantity-{line_id}": "12", "seen": "submitted",
                                                                     "form": "approve"})
    assert no_reason.status_code == 422 and "Bitte geben Sie den Grund" in no_reason.get_data(as_text=True)
    assert re.search(rf'id="quantity-{line_id}"[^>]*value="12"', no_reason.get_data(as_text=True))  # kept
    for bad in ("0", "21", "-3", "zwölf"):
        refused = client.post(f"/requests/{request_id}/approve", data={f"quantity-{line_id}": bad, "form": "approve",
                                                                        "reason": "Nur noch wenige da"})
        assert refused.status_code == 422 and "Nur noch wenige da</textarea>" in refused.get_data(as_text=True), bad
    db.session.expire_all()
    assert db.session.get(Request, request_id).status == RequestStatus.SUBMITTED
    assert db.session.get(Edition, brochure.editions[0].id).stock_on_hand == 20

    client.post(f"/requests/{request_id}/approve", data={f"quantity-{line_id}": "12", "seen": "submitted",
                                                         "reason": "Die zweite Auflage kommt erst im März."})
    db.session.expire_all()
    approved = db.session.get(Request, request_id)
    assert approved.status == RequestStatus.APPROVED
    assert (approved.lines[0].quantity, approved.lines[0].requested) == (12, 20)
    assert db.session.get(Edition, brochure.editions[0].id).stock_on_hand == 28
    mail = mail_text(db.session.scalars(select(OutboxMessage).where(OutboxMessage.to_addr == partner.email)
                                        .order_by(OutboxMessage.id.desc())).first())
    for text in ("12 statt 20 × Ihre Rechte (Deutsch)", "Die zweite Auflage kommt erst im März.",
                 "Schützenstraße 42, 44147 Dortmund", "Mo–Do 10–16 Uhr", "Bitte mit dem Auto kommen.",
                 f"{format_date(SOON)} – {format_date(SOON + timedelta(days=2))}"):
        assert text in mail, text
    assert "Das erhalten Sie:\n- 12 × Ihre Rechte (Deutsch)" in mail.replace("\r\n", "\n")  # the list says what it is
    page = client.get(f"/requests/{request_id}").get_data(as_text=True)
    assert "20 bestellt" in page and "Die zweite Auflage kommt erst im März." in page


def test_cancelling_asks_first_and_staff_tell_the_partner_why(app, client, login, make_material, make_user):
    """An approved request is not ended by one click: the page asks first and says what is released;
    staff give a reason, which goes into a mail to the partner and stays on the request page; a
    partner cancelling their own request mails nobody."""
    from core.mail import OutboxMessage
    from tests.conftest import mail_text

    partner, staff = make_user(Role.PARTNER), make_user(Role.STAFF)
    brochure = make_material(editions={"de": 20}).editions[0]
    kit = make_material(returnable=True, units={"de": ["K-1"]}).editions[0]
    cart = add_to_cart(add_to_cart({}, brochure, quantity=5), kit, starts_on=SOON, ends_on=SOON + timedelta(days=1))
    req = submit(partner, cart)
    approve_request(req.id, staff)

    def mails():
        return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.to_addr == partner.email)
                                       .order_by(OutboxMessage.id)))

    before = len(mails())
    login(staff)
    detail = client.get(f"/requests/{req.id}").get_data(as_text=True)
    assert f'href="/requests/{req.id}/cancel"' in detail  # a link to a page that asks, no button that acts
    page = client.get(f"/requests/{req.id}/cancel").get_data(as_text=True)
    assert "Stück zurück in den Bestand: 5; beendete Exemplar-Buchungen: 1" in page
    assert "1 Adresse erhält eine E-Mail." in page and 'name="reason"' in page
    empty = client.post(f"/requests/{req.id}/cancel", data={"seen": "approved", "reason": ""})
    assert empty.status_code == 422 and "Bitte geben Sie den Grund an" in empty.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Request, req.id).status == RequestStatus.APPROVED and len(mails()) == before

    client.post(f"/requests/{req.id}/cancel", data={"seen": "approved", "reason": "Die Ausstellung ist defekt."})
    db.session.expire_all()
    assert db.session.get(Request, req.id).status == RequestStatus.CANCELLED
    assert db.session.get(Edition, brochure.id).stock_on_hand == 20
    assert len(mails()) == before + 1 and "Die Ausstellung ist defekt." in mail_text(mails()[-1])
    assert "Die Bestellung enthielt:" in mail_text(mails()[-1]) and "(K-1)" in mail_text(mails()[-1])  # the kit too
    assert "storniert" in mails()[-1].subject
    client = app.test_client()
    login(partner, the_client=client)
    assert "Die Ausstellung ist defekt." in client.get(f"/requests/{req.id}").get_data(as_text=True)

    own = submit(partner, cart)
    page = client.get(f"/requests/{own.id}/cancel").get_data(as_text=True)
    assert "Niemand erhält eine E-Mail." in page and 'name="reason"' not in page
    count = len(mails())
    client.post(f"/requests/{own.id}/cancel", data={"seen": "submitted"})
    db.session.expire_all()
    assert db.session.get(Request, own.id).status == RequestStatus.CANCELLED and len(mails()) == count
