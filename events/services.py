"""Training workflows: registration with double opt-in, waiting list, cancellation, expiry.

Every change of who holds a seat happens while the training row is locked, so
counting and writing cannot interleave between requests.
"""

from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from accounts.services import external_url, normalise_email
from core.errors import DomainError
from core.extensions import db
from core.mail import queue_mail
from core.models import utcnow
from core.security import hash_token, new_token
from events.models import (
    ACTIVE,
    SEAT_HOLDING,
    Registration,
    RegistrationStatus,
    Training,
    TrainingSession,
    TrainingStatus,
)


class EventsError(DomainError):
    """A rule of the trainings feature was broken."""


def lock_training(training_id: int) -> Training:
    """Load the training with its row locked for the rest of the transaction."""
    training = db.session.scalar(
        select(Training).where(Training.id == training_id).with_for_update().execution_options(populate_existing=True)
    )
    if training is None:
        raise EventsError(_l("Unknown training."))
    return training


def seats_taken(training_id: int) -> int:
    return db.session.scalar(
        select(func.count()).select_from(Registration)
        .where(Registration.training_id == training_id, Registration.status.in_(SEAT_HOLDING))
    )


def waiting_count(training_id: int) -> int:
    return db.session.scalar(
        select(func.count()).select_from(Registration)
        .where(Registration.training_id == training_id, Registration.status == RegistrationStatus.WAITING)
    )


def feed_trainings(target_group=None) -> list[Training]:
    """Published and cancelled trainings with a session ending 30 days ago or later, by first session."""
    since = utcnow() - timedelta(days=30)
    query = (
        select(Training)
        .where(Training.status.in_((TrainingStatus.PUBLISHED, TrainingStatus.CANCELLED)),
               Training.sessions.any(TrainingSession.ends_at >= since))
        .options(selectinload(Training.sessions))
    )
    if target_group is not None:
        query = query.where(("," + Training.target_groups + ",").contains(f",{target_group.value},"))
    trainings = db.session.scalars(query).all()
    return sorted(trainings, key=lambda t: (t.sessions[0].starts_at if t.sessions else since, t.id))


def programme(target_group=None, training_format=None, month: str = "") -> list[Training]:
    """Upcoming published trainings (a session still to come), by first session."""
    now = utcnow()
    query = (
        select(Training)
        .where(Training.status == TrainingStatus.PUBLISHED, Training.sessions.any(TrainingSession.ends_at >= now))
        .options(selectinload(Training.sessions))
    )
    if target_group is not None:
        query = query.where(("," + Training.target_groups + ",").contains(f",{target_group.value},"))
    if training_format is not None:
        query = query.where(Training.format == training_format)
    trainings = sorted(db.session.scalars(query).all(), key=lambda t: (t.sessions[0].starts_at, t.id))
    if month:
        from core.i18n import local_tz

        trainings = [t for t in trainings if t.sessions[0].starts_at.astimezone(local_tz()).strftime("%Y-%m") == month]
    return trainings


def waiting_position(registration: Registration) -> int:
    """1 for the first on the waiting list."""
    return db.session.scalar(
        select(func.count()).select_from(Registration).where(
            Registration.training_id == registration.training_id,
            Registration.status == RegistrationStatus.WAITING,
            Registration.id <= registration.id,
        )
    )


@dataclass
class RegistrationResult:
    registration: Registration
    token: str | None  # the manage token, new registrations only
    existing: bool = False


def register(training_id: int, name: str, email: str, organisation: str = "", position: str = "",
             answers: str = "") -> RegistrationResult:
    """Register a person: a seat held until they confirm, or a place on the waiting list.

    The same address cannot register twice; a second attempt mails the manage link again.
    """
    email = normalise_email(email)
    training = lock_training(training_id)
    now = utcnow()
    if training.status != TrainingStatus.PUBLISHED:
        raise EventsError(_l("Registration for this training is not possible."))
    if training.registration_opens_at and now < training.registration_opens_at:
        raise EventsError(_l("Registration has not opened yet."))
    if training.registration_closes_at and now > training.registration_closes_at:
        raise EventsError(_l("Registration has closed."))
    if training.sessions and training.sessions[0].starts_at <= now:
        raise EventsError(_l("This training has started already."))
    existing = db.session.scalar(
        select(Registration).where(Registration.training_id == training.id, Registration.email == email,
                                   Registration.status.in_(ACTIVE))
    )
    if existing is not None:
        send_manage_link(existing)
        db.session.commit()
        return RegistrationResult(existing, None, existing=True)
    manage_token, manage_hash = new_token()
    confirm_token, confirm_hash = new_token()
    has_seat = seats_taken(training.id) < training.seats
    registration = Registration(
        training=training, name=name.strip(), email=email, organisation=organisation.strip(),
        position=position.strip(), answers=answers, locale=str(get_locale()), consent_at=now,
        status=RegistrationStatus.PENDING if has_seat else RegistrationStatus.WAITING,
        hold_expires_at=now + hold_time() if has_seat else None,
        manage_token_hash=manage_hash, confirm_token_hash=confirm_hash,
    )
    db.session.add(registration)
    try:
        db.session.flush()
    except IntegrityError:  # the same address at the same moment, on a database without the lock
        db.session.rollback()
        raise EventsError(_l("You are registered already; we have sent you the link again.")) from None
    _mail(registration, "events/confirm_registration", _l("Please confirm your registration"),
          confirm_link=external_url("events.confirm", token=confirm_token),
          manage_link=external_url("events.manage", token=manage_token))
    db.session.commit()
    return RegistrationResult(registration, manage_token)


