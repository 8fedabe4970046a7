"""What the privacy notice promises (DOMAIN rule 7): mails, health answers, rejected applications and
a person's keys go when their time is up, the notice states every period from configuration, and
after every period nothing personal is left in any table."""

import email
import email.policy
import hashlib
import re
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select, update

from accounts.applications import delete_old_rejected_applications, reject_application
from accounts.models import AccountApplication, Role
from core.audit import AuditEntry
from core.extensions import db
from core.mail import OutboxMessage, OutboxStatus, deliver_pending, erase_old_mails, queue_mail, retry_failed
from core.models import utcnow
from core.privacy import PRIVACY_VERSION
from core.security import hash_token
from events import notifications, registrations
from events.errors import EventsError
from events.models import Registration, TraineeKey, TrainingSession
from events.personal_data import anonymise_old_registrations, forget_health_answers
from tests.conftest import mail_text

LONG_AGO = timedelta(days=400)


@pytest.fixture
def staff_client(app, make_user, login):
    """A second browser, signed in as staff (the test's ``client`` stays anonymous)."""
    browser = app.test_client()
    login(make_user(Role.STAFF), the_client=browser)
    return browser


def age_training(training_id: int, by: timedelta = LONG_AGO) -> None:
    """Move a training's sessions into the past (the registrations stay as they are)."""
    sessions = db.session.scalars(select(TrainingSession).where(TrainingSession.training_id == training_id)).all()
    for session in sessions:
        session.starts_at -= by
        session.ends_at -= by
    db.session.commit()


def mail_row(**values) -> OutboxMessage:
    row = queue_mail("ida@example.org", "Hallo", "events/my_link", list_link="http://fundus.test/my/registrations/x",
                     calendar_link="http://fundus.test/my/calendar/x.ics")
    for key, value in values.items():
        setattr(row, key, value)
    db.session.commit()
    return row


# Mails ---------------------------------------------------------------------------------------------


def test_sent_mails_lose_text_and_recipient_after_the_keep_days(app):
    app.config["MAIL_KEEP_DAYS"] = 30
    old_sent = mail_row(status=OutboxStatus.SENT, sent_at=utcnow(), created_at=utcnow() - timedelta(days=31))
    old_failed = mail_row(status=OutboxStatus.FAILED, last_error="550 ida@example.org unknown",
                          created_at=utcnow() - timedelta(days=31))
    old_waiting = mail_row(created_at=utcnow() - timedelta(days=31))  # not out yet: never lost
    recent = mail_row(status=OutboxStatus.SENT, sent_at=utcnow(), created_at=utcnow() - timedelta(days=29))
    assert erase_old_mails() == 2
    db.session.expire_all()
    for row in (old_sent, old_failed):
        assert (row.raw, row.to_addr, row.last_error) == (b"", "", "") and row.erased_at is not None
        assert row.kind == "events/my_link" and row.subject == ""  # staff still see that it went out, and what kind
    assert old_waiting.raw and old_waiting.to_addr == "ida@example.org" and old_waiting.erased_at is None
    assert recent.raw and recent.to_addr == "ida@example.org"
    assert retry_failed(old_failed.id, "system") is False  # an erased mail is never sent again


def test_anonymising_erases_the_mails_and_the_keys_of_the_address_at_once(app, client, make_training):
    """The keys of an address (its "my registrations" link and calendar) and every mail to it go with
    its last registration's personal data, whatever MAIL_KEEP_DAYS says."""
    app.config["MAIL_KEEP_DAYS"] = 3650
    old = make_training(title="Alt")
    recent = make_training(title="Neu")
    registrations.register(old.id, "Tara Test", "tara@example.org")
    registrations.register(recent.id, "Udo Bleibt", "udo@example.org")
    assert notifications.send_my_registrations_link("tara@example.org", "de")
    assert notifications.send_my_registrations_link("udo@example.org", "de")
    db.session.commit()
    deliver_pending()
    tara_mails = db.session.scalars(select(OutboxMessage).where(OutboxMessage.to_addr == "tara@example.org")
                                    .order_by(OutboxMessage.id)).all()
    list_path = re.search(r"/my/registrations/[\w-]+", mail_text(tara_mails[-1])).group(0)
    assert client.get(list_path).status_code == 200
    age_training(old.id)

    assert anonymise_old_registrations() == 1
    db.session.expire_all()
    assert db.session.scalars(select(TraineeKey.email)).all() == ["udo@example.org"]  # Tara's keys are gone
    assert client.get(list_path).status_code == 404
    for row in tara_mails:
        assert (row.raw, row.to_addr) == (b"", "") and row.erased_at is not None
    kinds = sorted(row.kind for row in tara_mails)
    assert kinds == ["events/confirm_registration", "events/my_link"]
    udo = db.session.scalars(select(OutboxMessage).where(OutboxMessage.to_addr == "udo@example.org")).all()
    assert len(udo) == 2 and all(row.raw for row in udo)  # someone else's keep theirs


