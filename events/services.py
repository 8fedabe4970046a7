"""Training workflows: registration with double opt-in, waiting list, cancellation, expiry.

Every change of who holds a seat happens while the training row is locked, so
counting and writing cannot interleave between requests.
"""

import json
import secrets
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from flask import current_app
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from accounts.services import normalise_email
from core.changes import version as change_version
from core.errors import DomainError
from core.extensions import db
from core.i18n import from_local, local_today
from core.mail import Attachment, OutboxMessage, queue_mail
from core.models import utcnow
from core.security import derived_token, hash_token
from core.urls import external_url, site_domain
from events.ical import calendar_bytes
from events.models import (
    ACTIVE,
    SEAT_HOLDING,
    TRAININGS_COUNTER,
    Attendance,
    Registration,
    RegistrationStatus,
    TraineeKey,
    Training,
    TrainingSession,
    TrainingStatus,
)
from materials.models import Material


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


FEED_DAYS_BACK = 30


def sessions_ending_after(moment: datetime):
    """Trainings with a session ending at ``moment`` or later, read from the index on the sessions'
    end (the recent and coming ones), not by testing every training of the history."""
    return select(TrainingSession.training_id).where(TrainingSession.ends_at >= moment)


def feed_query(target_group=None, today: date | None = None):
    """Published and cancelled trainings with a session ending on or after the day 30 days before
    ``today`` (Berlin): whole days, so that a feed's content changes only with the data or the date."""
    day = (today or local_today()) - timedelta(days=FEED_DAYS_BACK)
    since = from_local(datetime.combine(day, time()))
    query = select(Training).where(Training.status.in_((TrainingStatus.PUBLISHED, TrainingStatus.CANCELLED)),
                                   Training.id.in_(sessions_ending_after(since)))
    if target_group is not None:
        query = query.where(("," + Training.target_groups + ",").contains(f",{target_group.value},"))
    return query


def feed_trainings(query) -> list[Training]:
    """The trainings of a feed query with their sessions, by first session."""
    trainings = db.session.scalars(query.options(selectinload(Training.sessions))).unique().all()
    return sorted(trainings, key=lambda t: (t.sessions[0].starts_at if t.sessions else t.created_at, t.id))


def trainings_version() -> tuple[int, datetime | None]:
    """The trainings' change counter and the time of the last change: it rises with every change of a
    training or a session (title, time, place, status), in the same transaction (one row by its key)."""
    return change_version(TRAININGS_COUNTER)


def public_feed_version(today: date) -> tuple:
    """What every public feed's content depends on, from one row read by its key: the trainings'
    change counter and the date (trainings leave the feed day by day). Equal versions, equal bytes."""
    counter, changed_at = trainings_version()
    return counter, changed_at, today.isoformat()


def personal_feed_version(query) -> tuple:
    """What a personal feed's content depends on: the trainings' change counter and exactly which
    trainings are in it (their ids, in order). An aggregate over them (count, sums, the last change)
    made two people with different trainings share one cached calendar."""
    counter, changed_at = trainings_version()
    ids = tuple(db.session.scalars(query.with_only_columns(Training.id).order_by(Training.id)))
    return counter, changed_at, ids


def programme(target_group=None, training_format=None, month: date | None = None):
    """Upcoming published trainings (a session still to come) by first session, as a select to
    paginate; cancelled ones stay listed, marked, so that people who had planned to come see it.
    ``month`` (its first day) keeps the trainings whose first session starts in it, in Berlin time.

    The first starts are read for the coming trainings only (through the index on the sessions'
    end), so the page costs the same however long the history is."""
    coming = sessions_ending_after(utcnow())
    first = (select(TrainingSession.training_id, func.min(TrainingSession.starts_at).label("first_start"))
             .where(TrainingSession.training_id.in_(coming))
             .group_by(TrainingSession.training_id).subquery())
    query = (
        select(Training).join(first, first.c.training_id == Training.id)
        .where(Training.status.in_((TrainingStatus.PUBLISHED, TrainingStatus.CANCELLED)))
        .options(selectinload(Training.sessions))
        .order_by(first.c.first_start, Training.id)
    )
    if target_group is not None:
        query = query.where(("," + Training.target_groups + ",").contains(f",{target_group.value},"))
    if training_format is not None:
        query = query.where(Training.format == training_format)
    if month is not None:
        following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
        query = query.where(first.c.first_start >= from_local(datetime.combine(month, time())),
                            first.c.first_start < from_local(datetime.combine(following, time())))
    return query


