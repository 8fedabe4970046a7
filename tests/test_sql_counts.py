"""SQL statements per page: at most 8, and the same with five times the data (no N+1).

Timing never goes into tests; the benchmark (``bench/``) measures speed. This only counts.
"""

import re
from datetime import timedelta

import pytest
from sqlalchemy import event

from accounts.models import Role
from core.db import engines
from core.extensions import db
from core.i18n import local_today
from core.models import utcnow
from events.models import Attendance, Registration, RegistrationStatus
from materials.models import Booking, BookingStatus, KitContent, Request, RequestStatus
from tests.conftest import in_transaction

LIMIT = 8


def build(scale: int, make_org, make_user, make_material, make_training, prefix: str = "") -> dict:
    """``scale`` of everything a page lists: materials, overdue loans, trainings, registrations."""
    today = local_today()
    org = make_org()
    partner = make_user(Role.PARTNER, organisation=org)
    kits, handed_over = [], []
    for i in range(scale):
        make_material(title=f"Broschüre {i}", editions={"de": 50, "tr": 20}, low_stock_threshold=100)
        kit = make_material(title=f"Koffer {i}", returnable=True, units={"de": [f"{prefix}K{i}-1", f"{prefix}K{i}-2"]})
        kit.contents = [KitContent(name="Tafel", quantity=3)]
        kits.append(kit)
        request = Request(organisation_id=org.id, created_by_id=partner.id, status=RequestStatus.HANDED_OVER)
        db.session.add(request)
        handed_over.append(request)
        start = today - timedelta(days=20)
        db.session.add(Booking(unit=kit.editions[0].units[0], request=request, starts_on=start,
                               ends_on=today - timedelta(days=2), blocked_until=today - timedelta(days=2),
                               status=BookingStatus.HANDED_OVER))
        db.session.add(Request(organisation_id=org.id, created_by_id=partner.id, status=RequestStatus.SUBMITTED))
    trainings = [make_training(title=f"Fortbildung {i}", seats=scale * 2, target_groups="housing",
                               ask_dietary=True) for i in range(scale)]
    big = trainings[0]
    for i in range(scale * 2):
        registration = Registration(training_id=big.id, name=f"Person {i}", email=f"{prefix}p{i}@example.org",
                                    status=RegistrationStatus.CONFIRMED, consent_at=utcnow(),
                                    manage_token_hash=f"{prefix}m{i}", confirm_token_hash=f"{prefix}c{i}", answers='{"dietary": "x"}')
        registration.attended = [Attendance(session_id=big.sessions[0].id)]
        db.session.add(registration)
    db.session.commit()
    return {"kit": kits[0].id, "training": big.id, "request": handed_over[0].id}


def pages(ids: dict) -> list[str]:
    soon = local_today() + timedelta(days=30)
    return [
        "/materials/",
        f"/materials/?q=koffer&available_from={soon}&available_to={soon + timedelta(days=3)}",
        "/materials/?page=2",
        "/materials/?q=brosch%C3%BCre+wohnungswirtschaft+beratung",  # kind and target-group names
        "/materials/?q=nichts-dergleichen&kind=poster&language=de",  # the empty result
        f"/materials/{ids['kit']}",
        f"/materials/{ids['kit']}?available_from={soon}&available_to={soon + timedelta(days=3)}",
        "/requests/overview",
        "/requests/loans/overdue",
        "/requests/stock/low",
        "/requests/?status=handed_over",
        "/requests/",
        f"/requests/{ids['request']}",
        "/events/",
        f"/events/{ids['training']}",
        f"/events/staff/{ids['training']}",
        "/events/staff/",
        "/events/calendar.ics",
    ]


def statements(app, client, url: str) -> int:
    executed = []

    def count(conn, cursor, statement, *args):
        if not statement.startswith(("BEGIN", "SAVEPOINT", "RELEASE")):
            executed.append(statement)

    for engine in engines():
        event.listen(engine, "before_cursor_execute", count)
    try:
        response = client.get(url)
    finally:
        for engine in engines():
            event.remove(engine, "before_cursor_execute", count)
    assert response.status_code == 200, url
    return len(executed)


@pytest.mark.parametrize("scale", [2, 30])
def test_statements_per_page_are_few_and_do_not_grow(app, client, make_org, make_user, make_material,
                                                     make_training, login, scale):
    ids = build(scale, make_org, make_user, make_material, make_training)
    login(make_user(Role.STAFF))
    counts = {url: statements(app, client, url) for url in pages(ids)}
    assert {url: n for url, n in counts.items() if n > LIMIT} == {}


def test_statement_counts_are_the_same_at_both_scales(app, client, make_org, make_user, make_material,
                                                      make_training, login):
    small = build(11, make_org, make_user, make_material, make_training)  # two catalogue pages
    login(make_user(Role.STAFF))
    small_counts = [statements(app, client, url) for url in pages(small)]
    build(44, make_org, make_user, make_material, make_training, prefix="x")  # five times as much in all
    large_counts = [statements(app, client, url) for url in pages(small)]
    assert large_counts == small_counts


