"""Personal data of trainees (DOMAIN rule 7): anonymised after the retention period, exported and
deleted on request; answers that can be health data deleted when the training has ended.

Anonymising a registration also erases its mails (text and recipient, ``core.mail.erase_mails``)
and, once an address has no registration with personal data left, the keys of that address (its
"my registrations" link and calendar feed, ``TraineeKey``) and every mail to it."""

import json
import secrets
from datetime import datetime

from flask import current_app
from flask_babel import lazy_ngettext
from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import selectinload

from accounts.models import User
from core import audit
from core.confirm import Consequences
from core.db import unit_of_work
from core.extensions import db
from core.mail import OutboxMessage, erase_mails, erase_mails_about
from core.models import utcnow
from core.security import hash_token
from core.states import lock
from core.text import normalise_email
from events.models import HEALTH_ANSWERS, Registration, RegistrationStatus, TraineeKey, Training, TrainingSession
from events.participants import answers_of
from events.seats import lock_trainings, moving_up, promote


def _months_ago(now: datetime, months: int) -> datetime:
    month = now.month - 1 - months
    year = now.year + month // 12
    month = month % 12 + 1
    day = min(now.day, 28)
    return now.replace(year=year, month=month, day=day)


def _anonymise(registration: Registration, now: datetime) -> None:
    registration.name = ""
    registration.email = f"anonymised-{registration.id}@invalid"
    registration.organisation = ""
    registration.position = ""
    registration.answers = ""
    registration.link_salt = None
    registration.manage_token_hash = hash_token(f"anonymised-manage-{registration.id}-{secrets.token_hex(8)}")
    registration.confirm_token_hash = hash_token(f"anonymised-confirm-{registration.id}-{secrets.token_hex(8)}")
    registration.anonymised_at = now


@unit_of_work
def anonymise_old_registrations() -> int:
    """Remove personal data from registrations of trainings that ended more than
    ``REGISTRATION_RETENTION_MONTHS`` ago, and at once from registrations that expired without the
    address ever being confirmed (anyone can type a stranger's address into the form); status and
    attendance stay for the figures."""
    now = utcnow()
    cutoff = _months_ago(now, current_app.config["REGISTRATION_RETENTION_MONTHS"])
    ended = (select(TrainingSession.training_id).group_by(TrainingSession.training_id)
             .having(func.max(TrainingSession.ends_at) < cutoff))
    never_confirmed = and_(Registration.status == RegistrationStatus.EXPIRED, Registration.confirmed_at.is_(None))
    rows = db.session.scalars(
        select(Registration).where(Registration.anonymised_at.is_(None),
                                   or_(Registration.training_id.in_(ended), never_confirmed))
    ).all()
    emails = {r.email for r in rows}
    for registration in rows:
        _anonymise(registration, now)
    db.session.flush()
    ids = [r.id for r in rows]
    audit.forget_text("registration", ids)
    erase_mails_about("registration", ids)
    _forget_unused_addresses(emails)
    return len(rows)


def _forget_unused_addresses(emails: set[str]) -> None:
    """Delete the keys of addresses that have no registration with personal data left, and erase the
    mails to them (the "my registrations" link is about no one registration)."""
    still_used = set(db.session.scalars(select(Registration.email).where(Registration.email.in_(emails))))
    gone = emails - still_used
    if gone:
        db.session.execute(delete(TraineeKey).where(TraineeKey.email.in_(gone)))
        erase_mails(OutboxMessage.to_addr.in_(gone))


@unit_of_work
def forget_health_answers() -> int:
    """``jobs run``: delete the answers that can be health data (accessibility, dietary needs) from the
    registrations of trainings that have ended; the other answers stay until anonymisation."""
    ended = (select(TrainingSession.training_id).group_by(TrainingSession.training_id)
             .having(func.max(TrainingSession.ends_at) < utcnow()))
    rows = db.session.scalars(
        select(Registration).where(Registration.training_id.in_(ended), Registration.answers != "",
                                   Registration.anonymised_at.is_(None))
    ).all()
    changed = 0
    for registration in rows:
        answers = answers_of(registration)
        if any(key in answers for key in HEALTH_ANSWERS):
            kept = {key: value for key, value in answers.items() if key not in HEALTH_ANSWERS}
            registration.answers = json.dumps(kept, ensure_ascii=False) if kept else ""
            changed += 1
    return changed


