"""Training registration: double opt-in, one registration per address, seats and the waiting list."""

import email
import email.policy
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from accounts.models import Role
from core.audit import AuditEntry
from core.extensions import db
from core.mail import OutboxMessage
from core.models import utcnow
from core.privacy import PRIVACY_VERSION
from events.errors import EventsError
from events.models import Registration, RegistrationStatus, TrainingStatus
from events.registrations import cancel_registration, confirm_registration, register
from events.seats import expire_holds
from tests.conftest import all_rows, mail_text, run_concurrently, without_tokens


def links(address: str) -> dict[str, str]:
    """The confirm and manage paths from the last mail to ``address``."""
    mail = db.session.scalars(select(OutboxMessage).where(OutboxMessage.to_addr == address)
                              .order_by(OutboxMessage.id.desc())).first()
    text = mail_text(mail)
    found = {}
    for kind, pattern in (("confirm", r"/events/registrations/confirm/[\w-]+"), ("manage", r"/events/registrations/(?!confirm)[\w-]+")):
        match = re.search(pattern, text)
        if match:
            found[kind] = match.group(0)
    return found


def statuses(training_id: int) -> list[str]:
    return [r.status.value for r in db.session.scalars(
        select(Registration).where(Registration.training_id == training_id).order_by(Registration.id))]


def test_register_confirm_and_cancel_through_the_links(client, make_training):
    training = make_training(seats=2)
    register(training.id, "Ayşe Kaya", "Ayse.Kaya@Example.org", "Wohnen am See eG", "Vermietung")
    paths = links("ayse.kaya@example.org")
    page = client.get(paths["manage"]).get_data(as_text=True)
    assert "Warten auf Bestätigung der E-Mail-Adresse" in page
    opened = client.get(paths["confirm"])  # a mail scanner opens the link first: nothing changes
    assert opened.status_code == 200 and "Meine Anmeldung bestätigen" in opened.get_data(as_text=True)
    assert statuses(training.id) == ["pending"]
    confirmed = client.post(paths["confirm"], follow_redirects=True)
    assert confirmed.status_code == 200 and "Ihre E-Mail-Adresse ist bestätigt" in confirmed.get_data(as_text=True)
    assert statuses(training.id) == ["confirmed"]
    assert client.post(paths["confirm"], follow_redirects=True).status_code == 200  # a double click is harmless
    subjects = [m.subject for m in db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]
    assert subjects == ["Bitte bestätigen Sie Ihre Anmeldung", "Ihre Anmeldung ist bestätigt"]
    client.post(paths["manage"] + "/cancel")
    assert statuses(training.id) == ["cancelled"]
    reopened = client.get(paths["confirm"])  # the old confirmation link no longer says "confirmed"
    assert reopened.status_code == 410 and "bestätigt" not in reopened.get_data(as_text=True)
    assert client.get("/events/registrations/nonsense").status_code == 404
    assert client.get("/events/registrations/confirm/nonsense").status_code == 410


def test_same_address_registers_once_and_gets_the_link_again(make_training):
    training = make_training()
    first = register(training.id, "A", "a@example.org")
    again = register(training.id, "A", "A@example.org ")
    assert again.existing and again.registration.id == first.registration.id
    assert db.session.scalar(select(func.count()).select_from(Registration)) == 1
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 2  # confirm + link again


