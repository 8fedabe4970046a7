"""Running trainings: the staff form, publishing, changes and cancellation that calendars follow,
attendance, sign-in sheets, certificates, messages, reminders and personal data."""

import email
import email.policy
import json
import re
from datetime import UTC, datetime, timedelta

import icalendar
import pytest
from sqlalchemy import func, select, update

from accounts.models import Role
from core.audit import AuditEntry
from core.extensions import db
from core.i18n import to_local
from core.mail import OutboxMessage
from events import links, notifications, participants, registrations
from events.models import (
    Attendance,
    Registration,
    RegistrationStatus,
    TraineeKey,
    Training,
    TrainingSession,
    TrainingStatus,
)
from tests.conftest import mail_text, run_concurrently


def mails_to(address: str) -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.to_addr == address)
                                   .order_by(OutboxMessage.id)))


def calendar_of(message: OutboxMessage):
    """The invitation of a mail: (METHOD parameter of its text/calendar part, parsed calendar) or None.
    The part is an alternative of the text (RFC 6047), and the same calendar is attached as a file."""
    parsed = email.message_from_bytes(message.raw, policy=email.policy.default)
    for part in parsed.walk():
        if part.get_content_type() == "text/calendar":
            assert part.get_content_charset() == "utf-8" and part.get_content_disposition() is None
            files = [a for a in parsed.iter_attachments() if a.get_content_type() == "application/ics"]
            assert [f.get_content().replace(b"\r\n", b"\n") for f in files] == [
                part.get_content().encode().replace(b"\r\n", b"\n")]
            return part.get_param("method"), icalendar.Calendar.from_ical(part.get_content())
    return None


def confirmed(training_id: int, address: str) -> Registration:
    result = registrations.register(training_id, address.split("@")[0].title(), address, "Wohnen eG")
    return registrations.confirm_registration(links.confirm_token(result.registration))


@pytest.fixture
def staff(client, make_user, login):
    login(make_user(Role.STAFF))
    return client


def form_data(**kw) -> dict:
    data = {
        "title": "AGG in der Vermietung", "description": "Rechte und Pflichten", "target_groups": ["housing"],
        "format": "in-person", "venue": "Planerladen", "address": "Schützenstraße 42\n44147 Dortmund",
        "online_link": "", "trainers": "A. Yilmaz", "language": "de", "seats": "12",
        "sessions-0-day": "2027-06-10", "sessions-0-starts": "09:00", "sessions-0-ends": "16:00",
        "sessions-1-day": "2027-06-11", "sessions-1-starts": "09:00", "sessions-1-ends": "13:00",
        "sessions-2-day": "", "sessions-2-starts": "", "sessions-2-ends": "",
    }
    data.update(kw)
    return data


def test_staff_create_a_two_day_draft_publish_it_and_the_trainee_sees_it(staff, client):
    response = staff.post("/events/staff/new", data=form_data())
    assert response.status_code == 302
    training = db.session.scalar(select(Training))
    assert training.status == TrainingStatus.DRAFT and training.target_groups == "housing"
    # 09:00 in Berlin in June is 07:00 UTC.
    assert [(s.starts_at, s.ends_at) for s in training.sessions] == [
        (datetime(2027, 6, 10, 7, tzinfo=UTC), datetime(2027, 6, 10, 14, tzinfo=UTC)),
        (datetime(2027, 6, 11, 7, tzinfo=UTC), datetime(2027, 6, 11, 11, tzinfo=UTC)),
    ]
    assert "AGG in der Vermietung" not in client.get("/events/calendar.ics").get_data(as_text=True)
    staff.post(f"/events/staff/{training.id}/publish")
    db.session.refresh(training)
    assert training.status == TrainingStatus.PUBLISHED
    assert "AGG in der Vermietung" in client.get("/events/").get_data(as_text=True)
    page = staff.get(f"/events/staff/{training.id}").get_data(as_text=True)
    assert "Veröffentlicht" in page and "Unterschriftenliste" in page


@pytest.mark.parametrize("changes, message", [
    ({"sessions-0-ends": "08:00"}, "Jeder Termin muss nach seinem Beginn enden."),
    ({"sessions-0-day": "", "sessions-1-day": ""}, "Bitte Datum, Beginn und Ende angeben."),
    ({"format": "online"}, "braucht ihren Online-Link"),
    ({"seats": "0"}, "Zahl muss"),
    ({"title": ""}, "Bitte geben Sie einen Titel ein."),
])
def test_bad_training_input_is_explained_and_changes_nothing(staff, changes, message):
    response = staff.post("/events/staff/new", data=form_data(**changes))
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Training)) == 0


def test_no_sessions_at_all_is_refused(staff):
    empty = {f"sessions-{i}-{k}": "" for i in range(3) for k in ("day", "starts", "ends")}
    response = staff.post("/events/staff/new", data=form_data(**empty))
    assert "Eine Fortbildung braucht mindestens einen Termin." in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Training)) == 0


