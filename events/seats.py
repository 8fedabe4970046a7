"""Seats (DOMAIN rule 3): never more seat-holding registrations than seats; a freed seat goes to
the first on the waiting list.

The database makes the first true: ``trainings.seats_taken`` is kept by triggers on
``registrations`` and its CHECK refuses more than ``seats``, whoever writes. The code checks first
to answer with the waiting list instead of an error: every change of who holds a seat happens
while the training's row is locked (trainings in ascending id when there are several), so counting
and writing cannot interleave between requests.
"""

import enum
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from core import audit
from core.db import unit_of_work
from core.extensions import db
from core.models import utcnow
from core.states import lock
from events.errors import EventsError
from events.models import Registration, RegistrationStatus, Training
from events.notifications import mail_registration


def lock_training(training_id: int) -> Training:
    """The training with its row locked for the rest of the transaction."""
    return lock(Training, training_id, _l("Unknown training."))


def lock_trainings(training_ids) -> dict[int, Training]:
    """Several trainings' rows locked in the canonical order (ascending id)."""
    return {training_id: lock_training(training_id) for training_id in sorted(set(training_ids))}


def lock_registration(found: Registration | None, unknown=_l("Unknown registration.")) -> tuple[Training, Registration]:
    """Lock the registration's training row, then read the registration afresh under that lock."""
    if found is None:
        raise EventsError(unknown)
    training = lock_training(found.training_id)
    return training, lock(Registration, found.id, unknown)


def seats_taken(training_id: int) -> int:
    """Seat-holding registrations, as the database counts them (read afresh, not from the session)."""
    return db.session.scalar(select(Training.seats_taken).where(Training.id == training_id)) or 0


FEW_SEATS = 3


class Availability(enum.StrEnum):
    """What the public may know of a training's seats: no exact numbers. An exact count would tell
    anyone who registers a stranger's address whether that address was booked already (a new
    registration takes a seat, a repeated one does not, and both get the same answer); the
    waiting list's length likewise. Staff see the numbers on the participant list."""

    FREE = "free"
    FEW = "few"  # 1 to FEW_SEATS left
    FULL = "full"  # the next registration joins the waiting list


def availability(training: Training, taken: int | None = None) -> Availability:
    """``taken``: the seats taken as read with the training's row, where a page lists many trainings
    (no statement per training); by default read afresh."""
    left = training.seats - (seats_taken(training.id) if taken is None else taken)
    if left <= 0:
        return Availability.FULL
    return Availability.FEW if left <= FEW_SEATS else Availability.FREE


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


def promote(training: Training, actor=audit.SYSTEM) -> list[Registration]:
    """Give free seats to the waiting list in order (the training's row must be locked); the trail
    names ``actor``, whose action freed the seats. Nothing moves up for a training that is not
    published (a draft, or a cancelled one)."""
    if not training.can("edit"):
        return []
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
        seat_from_waiting_list(registration, now, "promote", actor)
    db.session.flush()
    return list(waiting)


def moving_up(training: Training, leaving: Registration) -> int:
    """How many on the waiting list ``promote`` would move up (and mail) once ``leaving`` ends: what
    the page that asks first says, counted as ``promote`` counts."""
    if not training.can("edit"):
        return 0
    free = training.seats - seats_taken(training.id) + (1 if leaving.holds_seat else 0)
    waiting = waiting_count(training.id) - (1 if leaving.is_waiting else 0)
    return max(0, min(free, waiting))


def seat_from_waiting_list(registration: Registration, now: datetime, action: str, actor) -> None:
    """Move a waiting registration to a seat and tell the person (the training's row must be locked):
    confirmed at once for a confirmed address, else held until the address is confirmed."""
    confirmed = registration.confirmed_at is not None
    Registration.states.move(registration, action, actor, refs=[registration.training],
                             to=RegistrationStatus.CONFIRMED if confirmed else RegistrationStatus.PENDING)
    if confirmed:
        mail_registration(registration, "events/promoted", _l("A seat is free for you"), attach="REQUEST")
    else:
        registration.hold_expires_at = now + hold_time()
        mail_registration(registration, "events/promoted", _l("A seat is free for you"))


@unit_of_work
def _expire(training_id: int, now: datetime) -> int:
    training = lock_training(training_id)
    expired = 0
    for registration in db.session.scalars(
        select(Registration).where(Registration.training_id == training.id,
                                   Registration.status == RegistrationStatus.PENDING,
                                   Registration.hold_expires_at < now)
    ):
        Registration.states.move(registration, "expire", audit.SYSTEM, refs=[training])
        expired += 1
    promote(training)
    return expired


def expire_holds() -> int:
    """Free the seats of registrations that were not confirmed in time and promote the waiting list:
    one unit of work per training."""
    now = utcnow()
    training_ids = db.session.scalars(
        select(Registration.training_id).where(
            Registration.status == RegistrationStatus.PENDING, Registration.hold_expires_at < now
        ).distinct()
    ).all()
    return sum(_expire(training_id, now) for training_id in sorted(training_ids))