@pytest.mark.parametrize("seats", [5, 1], ids=["a seat is free", "full"])
def test_registering_again_answers_as_a_new_registration_and_mails_the_address(client, make_training, seats):
    """Whoever registers with an address already booked learns nothing: the page (and the way there)
    is the one a new address gets; nothing changes but one mail to that address with its manage link."""
    training = make_training(seats=seats)
    register(training.id, "Erste Person", "erste@example.org")
    register(training.id, "Bekannte Person", "bekannt@example.org")  # full: first on the waiting list
    own_link = links("bekannt@example.org")["manage"]
    form = {"name": "Nora Neu", "email": "", "organisation": "Wohnbau Süd"}
    before = all_rows()
    known = client.post(f"/events/{training.id}", data=form | {"email": "Bekannt@example.org"})
    after = all_rows()
    page_after_known = without_tokens(client.get(f"/events/{training.id}").get_data(as_text=True))
    new = client.post(f"/events/{training.id}", data=form | {"email": "neu@example.org"})
    page_after_new = without_tokens(client.get(f"/events/{training.id}").get_data(as_text=True))

    assert known.status_code == new.status_code == 200 and known.location == new.location
    assert without_tokens(known.get_data(as_text=True)) == without_tokens(new.get_data(as_text=True))
    # Nor does the training page tell: a new registration took a seat (or a waiting place), the
    # repeated one did not, and the public page shows no number that would change with it.
    assert page_after_known == page_after_new
    if seats == 1:
        assert "Sie stehen auf der Warteliste" in new.get_data(as_text=True)
        assert "Platz 2" in mail_text(db.session.scalars(select(OutboxMessage).where(
            OutboxMessage.to_addr == "neu@example.org")).one())  # the place goes only to the address
    assert {k: v for k, v in after.items() if k != "outbox_messages"} == \
        {k: v for k, v in before.items() if k != "outbox_messages"}
    assert len(after["outbox_messages"]) == len(before["outbox_messages"]) + 1
    told = db.session.scalars(select(OutboxMessage).where(OutboxMessage.to_addr == "bekannt@example.org")
                              .order_by(OutboxMessage.id.desc())).first()
    assert told.kind == "events/manage_link" and own_link in mail_text(told)
    assert "bereits angemeldet" in mail_text(told)


def test_waiting_list_is_promoted_on_cancel_and_on_expiry(make_training):
    training = make_training(seats=2)
    tokens = [register(training.id, f"P{i}", f"p{i}@example.org").token for i in range(4)]
    assert statuses(training.id) == ["pending", "pending", "waiting", "waiting"]
    cancel_registration(tokens[0])
    assert statuses(training.id) == ["cancelled", "pending", "pending", "waiting"]
    promoted = db.session.scalars(select(OutboxMessage).where(OutboxMessage.to_addr == "p2@example.org")
                                  .order_by(OutboxMessage.id)).all()
    assert promoted[-1].subject == "Ein Platz ist für Sie frei geworden"
    # p1 never confirms: the hold runs out, the seat goes to p3.
    db.session.execute(update(Registration).where(Registration.email == "p1@example.org")
                       .values(hold_expires_at=utcnow() - timedelta(minutes=1)))
    db.session.commit()
    assert expire_holds() == 1
    assert statuses(training.id) == ["cancelled", "expired", "pending", "pending"]


def test_registration_rules(make_training):
    past_start = utcnow() - timedelta(hours=1)
    started = make_training(sessions=[(past_start, past_start + timedelta(hours=3))])
    with pytest.raises(EventsError, match="hat schon begonnen"):
        register(started.id, "A", "a@example.org")
    draft = make_training(status=TrainingStatus.DRAFT)
    with pytest.raises(EventsError, match="nicht möglich"):
        register(draft.id, "A", "a@example.org")
    closed = make_training(registration_closes_at=utcnow() - timedelta(days=1))
    with pytest.raises(EventsError, match="geschlossen"):
        register(closed.id, "A", "a@example.org")
    with pytest.raises(EventsError, match="ungültig"):
        confirm_registration("no-such-token")


def test_64_concurrent_registrations_for_10_seats(app, make_training):
    """Never more seat holders than seats; everyone else waits, in a consistent order, without errors."""
    training_id = make_training(seats=10).id
    results = run_concurrently(
        app, 64, lambda i: register(training_id, f"Person {i}", f"person{i}@example.org").registration.id
    )
    assert all(isinstance(r, int) for r in results), [r for r in results if not isinstance(r, int)]
    rows = db.session.scalars(select(Registration).where(Registration.training_id == training_id)
                              .order_by(Registration.id)).all()
    assert len(rows) == 64
    assert [r.status for r in rows[:10]] == [RegistrationStatus.PENDING] * 10  # first come, first served
    assert {r.status for r in rows[10:]} == {RegistrationStatus.WAITING}


