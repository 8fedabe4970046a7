"""Public answers kept whole per process (core.pagecache) and the change counters that key them
(core.changes): exact invalidation across two app instances, nothing of one visitor given to another,
and no old body after a change."""

import re

from sqlalchemy import event, update

from accounts.models import Role
from core.changes import all_versions
from core.db import engines
from core.extensions import db
from events.models import Training
from events.registrations import register
from materials.models import Edition, Material

# Every public page, feed and API answer, and nothing else: a page with something of one person in it
# must never be marked.
KEPT = {"api.catalogue", "api.material", "api.programme", "api.training", "api.vocabularies", "embed.programme",
        "events.archive", "events.calendar_ics", "events.detail", "events.programme", "events.training_ics",
        "materials.catalogue", "materials.detail"}  # the home page, imprint and privacy notice read no database


def _statements(app, request):
    """The statements ``request()`` runs, and its answer."""
    executed = []

    def count(_conn, _cursor, statement, *_args):
        executed.append(statement)

    with app.app_context():
        counted = engines()
    for engine in counted:
        event.listen(engine, "before_cursor_execute", count)
    try:
        response = request()
    finally:
        for engine in counted:
            event.remove(engine, "before_cursor_execute", count)
    return executed, response


def _token(page: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def test_exactly_the_public_views_are_kept_whole(app):
    assert {name for name, view in app.view_functions.items() if getattr(view, "kept_whole", False)} == KEPT


def test_a_kept_page_is_served_with_one_statement_and_the_same_content(app, client, make_material):
    from tests.conftest import without_tokens

    material = make_material(title="Fair vermieten", editions={"de": 5})
    url = f"/materials/{material.id}"
    first = client.get(url)
    assert first.status_code == 200
    executed, again = _statements(app, lambda: client.get(url))
    assert again.status_code == 200
    assert len(executed) == 1 and "FROM change_counters" in executed[0]
    assert without_tokens(again.get_data(as_text=True)) == without_tokens(first.get_data(as_text=True))
    assert "Fair vermieten" in again.get_data(as_text=True)


def test_a_change_through_one_instance_is_seen_at_once_by_another(app, client, make_app, make_material,
                                                                  make_training, make_user, login):
    from tests.conftest import without_tokens

    """Two app instances (two processes' caches) on one database: every kind of change made through the
    first, by a page, by the ORM or by a bulk statement, is on the second's next answer."""
    other = make_app().test_client()
    material = make_material(title="Vorher-Broschüre", editions={"de": 5})
    training = make_training(title="Vorher-Schulung", seats=1)
    catalogue, programme, api = "/materials/", "/events/", f"/api/v1/materials/{material.id}"
    for url in (catalogue, programme, api, f"/events/{training.id}"):
        assert other.get(url).status_code == 200
        assert other.get(url).status_code == 200  # now kept by the other instance

    login(make_user(Role.STAFF))  # a change through the first instance's pages: a new material
    assert client.post("/materials/new", data={"title": "Neu-Broschüre", "kind": "brochure", "lending": "giveaway",
                                               "languages": "de", "buffer_days": "0"}).status_code == 302
    assert "Neu-Broschüre" in other.get(catalogue).get_data(as_text=True)
    db.session.get(Material, material.id).title = "Nachher-Broschüre"  # the ORM
    db.session.commit()
    assert "Nachher-Broschüre" in other.get(catalogue).get_data(as_text=True)

    assert other.get(api).get_json()["available"] is True
    db.session.execute(update(Edition).where(Edition.material_id == material.id).values(stock_on_hand=0))
    db.session.commit()  # a bulk statement, as the import and the jobs write
    assert other.get(api).get_json()["available"] is False

    assert "Vorher-Schulung" in other.get(programme).get_data(as_text=True)
    db.session.get(Training, training.id).title = "Nachher-Schulung"
    db.session.commit()
    assert "Nachher-Schulung" in other.get(programme).get_data(as_text=True)

    before = without_tokens(other.get(f"/events/{training.id}").get_data(as_text=True))
    register(training.id, "Ada Muster", "ada@example.org", "", "", "{}")  # the one seat is taken
    assert without_tokens(other.get(f"/events/{training.id}").get_data(as_text=True)) != before


def test_nothing_changed_nothing_raised_and_a_rollback_raises_nothing(app, make_material):
    material = make_material()
    before = all_versions()
    db.session.get(Material, material.id)  # read only
    db.session.commit()
    assert all_versions() == before
    db.session.get(Material, material.id).title = "Verworfen"
    db.session.flush()
    db.session.rollback()
    db.session.commit()
    assert all_versions() == before
    db.session.execute(update(Edition).where(Edition.material_id == material.id).values(stock_on_hand=3))
    db.session.commit()
    after = dict(all_versions())
    assert after["materials"] == dict(before)["materials"] + 1
    assert {name for name, value in after.items() if value != dict(before).get(name)} == {"materials"}


def test_counters_are_raised_last_and_in_sorted_order(app, make_material, make_training):
    """One canonical lock order: the counter rows are written at the end of the transaction, by name."""
    material = make_material()
    training = make_training()
    written = []

    def note(_conn, _cursor, statement, parameters, *_args):
        written.append((statement, repr(parameters)))

    event.listen(db.engine, "before_cursor_execute", note)  # the session's engine: the counters are raised there
    try:
        db.session.get(Training, training.id).title = "Umbenannt"
        db.session.get(Material, material.id).title = "Umbenannt"
        db.session.commit()
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
    first = next(i for i, (statement, _) in enumerate(written) if "change_counters" in statement)
    counters = written[first:]
    assert all("change_counters" in statement for statement, _ in counters)
    assert ["'materials'" in counters[0][1], "'trainings'" in counters[1][1]] == [True, True]


def test_no_visitor_gets_another_visitors_token_cookie_or_message(app, make_material, make_user, login):
    material = make_material(title="Für alle")
    url = f"/materials/{material.id}"
    first, second = app.test_client(), app.test_client()
    built = first.get(url)
    served = second.get(url)
    assert "Für alle" in served.get_data(as_text=True)
    token_first, token_second = _token(built.get_data(as_text=True)), _token(served.get_data(as_text=True))
    assert token_first != token_second
    assert built.headers.get("Set-Cookie") != served.headers.get("Set-Cookie")
    # Each token works for its own visitor only: the language switch is a form with it.
    assert second.post("/language", data={"lang": "en", "next": url, "csrf_token": token_second}).status_code == 302
    assert second.post("/language", data={"lang": "de", "next": url, "csrf_token": token_first}).status_code == 400

    # A message waiting for one visitor is shown to them and kept for no one.
    staff = make_user(Role.STAFF)
    third = app.test_client()
    login(staff, the_client=third)
    third.post("/logout")
    with_message = third.get(url).get_data(as_text=True)
    assert 'class="flashes"' in with_message
    assert 'class="flashes"' not in app.test_client().get(url).get_data(as_text=True)

    # Signed in, the page is built for the person, never a kept one (staff see the staff view).
    fourth = app.test_client()
    login(staff, the_client=fourth)
    assert f"/materials/{material.id}/manage" in fourth.get(url).get_data(as_text=True)
    assert f"/materials/{material.id}/manage" not in app.test_client().get(url).get_data(as_text=True)


def test_a_304_after_a_change_never_gives_the_old_body(app, client, make_app, make_training):
    other = make_app().test_client()
    training = make_training(title="Erste Fassung")
    url = f"/api/v1/trainings/{training.id}"
    etag = other.get(url).headers["ETag"]
    assert other.get(url, headers={"If-None-Match": etag}).status_code == 304  # from the kept answer
    db.session.get(Training, training.id).title = "Zweite Fassung"
    db.session.commit()
    changed = other.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.get_json()["title"] == "Zweite Fassung"
    assert changed.headers["ETag"] != etag
    assert other.get(url, headers={"If-None-Match": changed.headers["ETag"]}).status_code == 304


def test_each_language_and_address_is_its_own_entry(client, make_training):
    make_training(title="Sprachen")
    german = client.get("/events/", headers={"Accept-Language": "de"}).get_data(as_text=True)
    english = client.get("/events/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert 'lang="de"' in german and 'lang="en"' in english
    assert 'lang="de"' in client.get("/events/", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert client.get("/events/?format=online").get_data(as_text=True).count("Sprachen") < german.count("Sprachen")


def test_a_kept_answer_serves_for_page_cache_seconds_at_most(app, client, make_training, monkeypatch):
    """What changes with the time alone (no counter) is on the page after ``PAGE_CACHE_SECONDS``."""
    from datetime import timedelta

    import core.pagecache
    from core.models import utcnow

    make_training(title="Zeitlich")
    client.get("/events/")
    executed, _ = _statements(app, lambda: client.get("/events/"))
    assert len(executed) == 1
    later = utcnow() + timedelta(seconds=app.config["PAGE_CACHE_SECONDS"] + 1)
    monkeypatch.setattr(core.pagecache, "utcnow", lambda: later)
    executed, rebuilt = _statements(app, lambda: client.get("/events/"))
    assert len(executed) > 1 and "Zeitlich" in rebuilt.get_data(as_text=True)


def test_no_cache_when_configured_off(make_app):
    assert "pagecache" not in make_app(PAGE_CACHE_ENTRIES=0).extensions


def test_a_process_that_only_ever_gets_conditional_requests_keeps_the_answer(app, client, make_app, make_training):
    """Calendar apps and other sites' servers poll with ``If-None-Match`` only: the first such request to a
    process builds the whole answer to keep it and answers 304; the next is a 304 from the kept answer."""
    make_training(title="Abonniert")
    etag = client.get("/events/calendar.ics").headers["ETag"]
    other = make_app()
    polling = other.test_client()
    first = polling.get("/events/calendar.ics", headers={"If-None-Match": etag})
    assert first.status_code == 304 and first.headers["ETag"] == etag and not first.get_data()
    executed, again = _statements(other, lambda: polling.get("/events/calendar.ics", headers={"If-None-Match": etag}))
    assert again.status_code == 304 and len(executed) == 1
    full = polling.get("/events/calendar.ics", headers={"If-None-Match": '"something-else"'})
    assert full.status_code == 200 and b"Abonniert" in full.get_data()


def test_a_savepoint_raises_no_counter_before_the_commit(app, make_material, make_training):
    """Write paths use savepoints (a registration, a cart, each row of the import): the counters are raised at
    the transaction's commit, last and in order, not when a savepoint is released."""
    material, training = make_material(), make_training()
    written = []

    def note(_conn, _cursor, statement, parameters, *_args):
        written.append((statement, repr(parameters)))

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        with db.session.begin_nested():
            db.session.get(Training, training.id).title = "Im Savepoint"
        assert not [s for s, _ in written if "change_counters" in s]
        db.session.get(Material, material.id).title = "Danach"
        db.session.commit()
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
    counters = [parameters for statement, parameters in written if "change_counters" in statement]
    assert len(counters) == 2 and "'materials'" in counters[0] and "'trainings'" in counters[1]
    assert all("change_counters" in s for s, _ in written[-2:])


def test_the_kept_answers_of_a_process_stay_within_their_byte_budget():
    from datetime import UTC, datetime

    from core.pagecache import PageCache

    cache, now = PageCache(size=100, budget=1000), datetime(2026, 12, 1, tzinfo=UTC)
    for n in range(10):
        cache.put(("page", n), f"body {n}", now, size=300)
    assert cache.bytes <= 1000 and len(cache) == 3
    assert cache.get(("page", 9), now, 60) == "body 9" and cache.get(("page", 0), now, 60) is None
    cache.put(("page", 9), "again", now, size=100)  # replaced, not counted twice
    assert cache.bytes == 700
