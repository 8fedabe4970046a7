"""Every route with every role: who may see and change what.

The table must name every route of the app; a new route without a row fails
``test_every_route_is_in_the_table``.
"""

from dataclasses import dataclass

import pytest

from accounts.models import AccountApplication, ApplicationStatus, Organisation, Role, User
from core.extensions import db
from core.mail import OutboxMessage, OutboxStatus
from core.models import utcnow
from tests.conftest import signed_in_id

ROLES = ("anonymous", "partner_a", "partner_b", "staff", "admin")


@dataclass
class World:
    org_a: Organisation
    org_b: Organisation
    users: dict
    application: AccountApplication
    message: OutboxMessage
    material: object
    request: object
    training: object
    registration: object


@pytest.fixture
def world(app, make_org, make_user, make_material, make_training):
    org_a, org_b = make_org(name="Organisation A"), make_org(name="Organisation B")
    users = {
        "partner_a": make_user(Role.PARTNER, organisation=org_a),
        "partner_b": make_user(Role.PARTNER, organisation=org_b),
        "staff": make_user(Role.STAFF),
        "admin": make_user(Role.ADMIN),
    }
    application = AccountApplication(
        name="Antrag Stellerin", email="antrag@example.org", organisation_name="Neu e.V.", consent_at=utcnow()
    )
    message = OutboxMessage(
        message_id="<m1@test>", to_addr="x@example.org", subject="S", raw=b"x", status=OutboxStatus.FAILED
    )
    db.session.add_all([application, message])
    db.session.commit()
    from materials.models import Request

    request = Request(organisation_id=org_a.id, created_by_id=users["partner_a"].id, purpose="Fachtag")
    db.session.add(request)
    db.session.commit()
    from events.models import Registration, RegistrationStatus

    training = make_training(seats=1)
    registration = Registration(training=training, name="Wartende", email="w@example.org", consent_at=utcnow(),
                                status=RegistrationStatus.WAITING, manage_token_hash="m" * 64,
                                confirm_token_hash="c" * 64)
    db.session.add(registration)
    db.session.commit()
    return World(org_a, org_b, users, application, message, make_material(editions={"de": 5}), request, training,
                 registration)


def client_as(app, world: World, role: str):
    client = app.test_client()
    if role != "anonymous":
        user_id = signed_in_id(world.users[role])
        with client.session_transaction() as session:
            session["_user_id"] = user_id
            session["_fresh"] = True
    return client


# (method, url with {placeholders}, expected status for anonymous, partner_a, partner_b, staff, admin)
LOGIN = 302  # anonymous users are sent to the login page
EVERYONE = (200,) * 5
SIGNED_IN = (LOGIN, 200, 200, 200, 200)
STAFF_ONLY = (LOGIN, 403, 403, 200, 200)
STAFF_POST = (LOGIN, 403, 403, 302, 302)
ADMIN_ONLY = (LOGIN, 403, 403, 403, 200)
ADMIN_POST = (LOGIN, 403, 403, 403, 302)