def test_deleting_a_person_keeps_only_that_mails_went_out(staff_client, make_training):
    registrations.register(make_training().id, "Rita Roth", "rita@example.org")
    db.session.commit()
    deliver_pending()  # the first mail went out
    registrations.register(make_training().id, "Rita Roth", "rita@example.org")  # the second not yet
    db.session.commit()
    staff_client.post("/events/staff/people/delete", data={"email": "rita@example.org"})
    (row,) = db.session.scalars(select(OutboxMessage)).all()  # the unsent one is dropped
    assert (row.raw, row.to_addr, row.status) == (b"", "", OutboxStatus.SENT)
    assert row.kind == "events/confirm_registration" and row.sent_at is not None


# Health answers and consent --------------------------------------------------------------------


def test_a_registration_nobody_confirmed_loses_its_personal_data_when_it_expires(make_training):
    """Anyone can type a stranger's address into the form: when the hold runs out unconfirmed, name and
    address go at the next run, not a year after the training; confirmed registrations stay."""
    from events.links import confirm_token
    from events.seats import expire_holds

    training = make_training(seats=5)
    stranger = registrations.register(training.id, "Fremde Person", "fremd@example.org").registration
    kept = registrations.register(training.id, "Echte Person", "echt@example.org").registration
    registrations.confirm_registration(confirm_token(kept))
    db.session.execute(update(Registration).where(Registration.id == stranger.id)
                       .values(hold_expires_at=utcnow() - timedelta(minutes=1)))
    db.session.commit()
    assert expire_holds() == 1
    assert anonymise_old_registrations() == 1
    gone, stays = db.session.get(Registration, stranger.id), db.session.get(Registration, kept.id)
    assert gone.name == "" and gone.email.endswith("@invalid") and gone.status.value == "expired"
    assert stays.name == "Echte Person" and stays.email == "echt@example.org"
    assert not [m for m in db.session.scalars(select(OutboxMessage)) if m.to_addr == "fremd@example.org"]


def test_health_answers_are_deleted_when_the_training_has_ended(make_training):
    ended = make_training(ask_accessibility=True, ask_dietary=True, free_question="Fälle?")
    coming = make_training(ask_dietary=True)
    answers = '{"accessibility": "Rollstuhl", "dietary": "glutenfrei", "free_answer": "Zwei"}'
    registrations.register(ended.id, "Ava", "ava@example.org", answers=answers, health_consent=True)
    registrations.register(coming.id, "Ben", "ben@example.org", answers='{"dietary": "vegan"}', health_consent=True)
    db.session.commit()
    age_training(ended.id, timedelta(days=15))

    assert forget_health_answers() == 1
    rows = dict(db.session.execute(select(Registration.email, Registration.answers)).all())
    assert rows == {"ava@example.org": '{"free_answer": "Zwei"}', "ben@example.org": '{"dietary": "vegan"}'}
    ava = db.session.scalar(select(Registration).where(Registration.email == "ava@example.org"))
    assert ava.health_consent_at is not None and ava.privacy_version == PRIVACY_VERSION


def test_health_answers_are_refused_without_their_own_consent(make_training):
    """The rule is the service's, whoever calls it: no accessibility or dietary answer without consent."""
    training = make_training(ask_dietary=True)
    with pytest.raises(EventsError, match="Einwilligung"):
        registrations.register(training.id, "Cem", "cem@example.org", answers='{"dietary": "halal"}')
    db.session.rollback()
    assert db.session.scalars(select(Registration)).all() == []
    registrations.register(training.id, "Cem", "cem@example.org", answers='{"free_answer": "ja"}')
    assert db.session.scalar(select(Registration.health_consent_at)) is None


# Rejected applications -------------------------------------------------------------------------