def test_confirmed_mail_carries_an_invitation_and_the_online_link_only_for_the_confirmed(app, make_training):
    training = make_training(online_link="https://meet.example.org/agg", title="Hybrid-Workshop für Fälle")
    registrations.register(training.id, "Pending Person", "pending@example.org")
    confirmed(training.id, "sure@example.org")
    pending_mail = mails_to("pending@example.org")[0]
    assert "meet.example.org" not in mail_text(pending_mail)
    assert "/events/registrations/confirm/" in mail_text(pending_mail)
    confirm_mail = mails_to("sure@example.org")[-1]
    text = mail_text(confirm_mail)
    assert "https://meet.example.org/agg" in text
    assert re.search(r"/events/registrations/(?!confirm)[\w-]+", text), "every mail carries the manage link"
    method, cal = calendar_of(confirm_mail)
    assert method == "REQUEST" and str(cal["method"]) == "REQUEST"
    event = cal.walk("VEVENT")[0]
    assert str(event["summary"]) == "Hybrid-Workshop für Fälle"
    assert str(event["organizer"]) == f"mailto:{app.config['MAIL_FROM']}"
    assert str(event["attendee"]) == "mailto:sure@example.org"
    assert "meet.example.org" not in str(event.get("description", ""))


def test_changing_the_time_raises_sequence_keeps_uids_and_tells_seat_holders(staff, make_training):
    training = make_training(seats=1)
    confirmed(training.id, "first@example.org")
    registrations.register(training.id, "Second", "second@example.org")  # waiting list
    session_id, sequence = training.sessions[0].id, training.sequence
    start = training.sessions[0].starts_at + timedelta(days=1)
    data = form_data(seats="1", title=training.title, target_groups=[],
                     **{"sessions-0-day": start.astimezone(UTC).strftime("%Y-%m-%d"), "sessions-0-starts": "10:00",
                        "sessions-0-ends": "15:00", "sessions-1-day": "", "sessions-1-starts": "",
                        "sessions-1-ends": ""})
    assert staff.post(f"/events/staff/{training.id}/edit", data=data).status_code == 302
    db.session.refresh(training)
    assert training.sequence == sequence + 1
    assert [s.id for s in training.sessions] == [session_id]
    changed = mails_to("first@example.org")[-1]
    assert changed.subject.startswith("Geändert:")
    method, cal = calendar_of(changed)
    # The training's new sequence, plus the invitation the person had before.
    assert method == "REQUEST" and int(cal.walk("VEVENT")[0]["sequence"]) == sequence + 2
    assert not any(m.subject.startswith("Geändert") for m in mails_to("second@example.org"))
    # Saving again without a change mails nobody and keeps the sequence.
    before = db.session.scalar(select(func.count()).select_from(OutboxMessage))
    staff.post(f"/events/staff/{training.id}/edit", data=data)
    db.session.refresh(training)
    assert training.sequence == sequence + 1
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == before
    # More seats: the waiting list moves up at once.
    staff.post(f"/events/staff/{training.id}/edit", data={**data, "seats": "2"})
    assert db.session.scalar(select(Registration.status).where(Registration.email == "second@example.org")) \
        == RegistrationStatus.PENDING
    # Fewer seats than people holding one: refused.
    response = staff.post(f"/events/staff/{training.id}/edit", data={**data, "seats": "1"})
    assert "2 Personen haben einen Platz" in response.get_data(as_text=True)
    db.session.refresh(training)
    assert training.seats == 2


def test_cancelling_a_training_tells_everyone_once_and_the_feed_keeps_it_as_cancelled(staff, client, make_training):
    training = make_training(seats=1, title="Absage-Test")
    confirmed(training.id, "first@example.org")
    registrations.register(training.id, "Second", "second@example.org")
    sequence = db.session.get(Training, training.id).sequence
    assert staff.post(f"/events/staff/{training.id}/cancel").status_code == 302
    cancel_mail = mails_to("first@example.org")[-1]
    assert cancel_mail.subject == "Abgesagt: Absage-Test"
    method, cal = calendar_of(cancel_mail)
    event = cal.walk("VEVENT")[0]
    assert method == "CANCEL" and str(cal["method"]) == "CANCEL"
    assert str(event["status"]) == "CANCELLED" and int(event["sequence"]) > sequence
    assert str(event["uid"]).startswith(f"training-{training.id}-session-{training.sessions[0].id}@")
    assert mails_to("second@example.org")[-1].subject == "Abgesagt: Absage-Test"
    assert calendar_of(mails_to("second@example.org")[-1]) is None  # never had an invitation
    programme = client.get("/events/").get_data(as_text=True)
    assert "Absage-Test" in programme and "Abgesagt" in programme  # still listed, marked
    assert "Zur Fortbildung anmelden" not in client.get(f"/events/{training.id}").get_data(as_text=True)
    feed = icalendar.Calendar.from_ical(client.get("/events/calendar.ics").get_data())
    assert [str(e["status"]) for e in feed.walk("VEVENT")] == ["CANCELLED"]
    before = db.session.scalar(select(func.count()).select_from(OutboxMessage))
    staff.post(f"/events/staff/{training.id}/cancel")  # again: refused, nobody mailed twice
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == before


def shift_sessions(training_id: int, by: timedelta) -> None:
    """Move a training's sessions in time (registrations are made while it is still to come)."""
    for session in db.session.scalars(select(TrainingSession).where(TrainingSession.training_id == training_id)):
        session.starts_at, session.ends_at = session.starts_at + by, session.ends_at + by
    db.session.commit()
    db.session.expire_all()


