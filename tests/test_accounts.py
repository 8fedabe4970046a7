"""Partner applications, organisations, contacts, user management and the accounts CLI."""

import re

import pytest
from flask_migrate import upgrade

from accounts.models import AccountApplication, ApplicationStatus, Organisation, OrganisationKind, Role, User
from app import create_app
from core.db import current_revision, head_revision
from core.extensions import db
from core.mail import OutboxMessage
from core.privacy import PRIVACY_VERSION
from tests.conftest import PASSWORD, all_rows, base_config, mail_text, without_tokens


def mails_to(address: str) -> list[OutboxMessage]:
    return db.session.scalars(db.select(OutboxMessage).where(OutboxMessage.to_addr == address)
                              .order_by(OutboxMessage.id)).all()


def link_in(message: OutboxMessage) -> str:
    return re.search(r"http://fundus\.test(/\S+)", mail_text(message)).group(1)


APPLICATION = {
    "name": "Leyla Aydın",
    "email": "Leyla.Aydin@Wohnen-Test.example",
    "organisation_name": "Wohnungsgenossenschaft Hörde eG",
    "position": "Vermietung",
}


def apply(client, **changes):
    return client.post("/apply", data=APPLICATION | changes)


def test_apply_approve_and_set_password(client, make_user, login, app):
    response = apply(client)
    assert response.status_code == 200
    assert "Vielen Dank" in response.get_data(as_text=True)
    application = db.session.scalar(db.select(AccountApplication))
    assert application.email == "leyla.aydin@wohnen-test.example"
    assert application.status == ApplicationStatus.PENDING and application.consent_at is not None
    assert application.privacy_version == PRIVACY_VERSION
    assert len(mails_to(application.email)) == 1  # acknowledgement
    (notice,) = mails_to("team@planerladen.test")
    assert f"/staff/applications/{application.id}" in notice.raw.decode()

    staff = make_user(Role.STAFF)
    login(staff)
    page = client.get(f"/staff/applications/{application.id}").get_data(as_text=True)
    assert "Wohnungsgenossenschaft Hörde eG" in page
    no_default_kind = r'name="new_kind"[^>]*><option (selected )?value="">— bitte wählen —</option><option value="housing'
    assert re.search(no_default_kind, page)
    refused = client.post(f"/staff/applications/{application.id}/approve", data={"organisation_id": "0"},
                          follow_redirects=True)
    assert "Wählen Sie die Organisation oder die Art der neuen Organisation." in refused.get_data(as_text=True)
    assert db.session.scalar(db.select(User).where(User.email == application.email)) is None
    response = client.post(
        f"/staff/applications/{application.id}/approve",
        data={"organisation_id": "0", "new_kind": "housing_company"},
    )
    assert response.status_code == 302
    user = db.session.scalar(db.select(User).where(User.email == application.email))
    assert user.role == Role.PARTNER and not user.has_password
    assert user.organisation.name == "Wohnungsgenossenschaft Hörde eG"
    db.session.refresh(application)
    assert application.status == ApplicationStatus.APPROVED and application.decided_by_id == staff.id

    invitation = mails_to(user.email)[-1]
    assert "Ihr Fundus-Zugang" in invitation.subject
    client.post("/logout")
    link = link_in(invitation)
    response = client.post(link, data={"password": "mein neues passwort", "confirm": "mein neues passwort"})
    assert response.status_code == 302
    client.post("/logout")
    assert client.post(
        "/login", data={"email": user.email, "password": "mein neues passwort"}
    ).status_code == 302


def test_approve_into_an_existing_organisation(client, make_user, make_org, login):
    """The applicant types the organisation's name; staff find it chosen on the approval form."""
    org = make_org(name="Wohnen am See eG")
    apply(client, organisation_name="wohnen am see EG")
    application = db.session.scalar(db.select(AccountApplication))
    assert application.organisation_id is None and application.organisation_name == "wohnen am see EG"
    login(make_user(Role.STAFF))
    page = client.get(f"/staff/applications/{application.id}").get_data(as_text=True)
    assert re.search(rf'<option selected value="{org.id}">Wohnen am See eG</option>', page), page
    client.post(
        f"/staff/applications/{application.id}/approve",
        data={"organisation_id": str(org.id), "new_kind": "other"},
    )
    user = db.session.scalar(db.select(User).where(User.email == application.email))
    assert user.organisation_id == org.id
    assert db.session.scalar(db.select(db.func.count()).select_from(Organisation)) == 1  # none added


