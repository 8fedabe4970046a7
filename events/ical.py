"""iCalendar for trainings, as a pure function: trainings in, bytes out.

Each session is one VEVENT with a UID that never changes (training and
session ids plus the site's domain), a SEQUENCE that rises with every change
of time, place or status, and local times in Europe/Berlin with a full
VTIMEZONE. DTSTAMP is the training's last change, not the time of the
request, so an unchanged feed is byte for byte the same (stable ETag).
"""

from collections.abc import Callable, Iterable
from zoneinfo import ZoneInfo

import icalendar

from events.models import Training, TrainingFormat, TrainingStatus

PRODID = "-//Fundus//Trainings//DE"


def session_uid(training: Training, session_id: int, domain: str) -> str:
    return f"training-{training.id}-session-{session_id}@{domain}"


def calendar_bytes(
    trainings: Iterable[Training],
    name: str,
    domain: str,
    url_for_training: Callable[[Training], str],
    timezone: str = "Europe/Berlin",
    method: str = "PUBLISH",
    organizer: tuple[str, str] | None = None,
    attendee: tuple[str, str] | None = None,
) -> bytes:
    """Build the calendar; ``method`` REQUEST or CANCEL is for mail attachments, with ``organizer``
    and ``attendee`` as (name, e-mail address), as RFC 5546 asks of an invitation."""
    tz = ZoneInfo(timezone)
    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)
    cal.add("x-wr-calname", name)
    cal.add("x-wr-timezone", timezone)
    for training in trainings:
        sessions = list(training.sessions)
        cancelled = training.status == TrainingStatus.CANCELLED or method == "CANCEL"
        for number, session in enumerate(sessions, start=1):
            event = icalendar.Event()
            event.add("uid", session_uid(training, session.id, domain))
            event.add("dtstamp", training.updated_at)
            event.add("last-modified", training.updated_at)
            event.add("sequence", training.sequence)
            event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
            title = training.title if len(sessions) == 1 else f"{training.title} ({number}/{len(sessions)})"
            event.add("summary", title)
            event.add("dtstart", session.starts_at.astimezone(tz))
            event.add("dtend", session.ends_at.astimezone(tz))
            if training.description:
                event.add("description", training.description)
            event.add("location", location(training))
            event.add("url", url_for_training(training))
            if organizer:
                event.add("organizer", f"mailto:{organizer[1]}", parameters={"CN": organizer[0]})
            if attendee:
                event.add("attendee", f"mailto:{attendee[1]}", parameters={
                    "CN": attendee[0], "ROLE": "REQ-PARTICIPANT", "PARTSTAT": "ACCEPTED", "RSVP": "FALSE"})
            cal.add_component(event)
    cal.add_missing_timezones()
    return cal.to_ical()


def location(training: Training) -> str:
    """Venue and address; never the online link (that is only for confirmed participants' mails)."""
    place = ", ".join(part for part in (training.venue, training.address.replace("\n", ", ")) if part)
    if training.format == TrainingFormat.ONLINE:
        return "Online"
    return place
