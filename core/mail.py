"""Mail outbox: messages are written in the caller's transaction and delivered later.

``queue_mail`` renders a message in the recipient's language and adds it to the
session; whatever commits the action commits the mail with it, and a rolled-back
action takes its mail along. ``build_message`` is the one place that decides the
headers every message carries (RFC 5322 and RFC 3834, see its docstring) and the
layout of a calendar invitation (RFC 6047). ``deliver_pending`` sends what is due over SMTP
(or, when no server is configured, to the log as a person reads it: ``readable``), with back-off on failure. A row is
claimed by a conditional update before it is sent, so two runs at once never
send the same message twice.

A message keeps its text and recipient only as long as needed: ``erase_mails`` forgets both, the
subject (staff may have typed it) and the last error (it may quote the address), and keeps that a
mail of which ``kind`` (its template) went out when. ``jobs run`` erases every message older than
``MAIL_KEEP_DAYS``; the features erase the mails ``about`` an object at once when its personal data
goes (``events.personal_data``, ``accounts.applications``).
"""

import email
import email.policy
import enum
import logging
import re
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid
from zoneinfo import ZoneInfo

from flask import current_app, g, has_request_context, render_template
from flask_babel import force_locale
from sqlalchemy import Enum, Index, LargeBinary, String, Text, delete, or_, update
from sqlalchemy.orm import Mapped, mapped_column

from core import audit
from core.db import unit_of_work
from core.extensions import db
from core.models import utcnow

log = logging.getLogger("fundus.mail")


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class OutboxMessage(db.Model):
    """One e-mail, complete as it will go over the wire, and its delivery state."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        Index("ix_outbox_messages_due", "status", "next_attempt_at"),
        Index("ix_outbox_messages_about", "about_type", "about_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    to_addr: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(255))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[OutboxStatus] = mapped_column(
        Enum(
            OutboxStatus,
            name="outbox_status",
            native_enum=False,
            create_constraint=True,
            length=16,
            values_callable=lambda cls: [m.value for m in cls],
        ),
        default=OutboxStatus.PENDING,
    )
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(80), default="")  # the template, e.g. "events/reminder"
    # What the mail is about (an audit type and id, e.g. a registration): its mails are erased with it.
    about_type: Mapped[str] = mapped_column(String(40), default="")
    about_id: Mapped[int | None]
    erased_at: Mapped[datetime | None]  # text, recipient and error forgotten

    @property
    def gave_up(self) -> bool:
        """Every attempt failed; an admin may queue it again."""
        return self.status == OutboxStatus.FAILED


@dataclass
class Attachment:
    filename: str
    content_type: str  # "application/pdf"
    data: bytes
    params: dict[str, str] | None = None  # extra Content-Type parameters


@dataclass
class Invitation:
    """An iCalendar object with a METHOD (REQUEST, CANCEL) sent by mail (iMIP, RFC 6047)."""

    data: bytes
    method: str
    filename: str = "invitation.ics"


# The mails that answer the recipient's own action on the site (a form they sent, a button they
# pressed). Every other kind is automatic: reminders, notices to staff, decisions and messages of staff,
# a seat freed, a training changed or cancelled, a registration cancelled (by the person or by staff).
# Automatic mails say so with ``Auto-Submitted: auto-generated`` (RFC 3834), which keeps vacation
# responders quiet; a kind not named here counts as automatic.
ANSWERS = frozenset({
    "accounts/application_received",  # the applicant sent the form
    "accounts/application_pending",  # the form again while the address's application is open
    "accounts/application_known_address",  # the form with an address that has an account
    "accounts/reset_password",  # "forgot password"
    "events/confirm_registration",  # the registration form
    "events/waiting_list",  # the registration form, training full
    "events/manage_link",  # the registration form again, same address
    "events/confirmed",  # the confirm button
    "events/my_link",  # "my registrations"
    "materials/request_received",  # the partner submitted a request
})


def is_automatic(template: str) -> bool:
    """Whether a mail kind is sent by the system rather than in answer to the recipient's action."""
    return template not in ANSWERS


