"""Mails and calendars as outside parsers read them: Python's strict e-mail parser, the layout
calendar clients expect of an invitation (RFC 6047), and libical on every feed and invitation."""

import email.policy
import uuid
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path

import icalendar
import pytest
from sqlalchemy import select, update

import core.mail
from accounts.applications import approve_application, reject_application, submit_application
from accounts.models import AccountApplication, OrganisationKind, Role
from accounts.passwords import request_password_reset
from core.extensions import db
from core.i18n import local_today
from core.mail import OutboxMessage, is_automatic
from events import links, notifications, participants, registrations
from events.models import TraineeKey, Training, TrainingFormat
from events.trainings import cancel_training, save_training, training_input
from materials.cart import submit_request
from materials.lending import approve_request, cancel_request, hand_over, send_overdue_reminders
from materials.models import Delivery
from tests import libical

MAIL_TEMPLATES = Path(__file__).parents[1] / "templates" / "mail"


def mail_kinds() -> set[str]:
    """Every kind of mail there is: one per template pair under templates/mail."""
    return {str(p.relative_to(MAIL_TEMPLATES).with_suffix("")) for p in MAIL_TEMPLATES.rglob("*.txt")
            if not p.name.startswith("_")}


@pytest.fixture
def kinds(monkeypatch):
    """Which kind each queued message is (message id → template), recorded around the real builder."""
    seen: dict[str, str] = {}
    build = core.mail.build_message

    def recording(to, subject, template, *args, **kwargs):
        msg = build(to, subject, template, *args, **kwargs)
        seen[msg["Message-ID"]] = template
        return msg

    monkeypatch.setattr(core.mail, "build_message", recording)
    return seen


def strict(raw: bytes):
    """Parse as Python's strict policy does: any defect raises, in the structure or any header."""
    msg = BytesParser(policy=email.policy.strict).parsebytes(raw)
    for part in msg.walk():
        for name, value in part.items():
            assert not value.defects, (name, value.defects)
        if not part.is_multipart():
            part.get_content()
    return msg


def tree(part) -> list | str:
    """The MIME layout: content types, with the METHOD of a calendar part."""
    if part.is_multipart():
        return [part.get_content_type(), [tree(p) for p in part.iter_parts()]]
    method = part.get_param("method")
    return part.get_content_type() + (f";method={method}" if method else "")


def invitations(address: str) -> list[tuple[str, icalendar.Calendar]]:
    """(METHOD, calendar) of every invitation mailed to ``address``, oldest first."""
    found = []
    for row in db.session.scalars(select(OutboxMessage).where(OutboxMessage.to_addr == address)
                                  .order_by(OutboxMessage.id)):
        msg = strict(row.raw)
        for part in msg.walk():
            if part.get_content_type() == "text/calendar":
                found.append((part.get_param("method"), icalendar.Calendar.from_ical(part.get_content())))
    return found


