"""Figures for the funder (issue 17): a known story of two years, told through the services at the
moments it happened, and every figure of 2025 and of 2024 asserted, on both databases."""

from contextlib import contextmanager
from datetime import UTC, date, datetime

import pytest
import time_machine
from sqlalchemy import update

from accounts.models import OrganisationKind, Role
from core.extensions import db
from core.vocabulary import TargetGroup
from events import links, participants, personal_data, registrations, trainings
from events.models import Training, TrainingFormat, TrainingSession, TrainingStatus
from figures.period import Period
from figures.queries import compute
from materials import lending
from materials.cart import add_to_cart, submit_request
from materials.models import Booking, Delivery, MaterialKind, RequestStatus, StockReason, UnitCondition
from materials.stock import change_stock

NOW = datetime(2026, 1, 15, 12, tzinfo=UTC)  # the figures are asked for in the new year


@contextmanager
def at(*when):
    """Run what follows as if it were that moment (UTC): every row gets the time it would have had."""
    with time_machine.travel(datetime(*when, tzinfo=UTC), tick=False):
        yield


def training(title: str, seats: int, sessions, fmt=TrainingFormat.IN_PERSON, groups="housing") -> Training:
    made = Training(title=title, seats=seats, format=fmt, target_groups=groups, status=TrainingStatus.PUBLISHED,
                    venue="Planerladen")
    made.sessions = [TrainingSession(starts_at=datetime(*a, tzinfo=UTC), ends_at=datetime(*b, tzinfo=UTC))
                     for a, b in sessions]
    db.session.add(made)
    db.session.commit()
    return made


def register(t: Training, email: str, organisation: str = "Irgendwo", confirm: bool = True):
    registration = registrations.register(t.id, email.split("@")[0].title(), email, organisation).registration
    if confirm:
        registration = registrations.confirm_registration(links.confirm_token(registration))
    return registration


def request(partner, items, key: str):
    cart = {}
    for item in items:
        cart = add_to_cart(cart, *item[:1], **item[1])
    return submit_request(partner, cart, key, "Fachtag", "", Delivery.PICKUP, "")


