"""iCalendar for trainings, as a pure function: trainings in, bytes out.

Each session is one VEVENT with a UID that never changes (training and session ids plus the site's
domain) and local times in the site's zone, described by a VTIMEZONE with yearly rules.

Two kinds of calendar, two sets of rules:

- A subscription feed (public, filtered, one training, personal) has no METHOD: it is a calendar
  to read (RFC 5545), not a scheduling message (RFC 5546, where METHOD:PUBLISH would need an
  ORGANIZER in every event, and clients would treat the events as meetings). Its DTSTAMP is the
  training's last change, as RFC 5545 asks of an object without METHOD, so an unchanged feed is
  byte for byte the same (stable ETag). Its SEQUENCE is the training's own: every subscriber sees
  the same number for a UID, rising with every change of time, place or status.
- An invitation in a mail (METHOD:REQUEST or CANCEL, with ORGANIZER and ATTENDEE) is one message
  to one person: its DTSTAMP is the moment the message is made, and its SEQUENCE is the training's
  plus the number of calendar messages that person got about the training before
  (``events.notifications.earlier_calendar_messages``). It never falls below the feed's and rises with
  every message, so register, cancel and register again are three messages a client applies in
  order, and a change of the training raises it too. The personal feed keeps the training's own
  number as well (one rule for every feed, and its ETag needs no per-person counter): clients keep a
  subscribed calendar apart from the invitations in the person's own, and every change of time,
  place or status that a feed shows also sends confirmed participants an invitation with a higher number.
"""

import re
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from zoneinfo import TZPATH, ZoneInfo

import icalendar

from core.text import one_line
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
    method: str | None = None,
    organizer: tuple[str, str] | None = None,
    attendee: tuple[str, str] | None = None,
    stamp: datetime | None = None,
    sequence_offset: int = 0,
) -> bytes:
    """Build the calendar: a feed without ``method``; with ``method`` REQUEST or CANCEL an invitation,
    with ``organizer`` and ``attendee`` as (name, e-mail address), ``stamp`` the time the message is
    made and ``sequence_offset`` the person's earlier messages (see the module's docstring)."""
    tz = ZoneInfo(timezone)
    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    if method:
        cal.add("method", method)
    cal.add("x-wr-calname", name)
    cal.add("x-wr-timezone", timezone)
    events = []
    for training in trainings:
        sessions = list(training.sessions)
        cancelled = training.status == TrainingStatus.CANCELLED or method == "CANCEL"
        for number, session in enumerate(sessions, start=1):
            event = icalendar.Event()
            event.add("uid", session_uid(training, session.id, domain))
            event.add("dtstamp", stamp or training.updated_at)
            event.add("last-modified", training.updated_at)
            event.add("sequence", training.sequence + sequence_offset)
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
            events.append(event)
    if events:
        cal.add_component(vtimezone(timezone))
    for event in events:
        cal.add_component(event)
    return cal.to_ical()


def location(training: Training) -> str:
    """Venue and address; never the online link (that is only for confirmed participants' mails)."""
    place = ", ".join(part for part in (training.venue, one_line(training.address)) if part)
    if training.format == TrainingFormat.ONLINE:
        return "Online"
    return place


# --- VTIMEZONE with yearly rules -------------------------------------------------------------------
#
# icalendar (7.3) writes a VTIMEZONE as lists of RDATEs up to 2037. The tz database states the rule
# that holds today at the end of each zone file (a POSIX TZ string, "CET-1CEST,M3.5.0,M10.5.0/3"):
# we write that rule as RRULEs, starting in the first year from which it matches the zone's
# transitions, so the VTIMEZONE is short and holds for every year to come. A zone whose rule cannot
# be written so (no rule line, day-of-year rules) falls back to icalendar's RDATE lists.

_OFFSET = r"[+-]?\d{1,3}(?::\d{2}){0,2}"
_NAME = r"<[^>]+>|[A-Za-z]{3,}"
_POSIX = re.compile(rf"^(?P<std>{_NAME})(?P<stdoff>{_OFFSET})"
                    rf"(?:(?P<dst>{_NAME})(?P<dstoff>{_OFFSET})?"
                    rf",M(?P<sm>\d+)\.(?P<sw>\d)\.(?P<sd>\d)(?:/(?P<st>{_OFFSET}))?"
                    rf",M(?P<em>\d+)\.(?P<ew>\d)\.(?P<ed>\d)(?:/(?P<et>{_OFFSET}))?)?$")
_WEEKDAYS = ("SU", "MO", "TU", "WE", "TH", "FR", "SA")
_FIRST_YEAR, _LAST_YEAR = 1970, 2037