def waiting_position(registration: Registration) -> int:
    """1 for the first on the waiting list."""
    return db.session.scalar(
        select(func.count()).select_from(Registration).where(
            Registration.training_id == registration.training_id,
            Registration.status == RegistrationStatus.WAITING,
            Registration.id <= registration.id,
        )
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
    has_seat = seats_taken(training.id) < training.seats
    registration = Registration(
        training=training, name=name.strip(), email=email, organisation=organisation.strip(),
        position=position.strip(), answers=answers, locale=str(get_locale()), consent_at=now,
        status=RegistrationStatus.PENDING if has_seat else RegistrationStatus.WAITING,
        hold_expires_at=now + hold_time() if has_seat else None,
    )
    set_link_salt(registration)
    db.session.add(registration)
    try:
        db.session.flush()
    except IntegrityError:  # the same address at the same moment, on a database without the lock
        db.session.rollback()
        raise EventsError(_l("You are registered already; we have sent you the link again.")) from None
    if registration.status == RegistrationStatus.WAITING:
        _mail(registration, "events/waiting_list", _l("You are on the waiting list"),
              position=waiting_position(registration))
    else:
        _mail(registration, "events/confirm_registration", _l("Please confirm your registration"))
    db.session.commit()
    return RegistrationResult(registration, manage_token(registration))


def hold_time() -> timedelta:
    return timedelta(hours=current_app.config["REGISTRATION_HOLD_HOURS"])


def set_link_salt(registration: Registration) -> None:
    """Draw the salt the registration's manage and confirm links are derived from."""
    registration.link_salt = secrets.token_urlsafe(24)
    registration.manage_token_hash = hash_token(manage_token(registration))
    registration.confirm_token_hash = hash_token(confirm_token(registration))


def manage_token(registration: Registration) -> str:
    return derived_token("registration-manage", registration.link_salt)


def confirm_token(registration: Registration) -> str:
    return derived_token("registration-confirm", registration.link_salt)


def _mail(registration: Registration, template: str, subject, attach: str | None = None, **context) -> None:
    """A mail about one registration; it always carries the manage link (and the confirm link while needed).

    ``attach`` is an iCalendar METHOD (REQUEST, CANCEL) for a calendar invitation in the mail.
    """
    if registration.link_salt:
        context["manage_link"] = external_url("events.manage", token=manage_token(registration))
        if registration.confirmed_at is None and registration.status in (RegistrationStatus.PENDING,
                                                                         RegistrationStatus.WAITING):
            context["confirm_link"] = external_url("events.confirm", token=confirm_token(registration))
    attachments = ()
    if attach:
        body = calendar_for([registration.training], registration.training.title, method=attach,
                            attendee=(registration.name, registration.email))
        attachments = (Attachment("training.ics", "text/calendar", body, {"method": attach}),)
    queue_mail(registration.email, subject, template, locale=registration.locale, registration=registration,
               training=registration.training, attachments=attachments, **context)


def calendar_for(trainings: list[Training], name: str, method: str = "PUBLISH",
                 attendee: tuple[str, str] | None = None) -> bytes:
    """The trainings as iCalendar bytes, with this site's domain in the UIDs and its URLs."""
    cfg = current_app.config
    return calendar_bytes(
        trainings, name, domain=site_domain(),
        url_for_training=lambda t: external_url("events.detail", training_id=t.id), timezone=cfg["TIMEZONE"],
        method=method, organizer=(cfg["ORG_NAME"], cfg["MAIL_FROM"]) if method != "PUBLISH" else None,
        attendee=attendee,
    )


def send_manage_link(registration: Registration) -> None:
    """Mail the manage link again (the link stays the same)."""
    _mail(registration, "events/manage_link", _l("Your registration"))


def by_token(token: str, confirm: bool = False) -> Registration | None:
    column = Registration.confirm_token_hash if confirm else Registration.manage_token_hash
    return db.session.scalar(select(Registration).where(column == hash_token(token)))


def confirm(token: str) -> Registration:
    """Double opt-in: the person clicked the link in the mail."""
    _training, registration = lock_registration(by_token(token, confirm=True), _l("This link is invalid."))
    if registration.status in (RegistrationStatus.CANCELLED, RegistrationStatus.EXPIRED):
        raise EventsError(_l("This registration has expired or was cancelled. Please register again."))
    if registration.confirmed_at is None:
        registration.confirmed_at = utcnow()
    if registration.status == RegistrationStatus.PENDING:
        registration.status = RegistrationStatus.CONFIRMED
        registration.hold_expires_at = None
        _mail(registration, "events/confirmed", _l("Your registration is confirmed"), attach="REQUEST")
    db.session.commit()
    return registration


def cancel(token: str) -> Registration:
    """The person cancels through their manage link; the seat goes to the waiting list."""
    training, registration = lock_registration(by_token(token), _l("This link is invalid."))
    if registration.status not in ACTIVE:
        raise EventsError(_l("This registration is not active."))
    if training.sessions and training.sessions[0].starts_at <= utcnow():
        raise EventsError(_l("The training has started; it can no longer be cancelled here."))
    _cancel_registration(training, registration)
    db.session.commit()
    return registration


def _cancel_registration(training: Training, registration: Registration) -> None:
    """Cancel (the training row is locked), tell the person, and give the seat to the waiting list."""
    held_seat = registration.status == RegistrationStatus.CONFIRMED
    registration.status = RegistrationStatus.CANCELLED
    registration.hold_expires_at = None
    _mail(registration, "events/registration_cancelled", _l("Your registration is cancelled"),
          attach="CANCEL" if held_seat else None)
    promote(training)


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
        _give_seat(registration, now)
    db.session.flush()
    return list(waiting)


def _give_seat(registration: Registration, now: datetime) -> None:
    """Move a waiting registration to a seat and tell the person (the training row must be locked)."""
    if registration.confirmed_at is not None:
        registration.status = RegistrationStatus.CONFIRMED
        _mail(registration, "events/promoted", _l("A seat is free for you"), attach="REQUEST")
    else:
        registration.status = RegistrationStatus.PENDING
        registration.hold_expires_at = now + hold_time()
        _mail(registration, "events/promoted", _l("A seat is free for you"))


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


# --- Staff: trainings ---------------------------------------------------------------------------


@dataclass
class TrainingInput:
    """What the training form gives the service (views turn form data into this)."""

    fields: dict  # column values: title, description, target_groups, format, venue, address, …
    sessions: list[tuple[datetime, datetime]]
    handout_ids: list[int]


def _place(training: Training) -> tuple:
    return (training.format, training.venue, training.address, training.online_link)


def save_training(training_id: int | None, data: TrainingInput, editor=None) -> Training:
    """Create a draft or change a training.

    Sessions are updated in place, so each keeps its calendar UID. A change of time or
    place raises SEQUENCE and, for a published training, mails everyone holding a seat
    with the updated invitation. More seats go to the waiting list at once.
    """
    if not data.sessions:
        raise EventsError(_l("A training needs at least one session."))
    if any(end <= start for start, end in data.sessions):
        raise EventsError(_l("Every session must end after it starts."))
    opens, closes = data.fields.get("registration_opens_at"), data.fields.get("registration_closes_at")
    if opens and closes and closes <= opens:
        raise EventsError(_l("Registration must close after it opens."))
    if training_id is None:
        training = Training(status=TrainingStatus.DRAFT, **data.fields)
        db.session.add(training)
        before_place, before_times = None, None
    else:
        training = lock_training(training_id)
        if training.status == TrainingStatus.CANCELLED:
            raise EventsError(_l("A cancelled training cannot be changed."))
        before_place = _place(training)
        before_times = [(s.starts_at, s.ends_at) for s in training.sessions]
        taken = seats_taken(training.id)
        if data.fields["seats"] < taken:
            raise EventsError(_l("%(n)s people hold seats; cancel registrations before lowering the seats below that.",
                                 n=taken))
        for key, value in data.fields.items():
            setattr(training, key, value)
    sessions = sorted(data.sessions)
    existing = list(training.sessions)
    for index, (start, end) in enumerate(sessions):
        if index < len(existing):
            existing[index].starts_at, existing[index].ends_at = start, end
        else:
            training.sessions.append(TrainingSession(starts_at=start, ends_at=end))
    for extra in existing[len(sessions):]:
        training.sessions.remove(extra)
    training.handouts = list(db.session.scalars(select(Material).where(Material.id.in_(data.handout_ids))))
    changed = before_times is not None and (before_times != sessions or before_place != _place(training))
    if changed:
        training.sequence += 1
    db.session.flush()
    db.session.refresh(training, ["sessions"])
    if training.status == TrainingStatus.PUBLISHED:
        if changed:
            for registration in _registrations(training, SEAT_HOLDING):
                _mail(registration, "events/changed", _l("Changed: %(title)s", title=training.title),
                      attach="REQUEST" if registration.status == RegistrationStatus.CONFIRMED else None)
        promote(training)
    db.session.commit()
    return training


def _registrations(training: Training, statuses) -> list[Registration]:
    return list(db.session.scalars(
        select(Registration).where(Registration.training_id == training.id, Registration.status.in_(statuses))
        .order_by(Registration.id)
    ))


def publish(training_id: int) -> Training:
    training = lock_training(training_id)
    if training.status != TrainingStatus.DRAFT:
        raise EventsError(_l("Only a draft can be published."))
    training.status = TrainingStatus.PUBLISHED
    training.sequence += 1
    db.session.commit()
    return training


def cancel_training(training_id: int) -> int:
    """Cancel a training: it stays in the feeds as cancelled, and everyone registered is told once.

    Seat holders get a METHOD:CANCEL invitation with a higher SEQUENCE. Returns the mails queued.
    """
    training = lock_training(training_id)
    if training.status == TrainingStatus.CANCELLED:
        raise EventsError(_l("This training is cancelled already."))
    was_published = training.status == TrainingStatus.PUBLISHED
    training.status = TrainingStatus.CANCELLED
    training.sequence += 1
    db.session.flush()
    told = 0
    if was_published:
        for registration in _registrations(training, ACTIVE):
            _mail(registration, "events/training_cancelled", _l("Cancelled: %(title)s", title=training.title),
                  attach="CANCEL" if registration.status == RegistrationStatus.CONFIRMED else None)
            told += 1
    db.session.commit()
    return told


def training_input(training: Training, shift: timedelta = timedelta(0)) -> TrainingInput:
    """A training as form input; ``shift`` moves its sessions and registration window."""
    fields = {key: getattr(training, key) for key in TRAINING_FIELDS}
    for key in ("registration_opens_at", "registration_closes_at"):
        if fields[key] is not None:
            fields[key] += shift
    return TrainingInput(fields, [(s.starts_at + shift, s.ends_at + shift) for s in training.sessions],
                         [m.id for m in training.handouts])


def duplicate_input(training: Training) -> TrainingInput:
    """A copy for the next term: same details, dates moved by whole weeks into the future."""
    now = utcnow()
    shift = timedelta(0)
    if training.sessions and training.sessions[0].starts_at <= now:
        shift = timedelta(weeks=(now - training.sessions[0].starts_at).days // 7 + 1)
    return training_input(training, shift)


TRAINING_FIELDS = (
    "title", "description", "target_groups", "format", "venue", "address", "online_link", "trainers", "language",
    "seats", "registration_opens_at", "registration_closes_at", "ask_accessibility", "ask_dietary", "free_question",
)


def staff_trainings(past: bool = False) -> list[tuple[Training, int, int]]:
    """Trainings for the staff list with seats taken and waiting, in two queries.

    Upcoming (and drafts) by first session; past ones newest first.
    """
    now = utcnow()
    last_end = (select(TrainingSession.training_id, func.max(TrainingSession.ends_at).label("last_end"))
                .group_by(TrainingSession.training_id).subquery())
    query = select(Training).join(last_end, last_end.c.training_id == Training.id).options(
        selectinload(Training.sessions))
    if past:
        query = query.where(last_end.c.last_end < now).order_by(last_end.c.last_end.desc()).limit(100)
    else:
        query = query.where(last_end.c.last_end >= now).order_by(last_end.c.last_end)
    trainings = db.session.scalars(query).all()
    counts = registration_counts([t.id for t in trainings])
    rows = [(t, counts.get((t.id, "seat"), 0), counts.get((t.id, "waiting"), 0)) for t in trainings]
    if not past:
        rows.sort(key=lambda row: (row[0].starts_at, row[0].id))
    return rows


def registration_counts(training_ids: list[int]) -> dict[tuple[int, str], int]:
    """{(training id, "seat" | "waiting"): count} in one query."""
    if not training_ids:
        return {}
    counts: dict[tuple[int, str], int] = {}
    for training_id, status, count in db.session.execute(
        select(Registration.training_id, Registration.status, func.count())
        .where(Registration.training_id.in_(training_ids), Registration.status.in_(ACTIVE))
        .group_by(Registration.training_id, Registration.status)
    ):
        key = (training_id, "waiting" if status == RegistrationStatus.WAITING else "seat")
        counts[key] = counts.get(key, 0) + count
    return counts


def archive():
    """Published and cancelled trainings whose last session has ended, newest first (a select to paginate)."""
    last_end = (select(TrainingSession.training_id, func.max(TrainingSession.ends_at).label("last_end"))
                .group_by(TrainingSession.training_id).subquery())
    return (select(Training).join(last_end, last_end.c.training_id == Training.id)
            .where(Training.status.in_((TrainingStatus.PUBLISHED, TrainingStatus.CANCELLED)),
                   last_end.c.last_end < utcnow())
            .options(selectinload(Training.sessions))
            .order_by(last_end.c.last_end.desc(), Training.id.desc()))


# --- Staff: participants ------------------------------------------------------------------------


def participants(training_id: int) -> list[Registration]:
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


def give_seat(registration_id: int) -> Registration:
    """Staff move someone from the waiting list to a seat, if one is free."""
    training, registration = lock_registration(db.session.get(Registration, registration_id))
    if registration.status != RegistrationStatus.WAITING:
        raise EventsError(_l("Only someone on the waiting list can be given a seat."))
    if seats_taken(training.id) >= training.seats:
        raise EventsError(_l("No seat is free. Raise the number of seats or cancel a registration first."))
    _give_seat(registration, utcnow())
    db.session.commit()
    return registration


def staff_cancel(registration_id: int) -> Registration:
    """Staff cancel a registration (the person is told; the seat goes to the waiting list)."""
    training, registration = lock_registration(db.session.get(Registration, registration_id))
    if registration.status not in ACTIVE:
        raise EventsError(_l("This registration is not active."))
    _cancel_registration(training, registration)
    db.session.commit()
    return registration


def set_attendance(training_id: int, present: set[tuple[int, int]]) -> int:
    """Replace the training's attendance with ``present`` (registration id, session id) pairs.

    Only confirmed registrations and the training's own sessions count; returns how many are marked.
    """
    training = lock_training(training_id)
    session_ids = {s.id for s in training.sessions}
    confirmed = {r.id for r in _registrations(training, (RegistrationStatus.CONFIRMED,))}
    wanted = {(r, s) for r, s in present if r in confirmed and s in session_ids}
    if len(wanted) != len(present):
        raise EventsError(_l("Attendance can only be marked for confirmed participants."))
    db.session.execute(delete(Attendance).where(Attendance.session_id.in_(session_ids)))
    db.session.add_all(Attendance(registration_id=r, session_id=s) for r, s in sorted(wanted))
    db.session.commit()
    return len(wanted)


def message_participants(training_id: int, subject: str, body: str, include_waiting: bool = False) -> int:
    """Mail a message from staff to everyone holding a seat (and the waiting list if asked)."""
    training = lock_training(training_id)
    statuses = ACTIVE if include_waiting else SEAT_HOLDING
    recipients = _registrations(training, statuses)
    for registration in recipients:
        _mail(registration, "events/message", subject, message=body)
    db.session.commit()
    return len(recipients)


# --- Reminders and personal data -----------------------------------------------------------------


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
    sent = 0
    for registration_id in due:
        claimed = db.session.execute(
            update(Registration).where(Registration.id == registration_id, Registration.reminded_at.is_(None))
            .values(reminded_at=now).execution_options(synchronize_session=False)
        ).rowcount
        if claimed:
            registration = db.session.get(Registration, registration_id)
            _mail(registration, "events/reminder", _l("Reminder: %(title)s", title=registration.training.title))
            sent += 1
        db.session.commit()
    return sent


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


def anonymise_old_registrations() -> int:
    """Remove personal data from registrations of trainings that ended more than
    ``REGISTRATION_RETENTION_MONTHS`` ago; status and attendance stay for the figures."""
    now = utcnow()
    cutoff = _months_ago(now, current_app.config["REGISTRATION_RETENTION_MONTHS"])
    ended = (select(TrainingSession.training_id).group_by(TrainingSession.training_id)
             .having(func.max(TrainingSession.ends_at) < cutoff))
    rows = db.session.scalars(
        select(Registration).where(Registration.anonymised_at.is_(None), Registration.training_id.in_(ended))
    ).all()
    emails = {r.email for r in rows}
    for registration in rows:
        _anonymise(registration, now)
    db.session.flush()
    _drop_unused_keys(emails)
    db.session.commit()
    return len(rows)


def _drop_unused_keys(emails: set[str]) -> None:
    """Delete the keys of addresses that have no registration with personal data left."""
    still_used = set(db.session.scalars(select(Registration.email).where(Registration.email.in_(emails))))
    gone = emails - still_used
    if gone:
        db.session.execute(delete(TraineeKey).where(TraineeKey.email.in_(gone)))


def person_registrations(email: str) -> list[Registration]:
    return list(db.session.scalars(
        select(Registration).where(Registration.email == normalise_email(email))
        .options(selectinload(Registration.training).selectinload(Training.sessions),
                 selectinload(Registration.attended))
        .order_by(Registration.id)
    ))


def person_export(email: str) -> dict:
    """Everything stored about one address (Art. 15 GDPR), as plain data."""
    email = normalise_email(email)
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


def delete_person(email: str) -> int:
    """Erase one address on request (Art. 17 GDPR): cancel what is still active and to come
    (the waiting list moves up), anonymise every registration, drop their keys and mails."""
    email = normalise_email(email)
    now = utcnow()
    ids = [r.id for r in person_registrations(email)]
    for registration_id in ids:
        training, registration = lock_registration(db.session.get(Registration, registration_id))
        if registration.status in ACTIVE and training.ends_at and training.ends_at > now:
            registration.status = RegistrationStatus.CANCELLED
            registration.hold_expires_at = None
            promote(training)
        _anonymise(registration, now)
    db.session.execute(delete(TraineeKey).where(TraineeKey.email == email))
    db.session.execute(delete(OutboxMessage).where(OutboxMessage.to_addr == email))
    db.session.commit()
    return len(ids)


# --- "My registrations" and the personal calendar feed ---------------------------------------------


def _set_key_salts(key: TraineeKey, list_link: bool = True, calendar: bool = True) -> None:
    if list_link:
        key.list_salt = secrets.token_urlsafe(24)
        key.list_token_hash = hash_token(derived_token("my-registrations", key.list_salt))
    if calendar:
        key.calendar_salt = secrets.token_urlsafe(24)
        key.calendar_token_hash = hash_token(derived_token("my-calendar", key.calendar_salt))


def list_token(key: TraineeKey) -> str:
    return derived_token("my-registrations", key.list_salt)


def calendar_token(key: TraineeKey) -> str:
    return derived_token("my-calendar", key.calendar_salt)


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
        _set_key_salts(key)
        db.session.add(key)
        try:
            db.session.flush()
        except IntegrityError:  # the same address at the same moment
            db.session.rollback()
            key = db.session.scalar(select(TraineeKey).where(TraineeKey.email == email))
    queue_mail(email, _l("Your registrations"), "events/my_link", locale=locale,
               list_link=external_url("my.registrations", token=list_token(key)),
               calendar_link=external_url("my.calendar", token=calendar_token(key)))
    db.session.commit()
    return True


def key_by_token(token: str, calendar: bool = False) -> TraineeKey | None:
    column = TraineeKey.calendar_token_hash if calendar else TraineeKey.list_token_hash
    return db.session.scalar(select(TraineeKey).where(column == hash_token(token)))


def new_calendar_address(key: TraineeKey) -> None:
    """Revoke the personal feed address; the old one answers 404 from now on."""
    _set_key_salts(key, list_link=False)
    db.session.commit()


def personal_query(email: str):
    """Trainings the address holds a seat for, for the personal feed (cancelled trainings stay in it)."""
    return (select(Training).join(Registration, Registration.training_id == Training.id)
            .where(Registration.email == email, Registration.status.in_(SEAT_HOLDING),
                   Training.status != TrainingStatus.DRAFT))