def test_every_mail_kind_parses_strictly_and_carries_the_headers_it_needs(app, make_user, make_material,
                                                                          make_training, kinds):
    staff, partner = make_user(Role.STAFF), make_user(Role.PARTNER, locale="en")
    # Accounts: an application taken, one approved, one rejected; the form again for an open
    # application and for an address with an account; a password reset.
    submit_application("Nora Neu", "nora@example.org", "Wohnbau Nord eG")
    submit_application("Nora Neu", "nora@example.org", "Wohnbau Nord eG")
    submit_application("Petra Partner", partner.email, "Wohnbau Nord eG")
    submit_application("Paul Pan", "paul@example.org", "Verein Süd")
    first, second = db.session.scalars(select(AccountApplication).order_by(AccountApplication.id)).all()
    approve_application(first.id, staff, None, OrganisationKind.HOUSING_COMPANY)
    reject_application(second.id, staff, "Kein Bezug")
    request_password_reset(partner.email)
    # Materials: a request received, noticed, approved, handed over and overdue.
    kit = make_material(returnable=True, units={"de": ["K-1"]})
    start = local_today()
    item = {"edition_id": kit.editions[0].id, "starts_on": start.isoformat(),
            "ends_on": (start + timedelta(days=1)).isoformat()}
    request = submit_request(partner, {"items": [item]}, uuid.uuid4().hex, "Fachtag", "", Delivery.PICKUP, "")
    approve_request(request.id, staff)
    hand_over(request.id, [request.bookings[0].id], staff, contents_checked=True, early_confirmed=True)
    assert send_overdue_reminders(today=start + timedelta(days=5)) == 1
    later = dict(item, starts_on=(start + timedelta(days=20)).isoformat(),
                 ends_on=(start + timedelta(days=21)).isoformat())
    dropped = submit_request(partner, {"items": [later]}, uuid.uuid4().hex, "Fachtag", "", Delivery.PICKUP, "")
    cancel_request(dropped.id, staff, reason="Der Koffer wird repariert.")  # staff cancel: the partner is told
    # Trainings: registration, waiting list, the link again, confirmation, a seat for the next,
    # cancellation, "my registrations", a change, a reminder, a message and the training cancelled.
    training = make_training(seats=1)
    one = registrations.register(training.id, "Ayşe Demir", "ayse@example.org").registration
    registrations.register(training.id, "Ben Berg", "ben@example.org")
    registrations.register(training.id, "Ayşe Demir", "ayse@example.org")
    registrations.confirm_registration(links.confirm_token(one))
    registrations.cancel_registration(links.manage_token(one))
    notifications.send_my_registrations_link("ayse@example.org", "en")
    save_training(training.id, training_input(db.session.get(Training, training.id), shift=timedelta(hours=1)), staff)
    participants.message_participants(training.id, "Raumänderung", "Bitte Raum 2.", staff)
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    near = make_training(sessions=[(soon, soon + timedelta(hours=3))])
    reminded = registrations.register(near.id, "Cem Can", "cem@example.org").registration
    registrations.confirm_registration(links.confirm_token(reminded))
    assert notifications.send_reminders() == 1
    cancel_training(training.id, staff, "Krank")

    assert set(kinds.values()) == mail_kinds()  # every kind there is was made at least once
    rows = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    assert len(rows) == len(kinds)
    for row in rows:
        kind = kinds[row.message_id]
        msg = strict(row.raw)
        assert parsedate_to_datetime(str(msg["Date"])).tzinfo is not None, kind
        assert abs(parsedate_to_datetime(str(msg["Date"])) - row.created_at) < timedelta(minutes=1), kind
        assert msg["Message-ID"] == row.message_id, kind
        assert str(msg["Reply-To"]) == app.config["ORG_EMAIL"], kind
        assert str(msg["Content-Language"]) in ("de", "en"), kind
        assert msg.get("Auto-Submitted") == ("auto-generated" if is_automatic(kind) else None), kind
    languages = {kinds[r.message_id]: str(strict(r.raw)["Content-Language"]) for r in rows}
    assert languages["materials/request_received"] == "en" and languages["materials/request_staff_notice"] == "de"
    automatic = {kind for kind in mail_kinds() if is_automatic(kind)}
    assert {"events/reminder", "materials/overdue_reminder", "accounts/application_staff_notice",
            "events/training_cancelled", "events/changed"} <= automatic
    assert {"accounts/reset_password", "events/confirm_registration"}.isdisjoint(automatic)


def test_reply_to_follows_its_setting(make_app, make_user):
    app = make_app(MAIL_REPLY_TO="fortbildung@planerladen.de")
    with app.app_context():
        msg = core.mail.build_message("a@example.org", "Betreff", "events/my_link", list_link="x", calendar_link="y")
        assert str(msg["Reply-To"]) == "fortbildung@planerladen.de"