def test_feeds_with_etag_304_and_target_group_filter(client, make_training):
    import icalendar

    from events.models import TrainingStatus

    housing = make_training(title="Vermietung ohne Diskriminierung", target_groups="housing")
    make_training(title="Beratungspraxis", target_groups="counselling")
    make_training(title="Entwurf", status=TrainingStatus.DRAFT)
    response = client.get(f"/events/{housing.id}.ics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert response.headers["ETag"] and response.headers["Last-Modified"]
    again = client.get(f"/events/{housing.id}.ics", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304 and again.get_data() == b""
    events = icalendar.Calendar.from_ical(response.get_data()).walk("VEVENT")
    assert str(events[0]["url"]) == f"http://fundus.test/events/{housing.id}"

    def summaries(url):
        return [str(e["summary"]) for e in icalendar.Calendar.from_ical(client.get(url).get_data()).walk("VEVENT")]

    assert sorted(summaries("/events/calendar.ics")) == ["Beratungspraxis", "Vermietung ohne Diskriminierung"]
    assert summaries("/events/calendar.ics?target_group=housing") == ["Vermietung ohne Diskriminierung"]
    page = client.get(f"/events/{housing.id}").get_data(as_text=True)
    assert "Plätze frei" in page and f"webcal://fundus.test/events/{housing.id}.ics" in page
    assert client.get(f"/events/{housing.id + 2}").status_code == 404  # the draft


def test_programme_by_first_session_with_month_filter_and_pages(client, make_training):
    from datetime import UTC, datetime

    def at(*args):  # Berlin wall-clock time as UTC: 1 Dec 00:30 in Berlin is still November in UTC
        from core.i18n import from_local

        return from_local(datetime(*args))

    def titles(url):
        return re.findall(r'<h2><a href="/events/\d+">([^<]+)</a>', client.get(url).get_data(as_text=True))

    later = make_training(title="Zweiteilig", sessions=[(at(2099, 12, 1, 0, 30), at(2099, 12, 1, 2)),
                                                        (at(2099, 12, 8, 9), at(2099, 12, 8, 12))])
    make_training(title="Im November", sessions=[(at(2099, 11, 30, 23), at(2099, 11, 30, 23, 45))])
    past = datetime.now(UTC) - timedelta(days=3)
    make_training(title="Vorbei", sessions=[(past, past + timedelta(hours=2))])
    assert titles("/events/") == ["Im November", "Zweiteilig"]
    assert titles("/events/?month=2099-12") == ["Zweiteilig"]  # by the first session, in Berlin time
    assert titles("/events/?month=2099-11") == ["Im November"]
    for bad in ("2099-13", "abcd-ef", "2099-1", "9"):  # not a month: the whole programme, no error
        response = client.get(f"/events/?month={bad}")
        assert response.status_code == 200 and titles(f"/events/?month={bad}") == ["Im November", "Zweiteilig"]

    start = at(2098, 1, 5, 9)
    for day in range(21):
        make_training(title=f"Reihe {day:02}", sessions=[(start + timedelta(days=day), start + timedelta(days=day, hours=3))])
    first = client.get("/events/?format=in-person").get_data(as_text=True)
    assert titles("/events/?format=in-person") == [f"Reihe {day:02}" for day in range(20)]
    assert "Seite 1 von 2" in first and "/events/?page=2&amp;format=in-person" in first
    assert titles("/events/?format=in-person&page=2") == ["Reihe 20", "Im November", later.title]


def test_trainee_finds_registers_confirms_and_cancels(client, make_training):
    from events.models import TrainingFormat

    training = make_training(seats=1, title="AGG kompakt", target_groups="housing", ask_dietary=True,
                             free_question="Welche Fälle bringen Sie mit?")
    make_training(title="Online-Workshop Beratung", format=TrainingFormat.ONLINE, target_groups="counselling")
    programme = client.get("/events/?target_group=housing").get_data(as_text=True)
    assert "AGG kompakt" in programme and "Online-Workshop" not in programme
    assert "Online-Workshop" in client.get("/events/?format=online").get_data(as_text=True)
    page = client.get(f"/events/{training.id}").get_data(as_text=True)
    assert "Welche Fälle bringen Sie mit?" in page and "Verpflegungswünsche" in page
    assert "Bedarfe an Barrierefreiheit" not in page  # not asked for this training

    assert "Ich willige ein" not in page.split("Verpflegungswünsche")[0]  # the data the training needs: no consent
    assert re.search(r'<input id="health_consent" name="health_consent" type="checkbox" value="y"', page)  # unticked
    # Dietary needs can be health data: not without the explicit, separate consent.
    missing = client.post(f"/events/{training.id}", data={"name": "Jan", "email": "jan@example.org",
                                                         "dietary": "vegetarisch"})
    assert "geben Sie bitte hier Ihre Einwilligung" in missing.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Registration)) == 0
    done = client.post(f"/events/{training.id}", data={"name": "Jan Nowak", "email": "jan@example.org",
                                                      "dietary": "vegetarisch", "free_answer": "Zwei Fälle",
                                                      "health_consent": "y"})
    assert "Wir halten einen Platz für Sie frei." in done.get_data(as_text=True)
    registration = db.session.scalar(select(Registration))
    assert registration.answers == '{"dietary": "vegetarisch", "free_answer": "Zwei Fälle"}'
    assert registration.health_consent_at is not None and registration.privacy_version == PRIVACY_VERSION
    full = client.post(f"/events/{training.id}", data={"name": "Eva", "email": "eva@example.org"})
    assert db.session.scalar(select(Registration.health_consent_at).where(Registration.name == "Eva")) is None
    assert "Sie stehen auf der Warteliste" in full.get_data(as_text=True)

    paths = links("jan@example.org")
    client.get(paths["confirm"])
    client.post(paths["manage"] + "/cancel")
    assert statuses(training.id) == ["cancelled", "pending"]  # Eva moved up


