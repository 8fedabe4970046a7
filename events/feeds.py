"""Calendar feeds: which trainings each feed holds, what its content depends on, and its bytes."""

from datetime import date, datetime, time, timedelta

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from core.changes import version as change_version
from core.extensions import db
from core.i18n import from_local, local_today
from core.urls import external_url, site_domain
from events.ical import calendar_bytes
from events.models import SEAT_HOLDING, TRAININGS_COUNTER, Registration, Training, TrainingSession, TrainingStatus

FEED_DAYS_BACK = 30


def sessions_ending_after(moment: datetime):
    """Trainings with a session ending at ``moment`` or later, read from the index on the sessions'
    end (the recent and coming ones), not by testing every training of the history."""
    return select(TrainingSession.training_id).where(TrainingSession.ends_at >= moment)


def filtered(query, target_group=None, training_format=None, month: date | None = None, language: str = ""):
    """The programme's filters, the one definition the programme page, the feeds and the API share: target
    group, format, the month (its first day) in which the first session starts, in Berlin time, and (the
    API's) the language the training is held in."""
    if language:
        query = query.where(Training.language == language)
    if target_group is not None:
        query = query.where(("," + Training.target_groups + ",").contains(f",{target_group.value},"))
    if training_format is not None:
        query = query.where(Training.format == training_format)
    if month is not None:
        following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
        start, end = from_local(datetime.combine(month, time())), from_local(datetime.combine(following, time()))
        # Sessions before the month's end only: a training whose first session is later has none of them.
        first_in_month = (select(TrainingSession.training_id).where(TrainingSession.starts_at < end)
                          .group_by(TrainingSession.training_id)
                          .having(func.min(TrainingSession.starts_at) >= start))
        query = query.where(Training.id.in_(first_in_month))
    return query


def feed_query(target_group=None, today: date | None = None, training_format=None, month: date | None = None):
    """Published and cancelled trainings with a session ending on or after the day 30 days before
    ``today`` (Berlin): whole days, so that a feed's content changes only with the data or the date.
    The programme's filters (``filtered``) narrow it, so a filtered programme has its own feed."""
    day = (today or local_today()) - timedelta(days=FEED_DAYS_BACK)
    since = from_local(datetime.combine(day, time()))
    query = select(Training).where(Training.is_public,
                                   Training.id.in_(sessions_ending_after(since)))
    return filtered(query, target_group, training_format, month)


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


def personal_query(email: str):
    """Trainings the address holds a seat for, for the personal feed; a training cancelled while the
    person held a seat stays in it, marked cancelled, so their calendar shows the cancellation."""
    return (select(Training).join(Registration, Registration.training_id == Training.id)
            .where(Registration.email == email,
                   Registration.status.in_(SEAT_HOLDING) | Registration.ended_with_seat_at.is_not(None),
                   Training.status != TrainingStatus.DRAFT))


def calendar_for(trainings: list[Training], name: str, method: str | None = None,
                 attendee: tuple[str, str] | None = None, stamp: datetime | None = None,
                 sequence_offset: int = 0) -> bytes:
    """The trainings as iCalendar bytes, with this site's domain in the UIDs and its URLs: a feed
    without ``method``, an invitation from the centre (``MAIL_FROM``, the mail's sender) with it."""
    cfg = current_app.config
    return calendar_bytes(
        trainings, name, domain=site_domain(),
        url_for_training=lambda t: external_url("events.detail", training_id=t.id), timezone=cfg["TIMEZONE"],
        method=method, organizer=(cfg["ORG_NAME"], cfg["MAIL_FROM"]) if method else None,
        attendee=attendee, stamp=stamp, sequence_offset=sequence_offset,
    )