def test_run_the_day_attendance_sheet_certificate_csv(staff, make_training):
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    training = make_training(seats=5, trainers="B. Schulz", sessions=[
        (start, start + timedelta(hours=6)), (start + timedelta(days=1), start + timedelta(days=1, hours=3))])
    ayse = confirmed(training.id, "ayse@example.org")
    jan = confirmed(training.id, "jan@example.org")
    registrations.register(training.id, "Offen", "offen@example.org")  # pending, not confirmed
    first, second = (s.id for s in training.sessions)
    shift_sessions(training.id, -timedelta(days=5))  # the day has come and gone
    response = staff.post(f"/events/staff/{training.id}/attendance",
                          data={"present": [f"{ayse.id}:{first}", f"{ayse.id}:{second}", f"{jan.id}:{first}"]})
    assert response.status_code == 302
    assert db.session.scalar(select(func.count()).select_from(Attendance)) == 3
    # Unticking removes; a pending registration cannot be marked (nothing changes then).
    pending = db.session.scalar(select(Registration).where(Registration.email == "offen@example.org"))
    staff.post(f"/events/staff/{training.id}/attendance", data={"present": [f"{pending.id}:{first}"]})
    assert db.session.scalar(select(func.count()).select_from(Attendance)) == 3
    staff.post(f"/events/staff/{training.id}/attendance", data={"present": [f"{ayse.id}:{first}", f"{ayse.id}:{second}"]})
    assert db.session.scalar(select(func.count()).select_from(Attendance)) == 2

    sheet = staff.get(f"/events/staff/sessions/{second}/sign-in-sheet").get_data(as_text=True)
    assert "Ayse" in sheet and "Jan" in sheet and "Unterschrift" in sheet
    assert staff.get(f"/events/staff/registrations/{ayse.id}/certificate").status_code == 404  # not issued yet
    issued = staff.post(f"/events/staff/registrations/{ayse.id}/certificate")
    assert issued.headers["Location"].endswith(f"/events/staff/registrations/{ayse.id}/certificate")
    certificate = staff.get(f"/events/staff/registrations/{ayse.id}/certificate").get_data(as_text=True)
    assert "Teilnahmebescheinigung" in certificate and "Ayse" in certificate and "Dauer: 9,0 Stunden" in certificate
    refused = staff.post(f"/events/staff/registrations/{jan.id}/certificate", follow_redirects=True)
    assert "nur für Personen, die teilgenommen haben" in refused.get_data(as_text=True)  # not marked present
    assert staff.get(f"/events/staff/registrations/{jan.id}/certificate").status_code == 404
    csv = staff.get(f"/events/staff/{training.id}/participants.csv")
    text = csv.get_data().decode("utf-8-sig")
    assert text.splitlines()[0].startswith("Name;E-Mail-Adresse;Organisation")
    assert "ayse@example.org" in text and "anwesend;anwesend" in text


def test_staff_give_a_seat_by_hand_and_cancel_for_someone(staff, make_training):
    training = make_training(seats=1)
    holder = confirmed(training.id, "holder@example.org")
    waiting = registrations.register(training.id, "W", "w@example.org").registration
    page = staff.post(f"/events/staff/registrations/{waiting.id}/seat", follow_redirects=True)
    assert "Kein Platz ist frei." in page.get_data(as_text=True)
    staff.post(f"/events/staff/registrations/{holder.id}/cancel")
    statuses = dict(db.session.execute(select(Registration.email, Registration.status)).all())
    assert statuses == {"holder@example.org": RegistrationStatus.CANCELLED, "w@example.org": RegistrationStatus.PENDING}
    assert mails_to("holder@example.org")[-1].subject == "Ihre Anmeldung ist storniert"


def test_message_to_all_participants(staff, make_training):
    training = make_training(seats=1)
    confirmed(training.id, "a@example.org")
    registrations.register(training.id, "B", "b@example.org")  # waiting
    empty = staff.post(f"/events/staff/{training.id}/message", data={"subject": "", "body": ""})
    assert "Bitte geben Sie einen Betreff ein." in empty.get_data(as_text=True)
    staff.post(f"/events/staff/{training.id}/message", data={"subject": "Raumänderung", "body": "Raum 2.04"})
    assert [m.subject for m in mails_to("a@example.org")][-1] == "Raumänderung"
    assert "Raum 2.04" in mail_text(mails_to("a@example.org")[-1])
    assert "Raumänderung" not in [m.subject for m in mails_to("b@example.org")]
    staff.post(f"/events/staff/{training.id}/message",
               data={"subject": "Warteliste", "body": "Hallo", "include_waiting": "y"})
    assert mails_to("b@example.org")[-1].subject == "Warteliste"


