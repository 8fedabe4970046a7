"""Calendar feeds are cached per process by ETag: no two different feeds may ever share an entry."""

import itertools
import re
from datetime import datetime, timedelta

import icalendar
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from core.extensions import db
from events import links, notifications, registrations
from events.models import TraineeKey, Training, TrainingFormat

ADDRESSES = itertools.count()


def summaries(response) -> list[str]:
    return sorted(str(e["summary"]) for e in icalendar.Calendar.from_ical(response.get_data()).walk("VEVENT"))


def personal_feed(trainings: list[Training]) -> str:
    """A new person holding a seat on each of ``trainings``; the path of their personal feed."""
    email = f"person{next(ADDRESSES)}@example.org"
    for training in trainings:
        registrations.register(training.id, "Person", email)
    notifications.send_my_registrations_link(email, "de")
    key = db.session.scalar(select(TraineeKey).where(TraineeKey.email == email))
    return f"/my/calendar/{links.calendar_token(key)}.ics"


def test_two_people_whose_trainings_add_up_alike_get_their_own_feed(client, make_training):
    """A holds {1, 4, 5}, B {2, 3, 5}, 5 changed last: an aggregate ETag (count, last change, sum of
    sequences, sum of ids) was the same for both, and B was served A's cached calendar."""
    t = [make_training(title=f"Fortbildung {n}") for n in range(1, 6)]
    assert t[0].id + t[3].id + t[4].id == t[1].id + t[2].id + t[4].id
    path_a = personal_feed([t[0], t[3], t[4]])
    path_b = personal_feed([t[1], t[2], t[4]])
    t[4].description = "geändert"  # the last change is the training both hold
    db.session.commit()

    feed_a, feed_b = client.get(path_a), client.get(path_b)
    assert summaries(feed_a) == ["Fortbildung 1", "Fortbildung 4", "Fortbildung 5"]
    assert summaries(feed_b) == ["Fortbildung 2", "Fortbildung 3", "Fortbildung 5"]
    assert feed_a.headers["ETag"] != feed_b.headers["ETag"]
    # B's ETag does not open A's feed as unchanged, and the other way round.
    assert client.get(path_a, headers={"If-None-Match": feed_b.headers["ETag"]}).status_code == 200
    assert client.get(path_b, headers={"If-None-Match": feed_a.headers["ETag"]}).status_code == 200
    assert client.get(path_b, headers={"If-None-Match": feed_b.headers["ETag"]}).status_code == 304


def test_a_personal_feed_follows_a_new_registration(client, make_training):
    first, second = make_training(title="Erste"), make_training(title="Zweite")
    path = personal_feed([first])
    before = client.get(path)
    email = db.session.scalar(select(TraineeKey.email))
    registrations.register(second.id, "Person", email)
    after = client.get(path, headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200 and summaries(after) == ["Erste", "Zweite"]


def test_filtered_public_feeds_and_single_trainings_never_share_a_calendar(client, make_training):
    housing = make_training(title="Vermietung", target_groups="housing")
    municipal = make_training(title="Verwaltung", target_groups="municipal")
    feeds = {
        "/events/calendar.ics": ["Vermietung", "Verwaltung"],
        "/events/calendar.ics?target_group=housing": ["Vermietung"],
        "/events/calendar.ics?target_group=municipal": ["Verwaltung"],
        f"/events/{housing.id}.ics": ["Vermietung"],
        f"/events/{municipal.id}.ics": ["Verwaltung"],
    }
    for _round in range(2):  # the second round is served from the cache
        etags = set()
        for url, expected in feeds.items():
            response = client.get(url)
            assert summaries(response) == expected, url
            etags.add(response.headers["ETag"])
        assert len(etags) == len(feeds)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.sets(st.integers(0, 5), min_size=1), second=st.sets(st.integers(0, 5), min_size=1))