@pytest.fixture
def story(make_org, make_user, make_material):
    """2024 and 2025 at the Planerladen, as the services recorded them."""
    hafen = make_org(name="Wohnen am Hafen eG", kind=OrganisationKind.HOUSING_COMPANY, city="Dortmund")
    amt = make_org(name="Stadt Bochum", kind=OrganisationKind.MUNICIPAL, city="Bochum")
    make_org(name="Beratung Nord", kind=OrganisationKind.COUNSELLING, city="Herne")
    staff = make_user(Role.STAFF)
    from_hafen, from_amt = make_user(Role.PARTNER, organisation=hafen), make_user(Role.PARTNER, organisation=amt)
    rights = make_material(title="Ihre Rechte", editions={"de": 100, "tr": 50}, kind=MaterialKind.BROCHURE)
    german, turkish = rights.editions
    kit = make_material(title="Koffer Vielfalt", returnable=True, units={"de": ["KV-1"]}, buffer_days=1).editions[0]

    # 2024: a training in May; a brochure request in autumn; a training over New Year.
    with at(2024, 4, 1, 10):
        may = training("Mai-Fortbildung", 5, [((2024, 5, 2, 9), (2024, 5, 2, 13))], groups="housing,counselling")
        k = register(may, "k@example.org")
    with at(2024, 5, 2, 14):
        participants.set_attendance(may.id, {(k.id, may.sessions[0].id)}, staff)
    with at(2024, 10, 31, 10):
        r0 = request(from_hafen, [(german, {"quantity": 2})], "r0")
    with at(2024, 11, 1, 10):
        lending.approve_request(r0.id, staff)
        lending.hand_over(r0.id, [], staff, True)
    with at(2024, 12, 1, 10):
        new_year = training("Über Neujahr", 10, [((2024, 12, 30, 9), (2024, 12, 30, 11)), ((2025, 1, 5, 9), (2025, 1, 5, 11))],
                            fmt=TrainingFormat.ONLINE, groups="municipal")
        h = register(new_year, "h@example.org", organisation="stadt bochum ")  # found by its name all the same
    first, second = (s.id for s in new_year.sessions)
    with at(2024, 12, 30, 12):
        participants.set_attendance(new_year.id, {(h.id, first)}, staff)

    # 2025: the second session over New Year; a full training with its waiting list; a cancelled one.
    with at(2025, 1, 5, 12):
        participants.set_attendance(new_year.id, {(h.id, first), (h.id, second)}, staff)
    with at(2025, 2, 1, 10):
        march = training("März-Fortbildung", 4, [((2025, 3, 10, 8), (2025, 3, 10, 14)), ((2025, 3, 11, 8), (2025, 3, 11, 11))])
        a, b, c = (register(march, f"{n}@example.org") for n in "abc")
        e = register(march, "e@example.org")
        registrations.cancel_registration(links.manage_token(e))  # by the person
        d = register(march, "d@example.org")
        registrations.staff_cancel(d.id, staff, "doppelt")  # by staff
        again = register(march, "e@example.org", organisation="Beratung Nord")  # e registers again
        register(march, "f@example.org", confirm=False)  # full: waiting, and stays there
        g = register(march, "g@example.org", confirm=False)
        registrations.cancel_registration(links.manage_token(g))  # leaves the waiting list without a seat
        june = training("Juni-Fortbildung", 5, [((2025, 6, 1, 9), (2025, 6, 1, 12))])
        register(june, "j@example.org")
        trainings.cancel_training(june.id, staff, "Referentin erkrankt")
    s1, s2 = (s.id for s in march.sessions)
    with at(2025, 3, 11, 12):
        participants.set_attendance(march.id, {(a.id, s1), (a.id, s2), (b.id, s1), (again.id, s2)}, staff)
    assert c.id  # confirmed, never came: the no-show

    with at(2025, 4, 1, 10):
        r1 = request(from_hafen, [(german, {"quantity": 10}), (turkish, {"quantity": 5})], "r1")
    with at(2025, 4, 3, 10):
        lending.approve_request(r1.id, staff)
        lending.hand_over(r1.id, [], staff, True)
    with at(2025, 5, 5, 10):
        change_stock(german.id, -3, StockReason.HANDOUT, staff, note="Infostand")
        db.session.commit()
    with at(2025, 6, 1, 10):
        r2 = request(from_amt, [(kit, {"starts_on": date(2025, 6, 10), "ends_on": date(2025, 6, 14)})], "r2")
    with at(2025, 6, 5, 10):
        lending.approve_request(r2.id, staff)
    with at(2025, 6, 10, 10):
        lending.hand_over(r2.id, [b.id for b in r2.bookings], staff, True)
    db.session.execute(update(Booking).where(Booking.request_id == r2.id).values(
        reminded_at=datetime(2025, 6, 15, 7, tzinfo=UTC)))  # the reminder the jobs sent: it was overdue
    db.session.commit()
    with at(2025, 6, 16, 10):
        lending.take_back(r2.bookings[0].id, staff, UnitCondition.DAMAGED, "Riss im Roll-up")
    with at(2025, 7, 1, 10):
        request(from_hafen, [(german, {"quantity": 1})], "r3")  # still waiting for a decision
    with at(2025, 8, 1, 10):
        r4 = request(from_amt, [(turkish, {"quantity": 1})], "r4")
        lending.reject_request(r4.id, staff, "vergriffen")
    db.session.expire_all()
    return {"closed": r1.id}


def figures_of(year: int):
    return compute(Period("year", date(year, 1, 1), date(year, 12, 31)), NOW)


EXPECTED_2025 = {
    "trainings": 1, "trainings_cancelled": 1, "sessions": 3, "hours": 11.0,  # March (6 + 3 h), and 2 h in January
    "registrations": 8, "confirmed": 4, "no_shows": 1, "unmet": 2, "fill_rate": 100.0,
    "cancelled_by_participants": 2, "cancelled_by_staff": 1,
    "attendances": 5, "participants": 4,
    "copies": 18, "loans": 1, "loan_days": 7, "requests": 4, "decision_days": 2.0,  # out 10 to 16 June
    "organisations_served": 2, "overdue": 1, "damaged": 1,
    "organisations": 3, "organisations_new": 1,
    "training_organisations": 2, "training_organisations_first": 1, "training_organisations_returning": 1,
}
EXPECTED_2024 = {
    "trainings": 2, "trainings_cancelled": 0, "sessions": 2, "hours": 6.0,
    "registrations": 2, "confirmed": 2, "no_shows": 0, "unmet": 0, "fill_rate": 13.3,
    "cancelled_by_participants": 0, "cancelled_by_staff": 0,
    "attendances": 2, "participants": 2,
    "copies": 2, "loans": 0, "loan_days": 0, "requests": 1, "decision_days": 1.0,
    "organisations_served": 1, "overdue": 0, "damaged": 0,
    "organisations": 2, "organisations_new": 2,
    "training_organisations": 1, "training_organisations_first": 1, "training_organisations_returning": 0,
}


