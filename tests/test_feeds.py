"""Calendar feeds are cached per process by ETag: no two different feeds may ever share an entry."""

import itertools

import icalendar
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from core.extensions import db
from events import links, notifications, registrations
from events.models import TraineeKey, Training

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