def test_every_personal_feed_holds_exactly_its_trainings(client, make_training, first, second):
    """Random pairs of people and sets of trainings, fetched one after the other from the same cache."""
    trainings = db.session.scalars(select(Training).order_by(Training.id)).all()
    if not trainings:
        trainings = [make_training(title=f"Termin {n}", seats=1000) for n in range(6)]
    people = [(personal_feed([trainings[i] for i in sorted(chosen)]), chosen) for chosen in (first, second)]
    etags = set()
    for path, chosen in people + people:
        response = client.get(path)
        assert summaries(response) == sorted(f"Termin {i}" for i in chosen)
        etags.add(response.headers["ETag"])
    assert len(etags) == 2


def test_a_training_cancelled_while_holding_a_seat_stays_in_the_personal_feed_as_cancelled(client, make_training,
                                                                                             make_user):
    """The calendar app must show the cancellation, not silently lose the event; a person who had
    cancelled before, or only waited, does not get it back."""
    from accounts.models import Role
    from events import trainings

    training = make_training(title="Fällt aus", seats=1)
    holder = personal_feed([training])
    waiting = personal_feed([training])
    assert summaries(client.get(holder)) == ["Fällt aus"] and summaries(client.get(waiting)) == []
    trainings.cancel_training(training.id, make_user(Role.STAFF))
    feed = icalendar.Calendar.from_ical(client.get(holder).get_data())
    assert [(str(e["summary"]), str(e["status"])) for e in feed.walk("VEVENT")] == [("Fällt aus", "CANCELLED")]
    assert summaries(client.get(waiting)) == []


def programme_entries(client, url: str, **kw) -> dict[str, str]:
    """Each training of the programme page: its title and the text of its entry."""
    page = client.get(url, **kw).get_data(as_text=True)
    entries = re.findall(r'<li class="result">(.*?)</li>', page, re.S)
    return {re.search(r'<h2><a href="/events/\d+">([^<]+)</a>', e).group(1): re.sub(r"<[^>]+>", " ", e) for e in entries}


def test_the_programme_shows_place_target_groups_and_seats_but_never_a_number(client, make_training):
    """Free, a few left, or full with the waiting list: what the training's own page may say
    (``seats.availability``); the exact count would tell whether a stranger's address is booked."""
    free = make_training(title="Viel Platz", seats=37, target_groups="housing,municipal",
                         venue="Planerladen, Schützenstraße 42, Dortmund")
    few = make_training(title="Fast voll", seats=5, target_groups="counselling")
    full = make_training(title="Voll", seats=1)
    online = make_training(title="Im Netz", format=TrainingFormat.ONLINE, venue="")
    for address in ("a@example.org", "b@example.org"):
        registrations.register(few.id, "Person", address)  # 3 of 5 left
    registrations.register(full.id, "Person", "c@example.org")
    registrations.register(full.id, "Wartend", "d@example.org")  # on the waiting list
    entries = programme_entries(client, "/events/")
    assert set(entries) == {free.title, few.title, full.title, online.title}
    assert "Ort Planerladen, Schützenstraße 42, Dortmund" in " ".join(entries["Viel Platz"].split())
    assert "Zielgruppen Wohnungswirtschaft, Kommunalverwaltung" in " ".join(entries["Viel Platz"].split())
    assert "Zielgruppen Beratungsstellen" in " ".join(entries["Fast voll"].split())
    assert "Ort" not in entries["Im Netz"].split()  # online: no place to go to
    seats = {title: re.search(r"Plätze\s+(.+?)\s*$", " ".join(text.split())).group(1) for title, text in entries.items()}
    assert seats == {"Viel Platz": "Plätze frei", "Fast voll": "Nur noch wenige Plätze frei",
                     "Voll": "Ausgebucht; Anmeldungen kommen auf die Warteliste", "Im Netz": "Plätze frei"}
    assert not any(re.search(r"\d+ (Plätze|frei|Warteliste)", text) for text in entries.values())