def test_duplicate_moves_the_sessions_into_the_future(staff, make_training):
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    training = make_training(sessions=[(past, past + timedelta(hours=3))], title="Jedes Semester",
                             registration_closes_at=past - timedelta(days=1))
    page = staff.get(f"/events/staff/{training.id}/duplicate").get_data(as_text=True)
    assert 'value="Jedes Semester"' in page
    day = re.search(r'name="sessions-0-day" type="date" value="([\d-]+)"', page).group(1)
    assert day > datetime.now(UTC).strftime("%Y-%m-%d")
    closes = re.search(r'name="registration_closes_at" type="datetime-local" value="([\dT:-]+)"', page).group(1)
    assert datetime.now(UTC).strftime("%Y-%m-%d") < closes < day  # the registration window moved along
    assert (datetime.fromisoformat(day).date() - to_local(past).date()).days % 7 == 0  # same weekday


def test_reminder_two_days_before_is_sent_once(runner, make_training):
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    training = make_training(sessions=[(soon, soon + timedelta(hours=2))], title="Bald")
    make_training(title="Später")  # in two weeks: not yet
    confirmed(training.id, "a@example.org")
    registrations.register(training.id, "Unbestätigt", "b@example.org")
    assert "1 sent" in runner.invoke(args=["jobs", "run"]).output
    assert "0 sent" in runner.invoke(args=["jobs", "run"]).output
    assert [m.subject for m in mails_to("a@example.org")].count("Erinnerung: Bald") == 1
    assert not any(m.subject.startswith("Erinnerung") for m in mails_to("b@example.org"))


def test_reminder_jobs_running_at_once_send_each_reminder_once(app, make_training):
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    training = make_training(sessions=[(soon, soon + timedelta(hours=2))], title="Bald")
    for i in range(5):
        confirmed(training.id, f"p{i}@example.org")
    results = run_concurrently(app, 4, lambda i: notifications.send_reminders())
    assert sorted(results, reverse=True)[0] >= 1 and sum(results) == 5, results
    reminders = db.session.scalar(select(func.count()).select_from(OutboxMessage)
                                  .where(OutboxMessage.subject == "Erinnerung: Bald"))
    assert reminders == 5


def test_old_registrations_are_anonymised_and_still_counted(runner, make_training):
    long_ago = datetime.now(UTC).replace(microsecond=0) - timedelta(days=400)
    old = make_training(title="Alt")
    recent = make_training(title="Neu")
    confirmed(old.id, "old@example.org")
    confirmed(recent.id, "old@example.org")
    db.session.execute(update(TrainingSession).where(TrainingSession.training_id == old.id)
                       .values(starts_at=long_ago, ends_at=long_ago + timedelta(hours=3)))
    db.session.commit()
    assert "1 anonymised" in runner.invoke(args=["jobs", "run"]).output
    rows = dict(db.session.execute(select(Registration.training_id, Registration)).all())
    assert rows[old.id].name == "" and rows[old.id].email.endswith("@invalid") and rows[old.id].anonymised_at
    assert rows[old.id].status == RegistrationStatus.CONFIRMED  # still counted
    assert rows[recent.id].email == "old@example.org"


def test_person_export_and_delete_on_request(staff, make_training):
    training = make_training(seats=1, ask_dietary=True)
    registrations.register(training.id, "Rita Roth", "rita@example.org", answers='{"dietary": "vegan"}',
                           health_consent=True)
    registrations.register(training.id, "Next", "next@example.org")
    page = staff.get("/events/staff/people?email=Rita@example.org").get_data(as_text=True)
    assert training.title in page
    export = json.loads(staff.post("/events/staff/people/export.json", data={"email": "rita@example.org"}).get_data())
    assert export["registrations"][0]["name"] == "Rita Roth"
    assert export["registrations"][0]["answers"] == {"dietary": "vegan"}
    assert export["mails"][0]["subject"] == "Bitte bestätigen Sie Ihre Anmeldung"
    staff.post("/events/staff/people/delete", data={"email": "rita@example.org"})
    assert mails_to("rita@example.org") == []
    rita = db.session.scalar(select(Registration).where(Registration.name == ""))
    assert rita.status == RegistrationStatus.CANCELLED and rita.answers == ""
    assert db.session.scalar(select(Registration.status).where(Registration.email == "next@example.org")) \
        == RegistrationStatus.PENDING  # the seat went on
    assert "Zu dieser Adresse ist nichts gespeichert." in staff.get(
        "/events/staff/people?email=rita@example.org").get_data(as_text=True)


def test_my_registrations_link_and_personal_feed(client, make_training):
    mine = make_training(title="Meine Fortbildung")
    other = make_training(title="Fremde Fortbildung")
    confirmed(mine.id, "me@example.org")
    registrations.register(other.id, "Someone", "someone@example.org")
    for address in ("ME@example.org", "nobody@example.org"):
        page = client.post("/my/registrations", data={"email": address}).get_data(as_text=True)
        assert "Wenn es Anmeldungen für diese Adresse gibt" in page
    assert mails_to("nobody@example.org") == []
    text = mail_text(mails_to("me@example.org")[-1])
    list_path = re.search(r"/my/registrations/[\w-]+", text).group(0)
    feed_path = re.search(r"/my/calendar/[\w-]+\.ics", text).group(0)
    assert "me@example.org" not in feed_path
    page = client.get(list_path).get_data(as_text=True)
    assert "Meine Fortbildung" in page and "Fremde Fortbildung" not in page and feed_path in page
    feed = client.get(feed_path)
    assert feed.headers["Content-Type"] == "text/calendar; charset=utf-8" and feed.headers["ETag"]
    assert [str(e["summary"]) for e in icalendar.Calendar.from_ical(feed.get_data()).walk("VEVENT")] == [
        "Meine Fortbildung"]
    client.post(list_path + "/calendar")
    assert client.get(feed_path).status_code == 404
    key = db.session.scalar(select(TraineeKey))
    assert client.get(f"/my/calendar/{links.calendar_token(key)}.ics").status_code == 200