TABLE = [
    ("GET", "/", EVERYONE),
    ("GET", "/imprint", EVERYONE),
    ("GET", "/privacy", EVERYONE),
    ("GET", "/healthz", (503,) * 5),  # the same for everyone; 503: no jobs run has succeeded here yet
    ("GET", "/livez", EVERYONE),
    ("POST", "/language", (302,) * 5),
    ("GET", "/login", (200, 302, 302, 302, 302)),
    ("POST", "/login", (200, 302, 302, 302, 302)),
    ("POST", "/logout", (302,) * 5),
    ("GET", "/password/forgot", EVERYONE),
    ("POST", "/password/forgot", EVERYONE),  # empty form: errors shown
    ("GET", "/password/reset/not-a-token", (410,) * 5),
    ("POST", "/password/reset/not-a-token", (410,) * 5),
    ("GET", "/account", SIGNED_IN),
    ("POST", "/account", (LOGIN, 302, 302, 302, 302)),  # unchanged fields keep their values
    ("GET", "/account/password", SIGNED_IN),
    ("POST", "/account/password", SIGNED_IN),
    ("GET", "/apply", EVERYONE),
    ("POST", "/apply", EVERYONE),
    ("GET", "/organisation", (LOGIN, 302, 302, 404, 404)),
    ("GET", "/staff/organisations", STAFF_ONLY),
    ("GET", "/staff/organisations/new", STAFF_ONLY),
    ("POST", "/staff/organisations/new", STAFF_ONLY),
    ("GET", "/staff/organisations/{org_a}/edit", STAFF_ONLY),
    ("POST", "/staff/organisations/{org_a}/edit", STAFF_ONLY),
    ("GET", "/staff/organisations/99999/edit", (LOGIN, 403, 403, 404, 404)),
    ("GET", "/organisations/{org_a}", (LOGIN, 200, 403, 200, 200)),
    ("POST", "/organisations/{org_a}", (LOGIN, 403, 403, 200, 200)),
    ("GET", "/organisations/{org_b}", (LOGIN, 403, 200, 200, 200)),
    ("GET", "/organisations/99999", (LOGIN, 404, 404, 404, 404)),
    ("GET", "/staff/applications", STAFF_ONLY),
    ("GET", "/staff/applications/{application}", STAFF_ONLY),
    ("GET", "/staff/applications/99999", (LOGIN, 403, 403, 404, 404)),
    ("POST", "/staff/applications/{application}/approve", STAFF_POST),
    ("POST", "/staff/applications/{application}/reject", STAFF_POST),
    ("POST", "/staff/applications/99999/reject", (LOGIN, 403, 403, 404, 404)),
    ("GET", "/admin/users", ADMIN_ONLY),
    ("GET", "/admin/users/new", ADMIN_ONLY),
    ("POST", "/admin/users/new", ADMIN_ONLY),
    ("GET", "/admin/users/{partner_a}/edit", ADMIN_ONLY),
    ("POST", "/admin/users/{partner_a}/edit", ADMIN_POST),
    ("GET", "/admin/users/99999/edit", (LOGIN, 403, 403, 403, 404)),
    ("POST", "/admin/users/{partner_a}/invite", ADMIN_POST),
    ("GET", "/admin/outbox", ADMIN_ONLY),
    ("POST", "/admin/outbox/{message}/retry", ADMIN_POST),
    ("GET", "/admin/audit", ADMIN_ONLY),
    ("GET", "/admin/audit.csv", ADMIN_ONLY),
    ("GET", "/materials/", EVERYONE),
    ("GET", "/materials/{material}", EVERYONE),
    ("GET", "/materials/99999", (404,) * 5),
    ("GET", "/materials/new", STAFF_ONLY),
    ("POST", "/materials/new", STAFF_ONLY),
    ("GET", "/materials/{material}/edit", STAFF_ONLY),
    ("POST", "/materials/{material}/edit", STAFF_ONLY),
    ("GET", "/materials/{material}/manage", STAFF_ONLY),
    ("POST", "/materials/{material}/manage", STAFF_ONLY),
    ("POST", "/materials/{material}/archive", STAFF_POST),
    ("POST", "/requests/add/{material}", (LOGIN, 422, 422, 403, 403)),  # an empty form is shown again
    ("GET", "/requests/cart", (LOGIN, 200, 200, 403, 403)),
    ("POST", "/requests/cart", (LOGIN, 200, 200, 403, 403)),
    ("POST", "/requests/cart/remove/0", (LOGIN, 302, 302, 403, 403)),
    ("GET", "/requests/", SIGNED_IN),
    ("GET", "/materials/topics", STAFF_ONLY),
    ("GET", "/figures/", STAFF_ONLY),
    ("GET", "/figures/trainings.csv", STAFF_ONLY),
    ("GET", "/figures/figures.xlsx", STAFF_ONLY),
    ("GET", "/figures/?kind=range&from=2026-03-10&to=2026-01-01", STAFF_ONLY),  # backwards: this year, said so
    ("POST", "/materials/topics/99999", (LOGIN, 403, 403, 404, 404)),
    ("GET", "/requests/{request}", (LOGIN, 200, 403, 200, 200)),
    ("GET", "/requests/99999", (LOGIN, 404, 404, 404, 404)),
    ("GET", "/requests/{request}/reject", STAFF_ONLY),  # asks first: what happens, who gets a mail
    ("POST", "/requests/{request}/approve", STAFF_POST),
    ("POST", "/requests/{request}/reject", (LOGIN, 403, 403, 422, 422)),  # no reason: asked again
    ("GET", "/requests/{request}/cancel", (LOGIN, 200, 403, 200, 200)),  # asks first
    ("POST", "/requests/{request}/cancel", (LOGIN, 302, 403, 302, 302)),  # the partner cancelled it: refused
    ("POST", "/requests/{request}/hand-over", STAFF_POST),
    ("POST", "/requests/{request}/close", STAFF_POST),
    ("GET", "/requests/overview", STAFF_ONLY),
    ("GET", "/requests/loans/overdue", STAFF_ONLY),
    ("GET", "/requests/stock/low", STAFF_ONLY),
    ("GET", "/requests/{request}/slip", STAFF_ONLY),
    ("GET", "/requests/export/ledger.csv", STAFF_ONLY),
    ("GET", "/requests/export/unknown.csv", (LOGIN, 403, 403, 404, 404)),
    ("POST", "/requests/bookings/99999/extend", (LOGIN, 403, 403, 404, 404)),
    ("POST", "/requests/bookings/99999/reassign", (LOGIN, 403, 403, 404, 404)),
    ("POST", "/requests/bookings/99999/return", (LOGIN, 403, 403, 404, 404)),
    ("POST", "/materials/units/99999/clear", (LOGIN, 403, 403, 404, 404)),
    ("GET", "/materials/units/99999", (LOGIN, 403, 403, 404, 404)),
    ("GET", "/materials/units/99999/retire", (LOGIN, 403, 403, 404, 404)),
    ("POST", "/materials/units/99999/retire", (LOGIN, 403, 403, 404, 404)),
    ("GET", "/materials/{material}/labels", STAFF_ONLY),
    ("GET", "/materials/import", STAFF_ONLY),
    ("POST", "/materials/{material}/files", STAFF_POST),
    ("GET", "/materials/{material}/cover.jpg", (404,) * 5),
    ("GET", "/materials/{material}/download.pdf", (404,) * 5),
    ("POST", "/materials/import", STAFF_ONLY),
    ("GET", "/events/registrations/confirm/not-a-token", (410,) * 5),
    ("POST", "/events/registrations/confirm/not-a-token", (410,) * 5),
    ("GET", "/events/99999", (404,) * 5),
    ("POST", "/events/99999", (404,) * 5),
    ("GET", "/events/", EVERYONE),
    ("GET", "/events/99999.ics", (404,) * 5),
    ("GET", "/events/calendar.ics", EVERYONE),
    ("GET", "/events/registrations/not-a-token", (404,) * 5),
    ("POST", "/events/registrations/not-a-token/cancel", (302,) * 5),
    ("GET", "/events/archive", EVERYONE),
    ("GET", "/api/v1/trainings", EVERYONE),
    ("GET", "/api/v1/trainings/99999", (404,) * 5),
    ("GET", "/api/v1/materials", EVERYONE),
    ("GET", "/api/v1/materials/99999", (404,) * 5),
    ("GET", "/api/v1/vocabularies", EVERYONE),
    ("GET", "/api/v1/openapi.json", EVERYONE),
    ("GET", "/embed/programme", EVERYONE),
    ("GET", "/api/", EVERYONE),
    ("GET", "/staff/embed/", STAFF_ONLY),
    ("GET", "/events/{training}", EVERYONE),
    ("GET", "/events/staff/", STAFF_ONLY),
    ("GET", "/events/staff/new", STAFF_ONLY),
    ("POST", "/events/staff/new", STAFF_ONLY),  # empty form: errors shown
    ("GET", "/events/staff/{training}", STAFF_ONLY),
    ("GET", "/events/staff/99999", (LOGIN, 403, 403, 404, 404)),
    ("GET", "/events/staff/{training}/edit", STAFF_ONLY),
    ("POST", "/events/staff/{training}/edit", STAFF_ONLY),
    ("GET", "/events/staff/{training}/duplicate", STAFF_ONLY),
    ("POST", "/events/staff/{training}/duplicate", STAFF_ONLY),
    ("POST", "/events/staff/{training}/publish", STAFF_POST),  # not a draft: refused with a message
    ("POST", "/events/staff/{training}/attendance", STAFF_POST),
    ("GET", "/events/staff/{training}/participants.csv", STAFF_ONLY),
    ("GET", "/events/staff/sessions/{session}/sign-in-sheet", STAFF_ONLY),
    ("GET", "/events/staff/registrations/{registration}/certificate", (LOGIN, 403, 403, 404, 404)),  # not attended
    ("POST", "/events/staff/registrations/{registration}/certificate", STAFF_POST),  # not attended: told so
    ("GET", "/events/staff/{training}/certificates", STAFF_ONLY),  # none issued: says so
    ("POST", "/events/staff/{training}/certificates", STAFF_POST),  # issues the missing ones
    ("POST", "/events/staff/registrations/{registration}/seat", STAFF_POST),
    ("GET", "/events/staff/registrations/{registration}/cancel", STAFF_ONLY),  # asks first
    ("GET", "/events/staff/registrations/99999/cancel", (LOGIN, 403, 403, 404, 404)),
    ("POST", "/events/staff/registrations/99999/cancel", (LOGIN, 403, 403, 404, 404)),
    ("GET", "/events/staff/{training}/holds", STAFF_ONLY),
    ("POST", "/events/staff/{training}/holds", STAFF_POST),  # nothing chosen: told so
    ("GET", "/events/staff/{training}/message", STAFF_ONLY),
    ("POST", "/events/staff/{training}/message", STAFF_ONLY),  # empty form: errors shown
    ("GET", "/events/staff/people", STAFF_ONLY),
    ("POST", "/events/staff/people/export.json", (LOGIN, 403, 403, 400, 400)),  # no address given
    ("GET", "/events/staff/people/delete?email=w@example.org", STAFF_ONLY),  # asks first
    ("GET", "/events/staff/people/delete", (LOGIN, 403, 403, 400, 400)),  # no address given
    ("POST", "/events/staff/people/delete", (LOGIN, 403, 403, 400, 400)),  # no address given
    ("GET", "/events/staff/{training}/cancel", STAFF_ONLY),  # asks first: what happens, who gets a mail
    ("POST", "/events/staff/{training}/cancel", STAFF_POST),  # admin: cancelled already, told so
    ("GET", "/my/registrations", EVERYONE),
    ("POST", "/my/registrations", EVERYONE),  # empty form: errors shown
    ("GET", "/my/registrations/not-a-token", (404,) * 5),
    ("POST", "/my/registrations/not-a-token/calendar", (404,) * 5),
    ("GET", "/my/calendar/not-a-token.ics", (404,) * 5),
    ("GET", "/no/such/page", (404,) * 5),
]


