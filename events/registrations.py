"""Registration (DOMAIN rule 4: one active registration per address and training) with double
opt-in, cancellation by the person or by staff, and a seat given by hand."""

import json
from dataclasses import dataclass

from flask_babel import get_locale, lazy_ngettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from accounts.models import User
from accounts.organisations import known_organisation_id
from core import audit
from core.confirm import Consequences
from core.db import unit_of_work
from core.extensions import db
from core.models import utcnow
from core.privacy import PRIVACY_VERSION
from core.text import normalise_email
from events.errors import EventsError
from events.links import by_token, manage_token, set_link_salt
from events.models import (
    ACTIVE,
    HEALTH_ANSWERS,
    Registration,
    RegistrationStatus,
    Training,
    TrainingStatus,
    registration_organisations,
)
from events.notifications import mail_registration, send_manage_link
from events.seats import (
    availability,
    hold_time,
    lock_registration,
    lock_training,
    moving_up,
    promote,
    seat_from_waiting_list,
    seats_taken,
    waiting_position,
)


def registration_state(training: Training) -> str:
    """"open", "not_yet", "closed" (past the closing time or started) or "none" (not published)."""
    now = utcnow()
    if training.status != TrainingStatus.PUBLISHED:
        return "none"
    if (training.starts_at and training.starts_at <= now) or (
            training.registration_closes_at and now > training.registration_closes_at):
        return "closed"
    if training.registration_opens_at and now < training.registration_opens_at:
        return "not_yet"
    return "open"


def programme_entries(trainings: list[Training]) -> list[tuple]:
    """``(training, registration state, availability)`` for each training of a list (programme page, embed,
    API): the seats as read with the training's row, no statement per training."""
    return [(t, registration_state(t), availability(t, t.seats_taken)) for t in trainings]


@dataclass
class RegistrationResult:
    """What the person who sent the form is told: the same whether the address was new or registered
    already (``waiting`` is what a new registration gets; the place on the list goes only by mail)."""

    registration: Registration
    token: str | None  # the manage token, new registrations only
    waiting: bool
    existing: bool = False  # for the code only; the page must not tell