def test_archive_lists_past_trainings(client, make_training):
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)
    make_training(title="Frühjahrstagung", sessions=[(past, past + timedelta(hours=2))])
    make_training(title="Herbsttagung")
    page = client.get("/events/archive").get_data(as_text=True)
    assert "Frühjahrstagung" in page and "Herbsttagung" not in page
    assert "Frühjahrstagung" not in client.get("/events/").get_data(as_text=True)


def test_manage_page_offers_the_calendar_and_hides_the_link_until_confirmed(client, make_training):
    training = make_training(online_link="https://meet.example.org/x")
    result = registrations.register(training.id, "Paula", "paula@example.org")
    page = client.get(f"/events/registrations/{result.token}").get_data(as_text=True)
    assert f"/events/{training.id}.ics" in page and "meet.example.org" not in page
    registrations.confirm_registration(links.confirm_token(result.registration))
    assert "https://meet.example.org/x" in client.get(f"/events/registrations/{result.token}").get_data(as_text=True)


def test_training_pages_are_accessible(staff, make_training, make_user):
    from tests.test_pages import check_page

    staff_user = make_user(Role.STAFF)
    training = make_training(seats=1, ask_accessibility=True, ask_dietary=True, free_question="Ihre Fälle?")
    registration = confirmed(training.id, "a@example.org")
    registrations.register(training.id, "W", "w@example.org")
    participants.set_attendance(training.id, {(registration.id, training.sessions[0].id)}, staff_user, "vorab")
    participants.issue_certificate(registration.id, staff_user, "vorab")
    for url in (f"/events/{training.id}", f"/events/staff/{training.id}", f"/events/staff/{training.id}?override=1",
                f"/events/staff/{training.id}/edit",
                f"/events/staff/{training.id}/duplicate", f"/events/staff/{training.id}/message",
                f"/events/staff/sessions/{training.sessions[0].id}/sign-in-sheet",
                f"/events/staff/registrations/{registration.id}/certificate",
                f"/events/registrations/{links.manage_token(registration)}",
                "/events/staff/people?email=a@example.org"):
        check_page(staff, url)


def outbox_size() -> int:
    return db.session.scalar(select(func.count()).select_from(OutboxMessage))


def test_cancelling_a_training_asks_first_and_tells_everyone_the_reason(staff, make_training):
    """The button leads to a page that changes nothing and says how many get a mail; the reason typed
    there goes into every cancellation mail, in each person's language, and into the audit entry."""
    training = make_training(seats=1, title="Absage mit Grund")
    first = confirmed(training.id, "first@example.org")
    registrations.register(training.id, "Second", "second@example.org")  # waiting
    db.session.execute(update(Registration).where(Registration.id == first.id).values(locale="en"))
    db.session.commit()
    participants_page = staff.get(f"/events/staff/{training.id}").get_data(as_text=True)
    assert f'href="/events/staff/{training.id}/cancel"' in participants_page  # a link, no button that acts
    before = outbox_size()

    page = staff.get(f"/events/staff/{training.id}/cancel")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "2 Adressen erhalten eine E-Mail." in text and "2 Anmeldungen enden" in text
    assert "Grund (steht in der E-Mail)" in text
    assert outbox_size() == before and db.session.get(Training, training.id).status == TrainingStatus.PUBLISHED

    too_long = staff.post(f"/events/staff/{training.id}/cancel", data={"reason": "x" * 2001, "seen": "published"})
    assert too_long.status_code == 422 and "x" * 2001 in too_long.get_data(as_text=True)  # typed text kept
    db.session.expire_all()
    assert outbox_size() == before and db.session.get(Training, training.id).status == TrainingStatus.PUBLISHED

    reason = "Die Referentin ist erkrankt.\nWir melden uns mit einem neuen Termin."
    assert staff.post(f"/events/staff/{training.id}/cancel", data={"reason": reason, "seen": "published"}
                      ).status_code == 302
    assert outbox_size() == before + 2
    english, german = (mail_text(mails_to(a)[-1]).replace("\r\n", "\n") for a in ("first@example.org",
                                                                                    "second@example.org"))
    assert "The reason we give:\nDie Referentin ist erkrankt.\nWir melden uns" in english
    assert "Unsere Begründung:\nDie Referentin ist erkrankt.\nWir melden uns" in german
    html = email.message_from_bytes(mails_to("second@example.org")[-1].raw, policy=email.policy.default)
    assert "Die Referentin ist erkrankt.<br>Wir melden uns" in html.get_body(("html",)).get_content()
    from core.audit import AuditEntry
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "cancel",
                                                        AuditEntry.object_type == "training")).one()
    assert entry.reason == reason
    # Cancelled: the page that asks no longer asks, it says why.
    again = staff.get(f"/events/staff/{training.id}/cancel", follow_redirects=True).get_data(as_text=True)
    assert "Diese Fortbildung ist bereits abgesagt." in again and "Grund (steht in der E-Mail)" not in again
    # Nothing left to record or to write: no attendance button, no message to everyone (refused if posted).
    listed = staff.get(f"/events/staff/{training.id}").get_data(as_text=True)
    assert "Anwesenheit speichern" not in listed and "Nachricht an alle Teilnehmenden" not in listed
    assert "Früher erfassen" not in listed
    count = outbox_size()
    refused = staff.post(f"/events/staff/{training.id}/message", data={"subject": "Hallo", "body": "Noch da?",
                                                                       "include_waiting": "y"})
    assert refused.status_code == 302 and outbox_size() == count
    page = staff.get(f"/events/staff/{training.id}/message", follow_redirects=True).get_data(as_text=True)
    assert "Die Fortbildung ist abgesagt" in page and 'name="subject"' not in page  # no form to fill in vain
    attendance = staff.post(f"/events/staff/{training.id}/attendance", data={"present": []}, follow_redirects=True)
    assert "keine Anwesenheit zu erfassen" in attendance.get_data(as_text=True)