def _seconds(text: str | None, default: int) -> int:
    if not text:
        return default
    sign = -1 if text.startswith("-") else 1
    parts = [int(p) for p in text.lstrip("+-").split(":")] + [0, 0]
    return sign * (parts[0] * 3600 + parts[1] * 60 + parts[2])


def _posix_rule(tzid: str) -> str:
    """The rule line at the end of the zone's file, read where ``zoneinfo`` reads it."""
    parts = tzid.split("/")
    for base in TZPATH:
        path = Path(base, *parts)
        if path.is_file():
            return path.read_bytes().rstrip(b"\n").rpartition(b"\n")[2].decode("ascii", "replace")
    try:
        data = resources.files("tzdata.zoneinfo").joinpath(*parts).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return ""
    return data.rstrip(b"\n").rpartition(b"\n")[2].decode("ascii", "replace")


def _transition(year: int, month: int, week: int, weekday: int, at: int) -> datetime:
    """Local time of the ``week``-th (5: last) ``weekday`` (0: Sunday) of the month, plus ``at`` seconds."""
    first = date(year, month, 1)
    day = first + timedelta(days=(weekday - (first.isoweekday() % 7)) % 7 + 7 * (week - 1))
    while day.month != month:
        day -= timedelta(days=7)
    return datetime(day.year, day.month, day.day) + timedelta(seconds=at)


@lru_cache(maxsize=8)
def _rules(tzid: str) -> tuple | None:
    """(first year, standard observance, daylight observance or None) for the zone, or None."""
    match = _POSIX.match(_posix_rule(tzid))
    if not match:
        return None
    std_name, dst_name = (m.strip("<>") if m else m for m in match.group("std", "dst"))
    std = -_seconds(match["stdoff"], 0)
    zone = ZoneInfo(tzid)
    if dst_name is None:  # one offset all year: from the first year it held all year
        def fixed(year: int) -> bool:
            return all(datetime(year, month, 1, tzinfo=zone).utcoffset() == timedelta(seconds=std) for month in (1, 7))

        first = _LAST_YEAR
        while first > _FIRST_YEAR and fixed(first - 1):
            first -= 1
        return first, (std_name, std, std, None), None
    dst = -_seconds(match["dstoff"], -(std + 3600))
    start = (int(match["sm"]), int(match["sw"]), int(match["sd"]), _seconds(match["st"], 7200))
    end = (int(match["em"]), int(match["ew"]), int(match["ed"]), _seconds(match["et"], 7200))
    if not all(1 <= r[0] <= 12 and 1 <= r[1] <= 5 and 0 <= r[2] <= 6 and 0 <= r[3] < 86400 for r in (start, end)):
        return None

    def holds(year: int) -> bool:
        for rule, before, after in ((start, std, dst), (end, dst, std)):
            moment = (_transition(year, *rule) - timedelta(seconds=before)).replace(tzinfo=ZoneInfo("UTC"))
            if ((moment - timedelta(seconds=1)).astimezone(zone).utcoffset() != timedelta(seconds=before)
                    or moment.astimezone(zone).utcoffset() != timedelta(seconds=after)):
                return False
        return True

    if not holds(_LAST_YEAR):
        return None
    first = _LAST_YEAR
    while first > _FIRST_YEAR and holds(first - 1):
        first -= 1
    return first, (std_name, dst, std, end), (dst_name, std, dst, start)


def vtimezone(tzid: str) -> icalendar.Timezone:
    """A VTIMEZONE for ``tzid`` with one STANDARD and one DAYLIGHT observance that repeat every year."""
    rules = _rules(tzid)
    if rules is None:
        return icalendar.Timezone.from_tzid(tzid)
    first, standard, daylight = rules
    tz = icalendar.Timezone()
    tz.add("tzid", tzid)
    for kind, observed in ((icalendar.TimezoneDaylight, daylight), (icalendar.TimezoneStandard, standard)):
        if observed is None:
            continue
        name, offset_from, offset_to, rule = observed
        observance = kind()
        observance.add("tzname", name)
        observance.add("tzoffsetfrom", timedelta(seconds=offset_from))
        observance.add("tzoffsetto", timedelta(seconds=offset_to))
        if rule is None:
            observance.add("dtstart", datetime(first, 1, 1))
        else:
            month, week, weekday, _at = rule
            observance.add("dtstart", _transition(first, *rule))
            observance.add("rrule", {"FREQ": "YEARLY", "BYMONTH": month,
                                     "BYDAY": f"{-1 if week == 5 else week}{_WEEKDAYS[weekday]}"})
        tz.add_component(observance)
    return tz