def test_every_figure_of_a_known_year_and_the_year_before(story):
    this, last = figures_of(2025), figures_of(2024)
    assert this.numbers == EXPECTED_2025
    assert last.numbers == EXPECTED_2024
    b = this.breakdowns
    assert b["participants_by_group"] == {TargetGroup.HOUSING: 3, TargetGroup.MUNICIPAL: 1, TargetGroup.ASSOCIATIONS: 0,
                                          TargetGroup.COUNSELLING: 0, TargetGroup.EVERYONE: 0}
    assert b["participants_by_format"] == {TrainingFormat.IN_PERSON: 3, TrainingFormat.ONLINE: 1,
                                           TrainingFormat.HYBRID: 0}
    assert {m: n for m, n in b["trainings_by_month"].items() if n} == {"2025-01": 1, "2025-03": 1}
    assert {m: n for m, n in b["participants_by_month"].items() if n} == {"2025-01": 1, "2025-03": 3}
    assert len(b["trainings_by_month"]) == 12
    assert b["copies_by_material"] == {"Ihre Rechte": 18}
    assert b["copies_by_language"] == {"de": 13, "tr": 5} and b["copies_by_kind"] == {MaterialKind.BROCHURE: 18}
    assert b["loans_by_kit"] == {"Koffer Vielfalt": 1} and b["days_by_kit"] == {"Koffer Vielfalt": 7}
    assert {s: n for s, n in b["requests_by_status"].items() if n} == {
        RequestStatus.CLOSED: 1, RequestStatus.RETURNED: 1, RequestStatus.SUBMITTED: 1, RequestStatus.REJECTED: 1}
    assert {k: n for k, n in b["served_by_kind"].items() if n} == {OrganisationKind.HOUSING_COMPANY: 1,
                                                                   OrganisationKind.MUNICIPAL: 1}
    assert {k: n for k, n in b["reached_by_kind"].items() if n} == {
        OrganisationKind.HOUSING_COMPANY: 1, OrganisationKind.MUNICIPAL: 1, OrganisationKind.COUNSELLING: 1}
    assert b["reached_by_city"] == {"Dortmund": 1, "Bochum": 1, "Herne": 1}
    assert last.breakdowns["participants_by_group"][TargetGroup.COUNSELLING] == 1  # May: housing and counselling
    # Where the organisation they gave is known: Beratung Nord (again, in March) and Stadt Bochum (h).
    assert {k: n for k, n in b["participants_by_org_kind"].items() if n} == {
        OrganisationKind.COUNSELLING: 1, OrganisationKind.MUNICIPAL: 1, None: 2}
    assert b["served_by_city"] == {"Dortmund": 1, "Bochum": 1}
    assert b["top_organisations"] == {"Stadt Bochum": 2, "Beratung Nord": 1, "Wohnen am Hafen eG": 1}


def test_anonymised_registrations_still_count(story):
    """DOMAIN rule 7: anonymising keeps status and attendance, so the figures do not move."""
    before = figures_of(2025), figures_of(2024)
    assert personal_data.anonymise_old_registrations() > 0  # everything ended more than a year ago
    db.session.expire_all()
    assert (figures_of(2025), figures_of(2024)) == before


def test_a_deleted_persons_registrations_still_count_as_anonymous(story, make_user):
    """Issue 17: deleting a person's data on request anonymises their registrations; the figures stay."""
    from sqlalchemy import func, select

    from events.models import Registration

    before = figures_of(2025), figures_of(2024)
    staff = make_user(Role.STAFF)
    for address in ("a@example.org", "h@example.org"):  # came in March; came over New Year (Stadt Bochum)
        assert personal_data.delete_person(address, staff) >= 1
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Registration)
                             .where(Registration.anonymised_at.is_not(None))) >= 2
    assert (figures_of(2025), figures_of(2024)) == before


def test_what_has_not_happened_yet_does_not_count(story):
    """Asked in the middle of the March training, only its first session has been held."""
    early = compute(Period("year", date(2025, 1, 1), date(2025, 12, 31)), datetime(2025, 3, 10, 12, tzinfo=UTC))
    assert early.numbers["sessions"] == 2 and early.numbers["hours"] == 8.0  # January, and the first in March
    assert early.numbers["no_shows"] == 0  # the training has not ended


