"""Every route, every parameter, a fixed list of hostile values: never a 5xx, and a refused request
changes nothing (DOMAIN rule 8). Runs on both databases; PostgreSQL refuses NUL bytes, numbers beyond
its integers and text beyond a column, SQLite does not, so both must be covered by the code."""

import re
from datetime import date

import pytest
from sqlalchemy import text

from accounts import forms as account_forms
from core.extensions import db
from core.jobs import run_all
from events import forms as event_forms
from materials import forms as material_forms
from tests.conftest import signed_in_id
from tests.test_access import ROLES, World, world  # noqa: F401  (the same objects as the access table)

HOSTILE = [
    "\x00", "Ti\x00tel", "\x1b[31m", "\x7f", "99999999999999999999", "9223372036854775807", "2147483648", "-1",
    "-2147483649", "9999-12-31", "0001-01-01", "9999-12", "2026-13", "x" * 20_000, "ü" * 301, "", "%", "1e309",
    "NaN", "'; DROP TABLE users; --", "\u2028", "ä\r\nBcc: x@example.org",
    "²",  # a digit to str.isdigit, not to int()
]
HOSTILE_IDS = ["99999999999999999999", "9223372036854775807", "2147483648", "0"]
HOSTILE_SEGMENTS = ["\x00", "x" * 5000, "%FF", "..%2F..%2Fetc"]

QUERY = ["q", "page", "month", "topic", "kind", "language", "target_group", "available_from", "available_to",
         "organisation", "status", "email", "from", "to", "archived", "size", "past", "actor", "start", "end", "next",
         "format", "year", "quarter"]
EXTRA_FIELDS = ["action", "booking_id", "contents_checked", "condition", "note", "ends_on", "unit_id", "present",
                "reason", "archived", "lang", "next", "email", "quantity-1"]


def form_fields() -> list[str]:
    """Every field name of every form of the app (prefixed ones as the pages send them)."""
    from flask_wtf import FlaskForm

    names = set(EXTRA_FIELDS)
    for module in (account_forms, material_forms, event_forms):
        for cls in vars(module).values():
            if isinstance(cls, type) and issubclass(cls, FlaskForm) and cls is not FlaskForm:
                for name in dir(cls):
                    if not name.startswith("_") and hasattr(getattr(cls, name), "field_class"):
                        names.add(name)
    for prefix in ("stock-", "unit-"):
        names |= {prefix + n for n in ("edition_id", "quantity", "reason", "note", "inventory_code")}
    names |= {f"sessions-{i}-{n}" for i in range(3) for n in ("day", "starts", "ends")}
    return sorted(names - {"csrf_token", "submit"})


def snapshot() -> tuple:
    """What a refused request must leave as it was: the number of rows of every table and the last
    change of those that record it."""
    parts = []
    for table in db.metadata.sorted_tables:
        parts.append(f"SELECT '{table.name}', count(*), "
                     + ("CAST(max(updated_at) AS VARCHAR(40))" if "updated_at" in table.c else "''")
                     + f" FROM {table.name}")
    with db.engine.connect() as connection:
        return tuple(tuple(row) for row in connection.execute(text(" UNION ALL ".join(parts))))


def urls(app, w: World):
    """(method, url, path variant) for every route: with existing ids, and with hostile path values."""
    ids = {"training_id": w.training.id, "material_id": w.material.id, "request_id": w.request.id,
           "organisation_id": w.org_a.id, "application_id": w.application.id, "user_id": w.users["partner_a"].id,
           "message_id": w.message.id, "registration_id": w.registration.id, "session_id": w.training.sessions[0].id,
           "booking_id": 1, "unit_id": 1, "index": 0, "kind": "overdue", "token": "not-a-token"}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            values = {arg: ids.get(arg, "x") for arg in rule.arguments}
            yield method, rule, values
            for arg in rule.arguments:
                hostile = HOSTILE_IDS if isinstance(values[arg], int) else HOSTILE_SEGMENTS
                for value in hostile:
                    yield method, rule, values | {arg: value}


def build(rule, values) -> str:
    path = rule.rule
    for arg, value in values.items():
        path = re.sub(r"<(?:[^:<>]+:)?" + arg + r">", str(value).replace("/", "%2F"), path)
    return path


@pytest.mark.parametrize("role", ["anonymous", "partner_a", "admin"])
def test_no_hostile_value_gives_a_server_error_or_changes_anything_when_refused(app, make_app, world, role):  # noqa: F811
    assert role in ROLES
    fuzz = make_app(WTF_CSRF_ENABLED=False, RATELIMIT_ENABLED=False)
    run_all()  # /healthz is healthy, so a 503 from it would be a finding too
    fields = form_fields()
    failures = []
    user_id = signed_in_id(world.users[role]) if role != "anonymous" else None
    routes = list(urls(fuzz, world))
    db.session.rollback()  # the test holds no lock while the requests run
    for method, rule, values in routes:
        url = build(rule, values)
        hostile_path = any(str(v) in HOSTILE_IDS + HOSTILE_SEGMENTS for v in values.values())
        for value in HOSTILE[:1] if hostile_path else HOSTILE:  # a hostile path is refused before any parameter
            client = fuzz.test_client()
            if role != "anonymous":
                with client.session_transaction() as session:
                    session["_user_id"] = user_id
                    session["_fresh"] = True
            before = snapshot() if method == "POST" else None
            if method == "GET":
                response = client.get(url, query_string={name: value for name in QUERY})
            else:
                response = client.post(url, data={name: value for name in fields})
            if response.status_code >= 500:
                failures.append(f"{role} {method} {url[:80]!r} {value[:20]!r}: {response.status_code}")
            elif before is not None and response.status_code != 302 and snapshot() != before:
                failures.append(f"{role} {method} {url[:80]!r} {value[:20]!r}: refused ({response.status_code}) "
                                "but changed the database")
    assert failures == [], "\n".join(failures[:60])