def test_the_filtered_programme_subscribes_to_the_feed_of_the_same_selection(client, make_training):
    """Every filter of the programme (target group, format, month) travels to its feed links, which
    come from BASE_URL, never from the Host the request named."""
    from core.i18n import from_local

    start = from_local(datetime(2099, 3, 10, 9))
    make_training(title="März online Wohnen", format=TrainingFormat.ONLINE, target_groups="housing",
                  sessions=[(start, start + timedelta(hours=3))])
    make_training(title="März vor Ort Wohnen", format=TrainingFormat.IN_PERSON, target_groups="housing",
                  sessions=[(start, start + timedelta(hours=3))])
    make_training(title="April online Wohnen", format=TrainingFormat.ONLINE, target_groups="housing",
                  sessions=[(start + timedelta(days=30), start + timedelta(days=30, hours=3))])
    make_training(title="März online Verwaltung", format=TrainingFormat.ONLINE, target_groups="municipal",
                  sessions=[(start, start + timedelta(hours=3))])
    query = "target_group=housing&format=online&month=2099-03"
    page = client.get(f"/events/?{query}", headers={"Host": "attacker.example"}).get_data(as_text=True)
    assert list(programme_entries(client, f"/events/?{query}")) == ["März online Wohnen"]
    webcal = re.search(r'href="(webcal://[^"]+)">Diese Fortbildungen im Kalender abonnieren', page).group(1)
    download = re.search(r'href="([^"]+)">Diese Fortbildungen als Kalender \(\.ics\)', page).group(1)
    assert webcal == f"webcal://fundus.test/events/calendar.ics?{query.replace('&', '&amp;')}"
    assert download == f"/events/calendar.ics?{query.replace('&', '&amp;')}"
    assert summaries(client.get(f"/events/calendar.ics?{query}")) == ["März online Wohnen"]
    # Unfiltered: the whole programme's feed, as before.
    whole = client.get("/events/").get_data(as_text=True)
    assert 'href="webcal://fundus.test/events/calendar.ics">Im Kalender abonnieren' in whole


def test_the_feed_understands_format_and_month_like_the_programme(client, make_training):
    from core.i18n import from_local

    def at(*args):
        return from_local(datetime(*args))

    make_training(title="Online", format=TrainingFormat.ONLINE, sessions=[(at(2099, 5, 4, 9), at(2099, 5, 4, 12))])
    make_training(title="Hybrid", format=TrainingFormat.HYBRID, sessions=[(at(2099, 5, 31, 23), at(2099, 6, 1, 1))])
    make_training(title="Vor Ort", format=TrainingFormat.IN_PERSON,
                  sessions=[(at(2099, 6, 1, 0, 30), at(2099, 6, 1, 2)), (at(2099, 5, 2, 9), at(2099, 5, 2, 12))])
    make_training(title="Juni", format=TrainingFormat.IN_PERSON, sessions=[(at(2099, 6, 1, 0, 30), at(2099, 6, 1, 2))])
    cases = {
        "format=online": ["Online"],
        "format=hybrid": ["Hybrid"],
        "format=in-person": ["Juni", "Vor Ort"],
        "month=2099-05": ["Hybrid", "Online", "Vor Ort"],  # by the first session, in Berlin time
        "month=2099-06": ["Juni"],
        "format=in-person&month=2099-05": ["Vor Ort"],
        "format=nonsense&month=2099-13": ["Hybrid", "Juni", "Online", "Vor Ort"],  # not a filter: everything
    }
    etags = set()
    for query, expected in cases.items():
        response = client.get(f"/events/calendar.ics?{query}")
        assert sorted({re.sub(r" \(\d/\d\)$", "", s) for s in summaries(response)}) == expected, query  # (1/2)
        assert sorted(programme_entries(client, f"/events/?{query}")) == expected, query  # the page agrees
        etags.add(response.headers["ETag"])
    assert len(etags) == len(cases)  # no two selections share a cached calendar