@pytest.mark.parametrize("args, expected, previous", [
    ({}, ("year", date(2026, 1, 1), date(2026, 12, 31)), (date(2025, 1, 1), date(2025, 12, 31))),
    ({"kind": "quarter", "year": "2026", "quarter": "1"}, ("quarter", date(2026, 1, 1), date(2026, 3, 31)),
     (date(2025, 10, 1), date(2025, 12, 31))),
    ({"kind": "month", "year": "2024", "month": "3"}, ("month", date(2024, 3, 1), date(2024, 3, 31)),
     (date(2024, 2, 1), date(2024, 2, 29))),
    ({"kind": "range", "from": "2026-03-01", "to": "2026-03-10"}, ("range", date(2026, 3, 1), date(2026, 3, 10)),
     (date(2026, 2, 19), date(2026, 2, 28))),
    ({"kind": "range", "from": "2026-03-10", "to": "2026-03-01"}, ("year", date(2026, 1, 1), date(2026, 12, 31)),
     (date(2025, 1, 1), date(2025, 12, 31))),  # backwards: this year, with a message
    ({"year": "99999"}, ("year", date(2026, 1, 1), date(2026, 12, 31)), (date(2025, 1, 1), date(2025, 12, 31))),
    ({"kind": "month", "month": "13"}, ("month", date(2026, 1, 1), date(2026, 1, 31)),
     (date(2025, 12, 1), date(2025, 12, 31))),
    ({"kind": "quarter", "quarter": "9"}, ("quarter", date(2026, 1, 1), date(2026, 3, 31)),
     (date(2025, 10, 1), date(2025, 12, 31))),
    ({"kind": "range", "from": "2024-02-01", "to": "2024-02-29", "year": "abc"},  # a range needs no year
     ("range", date(2024, 2, 1), date(2024, 2, 29)), (date(2024, 1, 3), date(2024, 1, 31))),
    ({"year": "2_026"}, ("year", date(2026, 1, 1), date(2026, 12, 31)), (date(2025, 1, 1), date(2025, 12, 31))),
])
def test_the_period_and_the_one_before(args, expected, previous):
    period, errors = Period.from_args(args, date(2026, 6, 15))
    assert (period.kind, period.start, period.end) == expected
    assert (period.previous().start, period.previous().end) == previous
    assert bool(errors) == (args in ({"kind": "range", "from": "2026-03-10", "to": "2026-03-01"}, {"year": "99999"},
                                     {"kind": "month", "month": "13"}, {"kind": "quarter", "quarter": "9"},
                                     {"year": "2_026"}))


def test_staff_see_the_page_and_take_each_table_as_csv(story, client, login, make_user):
    login(make_user(Role.STAFF))
    page = client.get("/figures/?kind=year&year=2025").get_data(as_text=True)
    assert "<h1>Zahlen 2025</h1>" in page
    assert "Organisationen erreicht (Fortbildung oder Material)" in page
    csv = client.get("/figures/copies_by_language.csv?kind=year&year=2025")
    assert csv.headers["Content-Disposition"] == 'attachment; filename="copies_by_language-2025-01-01-2025-12-31.csv"'
    assert csv.get_data(as_text=True).splitlines()[1:] == ["Deutsch;13;2", "Türkisch;5;0"]
    assert client.get("/figures/nothing.csv").status_code == 404