def hold_time() -> timedelta:
    return timedelta(hours=current_app.config["REGISTRATION_HOLD_HOURS"])


def _mail(registration: Registration, template: str, subject, **context) -> None:
    queue_mail(registration.email, subject, template, locale=registration.locale, registration=registration,
               training=registration.training, **context)


def send_manage_link(registration: Registration) -> None:
    """Mail the manage link again; the old one stops working (only hashes are stored)."""
    token, digest = new_token()
    registration.manage_token_hash = digest
    _mail(registration, "events/manage_link", _l("Your registration"),
          manage_link=external_url("events.manage", token=token))


def by_token(token: str, confirm: bool = False) -> Registration | None:
    column = Registration.confirm_token_hash if confirm else Registration.manage_token_hash
    return db.session.scalar(select(Registration).where(column == hash_token(token)))


def confirm(token: str) -> Registration:
    """Double opt-in: the person clicked the link in the mail."""
    found = by_token(token, confirm=True)
    if found is None:
        raise EventsError(_l("This link is invalid."))
    training = lock_training(found.training_id)
    registration = db.session.get(Registration, found.id)
    db.session.refresh(registration)
    if registration.status in (RegistrationStatus.CANCELLED, RegistrationStatus.EXPIRED):
        raise EventsError(_l("This registration has expired or was cancelled. Please register again."))
    if registration.confirmed_at is None:
        registration.confirmed_at = utcnow()
    if registration.status == RegistrationStatus.PENDING:
        registration.status = RegistrationStatus.CONFIRMED
        registration.hold_expires_at = None
        _mail(registration, "events/confirmed", _l("Your registration is confirmed"))
    db.session.commit()
    return registration


def cancel(token: str) -> Registration:
    """The person cancels through their manage link; the seat goes to the waiting list."""
    found = by_token(token)
    if found is None:
        raise EventsError(_l("This link is invalid."))
    training = lock_training(found.training_id)
    registration = db.session.get(Registration, found.id)
    db.session.refresh(registration)
    if registration.status not in ACTIVE:
        raise EventsError(_l("This registration is not active."))
    if training.sessions and training.sessions[0].starts_at <= utcnow():
        raise EventsError(_l("The training has started; it can no longer be cancelled here."))
    registration.status = RegistrationStatus.CANCELLED
    registration.hold_expires_at = None
    promote(training)
    db.session.commit()
    return registration


def promote(training: Training) -> list[Registration]:
    """Give free seats to the waiting list in order (the training row must be locked)."""
    free = training.seats - seats_taken(training.id)
    if free <= 0:
        return []
    waiting = db.session.scalars(
        select(Registration)
        .where(Registration.training_id == training.id, Registration.status == RegistrationStatus.WAITING)
        .order_by(Registration.id).limit(free)
    ).all()
    now = utcnow()
    for registration in waiting:
        if registration.confirmed_at is not None:
            registration.status = RegistrationStatus.CONFIRMED
        else:
            registration.status = RegistrationStatus.PENDING
            registration.hold_expires_at = now + hold_time()
        _mail(registration, "events/promoted", _l("A seat is free for you"))
    db.session.flush()
    return list(waiting)


def expire_holds() -> int:
    """Free the seats of registrations that were not confirmed in time; promote the waiting list."""
    now = utcnow()
    training_ids = db.session.scalars(
        select(Registration.training_id).where(
            Registration.status == RegistrationStatus.PENDING, Registration.hold_expires_at < now
        ).distinct()
    ).all()
    expired = 0
    for training_id in training_ids:
        training = lock_training(training_id)
        for registration in db.session.scalars(
            select(Registration).where(Registration.training_id == training.id,
                                       Registration.status == RegistrationStatus.PENDING,
                                       Registration.hold_expires_at < now)
        ):
            registration.status = RegistrationStatus.EXPIRED
            expired += 1
        promote(training)
        db.session.commit()
    return expired