def test_reject_tells_the_applicant_and_allows_no_second_decision(client, make_user, login):
    apply(client)
    application = db.session.scalar(db.select(AccountApplication))
    login(make_user(Role.STAFF))
    response = client.post(
        f"/staff/applications/{application.id}/reject", data={"reason": "Keine Partnerorganisation."}
    )
    assert response.status_code == 302
    db.session.refresh(application)
    assert application.status == ApplicationStatus.REJECTED
    rejection = mails_to(application.email)[-1]
    assert "Keine Partnerorganisation." in rejection.raw.decode()
    again = client.post(
        f"/staff/applications/{application.id}/approve",
        data={"organisation_id": "0", "new_kind": "other"},
        follow_redirects=True,
    )
    assert "Über diesen Antrag wurde bereits entschieden." in again.get_data(as_text=True)
    assert db.session.scalar(db.select(User).where(User.email == application.email)) is None


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"email": "kein-at"}, "Das ist keine gültige E-Mail-Adresse."),
        ({"name": ""}, "Bitte geben Sie Ihren Namen ein."),
        ({"organisation_name": " "}, "Bitte geben Sie den Namen Ihrer Organisation ein."),
    ],
)
def test_bad_applications_change_nothing(client, changes, message):
    response = apply(client, **changes)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert message in page
    assert db.session.scalar(db.select(db.func.count()).select_from(AccountApplication)) == 0
    assert db.session.scalar(db.select(db.func.count()).select_from(OutboxMessage)) == 0


def test_the_application_form_names_no_organisation(client, make_org):
    make_org(name="Verschwiegene Wohnbau eG")
    page = client.get("/apply").get_data(as_text=True)
    assert "Verschwiegene Wohnbau eG" not in page and "<select" not in page
    assert 'name="organisation_name"' in page


def test_applying_tells_nobody_whether_the_address_has_an_account(client, make_user):
    """A new address, one with an account and one with an open application get the same page; the
    address with an account is told by mail how to get in, the open application stays as it was."""
    new = apply(client, email="neu@wohnen-test.example")
    (application,) = db.session.scalars(db.select(AccountApplication)).all()
    holder = make_user(email="bekannt@wohnen-test.example", locale="de")
    before = all_rows()
    known = apply(client, email="Bekannt@Wohnen-Test.example")
    after = all_rows()
    pending = apply(client, email="neu@wohnen-test.example")

    assert new.status_code == known.status_code == pending.status_code == 200
    assert without_tokens(new.get_data(as_text=True)) == without_tokens(known.get_data(as_text=True))
    assert without_tokens(new.get_data(as_text=True)) == without_tokens(pending.get_data(as_text=True))
    (told,) = mails_to(holder.email)
    assert told.subject == "Sie haben bereits einen Fundus-Zugang"
    text = mail_text(told)
    assert "bereits einen Zugang" in text
    assert "http://fundus.test/login" in text and "http://fundus.test/password/forgot" in text
    # Nothing but that mail was written: no application, no audit entry.
    assert {k: v for k, v in after.items() if k != "outbox_messages"} == \
        {k: v for k, v in before.items() if k != "outbox_messages"}
    assert len(after["outbox_messages"]) == len(before["outbox_messages"]) + 1
    assert db.session.scalars(db.select(AccountApplication)).all() == [application]
    again = mails_to("neu@wohnen-test.example")
    assert [m.subject for m in again] == ["Wir haben Ihren Antrag erhalten", "Ihr Antrag wird geprüft"]