def test_rejected_applications_are_deleted_after_the_configured_days(app, client, make_user):
    app.config["REJECTED_APPLICATION_KEEP_DAYS"] = 90
    staff = make_user(Role.STAFF)
    for address in ("alt@example.org", "neu@example.org", "offen@example.org"):
        client.post("/apply", data={"name": f"Person {address}", "email": address, "organisation_name": "Verein X"})
    rows = {a.email: a for a in db.session.scalars(select(AccountApplication))}
    for address in ("alt@example.org", "neu@example.org"):
        reject_application(rows[address].id, staff, f"Nicht passend, {address}")
    old_id = rows["alt@example.org"].id
    db.session.execute(update(AccountApplication).where(AccountApplication.id == old_id)
                       .values(decided_at=utcnow() - timedelta(days=91)))
    db.session.commit()
    deliver_pending()

    assert delete_old_rejected_applications() == 1
    db.session.expire_all()
    assert sorted(db.session.scalars(select(AccountApplication.email))) == ["neu@example.org", "offen@example.org"]
    about_old = db.session.scalars(select(OutboxMessage).where(OutboxMessage.about_type == "application",
                                                               OutboxMessage.about_id == old_id)).all()
    assert len(about_old) == 3 and all(m.raw == b"" and m.to_addr == "" for m in about_old)  # staff notice too
    entries = db.session.scalars(select(AuditEntry).where(AuditEntry.object_type == "application",
                                                          AuditEntry.object_id == old_id)
                                  .order_by(AuditEntry.id)).all()
    assert [e.action for e in entries] == ["submit", "reject", "delete"]
    assert all(e.reason == "" for e in entries)  # the reason typed about her is gone
    kept = db.session.scalar(select(AuditEntry.reason).where(AuditEntry.action == "reject",
                                                            AuditEntry.object_id == rows["neu@example.org"].id))
    assert kept == "Nicht passend, neu@example.org"


# The notice ------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang, expected", [
    ("de", ["47 Stunden", "13 Monate", "31 Tage", "97 Tage", "364 Tagen", "16 Minuten", "nach 6 Tagen",
            "Unterschriftenliste"]),
    ("en", ["47 hours", "13 months", "31 days", "97 days", "364 days", "16 minutes", "after 6 days",
            "sign-in sheet"]),
])
def test_the_privacy_notice_states_every_period_from_configuration(make_app, lang, expected):
    other = make_app(REGISTRATION_HOLD_HOURS=47, REGISTRATION_RETENTION_MONTHS=13, MAIL_KEEP_DAYS=31,
                     REJECTED_APPLICATION_KEEP_DAYS=97, REMEMBER_DAYS=364, LOGIN_LOCK_MINUTES=16, SERVER_LOG_DAYS=6,
                     PRIVACY_PROCESSORS="Hostbetrieb Muster GmbH (Server), Mailversand Muster AG")
    client = other.test_client()
    client.set_cookie("lang", lang)
    page = client.get("/privacy").get_data(as_text=True)
    for text in expected:
        assert text in page, text
    assert "Hostbetrieb Muster GmbH (Server), Mailversand Muster AG" in page
    assert PRIVACY_VERSION in page
    assert "Art. 9" in page  # the explicit consent to health answers


# After every period ----------------------------------------------------------------------------

NAME = "Zoë Zimmermann-Privat"
EMAIL = "zoe.privat@example.org"
PHONE = "0231 98765432"
ORGANISATION = "Verein Privatzeugnis e.V."


def _texts(value) -> list[str]:
    """What a stored value says, a mail decoded as its reader would see it."""
    if isinstance(value, bytes):
        if not value:
            return []
        message = email.message_from_bytes(value, policy=email.policy.default)
        found = [value.decode(errors="replace")] + [str(v) for v in message.values()]
        for part in message.walk():
            if part.get_content_maintype() == "text":
                found.append(part.get_content())
        return found
    return [str(value)] if value is not None else []


def scan(needles: dict[str, str]) -> set[tuple[str, str, str]]:
    """(table, column, what) for every column of every table that holds one of the needles."""
    found = set()
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(table.select()).mappings():
            for column, value in row.items():
                for text in _texts(value):
                    found |= {(table.name, column, what) for what, needle in needles.items()
                              if needle.lower() in text.lower()}
    return found


