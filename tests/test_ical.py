"""events/ical.py, tested without HTTP by parsing its output back."""

from datetime import UTC, datetime
from types import SimpleNamespace

import icalendar

from events.ical import calendar_bytes
from events.models import TrainingFormat, TrainingStatus


def training(**kw):
    sessions = [
        SimpleNamespace(id=11, starts_at=datetime(2027, 6, 10, 7, 0, tzinfo=UTC), ends_at=datetime(2027, 6, 10, 11, 0, tzinfo=UTC)),
        SimpleNamespace(id=12, starts_at=datetime(2027, 6, 11, 7, 0, tzinfo=UTC), ends_at=datetime(2027, 6, 11, 11, 0, tzinfo=UTC)),
    ]
    values = dict(id=5, title="AGG; Vermietung, Praxis – Übungen", description="Zweitägig: Recht, Fälle; Übungen",
                  sessions=sessions, status=TrainingStatus.PUBLISHED, sequence=3, format=TrainingFormat.IN_PERSON,
                  venue="Planerladen", address="Schützenstraße 42\n44147 Dortmund",
                  updated_at=datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC))
    values.update(kw)
    return SimpleNamespace(**values)


def build(*trainings, **kw):
    return calendar_bytes(trainings, "Fortbildungen", "fundus.test", lambda t: f"https://fundus.test/events/{t.id}", **kw)


def test_events_parse_back_with_every_property():
    raw = build(training())
    assert b"\r\n" in raw and all(len(line) <= 75 for line in raw.split(b"\r\n"))
    cal = icalendar.Calendar.from_ical(raw)
    assert (str(cal["version"]), str(cal["prodid"]), str(cal["calscale"])) == (
        "2.0", "-//Fundus//Trainings//DE", "GREGORIAN")
    assert "METHOD" not in cal  # a feed to subscribe to, not a scheduling message (RFC 5545 vs 5546)
    assert str(cal["x-wr-calname"]) == "Fortbildungen"
    assert [str(tz["tzid"]) for tz in cal.walk("VTIMEZONE")] == ["Europe/Berlin"]
    first, second = cal.walk("VEVENT")
    assert str(first["uid"]) == "training-5-session-11@fundus.test"
    assert str(second["uid"]) == "training-5-session-12@fundus.test"
    assert str(first["summary"]) == "AGG; Vermietung, Praxis – Übungen (1/2)"
    assert str(first["description"]) == "Zweitägig: Recht, Fälle; Übungen"
    assert str(first["location"]) == "Planerladen, Schützenstraße 42, 44147 Dortmund"
    assert str(first["url"]) == "https://fundus.test/events/5"
    assert int(first["sequence"]) == 3 and str(first["status"]) == "CONFIRMED"
    assert first.decoded("dtstamp") == datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert first.decoded("last-modified") == datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)
    # 09:00 in Berlin in June is 07:00 UTC, written as local time with TZID.
    start = first.decoded("dtstart")
    assert (start.hour, str(start.tzinfo)) == (9, "Europe/Berlin")
    assert start.astimezone(UTC) == datetime(2027, 6, 10, 7, 0, tzinfo=UTC)
    assert b"DTSTART;TZID=Europe/Berlin:20270610T090000" in raw


def test_text_is_escaped():
    raw = build(training())
    assert b"SUMMARY:AGG\\; Vermietung\\, Praxis" in raw
    assert "Übungen".encode() in raw


def test_output_is_stable_and_cancellation_keeps_the_uid():
    assert build(training()) == build(training())  # no request time anywhere: stable ETag
    cancelled = icalendar.Calendar.from_ical(build(training(status=TrainingStatus.CANCELLED, sequence=4)))
    event = cancelled.walk("VEVENT")[0]
    assert str(event["status"]) == "CANCELLED" and int(event["sequence"]) == 4
    assert str(event["uid"]) == "training-5-session-11@fundus.test"
    mail = icalendar.Calendar.from_ical(build(training(), method="REQUEST", organizer=("Planerladen e.V.", "team@fundus.test"),
                                              attendee=("Ayşe Demir", "a.demir@example.org")))
    assert str(mail["method"]) == "REQUEST"
    event = mail.walk("VEVENT")[0]
    assert str(event["organizer"]) == "mailto:team@fundus.test" and event["organizer"].params["CN"] == "Planerladen e.V."
    assert str(event["attendee"]) == "mailto:a.demir@example.org" and event["attendee"].params["CN"] == "Ayşe Demir"


def test_online_trainings_never_show_the_link():
    raw = build(training(format=TrainingFormat.ONLINE, online_link="https://meet.example/secret"))
    assert b"secret" not in raw and b"LOCATION:Online" in raw