def test_an_invitation_is_an_alternative_of_the_text_with_the_file_beside_it(app, make_training):
    training = make_training()
    result = registrations.register(training.id, "Ayşe Demir", "ayse@example.org")
    registrations.confirm_registration(links.confirm_token(result.registration))
    row = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc())).first()
    msg = strict(row.raw)
    assert tree(msg) == ["multipart/mixed", [
        ["multipart/alternative", ["text/plain", "text/html", "text/calendar;method=REQUEST"]],
        "application/ics"]]
    assert str(msg["Content-Language"]) == "de"
    assert [p for p in msg.walk() if p is not msg and "MIME-Version" in p] == []
    calendar_part = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
    attached = next(msg.iter_attachments())
    assert attached.get_filename() == "training.ics"
    assert attached.get_content().replace(b"\r\n", b"\n") == calendar_part.get_content().encode().replace(b"\r\n", b"\n")
    assert str(icalendar.Calendar.from_ical(attached.get_content())["method"]) == "REQUEST"


def test_register_cancel_and_register_again_are_three_messages_with_rising_sequence(app, make_training, make_user):
    long_ago = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    training = make_training()
    db.session.execute(update(Training).where(Training.id == training.id).values(updated_at=long_ago))
    db.session.commit()
    before = datetime.now(UTC).replace(microsecond=0)
    first = registrations.register(training.id, "Ayşe Demir", "ayse@example.org").registration
    registrations.confirm_registration(links.confirm_token(first))
    registrations.cancel_registration(links.manage_token(first))
    again = registrations.register(training.id, "Ayşe Demir", "ayse@example.org").registration
    registrations.confirm_registration(links.confirm_token(again))
    after = datetime.now(UTC) + timedelta(seconds=1)

    sent = invitations("ayse@example.org")
    assert [method for method, _cal in sent] == ["REQUEST", "CANCEL", "REQUEST"]
    events = [cal.walk("VEVENT")[0] for _method, cal in sent]
    sequences = [int(event["sequence"]) for event in events]
    assert sequences == sorted(set(sequences)) and len(sequences) == 3  # strictly rising
    for event in events:
        # DTSTAMP: when the message was made, not when the training last changed (RFC 5546).
        assert before <= event.decoded("dtstamp") <= after
        assert event.decoded("last-modified") == long_ago
    assert len({cal.to_ical() for _method, cal in sent}) == 3

    # The training's own sequence (what every feed shows) is never above a person's.
    db.session.expire_all()
    feed = icalendar.Calendar.from_ical(app.test_client().get(f"/events/{training.id}.ics").data)
    assert int(feed.walk("VEVENT")[0]["sequence"]) == db.session.get(Training, training.id).sequence
    assert int(feed.walk("VEVENT")[0]["sequence"]) <= sequences[0]
    assert feed.walk("VEVENT")[0].decoded("dtstamp") == long_ago  # a feed stays byte for byte the same

    # A change of the training raises it for the person too.
    staff_sequence = db.session.get(Training, training.id).sequence
    cancel_training(training.id, make_user(Role.STAFF), "Krank")
    method, cal = invitations("ayse@example.org")[-1]
    assert method == "CANCEL" and int(cal.walk("VEVENT")[0]["sequence"]) > max(sequences)
    assert int(cal.walk("VEVENT")[0]["sequence"]) >= staff_sequence + 1


def test_the_feeds_time_zone_repeats_yearly_and_agrees_with_the_zone(client, make_training):
    from zoneinfo import ZoneInfo

    make_training()
    feed = icalendar.Calendar.from_ical(client.get("/events/calendar.ics").data)
    (tz,) = feed.timezones
    raw = tz.to_ical()
    assert b"RDATE" not in raw and raw.count(b"RRULE:FREQ=YEARLY") == 2  # not lists of dates up to 2037
    # icalendar computes the offsets from the rules: they agree with the zone for years to come.
    berlin, zone = ZoneInfo("Europe/Berlin"), tz.to_tz()
    for year in (2026, 2031, 2045, 2060):
        for month, day, hour in ((3, 1, 12), (3, 31, 12), (7, 1, 12), (10, 30, 12), (12, 24, 18)):
            moment = datetime(year, month, day, hour)
            assert moment.replace(tzinfo=zone).utcoffset() == moment.replace(tzinfo=berlin).utcoffset(), moment