@unit_of_work
def register(training_id: int, name: str, email: str, organisation: str = "", position: str = "",
             answers: str = "", health_consent: bool = False) -> RegistrationResult:
    """Register a person: a seat held until they confirm, or a place on the waiting list.

    The same address cannot register twice (DOMAIN rule 4). A second attempt changes nothing and mails
    the address its manage link; whoever sent the form gets the answer a new registration gets, so the
    form tells nobody who else is registered. ``health_consent``: the person agreed, separately, to
    the answers that can be health data (the form asks before they are sent).
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
    if not health_consent and any(key in _parsed_answers(answers) for key in HEALTH_ANSWERS):
        raise EventsError(_l("To tell us about accessibility or dietary needs, please give your consent here, or "
                             "leave those fields empty."), field="health_consent")
    existing = _active_registration(training.id, email)
    if existing is not None:
        return _registered_already(training, existing)
    has_seat = seats_taken(training.id) < training.seats
    registration = Registration(
        training_id=training.id, name=name.strip(), email=email, organisation=organisation.strip(),
        position=position.strip(), answers=answers, locale=str(get_locale()), consent_at=now,
        privacy_version=PRIVACY_VERSION, health_consent_at=now if health_consent else None,
        status=RegistrationStatus.PENDING if has_seat else RegistrationStatus.WAITING,
        hold_expires_at=now + hold_time() if has_seat else None,
    )
    set_link_salt(registration)
    try:
        with db.session.begin_nested():
            db.session.add(registration)
    except IntegrityError:  # the same address at the same moment, on a database without the lock
        existing = _active_registration(training.id, email)
        if existing is None:
            raise
        return _registered_already(training, existing)
    known = known_organisation_id(organisation)
    if known is not None:
        db.session.execute(insert(registration_organisations).values(registration_id=registration.id,
                                                                     organisation_id=known))
    audit.record(audit.PUBLIC, "register", registration, to_state=registration.status, refs=[training])
    if registration.status == RegistrationStatus.WAITING:
        mail_registration(registration, "events/waiting_list", _l("You are on the waiting list"),
                          position=waiting_position(registration))
        return RegistrationResult(registration, manage_token(registration), True)
    mail_registration(registration, "events/confirm_registration", _l("Please confirm your registration"))
    return RegistrationResult(registration, manage_token(registration), False)


def _parsed_answers(answers: str) -> dict:
    try:
        found = json.loads(answers) if answers else {}
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _active_registration(training_id: int, email: str) -> Registration | None:
    return db.session.scalar(
        select(Registration).where(Registration.training_id == training_id, Registration.email == email,
                                   Registration.status.in_(ACTIVE))
    )


def _registered_already(training: Training, existing: Registration) -> RegistrationResult:
    """Mail the address its manage link, change nothing, and answer as for a new registration."""
    send_manage_link(existing)
    return RegistrationResult(existing, None, seats_taken(training.id) >= training.seats, existing=True)


@unit_of_work
def confirm_registration(token: str) -> Registration:
    """Double opt-in: the person confirmed their address (a button on the page the mail links to)."""
    training, registration = lock_registration(by_token(token, confirm=True), _l("This link is invalid."))
    if registration.confirmed_at is not None and registration.status in ACTIVE:
        return registration  # confirmed before (a second click)
    if not registration.can("confirm"):
        raise EventsError(_l("This registration has expired or was cancelled. Please register again."))
    if registration.confirmed_at is None:
        registration.confirmed_at = utcnow()
    was_pending = registration.needs_confirmation
    Registration.states.move(registration, "confirm", audit.PUBLIC, refs=[training])
    if was_pending:
        registration.hold_expires_at = None
        mail_registration(registration, "events/confirmed", _l("Your registration is confirmed"), attach="REQUEST")
    return registration


@unit_of_work
def cancel_registration(token: str) -> Registration:
    """The person cancels through their manage link; the seat goes to the waiting list."""
    training, registration = lock_registration(by_token(token), _l("This link is invalid."))
    if not registration.can("cancel"):
        raise EventsError(_l("This registration is not active."))
    if training.sessions and training.sessions[0].starts_at <= utcnow():
        raise EventsError(_l("The training has started; it can no longer be cancelled here."))
    _cancel(training, registration, audit.PUBLIC)
    return registration


def _cancel(training: Training, registration: Registration, actor, reason: str = "") -> None:
    """Cancel (the training's row is locked), tell the person, and give the seat to the waiting list."""
    held_seat = registration.sees_details
    Registration.states.move(registration, "cancel", actor, reason=reason, refs=[training])
    registration.hold_expires_at = None
    mail_registration(registration, "events/registration_cancelled", _l("Your registration is cancelled"),
                      attach="CANCEL" if held_seat else None, reason=reason.strip())
    promote(training, actor)


@unit_of_work
def give_seat(registration_id: int, actor: User) -> Registration:
    """Staff move someone from the waiting list to a seat, if one is free."""
    training, registration = lock_registration(db.session.get(Registration, registration_id))
    if not registration.can("give_seat"):
        raise EventsError(_l("Only someone on the waiting list can be given a seat."))
    if seats_taken(training.id) >= training.seats:
        raise EventsError(_l("No seat is free. Raise the number of seats or cancel a registration first."))
    seat_from_waiting_list(registration, utcnow(), "give_seat", actor)
    return registration


_UNCONFIRMED = Registration.status.in_(ACTIVE) & Registration.confirmed_at.is_(None)


def unconfirmed(training_id: int) -> list[Registration]:
    """Active registrations whose address was never confirmed (holding a seat until the hold time
    ends, or on the waiting list), oldest first."""
    return list(db.session.scalars(
        select(Registration).where(Registration.training_id == training_id, _UNCONFIRMED).order_by(Registration.id)
    ))


@unit_of_work
def release_unconfirmed(training_id: int, registration_ids, actor: User) -> tuple[int, int]:
    """Staff end registrations whose address was never confirmed, instead of waiting for the hold
    time (after a flood of registrations nobody will confirm, say): held seats and places on the
    waiting list alike, so the flood's waiting entries do not move up into the freed seats. They end
    as expired without a mail; one confirmed meanwhile is kept. The freed seats go to the waiting
    list. Returns (ended, moved up)."""
    training = lock_training(training_id)
    ended = db.session.scalars(
        select(Registration).where(Registration.training_id == training.id, _UNCONFIRMED,
                                   Registration.id.in_(sorted(set(registration_ids))))
        .order_by(Registration.id).with_for_update().execution_options(populate_existing=True)
    ).all()
    for registration in ended:
        Registration.states.move(registration, "release", actor, refs=[training])
        registration.hold_expires_at = None
    db.session.flush()
    return len(ended), len(promote(training, actor))


@unit_of_work
def staff_cancel(registration_id: int, actor: User, reason: str = "", seen: str | None = None) -> Registration:
    """Staff cancel a registration (the person is told, with ``reason``; the seat goes to the waiting
    list). ``seen``: the state the acting person's page showed; refused if it has changed meanwhile."""
    training, registration = lock_registration(db.session.get(Registration, registration_id))
    if seen is not None and registration.state != seen:
        raise EventsError(Registration.states.refused)
    if not registration.can("cancel"):
        raise EventsError(_l("This registration is not active."))
    _cancel(training, registration, actor, reason)
    return registration


def staff_cancel_consequences(registration: Registration) -> Consequences:
    """What ``staff_cancel`` would do now, for the page that asks first; refused like the action."""
    if not registration.can("cancel"):
        raise EventsError(_l("This registration is not active."))
    moved = moving_up(registration.training, registration)
    effects = [_l("The registration of %(name)s ends and the person is told.", name=registration.name)]
    if moved:
        effects.append(lazy_ngettext("The freed seat goes to the waiting list: %(num)s person moves up and is told.",
                                     "Freed seats go to the waiting list: %(num)s people move up and are told.", moved))
    return Consequences(tuple(effects), mails=1 + moved)