def build_message(to: str, subject, template: str, locale: str = "de", attachments: tuple[Attachment, ...] = (),
                  invitation: Invitation | None = None, **context) -> EmailMessage:
    """Render ``mail/<template>.txt`` and ``.html`` in ``locale`` into a complete message.

    Every message has ``Date`` (RFC 5322: the moment it is made, that is when the action that
    queued it happened, in the site's time zone; a message that waits in the outbox for the mail
    server keeps it, as the origination date should), a ``Message-ID`` (kept in the outbox),
    ``Reply-To`` (``MAIL_REPLY_TO``), ``Content-Language`` and, for automatic kinds
    (``is_automatic``), ``Auto-Submitted: auto-generated``.

    An ``invitation`` goes where calendar clients look for it (RFC 6047, the layout Outlook and
    Gmail send): ``multipart/mixed`` of ``multipart/alternative`` (text/plain, text/html,
    ``text/calendar; method=…``) and the same calendar once more as an ``application/ics``
    attachment for clients that only import files (not a second text/calendar part, which some
    clients would show as a second invitation).

    ``subject`` may be a lazy string; it is evaluated in the recipient's language."""
    cfg = current_app.config
    with force_locale(locale):
        subject_text = header_text(str(subject))
        context.update(subject=subject_text, signature=cfg["MAIL_SIGNATURE"])
        body_text = render_template(f"mail/{template}.txt", **context)
        body_html = render_template(f"mail/{template}.html", **context)

    msg = EmailMessage(policy=SMTP)
    msg["Date"] = format_datetime(utcnow().astimezone(ZoneInfo(cfg["TIMEZONE"])))
    msg["Subject"] = subject_text
    msg["From"] = formataddr((header_text(cfg["ORG_NAME"]), cfg["MAIL_FROM"]))
    if cfg["MAIL_REPLY_TO"]:
        msg["Reply-To"] = header_text(cfg["MAIL_REPLY_TO"])
    msg["To"] = header_text(to)
    msg["Message-ID"] = make_msgid(domain=cfg["MAIL_FROM"].rpartition("@")[2] or None)
    if is_automatic(template):
        msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(body_text)
    msg.add_alternative(body_html, subtype="html")
    if invitation is not None:
        msg.add_alternative(invitation.data.decode(), subtype="calendar", params={"method": invitation.method})
        msg.add_attachment(invitation.data, maintype="application", subtype="ics", filename=invitation.filename)
    for attachment in attachments:
        maintype, _slash, subtype = attachment.content_type.partition("/")
        params = dict(attachment.params or {})
        if maintype == "text":
            params.setdefault("charset", "utf-8")  # our text attachments are UTF-8
        msg.add_attachment(attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename,
                           params=params)
    for part in msg.walk():  # MIME-Version belongs to the message, not to each part Python made
        if part is not msg:
            del part["MIME-Version"]
    # Last: set_content() clears every Content-* header of the message, and turning it into a
    # multipart moves them into the first part; set before, the language was silently lost.
    msg["Content-Language"] = locale
    return msg


def queue_mail(to: str, subject, template: str, locale: str = "de", attachments: tuple[Attachment, ...] = (),
               invitation: Invitation | None = None, about=None, **context) -> OutboxMessage:
    """Build the message (``build_message``) and add it to the outbox in the caller's transaction.

    ``about`` is the object the mail is about (a registration, an application): when its personal
    data is removed, so are the mail's text and recipient."""
    msg = build_message(to, subject, template, locale, attachments, invitation, **context)
    if about is not None and about.id is None:
        db.session.flush()  # a new object gets its id
    row = OutboxMessage(
        message_id=msg["Message-ID"], to_addr=to, subject=str(msg["Subject"])[:255], raw=msg.as_bytes(),
        kind=template, about_type=audit.type_of(about) if about is not None else "",
        about_id=about.id if about is not None else None,
    )
    db.session.add(row)
    db.session.flush()
    if has_request_context() or g.get("collect_outbox"):
        g.setdefault("outbox_ids", []).append(row.id)
        g.mailed = True  # counts against the address's limit (core.limits)
    return row


