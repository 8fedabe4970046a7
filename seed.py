"""``flask --app app seed-demo``: realistic German demo content, safe to run twice.

Rows are found by their natural key (organisation name, e-mail) and only added
when missing, so a second run changes nothing.
"""

import click
from sqlalchemy import select

from accounts.models import Organisation, OrganisationKind, Role, User
from core.db import ensure_schema
from core.extensions import db

DEMO_PASSWORD = "fundus-demo-2026"

ORGANISATIONS = [
    # Fictitious organisations: realistic kinds and places, no real company's name.
    dict(name="Wohnen am Hafen eG", kind=OrganisationKind.HOUSING_COMPANY,
         street="Speicherstraße 12", postcode="44147", city="Dortmund", phone="0231 555010"),
    dict(name="Westfälische Wohnstätten GmbH", kind=OrganisationKind.HOUSING_COMPANY,
         street="Rheinlanddamm 80", postcode="44139", city="Dortmund"),
    dict(name="Stadtverwaltung Musterstadt – Amt für Wohnen", kind=OrganisationKind.MUNICIPAL,
         street="Rathausplatz 1", postcode="44135", city="Dortmund"),
    dict(name="Mieterinitiative Nordstadt e.V.", kind=OrganisationKind.ASSOCIATION,
         street="Münsterstraße 40", postcode="44145", city="Dortmund"),
    dict(name="Beratungsstelle Wohnen und Migration", kind=OrganisationKind.COUNSELLING,
         street="Mallinckrodtstraße 90", postcode="44145", city="Dortmund",
         notes="Demo-Organisation: alle Angaben erfunden."),
]

USERS = [
    dict(email="admin@fundus.example", name="Aylin Demir", role=Role.ADMIN, org=None),
    dict(email="team@fundus.example", name="Jonas Weber", role=Role.STAFF, org=None),
    dict(email="wohnen@partner.example", name="Petra Schulz", role=Role.PARTNER,
         org="Wohnen am Hafen eG"),
    dict(email="beratung@partner.example", name="Mehmet Yılmaz", role=Role.PARTNER,
         org="Beratungsstelle Wohnen und Migration"),
    dict(email="amt@partner.example", name="Sabine Krüger", role=Role.PARTNER,
         org="Stadtverwaltung Musterstadt – Amt für Wohnen", locale="en"),
]


def seed_demo() -> list[tuple[str, str, str]]:
    """Add what is missing of the demo content; return the demo logins."""
    orgs: dict[str, Organisation] = {}
    for data in ORGANISATIONS:
        org = db.session.scalar(select(Organisation).where(Organisation.name == data["name"]))
        if org is None:
            org = Organisation(**data)
            db.session.add(org)
        orgs[data["name"]] = org
    db.session.flush()

    logins = []
    for data in USERS:
        user = db.session.scalar(select(User).where(User.email == data["email"]))
        if user is None:
            org = orgs[data["org"]] if data["org"] else None
            user = User(email=data["email"], name=data["name"], role=data["role"],
                        organisation_id=org.id if org else None, locale=data.get("locale", "de"))
            user.set_password(DEMO_PASSWORD)
            db.session.add(user)
        logins.append((data["role"].value, data["email"], DEMO_PASSWORD))
    db.session.commit()
    return logins


@click.command("seed-demo")
def seed_demo_command():
    """Load demo organisations and accounts (and later materials and trainings)."""
    ensure_schema()
    logins = seed_demo()
    click.echo("Demo content is in place. Sign in at http://127.0.0.1:5000/login with:")
    for role, email, password in logins:
        click.echo(f"  {role:<8} {email:<28} password: {password}")