def forms(w: World, kit_edition: int, kit_id: int, booking_id: int) -> list[tuple[str, str, dict]]:
    """(who, url, data that the form accepts): each field is then replaced by each hostile value."""
    from tests.test_trainings_staff import form_data

    edition = w.material.editions[0].id
    return [
        ("admin", "/materials/new", {"title": "Neu", "kind": "brochure", "lending": "giveaway", "languages": "de",
                                     "buffer_days": "2", "year": "2024", "per_request_max": "10",
                                     "low_stock_threshold": "5", "loan_days_max": "14", "topics": "AGG",
                                     "contents": "2 x Tafel", "subtitle": "", "description": "", "publisher": "",
                                     "co_publishers": "", "pickup_notes": "", "target_groups": "housing"}),
        ("admin", f"/materials/{w.material.id}/manage", {"action": "stock", "stock-edition_id": str(edition),
                                                          "stock-quantity": "5", "stock-reason": "intake",
                                                          "stock-note": "Lieferung"}),
        ("admin", f"/materials/{kit_id}/manage", {"action": "unit", "unit-edition_id": str(kit_edition),
                                                   "unit-inventory_code": "NEU-1"}),
        ("admin", "/events/staff/new", form_data(registration_opens_at="2027-01-01T09:00",
                                                 registration_closes_at="2027-06-01T09:00", free_question="Warum?")),
        ("admin", f"/events/staff/{w.training.id}/message", {"subject": "Hinweis", "body": "Text"}),
        ("admin", "/staff/organisations/new", {"name": "Neue eG", "kind": "other", "street": "", "postcode": "",
                                               "city": "", "phone": "", "email": "", "notes": ""}),
        ("admin", "/admin/users/new", {"email": "neu@example.org", "name": "Neu", "role": "staff",
                                       "organisation_id": "0", "locale": "de"}),
        ("admin", f"/requests/bookings/{booking_id}/extend", {"ends_on": "2027-12-01"}),
        ("admin", f"/requests/{w.request.id}/reject", {"reason": "Nein"}),
        ("anonymous", f"/events/{w.training.id}", {"name": "Tom", "email": "tom@example.org", "consent": "y",
                                                    "organisation": "", "position": "", "accessibility": "",
                                                    "dietary": "", "free_answer": ""}),
        ("anonymous", "/apply", {"name": "Nina", "email": "nina@example.org", "organisation_id": "0",
                                 "organisation_name": "Neu e.V.", "position": "", "phone": "", "message": "",
                                 "consent": "y"}),
        ("anonymous", "/my/registrations", {"email": "w@example.org"}),
        ("partner_a", f"/requests/add/{w.material.id}", {"edition_id": str(edition), "quantity": "1"}),
        ("partner_a", f"/requests/add/{kit_id}", {"edition_id": str(kit_edition), "starts_on": "2027-09-01",
                                                  "ends_on": "2027-09-03"}),
        ("partner_a", "/requests/cart", {"submit_key": "k1", "purpose": "Fachtag", "audience": "20",
                                         "delivery": "pickup", "shipping_address": ""}),
    ]


def test_each_field_of_each_form_with_each_hostile_value(app, make_app, make_material, world):  # noqa: F811
    """The other fields valid, one hostile: never a 5xx; when the form is shown again (refused),
    nothing changed."""
    from materials.bookings import book_unit

    kit = make_material(returnable=True, units={"de": ["KF-1", "KF-2"]})
    booking = book_unit(kit.editions[0].units[0].id, date(2027, 8, 1), date(2027, 8, 3), request_id=world.request.id)
    db.session.commit()
    fuzz = make_app(WTF_CSRF_ENABLED=False, RATELIMIT_ENABLED=False)
    cases = forms(world, kit.editions[0].id, kit.id, booking.id)
    user_ids = {role: signed_in_id(world.users[role]) for role in ("partner_a", "admin")}
    db.session.rollback()
    failures = []
    for who, url, valid in cases:
        for field in valid:
            for value in HOSTILE:
                client = fuzz.test_client()
                if who != "anonymous":
                    with client.session_transaction() as session:
                        session["_user_id"] = user_ids[who]
                        session["_fresh"] = True
                before = snapshot()
                response = client.post(url, data=valid | {field: value})
                if response.status_code >= 500:
                    failures.append(f"{who} {url} {field}={value[:20]!r}: {response.status_code}")
                elif response.status_code not in (302, 200) or (
                        response.status_code == 200 and b"alert--error" in response.data):
                    if snapshot() != before:
                        failures.append(f"{who} {url} {field}={value[:20]!r}: refused but changed the database")
    assert failures == [], "\n".join(failures[:60])