def test_staff_create_edit_and_search_organisations(client, make_user, login):
    login(make_user(Role.STAFF))
    response = client.post(
        "/staff/organisations/new",
        data={"name": "Stadt Lünen – Sozialamt", "kind": "municipal", "city": "Lünen", "email": ""},
    )
    assert response.status_code == 302
    org = db.session.scalar(db.select(Organisation).where(Organisation.city == "Lünen"))
    assert org.kind == OrganisationKind.MUNICIPAL
    duplicate = client.post(
        "/staff/organisations/new", data={"name": "stadt lünen – sozialamt", "kind": "other"}
    )
    assert "Eine Organisation mit diesem Namen gibt es bereits." in duplicate.get_data(as_text=True)
    bad_kind = client.post("/staff/organisations/new", data={"name": "X", "kind": "castle"})
    assert bad_kind.status_code == 200 and "field--error" in bad_kind.get_data(as_text=True)
    # The kind is chosen, not left at the first of the list: the form begins with an empty choice.
    form = client.get("/staff/organisations/new").get_data(as_text=True)
    assert '<select id="kind" name="kind" required><option value="">— bitte wählen —</option>' in form
    no_kind = client.post("/staff/organisations/new", data={"name": "Ohne Art e.V.", "kind": ""})
    assert "Bitte wählen Sie die Art." in no_kind.get_data(as_text=True)
    assert db.session.scalar(db.select(Organisation).where(Organisation.name == "Ohne Art e.V.")) is None

    client.post(
        f"/staff/organisations/{org.id}/edit",
        data={"name": "Stadt Lünen – Sozialamt", "kind": "municipal", "city": "Lünen",
              "phone": "02306 104-0", "notes": "Ansprechpartnerin wechselt im Mai."},
    )
    db.session.refresh(org)
    assert org.phone == "02306 104-0"
    found = client.get("/staff/organisations?q=lünen").get_data(as_text=True)
    assert "Stadt Lünen – Sozialamt" in found
    filtered = client.get("/staff/organisations?kind=housing_company").get_data(as_text=True)
    assert "Stadt Lünen – Sozialamt" not in filtered


def test_staff_add_contact_who_gets_an_invitation(client, make_user, make_org, login):
    org = make_org()
    login(make_user(Role.STAFF))
    response = client.post(
        f"/organisations/{org.id}",
        data={"name": "Jana Nowak", "email": "jana@example.org", "locale": "en"},
    )
    assert response.status_code == 302
    contact = db.session.scalar(db.select(User).where(User.email == "jana@example.org"))
    assert contact.organisation_id == org.id and contact.role == Role.PARTNER
    (invitation,) = mails_to("jana@example.org")
    assert invitation.subject == "Your Fundus account"