def test_the_workbook_has_a_sheet_per_table_and_the_page_draws_its_charts(story, client, login, make_user,
                                                                          make_material):
    import io

    from openpyxl import load_workbook

    staff = make_user(Role.STAFF)
    evil = make_material(title="=HYPERLINK(\"http://evil.example\")", editions={"de": 5})
    with at(2025, 9, 1, 10):
        change_stock(evil.editions[0].id, -1, StockReason.HANDOUT, staff)
        db.session.commit()
    login(staff)
    page = client.get("/figures/?kind=year&year=2025").get_data(as_text=True)
    # Each chart is an image named by its title; its numbers are in the table next to it.
    assert page.count('role="img"') == 5
    assert '<title id="chart-copies_by_language-title">Stück nach Sprache: 2025 und 2024</title>' in page
    assert 'href="/figures/figures.xlsx?kind=year&amp;year=2025"' in page
    response = client.get("/figures/figures.xlsx?kind=year&year=2025")
    assert response.headers["Content-Disposition"] == 'attachment; filename="figures-2025-01-01-2025-12-31.xlsx"'
    book = load_workbook(io.BytesIO(response.data))
    assert len(book.sheetnames) == 19 and "Stück nach Sprache" in book.sheetnames
    rows = list(book["Stück nach Sprache"].values)
    assert rows == [("Stück nach Sprache", None, None), ("Sprache", "2025", "2024"), ("Deutsch", 14, 2),
                    ("Türkisch", 5, 0)]
    assert all(len(name) <= 31 for name in book.sheetnames)
    assert len({name.casefold() for name in book.sheetnames}) == len(book.sheetnames)
    by_material = book[next(name for name in book.sheetnames if "nach Material" in name)]
    cell = next(c for c in by_material["A"] if "HYPERLINK" in str(c.value))
    assert cell.data_type == "s"  # text, never a formula Excel would run
    numbers = {row[0]: row[1:] for row in list(book["Fortbildungen"].values)[2:]}
    assert numbers["Unterrichtsstunden"] == (11, 6) and numbers["Auslastung (%)"] == (100, 13.3)



def test_the_page_runs_the_same_number_of_statements_however_much_happened(story, app, client, login, make_user):
    """The figures are aggregate queries: a fixed number of statements, with the story or with far more."""
    from tests.test_sql_counts import statements

    login(make_user(Role.STAFF))
    url = "/figures/?kind=year&year=2025"
    few = statements(app, client, url)
    with at(2025, 9, 1, 10):
        for i in range(6):
            more = training(f"Weitere {i}", 20, [((2025, 9, 10 + i, 9), (2025, 9, 10 + i, 12))])
            for k in range(4):
                register(more, f"more-{i}-{k}@example.org", organisation="Stadt Bochum")
    assert statements(app, client, url) == few <= 90


def test_months_and_years_begin_at_midnight_in_berlin_and_drafts_never_took_place(make_training):
    """Review: a session at 00:30 on 1 March (Berlin, winter time) belongs to March, in the period and in
    its month's bar; at 00:30 on 1 July (summer time) to July; a draft training whose date passed counts
    nowhere."""
    with at(2026, 1, 10, 10):
        march = training("Früh im März", 5, [((2026, 2, 28, 23, 30), (2026, 3, 1, 2))])  # 00:30 CET
        july = training("Früh im Juli", 5, [((2026, 6, 30, 22, 30), (2026, 7, 1, 1))])  # 00:30 CEST
        draft = training("Entwurf", 5, [((2026, 5, 5, 9), (2026, 5, 5, 12))])
        draft.status = TrainingStatus.DRAFT
        db.session.commit()
    year = compute(Period("year", date(2026, 1, 1), date(2026, 12, 31)), datetime(2026, 12, 1, tzinfo=UTC))
    assert {m: n for m, n in year.breakdowns["trainings_by_month"].items() if n} == {"2026-03": 1, "2026-07": 1}
    assert year.numbers["trainings"] == 2 and year.numbers["sessions"] == 2
    february = compute(Period("month", date(2026, 2, 1), date(2026, 2, 28)), datetime(2026, 12, 1, tzinfo=UTC))
    assert february.numbers["sessions"] == 0 and sum(february.breakdowns["trainings_by_month"].values()) == 0
    assert march.id and july.id


def test_the_tables_compare_like_with_like(app):
    """Review: the top ten are this period's, with what the same did before; a percentage changes in
    points; a range's months have no counterpart before."""
    from figures.queries import Figures
    from figures.report import _table

    now = Figures({"fill_rate": 75.0}, {"top_organisations": {f"Org {i:02d}": 20 - i for i in range(11)},
                                        "trainings_by_month": {"2026-03": 4}})
    before = Figures({"fill_rate": 50.0}, {"top_organisations": {"Org 10": 50, "Org 00": 5},
                                           "trainings_by_month": {"2026-01": 1, "2026-02": 2}})
    top = _table("top_organisations", now, before, True)
    assert [row[0] for row in top.rows] == [f"Org {i:02d}" for i in range(10)]  # Org 10 is eleventh now
    assert top.rows[0] == ("Org 00", 20, 5)
    with app.test_request_context(headers={"Accept-Language": "de"}):
        from figures.report import NUMBERS

        now.numbers.update({name: 0 for table in NUMBERS.values() for name, _label in table if name != "fill_rate"})
        before.numbers.update({name: 0 for table in NUMBERS.values() for name, _label in table if name != "fill_rate"})
        trainings = _table("trainings", now, before, True)
        label, current, earlier = next(row for row in trainings.rows if row[0].startswith("Auslastung"))
        assert trainings.change(current, earlier, label) == "+25,0 Pp."
    months = _table("trainings_by_month", now, before, False)
    assert [row[1:] for row in months.rows] == [(4, None)]
    assert [row[1:] for row in _table("trainings_by_month", now, before, True).rows] == [(4, 1)]