def test_cancelling_someones_registration_asks_first_and_mails_the_reason(staff, make_training):
    training = make_training(seats=1)
    holder = confirmed(training.id, "holder@example.org")
    waiting = registrations.register(training.id, "W", "w@example.org").registration
    before = outbox_size()
    page = staff.get(f"/events/staff/registrations/{holder.id}/cancel").get_data(as_text=True)
    assert "2 Adressen erhalten eine E-Mail." in page  # the person, and the first on the waiting list
    assert "1 Person rückt nach" in page
    assert "1 Adresse erhält eine E-Mail." in staff.get(
        f"/events/staff/registrations/{waiting.id}/cancel").get_data(as_text=True)
    assert outbox_size() == before
    assert db.session.get(Registration, holder.id).status == RegistrationStatus.CONFIRMED

    staff.post(f"/events/staff/registrations/{holder.id}/cancel", data={"reason": "Doppelt angemeldet.",
                                                                        "seen": "confirmed"})
    assert "Unsere Begründung:\nDoppelt angemeldet." in mail_text(mails_to("holder@example.org")[-1]).replace("\r", "")
    assert mails_to("w@example.org")[-1].subject == "Ein Platz ist für Sie frei geworden"
    assert outbox_size() == before + 2


def test_deleting_a_persons_data_asks_first(staff, make_training):
    training = make_training(seats=1)
    registrations.register(training.id, "Rita Roth", "rita@example.org")
    registrations.register(training.id, "Next", "next@example.org")  # waiting
    person = staff.get("/events/staff/people?email=rita@example.org").get_data(as_text=True)
    assert 'href="/events/staff/people/delete?email=rita@example.org"' in person
    page = staff.get("/events/staff/people/delete?email=rita@example.org").get_data(as_text=True)
    assert "1 davon, für eine kommende Fortbildung, wird ohne E-Mail an die Person storniert." in page
    assert "1 Adresse erhält eine E-Mail." in page  # the next on the waiting list
    assert 'name="email" value="rita@example.org"' in page
    assert db.session.scalar(select(func.count()).select_from(Registration).where(Registration.name == "")) == 0


