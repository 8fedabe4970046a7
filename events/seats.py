"""Seats (DOMAIN rule 3): never more seat-holding registrations than seats; a freed seat goes to
the first on the waiting list.

Every change of who holds a seat happens while the training row is locked, so counting and
writing cannot interleave between requests.
"""

from datetime import datetime, timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from core.extensions import db
from core.models import utcnow
from events.errors import EventsError
from events.models import SEAT_HOLDING, Registration, RegistrationStatus, Training
from events.notifications import mail_registration


def lock_training(training_id: int) -> Training:
    """Load the training with its row locked for the rest of the transaction."""
    training = db.session.scalar(
        select(Training).where(Training.id == training_id).with_for_update().execution_options(populate_existing=True)
    )
    if training is None:
        raise EventsError(_l("Unknown training."))
    return training


def lock_registration(found: Registration | None, unknown=_l("Unknown registration.")) -> tuple[Training, Registration]:
    """Lock the registration's training row, then read the registration afresh under that lock."""
    if found is None:
        raise EventsError(unknown)
    training = lock_training(found.training_id)
    registration = db.session.get(Registration, found.id)
    db.session.refresh(registration)
    return training, registration


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


def waiting_position(registration: Registration) -> int:
    """1 for the first on the waiting list."""
    return db.session.scalar(
        select(func.count()).select_from(Registration).where(
            Registration.training_id == registration.training_id,
            Registration.status == RegistrationStatus.WAITING,
            Registration.id <= registration.id,
        )
    )


def hold_time() -> timedelta:
    return timedelta(hours=current_app.config["REGISTRATION_HOLD_HOURS"])


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
        seat_from_waiting_list(registration, now)
    db.session.flush()
    return list(waiting)


def seat_from_waiting_list(registration: Registration, now: datetime) -> None:
    """Move a waiting registration to a seat and tell the person (the training row must be locked)."""
    if registration.confirmed_at is not None:
        registration.status = RegistrationStatus.CONFIRMED
        mail_registration(registration, "events/promoted", _l("A seat is free for you"), attach="REQUEST")
    else:
        registration.status = RegistrationStatus.PENDING
        registration.hold_expires_at = now + hold_time()
        mail_registration(registration, "events/promoted", _l("A seat is free for you"))


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