def test_an_organisation_is_known_by_its_name_as_people_type_it(make_org):
    """Review: SQLite's lower() folds only ASCII, so "ÄRZTEKAMMER NORD" never met "Ärztekammer Nord"."""
    from accounts.organisations import known_organisation_id

    kammer = make_org(name="Ärztekammer Nord", kind=OrganisationKind.OTHER)
    for typed in ("Ärztekammer Nord", "ärztekammer nord", " ÄRZTEKAMMER   NORD "):
        assert known_organisation_id(typed) == kammer.id, typed
    assert known_organisation_id("Ärztekammer Süd") is None and known_organisation_id("  ") is None


def test_two_materials_of_one_title_stay_apart(make_material, make_user):
    staff = make_user(Role.STAFF)
    first, second = (make_material(title="Flyer", editions={"de": 10}) for _ in range(2))
    with at(2025, 3, 1, 10):
        change_stock(first.editions[0].id, -1, StockReason.HANDOUT, staff)
        change_stock(second.editions[0].id, -2, StockReason.HANDOUT, staff)
        db.session.commit()
    assert figures_of(2025).breakdowns["copies_by_material"] == {f"Flyer (#{first.id})": 1,
                                                                  f"Flyer (#{second.id})": 2}


def test_a_periods_figures_are_counted_once_until_anything_changes(story, app, make_app):
    """The exports, the next person and the other workers ask for the figures the page has just counted: they
    are kept (``core.pagecache.kept_value``), shared between processes, and counted again after any change or
    when a session begins or ends, not every minute."""
    from core.db import reading_only
    from figures.queries import figures_as_json, figures_from_json
    from figures.report import tables
    from tests.test_pagecache import _statements

    period, now = Period("year", date(2025, 1, 1), date(2025, 12, 31)), datetime(2026, 1, 15, 9, tzinfo=UTC)
    with reading_only():  # as a page or the job reads them (outside both, SQLite's write lock keeps them unshared)
        first = tables(period, now)
    executed, again = _statements(app, lambda: tables(period, now))
    reads = [s for s in executed if not s.startswith("BEGIN")]
    assert again == first and len(reads) == 3  # the moments, and the counters for each of the two periods
    assert "training_sessions" in reads[0] and all("change_counters" in s for s in reads[1:])
    later = datetime(2026, 1, 15, 11, tzinfo=UTC)  # hours later, no session began or ended in between
    assert len([s for s in _statements(app, lambda: tables(period, later))[0] if not s.startswith("BEGIN")]) == 3

    # Another process (a worker, a host) reads what this one counted: one statement a period, nothing counted.
    db.session.rollback()  # this test's read took SQLite's write lock (no request): the other must not wait
    other = make_app()
    with other.app_context():
        executed, elsewhere = _statements(other, lambda: tables(period, now))
        db.session.remove()
    assert elsewhere == first
    assert sum("FROM shared_values" in s for s in executed) == 2 and not any("FROM registrations" in s
                                                                             for s in executed)

    held = next(t for t in first if t.key == "trainings").rows[0][1]
    with at(2025, 9, 1, 10):
        training("Nachgetragen", 10, [((2025, 10, 1, 9), (2025, 10, 1, 12))])
    executed, changed = _statements(app, lambda: tables(period, now))
    assert len(executed) > 4 and next(t for t in changed if t.key == "trainings").rows[0][1] == held + 1

    # What is shared is what was counted: every kind of key comes back as it was.
    counted = compute(period, now)
    assert figures_from_json(figures_as_json(counted)) == counted