def fill(url: str, world: World) -> str:
    return url.format(
        org_a=world.org_a.id,
        org_b=world.org_b.id,
        application=world.application.id,
        partner_a=world.users["partner_a"].id,
        message=world.message.id,
        material=world.material.id,
        request=world.request.id,
        training=world.training.id,
        session=world.training.sessions[0].id,
        registration=world.registration.id,
    )


def fill_ones(url: str) -> str:
    return url.split("?")[0].format(org_a=1, org_b=2, application=1, partner_a=1, message=1, material=1, request=1,
                                    training=1, session=1, registration=1)


@pytest.mark.parametrize("method, url, expected", TABLE, ids=[f"{m} {u}" for m, u, _ in TABLE])
def test_route_access(app, world, method, url, expected):
    for role, status in zip(ROLES, expected, strict=True):
        client = client_as(app, world, role)
        target = fill(url, world)
        response = client.get(target) if method == "GET" else client.post(target, data={})
        assert response.status_code == status, f"{role} {method} {target}"
        assert response.status_code != 500
        if status == LOGIN and role == "anonymous" and response.headers["Location"].startswith("/login"):
            assert "next=" in response.headers["Location"]


def test_every_route_is_in_the_table(app):
    covered = set()
    adapter = app.url_map.bind("localhost")
    for method, url, _ in TABLE:
        if url == "/no/such/page":
            continue
        endpoint, _ = adapter.match(fill_ones(url), method=method)
        covered.add((endpoint, method))
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if (rule.endpoint, method) not in covered:
                missing.append(f"{method} {rule.rule}")
    assert missing == []