def test_after_every_period_nothing_personal_is_left_in_any_table(app, client, staff_client, make_training,
                                                                  runner):
    """A whole life: an application (rejected with a reason that names her), registrations with every
    optional answer, confirmed, attended, a certificate, a staff message, one cancelled by staff with
    a reason, the "my registrations" link, a failed sign-in, every mail sent. After every period and
    every job, no table holds her name, address, phone, organisation or any of her links."""
    client.post("/apply", data={"name": NAME, "email": EMAIL, "organisation_name": ORGANISATION,
                                "position": "Leitung", "phone": PHONE, "message": f"Viele Grüße, {NAME}"})
    application = db.session.scalar(select(AccountApplication))
    staff_client.post(f"/staff/applications/{application.id}/reject", data={"reason": f"Leider nicht, {NAME}."})

    start = utcnow().replace(microsecond=0) + timedelta(days=3)
    full = make_training(title="Alles gefragt", ask_accessibility=True, ask_dietary=True,
                         free_question="Was erwarten Sie?",
                         sessions=[(start, start + timedelta(hours=6)),
                                   (start + timedelta(days=1), start + timedelta(days=1, hours=6))])
    second = make_training(title="Abgesagt")
    client.post(f"/events/{full.id}", data={
        "name": NAME, "email": EMAIL, "organisation": ORGANISATION, "position": "Leitung",
        "accessibility": "Rollstuhl", "dietary": "glutenfrei", "free_answer": f"{NAME} bringt zwei Fälle mit",
        "health_consent": "y"})
    client.post(f"/events/{second.id}", data={"name": NAME, "email": EMAIL, "organisation": ORGANISATION})
    mine = {r.training_id: r for r in db.session.scalars(select(Registration))}
    assert set(mine) == {full.id, second.id}

    def mail_texts() -> str:
        return "\n".join(mail_text(m) for m in db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.to_addr == EMAIL)))

    confirm_path = re.search(r"/events/registrations/confirm/[\w-]+", mail_texts()).group(0)
    client.post(confirm_path)
    sessions = [s.id for s in db.session.scalars(select(TrainingSession).where(TrainingSession.training_id == full.id))]
    staff_client.post(f"/events/staff/{full.id}/attendance",
                      data={"present": [f"{mine[full.id].id}:{s}" for s in sessions],
                            "override_reason": "Liste vorab"})  # the training is still to come
    staff_client.post(f"/events/staff/registrations/{mine[full.id].id}/certificate",
                      data={"override_reason": "Abreise vor dem Ende"})
    staff_client.post(f"/events/staff/{full.id}/message", data={"subject": "Raumänderung", "body": "Raum 2.04"})
    staff_client.post(f"/events/staff/registrations/{mine[second.id].id}/cancel",
                      data={"reason": f"{NAME} ist verhindert"})
    client.post("/my/registrations", data={"email": EMAIL})
    client.post("/login", data={"email": EMAIL, "password": "nicht-ihr-passwort"})
    assert "0 failed" in runner.invoke(args=["jobs", "run"]).output  # every mail out

    tokens = set(re.findall(r"/(?:events/registrations(?:/confirm)?|my/registrations|my/calendar)/([\w-]{20,})",
                            mail_texts()))
    assert len(tokens) >= 4  # manage, confirm, list, calendar
    needles = {"name": "Zimmermann-Privat", "e-mail": EMAIL, "phone": PHONE, "organisation": "Privatzeugnis",
               "address key": hashlib.sha256(EMAIL.encode()).hexdigest()}
    needles |= {f"token {i}": token for i, token in enumerate(sorted(tokens))}
    needles |= {f"token hash {i}": hash_token(token) for i, token in enumerate(sorted(tokens))}
    before = scan(needles)
    assert {what for _table, _column, what in before} >= {"name", "e-mail", "phone", "organisation", "address key"}
    assert "Rollstuhl" in mine[full.id].answers  # she told us, with consent

    with time_machine.travel(utcnow() + timedelta(days=800), tick=False):
        output = runner.invoke(args=["jobs", "run"]).output
        assert "1 deleted" in output and "2 anonymised" in output, output

    db.session.expire_all()
    assert scan(needles | {"health answer": "Rollstuhl"}) == set()
    # What the figures need stays: the registrations, her attendance, that mails went out.
    assert db.session.scalar(select(Registration).where(Registration.training_id == full.id)).attended
    assert db.session.scalars(select(OutboxMessage.kind).where(OutboxMessage.erased_at.is_not(None))).all()