def test_partner_sees_own_organisation_and_notes_stay_internal(client, make_user, make_org, login):
    org = make_org(notes="Intern: zahlt spät.")
    partner = make_user(Role.PARTNER, organisation=org)
    colleague = make_user(Role.PARTNER, organisation=org)
    login(partner)
    response = client.get("/organisation", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert org.name in page and colleague.name in page
    assert "zahlt spät" not in page
    assert "Kontaktperson hinzufügen" not in page


def test_admin_creates_edits_and_reinvites_accounts(client, make_user, make_org, login):
    admin = make_user(Role.ADMIN)
    org = make_org()
    login(admin)
    response = client.post(
        "/admin/users/new",
        data={"email": "neu@example.org", "name": "Neue Person", "role": "staff", "locale": "de",
              "organisation_id": "0"},
    )
    assert response.status_code == 302
    user = db.session.scalar(db.select(User).where(User.email == "neu@example.org"))
    assert user.role == Role.STAFF and user.organisation_id is None
    partner_without_org = client.post(
        "/admin/users/new",
        data={"email": "p@example.org", "name": "P", "role": "partner", "locale": "de", "organisation_id": "0"},
    )
    assert "Eine Kontaktperson von Partnern braucht eine Organisation." in partner_without_org.get_data(as_text=True)

    client.post(
        f"/admin/users/{user.id}/edit",
        data={"email": "neu@example.org", "name": "Neue Person", "role": "partner",
              "organisation_id": str(org.id), "locale": "en", "active": ""},
    )
    db.session.refresh(user)
    assert (user.role, user.organisation_id, user.active, user.locale) == (Role.PARTNER, org.id, False, "en")

    assert client.post(f"/admin/users/{user.id}/invite").status_code == 302
    assert len(mails_to("neu@example.org")) == 2

    demote_self = client.post(
        f"/admin/users/{admin.id}/edit",
        data={"email": admin.email, "name": admin.name, "role": "staff", "locale": "de",
              "organisation_id": "0", "active": "y"},
    )
    assert "Sie können sich nicht selbst" in demote_self.get_data(as_text=True)
    db.session.refresh(admin)
    assert admin.role == Role.ADMIN


def test_deactivating_an_account_signs_it_out(app, client, make_user, login):
    partner = make_user()
    partner_client = app.test_client()
    login(partner, the_client=partner_client)
    assert partner_client.get("/account").status_code == 200
    admin = make_user(Role.ADMIN)
    login(admin)
    client.post(
        f"/admin/users/{partner.id}/edit",
        data={"email": partner.email, "name": partner.name, "role": "partner",
              "organisation_id": str(partner.organisation_id), "locale": "de", "active": ""},
    )
    assert partner_client.get("/account").status_code == 302


def test_profile_and_language_preference(client, make_user, login):
    user = make_user()
    login(user)
    response = client.post("/account", data={"name": "Neuer Name", "locale": "en"})
    assert response.status_code == 302
    db.session.refresh(user)
    assert (user.name, user.locale) == ("Neuer Name", "en")
    assert "My account" in client.get("/account").get_data(as_text=True)


def test_cli_create_and_list_users(runner, make_org):
    org = make_org(name="CLI eG")
    result = runner.invoke(
        args=["users", "create", "Chefin@Example.org", "--role", "admin", "--name", "Chefin"],
        input="ein langes passwort\nein langes passwort\n",
    )
    assert result.exit_code == 0, result.output
    user = db.session.scalar(db.select(User).where(User.email == "chefin@example.org"))
    assert user.role == Role.ADMIN and user.check_password("ein langes passwort")

    mismatch = runner.invoke(
        args=["users", "create", "x@example.org", "--role", "staff"], input="eins eins eins\nzwei zwei zwei\n"
    )
    assert mismatch.exit_code != 0 and "differ" in mismatch.output
    partner = runner.invoke(
        args=["users", "create", "p@example.org", "--role", "partner", "--organisation", str(org.id)],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert partner.exit_code == 0, partner.output
    no_org = runner.invoke(
        args=["users", "create", "q@example.org", "--role", "partner"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert no_org.exit_code != 0
    short = runner.invoke(args=["users", "create", "s@example.org", "--role", "staff"], input="kurz\nkurz\n")
    assert short.exit_code != 0 and "10" in short.output

    listing = runner.invoke(args=["users", "list"])
    assert "chefin@example.org" in listing.output and "[CLI eG]" in listing.output
    assert "q@example.org" not in listing.output


def test_seed_demo_builds_a_database_that_was_never_migrated(tmp_path):
    """The demo on a new, empty database that is not migrated on first use (PostgreSQL, or SQLite
    with ``AUTO_MIGRATE`` off): ``seed-demo`` builds the schema, then seeds; no traceback."""
    app = create_app(base_config(f"sqlite:///{tmp_path / 'new.sqlite'}") | {"UPLOAD_FOLDER": str(tmp_path)})
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert "admin@fundus.example" in result.output
    with app.app_context():
        assert current_revision() == head_revision()
        db.engine.dispose()


def test_seed_demo_on_an_older_schema_says_what_to_run(tmp_path):
    app = create_app(base_config(f"sqlite:///{tmp_path / 'old.sqlite'}") | {"UPLOAD_FOLDER": str(tmp_path)})
    with app.app_context():
        upgrade(revision="eaea52ec5af7")  # an older release's schema
        db.engine.dispose()
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 1 and result.exc_info[0] is SystemExit  # no traceback
    assert "revision eaea52ec5af7" in result.output and "flask --app app db upgrade" in result.output
    with app.app_context():
        assert current_revision() == "eaea52ec5af7"  # not touched
        db.engine.dispose()


def test_seed_demo_is_safe_to_run_twice(runner):
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    assert "admin@fundus.example" in first.output and "fundus-demo-2026" in first.output
    counts = (
        db.session.scalar(db.select(db.func.count()).select_from(User)),
        db.session.scalar(db.select(db.func.count()).select_from(Organisation)),
    )
    second = runner.invoke(args=["seed-demo"])
    assert second.exit_code == 0
    db.session.expire_all()
    assert counts == (
        db.session.scalar(db.select(db.func.count()).select_from(User)),
        db.session.scalar(db.select(db.func.count()).select_from(Organisation)),
    )
    assert counts[0] >= 3 and counts[1] >= 3
    admin = db.session.scalar(db.select(User).where(User.email == "admin@fundus.example"))
    assert admin.check_password("fundus-demo-2026")

    from materials.models import Material, MaterialKind

    materials = db.session.scalars(db.select(Material)).all()
    assert len(materials) >= 25
    assert {m.kind for m in materials} == set(MaterialKind)
    assert sum(1 for m in materials if len(m.editions) >= 2) >= 5
    kits = [m for m in materials if m.kind == MaterialKind.EXHIBITION]
    assert len(kits) == 3 and all(k.contents and any(e.units for e in k.editions) for k in kits)
    from core.mail import OutboxMessage
    from materials.models import Request, RequestStatus

    states = set(db.session.scalars(db.select(Request.status)))
    assert states == set(RequestStatus)  # a demo request in every state
    assert db.session.scalar(db.select(db.func.count()).select_from(OutboxMessage)) == 0
    from core.models import utcnow
    from core.vocabulary import TargetGroup
    from events.models import Attendance, Registration, RegistrationStatus, Training, TrainingStatus

    trainings = db.session.scalars(db.select(Training)).all()
    assert len(trainings) >= 12 and any(len(t.sessions) == 2 for t in trainings)
    assert {t.status for t in trainings} == set(TrainingStatus)
    assert {g for t in trainings for g in t.target_group_list} == set(TargetGroup)
    past = [t for t in trainings if t.ends_at < utcnow()]
    assert len(past) >= 2
    attended = set(db.session.scalars(db.select(Registration.training_id).join(Attendance)))
    assert {t.id for t in past} <= attended  # past trainings have attendance marked
    waiting = db.session.scalars(db.select(Registration.training_id)
                                 .where(Registration.status == RegistrationStatus.WAITING)).all()
    full = db.session.get(Training, waiting[0])
    assert sum(r.holds_seat for r in full.registrations) == full.seats  # full, with a waiting list
    assert any(t.status == TrainingStatus.CANCELLED and t.starts_at > utcnow() for t in trainings)
    # Every demo stock has its ledger entry, so stock and ledger agree.
    for edition in (e for m in materials for e in m.editions if not m.is_returnable):
        assert edition.stock_on_hand > 0


def test_simultaneous_double_submit_creates_one_application(app):
    """A double-clicked submit, or two tabs at once: one application, one clear answer each."""
    import threading

    barrier = threading.Barrier(8)
    results = []

    def submit():
        client = app.test_client()
        token = client.csrf_token()
        barrier.wait()
        response = client.post("/apply", data=APPLICATION | {"csrf_token": token})
        results.append((response.status_code, response.get_data(as_text=True)))

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [status for status, _ in results] == [200] * 8
    assert all("Vielen Dank" in page for _, page in results)  # the same answer for each
    assert db.session.scalar(db.select(db.func.count()).select_from(AccountApplication)) == 1
    # The accepted one queued its two mails; each of the others told the address it is being reviewed.
    subjects = sorted(m.subject for m in db.session.scalars(db.select(OutboxMessage)))
    assert subjects == sorted(["Wir haben Ihren Antrag erhalten", "Neuer Antrag auf einen Partnerzugang"]
                              + ["Ihr Antrag wird geprüft"] * 7)