def test_jobs_run_counts_the_years_figures_ahead_for_every_process(story, app, runner, make_app):
    """The first person to open the page after a quiet while finds this year's figures counted."""
    from core.i18n import local_today
    from core.models import utcnow
    from figures.report import tables
    from tests.test_pagecache import _statements

    result = runner.invoke(args=["jobs", "run"])
    assert "figures: this year's figures counted ahead" in result.output, result.output
    db.session.rollback()
    other = make_app()
    with other.app_context():
        executed, counted = _statements(other, lambda: tables(Period.from_args({}, local_today())[0], utcnow()))
        db.session.remove()
    assert sum("FROM shared_values" in s for s in executed) == 2 and not any("FROM registrations" in s
                                                                             for s in executed)


def test_figures_counted_on_an_older_snapshot_are_never_shared_under_newer_counters(story, app, make_app):
    """SQLite: a request's transaction reads one snapshot from its first read (loading who is signed in); a change
    committed by another worker after that must not have the old figures stored under its new counters."""
    import threading

    from sqlalchemy import select

    from figures.report import kept_figures, tables
    from materials.models import Edition

    period = Period("year", date(2025, 1, 1), date(2025, 12, 31))
    edition_id = db.session.scalar(select(Edition.id).order_by(Edition.id))
    db.session.rollback()
    with app.test_request_context("/figures/", method="GET"):
        db.session.execute(select(Training.id)).all()  # the request's first read

        writer = make_app()

        def write():  # another worker commits between the request's first read and the figures
            with writer.app_context(), at(2025, 5, 6, 10):
                change_stock(edition_id, -7, StockReason.HANDOUT, None, note="Infostand 2")
                db.session.commit()
                db.session.remove()

        thread = threading.Thread(target=write)
        thread.start()
        thread.join()
        tables(period, NOW)
        db.session.rollback()
    reader = make_app()
    with reader.app_context():
        shared, fresh = kept_figures(period, NOW)[0].numbers["copies"], compute(period, NOW).numbers["copies"]
        db.session.remove()
    assert shared == fresh


@pytest.mark.parametrize("before, after, figure", [
    ((2025, 3, 10, 7), (2025, 3, 10, 9), "sessions"),  # a session begins in between
    ((2025, 3, 11, 10), (2025, 3, 11, 12), "no_shows"),  # a training's last session ends in between
])
def test_kept_figures_follow_what_began_or_ended(story, before, after, figure):
    from figures.report import kept_figures

    period = Period("year", date(2025, 1, 1), date(2025, 12, 31))
    first, later = datetime(*before, tzinfo=UTC), datetime(*after, tzinfo=UTC)
    assert kept_figures(period, first)[0].numbers[figure] == compute(period, first).numbers[figure]
    assert kept_figures(period, later)[0].numbers[figure] == compute(period, later).numbers[figure] \
        != compute(period, first).numbers[figure]


def test_a_new_release_never_reads_the_figures_the_old_one_shared(story, app, make_app, monkeypatch):
    import hashlib
    from pathlib import Path

    from figures import queries, report

    assert queries.CODE_VERSION == hashlib.sha256(Path(queries.__file__).read_bytes()).hexdigest()[:16]
    period = Period("year", date(2025, 1, 1), date(2025, 12, 31))
    report.kept_figures(period, NOW)  # the old release counted and shared
    db.session.rollback()
    released = report.compute

    def counts_more(p, now):
        figures = released(p, now)
        figures.numbers["new_figure"] = 1
        return figures

    monkeypatch.setattr(report, "compute", counts_more)
    monkeypatch.setattr(queries, "CODE_VERSION", "the-next-release")
    new = make_app()  # a worker of the next release
    with new.app_context():
        current, _before = report.kept_figures(period, NOW)
        db.session.remove()
    assert current.numbers["new_figure"] == 1


def test_counts_are_whole_numbers_on_both_databases(story):
    figures = compute(Period("year", date(2025, 1, 1), date(2025, 12, 31)), NOW)
    assert all(type(figures.numbers[name]) is int for name in ("loans", "copies", "loan_days", "registrations"))
    assert all(type(count) is int for count in figures.breakdowns["loans_by_kit"].values())


def test_counting_ahead_holds_no_write_lock_on_sqlite(story, app):
    from figures.jobs import count_ahead
    from tests.test_pagecache import _statements

    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's write lock")
    db.session.rollback()
    executed, _report = _statements(app, count_ahead)
    begins = [s for s in executed if s.startswith("BEGIN")]
    assert begins == ["BEGIN IMMEDIATE", "BEGIN"]  # removing old values writes; counting the year only reads