# Characters that end a line in a header (or in Python's idea of one), and other controls: a title
# with a line feed made the subject header refuse the whole mail, and the action that queued it.
_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")


def header_text(value: str) -> str:
    """A value fit for a mail header: one line, no control characters."""
    return _LINE_BREAKS.sub(" ", value).strip()


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0

    def __str__(self) -> str:
        return f"{self.sent} sent, {self.failed} failed"


def backoff(attempts: int) -> timedelta:
    """Wait 1, 2, 4 … minutes after each failed attempt, at most six hours."""
    return timedelta(minutes=min(2 ** max(attempts - 1, 0), 360))


@dataclass
class _Claimed:
    id: int
    to_addr: str
    raw: bytes
    attempts: int


def _claim(message_id: int) -> _Claimed | None:
    """Take one due message for this run, right before sending it, and read what to send; None if
    another run has it or it is not due. The lease counts from now, not from the start of the run:
    a slow run's claims were born expired, and a second run sent the same messages again. The claim
    commits at once: no transaction stays open while the mail server is talked to (on SQLite it
    would hold the write lock, and every other writer would wait for the mail server)."""
    now = utcnow()
    lease = timedelta(seconds=current_app.config["MAIL_CLAIM_SECONDS"])
    row = db.session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id == message_id,
            OutboxMessage.status == OutboxStatus.PENDING,
            OutboxMessage.next_attempt_at <= now,
            or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
        )
        .values(claimed_until=now + lease, attempts=OutboxMessage.attempts + 1)
        .returning(OutboxMessage.id, OutboxMessage.to_addr, OutboxMessage.raw, OutboxMessage.attempts)
        .execution_options(synchronize_session=False)
    ).first()
    db.session.commit()
    return _Claimed(*row) if row else None


def _settle(message_id: int, **values) -> None:
    """Record how the attempt went, in a transaction of its own."""
    db.session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id)
                       .values(claimed_until=None, **values).execution_options(synchronize_session=False))
    db.session.commit()