def _registration(i: int, email: str | None = None) -> dict:
    return {"name": f"Flut {i}", "email": email or f"flut{i}@example.org", "consent": "y"}


def _mails_to(address: str) -> int:
    return db.session.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.to_addr == address))


def test_a_registration_flood_from_one_client_is_refused_after_the_limit(make_app, make_training):
    training = make_training(seats=100)
    client = make_app(RATELIMIT_ENABLED=True, REGISTRATION_RATE_LIMIT="5 per minute").test_client()
    codes = [client.post(f"/events/{training.id}", data=_registration(i)).status_code for i in range(8)]
    assert codes == [200] * 5 + [429] * 3
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Registration)) == 5
    refused = client.post(f"/events/{training.id}", data=_registration(9)).get_data(as_text=True)
    assert "Zu viele Anfragen" in refused
    # Another client still registers; looking at the page is never limited.
    other = client.post(f"/events/{training.id}", data=_registration(10), environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 200
    assert client.get(f"/events/{training.id}").status_code == 200


def test_one_address_is_mailed_a_bounded_number_of_times_from_any_client(make_app, make_training):
    """Registering an address again re-sends its link; from many clients, only up to the limit."""
    trainings = [make_training(seats=5), make_training(seats=5)]
    client = make_app(RATELIMIT_ENABLED=True, ADDRESS_RATE_LIMIT="3 per hour").test_client()
    # Forms sent invalid on purpose with someone's address mail nobody and do not use up their limit.
    invalid = [client.post(f"/events/{trainings[0].id}", data={"email": "opfer@example.org"},
                           environ_base={"REMOTE_ADDR": f"10.0.3.{i}"}).status_code for i in range(5)]
    assert invalid == [200] * 5
    codes = [
        client.post(f"/events/{trainings[i % 2].id}", data=_registration(i, "Opfer@Example.org"),
                    environ_base={"REMOTE_ADDR": f"10.0.1.{i}"}).status_code
        for i in range(7)
    ]
    assert codes == [200] * 3 + [429] * 4
    db.session.rollback()
    assert _mails_to("opfer@example.org") == 3  # two confirmation requests, one link again
    # The link to "my registrations" counts per address too.
    asked = [client.post("/my/registrations", data={"email": "opfer@example.org"},
                         environ_base={"REMOTE_ADDR": f"10.0.2.{i}"}).status_code for i in range(4)]
    assert asked == [200] * 3 + [429]
    assert client.post(f"/events/{trainings[0].id}", data=_registration(1, "andere@example.org")).status_code == 200


def test_staff_end_a_flood_of_unconfirmed_registrations_and_real_people_move_up(client, login, make_user,
                                                                               make_training):
    """A flood nobody confirms need not push real people onto the waiting list for the hold time:
    staff end its registrations, held seats and waiting places alike, and the seats go to the people
    behind it. Nothing is ticked to begin with; whoever confirmed meanwhile is kept."""
    training = make_training(seats=3)
    flood = [register(training.id, f"Flut {i}", f"flut{i}@example.org") for i in range(5)]
    register(training.id, "Mara Schulz", "mara@example.org")
    register(training.id, "Jonas Berg", "jonas@example.org")
    assert statuses(training.id) == ["pending"] * 3 + ["waiting"] * 4
    for address in ("flut0@example.org", "mara@example.org"):  # real people after all; Mara is still waiting
        confirm_registration(links(address)["confirm"].rsplit("/", 1)[1])
    login(make_user(Role.STAFF))
    listing = client.get(f"/events/staff/{training.id}").get_data(as_text=True)
    assert "Unbestätigte Anmeldungen (5)" in listing  # flut1–4 and Jonas
    page = client.get(f"/events/staff/{training.id}/holds").get_data(as_text=True)
    assert "flut4@example.org" in page and "jonas@example.org" in page and "mara@example.org" not in page
    assert "erhalten keine Mail" in page and "checked" not in page and 'autocomplete="off"' in page
    db.session.rollback()
    mails_before = db.session.scalar(select(func.count()).select_from(OutboxMessage))
    # The post names flut0 too, as a page opened before it confirmed would: it is kept.
    chosen = [str(result.registration.id) for result in flood]
    done = client.post(f"/events/staff/{training.id}/holds", data={"registration": chosen, "scope": "chosen"},
                       follow_redirects=True)
    assert "Beendete Anmeldungen: 4. Von der Warteliste nachgerückt: 2." in done.get_data(as_text=True)
    db.session.rollback()
    assert statuses(training.id) == ["confirmed"] + ["expired"] * 4 + ["confirmed", "pending"]
    recipients = sorted(m.to_addr for m in db.session.scalars(select(OutboxMessage).offset(mails_before)))
    assert recipients == ["jonas@example.org", "mara@example.org"]  # the flood is not mailed
    for action, count in (("release", 4), ("promote", 2)):
        entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)).all()
        assert len(entries) == count and all(e.actor_role == "staff" for e in entries)  # not "automatic"
    # A second press, or "end all" from a page opened before: nothing is left to end, and it says so.
    again = client.post(f"/events/staff/{training.id}/holds", data={"listed": chosen[1:], "scope": "all"},
                        follow_redirects=True).get_data(as_text=True)
    assert "Nichts geändert" in again and "Beendete Anmeldungen" not in again
    nothing = client.post(f"/events/staff/{training.id}/holds", data={"scope": "chosen"}, follow_redirects=True)
    assert "Es wurde nichts ausgewählt" in nothing.get_data(as_text=True)
    assert client.post(f"/events/staff/{training.id}/holds", data={"registration": "x1"}).status_code == 400
    db.session.rollback()
    assert statuses(training.id) == ["confirmed"] + ["expired"] * 4 + ["confirmed", "pending"]
    # An ended registration's confirmation link leads back to the training's form.
    gone = client.get(links("flut1@example.org")["confirm"])
    assert gone.status_code == 410 and f'href="/events/{training.id}#register-heading"' in gone.get_data(as_text=True)


