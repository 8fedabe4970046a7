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
from core.models import utcnow
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


def recordable_sessions(training, override: bool = False) -> set[int]:
    """The sessions whose attendance can be recorded: those that have started (every one with an
    override, which needs a reason); none of a cancelled training."""
    if training.is_cancelled:
        return set()
    now = utcnow()
    return {s.id for s in training.sessions if override or s.starts_at <= now}


@unit_of_work
def set_attendance(training_id: int, present: set[tuple[int, int]], actor: User, override_reason: str = "") -> int:
    """Replace the attendance of the sessions that have started with ``present`` (registration id,
    session id) pairs; ``override_reason`` lets staff record sessions still to come (the reason is
    in the audit entry).

    Only confirmed registrations and the training's own sessions count; returns how many are marked.
    """
    training = lock_training(training_id)
    if training.is_cancelled:
        raise EventsError(_l("The training is cancelled: there is no attendance to record."))
    override = override_reason.strip()
    session_ids = {s.id for s in training.sessions}
    confirmed = {r.id for r in registrations_of(training, (RegistrationStatus.CONFIRMED,))}
    wanted = {(r, s) for r, s in present if r in confirmed and s in session_ids}
    if len(wanted) != len(present):
        raise EventsError(_l("Attendance can only be marked for confirmed participants."))
    recordable = recordable_sessions(training, override=bool(override))
    if any(s not in recordable for _r, s in wanted):
        raise EventsError(_l("Attendance can be recorded only for sessions that have started. To record it "
                             "earlier, give the reason."))
    db.session.execute(delete(Attendance).where(Attendance.session_id.in_(recordable)))
    db.session.add_all(Attendance(registration_id=r, session_id=s) for r, s in sorted(wanted))
    audit.record(actor, "attendance", training, reason=override, details=str(len(wanted)))
    return len(wanted)


def check_messageable(training) -> None:
    """A message to everyone needs someone to write to: a cancelled training has told everyone already."""
    if training.is_cancelled:
        raise EventsError(_l("The training is cancelled: everyone registered was told so, and nobody is left to "
                             "write to."))


@unit_of_work
def message_participants(training_id: int, subject: str, body: str, actor: User, include_waiting: bool = False) -> int:
    """Mail a message from staff to everyone holding a seat (and the waiting list if asked)."""
    training = lock_training(training_id)
    check_messageable(training)
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


def certified_sessions(registration: Registration, override: bool = False) -> list:
    """What a certificate of attendance lists: the sessions the person attended that have ended
    (every attended one with an override, which needs a reason); none once the personal data is gone."""
    if registration.anonymised_at:
        return []
    now = utcnow()
    return [s for s in attended_sessions(registration) if override or s.ends_at <= now]


@unit_of_work
def issue_certificate(registration_id: int, actor: User, override_reason: str = "") -> Registration:
    """Staff issue a certificate of attendance: only for attended sessions that have ended, unless
    ``override_reason`` says why earlier (it is in the audit entry); never once the registration's
    personal data is removed."""
    registration = db.session.get(Registration, registration_id)
    if registration is None or registration.anonymised_at or not attended_sessions(registration):
        raise EventsError(_l("A certificate is only for someone who attended."))
    override = override_reason.strip()
    sessions = certified_sessions(registration, override=bool(override))
    if not sessions:
        raise EventsError(_l("A certificate is only for attended sessions that have ended. To issue it earlier, "
                             "give the reason."))
    audit.record(actor, "certificate", registration, refs=[registration.training], reason=override,
                 details=str(len(sessions)))
    return registration


def certificate_sessions(registration: Registration) -> list:
    """The sessions an issued certificate lists (as it was issued: with or without an override); none
    if no certificate was issued."""
    issued = db.session.scalars(select(AuditEntry).where(
        AuditEntry.object_type == "registration", AuditEntry.object_id == registration.id,
        AuditEntry.action == "certificate").order_by(AuditEntry.id.desc()).limit(1)).first()
    if issued is None:
        return []
    return certified_sessions(registration, override=bool(issued.reason))


def _attended_and_issued(training_id: int) -> tuple[list[Registration], dict[int, bool]]:
    """The training's registrations (with personal data) that attended a session, and for those with
    an issued certificate whether the latest was issued early, with a reason. Two statements."""
    rows = db.session.scalars(
        select(Registration).where(Registration.training_id == training_id, Registration.anonymised_at.is_(None))
        .options(selectinload(Registration.attended))
    ).all()
    attended = [r for r in rows if attended_sessions(r)]
    overridden = {}
    for entry in db.session.execute(select(AuditEntry.object_id, AuditEntry.reason).where(
            AuditEntry.object_type == "registration", AuditEntry.action == "certificate",
            AuditEntry.object_id.in_([r.id for r in attended])).order_by(AuditEntry.id)):
        overridden[entry.object_id] = bool(entry.reason)
    return attended, overridden


def certificates_of(training_id: int) -> tuple[list[tuple[Registration, list]], int, int]:
    """What the training's page of all certificates prints: each registration whose certificate was
    issued, with the sessions its certificate lists (as issued, ``certificate_sessions``), by name; how
    many people attended without an issued certificate, and how many of those can have one issued
    now (a session they attended has ended). Three statements, however many people."""
    attended, overridden = _attended_and_issued(training_id)
    printed = sorted(((r, certified_sessions(r, override=overridden[r.id])) for r in attended if r.id in overridden),
                     key=lambda item: (item[0].name.casefold(), item[0].id))
    ready = sum(1 for r in attended if r.id not in overridden and certified_sessions(r))
    return [item for item in printed if item[1]], len(attended) - len(printed), ready


@unit_of_work
def issue_missing_certificates(training_id: int, actor: User) -> int:
    """Issue at once the certificate of everyone who attended a session that has ended and has none
    yet (each with its own audit entry, as one by one); early ones still need a reason, one by one.
    The training's row is locked first, so a double click issues nothing twice."""
    lock_training(training_id)
    attended, overridden = _attended_and_issued(training_id)
    issued = 0
    for registration in attended:
        sessions = [] if registration.id in overridden else certified_sessions(registration)
        if sessions:
            audit.record(actor, "certificate", registration, refs=[registration.training],
                         details=str(len(sessions)))
            issued += 1
    return issued