def readable(raw: bytes) -> str:
    """A message as a person reads it, for the log when no mail server is configured (the demo):
    recipient, subject, the decoded plain text (every link whole on its line) and the names of
    attached files, instead of MIME with quoted-printable lines that break the links."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    body = msg.get_body(("plain",))
    text = body.get_content() if body is not None else ""
    files = [part.get_filename() for part in msg.iter_attachments() if part.get_filename()]
    lines = [f"To: {msg['To']}", f"Subject: {msg['Subject']}", "", text.replace("\r\n", "\n").rstrip()]
    if files:
        lines += ["", "Attached: " + ", ".join(files)]
    rule = "-" * 72
    return "\n".join([rule, *lines, rule])


class _Transport:
    """One SMTP connection for a batch, opened on first use; or the log, without a server."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.smtp: smtplib.SMTP | None = None

    def send(self, row: "_Claimed") -> None:
        cfg = self.cfg
        if not cfg["MAIL_SERVER"]:
            log.info("No MAIL_SERVER configured; this mail is not sent but shown here:\n%s", readable(row.raw))
            return
        if self.smtp is None:
            smtp = smtplib.SMTP(cfg["MAIL_SERVER"], cfg["MAIL_PORT"], timeout=cfg["MAIL_TIMEOUT"])
            if cfg["MAIL_USE_TLS"]:
                smtp.starttls(context=ssl.create_default_context())
            if cfg["MAIL_USERNAME"]:
                smtp.login(cfg["MAIL_USERNAME"], cfg["MAIL_PASSWORD"])
            self.smtp = smtp
        if _LINE_BREAKS.search(row.to_addr):
            raise ValueError(f"the address {row.to_addr!r} holds a line break")
        options = ["SMTPUTF8"] if not row.to_addr.isascii() and self.smtp.has_extn("smtputf8") else []
        self.smtp.sendmail(cfg["MAIL_FROM"], [row.to_addr], row.raw, mail_options=options)

    def close(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass


def deliver_pending(ids: list[int] | None = None, limit: int = 200) -> DeliveryReport:
    """Send due messages (only ``ids`` if given); reschedule failures with back-off."""
    cfg = current_app.config
    now = utcnow()
    query = (
        db.select(OutboxMessage.id)
        .where(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    if ids is not None:
        query = query.where(OutboxMessage.id.in_(ids))
    due = list(db.session.scalars(query))
    db.session.commit()

    report = DeliveryReport()
    transport = _Transport(cfg)
    try:
        for message_id in due:
            claimed = _claim(message_id)
            if claimed is None:
                continue
            try:
                transport.send(claimed)
            except (smtplib.SMTPException, OSError) as exc:  # perhaps temporary: try again later
                transport.close()
                transport.smtp = None
                error = f"{type(exc).__name__}: {exc}"[:2000]
                gave_up = claimed.attempts >= cfg["MAIL_MAX_ATTEMPTS"]
                _settle(claimed.id, last_error=error, next_attempt_at=utcnow() + backoff(claimed.attempts),
                        **({"status": OutboxStatus.FAILED} if gave_up else {}))
                log.warning("Mail %s to %s not delivered: %s", claimed.id, claimed.to_addr, error)
                report.failed += 1
            except Exception as exc:  # a message that can never be sent: failed with its reason, not retried
                transport.close()
                transport.smtp = None
                error = f"{type(exc).__name__}: {exc}"[:2000]
                _settle(claimed.id, status=OutboxStatus.FAILED, last_error=error)
                log.error("Mail %s to %s cannot be sent: %s", claimed.id, claimed.to_addr, error)
                report.failed += 1
            else:
                _settle(claimed.id, status=OutboxStatus.SENT, sent_at=utcnow(), last_error="")
                report.sent += 1
    finally:
        transport.close()
    return report


def erase_mails(condition) -> int:
    """Forget the text, recipient, subject and last error of the messages matching ``condition`` (in the
    caller's transaction); what was never sent is dropped. Returns how many were erased or dropped."""
    dropped = db.session.execute(
        delete(OutboxMessage).where(condition, OutboxMessage.status == OutboxStatus.PENDING)
        .execution_options(synchronize_session=False)).rowcount
    erased = db.session.execute(
        update(OutboxMessage).where(condition, OutboxMessage.status != OutboxStatus.PENDING,
                                    OutboxMessage.erased_at.is_(None))
        .values(raw=b"", to_addr="", subject="", last_error="", erased_at=utcnow())
        .execution_options(synchronize_session=False)).rowcount
    return dropped + erased


def erase_mails_about(object_type: str, object_ids) -> int:
    """Erase the mails about these objects (their personal data is being removed)."""
    ids = list(object_ids)
    if not ids:
        return 0
    return erase_mails((OutboxMessage.about_type == object_type) & OutboxMessage.about_id.in_(ids))


@unit_of_work
def erase_old_mails() -> int:
    """``jobs run``: messages sent (or given up) more than ``MAIL_KEEP_DAYS`` ago lose text and recipient;
    a message still waiting to go out is kept."""
    cutoff = utcnow() - timedelta(days=current_app.config["MAIL_KEEP_DAYS"])
    return erase_mails((OutboxMessage.status != OutboxStatus.PENDING) & (OutboxMessage.created_at < cutoff))


@unit_of_work
def retry_failed(message_id: int, actor) -> bool:
    """An admin puts a message that gave up back into the queue (recorded)."""
    result = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status == OutboxStatus.FAILED,
               OutboxMessage.erased_at.is_(None))
        .values(status=OutboxStatus.PENDING, attempts=0, next_attempt_at=utcnow(), claimed_until=None)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:
        audit.record(actor, "retry", audit.Subject("mail", message_id), from_state=OutboxStatus.FAILED,
                     to_state=OutboxStatus.PENDING)
    return result.rowcount == 1