def test_forbidden_changes_change_nothing(app, world):
    """Valid data, wrong role: refused, and the data stays as it was."""
    partner = client_as(app, world, "partner_b")
    response = partner.post(
        f"/staff/organisations/{world.org_a.id}/edit", data={"name": "Gekapert", "kind": "other"}
    )
    assert response.status_code == 403
    response = partner.post(
        f"/organisations/{world.org_a.id}", data={"name": "Eindringling", "email": "e@example.org", "locale": "de"}
    )
    assert response.status_code == 403
    response = partner.post(
        f"/staff/applications/{world.application.id}/approve", data={"organisation_id": "0", "new_kind": "other"}
    )
    assert response.status_code == 403
    staff = client_as(app, world, "staff")
    response = staff.post(
        "/admin/users/new",
        data={"email": "boss@example.org", "name": "Boss", "role": "admin", "locale": "de", "organisation_id": "0"},
    )
    assert response.status_code == 403

    db.session.expire_all()
    assert db.session.get(Organisation, world.org_a.id).name == "Organisation A"
    assert db.session.get(AccountApplication, world.application.id).status == ApplicationStatus.PENDING
    emails = set(db.session.scalars(db.select(User.email)))
    assert not {"e@example.org", "boss@example.org"} & emails


def test_csrf_is_required_on_every_post(app, world):
    """Every state-changing route refuses a POST without token, with a page that says why."""
    client = client_as(app, world, "admin")
    for method, url, _ in TABLE:
        if method != "POST":
            continue
        response = client.post(fill(url, world), data={}, csrf=False)
        assert response.status_code == 400, url
        assert "Sicherheitsmerkmal" in response.get_data(as_text=True)