def person_registrations(email: str) -> list[Registration]:
    return list(db.session.scalars(
        select(Registration).where(Registration.email == normalise_email(email))
        .options(selectinload(Registration.training).selectinload(Training.sessions),
                 selectinload(Registration.attended))
        .order_by(Registration.id)
    ))


def _export(email: str) -> dict:
    registrations = person_registrations(email)
    key = db.session.scalar(select(TraineeKey).where(TraineeKey.email == email))
    return {
        "email": email,
        "exported_at": utcnow().isoformat(),
        "personal_links_created_at": key.created_at.isoformat() if key else None,
        "registrations": [
            {
                "training": r.training.title,
                "sessions": [[s.starts_at.isoformat(), s.ends_at.isoformat()] for s in r.training.sessions],
                "name": r.name, "email": r.email, "organisation": r.organisation, "position": r.position,
                "answers": answers_of(r), "language": r.locale, "status": r.status.value,
                "registered_at": r.created_at.isoformat(), "consent_at": r.consent_at.isoformat(),
                "privacy_texts_version": r.privacy_version,
                "health_consent_at": r.health_consent_at.isoformat() if r.health_consent_at else None,
                "confirmed_at": r.confirmed_at.isoformat() if r.confirmed_at else None,
                "attended_sessions": len(r.attended),
            }
            for r in registrations
        ],
        "mails": [
            {"subject": m.subject, "created_at": m.created_at.isoformat(), "status": m.status.value}
            for m in db.session.scalars(select(OutboxMessage).where(OutboxMessage.to_addr == email)
                                        .order_by(OutboxMessage.id))
        ],
    }


@unit_of_work
def person_export(email: str, actor: User) -> dict:
    """Everything stored about one address (Art. 15 GDPR), as plain data; the export is recorded
    (without the address)."""
    email = normalise_email(email)
    data = _export(email)
    audit.record(actor, "export", audit.Subject("person"), details=str(len(data["registrations"])),
                 refs=person_registrations(email))
    return data


def _ends_on_deletion(registration: Registration, training: Training, now: datetime) -> bool:
    """An active registration for a training still to come is cancelled when its person is deleted."""
    return registration.can("cancel") and bool(training.ends_at) and training.ends_at > now


def delete_consequences(email: str) -> Consequences:
    """What ``delete_person`` would do now, for the page that asks first."""
    registrations = person_registrations(email)
    now = utcnow()
    ending = [r for r in registrations if _ends_on_deletion(r, r.training, now)]
    moved = sum(moving_up(r.training, r) for r in ending)
    effects = [lazy_ngettext(
        "Name, address, answers, links and mails of %(num)s registration are removed; the row stays, anonymised, "
        "for the figures.",
        "Name, address, answers, links and mails of %(num)s registrations are removed; the rows stay, anonymised, "
        "for the figures.", len(registrations))]
    if ending:
        effects.append(lazy_ngettext(
            "%(num)s of them, for a training still to come, is cancelled without a mail to the person.",
            "%(num)s of them, for trainings still to come, are cancelled without a mail to the person.", len(ending)))
    if moved:
        effects.append(lazy_ngettext("A freed seat goes to the waiting list: %(num)s person moves up and is told.",
                                     "Freed seats go to the waiting list: %(num)s people move up and are told.", moved))
    return Consequences(tuple(effects), mails=moved)


@unit_of_work
def delete_person(email: str, actor: User) -> int:
    """Erase one address on request (Art. 17 GDPR): cancel what is still active and to come
    (the waiting list moves up), anonymise every registration, drop their keys, and erase their mails
    (those not yet sent are dropped; of the others only kind and time stay)."""
    email = normalise_email(email)
    now = utcnow()
    registrations = person_registrations(email)
    trainings = lock_trainings(r.training_id for r in registrations)
    for found in registrations:
        training = trainings[found.training_id]
        registration = lock(Registration, found.id)
        if _ends_on_deletion(registration, training, now):
            Registration.states.move(registration, "cancel", actor, record=False)
            registration.hold_expires_at = None
            promote(training, actor)
        _anonymise(registration, now)
    ids = [r.id for r in registrations]
    audit.forget_text("registration", ids)
    db.session.execute(delete(TraineeKey).where(TraineeKey.email == email))
    erase_mails_about("registration", ids)
    erase_mails(OutboxMessage.to_addr == email)
    audit.record(actor, "delete", audit.Subject("person"), details=str(len(ids)), refs=registrations)
    return len(ids)