def test_libical_accepts_every_feed_and_every_invitation(app, client, make_training, make_user):
    staff = make_user(Role.STAFF)
    libical.require()
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=20)
    two_days = make_training(title="Zweitägig; mit Komma, Umlauten – äöü", description="Tag 1\nTag 2",
                             address="Schützenstraße 42\n44147 Dortmund", target_groups="housing",
                             sessions=[(start, start + timedelta(hours=6)),
                                       (start + timedelta(days=1), start + timedelta(days=1, hours=4))])
    online = make_training(title="Online", format=TrainingFormat.ONLINE, online_link="https://meet.example/x")
    gone = make_training(title="Abgesagt")
    person = registrations.register(two_days.id, "Ayşe Demir", "ayse@example.org").registration
    registrations.confirm_registration(links.confirm_token(person))
    registrations.register(online.id, "Ayşe Demir", "ayse@example.org")
    held = registrations.register(gone.id, "Ayşe Demir", "ayse@example.org").registration
    registrations.confirm_registration(links.confirm_token(held))
    save_training(two_days.id, training_input(db.session.get(Training, two_days.id), shift=timedelta(hours=2)),
                  staff)
    cancel_training(gone.id, staff, "Krank")
    registrations.cancel_registration(links.manage_token(person))

    notifications.send_my_registrations_link("ayse@example.org", "de")
    key = db.session.scalar(select(TraineeKey).where(TraineeKey.email == "ayse@example.org"))
    feeds = {url: client.get(url) for url in (
        "/events/calendar.ics", "/events/calendar.ics?target_group=housing", f"/events/{two_days.id}.ics",
        f"/events/{online.id}.ics", f"/events/{gone.id}.ics", f"/my/calendar/{links.calendar_token(key)}.ics")}
    for url, response in feeds.items():
        assert response.status_code == 200, url
        assert b"BEGIN:VEVENT" in response.data, url
        assert libical.problems(response.data) == [], url
    sent = invitations("ayse@example.org")
    assert sorted({method for method, _cal in sent}) == ["CANCEL", "REQUEST"] and len(sent) >= 4
    for method, cal in sent:
        assert libical.problems(cal.to_ical()) == [], method
    for row in db.session.scalars(select(OutboxMessage).where(OutboxMessage.to_addr == "ayse@example.org")):
        for part in strict(row.raw).iter_attachments():
            assert libical.problems(part.get_content()) == [], part.get_filename()


def test_a_name_ending_in_a_full_stop_ends_a_sentence_once_and_addresses_keep_their_lines(make_app):
    from types import SimpleNamespace

    other = make_app(ORG_NAME="Planerladen e.V.", ORG_STREET="c/o Haus der Vielfalt\nSchützenstraße 42",
                     IMPRINT_REPRESENTATIVE="Vorstand:\nAyşe Demir\nJonas Weber")
    with other.app_context():
        for locale in ("de", "en"):
            msg = strict(core.mail.build_message("nora@example.org", "Zugang", "accounts/set_password", locale,
                                                 user=SimpleNamespace(name="Nora"), link="https://x.test/", days=7)
                         .as_bytes())
            text, html = (msg.get_body((kind,)).get_content() for kind in ("plain", "html"))
            for body in (text, html):
                assert "e.V.." not in body and "Planerladen e.V." in body, locale
            assert "\nc/o Haus der Vielfalt\nSchützenstraße 42\n" in text.replace("\r\n", "\n")
            assert "c/o Haus der Vielfalt<br>Schützenstraße 42" in html
    client = other.test_client()
    imprint = client.get("/imprint").get_data(as_text=True)
    assert "c/o Haus der Vielfalt<br>Schützenstraße 42" in imprint
    assert "Vorstand:<br>Ayşe Demir<br>Jonas Weber" in imprint
    assert "Planerladen e.V. · c/o Haus der Vielfalt, Schützenstraße 42 · 44147 Dortmund" in imprint  # the footer
    assert "c/o Haus der Vielfalt<br>Schützenstraße 42" in client.get("/privacy").get_data(as_text=True)
