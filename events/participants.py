"""Running the day: the participant list, their answers, attendance and messages to them."""

import json

from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select
from sqlalchemy.orm import selectinload

from accounts.models import User
from core import audit
from core.audit import AuditEntry
from core.db import unit_of_work
from core.extensions import db
from events.errors import EventsError
from events.models import ACTIVE, SEAT_HOLDING, Attendance, Registration, RegistrationStatus
from events.notifications import mail_registration
from events.seats import lock_training
from events.trainings import registrations_of


def participant_list(training_id: int) -> list[Registration]:
    """Every registration of a training (anonymised ones included), seat holders first, with attendance."""
    order = {RegistrationStatus.CONFIRMED: 0, RegistrationStatus.PENDING: 1, RegistrationStatus.WAITING: 2,
             RegistrationStatus.CANCELLED: 3, RegistrationStatus.EXPIRED: 4}
    rows = db.session.scalars(
        select(Registration).where(Registration.training_id == training_id)
        .options(selectinload(Registration.attended)).order_by(Registration.id)
    ).all()
    return sorted(rows, key=lambda r: (order[r.status], r.id))


def answers_of(registration: Registration) -> dict[str, str]:
    try:
        return json.loads(registration.answers) if registration.answers else {}
    except ValueError:
        return {}


@unit_of_work
def set_attendance(training_id: int, present: set[tuple[int, int]], actor: User) -> int:
    """Replace the training's attendance with ``present`` (registration id, session id) pairs.

    Only confirmed registrations and the training's own sessions count; returns how many are marked.
    """
    training = lock_training(training_id)
    session_ids = {s.id for s in training.sessions}
    confirmed = {r.id for r in registrations_of(training, (RegistrationStatus.CONFIRMED,))}
    wanted = {(r, s) for r, s in present if r in confirmed and s in session_ids}
    if len(wanted) != len(present):
        raise EventsError(_l("Attendance can only be marked for confirmed participants."))
    db.session.execute(delete(Attendance).where(Attendance.session_id.in_(session_ids)))
    db.session.add_all(Attendance(registration_id=r, session_id=s) for r, s in sorted(wanted))
    audit.record(actor, "attendance", training, details=str(len(wanted)))
    return len(wanted)


@unit_of_work
def message_participants(training_id: int, subject: str, body: str, actor: User, include_waiting: bool = False) -> int:
    """Mail a message from staff to everyone holding a seat (and the waiting list if asked)."""
    training = lock_training(training_id)
    statuses = ACTIVE if include_waiting else SEAT_HOLDING
    recipients = registrations_of(training, statuses)
    for registration in recipients:
        mail_registration(registration, "events/message", subject, message=body)
    audit.record(actor, "message", training, reason=subject, details=str(len(recipients)))
    return len(recipients)


def attended_sessions(registration: Registration) -> list:
    """The sessions of its training the person was there for."""
    attended_ids = {a.session_id for a in registration.attended}
    return [s for s in registration.training.sessions if s.id in attended_ids]


@unit_of_work
def issue_certificate(registration_id: int, actor: User) -> Registration:
    """Staff issue a certificate of attendance: only for someone who attended a session, and never
    once the registration's personal data is removed."""
    registration = db.session.get(Registration, registration_id)
    if registration is None or registration.anonymised_at or not attended_sessions(registration):
        raise EventsError(_l("A certificate is only for someone who attended."))
    audit.record(actor, "certificate", registration, refs=[registration.training],
                 details=str(len(attended_sessions(registration))))
    return registration


def certificate_issued(registration: Registration) -> bool:
    return db.session.scalar(select(AuditEntry.id).where(
        AuditEntry.object_type == "registration", AuditEntry.object_id == registration.id,
        AuditEntry.action == "certificate").limit(1)) is not None


def certificates_of(training_id: int) -> tuple[list[Registration], int]:
    """What the training's page of all certificates prints: the registrations whose certificate was
    issued, by the single certificate page's rule (attended, issued, not anonymised), by name; and how
    many people attended without an issued certificate. Three statements, however many people."""
    rows = db.session.scalars(
        select(Registration).where(Registration.training_id == training_id, Registration.anonymised_at.is_(None))
        .options(selectinload(Registration.attended))
    ).all()
    attended = [r for r in rows if attended_sessions(r)]
    issued = set(db.session.scalars(select(AuditEntry.object_id).where(
        AuditEntry.object_type == "registration", AuditEntry.action == "certificate",
        AuditEntry.object_id.in_([r.id for r in attended]))))
    printed = sorted((r for r in attended if r.id in issued), key=lambda r: (r.name.casefold(), r.id))
    return printed, len(attended) - len(printed)
