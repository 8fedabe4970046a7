"""Trainings: the staff's create, edit, publish and cancel, and the lists of the programme, the archive
and the staff."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from accounts.models import User
from core import audit
from core.confirm import Consequences
from core.db import unit_of_work
from core.extensions import db
from core.models import utcnow
from events.errors import EventsError
from events.feeds import filtered, sessions_ending_after
from events.models import (
    ACTIVE,
    SEAT_HOLDING,
    Registration,
    RegistrationStatus,
    Training,
    TrainingSession,
    TrainingStatus,
)
from events.notifications import mail_registration
from events.seats import lock_training, promote, seats_taken
from materials.models import Material


@dataclass
class TrainingInput:
    """What the training form gives the service (views turn form data into this)."""

    fields: dict  # column values: title, description, target_groups, format, venue, address, …
    sessions: list[tuple[datetime, datetime]]
    handout_ids: list[int]


def _place(training: Training) -> tuple:
    return (training.format, training.venue, training.address, training.online_link)


@unit_of_work
def save_training(training_id: int | None, data: TrainingInput, actor: User) -> Training:
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
        if not training.can("edit"):
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
    if training_id is None:
        audit.record(actor, "create", training, to_state=training.status, details=training.title)
    else:
        Training.states.move(training, "edit", actor, details=training.title)
    if training.status == TrainingStatus.PUBLISHED:
        if changed:
            for registration in registrations_of(training, SEAT_HOLDING):
                mail_registration(registration, "events/changed", _l("Changed: %(title)s", title=training.title),
                                  attach="REQUEST" if registration.sees_details else None)
        promote(training, actor)
    return training


def registrations_of(training: Training, statuses) -> list[Registration]:
    return list(db.session.scalars(
        select(Registration).where(Registration.training_id == training.id, Registration.status.in_(statuses))
        .order_by(Registration.id)
    ))


def _lock_seen(training_id: int, seen: str | None) -> Training:
    """The training, locked; refused if it is no longer in the state the acting person's page showed."""
    training = lock_training(training_id)
    if seen is not None and training.state != seen:
        raise EventsError(Training.states.refused)
    return training


@unit_of_work
def publish(training_id: int, actor: User, seen: str | None = None) -> Training:
    """A draft becomes public: in the programme, the feeds, open for registration."""
    training = _lock_seen(training_id, seen)
    if not training.can("publish"):
        raise EventsError(_l("Only a draft can be published."))
    Training.states.move(training, "publish", actor, details=training.title)
    training.sequence += 1
    return training


@unit_of_work
def cancel_training(training_id: int, actor: User, reason: str = "", seen: str | None = None) -> int:
    """Cancel a training (DOMAIN rule 10): it stays in the feeds as cancelled, every registration on
    it ends (no confirmation, no seat from the waiting list any more) and everyone registered is told
    once; seat holders get a METHOD:CANCEL invitation with a higher SEQUENCE. Returns the mails queued."""
    training = _lock_seen(training_id, seen)
    if not training.can("cancel"):
        raise EventsError(_l("This training is cancelled already."))
    was_published = training.status == TrainingStatus.PUBLISHED
    ended = registrations_of(training, ACTIVE)
    Training.states.move(training, "cancel", actor, reason=reason, refs=ended, details=training.title)
    training.sequence += 1
    told = 0
    now = utcnow()
    for registration in ended:
        held_seat = registration.sees_details
        if registration.holds_seat:
            registration.ended_with_seat_at = now
        Registration.states.move(registration, "end", actor, record=False)
        registration.hold_expires_at = None
        if was_published:
            mail_registration(registration, "events/training_cancelled",
                              _l("Cancelled: %(title)s", title=training.title),
                              attach="CANCEL" if held_seat else None, reason=reason.strip())
            told += 1
    return told


def cancel_consequences(training: Training) -> Consequences:
    """What ``cancel_training`` would do now, for the page that asks first; refused like the action."""
    if not training.can("cancel"):
        raise EventsError(_l("This training is cancelled already."))
    ended = registrations_of(training, ACTIVE)
    waiting = sum(1 for r in ended if r.is_waiting)
    return Consequences((
        _l("The training is cancelled; the programme and the calendar feeds keep it, marked as cancelled."),
        lazy_ngettext("%(num)s registration ends (with a seat: %(seats)s, waiting: %(waiting)s); nobody moves up.",
                      "%(num)s registrations end (with a seat: %(seats)s, waiting: %(waiting)s); nobody moves up.",
                      len(ended), seats=len(ended) - waiting, waiting=waiting),
    ), mails=len(ended) if training.status == TrainingStatus.PUBLISHED else 0)


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
            .where(Training.is_public,
                   last_end.c.last_end < utcnow())
            .options(selectinload(Training.sessions))
            .order_by(last_end.c.last_end.desc(), Training.id.desc()))


def programme(target_group=None, training_format=None, month: date | None = None, language: str = ""):
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
        .where(Training.is_public)
        .options(selectinload(Training.sessions))
        .order_by(first.c.first_start, Training.id)
    )
    return filtered(query, target_group, training_format, month, language)