def test_an_ended_registration_offers_neither_cancel_nor_calendar(client, make_training, make_user, login):
    """A registration cancelled by its person, or ended by the training's cancellation: its manage page
    offers no "cancel" and no "add to my calendar", and the mail that says so offers no cancelling."""
    own = make_training(seats=3)
    register(own.id, "Ayşe Kaya", "ayse@example.org")
    paths = links("ayse@example.org")
    client.post(paths["confirm"])
    page = client.get(paths["manage"]).get_data(as_text=True)
    assert "Meine Anmeldung stornieren" in page and "In meinen Kalender" in page  # while it is active
    client.post(paths["manage"] + "/cancel")
    assert statuses(own.id) == ["cancelled"]

    called_off = make_training(seats=3)
    register(called_off.id, "Jan Berg", "jan@example.org")
    jan = links("jan@example.org")
    client.post(jan["confirm"])
    login(make_user(Role.STAFF))
    assert client.post(f"/events/staff/{called_off.id}/cancel").status_code == 302
    assert statuses(called_off.id) == ["cancelled"]

    for address, manage in (("ayse@example.org", paths["manage"]), ("jan@example.org", jan["manage"])):
        page = client.get(manage).get_data(as_text=True)
        assert "Storniert" in page  # the page still opens and says what happened
        assert "stornieren" not in page and "In meinen Kalender" not in page and ".ics" not in page
        mail = db.session.scalars(select(OutboxMessage).where(OutboxMessage.to_addr == address)
                                  .order_by(OutboxMessage.id.desc())).first()
        assert mail.kind in ("events/registration_cancelled", "events/training_cancelled")
        text = mail_text(mail)
        assert "stornieren" not in text and f"Ihre Anmeldung ansehen:\n{manage}" in text.replace("\r\n", "\n").replace("http://fundus.test", "")
        assert "stornieren" not in email.message_from_bytes(mail.raw, policy=email.policy.default) \
            .get_body(("html",)).get_content()
