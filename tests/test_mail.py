"""The outbox: mail is part of the action's transaction and reaches a real SMTP server exactly once."""

import contextvars
import email
import email.policy
import logging
import threading
import time
from datetime import timedelta

from sqlalchemy import update
from werkzeug.test import EnvironBuilder

from accounts.models import Role
from core.after_response import sender
from core.extensions import db
from core.mail import OutboxMessage, OutboxStatus, backoff, deliver_pending, queue_mail
from core.models import utcnow


def rows() -> list[OutboxMessage]:
    return db.session.scalars(db.select(OutboxMessage).order_by(OutboxMessage.id)).all()


def parse(envelope) -> email.message.EmailMessage:
    return email.message_from_bytes(envelope.content, policy=email.policy.default)


def make_due() -> None:
    """Let the back-off time pass."""
    db.session.execute(update(OutboxMessage).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()


def test_mail_is_delivered_as_text_and_html_in_the_recipients_language(client, make_user, smtp_server):
    german = make_user(locale="de")
    english = make_user(locale="en")
    for user in (german, english):
        assert client.post("/password/forgot", data={"email": user.email}).status_code == 302
    assert deliver_pending().sent == 2
    german_mail, english_mail = (parse(m) for m in smtp_server.wait_for(2))

    assert german_mail["To"] == german.email
    assert german_mail["Subject"] == "Ihr Fundus-Passwort zurücksetzen"
    assert english_mail["Subject"] == "Reset your Fundus password"
    sender = german_mail["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("Planerladen e.V.", "fundus@planerladen.test")
    text = german_mail.get_body(("plain",)).get_content()
    html = german_mail.get_body(("html",)).get_content()
    assert "Guten Tag" in text and "http://fundus.test/password/reset/" in text
    assert "<a href=\"http://fundus.test/password/reset/" in html
    # The organisation's signature from configuration closes every mail.
    assert "Schützenstraße 42" in text and "Schützenstraße 42" in html
    assert "someone (hopefully you)" in english_mail.get_body(("plain",)).get_content()
    assert all(row.status == OutboxStatus.SENT for row in rows())


def test_server_down_keeps_mail_until_it_is_back(client, make_user, smtp_down, runner):
    user = make_user()
    response = client.post("/password/forgot", data={"email": user.email})
    assert response.status_code == 302  # the action succeeds while the server is down

    report = deliver_pending()
    assert (report.sent, report.failed) == (0, 1)
    (row,) = rows()
    assert row.status == OutboxStatus.PENDING and row.attempts == 1
    assert "Connection refused" in row.last_error or "Errno" in row.last_error
    assert row.next_attempt_at > utcnow()
    # Not due yet: a run now does not hammer the server.
    assert deliver_pending().failed == 0

    smtp_down.start()
    make_due()
    result = runner.invoke(args=["jobs", "run"])
    assert result.exit_code == 0, result.output
    assert "mail: 1 sent, 0 failed" in result.output
    assert len(smtp_down.wait_for(1)) == 1
    db.session.expire_all()
    assert rows()[0].status == OutboxStatus.SENT

    # Running the job again sends nothing twice.
    runner.invoke(args=["jobs", "run"])
    runner.invoke(args=["jobs", "run"])
    assert len(smtp_down.messages) == 1


def test_a_failed_action_leaves_no_mail(app, make_user):
    user = make_user()
    queue_mail(user.email, "Betreff", "accounts/reset_password", user=user, link="x", hours=2)
    db.session.rollback()
    assert rows() == []


def test_concurrent_runs_send_each_message_once(app, make_user, smtp_server):
    user = make_user()
    for n in range(20):
        queue_mail(user.email, f"Nachricht {n}", "accounts/reset_password", user=user, link="x", hours=2)
    db.session.commit()

    barrier = threading.Barrier(4)
    errors = []

    def run():
        try:
            with app.app_context():
                barrier.wait()
                deliver_pending()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    received = smtp_server.wait_for(20)
    subjects = sorted(parse(m)["Subject"] for m in received)
    assert subjects == sorted(f"Nachricht {n}" for n in range(20))
    db.session.expire_all()
    assert {row.status for row in rows()} == {OutboxStatus.SENT}


def test_delivery_right_after_the_request(app, client, make_user, smtp_server):
    app.config["MAIL_SEND_AFTER_REQUEST"] = True
    user = make_user()
    response = client.post("/password/forgot", data={"email": user.email})
    response.close()
    assert len(smtp_server.wait_for(1)) == 1
    sender.wait()
    assert rows()[0].status == OutboxStatus.SENT


def test_delivery_after_the_request_does_not_need_the_server_to_close_the_response(make_app, make_user, smtp_server):
    """Werkzeug's development server skips the response's close() when the browser resets the
    connection after a redirect; the mail was then left for ``jobs run`` (the once-flaky waiting-list
    journey). Here the response is read but never closed."""
    address = make_user().email
    other = make_app(MAIL_SEND_AFTER_REQUEST=True, WTF_CSRF_ENABLED=False, MAIL_SERVER="127.0.0.1",
                     MAIL_PORT=smtp_server.port)
    db.session.rollback()  # the test holds no lock while the request runs
    statuses = []
    environ = EnvironBuilder(path="/password/forgot", method="POST", data={"email": address}).get_environ()
    body = contextvars.Context().run(other.wsgi_app, environ,
                                     lambda status, headers, exc_info=None: statuses.append(status))
    list(body)
    assert statuses == ["302 FOUND"]
    assert len(smtp_server.wait_for(1, timeout=10)) == 1
    sender.wait()
    assert rows()[0].status == OutboxStatus.SENT


def test_without_mail_server_mail_goes_to_the_log_readably(app, make_user, caplog):
    """The demo has no mail server: each mail is printed as a person reads it (recipient, subject,
    the decoded text with every link whole on its line), not as quoted-printable MIME."""
    user = make_user()
    link = "http://fundus.test/password/reset/" + "Ab_c-9" * 20  # far longer than a MIME line
    queue_mail(user.email, "Passwort zurücksetzen – Schützenstraße", "accounts/reset_password", user=user,
               link=link, hours=2)
    db.session.commit()
    with caplog.at_level(logging.INFO, logger="fundus.mail"):
        assert deliver_pending().sent == 1
    lines = caplog.text.splitlines()
    assert f"To: {user.email}" in lines
    assert "Subject: Passwort zurücksetzen – Schützenstraße" in lines
    assert link in lines  # whole, on a line of its own: copy it into the browser
    assert "Guten Tag" in caplog.text and "Schützenstraße 42" in caplog.text  # text, decoded
    assert "Content-Transfer-Encoding" not in caplog.text and "=C3=BC" not in caplog.text
    assert rows()[0].status == OutboxStatus.SENT


def test_back_off_grows_and_gives_up_after_the_limit(app, client, make_user, smtp_down, login):
    app.config["MAIL_MAX_ATTEMPTS"] = 3
    assert [backoff(n) for n in (1, 2, 3)] == [timedelta(minutes=m) for m in (1, 2, 4)]
    assert backoff(30) == timedelta(hours=6)
    user = make_user()
    queue_mail(user.email, "Bleibt liegen", "accounts/reset_password", user=user, link="x", hours=2)
    db.session.commit()
    for _ in range(3):
        make_due()
        deliver_pending()
    (row,) = rows()
    assert row.status == OutboxStatus.FAILED and row.attempts == 3

    # An admin sees it and puts it back in the queue once the server works again.
    login(make_user(Role.ADMIN))
    page = client.get("/admin/outbox").get_data(as_text=True)
    assert "Bleibt liegen" in page and "aufgegeben" in page
    assert client.post(f"/admin/outbox/{row.id}/retry").status_code == 302
    smtp_down.start()
    assert deliver_pending().sent == 1
    assert len(smtp_down.wait_for(1)) == 1


def test_a_title_with_line_breaks_never_breaks_the_action_or_the_mail(app, make_training, make_user):
    """A line feed in a title made the subject header refuse the mail and the action that queued it
    answered 500; a U+2028 left its mail pending for ever."""
    from events import registrations, trainings

    training = make_training(title="Fachtag\nWohnen\u20282027")
    registrations.register(training.id, "Rita", "rita@example.org")
    assert trainings.cancel_training(training.id, make_user(Role.STAFF)) == 1
    subject = db.session.scalar(db.select(OutboxMessage.subject).where(OutboxMessage.subject.like("Abgesagt%")))
    assert subject == "Abgesagt: Fachtag Wohnen 2027"
    assert deliver_pending().sent == 2  # in the log, without a mail server


def test_a_message_that_can_never_be_sent_fails_with_its_reason_and_blocks_nothing(app, make_user, smtp_server):
    """An address the mail server cannot take (non-ASCII without SMTPUTF8) raised out of the delivery
    run on every run, so the mails after it waited too."""
    poison = queue_mail("jürgen@müller.example", "Gift", "accounts/reset_password", user=make_user(), link="x",
                        hours=2)
    queue_mail("ok@example.org", "Gut", "accounts/reset_password", user=make_user(), link="x", hours=2)
    db.session.commit()
    report = deliver_pending()
    assert (report.sent, report.failed) == (1, 1)
    db.session.expire_all()
    failed = db.session.get(OutboxMessage, poison.id)
    assert failed.status == OutboxStatus.FAILED and "UnicodeEncodeError" in failed.last_error
    assert [parse(m)["Subject"] for m in smtp_server.wait_for(1)] == ["Gut"]
    make_due()
    assert deliver_pending().failed == 0  # not tried again and again


def test_two_overlapping_runs_with_a_slow_server_send_every_mail_once(app, make_user):
    """The lease counted from the start of a run: a slow run's claims were born expired and a second
    run sent the same messages again (12 of 200 with a 300 s lease, 72 of 101 with 3 s)."""
    import asyncio

    from aiosmtpd.controller import Controller

    from tests.conftest import free_port

    received = []

    class Slow:
        async def handle_DATA(self, server, session, envelope):
            await asyncio.sleep(0.15)
            received.append(parse(envelope)["Message-ID"])
            return "250 OK"

    port = free_port()
    controller = Controller(Slow(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=port, MAIL_CLAIM_SECONDS=1)
        user = make_user()
        for n in range(16):
            queue_mail(f"r{n}@example.org", f"Nachricht {n}", "accounts/reset_password", user=user, link="x", hours=2)
        db.session.commit()
        errors = []

        def run(delay):
            time.sleep(delay)
            try:
                with app.app_context():
                    deliver_pending()
            except Exception as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(delay,)) for delay in (0, 1.3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        controller.stop()
    assert errors == []
    assert len(received) == 16 and len(set(received)) == 16


def test_a_hung_mail_server_never_holds_up_the_request_or_the_next_page(app, client, make_user):
    """The server accepts the connection and never answers: the request that queued mail and every
    page after it answer at once; the mail waits for the next run."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=listener.getsockname()[1], MAIL_TIMEOUT=4,
                          MAIL_SEND_AFTER_REQUEST=True)
        email_address = make_user().email
        started = time.monotonic()
        client.post("/password/forgot", data={"email": email_address}).close()
        time.sleep(0.3)  # the sender thread is talking to the hung server now
        for _ in range(3):
            assert client.get("/imprint").status_code == 200
        # Another request that writes is not held up either (no transaction stays open during the send).
        assert client.post("/my/registrations", data={"email": "x@example.org"}).status_code == 200
        assert time.monotonic() - started < 2
    finally:
        sender.wait()  # the thread gives up after the timeout; the mail stays pending
        listener.close()
    assert rows()[0].status == OutboxStatus.PENDING and rows()[0].attempts == 1  # tried again later