def test_attendance_once_a_session_started_certificates_once_it_ended_earlier_only_with_a_reason(
        staff, make_training):
    """A session still to come has no attendance checkbox and refuses attendance; a certificate waits
    until an attended session has ended. Staff may do either earlier with a reason, which the audit
    entry keeps; recording the usual way then leaves the early record alone."""
    from core.audit import AuditEntry

    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    training = make_training(seats=5, sessions=[(start, start + timedelta(hours=6)),
                                                (start + timedelta(days=1), start + timedelta(days=1, hours=6))])
    ayse = confirmed(training.id, "ayse@example.org")
    first, second = (s.id for s in training.sessions)
    ahead = staff.get(f"/events/staff/{training.id}").get_data(as_text=True)
    assert "Anwesenheit speichern" not in ahead and "Früher erfassen" in ahead  # nothing to record yet
    shift_sessions(training.id, -timedelta(days=2, hours=1))  # the first session runs, the second is tomorrow

    page = staff.get(f"/events/staff/{training.id}").get_data(as_text=True)
    assert f'id="present-{ayse.id}-{first}"' in page and f'id="present-{ayse.id}-{second}"' not in page
    refused = staff.post(f"/events/staff/{training.id}/attendance", data={"present": [f"{ayse.id}:{second}"]},
                         follow_redirects=True)
    assert "nur für Termine erfasst werden, die begonnen haben" in refused.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Attendance)) == 0
    staff.post(f"/events/staff/{training.id}/attendance", data={"present": [f"{ayse.id}:{first}"]})
    assert db.session.scalar(select(func.count()).select_from(Attendance)) == 1

    page = staff.get(f"/events/staff/{training.id}").get_data(as_text=True)
    assert f'form="certificate-{ayse.id}"' not in page  # the session has not ended
    refused = staff.post(f"/events/staff/registrations/{ayse.id}/certificate", follow_redirects=True)
    assert "nur für besuchte Termine, die zu Ende sind" in refused.get_data(as_text=True)
    assert staff.get(f"/events/staff/registrations/{ayse.id}/certificate").status_code == 404

    early = staff.get(f"/events/staff/{training.id}?override=1").get_data(as_text=True)
    assert f'id="present-{ayse.id}-{second}"' in early and 'name="override_reason"' in early
    no_reason = staff.post(f"/events/staff/{training.id}/attendance",
                           data={"present": [f"{ayse.id}:{first}", f"{ayse.id}:{second}"], "override_reason": ""})
    kept = no_reason.get_data(as_text=True)  # refused: the boxes stay ticked as they were, the reason field there
    assert no_reason.status_code == 422 and 'name="override_reason"' in kept
    assert re.search(rf'value="{ayse.id}:{second}"[^>]*checked', kept)
    assert db.session.scalar(select(func.count()).select_from(Attendance)) == 1
    staff.post(f"/events/staff/{training.id}/attendance",
               data={"present": [f"{ayse.id}:{first}", f"{ayse.id}:{second}"], "override_reason": "Liste vorab"})
    assert db.session.scalar(select(func.count()).select_from(Attendance)) == 2
    staff.post(f"/events/staff/{training.id}/attendance", data={"present": [f"{ayse.id}:{first}"]})
    assert db.session.scalar(select(func.count()).select_from(Attendance)) == 2  # the second is kept
    issued = staff.post(f"/events/staff/registrations/{ayse.id}/certificate",
                        data={"override_reason": "Reist vor dem Ende ab"})
    assert issued.headers["Location"].endswith(f"/events/staff/registrations/{ayse.id}/certificate")
    assert "Dauer: 12,0 Stunden" in staff.get(issued.headers["Location"]).get_data(as_text=True)
    reasons = dict(db.session.execute(select(AuditEntry.action, AuditEntry.reason).where(
        AuditEntry.action.in_(("attendance", "certificate")), AuditEntry.reason != "")).all())
    assert reasons == {"attendance": "Liste vorab", "certificate": "Reist vor dem Ende ab"}

    shift_sessions(training.id, -timedelta(days=2))  # both have ended: no reason needed
    page = staff.get(f"/events/staff/{training.id}").get_data(as_text=True)
    assert f'form="certificate-{ayse.id}"' in page and "Früher erfassen" not in page
    assert staff.post(f"/events/staff/registrations/{ayse.id}/certificate").status_code == 302


def test_staff_print_every_issued_certificate_of_a_training_on_one_page(staff, make_training, make_user):
    """One page, one certificate per sheet: each person whose certificate was issued, nobody else's."""
    staff_user = make_user(Role.STAFF)
    training, other = make_training(seats=5), make_training(seats=5, title="Andere Fortbildung")
    ayse, jan, olga, max_ = (confirmed(training.id, f"{name}@example.org") for name in ("ayse", "jan", "olga", "max"))
    stranger = confirmed(other.id, "fremd@example.org")
    ended = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    for t in (training, other):  # both took place
        t.sessions[0].starts_at, t.sessions[0].ends_at = ended, ended + timedelta(hours=3)
    db.session.commit()
    first = training.sessions[0].id
    participants.set_attendance(training.id, {(r.id, first) for r in (ayse, jan, olga)}, staff_user)
    participants.set_attendance(other.id, {(stranger.id, other.sessions[0].id)}, staff_user)
    for registration in (jan, ayse, stranger):
        participants.issue_certificate(registration.id, staff_user)

    listed = staff.get(f"/events/staff/{training.id}").get_data(as_text=True)
    assert f'href="/events/staff/{training.id}/certificates">Alle Bescheinigungen drucken</a>' in listed
    page = staff.get(f"/events/staff/{training.id}/certificates").get_data(as_text=True)
    sheets = page.split('<article class="slip certificate">')[1:]
    assert [re.search(r"<strong>(\w+)</strong>", s).group(1) for s in sheets] == ["Ayse", "Jan"]  # by name
    assert all("Diskriminierungsfreie Vermietung" in s and "Dauer: 3,0 Stunden" in s for s in sheets)
    assert "Olga" not in page and "Max" not in page and "Fremd" not in page and "Andere Fortbildung" not in page
    assert "2 Bescheinigungen, jede auf einer eigenen Seite." in page
    assert "1 Person hat teilgenommen, aber noch keine Bescheinigung" in page  # Olga
    assert 'data-print hidden>Drucken</button>' in page and "/static/js/print.js" in page

    # Issue 16.20: the missing one is issued from here, in one go, each with its own audit entry.
    assert ">1 fehlende Bescheinigung ausstellen</button>" in page
    done = staff.post(f"/events/staff/{training.id}/certificates")
    assert done.headers["Location"].endswith(f"/events/staff/{training.id}/certificates")
    page = staff.get(done.headers["Location"]).get_data(as_text=True)
    sheets = page.split('<article class="slip certificate">')[1:]
    assert [re.search(r"<strong>(\w+)</strong>", s).group(1) for s in sheets] == ["Ayse", "Jan", "Olga"]
    assert "1 Bescheinigung ausgestellt." in page and "ausstellen</button>" not in page
    staff.post(f"/events/staff/{training.id}/certificates")  # a second click issues nothing twice
    assert db.session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "certificate", AuditEntry.object_id == olga.id)) == 1
    assert staff.get(f"/events/staff/{other.id + 1000}/certificates").status_code == 404
    assert max_.status == RegistrationStatus.CONFIRMED  # there, but never marked present: no certificate