def test_overview_lists_are_bounded_and_link_to_the_full_lists(app, client, make_org, make_user, make_material,
                                                               make_training, login):
    """The dashboard costs the same however long its lists grow: the first 20 of each, the total,
    and a link to the full list, which is paginated."""
    build(25, make_org, make_user, make_material, make_training)  # 25 overdue loans, 25 requests to decide
    login(make_user(Role.STAFF))
    page = client.get("/requests/overview").get_data(as_text=True)
    assert "Überfällig (25)" in page and "Warten auf Entscheidung (25)" in page
    assert page.count("<tr><td>") == 40  # 20 overdue loans, 20 low-stock editions
    assert 'href="/requests/loans/overdue">Alle 25</a>' in page
    assert 'href="/requests/?status=submitted">Alle 25</a>' in page
    full = client.get("/requests/loans/overdue").get_data(as_text=True)
    assert "Überfällig (25)" in full and full.count("<tr><td>") == 25
    assert client.get("/requests/loans/pickups").status_code == 200
    assert client.get("/requests/loans/everything").status_code == 404
    # Low stock: 50 editions below their threshold (two per brochure), the emptiest first.
    assert "Niedriger Bestand (50)" in page and 'href="/requests/stock/low">Alle 50</a>' in page
    stock = client.get("/requests/stock/low").get_data(as_text=True)
    assert "Niedriger Bestand (50)" in stock and stock.count("<tr><td>") == 50
    cells = re.findall(r"</td><td>[^<]*</td>\s*<td>(\d+)</td><td>100</td>", stock)
    assert len(cells) == 50 and cells == sorted(cells, key=int) and cells[0] == "20"


@pytest.mark.parametrize("kept", [True, False], ids=["kept answer", "the view's own 304"])
def test_conditional_feed_answers_304_from_one_row_and_changes_with_the_trainings(app, make_app, make_training,
                                                                                  make_user, kept):
    """Calendar apps poll the feed: a 304 reads one statement (the change counters), whatever the history, from
    the kept answer or, without kept answers (``PAGE_CACHE_ENTRIES=0``), in the view itself. A registration does
    not change a public feed; a cancellation does."""
    from events import registrations, trainings

    serving = app if kept else make_app(PAGE_CACHE_ENTRIES=0)
    client = serving.test_client()
    with serving.app_context():
        counted = engines()
    training = make_training(title="Feed-Test")
    first = client.get("/events/calendar.ics")
    etag = first.headers["ETag"]
    executed = []

    def counter(connection, _cursor, statement, *_args):
        executed.append((statement, in_transaction(connection)))

    for engine in counted:
        event.listen(engine, "after_cursor_execute", counter)
    try:
        again = client.get("/events/calendar.ics", headers={"If-None-Match": etag})
    finally:
        for engine in counted:
            event.remove(engine, "after_cursor_execute", counter)
    assert again.status_code == 304
    # One statement, and no transaction around it (no BEGIN/ROLLBACK round trips).
    assert len(executed) == 1 and "FROM change_counters" in executed[0][0] and executed[0][1] is False
    registrations.register(training.id, "Ada Muster", "ada@example.org", "", "", "{}")
    assert client.get("/events/calendar.ics", headers={"If-None-Match": etag}).status_code == 304
    trainings.cancel_training(training.id, make_user(Role.STAFF))
    changed = client.get("/events/calendar.ics", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert b"STATUS:CANCELLED" in changed.get_data()


def test_the_page_of_all_certificates_costs_the_same_for_two_and_twenty_people(app, client, make_user,
                                                                               make_training, login):
    from events import participants

    staff = make_user(Role.STAFF)
    ended = utcnow().replace(microsecond=0) - timedelta(days=3)
    counts = []
    for scale in (2, 20):
        training = make_training(seats=scale, sessions=[(ended, ended + timedelta(hours=3)),
                                                        (ended + timedelta(days=1), ended + timedelta(days=1, hours=3))])
        people = []
        for i in range(scale):
            registration = Registration(training_id=training.id, name=f"Person {i}", email=f"s{scale}p{i}@example.org",
                                        status=RegistrationStatus.CONFIRMED, consent_at=utcnow(),
                                        manage_token_hash=f"s{scale}m{i}", confirm_token_hash=f"s{scale}c{i}")
            registration.attended = [Attendance(session_id=s.id) for s in training.sessions]
            db.session.add(registration)
            people.append(registration)
        db.session.commit()
        for registration in people:
            participants.issue_certificate(registration.id, staff)
        login(staff)
        counts.append(statements(app, client, f"/events/staff/{training.id}/certificates"))
    assert counts[0] == counts[1] <= LIMIT
