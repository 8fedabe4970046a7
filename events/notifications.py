"""Mails to trainees: one about a registration (always with its manage link), the reminder two days
before, staff messages to the participants, and the link to "my registrations"."""

from datetime import timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from core.db import unit_of_work
from core.extensions import db
from core.mail import Invitation, queue_mail
from core.models import utcnow
from core.text import normalise_email
from core.urls import external_url
from events.feeds import calendar_for
from events.links import calendar_token, confirm_token, draw_key_salts, list_token, manage_token
from events.models import Registration, RegistrationStatus, TraineeKey, Training, TrainingSession, TrainingStatus


def mail_registration(registration: Registration, template: str, subject, attach: str | None = None, **context) -> None:
    """A mail about one registration; it always carries the manage link (and the confirm link while needed).

    ``attach`` is an iCalendar METHOD (REQUEST, CANCEL) for a calendar invitation in the mail; its
    DTSTAMP is now and its SEQUENCE the training's plus ``earlier_calendar_messages``. Callers hold the
    training's row lock, so two messages to the same address never get the same number.
    """
    if registration.link_salt:
        context["manage_link"] = external_url("events.manage", token=manage_token(registration))
        if registration.confirmed_at is None and registration.can("confirm"):
            context["confirm_link"] = external_url("events.confirm", token=confirm_token(registration))
    invitation = None
    if attach:
        body = calendar_for([registration.training], registration.training.title, method=attach,
                            attendee=(registration.name, registration.email), stamp=utcnow(),
                            sequence_offset=earlier_calendar_messages(registration))
        registration.calendar_messages += 1
        invitation = Invitation(body, attach, "training.ics")
    queue_mail(registration.email, subject, template, locale=registration.locale, about=registration,
               registration=registration,
               training=registration.training, invitation=invitation, **context)


def earlier_calendar_messages(registration: Registration) -> int:
    """How many calendar messages this address got about this training before, over all its
    registrations (register, cancel and register again is one address, two registrations).

    An invitation's SEQUENCE is the training's own plus this number: never lower than what the feeds
    show for the training, and higher with every message to the person, whatever caused it."""
    db.session.flush()
    return db.session.scalar(
        select(func.coalesce(func.sum(Registration.calendar_messages), 0))
        .where(Registration.training_id == registration.training_id, Registration.email == registration.email)
    )


def send_manage_link(registration: Registration) -> None:
    """Someone registered again with this address: mail it its manage link (the link stays the same)."""
    mail_registration(registration, "events/manage_link", _l("Your registration"))


@unit_of_work
def send_my_registrations_link(email: str, locale: str) -> bool:
    """Mail the link to "my registrations" if the address has registrations; the answer on the page is
    the same either way, so nobody learns who is registered."""
    email = normalise_email(email)
    has_any = db.session.scalar(
        select(func.count()).select_from(Registration).where(Registration.email == email)
    )
    if not has_any:
        return False
    key = db.session.scalar(select(TraineeKey).where(TraineeKey.email == email))
    if key is None:
        key = TraineeKey(email=email)
        draw_key_salts(key)
        try:
            with db.session.begin_nested():
                db.session.add(key)
        except IntegrityError:  # the same address at the same moment
            key = db.session.scalar(select(TraineeKey).where(TraineeKey.email == email))
    queue_mail(email, _l("Your registrations"), "events/my_link", locale=locale,
               list_link=external_url("my.registrations", token=list_token(key)),
               calendar_link=external_url("my.calendar", token=calendar_token(key)))
    return True


def send_reminders() -> int:
    """Remind confirmed participants two days before the first session, once each.

    The conditional update claims each registration, so two job runs at once never send twice.
    """
    now = utcnow()
    first_start = (select(TrainingSession.training_id, func.min(TrainingSession.starts_at).label("first_start"))
                   .group_by(TrainingSession.training_id).subquery())
    due = db.session.scalars(
        select(Registration.id)
        .join(Training, Training.id == Registration.training_id)
        .join(first_start, first_start.c.training_id == Training.id)
        .where(Registration.status == RegistrationStatus.CONFIRMED, Registration.reminded_at.is_(None),
               Training.status == TrainingStatus.PUBLISHED,
               first_start.c.first_start > now, first_start.c.first_start <= now + timedelta(days=2))
    ).all()
    return sum(_remind(registration_id, now) for registration_id in due)


@unit_of_work
def _remind(registration_id: int, now) -> int:
    """Claim one reminder by a conditional update (two job runs at once never send twice) and queue it."""
    claimed = db.session.execute(
        update(Registration).where(Registration.id == registration_id, Registration.reminded_at.is_(None))
        .values(reminded_at=now).execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:
        return 0
    registration = db.session.get(Registration, registration_id)
    mail_registration(registration, "events/reminder", _l("Reminder: %(title)s", title=registration.training.title))
    return 1