def test_printable_pages_have_a_print_button(staff, make_training, make_user, make_org, make_material):
    """Slip, sign-in sheet, certificate and QR labels: a button that prints (shown by a script file;
    the Content-Security-Policy allows no inline script), never printed itself."""
    from materials.models import Request, RequestStatus

    staff_user = make_user(Role.STAFF)
    training = make_training()
    ayse = confirmed(training.id, "ayse@example.org")
    ended = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    training.sessions[0].starts_at, training.sessions[0].ends_at = ended, ended + timedelta(hours=3)
    db.session.commit()
    participants.set_attendance(training.id, {(ayse.id, training.sessions[0].id)}, staff_user)
    participants.issue_certificate(ayse.id, staff_user)
    kit = make_material(title="Koffer", returnable=True, units={"de": ["K-1"]})
    org = make_org()
    request = Request(organisation_id=org.id, created_by_id=make_user(Role.PARTNER, organisation=org).id,
                      status=RequestStatus.SUBMITTED)
    db.session.add(request)
    db.session.commit()
    for url in (f"/requests/{request.id}/slip", f"/materials/{kit.id}/labels",
                f"/events/staff/sessions/{training.sessions[0].id}/sign-in-sheet",
                f"/events/staff/registrations/{ayse.id}/certificate", f"/events/staff/{training.id}/certificates"):
        page = staff.get(url).get_data(as_text=True)
        assert re.search(r'<p class="no-print print-row"><button type="button" class="button" data-print hidden>'
                         r"Drucken</button></p>\s*<script src=\"/static/js/print.js\" defer></script>", page), url
    with staff.get("/static/js/print.js") as response:
        script = response.get_data(as_text=True)
    assert "window.print()" in script and "hidden = false" in script


def test_two_staff_issuing_the_missing_certificates_at_once_issue_each_once(app, make_training, make_user):
    """The training's row is locked first: two clicks at the same moment, five rounds, never two
    certificates for one person."""
    from accounts.models import User

    staff_id = make_user(Role.STAFF).id
    for round_ in range(5):
        training = make_training(seats=5, title=f"Runde {round_}")
        people = [confirmed(training.id, f"p{round_}-{i}@example.org") for i in range(3)]
        ended = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
        training.sessions[0].starts_at, training.sessions[0].ends_at = ended, ended + timedelta(hours=2)
        db.session.commit()
        participants.set_attendance(training.id, {(p.id, training.sessions[0].id) for p in people},
                                    db.session.get(User, staff_id))
        training_id = training.id
        results = run_concurrently(app, 2, lambda i, training_id=training_id: participants.issue_missing_certificates(
            training_id, db.session.get(User, staff_id)))
        assert sorted(results) == [0, 3], results
        assert db.session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "certificate", AuditEntry.object_id.in_([p.id for p in people]))) == 3


def test_a_draft_cancelled_before_it_was_published_stays_private(app, client, make_training, make_user):
    """Cancelling a draft ends it without its ever having been public: the programme, the archive, the feed,
    its page and the API keep hiding it, and the figures do not count it as a cancelled training. A training
    cancelled after it was published stays listed, marked cancelled."""
    from events.trainings import cancel_training, publish
    from figures.period import Period
    from figures.queries import compute

    staff = make_user(Role.STAFF)
    given_up = make_training(title="Nie angekündigt", status=TrainingStatus.DRAFT)
    announced = make_training(title="Abgesagt nach Ankündigung", status=TrainingStatus.DRAFT)
    publish(announced.id, staff)
    cancel_training(given_up.id, staff)
    cancel_training(announced.id, staff)
    db.session.expire_all()
    assert db.session.get(Training, given_up.id).published_at is None
    assert db.session.get(Training, announced.id).published_at is not None
    for url in ("/events/", "/events/calendar.ics", "/api/v1/trainings"):
        text = client.get(url).get_data(as_text=True)
        assert "Abgesagt nach Ankündigung" in text, url
        assert "Nie angekündigt" not in text, url
    assert client.get(f"/events/{given_up.id}").status_code == 404
    assert client.get(f"/events/{given_up.id}.ics").status_code == 404
    assert client.get(f"/api/v1/trainings/{given_up.id}").status_code == 404
    assert client.get(f"/events/{announced.id}").status_code == 200
    # Both began within this year's figures period as if held: one cancelled training, not two.
    for training in (given_up, announced):
        db.session.get(Training, training.id).sessions[0].starts_at = datetime.now(UTC) - timedelta(hours=2)
        db.session.get(Training, training.id).sessions[0].ends_at = datetime.now(UTC) - timedelta(hours=1)
    db.session.commit()
    today = datetime.now(UTC).date()
    period = Period("range", today - timedelta(days=1), today)
    assert compute(period, datetime.now(UTC)).numbers["trainings_cancelled"] == 1
